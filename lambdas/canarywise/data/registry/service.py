"""The service's traffic state and the one function that moves the lifecycle: `ServiceMixin.transition`.

Each transition of `canarywise.lifecycle.table.TRANSITIONS` is one DynamoDB transaction: the service's
``STATE`` item is replaced on condition that its version is the caller's (the fencing token) and its phase
is one the row allows; the experiment's ``META`` item changes on condition that its status is one the row
allows (``start`` creates it, on condition that it does not exist). Either both change or neither does; a
refused transition raises `TransitionRefusedError` with one line saying what was found.

Example
-------
>>> state = registry.service_state("mangaassist")  # doctest: +SKIP
>>> state = registry.transition(Event.READY, state, now=now, by="me")  # doctest: +SKIP
>>> state.phase  # doctest: +SKIP
<Phase.AWAITING_APPROVAL: 'AWAITING_APPROVAL'>
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from canarywise.data.models import ExperimentStatus, RollbackRecord, to_iso
from canarywise.data.registry._table import ExperimentNotFoundError, _item, _plain
from canarywise.data.registry.experiments import ExperimentsMixin
from canarywise.data.registry.rollbacks import RollbacksMixin
from canarywise.lifecycle.state import ServiceState, TransitionRefusedError
from canarywise.lifecycle.table import TRANSITIONS, Event, Phase


def _state_key(service: str) -> dict[str, str]:
    return {"pk": f"SERVICE#{service}", "sk": "STATE"}


class ServiceMixin(ExperimentsMixin, RollbacksMixin):
    def service_state(self, service: str) -> ServiceState | None:
        """The service's traffic state (a strongly consistent read), None before the first rollout."""
        response = self._client.get_item(
            TableName=self.table_name, Key=_item(_state_key(service)), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        item = _plain(response["Item"])
        return ServiceState.model_validate(item | {"forward": json.loads(item["forward"])})

    def initialise_service_state(self, state: ServiceState) -> ServiceState:
        """Store `state` unless the service has one already; returns the one that stands."""
        self._put_if_absent(_state_item(state))
        stored = self.service_state(state.service)
        assert stored is not None  # written just now or before
        return stored

    def transition(
        self,
        event: Event,
        state: ServiceState,
        *,
        now: datetime,
        by: str,
        experiment_id: str | None = None,
        percent: float | None = None,
        new_experiment: Mapping[str, Any] | None = None,
        experiment_sets: Mapping[str, Any] | None = None,
        experiment_removes: Sequence[str] = (),
        final_status: ExperimentStatus | None = None,
        rollback: RollbackRecord | None = None,
        note: Mapping[str, Any] | None = None,
    ) -> ServiceState:
        """Take `event` from `state` (its version is the fencing token); returns the new state.

        `note` is written with it (on condition that it does not exist yet): the record of who took a
        person's transition and why (``pause``, ``resume``), under the experiment.

        Raises
        ------
        TransitionRefusedError
            When the service moved on since `state` was read, or its phase or the experiment's status is
            not one the row allows. Nothing was written.
        """
        row = TRANSITIONS[event]
        experiment_id = experiment_id or state.experiment_id
        if row.needs_experiment and experiment_id is None:
            raise TransitionRefusedError(f"{event} refused: {state.service} has no experiment in progress")
        after = state.after(row, percent=percent, experiment_id=experiment_id, now=now, by=by)
        phases = {f":p{i}": phase.value for i, phase in enumerate(sorted(row.service_from))}
        condition = f"version = :v AND phase IN ({', '.join(phases)})"
        values: dict[str, Any] = {":v": state.version} | phases
        if row.needs_experiment and event is not Event.START:
            condition += " AND experiment_id = :e"
            values[":e"] = experiment_id
        requests: list[dict[str, Any]] = [
            self._put(_state_item(after), condition=condition, ExpressionAttributeValues=_item(values))
        ]
        if event is Event.START:
            assert new_experiment is not None, "start creates the experiment"
            requests.append(self._put(new_experiment, condition="attribute_not_exists(pk)"))
        elif row.needs_experiment and experiment_id is not None:
            to = final_status or row.experiment_to
            assert to is not None
            requests.append(
                self._status_update(
                    experiment_id, row.experiment_from, to, experiment_sets or {}, experiment_removes
                )
            )
        if note is not None:
            requests.append(self._put(note, condition="attribute_not_exists(pk)"))
        if rollback is not None:
            requests.extend(
                self._put(item, condition="attribute_not_exists(pk)")
                for item in self._rollback_items(rollback)
            )
        codes = self._transact(requests)
        if codes is not None:
            raise TransitionRefusedError(self._refusal(event, state, experiment_id, codes))
        return after

    def _status_update(
        self,
        experiment_id: str,
        allowed: frozenset[ExperimentStatus],
        to: ExperimentStatus,
        sets: Mapping[str, Any],
        removes: Sequence[str] = (),
    ) -> dict[str, Any]:
        concludes = to.is_over
        statuses = {f":s{i}": status.value for i, status in enumerate(sorted(allowed))}
        extra = {"concluded_pk": "CONCLUDED", "concluded_at": sets.get("concluded_at")} if concludes else {}
        return self._update(
            {"pk": f"EXP#{experiment_id}", "sk": "META"},
            {"status": to.value, **sets, **extra},
            removes=(*removes, "running_pk") if concludes else tuple(removes),
            condition=f"#status IN ({', '.join(statuses)})",
            values=statuses,
            names={"#status": "status"},
        )

    def _refusal(
        self, event: Event, token: ServiceState, experiment_id: str | None, codes: Sequence[str]
    ) -> str:
        """One line: what the refused transition expected and what the registry holds."""
        row = TRANSITIONS[event]
        parts = [f"{event} refused"]
        if codes and codes[0] == "ConditionalCheckFailed":
            current = self.service_state(token.service)
            if current is None:
                parts.append(f"{token.service} has no traffic state yet")
            elif current.version != token.version:
                parts.append(
                    f"{token.service} moved on (version {current.version}, {current.last_event} by "
                    f"{current.updated_by or 'unknown'}; this call held version {token.version})"
                )
            else:
                allowed = "/".join(sorted(p.value for p in row.service_from))
                parts.append(f"{token.service} is {current.phase} (needs {allowed})")
        if experiment_id is not None and len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            try:
                status = self.get_experiment_status(experiment_id)
            except ExperimentNotFoundError:
                parts.append(f"no experiment {experiment_id!r}")
            else:
                allowed = "/".join(sorted(s.value for s in row.experiment_from)) or "none"
                if event is Event.START:
                    parts.append(f"experiment {experiment_id} exists already ({status})")
                else:
                    parts.append(f"experiment {experiment_id} is {status} (needs {allowed})")
        return f"{parts[0]}: " + "; ".join(parts[1:] or ["a condition did not hold"])


def _state_item(state: ServiceState) -> dict[str, Any]:
    return _state_key(state.service) | {
        "kind": "service_state",
        "schema_version": state.schema_version,
        "service": state.service,
        "version": state.version,
        "phase": state.phase.value,
        "live": state.live,
        "idle": state.idle,
        "forward": json.dumps(state.forward, sort_keys=True),
        "experiment_id": state.experiment_id,
        "updated_at": to_iso(state.updated_at),
        "updated_by": state.updated_by,
        "last_event": state.last_event,
    }


__all__ = ["Phase", "ServiceMixin"]
