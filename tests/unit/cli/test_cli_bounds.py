"""`canarywise bounds`: JSON and table output, and one-line errors with exit code 2."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from numpy.testing import assert_allclose
from scipy.stats import norm

from canarywise.cli.main import main


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["bounds", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_two_sided_alpha_is_split_per_side_like_gsdesign(capsys: pytest.CaptureFixture[str]) -> None:
    """--alpha 0.05 (two-sided) gives gsDesign sfLDOF bounds at 0.025 per side.

    gsDesign(k=3, test.type=1, alpha=0.025, sfu=sfLDOF)$upper$bound = 3.7103 2.5114 1.9930 (equal spacing).
    Cumulative two-sided alpha at t = 1/3 is 2 * sfLDOF(0.025, 1/3)
    = 2 * 2 * Phi-bar(qnorm(0.9875) * sqrt(3)).
    """
    out = _json(capsys, "--alpha", "0.05", "--fractions", "0.3333333333,0.6666666667,1")
    assert_allclose(out["boundaries"], [3.7103, 2.5114, 1.9930], atol=1e-4)  # type: ignore[arg-type]
    cumulative = out["cumulative_alpha"]
    assert_allclose(cumulative[0], 4 * norm.sf(norm.ppf(0.9875) * (3**0.5)), rtol=1e-6)  # type: ignore[index]
    assert_allclose(cumulative[-1], 0.05, rtol=1e-12)  # type: ignore[index]
    assert_allclose(out["nominal_pvalues"], 2 * norm.sf(out["boundaries"]), rtol=1e-10)  # type: ignore[arg-type]
    assert out["alpha_per_side"] == 0.025
    assert out["sides"] == 2


def test_one_sided_pocock(capsys: pytest.CaptureFixture[str]) -> None:
    """--sides 1 puts all of --alpha on one side; the last cumulative alpha is --alpha and the first is the
    sfLDPocock value alpha * log(1 + (e - 1) t), whose boundary is the fixed-sample norm.isf of it."""
    out = _json(capsys, "--alpha", "0.025", "--sides", "1", "--spending", "pocock", "--fractions", "0.5,1")
    first = 0.025 * math.log1p((math.e - 1) * 0.5)
    assert_allclose(out["cumulative_alpha"], [first, 0.025], rtol=1e-12)  # type: ignore[arg-type]
    assert_allclose(out["boundaries"][0], norm.isf(first), rtol=1e-9)  # type: ignore[index]
    assert out["spending"] == "pocock"


def test_table_names_the_sidedness(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bounds", "--alpha", "0.05", "--fractions", "0.2857,0.5714,1"]) == 0
    out = capsys.readouterr().out
    assert "alpha 0.05 two-sided (0.025 per side)" in out
    assert "O'Brien-Fleming" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--fractions", "0.5,0.4"],
            "canarywise bounds: error: `fractions` must be strictly increasing numbers in (0, 1], "
            "found [0.5, 0.4]",
        ),
        (
            ["--fractions", "0.5,x"],
            "canarywise bounds: error: argument --fractions: must be comma-separated numbers such as "
            "0.2857,0.5714,1, found '0.5,x'",
        ),
        (
            ["--fractions", "0.5,1", "--alpha", "1.5"],
            "canarywise bounds: error: --alpha must be in (0, 1) with --sides 2, found 1.5",
        ),
        (
            ["--fractions", "0.5,1", "--alpha", "0.6", "--sides", "1"],
            "canarywise bounds: error: --alpha must be in (0, 0.5) with --sides 1, found 0.6",
        ),
        (
            ["--looks", "0"],
            "canarywise bounds: error: argument --looks: must be a whole number of looks from 1 to 10,000, "
            "found '0'",
        ),
        (
            ["--looks", "20000"],
            "canarywise bounds: error: argument --looks: must be a whole number of looks from 1 to 10,000, "
            "found '20000'",
        ),
        (
            ["--fractions", "0.5,1", "--spending", "hsd"],
            "canarywise bounds: error: argument --spending: invalid choice: 'hsd' "
            "(choose from 'obf', 'pocock')",
        ),
    ],
)
def test_bad_argument_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    try:
        code = main(["bounds", *argv])
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [message]


def test_2016_equally_spaced_looks(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's horizon: a look every 5 minutes for 7 days (used to end in a traceback from 500 looks).
    The cumulative two-sided alpha is sfLDOF's, 2 * 2 Phi-bar(qnorm(1 - 0.025/2) / sqrt(t)) at 0.025 per
    side; each finite boundary's nominal p-value is its normal tail (the crossing probabilities themselves
    are checked by simulation in tests/unit/stats/test_group_sequential.py)."""
    out = _json(capsys, "--alpha", "0.05", "--looks", "2016")
    t = [i / 2016 for i in range(1, 2017)]
    assert out["fractions"] == t
    planned = [4 * norm.sf(norm.isf(0.0125) / math.sqrt(x)) for x in t]
    assert_allclose(out["cumulative_alpha"], planned, rtol=1e-9)  # type: ignore[arg-type]
    boundaries = out["boundaries"]
    assert all(math.isfinite(b) for b in boundaries[200:])  # type: ignore[index]
    assert all(a > b for a, b in itertools.pairwise(boundaries[200:]))  # type: ignore[index]
