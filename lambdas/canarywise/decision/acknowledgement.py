"""A person's acknowledgement of a slice finding: the engine's input that lets an acknowledged slice go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canarywise.decision.models import DecisionInputError, optional_float

__all__ = ["SliceAcknowledgement"]


@dataclass(frozen=True, slots=True)
class SliceAcknowledgement:
    """A person's acknowledgement of a slice finding: that slice of that metric no longer holds the rollout.

    Stored with the experiment by ``Registry.acknowledge_slice`` (``canarywise resume --reason …``); the
    estimate and interval are the finding's when it was acknowledged, for the record.
    """

    metric: str
    slice: str
    by: str
    reason: str
    at: datetime
    stage_index: int = -1
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "by": self.by,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "stage_index": self.stage_index,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SliceAcknowledgement:
        try:
            return cls(
                metric=str(data["metric"]),
                slice=str(data["slice"]),
                by=str(data["by"]),
                reason=str(data["reason"]),
                at=datetime.fromisoformat(data["at"]),
                stage_index=int(data.get("stage_index", -1)),
                estimate=optional_float(data, "estimate"),
                ci_low=optional_float(data, "ci_low"),
                ci_high=optional_float(data, "ci_high"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecisionInputError(f"malformed slice acknowledgement: {exc!r}") from None
