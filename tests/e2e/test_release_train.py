"""``canarywise demo --scenario release-train``: three releases in a row on one local AWS.

Release 1 promoted, release 2 rolled back, release 3 promoted, with sticky returning users. The assertions
read the rule (ELBv2), the registry's items and CloudWatch directly after the train, not only the train's own
checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from local_kit import RuleForward, experiment_item, rollback_items, rule_forward, service_item

from canarywise.demo.release_train import TrainResult, run_release_train
from canarywise.local.deployment import Deployment
from canarywise.local.server import LocalAws

pytestmark = pytest.mark.slow


def _alb_requests(aws: LocalAws, deployment: Deployment, slot: str, start: datetime, end: datetime) -> float:
    points = aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="RequestCount",
        Dimensions=[
            {"Name": "LoadBalancer", "Value": deployment.load_balancer_full_name},
            {"Name": "TargetGroup", "Value": deployment.target_group_full_names[slot]},
        ],
        StartTime=start,
        EndTime=end,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(point["Sum"] for point in points))


def test_release_train_promotes_rolls_back_and_promotes_in_turns(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def inspect(aws: LocalAws, deployment: Deployment, result: TrainResult) -> None:
        seen["rule"] = rule_forward(aws, deployment)
        seen["state"] = service_item(aws, deployment)
        seen["experiments"] = [experiment_item(aws, deployment, r.experiment_id) for r in result.releases]
        second, third = seen["experiments"][1], seen["experiments"][2]
        seen["rollbacks"] = rollback_items(aws, deployment, second["experiment_id"])
        rolled_back_at = datetime.fromisoformat(second["rolled_back_at"]).astimezone(UTC)
        third_started = datetime.fromisoformat(third["created_at"]).astimezone(UTC)
        seen["gap"] = third_started - rolled_back_at
        seen["requests_after_rollback"] = _alb_requests(
            aws, deployment, second["candidate_slot"], rolled_back_at, third_started
        )
        seen["requests_before_rollback"] = _alb_requests(
            aws,
            deployment,
            second["candidate_slot"],
            datetime.fromisoformat(second["created_at"]),
            rolled_back_at,
        )

    result = run_release_train(seed=7, log_dir=tmp_path, after=inspect)

    assert result.ok, result.checks
    assert [e["status"] for e in seen["experiments"]] == ["PROMOTED", "ROLLED_BACK", "PROMOTED"]
    # The slots take turns: 1 into green (blue live), 2 into blue (green live), 3 into blue again.
    assert [(e["baseline_slot"], e["candidate_slot"]) for e in seen["experiments"]] == [
        ("blue", "green"),
        ("green", "blue"),
        ("green", "blue"),
    ]
    assert seen["rule"] == RuleForward({"blue": 100}, sticky=False)
    assert (seen["state"]["phase"], seen["state"]["live"], seen["state"]["idle"]) == (
        "STEADY",
        "blue",
        "green",
    )
    assert len(seen["rollbacks"]) == 2  # release 2's one ROLLBACK record and its history item
    # Release 2's slot served traffic, returning users among it, until the rollback, and nothing after it
    # until release 3 was deployed there (a whole cooldown of steady traffic later).
    assert seen["requests_before_rollback"] > 0
    assert result.releases[1].candidate_returning > 0
    assert seen["gap"].total_seconds() >= 15 * 60
    assert seen["requests_after_rollback"] == 0
    assert result.rolled_back_sessions == 0
