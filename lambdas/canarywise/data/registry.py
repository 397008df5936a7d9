"""The experiment registry: one DynamoDB table, the only code that reads or writes it.

Layout (keys from the lead's contract: ``pk``/``sk``, GSIs ``running`` and ``concluded``, TTL ``expires_at``):

=========================  ==========================================  ======================================
pk                         sk                                          what
=========================  ==========================================  ======================================
``EXP#<id>``               ``META``                                    the experiment: spec (JSON), status,
                                                                       latest check; ``running_pk`` while the
                                                                       canary gets traffic, ``concluded_pk``
                                                                       and ``concluded_at`` once it ended
``EXP#<id>``               ``STAGE#<index:03d>``                       a stage's start and the weights
``EXP#<id>``               ``FROZEN#<index:03d>``                      a closed stage's aggregates and new
                                                                       assignments, read once its data was
                                                                       complete (written once; later checks
                                                                       read them instead of CloudWatch)
``EXP#<id>``               ``CHECK#<checked_at>``                      one significance check (TTL)
``EXP#<id>``               ``ROLLBACK``                                the rollback, written exactly once
``SERVICE#<service>``      ``ROLLBACK#<at>#<experiment or trigger>``   rollback history (anti-flapping)
``SERVICE#<service>``      ``ROLLBACK_FAILED#<at>``                    a rollback that could not set weights
``SERVICE#<service>``      ``LAST_ROLLBACK``                           wall-clock time of the last rollback
                                                                       written (orders concurrent rollbacks)
``TRIGGER#<trigger id>``   ``TRIGGER``                                 an alarm already acted on (TTL)
=========================  ==========================================  ======================================

Status moves only through conditional writes: RUNNING → READY_FOR_APPROVAL → PROMOTED, or RUNNING /
READY_FOR_APPROVAL → ROLLED_BACK / REJECTED. A rollback is one DynamoDB transaction (status change, the
``ROLLBACK`` item, the history item, the trigger item), so under concurrent triggers exactly one succeeds.
A rollback that finds no experiment running has nothing to make its write conditional on but time: it is a
duplicate when another rollback of the service was written after it began (see `Registry.record_rollback`).

Example
-------
>>> registry = Registry("canarywise-registry")  # doctest: +SKIP
>>> experiment = registry.create_experiment(spec, candidate="v42", release_id="r1",  # doctest: +SKIP
...                                         execution_arn=arn, now=now)
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from canarywise.data._aws import ClientError, client, error_code
from canarywise.data.models import (
    CheckRecord,
    Experiment,
    ExperimentStatus,
    FdrEntry,
    RollbackFacts,
    RollbackRecord,
    StageStart,
    Weights,
    from_iso,
    to_iso,
)
from canarywise.errors import CanarywiseError
from canarywise.spec import FDR_TIER_Q, RolloutSpec, parse_spec
from canarywise.stats.multiple import adjust_pvalues

if TYPE_CHECKING:  # imported where used: it loads scipy (~1.4 s), which the rollback Lambda never needs
    from canarywise.data.metric_source import FrozenStage

CHECK_TTL = timedelta(days=400)  # longer than the 12-month BH window: a concluded test keeps its evidence
TRIGGER_TTL = timedelta(days=30)
ANTI_FLAPPING_WINDOW = timedelta(days=7)
FDR_WINDOW = timedelta(days=365)
_LIVE = (ExperimentStatus.RUNNING, ExperimentStatus.READY_FOR_APPROVAL)
_TRANSACTION_ATTEMPTS = 4
# How far apart two Lambda instances' clocks may be (both are kept by Amazon Time Sync, within milliseconds);
# a generous bound costs nothing: it only decides whether a rollback with nothing running is a duplicate.
CLOCK_SKEW = timedelta(seconds=2)


class RegistryError(CanarywiseError):
    """The registry refused a request or holds something it cannot read."""


class ExperimentNotFoundError(RegistryError, LookupError):
    """No experiment with this id."""


class InvalidTransitionError(RegistryError):
    """The experiment's status does not allow this move (e.g. promoting a rolled-back experiment)."""


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


# --- DynamoDB attribute values: hand-written because boto3's TypeSerializer rejects floats and returns
# Decimals; our items hold only strings, numbers, booleans and JSON text.
def _value(python: Any) -> dict[str, Any]:
    if isinstance(python, bool):
        return {"BOOL": python}
    if isinstance(python, int | float | Decimal):
        return {"N": str(python)}
    if isinstance(python, str):
        return {"S": python}
    raise TypeError(f"cannot store {type(python).__name__} in the registry: {python!r}")


