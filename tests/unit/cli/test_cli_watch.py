"""``status --exit-code`` codes for every phase (cli/watch.py's table) and the ``--watch`` panel in a
terminal: the demo's metric rows for the latest check of a real rollout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from canarywise.cli.deployment import Snapshot
from canarywise.cli.watch import panel, status_code
from canarywise.data.models import CheckRecord, Experiment, ExperimentStatus
from canarywise.decision.models import MetricFinding, Verdict
from canarywise.lifecycle.state import ServiceState
from canarywise.lifecycle.table import Phase
from canarywise.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _snapshot(phase: Phase, forward: dict[str, int], rule: dict[str, int], last_event: str = "") -> Snapshot:
    state = ServiceState(
        service="mangaassist", version=3, phase=phase, live="blue", idle="green", forward=forward,
        experiment_id="e1", updated_at=NOW, last_event=last_event,
    )  # fmt: skip
    registry: Any = None
    return Snapshot(registry, state, rule)


@pytest.mark.parametrize(
    ("phase", "forward", "rule", "last_event", "code"),
    [
        (Phase.STEADY, {"blue": 100}, {"blue": 100}, "promote", 0),
        (Phase.ROLLING_OUT, {"blue": 95, "green": 5}, {"blue": 95, "green": 5}, "stage_started", 10),
        (Phase.PAUSED, {"blue": 75, "green": 25}, {"blue": 75, "green": 25}, "pause", 10),
        (Phase.PROMOTING, {"green": 100}, {"green": 100}, "approve", 10),
        (Phase.AWAITING_APPROVAL, {"blue": 50, "green": 50}, {"blue": 50, "green": 50}, "ready", 11),
        (Phase.ROLLING_BACK, {"blue": 100}, {"blue": 100}, "roll_back", 12),
        (Phase.STEADY, {"blue": 100}, {"blue": 100, "green": 0}, "rolled_back", 12),  # weight 0 = absent
        (Phase.ROLLING_OUT, {"blue": 95, "green": 5}, {"blue": 50, "green": 50}, "stage_started", 13),
    ],
)
def test_exit_code_of_each_phase(
    phase: Phase, forward: dict[str, int], rule: dict[str, int], last_event: str, code: int
) -> None:
    assert status_code(_snapshot(phase, forward, rule, last_event)) == code


def test_no_state_yet_is_steady() -> None:
    registry: Any = None
    assert status_code(Snapshot(registry, None, {"blue": 100})) == 0


def test_the_watch_panel_shows_the_latest_checks_metrics() -> None:
    spec = load_spec(ROOT / "config" / "mangaassist.yaml")
    harm = MetricFinding(
        metric="escalation_rate", slice=None, method="mSPRT", estimate=0.02, ci_low=0.00233, ci_high=None,
        pvalue=0.0009, n_control=495000, n_canary=5000, threshold=0.0, verdict=Verdict.HARM, alpha=0.005,
    )  # fmt: skip
    check = CheckRecord(
        checked_at=NOW, stage_index=0, decision="ROLLBACK", reason="escalation_rate is worse on the canary",
        harm=True, details={"findings": [harm.to_dict()]},
    )  # fmt: skip
    experiment = Experiment(
        experiment_id="mangaassist-v42-0123456789", service="mangaassist", candidate="v42", release_id="r42",
        execution_arn=None, status=ExperimentStatus.RUNNING, spec=spec, created_at=NOW, latest_check=check,
    )  # fmt: skip
    console = Console(record=True, width=160)
    console.print(panel("mangaassist", _snapshot(Phase.ROLLING_OUT, {"blue": 95, "green": 5},
                                                 {"blue": 95, "green": 5}), experiment))  # fmt: skip
    text = console.export_text()
    assert "canarywise status --watch: mangaassist" in text
    assert "mangaassist-v42-0123456789 (RUNNING), candidate v42, stage 1/3" in text
    row = next(line for line in text.splitlines() if "escalation_rate" in line)
    for cell in ("495,000", "5,000", "+2.00 pt", "harm"):
        assert cell in row
    assert "ROLLBACK at 12:00 UTC: escalation_rate is worse on the canary" in text
