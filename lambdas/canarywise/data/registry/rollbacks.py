"""Rollback records: one per experiment, the service's history (anti-flapping), failed rollbacks.

Records are written by the lifecycle's ``rolled_back`` transition (`service.ServiceMixin.transition`) in
the same transaction as the status change, so there is exactly one per incident.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from canarywise.data.models import RollbackFacts, RollbackRecord, from_iso, to_iso
from canarywise.data.registry._table import _item, _plain, _Table

ANTI_FLAPPING_WINDOW = timedelta(days=7)


class RollbacksMixin(_Table):
    def _rollback_items(self, rollback: RollbackRecord) -> list[dict[str, Any]]:
        """The experiment's ``ROLLBACK`` item (if any) and the service's history item for `rollback`."""
        record = json.dumps(rollback.model_dump(mode="json"))
        at = to_iso(rollback.rolled_back_at)
        items: list[dict[str, Any]] = []
        if rollback.experiment_id:
            items.append(
                {
                    "pk": f"EXP#{rollback.experiment_id}",
                    "sk": "ROLLBACK",
                    "kind": "rollback",
                    "record": record,
                }
            )
        suffix = rollback.experiment_id or f"{rollback.source}-{rollback.trigger_id or 'operator'}"
        items.append(
            {
                "pk": f"SERVICE#{rollback.service}",
                "sk": f"ROLLBACK#{at}#{suffix}",
                "kind": "rollback_history",
                "candidate": rollback.candidate,
                "record": record,
            }
        )
        return items

    def record_forced_rollback(self, rollback: RollbackRecord) -> None:
        """A person returned all traffic to the live slot with nothing running (``rollback --force``)."""
        for attributes in self._rollback_items(rollback):
            self._client.put_item(TableName=self.table_name, Item=_item(attributes))

    def get_rollback(self, experiment_id: str) -> RollbackRecord | None:
        """The experiment's rollback record, or None."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key=_item({"pk": f"EXP#{experiment_id}", "sk": "ROLLBACK"}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return RollbackRecord.model_validate_json(_plain(response["Item"])["record"])

    def record_rollback_failure(
        self,
        *,
        service: str,
        experiment_ids: Sequence[str],
        now: datetime,
        source: str,
        reason: str,
        error: str,
    ) -> None:
        """Say loudly, in the registry, that a rollback could not restore the weights (status unchanged)."""
        at = to_iso(now)
        self._client.put_item(
            TableName=self.table_name,
            Item=_item(
                {
                    "pk": f"SERVICE#{service}",
                    "sk": f"ROLLBACK_FAILED#{at}",
                    "kind": "rollback_failed",
                    "experiment_ids": json.dumps(list(experiment_ids)),
                    "source": source,
                    "reason": reason,
                    "error": error,
                }
            ),
        )
        for experiment_id in experiment_ids:
            self._client.update_item(
                TableName=self.table_name,
                Key=_item({"pk": f"EXP#{experiment_id}", "sk": "META"}),
                UpdateExpression="SET rollback_failed_at = :at, rollback_error = :error",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=_item({":at": at, ":error": error}),
            )

    def rollback_failures(self, service: str) -> tuple[dict[str, Any], ...]:
        """The service's failed rollbacks (what was tried, why it failed), oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"SERVICE#{service}", ":prefix": "ROLLBACK_FAILED#"}),
        )
        return tuple(
            {
                "failed_at": from_iso(item["sk"].removeprefix("ROLLBACK_FAILED#")),
                "experiment_ids": json.loads(item["experiment_ids"]),
                "source": item["source"],
                "reason": item["reason"],
                "error": item["error"],
            }
            for item in items
        )

    def rollback_history(self, service: str, *, since: datetime | None = None) -> tuple[RollbackRecord, ...]:
        """The service's rollbacks (since `since`), oldest first."""
        low = f"ROLLBACK#{to_iso(since)}" if since else "ROLLBACK#"
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues=_item(
                {":pk": f"SERVICE#{service}", ":low": low, ":high": "ROLLBACK#~"}
            ),
        )
        return tuple(RollbackRecord.model_validate_json(item["record"]) for item in items)

    def rollback_facts(self, service: str, candidate: str, now: datetime) -> RollbackFacts:
        """The service's last rollback (cooldown) and this candidate's rollbacks in the last 7 days."""
        last = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"SERVICE#{service}", ":prefix": "ROLLBACK#"}),
            ScanIndexForward=False,
            Limit=1,
            _first_page_only=True,
        )
        recent = self.rollback_history(service, since=now - ANTI_FLAPPING_WINDOW)
        return RollbackFacts(
            last_rollback_at=from_iso(last[0]["sk"].split("#")[1]) if last else None,
            candidate_rollbacks_7d=sum(r.candidate == candidate for r in recent),
        )
