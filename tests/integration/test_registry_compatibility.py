"""Items written by other versions of canarywise, kept as files: this version must read them (fault table,
row 5). A change that breaks reading one of them fails here.

- ``schema-1.json``: an experiment as written before blue/green roles (no ``schema_version``, no slots), and
  the service items that version kept (``LAST_ROLLBACK``, a ``TRIGGER#`` item), which this one ignores.
- ``schema-2.json``: today's items: a rolled-back experiment with its stage, check, rollback record and
  history, a running one, and the service's traffic state.
- ``schema-3.json``: a newer writer's experiment: an unknown spec key and section, an unknown attribute,
  an optional attribute missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_kit import TABLE

from canarywise.data.models import ExperimentStatus, Weights
from canarywise.data.registry import Registry
from canarywise.lifecycle.table import Phase

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"


def _load(*names: str) -> None:
    client = boto3.client("dynamodb")
    for name in names:
        items: list[dict[str, Any]] = json.loads((FIXTURES / name).read_text())
        for item in items:
            client.put_item(TableName=TABLE, Item=item)


def test_an_experiment_from_before_blue_green_roles_compares_control_with_canary(registry_table: str) -> None:
    _load("schema-1.json")
    experiment = Registry(TABLE).get_experiment("mangaassist-v40-0000000001")
    assert (experiment.status, experiment.candidate) == (ExperimentStatus.RUNNING, "v42")
    assert (experiment.baseline_slot, experiment.candidate_slot) == ("control", "canary")
    assert Registry(TABLE).service_state("mangaassist") is None  # taken from the rule on first use


def test_todays_items_read_back(registry_table: str) -> None:
    _load("schema-2.json")
    registry = Registry(TABLE)
    rolled = registry.get_experiment("mangaassist-v41-7096f53812")
    assert rolled.status is ExperimentStatus.ROLLED_BACK
    assert [s.weights for s in registry.stage_history(rolled.experiment_id)] == [
        Weights(control=95, canary=5)
    ]
    assert [c.decision for c in registry.list_checks(rolled.experiment_id)] == ["HOLD"]
    record = registry.get_rollback(rolled.experiment_id)
    assert record is not None
    assert record.candidate == "v41"
    assert [r.experiment_id for r in registry.rollback_history("mangaassist")] == [rolled.experiment_id]
    state = registry.service_state("mangaassist")
    assert state is not None
    assert (state.phase, state.live, state.idle, state.forward) == (
        Phase.ROLLING_OUT,
        "control",
        "canary",
        {"control": 95, "canary": 5},
    )
    assert state.experiment_id == "mangaassist-v42-8ac2a8150d"
    assert [e.experiment_id for e in registry.list_running("mangaassist")] == [state.experiment_id]


def test_a_newer_writers_experiment_still_reads(registry_table: str) -> None:
    _load("schema-3.json")
    experiment = Registry(TABLE).get_experiment("mangaassist-v43-0000000003")
    assert experiment.status is ExperimentStatus.RUNNING
    assert experiment.first_stage_multiplier == 1.0  # missing: the default
    assert not hasattr(experiment.spec.statistics, "future_option")


@pytest.mark.parametrize("name", ["schema-1.json", "schema-2.json", "schema-3.json"])
def test_every_fixture_is_dynamodb_json(name: str) -> None:
    items = json.loads((FIXTURES / name).read_text())
    assert items
    assert all({"pk", "sk"} <= set(item) for item in items)