def _item(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _value(value) for name, value in attributes.items() if value is not None}


def _python(attribute: Mapping[str, Any]) -> Any:
    (kind, raw), *_ = attribute.items()
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() and "." not in raw else float(number)
    if kind in {"S", "BOOL"}:
        return raw
    if kind == "NULL":
        return None
    raise RegistryError(f"unexpected DynamoDB attribute type {kind!r}")


def _plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: _python(attribute) for name, attribute in item.items()}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass(frozen=True)
class _Write:
    """One item of a transaction, with what a failed condition on it means."""

    request: dict[str, Any]
    experiment_id: str | None = None
    # Statuses that mean "this change was already made" when the condition fails.
    done: tuple[ExperimentStatus, ...] = ()


class Registry:
    """Experiments, stages, checks, rollbacks and the registry-wide FDR correction in one table.

    Parameters
    ----------
    table_name : str
        The DynamoDB table (``REGISTRY_TABLE``).
    boto3_client : optional
        A DynamoDB client (``boto3.client("dynamodb")``); one is created when omitted.
    sleep : callable, optional
        Used between retries of a conflicting transaction; tests pass a no-op.
    """

    def __init__(
        self,
        table_name: str,
        *,
        boto3_client: Any = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = boto3_client if boto3_client is not None else client("dynamodb")
        self._sleep = sleep or time.sleep
        # The wall clock (epoch seconds) that orders concurrent rollbacks; separate from the `now` the callers
        # pass, which the demo accelerates.
        self.clock = clock or time.time

    # --- experiments -------------------------------------------------------------------------------------
    def create_experiment(
        self,
        spec: RolloutSpec,
        *,
        candidate: str,
        release_id: str,
        execution_arn: str,
        now: datetime,
        first_stage_multiplier: float = 1.0,
    ) -> Experiment:
        """Register the rollout as a pre-registered hypothesis (status RUNNING); idempotent per execution.

        A second call for the same `execution_arn` returns the experiment the first call created.

        Example
        -------
        >>> registry.create_experiment(spec, candidate="v42", release_id="r1",  # doctest: +SKIP
        ...                            execution_arn=arn, now=now).status
        <ExperimentStatus.RUNNING: 'RUNNING'>
        """
        experiment_id = experiment_id_for(spec.service, candidate, execution_arn)
        attributes = {
            "pk": f"EXP#{experiment_id}",
            "sk": "META",
            "kind": "experiment",
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
        }
        self._put_if_absent(attributes)
        return self.get_experiment(experiment_id)

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

    def _experiment(self, item: Mapping[str, Any]) -> Experiment:
        spec = parse_spec(json.loads(item["spec"]), source=f"registry experiment {item['experiment_id']}")
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
            latest_check=CheckRecord.model_validate_json(latest) if latest else None,
            concluded_at=from_iso(item["concluded_at"]) if "concluded_at" in item else None,
            pvalue=item.get("pvalue"),
            adjusted_pvalue=item.get("adjusted_pvalue"),
            fdr_rejected=item.get("fdr_rejected"),
            rollback_failed_at=from_iso(item["rollback_failed_at"]) if "rollback_failed_at" in item else None,
        )

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

        Example
        -------
        >>> registry.freeze_stage(experiment_id, reading.to_freeze[0])  # doctest: +SKIP
        True
        """
        return self._put_if_absent(
            {
                "pk": f"EXP#{experiment_id}",
                "sk": f"FROZEN#{frozen.stage:03d}",
                "kind": "frozen_stage",
                "stage_index": frozen.stage,
                "frozen_at": to_iso(frozen.frozen_at),
                "frozen": json.dumps(frozen.to_dict(), sort_keys=True),
            }
        )

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

    def record_check(self, experiment_id: str, check: CheckRecord) -> None:
        """Append a check (kept ``CHECK_TTL``) and make it the experiment's latest decision.

        The latest decision moves only forward in time and only while the experiment is live: a check
        finishing after a rollback never overwrites what the stage gate reads.
        """
        body = check.model_dump_json()
        self._client.put_item(
            TableName=self.table_name,
            Item=_item(
                {
                    "pk": f"EXP#{experiment_id}",
                    "sk": f"CHECK#{to_iso(check.checked_at)}",
                    "kind": "check",
                    "check": body,
                    "expires_at": _epoch(check.checked_at + CHECK_TTL),
                }
            ),
        )
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=_item({"pk": f"EXP#{experiment_id}", "sk": "META"}),
                UpdateExpression="SET latest_check = :check, latest_checked_at = :at",
                ConditionExpression=(
                    "#status IN (:running, :ready) AND "
                    "(attribute_not_exists(latest_checked_at) OR latest_checked_at <= :at)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_item(
                    {
                        ":check": body,
                        ":at": to_iso(check.checked_at),
                        ":running": ExperimentStatus.RUNNING.value,
                        ":ready": ExperimentStatus.READY_FOR_APPROVAL.value,
                    }
                ),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def list_checks(self, experiment_id: str) -> tuple[CheckRecord, ...]:
        """Every check of the experiment, oldest first."""
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_item({":pk": f"EXP#{experiment_id}", ":prefix": "CHECK#"}),
        )
        return tuple(CheckRecord.model_validate_json(item["check"]) for item in items)

    # --- status transitions ------------------------------------------------------------------------------
    def mark_ready_for_approval(self, experiment_id: str, now: datetime) -> bool:
        """RUNNING → READY_FOR_APPROVAL; False when already there (a retry), else `InvalidTransitionError`."""
        return self._transition(
            experiment_id,
            allowed_from=(ExperimentStatus.RUNNING,),
            to=ExperimentStatus.READY_FOR_APPROVAL,
            sets={"ready_at": to_iso(now)},
        )

    def conclude_promoted(self, experiment_id: str, now: datetime, *, pvalue: float | None) -> bool:
        """READY_FOR_APPROVAL → PROMOTED, storing the primary p-value for the registry-wide BH."""
        return self._transition(
            experiment_id,
            allowed_from=(ExperimentStatus.READY_FOR_APPROVAL,),
            to=ExperimentStatus.PROMOTED,
            sets={"concluded_pk": "CONCLUDED", "concluded_at": to_iso(now), "pvalue": pvalue},
            removes=("running_pk",),
        )

    def record_rollback(
        self, rollback: RollbackRecord, *, pvalue: float | None = None, began: float | None = None
    ) -> bool:
        """Write the rollback once: True for the call that wrote it, False for every duplicate.

        With an experiment: its status moves from RUNNING or READY_FOR_APPROVAL to ``rollback.status``
        (ROLLED_BACK, or REJECTED for a rejected approval), its ``ROLLBACK`` item and a history item are
        written in the same transaction. With a ``trigger_id`` (an alarm's identity), a delivery of the same
        alarm seen before is a duplicate even when no experiment is involved.

        Without an experiment, `began` (the wall-clock time, `clock()`, at which the caller started) makes
        the write a duplicate when another rollback of the service was written since then (less
        `CLOCK_SKEW`): a caller that found nothing running because a concurrent rollback had just concluded
        the experiment must not record a second rollback. Every rollback stamps the service's
        ``LAST_ROLLBACK`` item in its transaction, so the check and the write are one atomic step.
        """
        status = rollback.status or ExperimentStatus.ROLLED_BACK
        at = to_iso(rollback.rolled_back_at)
        record = rollback.model_dump(mode="json") | {"status": status.value}
        writes: list[_Write] = []
        trigger = (
            self._put_once(
                {
                    "pk": f"TRIGGER#{rollback.trigger_id}",
                    "sk": "TRIGGER",
                    "kind": "trigger",
                    "seen_at": at,
                    "expires_at": _epoch(rollback.rolled_back_at + TRIGGER_TTL),
                }
            )
            if rollback.trigger_id
            else None
        )
        if trigger:
            writes.append(trigger)
        if rollback.experiment_id:
            writes.append(
                self._update_status(
                    rollback.experiment_id,
                    allowed_from=_LIVE,
                    to=status,
                    sets={
                        "concluded_pk": "CONCLUDED",
                        "concluded_at": at,
                        "rolled_back_at": at,
                        "rollback_reason": rollback.reason,
                        "pvalue": pvalue,
                    },
                    removes=("running_pk",),
                    already_done=(ExperimentStatus.ROLLED_BACK, ExperimentStatus.REJECTED),
                )
            )
            writes.append(
                self._put_once(
                    {
                        "pk": f"EXP#{rollback.experiment_id}",
                        "sk": "ROLLBACK",
                        "kind": "rollback",
                        "record": json.dumps(record),
                    }
                )
            )
        suffix = rollback.experiment_id or rollback.trigger_id or at
        history = {
            "pk": f"SERVICE#{rollback.service}",
            "sk": f"ROLLBACK#{at}#{suffix}",
            "kind": "rollback_history",
            "candidate": rollback.candidate,
            "record": json.dumps(record),
        }
        writes.append(_Write({"Put": {"TableName": self.table_name, "Item": _item(history)}}))
        last: dict[str, Any] = {
            "Put": {
                "TableName": self.table_name,
                "Item": _item(
                    {"pk": f"SERVICE#{rollback.service}", "sk": "LAST_ROLLBACK", "written_at": self.clock()}
                ),
            }
        }
        concurrent_check = began is not None and not rollback.experiment_id
        if concurrent_check and began is not None:  # (the second test is for the type checker)
            last["Put"]["ConditionExpression"] = "attribute_not_exists(written_at) OR written_at < :since"
            last["Put"]["ExpressionAttributeValues"] = _item({":since": began - CLOCK_SKEW.total_seconds()})
        writes.append(_Write(last))
        wrote = self._transact(writes)
        if not wrote and concurrent_check and trigger:
            # Overtaken by a concurrent rollback: still remember the alarm, so that its later copies (the SNS
            # message, Lambda's retries) are duplicates too rather than service-level rollbacks of their own.
            self._transact([trigger])
        return wrote

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

    # --- plumbing ----------------------------------------------------------------------------------------
    def _transition(
        self,
        experiment_id: str,
        *,
        allowed_from: Sequence[ExperimentStatus],
        to: ExperimentStatus,
        sets: Mapping[str, Any],
        removes: Sequence[str] = (),
    ) -> bool:
        return self._transact([self._update_status(experiment_id, allowed_from, to, sets, removes)])

    def _update_status(
        self,
        experiment_id: str,
        allowed_from: Sequence[ExperimentStatus],
        to: ExperimentStatus,
        sets: Mapping[str, Any],
        removes: Sequence[str] = (),
        already_done: Sequence[ExperimentStatus] = (),
    ) -> _Write:
        values = {k: v for k, v in sets.items() if v is not None} | {"status": to.value}
        names = {f"#a{i}": name for i, name in enumerate(values)} | {"#status": "status"}
        expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
        if removes:
            names |= {f"#r{i}": name for i, name in enumerate(removes)}
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        allowed = {f":from{i}": status.value for i, status in enumerate(allowed_from)}
        request = {
            "Update": {
                "TableName": self.table_name,
                "Key": _item({"pk": f"EXP#{experiment_id}", "sk": "META"}),
                "UpdateExpression": expression,
                "ConditionExpression": f"#status IN ({', '.join(allowed)})",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _item(
                    {f":a{i}": value for i, value in enumerate(values.values())} | allowed
                ),
            }
        }
        return _Write(request, experiment_id=experiment_id, done=(to, *already_done))

    def _put_if_absent(self, attributes: Mapping[str, Any]) -> bool:
        """Write the item unless one with its key exists: True when this call wrote it."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_item(attributes),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _put_once(self, attributes: Mapping[str, Any]) -> _Write:
        return _Write(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _item(attributes),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )

    def _transact(self, writes: Sequence[_Write]) -> bool:
        """Run the writes atomically; False when a condition shows the change was already made.

        Raises `InvalidTransitionError` when an experiment is in a status the change cannot start from
        (and that is not one of the statuses meaning "already done"), `ExperimentNotFoundError` when it
        does not exist.
        """
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                self._client.transact_write_items(TransactItems=[w.request for w in writes])
                return True
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons") or []]
            if "ConditionalCheckFailed" in codes:
                break
            # TransactionConflict: another writer was on the same items at the same moment; try again.
            if attempt + 1 == _TRANSACTION_ATTEMPTS:
                raise RegistryError(f"registry transaction kept conflicting: {codes}")
            self._sleep(0.05 * 2**attempt)
        for write, code in zip(writes, codes, strict=False):
            if code != "ConditionalCheckFailed" or write.experiment_id is None:
                continue
            current = self.get_experiment(write.experiment_id).status
            if current not in write.done:
                raise InvalidTransitionError(
                    f"experiment {write.experiment_id!r} is {current}; it cannot move to {write.done[0]}"
                )
        return False

    def _query(self, *, _first_page_only: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self._pages(_first_page_only, **kwargs))

    def _pages(self, first_page_only: bool, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs.setdefault("TableName", self.table_name)
        while True:
            response = self._client.query(**kwargs)
            yield from (_plain(item) for item in response.get("Items", []))
            if first_page_only or "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
