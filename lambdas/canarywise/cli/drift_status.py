"""``canarywise status``'s drift part: the monitor's last look and its drift records (30 days)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canarywise.data.registry import Registry

RECENT = timedelta(days=30)


def drift_status(registry: Registry, service: str, now: datetime) -> dict[str, Any] | None:
    """The last look (window, what deviated, what drifts) and the findings since `RECENT` ago; None when the
    service has no monitor looks (no monitor deployed, or it has not looked yet)."""
    looks = registry.monitor_looks(service, last=1)
    if not looks:
        return None
    last = looks[-1]
    return {
        "last_window": f"{last.window_start.isoformat()} .. {last.window_end.isoformat()}",
        "deviating": [r.name for r in last.results if r.deviates],
        "drifting": list(last.findings),
        "findings": [
            {"detected_at": d.detected_at.isoformat(), "watch": d.watch, "summary": d.summary}
            for d in registry.drift_records(service, since=now - RECENT)
        ],
    }


def drift_rows(status: dict[str, Any]) -> list[tuple[str, Any]]:
    """`drift_status` as table rows: the last look, then one row per finding (newest first)."""
    rows: list[tuple[str, Any]] = [
        ("last look", status["last_window"]),
        ("drifting now", ", ".join(status["drifting"]) or "nothing"),
        (
            "deviating (not yet sustained)",
            ", ".join(set(status["deviating"]) - set(status["drifting"])) or "-",
        ),
    ]
    rows += [(f"{f['detected_at']} {f['watch']}", f["summary"]) for f in reversed(status["findings"])]
    return rows
