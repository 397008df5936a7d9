"""Stages, frozen stages and significance checks of an experiment.

Example
-------
>>> registry.stage_history("mangaassist-v42-686abaf5b4")  # doctest: +SKIP
(StageStart(stage_index=0, ...),)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from canarywise.data.models import CheckRecord, ExperimentStatus, StageStart, Weights, from_iso, to_iso
from canarywise.data.registry._table import RegistryError, _epoch, _item, _Table

if TYPE_CHECKING:  # imported where used: it loads scipy (~1.4 s), which the rollback Lambda never needs
    from canarywise.data.metric_source import FrozenStage

CHECK_TTL = timedelta(days=400)  # longer than the 12-month BH window: a concluded test keeps its evidence


class ChecksMixin(_Table):
    # --- stages and checks -------------------------------------------------------------------------------
    def record_stage_start(
        self, experiment_id: str, stage_index: int, weights: Weights, now: datetime
    ) -> StageStart:
        """Record that stage `stage_index` began now with `weights`; a retry returns the first record."""
        stage = StageStart(stage_index=stage_index, started_at=now, weights=weights)
        written = self._put_if_absent(
            {
                "pk": f"EXP#{experiment_id}",
                "sk": f"STAGE#{stage_index:03d}",
                "kind": "stage",
                "stage_index": stage_index,
                "started_at": to_iso(now),
                "weights": weights.model_dump_json(),
            }
        )
        if not written:
            return next(s for s in self.stage_history(experiment_id) if s.stage_index == stage_index)
        return stage

    def stage_history(self, experiment_id: str) -> tuple[StageStart, ...]:
        """The stages started so far, in order."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"EXP#{experiment_id}", ":prefix": "STAGE#"}),
        )
        return tuple(
            StageStart(
                stage_index=item["stage_index"],
                started_at=from_iso(item["started_at"]),
                weights=Weights.model_validate_json(item["weights"]),
            )
            for item in items
        )

    def freeze_stage(self, experiment_id: str, frozen: FrozenStage) -> bool:
        """Keep a closed stage's data (``FROZEN#<index>``) for every later check: True when this call wrote
        it, False when a copy was already there (the first copy stands).

        A re-read that found late data (``frozen.replaces`` set) replaces the copy frozen at that time, and
        only that one (False when another check replaced it first); the item then records
        ``refrozen_from``.

        Example
        -------
        >>> registry.freeze_stage(experiment_id, reading.to_freeze[0])  # doctest: +SKIP
        True
        """
        item = {
            "pk": f"EXP#{experiment_id}",
            "sk": f"FROZEN#{frozen.stage:03d}",
            "kind": "frozen_stage",
            "stage_index": frozen.stage,
            "frozen_at": to_iso(frozen.frozen_at),
            "frozen": json.dumps(frozen.to_dict(), sort_keys=True),
        }
        if frozen.replaces is None:
            return self._put_if_absent(item)
        replace = self._put(
            item | {"refrozen_from": to_iso(frozen.replaces)},
            condition="frozen_at = :replaces",
            ExpressionAttributeValues=_item({":replaces": to_iso(frozen.replaces)}),
        )
        return self._transact([replace]) is None

    def frozen_stages(self, experiment_id: str) -> dict[int, FrozenStage]:
        """The experiment's frozen stages by stage index (none for an experiment older than the cache).

        Raises `RegistryError` when a stored copy cannot be read.

        Example
        -------
        >>> sorted(registry.frozen_stages(experiment_id))  # doctest: +SKIP
        [0, 1]
        """
        from canarywise.data.metric_source import FrozenStage  # see the TYPE_CHECKING import

        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"EXP#{experiment_id}", ":prefix": "FROZEN#"}),
        )
        frozen: dict[int, FrozenStage] = {}
        for item in items:
            try:
                stage = FrozenStage.from_dict(json.loads(item["frozen"]))
            except (KeyError, TypeError, ValueError) as exc:  # malformed JSON or content
                raise RegistryError(
                    f"unreadable frozen stage {item['sk']!r} of {experiment_id!r}: {exc}"
                ) from exc
            frozen[stage.stage] = stage
        return frozen

    def record_check(self, experiment_id: str, check: CheckRecord, *, seen: int | None = None) -> None:
        """Append a check (kept ``CHECK_TTL``) and make it the latest decision, in one transaction.

        The latest decision is ordered by the registry's own sequence (``check_sequence`` on the experiment,
        raised by one in the same transaction), never by the check's time: with `seen` (the sequence the
        check read with the experiment before it read any data) the check becomes the latest only when no
        other check became the latest since; without it, it follows whatever is there. The latest decision
        moves only while the experiment is live: a check finishing after a rollback never overwrites what
        the stage gate reads. A check that may not move it is kept as history only. A check killed midway
        leaves either both items or neither, never a new check beside an older latest decision (fault
        table, rows 3 and 4).
        """
        body = check.model_dump_json()
        record = self._put(
            {
                "pk": f"EXP#{experiment_id}",
                "sk": f"CHECK#{to_iso(check.checked_at)}",
                "kind": "check",
                "check": body,
                "expires_at": _epoch(check.checked_at + CHECK_TTL),
            }
        )
        values: dict[str, Any] = {
            ":running": ExperimentStatus.RUNNING.value,
            ":ready": ExperimentStatus.READY_FOR_APPROVAL.value,
            ":zero": 0,
            ":one": 1,
        }
        condition = "#status IN (:running, :ready)"
        if seen is not None:
            values[":seen"] = seen
            unset = " OR attribute_not_exists(#seq)" if seen == 0 else ""
            condition += f" AND (#seq = :seen{unset})"
        latest = self._update(
            {"pk": f"EXP#{experiment_id}", "sk": "META"},
            {"latest_check": body, "latest_checked_at": to_iso(check.checked_at)},
            condition=condition,
            values=values,
            names={"#status": "status", "#seq": "check_sequence"},
        )
        latest["Update"]["UpdateExpression"] += ", #seq = if_not_exists(#seq, :zero) + :one"
        if self._transact([record, latest]) is not None:
            # Not the latest (concluded, or another check became the latest first): history only.
            self._client.put_item(**record["Put"])

    def list_checks(self, experiment_id: str) -> tuple[CheckRecord, ...]:
        """Every check of the experiment, oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"EXP#{experiment_id}", ":prefix": "CHECK#"}),
        )
        return tuple(CheckRecord.model_validate_json(item["check"]) for item in items)
