"""End to end (issue 16, long tests): the storefront A/B spec with its own 14-day maximum (28 days after a
rollback) deploys to the local AWS as synth makes it (no stage override) and runs its real stage, a full day
at least, on the accelerated clock, then is approved and promoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from canarywise.data.models import ExperimentStatus
from canarywise.data.registry import Registry
from canarywise.demo.runner import run_scenario
from canarywise.demo.scenarios import SCENARIOS
from canarywise.local.deployment import Deployment
from canarywise.local.server import LocalAws
from canarywise.spec import load_spec

pytestmark = pytest.mark.slow


def test_the_fourteen_day_ab_spec_runs_its_own_stage_and_is_promoted(tmp_path: Path) -> None:
    scenario = SCENARIOS["ab-conversion"]
    assert scenario.ladder is None  # the spec file's stage as it is
    seen: dict[str, object] = {}

    def inspect(aws: LocalAws, deployment: Deployment, result: object) -> None:
        registry = Registry(deployment.registry_table, boto3_client=aws.client("dynamodb"))
        experiment_id = result.experiment_id
        seen["experiment"] = registry.get_experiment(experiment_id)
        seen["stages"] = registry.stage_history(experiment_id)
        seen["checks"] = registry.list_checks(experiment_id)

    result = run_scenario(scenario, seed=7, approve=True, reports_dir=None, after=inspect)

    spec = load_spec(scenario.spec_path)
    assert [(s.percent, s.min_duration, s.max_duration) for s in spec.stages] == [(50, 86_400, 14 * 86_400)]
    assert result.outcome == "PROMOTED", result.reason
    assert seen["experiment"].status is ExperimentStatus.PROMOTED  # type: ignore[attr-defined]
    # The decision came no sooner than the stage's own minimum, a full day.
    # An A/B test's deciding check says PROMOTE (the experiment then waits READY_FOR_APPROVAL).
    ready = [c for c in seen["checks"] if c.decision == "PROMOTE"]  # type: ignore[attr-defined]
    stage_start = seen["stages"][0].started_at  # type: ignore[index]
    assert ready
    assert (ready[0].checked_at - stage_start).total_seconds() >= 86_400
