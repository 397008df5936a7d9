"""Thin Lambda handlers: Powertools decorators, the event and environment parsed with models, one call to
the logic in `canarywise.runtime`, a JSON-ready return value."""
