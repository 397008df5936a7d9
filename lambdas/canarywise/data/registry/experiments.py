"""Experiments: the pre-registered hypothesis (spec), its status and where it stands; BH across the registry.

An experiment is created only by the lifecycle's ``start`` transition (`service.ServiceMixin.transition`),
so that one service never has two rollouts; its status changes only through the lifecycle's table.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from canarywise.data.models import (
    CheckRecord,
    Experiment,
    ExperimentStatus,
    FdrEntry,
    PauseNote,
    from_iso,
    to_iso,
)
from canarywise.data.registry._table import ExperimentNotFoundError, _item, _plain, _Table
from canarywise.spec import FDR_TIER_Q, RolloutSpec, parse_stored_spec
from canarywise.stats.multiple import adjust_pvalues

FDR_WINDOW = timedelta(days=365)
# Items carry the version of their layout; readers accept every older version (see tests/fixtures/registry).
EXPERIMENT_SCHEMA_VERSION = 2


def experiment_id_for(service: str, candidate: str, execution_arn: str) -> str:
    """A readable id, the same for the same execution (so a retried ``start`` finds its experiment).

    Example
    -------
    >>> experiment_id_for("mangaassist", "v42", "arn:aws:states:us-east-1:1:execution:canary:e1")
    'mangaassist-v42-686abaf5b4'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", candidate).strip("-")[:40] or "candidate"
    digest = hashlib.sha256(execution_arn.encode()).hexdigest()[:10]
    return f"{service}-{safe}-{digest}"


