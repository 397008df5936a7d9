"""``canarywise plan --spec``: the spec's own gates simulated at a traffic agree with ``make bench``'s
shipped-spec section (docs/benchmarks.md, 10,000 healthy and 2,000 harmful rollouts) within Monte Carlo error,
on a few seeded rollouts; a margin that cannot be proven is warned about; an undeployable ladder is refused;
the fixed-horizon plan warns about a ladder no pipeline waits for.

Slow-ish (~10 s of CPU): 300 healthy rollouts of a 156 h ladder and 100 per harm, so that the comparison with
the benchmark has a standard error small enough to mean something."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tests.unit.cli.conftest import RunCli

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "config" / "mangaassist.yaml"


def _bench_row(label: str) -> list[str]:
    """A row of the shipped-spec table in docs/benchmarks.md, its cells."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    section = text[text.index("## The shipped spec as a team would run it") :]
    line = next(row for row in section.splitlines() if row.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _number(cell: str) -> float:
    return float(re.sub(r"[^0-9.]", "", cell.split("±")[0]))


def test_plan_agrees_with_the_benchmark_of_the_shipped_spec(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        ["plan", "--spec", str(SPEC), "--daily-traffic", "300000", "--json",
         "--replicates", "300", "--harm-replicates", "100", "--seed", "5"]
    )  # fmt: skip
    assert (code, err) == (0, "")
    plan: dict[str, Any] = json.loads(out)
    healthy = _bench_row("A/A: every metric equal in both arms")
    ready, median, p90 = _number(healthy[2]) / 100, _number(healthy[8]), _number(healthy[9])
    # READY_FOR_APPROVAL: binomial standard error at 300 rollouts, four of them.
    assert abs(plan["ready"] - ready) <= 4 * math.sqrt(ready * (1 - ready) / 300)
    # Time to the end (the bench's median is over every rollout, 98.7% of them READY): a few hours.
    assert abs(plan["ready_median_hours"] - median) <= 3.0
    assert abs(plan["ready_p90_hours"] - p90) <= 6.0
    stage_one = _number(healthy[6].split("/")[0]) / 100  # INCONCLUSIVE in stage 1
    assert abs(plan["stages"][0]["inconclusive"] - stage_one) <= 4 * math.sqrt(
        stage_one * (1 - stage_one) / 300
    )
    # Per stage: the later stages advance at their minimum durations (24 h, 48 h), stage 1 in between.
    stages = plan["stages"]
    assert [s["percent"] for s in stages] == [5, 25, 50]
    assert 4.0 <= stages[0]["advance_median_hours"] <= 48.0
    assert stages[1]["advance_median_hours"] == 24.0
    assert stages[2]["advance_median_hours"] == 48.0
    # Harm at the MDE on escalation (12% -> 14%): the bench's median and 90th percentile time to roll back.
    harm = _bench_row("harm at the MDE: escalation 12% -> 14% (others equal)")
    escalation = next(h for h in plan["harms"] if h["metric"] == "escalation_rate")
    assert abs(escalation["candidate_rate"] - 0.14) < 1e-12
    assert escalation["rolled_back"] == 1.0
    assert abs(escalation["median_hours"] - _number(harm[8])) <= 1.0
    assert abs(escalation["p90_hours"] - _number(harm[9])) <= 2.5
    assert plan["warnings"] == []


def test_a_margin_that_cannot_be_proven_is_warned_about(run_cli: RunCli) -> None:
    """At 20,000 units a day, stage 1 (5% for at most 48 h) has ~2,000 canary units: escalation's 1-point
    margin needs more (its non-inferiority bound alone is wider than the margin)."""
    code, out, err = run_cli(
        [
            "plan",
            "--spec",
            str(SPEC),
            "--daily-traffic",
            "20000",
            "--replicates",
            "20",
            "--harm-replicates",
            "10",
        ]
    )
    assert (code, err) == (0, "")
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert any(
        "stage 1 (5% for at most 48 h): escalation_rate's margin 0.01 cannot be proven at 20,000 units/day"
        in w
        for w in warnings
    ), out


def test_an_undeployable_ladder_is_refused(tmp_path: Path, run_cli: RunCli) -> None:
    data = yaml.safe_load(SPEC.read_text())
    data["stages"][2]["max_duration"] = "1500h"  # 60 + 48 + 1500 h: past the approval's 1,368 h
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = run_cli(["plan", "--spec", str(path), "--daily-traffic", "300000"])
    assert (code, out) == (1, "")
    assert "the spec cannot be deployed, so it is not planned" in err
    assert "the ladder can run 1608 h after a rollback" in err


def test_a_metric_without_a_baseline_is_named(tmp_path: Path, run_cli: RunCli) -> None:
    data = yaml.safe_load(SPEC.read_text())
    del data["metrics"][1]["baseline"]  # error_rate
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = run_cli(["plan", "--spec", str(path), "--daily-traffic", "300000"])
    assert (code, out) == (2, "")  # a spec error is a bad argument
    assert "metric 'error_rate' needs a baseline rate in (0, 1)" in err
    assert "give it with --rate METRIC=RATE" in err
    assert len(err.splitlines()) == 1


def test_the_fixed_horizon_plan_warns_about_a_ladder_no_pipeline_waits_for(run_cli: RunCli) -> None:
    """0.78 -> 0.785 at 20,000 units a day: five times the 639 h of 100,000 a day, past the 1,368 h the
    approval can wait for a canary (60 days less 72 h to approve)."""
    argv = [
        "plan",
        "--baseline",
        "0.78",
        "--mde",
        "0.005",
        "--daily-traffic",
        "20000",
        "--stages",
        "5,25,50",
    ]
    code, out, _ = run_cli([*argv, "--json"])
    payload = json.loads(out)
    total = sum(payload["stage_hours"])
    assert code == 0
    assert total > 1368
    assert payload["warnings"] == [
        f"the ladder needs {total:,.0f} h at this traffic, more than the 1368 h CodePipeline's approval "
        "can wait for a canary: no deployable spec can run it (raise the traffic or the stage shares, or "
        "test a larger MDE); `canarywise plan --spec` simulates a spec's own sequential gates"
    ]
    code, out, _ = run_cli(argv)
    assert code == 0
    assert f"warning: the ladder needs {total:,.0f} h" in out


def test_what_the_simulation_does_not_model_is_one_line(tmp_path: Path, run_cli: RunCli) -> None:
    for change, message in (
        (lambda d: d.update(mode="ab"), "plan simulates canary ladders, and"),
        (lambda d: d["metrics"][3].update(direction="higher_is_better"),
         "metric 'slow_response_rate': the simulation models lower-is-better rates"),
    ):  # fmt: skip
        data = yaml.safe_load(SPEC.read_text())
        change(data)
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(data))
        code, out, err = run_cli(["plan", "--spec", str(path), "--daily-traffic", "300000"])
        assert (code, out) == (2, "")
        assert message in err
        assert len(err.splitlines()) == 1
