"""The one base class of every error canarywise raises on purpose."""

from __future__ import annotations


class CanarywiseError(Exception):
    """Base of all canarywise errors; catch this to handle any of them."""