class ExperimentsMixin(_Table):
    # --- experiments -------------------------------------------------------------------------------------
    def new_experiment_item(
        self,
        spec: RolloutSpec,
        *,
        experiment_id: str,
        candidate: str,
        release_id: str,
        execution_arn: str,
        now: datetime,
        first_stage_multiplier: float,
        baseline_slot: str,
        candidate_slot: str,
    ) -> dict[str, Any]:
        """The experiment's META item as the ``start`` transition writes it (status RUNNING)."""
        return {
            "pk": f"EXP#{experiment_id}",
            "sk": "META",
            "kind": "experiment",
            "schema_version": EXPERIMENT_SCHEMA_VERSION,
            "experiment_id": experiment_id,
            "service": spec.service,
            "candidate": candidate,
            "release_id": release_id,
            "execution_arn": execution_arn,
            "status": ExperimentStatus.RUNNING.value,
            "running_pk": "RUNNING",
            "spec": json.dumps(spec.model_dump(mode="json"), sort_keys=True),
            "fdr_tier": spec.statistics.fdr_tier,
            "created_at": to_iso(now),
            "first_stage_multiplier": first_stage_multiplier,
            "baseline_slot": baseline_slot,
            "candidate_slot": candidate_slot,
        }

    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment, its spec re-validated; `ExperimentNotFoundError` when there is none."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key=_item({"pk": f"EXP#{experiment_id}", "sk": "META"}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in table {self.table_name!r}")
        return self._experiment(_plain(response["Item"]))

    def list_running(self, service: str | None = None) -> tuple[Experiment, ...]:
        """Experiments whose canary still receives traffic (RUNNING or READY_FOR_APPROVAL), by id."""
        return tuple(self.get_experiment(i) for i in self.list_running_ids(service))

    def list_running_ids(self, service: str | None = None) -> tuple[str, ...]:
        """Ids of the running experiments, without reading their specs (one unreadable spec must not hide
        the others from the significance check)."""
        query: dict[str, Any] = {
            "IndexName": "running",
            "KeyConditionExpression": "running_pk = :running",
            "ExpressionAttributeValues": _item({":running": "RUNNING"}),
        }
        if service is not None:
            query["FilterExpression"] = "service = :service"
            query["ExpressionAttributeValues"] |= _item({":service": service})
        query["ProjectionExpression"] = "experiment_id"
        return tuple(item["experiment_id"] for item in self._query(**query))

    def experiments_of(self, service: str) -> tuple[Experiment, ...]:
        """The service's experiments, newest first: the running ones and every concluded one (any age).

        An experiment between two states (APPROVED, ROLLING_BACK) is in neither index for that moment."""
        ids = set(self.list_running_ids(service))
        concluded = self._query(
            IndexName="concluded",
            KeyConditionExpression="concluded_pk = :concluded",
            FilterExpression="service = :service",
            ExpressionAttributeValues=_item({":concluded": "CONCLUDED", ":service": service}),
            ProjectionExpression="experiment_id",
        )
        ids |= {item["experiment_id"] for item in concluded}
        return tuple(sorted((self.get_experiment(i) for i in ids), key=lambda e: e.created_at, reverse=True))

    def list_running_by_last_check(self, service: str | None = None) -> tuple[str, ...]:
        """Ids of the running experiments, the one checked longest ago first (never checked before any), then
        by id: the significance check's order, so that a tick cut short by its time budget rotates rather
        than starving the same experiments. One query, like `list_running_ids`."""
        query: dict[str, Any] = {
            "IndexName": "running",
            "KeyConditionExpression": "running_pk = :running",
            "ExpressionAttributeValues": _item({":running": "RUNNING"}),
            "ProjectionExpression": "experiment_id, latest_checked_at",
        }
        if service is not None:
            query["FilterExpression"] = "service = :service"
            query["ExpressionAttributeValues"] |= _item({":service": service})
        items = self._query(**query)
        # ISO-8601 UTC timestamps (`to_iso`) sort as strings; "" (never checked) sorts first.
        return tuple(
            item["experiment_id"]
            for item in sorted(items, key=lambda i: (i.get("latest_checked_at", ""), i["experiment_id"]))
        )

    def _experiment(self, item: Mapping[str, Any]) -> Experiment:
        # Keys a newer version added are dropped, not refused: an in-flight rollout keeps working.
        spec, _ = parse_stored_spec(
            json.loads(item["spec"]), source=f"registry experiment {item['experiment_id']}"
        )
        latest = item.get("latest_check")
        return Experiment(
            experiment_id=item["experiment_id"],
            service=item["service"],
            candidate=item["candidate"],
            release_id=item["release_id"],
            execution_arn=item.get("execution_arn"),
            status=ExperimentStatus(item["status"]),
            spec=spec,
            created_at=from_iso(item["created_at"]),
            first_stage_multiplier=float(item.get("first_stage_multiplier", 1.0)),
            slice_acknowledgements=tuple(json.loads(item.get("slice_acknowledgements") or "[]")),
            latest_check=CheckRecord.model_validate_json(latest) if latest else None,
            check_sequence=int(item.get("check_sequence", 0)),
            concluded_at=from_iso(item["concluded_at"]) if "concluded_at" in item else None,
            pvalue=item.get("pvalue"),
            adjusted_pvalue=item.get("adjusted_pvalue"),
            fdr_rejected=item.get("fdr_rejected"),
            rollback_failed_at=from_iso(item["rollback_failed_at"]) if "rollback_failed_at" in item else None,
            paused=PauseNote.model_validate_json(item["paused"]) if item.get("paused") else None,
            # Experiments written before blue/green roles compared the fixed control/canary groups.
            baseline_slot=item.get("baseline_slot", "control"),
            candidate_slot=item.get("candidate_slot", "canary"),
        )

    # --- false discovery rate across the registry ------------------------------------------------------
    def apply_registry_fdr(self, now: datetime) -> tuple[FdrEntry, ...]:
        """Benjamini-Hochberg over the experiments concluded in the 12 months before `now`, per FDR tier.

        Each tier (``canarywise.spec.FDR_TIER_Q``) is its own family with its own q. The raw p-value stays;
        the BH-adjusted p-value and whether it is a discovery at the tier's q are written next to it.
        """
        items = self._query(
            IndexName="concluded",
            KeyConditionExpression="concluded_pk = :concluded AND concluded_at BETWEEN :low AND :high",
            ExpressionAttributeValues=_item(
                {":concluded": "CONCLUDED", ":low": to_iso(now - FDR_WINDOW), ":high": to_iso(now)}
            ),
        )
        by_tier: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if item.get("pvalue") is not None:
                by_tier.setdefault(item.get("fdr_tier", "default"), []).append(item)
        entries: list[FdrEntry] = []
        for tier, members in sorted(by_tier.items()):
            q = FDR_TIER_Q[tier]
            result = adjust_pvalues([float(m["pvalue"]) for m in members], method="bh", alpha=q)
            for member, adj, rejected in zip(members, result.adjusted, result.rejected, strict=True):
                entry = FdrEntry(
                    experiment_id=member["experiment_id"],
                    tier=tier,
                    q=q,
                    pvalue=float(member["pvalue"]),
                    adjusted_pvalue=float(adj),
                    rejected=bool(rejected),
                )
                self._client.update_item(
                    TableName=self.table_name,
                    Key=_item({"pk": member["pk"], "sk": "META"}),
                    UpdateExpression=(
                        "SET adjusted_pvalue = :adjusted, fdr_rejected = :rejected, fdr_q = :q, fdr_at = :at"
                    ),
                    ExpressionAttributeValues=_item(
                        {
                            ":adjusted": entry.adjusted_pvalue,
                            ":rejected": entry.rejected,
                            ":q": q,
                            ":at": to_iso(now),
                        }
                    ),
                )
                entries.append(entry)
        return tuple(entries)
