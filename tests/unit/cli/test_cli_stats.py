"""The statistics commands of the CLI (`canarywise test …`, `canarywise plan`), end to end through
``canarywise.cli.main.main``: JSON agrees with statsmodels/scipy to a relative 1e-6, a bad argument
exits 2 with one line naming it and showing the value, and the installed console script runs.

References: ``statsmodels.stats.proportion.proportions_ztest`` and ``confint_proportions_2indep``,
``scipy.stats.ttest_ind_from_stats(equal_var=False)``, ``scipy.stats.chisquare``,
``scipy.stats.fisher_exact``, ``statsmodels.stats.multitest.multipletests``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from canarywise.cli.main import main

RTOL = 1e-6  # the agreement the issue asks of the CLI


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of one CLI call (argparse errors exit via SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run([*argv, "--json"], capsys)
    assert (code, err) == (0, "")
    payload: dict[str, Any] = json.loads(out)
    return payload


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((59400, 495000), (700, 5000)), ((4200, 50000), (4700, 50000)), ((49000, 50000), (48600, 50000))],
)
@pytest.mark.parametrize(
    ("alternative", "sm_alternative"), [("two-sided", "two-sided"), ("greater", "larger")]
)
def test_proportions_json_matches_statsmodels(
    control: tuple[int, int],
    treatment: tuple[int, int],
    alternative: str,
    sm_alternative: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """statsmodels: ``proportions_ztest([x_t, x_c], [n_t, n_c], alternative)`` and
    ``confint_proportions_2indep(x_t, n_t, x_c, n_c, method='newcomb')``."""
    (x_c, n_c), (x_t, n_t) = control, treatment
    argv = ["test", "proportions", "--control", f"{x_c}/{n_c}", "--treatment", f"{x_t}/{n_t}"]
    payload = run_json([*argv, "--alternative", alternative], capsys)
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c], alternative=sm_alternative)
    assert_allclose([payload["statistic"], payload["pvalue"]], [z, p], rtol=RTOL)
    assert_allclose(payload["diff"], x_t / n_t - x_c / n_c, rtol=RTOL)
    if alternative == "two-sided":
        low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb")
        assert_allclose([payload["ci_low"], payload["ci_high"]], [low, high], rtol=RTOL)


def test_escalation_example_z_is_4_33(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(
        ["test", "proportions", "--control", "59400/495000", "--treatment", "700/5000"], capsys
    )
    assert round(payload["statistic"], 2) == 4.33


@pytest.mark.parametrize("alternative", ["two-sided", "less"])
def test_means_json_matches_scipy(alternative: str, capsys: pytest.CaptureFixture[str]) -> None:
    """scipy: ``ttest_ind_from_stats(219.9, 97.1, 1150, 212.4, 85.3, 1200, equal_var=False, alternative)``;
    df by the Welch-Satterthwaite formula by hand."""
    argv = ["test", "means", "--control", "1200,212.4,85.3", "--treatment", "1150,219.9,97.1"]
    payload = run_json([*argv, "--alternative", alternative], capsys)
    expected = stats.ttest_ind_from_stats(
        219.9, 97.1, 1150, 212.4, 85.3, 1200, equal_var=False, alternative=alternative
    )
    a, b = 85.3**2 / 1200, 97.1**2 / 1150
    df = (a + b) ** 2 / (a * a / 1199 + b * b / 1149)
    assert_allclose(
        [payload["statistic"], payload["pvalue"], payload["df"]],
        [expected.statistic, expected.pvalue, df],
        rtol=RTOL,
    )
    assert_allclose(payload["diff"], 7.5, rtol=RTOL)


def test_srm_json_matches_scipy(capsys: pytest.CaptureFixture[str]) -> None:
    """scipy: ``chisquare([94700, 5300], f_exp=[95000, 5000])``."""
    payload = run_json(["test", "srm", "--observed", "94700,5300", "--weights", "95,5"], capsys)
    expected = stats.chisquare([94700, 5300], f_exp=[95000, 5000])
    assert_allclose(
        [payload["statistic"], payload["pvalue"]], [expected.statistic, expected.pvalue], rtol=RTOL
    )
    assert payload["df"] == 1
    assert payload["mismatch"] is True


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_fisher_json_matches_scipy(alternative: str, capsys: pytest.CaptureFixture[str]) -> None:
    """scipy: ``fisher_exact([[11, 989], [3, 997]], alternative)`` (treatment row first)."""
    argv = ["test", "fisher", "--control", "3/1000", "--treatment", "11/1000", "--alternative", alternative]
    payload = run_json(argv, capsys)
    expected = stats.fisher_exact([[11, 989], [3, 997]], alternative=alternative)
    assert_allclose(
        [payload["statistic"], payload["pvalue"]], [expected.statistic, expected.pvalue], rtol=RTOL
    )


@pytest.mark.parametrize(
    ("method", "sm_method"),
    [("bh", "fdr_bh"), ("by", "fdr_by"), ("holm", "holm"), ("bonferroni", "bonferroni")],
)
def test_fdr_json_matches_statsmodels(
    method: str, sm_method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """statsmodels: ``multipletests([0.041, 0.001, 0.216], alpha=0.05, method=sm_method)``."""
    payload = run_json(["test", "fdr", "--pvalues", "0.041,0.001,0.216", "--method", method], capsys)
    reject, corrected, _, _ = multipletests([0.041, 0.001, 0.216], alpha=0.05, method=sm_method)
    assert_allclose(payload["adjusted"], corrected, rtol=RTOL)
    assert payload["rejected"] == list(reject)


def assert_usage_error(argv: list[str], name: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit code 2, nothing on stdout, one line on stderr naming the flag and showing the value."""
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert name in err
    assert value in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "names", "value"),
    [
        (
            ["test", "proportions", "--control", "59400-495000", "--treatment", "700/5000"],
            "--control",
            "59400-495000",
        ),
        (
            ["test", "proportions", "--control", "59400/495000", "--treatment", "7000/5000"],
            "--treatment",
            "7000/5000",
        ),
        (
            ["test", "proportions", "--control", "1/10", "--treatment", "1/10", "--alpha", "1.5"],
            "--alpha",
            "1.5",
        ),
        (
            ["test", "proportions", "--control", "1/10", "--treatment", "1/10", "--margin", "2"],
            "--margin",
            "2",
        ),
        (
            ["test", "proportions", "--control", "1/10", "--treatment", "1/10", "--alternative", "larger"],
            "--alternative",
            "larger",
        ),
        (
            ["test", "means", "--control", "1200,212.4", "--treatment", "1150,219.9,97.1"],
            "--control",
            "1200,212.4",
        ),
        (
            ["test", "means", "--control", "1200,212.4,85.3", "--treatment", "1150,x,97.1"],
            "--treatment",
            "1150,x,97.1",
        ),
        (["test", "srm", "--observed", "94700,5300", "--weights", "95,4,1"], "--weights", "95,4,1"),
        (["test", "srm", "--observed", "94700.5,5300", "--weights", "95,5"], "--observed", "94700.5,5300"),
        (["test", "srm", "--observed", "94700,5300", "--weights", "95,0"], "--weights", "95,0"),
        (["test", "fisher", "--control", "3/0", "--treatment", "11/1000"], "--control", "3/0"),
        (["test", "fdr", "--pvalues", "0.041,1.2"], "--pvalues", "0.041,1.2"),
        (["test", "fdr", "--pvalues", "0.041", "--method", "fdr_bh"], "--method", "fdr_bh"),
    ],
)
def test_bad_argument_exits_2_with_one_line(
    argv: list[str], names: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_usage_error(argv, names, value, capsys)


def test_human_output_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["test", "proportions", "--control", "59400/495000", "--treatment", "700/5000"], capsys
    )
    assert code == 0
    assert "Newcombe" in out
    assert "4.32701" in out  # z, as hand-derived in tests/unit/stats/test_proportions.py
    assert "1.511e-05" in out  # the p-value keeps its exponent


