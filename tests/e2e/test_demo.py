"""End to end: whole rollouts on moto in server mode (127.0.0.1), the real state machine and handlers.

Each test runs a scenario of ``canarywise demo`` in-process: the stack's template is synthesized (cached in
build/local/), its resources created on a fresh local AWS, the canary state machine started and simulated
traffic played in five-minute ticks. Assertions read the registry and the ALB rule (``local_kit``), not the
runner's own summary alone. The demo ALB's slots are ``blue`` (live at first) and ``green``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser import dump_dom
from local_kit import AlertInbox, RuleForward, rollback_items, rule_forward, service_item

from canarywise.cli.main import main
from canarywise.data.models import ExperimentStatus
from canarywise.data.registry import Registry
from canarywise.demo.local_run import RunResult
from canarywise.demo.runner import run_scenario
from canarywise.demo.scenarios import SCENARIOS
from canarywise.local.deployment import Deployment
from canarywise.local.server import LocalAws

pytestmark = pytest.mark.slow

ROLLED_BACK_RULE = RuleForward(
    {"blue": 100}, sticky=False
)  # only the live slot named: nobody sticks to green


def _registry(aws: LocalAws, deployment: Deployment) -> Registry:
    return Registry(deployment.registry_table, boto3_client=aws.client("dynamodb"))


def test_regression_is_rolled_back_by_the_state_machine(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def inspect(aws: LocalAws, deployment: Deployment, result: RunResult) -> None:
        seen["rule"] = rule_forward(aws, deployment)
        seen["state"] = service_item(aws, deployment)
        registry = _registry(aws, deployment)
        assert result.experiment_id is not None
        seen["experiment"] = registry.get_experiment(result.experiment_id)
        seen["checks"] = registry.list_checks(result.experiment_id)
        seen["rollbacks"] = rollback_items(aws, deployment, result.experiment_id)
        execution = aws.client("stepfunctions").list_executions(
            stateMachineArn=deployment.canary_state_machine_arn
        )["executions"][0]
        seen["execution"] = execution["status"]

    result = run_scenario(SCENARIOS["regression"], seed=7, reports_dir=tmp_path, after=inspect)

    assert result.outcome == "ROLLED_BACK"
    assert seen["experiment"].status is ExperimentStatus.ROLLED_BACK
    assert (seen["experiment"].baseline_slot, seen["experiment"].candidate_slot) == ("blue", "green")
    assert seen["rule"] == ROLLED_BACK_RULE
    assert (seen["state"]["phase"], seen["state"]["live"]) == ("STEADY", "blue")
    assert len(seen["rollbacks"]) == 2  # the experiment's one ROLLBACK record and its history item
    assert seen["execution"] == "FAILED"  # the state machine's ROLLBACK branch ends in its Fail state
    assert result.rollback is not None
    assert result.rollback.source == "state_machine"
    last = seen["checks"][-1]
    assert last.decision == "ROLLBACK"
    assert last.harm
    harm = [
        f for f in last.details["findings"] if f["metric"] == "escalation_rate" and f["verdict"] == "harm"
    ]
    assert harm
    assert harm[0]["ci_low"] > 0  # the one-sided confidence sequence excludes "no worse"
    # The estimate is near the true +2 points (12% -> 14%) with an interval that covers it.
    assert 0.0 < harm[0]["estimate"] < 0.05
    # Decided at the 5% stage, within the first stage's 12-hour maximum.
    assert result.decision_hours is not None
    assert result.decision_hours < 12
    assert all(stage_check.stage_index == 0 for stage_check in seen["checks"])
    report = tmp_path / str(result.experiment_id)
    assert (report / "report.md").read_text().count("ROLLBACK") >= 1
    assert (report / "report.html").exists()
    assert (report / "effect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_healthy_candidate_advances_every_stage_and_is_promoted(tmp_path: Path, chromium: str) -> None:
    seen: dict[str, Any] = {}

    def subscribe(aws: LocalAws, deployment: Deployment) -> None:
        seen["inbox"] = AlertInbox(aws, deployment)

    def inspect(aws: LocalAws, deployment: Deployment, result: RunResult) -> None:
        seen["rule"] = rule_forward(aws, deployment)
        seen["state"] = service_item(aws, deployment)
        registry = _registry(aws, deployment)
        assert result.experiment_id is not None
        seen["experiment"] = registry.get_experiment(result.experiment_id)
        seen["stages"] = registry.stage_history(result.experiment_id)
        seen["checks"] = registry.list_checks(result.experiment_id)
        seen["alerts"] = seen["inbox"].messages()
        bucket, s3 = deployment.outputs["ReleaseBucketName"], aws.client("s3")
        seen["link"] = f"{aws.endpoint}/{bucket}/reports/{result.experiment_id}/report.html"
        for name, key in (
            ("report", f"reports/{result.experiment_id}/report.html"),
            ("latest", "reports/mangaassist/latest-approval/report.html"),
        ):
            seen[name] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    result = run_scenario(
        SCENARIOS["healthy"], seed=7, approve=True, reports_dir=tmp_path, before=subscribe, after=inspect
    )

    assert result.outcome == "PROMOTED"
    assert seen["experiment"].status is ExperimentStatus.PROMOTED
    # The candidate's slot is live now; the next release goes into the other one.
    assert seen["experiment"].candidate_slot == "green"
    assert seen["rule"] == RuleForward({"green": 100}, sticky=False)
    assert (seen["state"]["phase"], seen["state"]["live"], seen["state"]["idle"]) == (
        "STEADY",
        "green",
        "blue",
    )
    assert [s.weights.canary for s in seen["stages"]] == [5, 25, 50]
    # Every stage lasted at least its minimum (demo ladder: 1 h, 1 h, 2 h) before the next began.
    starts = [s.started_at for s in seen["stages"]]
    assert (starts[1] - starts[0]).total_seconds() >= 3600
    assert (starts[2] - starts[1]).total_seconds() >= 3600
    assert not any(c.decision == "ROLLBACK" for c in seen["checks"])
    assert result.rollback is None
    # Sticky returning users: the canary's share of sessions lags the ramps, its share of new assignments
    # follows the weights, and the sample-ratio check counts the latter, so nothing was held for SRM.
    assert not any(c.decision == "HOLD" for c in seen["checks"])
    last = seen["checks"][-1].details["findings"]
    srm = next(f for f in last if f["metric"] == "(sample ratio)")
    assert "counting new assignments per variant" in srm["method"]
    assert all(
        f["verdict"] == "srm_ok"
        for c in seen["checks"]
        for f in c.details["findings"]
        if f["metric"] == srm["metric"]
    )
    sessions = next(
        f for f in last if f["metric"] == "hallucination_rate" and f["verdict"] == "no_harm_proven"
    )
    assert sessions["n_canary"] / (sessions["n_canary"] + sessions["n_control"]) < 0.8 * (
        srm["n_canary"] / (srm["n_canary"] + srm["n_control"])
    )
    assert (tmp_path / str(result.experiment_id) / "effect.png").exists()
    _approval_request_carries_the_report_and_the_numbers(seen, tmp_path, chromium)


def _approval_request_carries_the_report_and_the_numbers(
    seen: dict[str, Any], tmp_path: Path, chromium: str
) -> None:
    """The ready step wrote the report to the stack's bucket and published its link and numbers (the local
    approval request: CodePipeline's approval notifies the same topic); Chromium renders the report."""
    ready = [a for a in seen["alerts"] if a["Subject"].endswith("ready for approval")]
    assert len(ready) == 1
    message = json.loads(ready[0]["Message"])
    assert message["report"] == seen["link"]
    assert f"Report: {seen['link']}" in message["summary"]
    assert seen["latest"] == seen["report"]
    # The numbers are the registry's: the last check's non-inferiority bound vs the spec's 1-point margin.
    last = seen["checks"][-1]
    assert last.decision == "READY_FOR_APPROVAL"
    bound = next(
        f["ci_high"]
        for f in last.details["findings"]
        if f["metric"] == "escalation_rate"
        and f["slice"] is None
        and f["method"].startswith("non-inferiority")
    )
    gate = next(
        g for g in message["gates"] if (g["metric"], g["test"]) == ("escalation_rate", "non-inferiority")
    )
    assert (gate["bound"], gate["threshold"], gate["passed"]) == (
        f"upper {bound * 100:+.2f} pt",
        "margin +1.00 pt",
        True,
    )
    assert [s["weights"] for s in message["stages"]] == ["95/5", "75/25", "50/50"]
    assert float(message["sample_ratio"]["pvalue"]) > 0.001
    assert message["slices_moved"] == []

    page = tmp_path / "approval-report.html"
    page.write_text(seen["report"])
    dom = dump_dom(chromium, page, tmp_path / "chromium-profile")

    def section(name: str) -> str:
        found = re.search(rf'<section id="{name}"[^>]*>(.*?)</section>', dom, re.S)
        assert found is not None, f"no {name} section in the rendered report"
        return found.group(1)

    assert "READY FOR APPROVAL" in section("verdict")
    checklist = section("checklist")
    assert gate["bound"] in checklist
    assert "margin +1.00 pt" in checklist
    assert "✗" not in checklist
    slices = section("slices")
    assert "escalation_rate [order_status] <small>(critical)</small>" in slices
    timeline = section("timeline")
    assert all(weights in timeline for weights in ("95 / 5", "75 / 25", "50 / 50"))
    assert dom.count("<svg") >= 2  # every decisive metric's confidence sequence, and the sample ratio
    assert "simulated" not in dom.lower()  # written by the Lambda from the registry: a real rollout's report
    # The demo's own report of the same rollout is the one that says so.
    assert "simulated hours" in (tmp_path / message["experiment_id"] / "report.html").read_text()


