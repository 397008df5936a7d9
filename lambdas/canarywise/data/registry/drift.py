"""The drift monitor's records: each look (with its numbers) and each drift finding.

=====================  ================================  ================================================
pk                     sk                                what
=====================  ================================  ================================================
``SERVICE#<service>``  ``MONITOR#<window end>``          one look: every watch's test and numbers (TTL
                                                         `LOOK_TTL`); written once per window, so a
                                                         retried look is a no-op
``SERVICE#<service>``  ``DRIFT#<window end>#<watch>``    a finding: the watch's sustained deviation with
                                                         the numbers, written when it begins (kept)
=====================  ================================  ================================================

Example
-------
>>> registry.drift_records("mangaassist")[-1].watch  # doctest: +SKIP
'intent_mix'
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from canarywise.data.models import to_iso
from canarywise.data.registry._table import _epoch, _item, _Table

LOOK_TTL = timedelta(days=90)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WatchResult(_Record):
    """One watch's test at one look: the current window against the pooled baseline.

    ``effect`` is what ``min_change`` is compared with: the rate's change, the largest change of one
    category's share, the KS distance. ``deviates``: p-value under ``alpha`` and ``|effect| >= min_change``.
    ``detail`` holds the numbers behind it (rates, shares per category, counts). ``note`` says why a watch
    without data was not tested.
    """

    name: str
    kind: Literal["rate", "mix", "distribution"]
    method: str
    statistic: float | None
    pvalue: float | None
    alpha: float
    effect: float | None
    min_change: float
    deviates: bool
    current_n: int
    baseline_n: int
    detail: dict[str, Any] = {}
    note: str = ""


class MonitorLook(_Record):
    """One look of the monitor: the window, the baseline windows it pooled, each watch's result, and the
    watches whose deviation has now been sustained (`findings`)."""

    service: str
    window_start: datetime
    window_end: datetime
    looked_at: datetime
    baseline_starts: tuple[datetime, ...]
    results: tuple[WatchResult, ...]
    findings: tuple[str, ...] = ()

    def result(self, name: str) -> WatchResult | None:
        return next((r for r in self.results if r.name == name), None)


class DriftRecord(_Record):
    """A drift finding: `watch` deviated at `looks` consecutive looks up to the window ending `detected_at`;
    `result` is that last look's test with its numbers, `summary` the same in words."""

    service: str
    watch: str
    detected_at: datetime
    looks: int
    result: WatchResult
    summary: str


class DriftMixin(_Table):
    def record_look(self, look: MonitorLook) -> bool:
        """Store a look; False when its window was already looked at (a retried or doubled invocation)."""
        return self._put_if_absent(
            {
                "pk": f"SERVICE#{look.service}",
                "sk": f"MONITOR#{to_iso(look.window_end)}",
                "kind": "monitor_look",
                "record": look.model_dump_json(),
                "expires_at": _epoch(look.window_end + LOOK_TTL),
            }
        )

    def monitor_looks(self, service: str, *, last: int) -> tuple[MonitorLook, ...]:
        """The service's `last` looks, oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"SERVICE#{service}", ":prefix": "MONITOR#"}),
            ScanIndexForward=False,
            Limit=last,
            _first_page_only=True,
        )
        return tuple(MonitorLook.model_validate_json(item["record"]) for item in reversed(items))

    def record_drift(self, drift: DriftRecord) -> bool:
        """Store a finding; False when it is already stored."""
        return self._put_if_absent(
            {
                "pk": f"SERVICE#{drift.service}",
                "sk": f"DRIFT#{to_iso(drift.detected_at)}#{drift.watch}",
                "kind": "drift",
                "record": drift.model_dump_json(),
            }
        )

    def drift_records(self, service: str, *, since: datetime | None = None) -> tuple[DriftRecord, ...]:
        """The service's drift findings (since `since`), oldest first."""
        low = f"DRIFT#{to_iso(since)}" if since else "DRIFT#"
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues=_item({":pk": f"SERVICE#{service}", ":low": low, ":high": "DRIFT#~"}),
        )
        return tuple(DriftRecord.model_validate_json(item["record"]) for item in items)
