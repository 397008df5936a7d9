"""``canarywise test sequential`` reproduces the worked example of README.md / docs/decision-rule.md
(escalation 59,400/495,000 vs 700/5,000, harm test at alpha 0.005: Λ ≈ 1,109, always-valid p = 0.0009,
bound +0.23 pt), checked against an independent derivation with scipy from the formulas the README gives."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from scipy.special import lambertw
from scipy.stats import norm

if TYPE_CHECKING:
    from tests.unit.cli.conftest import RunCli

ROOT = Path(__file__).resolve().parents[3]
COUNTS = ["--control", "59400/495000", "--treatment", "700/5000"]


def _json(argv: list[str], run_cli: RunCli) -> dict[str, Any]:
    code, out, err = run_cli(["test", "sequential", *COUNTS, *argv, "--json"])
    assert (code, err) == (0, "")
    payload: dict[str, Any] = json.loads(out)
    return payload


def _readme_derivation() -> dict[str, float]:
    """The README's steps 2-4, by hand: Agresti-Caffo variance (the larger one here), τ² from the planned
    variance V_h = (0.02 / (z_0.995 + z_0.8))² and r* = −W₋₁(−α²/e) − 1 (Howard et al.), the one-sided
    mixture likelihood ratio Λ = 2Φ(z √(r/(1+r))) (1+r)^(−½) exp(r z² / (2(1+r)))."""
    alpha, mde = 0.005, 0.02
    pc, pt = (59400 + 1) / (495000 + 2), (700 + 1) / (5000 + 2)
    variance = pc * (1 - pc) / 495000 + pt * (1 - pt) / 5000
    z = 0.02 / math.sqrt(variance)
    v_h = (mde / (norm.ppf(1 - alpha) + norm.ppf(0.8))) ** 2
    r_star = float(-lambertw(-(alpha**2) / math.e, k=-1).real - 1)
    c2 = (1 + r_star) / r_star * (2 * math.log(1 / alpha) + math.log1p(r_star))
    tau2 = r_star * max(v_h, mde**2 / c2)
    r = tau2 / variance
    lam = 2 * norm.cdf(z * math.sqrt(r / (1 + r))) / math.sqrt(1 + r) * math.exp(r * z * z / (2 * (1 + r)))
    return {"variance": variance, "z": z, "tau2": tau2, "ratio": r, "lambda": lam}


def test_the_readme_worked_example_from_the_spec(run_cli: RunCli) -> None:
    expected = _readme_derivation()
    got = _json(["--spec", str(ROOT / "config" / "mangaassist.yaml"), "--metric", "escalation_rate"], run_cli)
    assert got["alpha"] == pytest.approx(0.005)  # 0.05 / 5 safety/guardrail metrics / 2 (sliced)
    assert got["alternative"] == "greater"
    assert got["variance"] == pytest.approx(expected["variance"], rel=1e-9)
    assert got["variance"] == pytest.approx(2.431e-5, rel=1e-3)  # README step 2
    assert got["z"] == pytest.approx(expected["z"], rel=1e-9)
    assert got["tau2"] == pytest.approx(expected["tau2"], rel=1e-9)
    assert got["tau2"] == pytest.approx(4.54e-4, rel=1e-3)  # README step 3
    assert got["ratio"] == pytest.approx(18.67, abs=0.005)
    assert got["likelihood_ratio"] == pytest.approx(expected["lambda"], rel=1e-9)
    assert round(got["likelihood_ratio"]) == 1109  # README step 4
    assert got["pvalue"] == pytest.approx(1 / expected["lambda"], rel=1e-9)
    assert f"{got['pvalue']:.4f}" == "0.0009"
    assert got["ci_low"] == pytest.approx(0.00233, abs=5e-6)  # the README's finding: ci_low 0.00233
    assert got["reject"] is True


def test_the_same_test_from_flags(run_cli: RunCli) -> None:
    flags = ["--mde", "0.02", "--alpha", "0.005", "--alternative", "greater"]
    from_flags = _json(flags, run_cli)
    from_spec = _json(
        ["--spec", str(ROOT / "config" / "mangaassist.yaml"), "--metric", "escalation_rate"], run_cli
    )
    for key in ("pvalue", "ci_low", "tau2", "z"):
        assert from_flags[key] == pytest.approx(from_spec[key], rel=1e-12)


def test_the_table_shows_the_numbers_of_the_readme(run_cli: RunCli) -> None:
    spec = ["--spec", str(ROOT / "config" / "mangaassist.yaml"), "--metric", "escalation_rate"]
    code, out, err = run_cli(["test", "sequential", *COUNTS, *spec])
    assert (code, err) == (0, "")
    for text in ("+2.00 pt", "1,109", "0.000901841", "[+0.233 pt, +∞]", "H0 rejected (p <= 0.005)"):
        assert text in out


def test_non_inferiority_at_the_margin(run_cli: RunCli) -> None:
    """The gate's test: H0 difference >= margin 0.01, alpha 0.05, τ² planned for the margin. A candidate
    2 points worse is not proven within a 1-point margin: p = 1 (its Λ <= 1)."""
    got = _json(
        ["--spec", str(ROOT / "config" / "mangaassist.yaml"), "--metric", "escalation_rate",
         "--test", "non-inferiority"],
        run_cli,
    )  # fmt: skip
    assert (got["alternative"], got["null"], got["alpha"]) == ("less", 0.01, 0.05)
    assert got["pvalue"] == 1.0
    assert got["reject"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--mde is required without --spec"),
        (["--metric", "escalation_rate"], "--metric needs --spec"),
        (["--spec", "config/mangaassist.yaml"], "--metric is required with --spec"),
        (["--spec", "config/mangaassist.yaml", "--metric", "csat"], "must be a safety or guardrail rate"),
        (["--spec", "config/mangaassist.yaml", "--metric", "nope"], "unknown metric 'nope'"),
        (
            ["--spec", "config/mangaassist.yaml", "--metric", "escalation_rate", "--alpha", "0.1"],
            "--alpha come from --spec",
        ),
    ],
)
def test_bad_arguments_are_one_line(
    argv: list[str], message: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(["test", "sequential", *COUNTS, *argv])
    assert code in (1, 2)
    assert out == ""
    assert len(err.splitlines()) == 1
    assert message in err
