"""The report's content (checklist, slices, stages, banner), its templates and its charts, from a hand-made
registry record: every expected value is derived here from the findings' numbers, not read off the code."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from canarywise.data.models import (
    CheckRecord,
    Experiment,
    ExperimentStatus,
    RollbackRecord,
    StageStart,
    Weights,
)
from canarywise.report import ReportData, build_view, render_report, summary_lines
from canarywise.report.svg import step_chart
from canarywise.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SPEC = load_spec(ROOT / "config" / "mangaassist.yaml")


def finding(metric: str, method: str, verdict: str, **values: Any) -> dict[str, Any]:
    base = {
        "metric": metric,
        "slice": None,
        "method": method,
        "estimate": None,
        "ci_low": None,
        "ci_high": None,
        "pvalue": None,
        "n_control": 9500,
        "n_canary": 500,
        "threshold": None,
        "verdict": verdict,
        "alpha": 0.05,
        "adjusted_pvalue": None,
    }
    return base | values


LAST_FINDINGS = [
    finding(
        "escalation_rate",
        "harm: mSPRT",
        "no_harm_proven",
        estimate=0.0003,
        ci_low=-0.0030,
        pvalue=1.0,
        threshold=0.0,
    ),
    finding(
        "escalation_rate",
        "harm: mSPRT",
        "harm",
        slice="returns",
        estimate=0.031,
        ci_low=0.002,
        pvalue=0.01,
        threshold=0.0,
    ),
    finding(
        "escalation_rate",
        "harm: mSPRT",
        "no_harm_proven",
        slice="other",
        estimate=-0.001,
        ci_low=-0.009,
        pvalue=1.0,
        threshold=0.0,
    ),
    finding(
        "escalation_rate",
        "non-inferiority: mSPRT",
        "non_inferior",
        estimate=0.0003,
        ci_high=0.0030,
        pvalue=1e-9,
        threshold=0.01,
    ),
    finding(
        "error_rate",
        "hard limit: exact binomial",
        "within_hard_limit",
        estimate=0.0011,
        pvalue=1.0,
        threshold=0.02,
    ),
    finding("(sample ratio)", "SRM anytime-valid", "srm_ok", estimate=0.0002, pvalue=0.41, threshold=0.001),
    finding(
        "csat", "difference: mSPRT", "reported", estimate=0.03, ci_low=0.014, ci_high=0.045, pvalue=0.002
    ),
]


def check(
    hours: float, stage: int, decision: str, reason: str, findings: list[dict[str, Any]]
) -> CheckRecord:
    return CheckRecord(
        checked_at=T0 + timedelta(hours=hours),
        stage_index=stage,
        decision=decision,
        reason=reason,
        details={"findings": findings},
    )


def early(estimate: float, low: float, high: float) -> list[dict[str, Any]]:
    return [
        finding(
            "escalation_rate", "harm: mSPRT", "no_harm_proven", estimate=estimate, ci_low=low, threshold=0.0
        ),
        finding(
            "escalation_rate",
            "non-inferiority: mSPRT",
            "not_yet_non_inferior",
            estimate=estimate,
            ci_high=high,
            threshold=0.01,
        ),
    ]


def report_data(status: ExperimentStatus = ExperimentStatus.READY_FOR_APPROVAL, **changes: Any) -> ReportData:
    experiment = Experiment(
        experiment_id="mangaassist-v42-0123456789",
        service="mangaassist",
        candidate="v42",
        release_id="r42",
        execution_arn=None,
        status=status,
        spec=SPEC,
        created_at=T0,
        baseline_slot="blue",
        candidate_slot="green",
    )
    stages = tuple(
        StageStart(
            stage_index=i, started_at=T0 + timedelta(hours=h), weights=Weights(control=100 - w, canary=w)
        )
        for i, (h, w) in enumerate([(0, 5), (4, 25), (28, 50)])
    )
    checks = (
        check(1, 0, "HOLD", "not enough data: 400 < 1000 per arm", early(0.01, -0.05, 0.07)),
        check(2, 0, "HOLD", "not enough data: 900 < 1000 per arm", early(0.004, -0.02, 0.03)),
        check(3, 0, "CONTINUE", "gathering evidence", early(0.002, -0.01, 0.015)),
        check(76, 2, "READY_FOR_APPROVAL", "stage 3 of 3: gate met", LAST_FINDINGS),
    )
    return replace(ReportData(experiment=experiment, stages=stages, checks=checks, rollback=None), **changes)


def test_the_checklist_states_each_gate_s_bound_against_its_threshold() -> None:
    view = build_view(report_data())

    rows = {(r.name, r.test): r for r in view.checklist}
    # 0.0030 and 0.01 in percentage points: +0.30 and +1.00; -0.0030 → -0.30.
    assert (
        rows["escalation_rate", "non-inferiority"].bound,
        rows["escalation_rate", "non-inferiority"].threshold,
    ) == ("upper +0.30 pt", "margin +1.00 pt")
    assert rows["escalation_rate", "harm"].bound == "lower -0.30 pt"
    assert rows["error_rate", "hard limit"].bound == "observed 0.11%"
    assert rows["error_rate", "hard limit"].threshold == "hard limit 2.00%"
    assert rows["sample ratio", "SRM"].bound == "p 0.41"
    assert {r.mark for r in view.checklist} == {"✓"}
    assert next(iter(rows)) == ("sample ratio", "SRM")  # trust the data first
    assert [r.metric for r in view.reported] == ["csat"]  # secondary: shown apart, decides nothing
    # The critical slice whose lower bound is above 0 moved; "other" did not.
    assert [(r.name, r.critical, r.status) for r in view.moved_slices] == [
        ("escalation_rate [returns]", True, "fail")
    ]
    assert [r.name for r in view.slices] == ["escalation_rate [returns]", "escalation_rate [other]"]


def test_stages_banner_and_events_come_from_the_registry() -> None:
    view = build_view(report_data())

    assert (view.banner.verdict, view.banner.tone) == ("READY FOR APPROVAL", "ok")
    # Stage starts at 0, 4 and 28 h, the last check at 76 h; minimums 4 h, 24 h, 48 h in the spec.
    assert [(s.canary, s.lasted_hours, s.minimum_hours, s.checks) for s in view.stages] == [
        (5, 4.0, 4.0, 3),
        (25, 24.0, 24.0, 0),
        (50, 48.0, 48.0, 1),
    ]
    # One HOLD event for the run of two holds with the same kind of reason.
    holds = [text for _, text in view.events if text.startswith("HOLD")]
    assert holds == ["HOLD: not enough data: 400 < 1000 per arm"]
    rolled = build_view(
        report_data(
            ExperimentStatus.ROLLED_BACK,
            rollback=RollbackRecord(
                service="mangaassist",
                rolled_back_at=T0 + timedelta(hours=2),
                source="aws.cloudwatch",
                reason="error_rate hard limit",
            ),
        )
    )
    assert (rolled.banner.verdict, rolled.banner.tone) == ("ROLLED BACK", "bad")
    assert "by aws.cloudwatch after 2.0 hours: error_rate hard limit" in rolled.banner.why


def test_the_approval_summary_carries_the_numbers_and_the_link() -> None:
    lines = summary_lines(build_view(report_data()), "https://example.test/report.html")

    text = "\n".join(lines)
    assert "✓ escalation_rate non-inferiority: upper +0.30 pt vs margin +1.00 pt (non inferior)" in text
    assert "Sample ratio: p 0.41" in text
    assert "Stages: 5% 4.0 h (3 checks, CONTINUE) → 25% 24.0 h (0 checks, —) → 50% 48.0 h" in text
    assert "Slices that moved: escalation_rate [returns] +3.10 pt (harm)" in text
    assert lines[-1] == "Report: https://example.test/report.html"
    assert "p99_latency" not in text  # never harm-tested, so never claimed


def test_the_html_is_one_escaped_self_contained_file_and_only_a_demo_says_simulated() -> None:
    data = report_data()
    hostile = data.checks[-1].model_copy(update={"reason": "gate met <script>alert(1)</script> | piped"})
    data = replace(data, checks=(*data.checks[:-1], hostile))

    real = render_report(data)
    demo = render_report(
        data,
        result=SimpleNamespace(
            events=[(0.0, "started")],
            stand_ins={},
            outcome="X",
            expected="X",
            wall_seconds=1.0,
            simulated_hours=76.0,
        ),
    )

    for section in ("verdict", "checklist", "metrics", "slices", "srm", "timeline", "events"):
        assert f'<section id="{section}"' in real.html
    assert "<script>" not in real.html
    assert "&lt;script&gt;" in real.html
    assert not re.search(r"\b(src|href)=", real.html)  # nothing to fetch: one self-contained file
    assert "<svg" in real.html
    assert "simulated" not in real.html.lower()
    assert "simulated" not in real.markdown.lower()
    assert "simulated hours" in demo.html
    assert "Simulated" in demo.markdown
    assert "gate met <script>alert(1)</script> \\| piped" in real.markdown  # a pipe would split the cell


def test_step_chart_maps_values_onto_the_plot_area() -> None:
    """Two checks at 0 h and 1 h held for 1 h: x spans 0..2 h * 1.02; y spans the values padded by 10%."""
    chart = step_chart(
        [(0.0, 0.0, -1.0, 1.0), (1.0, 1.0, 0.0, 2.0)],
        hold=1.0,
        hlines=[(0.0, "0", "zero")],
        vlines=[(1.0, "25%")],
        marker=None,
        x_label="h",
        y_label="pt",
        width=264,
        height=154,
    )
    left, top, right, bottom = chart.plot
    assert (left, top, right, bottom) == (64, 14, 248, 114)
    # y: with fewer than five checks every band counts (only the first fifth is left out of the scale), so
    # the values span -1..2, padded by 10% of 3 → -1.3..2.3 over the 100 units from y=114 up to y=14.
    # x = 1 h → 64 + 184 * 1 / 2.04 = 154.2; the estimate 0 → 114 - 100 * 1.3 / 3.6 = 77.9, 1 → 50.1.
    assert chart.vlines == [(154.2, "25%")]
    assert chart.line.startswith("M64.0,77.9 L154.2,77.9 L154.2,50.1")
    assert chart.hlines == [(77.9, "0", "zero")]


def test_the_report_is_written_from_the_registry_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from canarywise.report import render as render_module

    monkeypatch.setattr(
        render_module.ReportData, "read", classmethod(lambda cls, registry, eid: report_data())
    )
    folder = render_module.write_report(object(), "x", tmp_path / "x", plot=False)  # type: ignore[arg-type]
    assert (folder / "report.html").read_text().startswith("<!doctype html>")
    assert "## Gate checklist" in (folder / "report.md").read_text()


def test_the_guardrail_panel_draws_the_alarm_s_statistic_against_its_threshold() -> None:
    """The candidate slot's 5xx alarm compares a z-statistic with 3.09: drawn as it is, not as a rate x100."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from canarywise.report.plot import _second_panel

    alarm = "canarywise-mangaassist-error_rate-hard-limit-green"
    data = report_data(
        ExperimentStatus.ROLLED_BACK,
        rollback=RollbackRecord(service="mangaassist", rolled_back_at=T0 + timedelta(hours=76),
                                source="aws.cloudwatch", reason="alarm"),
    )  # fmt: skip
    result: Any = SimpleNamespace(
        alarm_values={alarm: [(75.9, 1.2), (76.0, 4.4)], alarm.replace("green", "blue"): [(75.9, 9.9)]},
        alarm_thresholds={alarm: 3.09},
    )
    draw = _second_panel(data, "error_rate", result)
    fig, ax = plt.subplots()
    draw(ax)
    series, threshold = ax.get_lines()[0], ax.get_lines()[1]
    assert list(series.get_ydata()) == [1.2, 4.4]  # the green slot's (the candidate's) values, unscaled
    assert list(threshold.get_ydata()) == [3.09, 3.09]
    assert ax.get_ylabel() == "5xx excess over\nthe limit (z)"
    plt.close(fig)