def test_installed_console_script_runs() -> None:
    """The `canarywise` entry point installed in the virtualenv (not just the function)."""
    script = Path(sys.executable).parent / "canarywise"
    completed = subprocess.run(
        [str(script), "test", "fdr", "--pvalues", "0.041,0.001,0.216", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    reject, corrected, _, _ = multipletests([0.041, 0.001, 0.216], alpha=0.05, method="fdr_bh")
    payload = json.loads(completed.stdout)
    assert_allclose(payload["adjusted"], corrected, rtol=RTOL)
    assert payload["rejected"] == list(reject)


def test_plan_json_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    """By hand (Fleiss, exact quantiles ``scipy.stats.norm.ppf``): 0.78 -> 0.80 needs 6,509.47 -> 6,510 per
    arm; at 300,000/day a 5% canary gets 625/hour, so 6,510/625 h; 25%: 6,510/3,125 h; 50%: 6,510/6,250 h."""
    argv = ["plan", "--baseline", "0.78", "--mde", "0.02", "--daily-traffic", "300000", "--stages", "5,25,50"]
    payload = run_json(argv, capsys)
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    n = (z_a * (2 * 0.79 * 0.21) ** 0.5 + z_b * (0.78 * 0.22 + 0.80 * 0.20) ** 0.5) ** 2 / 0.02**2
    assert payload["n_per_arm"] == 6510
    assert_allclose(payload["n_exact"], n, rtol=RTOL)
    assert_allclose(payload["stage_hours"], [6510 / 625, 6510 / 3125, 6510 / 6250], rtol=RTOL)


def test_plan_relative_mde(capsys: pytest.CaptureFixture[str]) -> None:
    """--relative: 0.78 * 1.05 = 0.819; n from the same hand formula."""
    payload = run_json(
        ["plan", "--baseline", "0.78", "--mde", "0.05", "--relative", "--power", "0.9"], capsys
    )
    p2 = 0.78 * 1.05
    pbar = (0.78 + p2) / 2
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.9)
    n = (z_a * (2 * pbar * (1 - pbar)) ** 0.5 + z_b * (0.78 * 0.22 + p2 * (1 - p2)) ** 0.5) ** 2 / (
        p2 - 0.78
    ) ** 2
    assert_allclose([payload["n_exact"], payload["p_treatment"]], [n, p2], rtol=RTOL)
    assert "stage_hours" not in payload


def test_plan_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--baseline", "0.78", "--mde", "0.02", "--daily-traffic", "300000", "--stages", "5,25,50"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "6,510" in out
    assert "10.416" in out  # hours of the 5% stage: 6,510 / 625


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["plan", "--baseline", "78", "--mde", "0.02"], "--baseline", "78"),
        (["plan", "--baseline", "0.78", "--mde", "0"], "--mde", "0"),
        (["plan", "--baseline", "0.78", "--mde", "0.3"], "--mde", "0.3"),
        (["plan", "--baseline", "0.78", "--mde", "0.02", "--power", "80"], "--power", "80"),
        (["plan", "--baseline", "0.78", "--mde", "0.02", "--daily-traffic", "300000"], "--stages", "300000"),
        (["plan", "--baseline", "0.78", "--mde", "0.02", "--stages", "5,25"], "--daily-traffic", "5,25"),
        (
            ["plan", "--baseline", "0.78", "--mde", "0.02", "--daily-traffic", "1e5", "--stages", "5,25,100"],
            "--stages",
            "5,25,100",
        ),
        (
            ["plan", "--baseline", "0.78", "--mde", "0.02", "--daily-traffic", "-3", "--stages", "5"],
            "--daily-traffic",
            "-3",
        ),
    ],
)
def test_plan_bad_argument_exits_2_with_one_line(
    argv: list[str], name: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_usage_error(argv, name, value, capsys)
