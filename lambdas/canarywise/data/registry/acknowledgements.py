"""Slice acknowledgements: a person lets a slice finding go, so the decision engine stops holding on it.

Kept on the experiment's META item (attribute ``slice_acknowledgements``, a JSON list), which the significance
check reads at every look anyway: no extra read per check. Each entry says who, why, when, and which finding
(metric, slice, and the finding's estimate and interval when it was acknowledged); entries are only appended.
The engine reads them as `canarywise.decision.acknowledgement.SliceAcknowledgement`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from canarywise.data._aws import ClientError, error_code
from canarywise.data.models import ExperimentStatus
from canarywise.data.registry._table import ExperimentNotFoundError, RegistryError, _item, _plain, _Table

ACKNOWLEDGEMENTS_ATTRIBUTE = "slice_acknowledgements"
_ATTEMPTS = 4


class AcknowledgementRefusedError(RegistryError):
    """The experiment is not running: there is nothing to hold, so nothing to acknowledge."""


class AcknowledgementsMixin(_Table):
    def acknowledge_slice(
        self,
        experiment_id: str,
        *,
        metric: str,
        slice_: str,
        by: str,
        reason: str,
        now: datetime,
        finding: dict[str, Any] | None = None,
        stage_index: int = -1,
    ) -> dict[str, Any]:
        """Record that `by` acknowledged the finding on `metric` in `slice_` (`reason`: why); the entry.

        An append under a condition on the list read (optimistic: a concurrent acknowledgement is retried,
        never lost) and on the experiment still running.

        Raises
        ------
        ExperimentNotFoundError
            No such experiment.
        AcknowledgementRefusedError
            The experiment is not running (concluded, rolled back, promoted).

        Example
        -------
        >>> registry.acknowledge_slice(  # doctest: +SKIP
        ...     "mangaassist-v42-686abaf5b4", metric="escalation_rate", slice_="other",
        ...     by="arn:aws:iam::123456789012:user/dana", reason="gift cards moved to 'other'", now=now)
        """
        if not reason.strip():
            raise ValueError("an acknowledgement needs a reason (who acknowledges what, and why)")
        entry = {
            "metric": metric,
            "slice": slice_,
            "by": by,
            "reason": reason,
            "at": now.isoformat(),
            "stage_index": stage_index,
            "estimate": (finding or {}).get("estimate"),
            "ci_low": (finding or {}).get("ci_low"),
            "ci_high": (finding or {}).get("ci_high"),
        }
        key = _item({"pk": f"EXP#{experiment_id}", "sk": "META"})
        for _ in range(_ATTEMPTS):
            old = self._read_acknowledgements(experiment_id)
            new = json.dumps([*json.loads(old or "[]"), entry])
            condition = "#s = :running AND " + (
                "attribute_not_exists(#ack)" if old is None else "#ack = :old"
            )
            values = {":running": ExperimentStatus.RUNNING.value, ":new": new}
            if old is not None:
                values[":old"] = old
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression="SET #ack = :new",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#s": "status", "#ack": ACKNOWLEDGEMENTS_ATTRIBUTE},
                    ExpressionAttributeValues=_item(values),
                )
                return entry
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            status = self.get_experiment_status(experiment_id)
            if status is not ExperimentStatus.RUNNING:
                raise AcknowledgementRefusedError(
                    f"experiment {experiment_id} is {status}, not RUNNING: nothing holds, nothing to "
                    "acknowledge"
                )
        raise RegistryError(f"acknowledging a slice of {experiment_id} kept conflicting with other writers")

    def slice_acknowledgements(self, experiment_id: str) -> list[dict[str, Any]]:
        """The experiment's acknowledgements, oldest first."""
        return list(json.loads(self._read_acknowledgements(experiment_id) or "[]"))

    def _read_acknowledgements(self, experiment_id: str) -> str | None:
        response = self._client.get_item(
            TableName=self.table_name,
            Key=_item({"pk": f"EXP#{experiment_id}", "sk": "META"}),
            ConsistentRead=True,
            ProjectionExpression="#ack, experiment_id",
            ExpressionAttributeNames={"#ack": ACKNOWLEDGEMENTS_ATTRIBUTE},
        )
        if "Item" not in response:
            raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in table {self.table_name!r}")
        value = _plain(response["Item"]).get(ACKNOWLEDGEMENTS_ATTRIBUTE)
        return None if value is None else str(value)