def test_operator_commands_against_the_local_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status, rollback and report, run as the CLI, against a rollout the SRM scenario holds."""
    held = dataclasses.replace(SCENARIOS["srm"], hold_hours=0.5)
    seen: dict[str, Any] = {}

    def operate(aws: LocalAws, deployment: Deployment, result: RunResult) -> None:
        capsys.readouterr()
        service = ["--service", deployment.service]
        seen["rule_before"] = rule_forward(aws, deployment)
        assert main(["status", "--json", *service]) == 0
        seen["status"] = json.loads(capsys.readouterr().out)
        assert main(["rollback", "--reason", "operator saw the SRM", "--yes", "--json", *service]) == 0
        seen["rollback"] = json.loads(capsys.readouterr().out)
        seen["rule"] = rule_forward(aws, deployment)
        assert result.experiment_id is not None
        seen["experiment"] = _registry(aws, deployment).get_experiment(result.experiment_id)
        seen["rollbacks"] = rollback_items(aws, deployment, result.experiment_id)
        seen["again_exit"] = main(["rollback", "--reason", "again", "--yes", "--json", *service])
        seen["again"] = json.loads(capsys.readouterr().out)
        seen["rule_after_again"] = rule_forward(aws, deployment)
        assert main(["report", result.experiment_id, "--out", str(tmp_path / "cli"), "--json", *service]) == 0
        seen["report"] = json.loads(capsys.readouterr().out)

    result = run_scenario(held, seed=7, reports_dir=tmp_path, after=operate)

    assert result.outcome == "HELD"
    assert seen["rule_before"] == RuleForward({"blue": 95, "green": 5}, sticky=True)
    status = seen["status"]
    assert status["rule_forward"] == seen["rule_before"].weights
    assert status["experiment"]["decision"] == "HOLD"
    assert status["experiment"]["reason"].startswith("sample ratio mismatch")
    assert seen["experiment"].status is ExperimentStatus.ROLLED_BACK
    assert seen["rule"] == ROLLED_BACK_RULE
    assert len(seen["rollbacks"]) == 2
    # Nothing running any more: a second rollback refuses and leaves the rule alone.
    assert seen["again_exit"] == 3  # nothing to do
    assert "nothing to roll back" in json.dumps(seen["again"]).lower()
    assert seen["rule_after_again"] == ROLLED_BACK_RULE
    assert Path(seen["report"]["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_guardrail_breach_rolls_back_through_the_critical_alarm(tmp_path: Path) -> None:
    """A 5xx spike: the hard-limit alarm, the composite critical alarm, its Lambda action; no p-value."""
    scenario = SCENARIOS["guardrail"]
    seen: dict[str, Any] = {}

    def inspect(aws: LocalAws, deployment: Deployment, result: RunResult) -> None:
        seen["rule"] = rule_forward(aws, deployment)
        alarms = aws.client("cloudwatch").describe_alarms(
            AlarmNames=[f"canarywise-{deployment.service}-error_rate-hard-limit-green"]  # the candidate's
        )
        seen["alarm"] = alarms["MetricAlarms"][0]["StateValue"]
        execution = aws.client("stepfunctions").list_executions(
            stateMachineArn=deployment.canary_state_machine_arn
        )["executions"][0]
        seen["execution"] = execution["status"]

    result = run_scenario(scenario, seed=7, reports_dir=tmp_path, after=inspect)

    assert result.outcome == "ROLLED_BACK"
    assert result.rollback is not None
    assert result.rollback.source == "aws.cloudwatch"
    assert "error_rate-hard-limit-green" in result.rollback.reason
    assert seen["alarm"] == "ALARM"
    assert seen["rule"] == ROLLED_BACK_RULE
    assert seen["execution"] == "ABORTED"  # the rollback function stopped the running canary execution
    # Within minutes of the spike's start (2 of 3 one-minute datapoints over the limit).
    assert result.decision_hours is not None
    assert scenario.onset_hours <= result.decision_hours <= scenario.onset_hours + 0.1
