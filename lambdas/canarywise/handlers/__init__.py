"""Thin Lambda handlers: Powertools decorators, the event and environment parsed with models, one call to
the logic in `canarywise.runtime`, a JSON-ready return value."""

from canarywise.data.registry import Registry
from canarywise.data.traffic import TrafficSplit
from canarywise.runtime.lifecycle import Lifecycle
from canarywise.settings import TrafficSettings


def lifecycle_for(settings: TrafficSettings, registry: Registry) -> Lifecycle:
    """The service's lifecycle (registry state + listener rule) from a handler's settings."""
    traffic = TrafficSplit(
        settings.listener_rule_arn, settings.target_groups, stickiness_seconds=settings.stickiness_seconds
    )
    return Lifecycle(settings.service, registry, traffic)
