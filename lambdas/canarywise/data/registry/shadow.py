"""Shadow phases in the registry: each look's decision with its numbers, and where the phase stands.

=====================  ==============================  ==================================================
pk                     sk                              what
=====================  ==============================  ==================================================
``SHADOW#<shadow id>`` ``META``                        the phase: service, candidate, spec, started_at,
                                                       the latest decision (READY_FOR_CANARY / REJECTED
                                                       end it: a later look never overwrites them); in
                                                       the ``running`` index until it ends
``SHADOW#<shadow id>`` ``CHECK#<checked at>``          one look: the decision, its reasons in words and
                                                       every finding's numbers (`CheckRecord`, TTL)
=====================  ==============================  ==================================================

Example
-------
>>> registry.shadow_checks("mangaassist-shadow-retriever-v2")[-1].decision  # doctest: +SKIP
'REJECTED'
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from canarywise.data.models import CheckRecord, to_iso
from canarywise.data.registry._table import _epoch, _item, _plain, _Table
from canarywise.data.registry.checks import CHECK_TTL
from canarywise.spec import RolloutSpec

_FINAL = ("READY_FOR_CANARY", "REJECTED")
_RUNNING = "SHADOW_RUNNING"


class ShadowMixin(_Table):
    def start_shadow(
        self, shadow_id: str, spec: RolloutSpec, *, candidate: str, started_at: datetime
    ) -> bool:
        """Register a shadow phase (True when this call created it; a retry finds it and changes nothing)."""
        return self._put_if_absent(
            {
                "pk": f"SHADOW#{shadow_id}",
                "sk": "META",
                "kind": "shadow",
                "service": spec.service,
                "candidate": candidate,
                "spec": json.dumps(spec.model_dump(mode="json"), sort_keys=True),
                "started_at": to_iso(started_at),
                "status": "RUNNING",
                # In the registry's `running` index (beside the experiments' RUNNING) until the phase ends;
                # the index's sort key is experiment_id, so the phase's id goes there too.
                "running_pk": _RUNNING,
                "experiment_id": shadow_id,
            }
        )

    def shadow_phase(self, shadow_id: str) -> dict[str, Any] | None:
        """The phase's META item as plain values (None when there is none)."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key=_item({"pk": f"SHADOW#{shadow_id}", "sk": "META"}),
            ConsistentRead=True,
        )
        return _plain(response["Item"]) if "Item" in response else None

    def record_shadow_check(self, shadow_id: str, check: CheckRecord) -> None:
        """Append a look and make it the phase's status, unless the phase has already ended."""
        body = check.model_dump_json()
        self._client.put_item(
            TableName=self.table_name,
            Item=_item(
                {
                    "pk": f"SHADOW#{shadow_id}",
                    "sk": f"CHECK#{to_iso(check.checked_at)}",
                    "kind": "shadow_check",
                    "check": body,
                    "expires_at": _epoch(check.checked_at + CHECK_TTL),
                }
            ),
        )
        request = self._update(
            {"pk": f"SHADOW#{shadow_id}", "sk": "META"},
            {"status": check.decision, "latest_check": body},
            removes=["running_pk"] if check.decision in _FINAL else [],
            condition="attribute_exists(pk) AND NOT #status IN (:ready, :rejected)",
            values={":ready": _FINAL[0], ":rejected": _FINAL[1]},
            names={"#status": "status"},
        )
        self._transact([request])

    def list_running_shadows(self, service: str) -> tuple[str, ...]:
        """Ids of the service's shadow phases that have not ended (one query of the `running` index)."""
        items = self._query(
            IndexName="running",
            KeyConditionExpression="running_pk = :running",
            FilterExpression="service = :service",
            ExpressionAttributeValues=_item({":running": _RUNNING, ":service": service}),
        )
        return tuple(sorted(str(item["experiment_id"]) for item in items))

    def shadow_checks(self, shadow_id: str) -> tuple[CheckRecord, ...]:
        """Every look of the phase, oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"SHADOW#{shadow_id}", ":prefix": "CHECK#"}),
        )
        return tuple(CheckRecord.model_validate_json(item["check"]) for item in items)
