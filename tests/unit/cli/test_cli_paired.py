"""``canarywise test paired --file``: the offline gate on a golden set, end to end through the CLI.

References, computed independently from the file's rows in each test:

- outcomes: ``statsmodels.stats.contingency_tables.mcnemar([[both, cur_only], [cand_only, neither]],
  exact=True).pvalue`` and ``scipy.stats.binomtest(cand_only, cur_only + cand_only, 0.5).pvalue``;
- scores: ``scipy.stats.ttest_rel(candidate, current)`` (statistic, pvalue, ``confidence_interval(0.95)``);
- slices: ``statsmodels.stats.multitest.multipletests(p, method='fdr_bh')``;
- the accuracy interval: Agresti & Min (2005), by hand from the paper's formula.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from canarywise.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
INTENTS = ROOT / "config" / "golden" / "intent-golden-set.csv"
SCORES = ROOT / "config" / "golden" / "answer-quality.jsonl"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout, stderr (no argparse error here, so `main` returns)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(["test", "paired", "--file", str(path), "--json", *extra], capsys)
    assert err == ""
    return code, json.loads(out)


def _intent_rows() -> list[dict[str, str]]:
    with INTENTS.open() as f:
        return list(csv.DictReader(f))


def _table(rows: list[dict[str, str]]) -> list[list[int]]:
    """The paired 2x2 table [[both, current only], [candidate only, neither]]."""
    cell = {(1, 1): 0, (1, 0): 0, (0, 1): 0, (0, 0): 0}
    for r in rows:
        cell[int(r["current"]), int(r["candidate"])] += 1
    return [[cell[1, 1], cell[1, 0]], [cell[0, 1], cell[0, 0]]]


def test_sample_golden_set_is_the_seed_drop_and_a_proven_regression(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The checked-in set: intent accuracy 91% -> 88% on 1,000 reused examples."""
    code, payload = run_json(INTENTS, capsys)
    overall = payload["overall"]
    assert (overall["n"], overall["current"], overall["candidate"]) == (1000, 0.91, 0.88)
    rows = _intent_rows()
    table = _table(rows)
    (_, cur_only), (cand_only, _) = table
    assert_allclose(overall["pvalue"], mcnemar(table, exact=True).pvalue, rtol=1e-9)
    assert_allclose(
        overall["pvalue"], stats.binomtest(cand_only, cur_only + cand_only, 0.5).pvalue, rtol=1e-9
    )
    assert overall["verdict"] == "regression"
    assert (code, payload["regression_proven"]) == (5, True)


def test_slices_match_statsmodels_with_bh(capsys: pytest.CaptureFixture[str]) -> None:
    _, payload = run_json(INTENTS, capsys)
    rows = _intent_rows()
    names = sorted({r["slice"] for r in rows})
    raw = [mcnemar(_table([r for r in rows if r["slice"] == s]), exact=True).pvalue for s in names]
    rejected, adjusted, _, _ = multipletests(raw, alpha=0.05, method="fdr_bh")
    assert [g["name"] for g in payload["slices"]] == names
    assert_allclose([g["pvalue"] for g in payload["slices"]], raw, rtol=1e-9)
    assert_allclose([g["adjusted"] for g in payload["slices"]], adjusted, rtol=1e-9)
    verdicts = {g["name"]: g["verdict"] for g in payload["slices"]}
    assert {s for s, r in zip(names, rejected, strict=True) if r} == {"recommendation"}
    assert verdicts["recommendation"] == "regression"
    assert verdicts["faq"] == "none proven"


def test_accuracy_interval_is_agresti_min(capsys: pytest.CaptureFixture[str]) -> None:
    """Agresti & Min (2005): add 1/2 to each cell; d = (c - b)/(n + 2),
    V = ((b + c + 1) - (c - b)^2/(n + 2))/(n + 2)^2, d ± 1.959964 sqrt(V)."""
    _, payload = run_json(INTENTS, capsys)
    b, c, n = 60, 30, 1000  # the sample's discordant counts (asserted through the p-value test above)
    d = (c - b) / (n + 2)
    v = ((b + c + 1) - (c - b) ** 2 / (n + 2)) / (n + 2) ** 2
    expected = [d - 1.959963984540054 * math.sqrt(v), d + 1.959963984540054 * math.sqrt(v)]
    overall = payload["overall"]
    assert (overall["current_only"], overall["candidate_only"]) == (b, c)
    assert_allclose([overall["ci_low"], overall["ci_high"]], expected, rtol=1e-9)


def test_scores_match_ttest_rel(capsys: pytest.CaptureFixture[str]) -> None:
    records = [json.loads(line) for line in SCORES.read_text().splitlines()]
    current = np.array([r["current"] for r in records])
    candidate = np.array([r["candidate"] for r in records])
    code, payload = run_json(SCORES, capsys)
    expected = stats.ttest_rel(candidate, current)
    ci = expected.confidence_interval(0.95)
    overall = payload["overall"]
    assert payload["kind"] == "score"
    assert_allclose(overall["pvalue"], expected.pvalue, rtol=1e-6)
    assert_allclose([overall["ci_low"], overall["ci_high"]], [ci.low, ci.high], rtol=1e-6)
    assert_allclose(overall["diff"], float(np.mean(candidate - current)), rtol=1e-9)
    rec = [r for r in records if r["slice"] == "recommendation"]
    rec_p = stats.ttest_rel([r["candidate"] for r in rec], [r["current"] for r in rec]).pvalue
    assert_allclose(
        [g["pvalue"] for g in payload["slices"] if g["name"] == "recommendation"], [rec_p], rtol=1e-6
    )
    assert code == 5


def test_no_regression_exits_0_and_the_table_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "same.csv"
    lines = ["id,slice,current,candidate"] + [f"e{i},faq,{i % 2},{(i // 2) % 2}" for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(["test", "paired", "--file", str(path)], capsys)
    assert (code, err) == (0, "")
    assert "no regression proven" in out


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "golden.txt",
            "id,current,candidate\n",
            "the extension must be .csv, .jsonl or .ndjson, found '.txt'",
        ),
        ("golden.csv", "id,slice,current\ne1,faq,1\n", "missing candidate"),
        (
            "golden.csv",
            "id,current,candidate\ne1,1,0\ne2,1,x\n",
            "golden.csv:3: `candidate` must be an outcome",
        ),
        ("golden.csv", "id,current,candidate\ne1,1,0\ne1,1,1\n", "golden.csv:3: the id 'e1' repeats line 2"),
        ("golden.csv", "id,current,candidate\ne1,1,\n", "golden.csv:2: `candidate` is missing"),
        ("golden.csv", "id,current,candidate\ne1,1,0\n", "at least 2 examples are needed, found 1"),
        (
            "golden.jsonl",
            '{"id": "a", "current": 1, "candidate": 0}\n[1]\n',
            "golden.jsonl:2: not a JSON object",
        ),
    ],
)
def test_bad_file_is_one_line_exit_2(
    tmp_path: Path, name: str, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text(content)
    code, out, err = run(["test", "paired", "--file", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("canarywise test: error: ")
    assert message in err


def test_missing_file_and_outcome_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["test", "paired", "--file", str(tmp_path / "nope.csv")], capsys)
    assert code == 2
    assert "nope.csv: no such file" in err
    code, _, err = run(["test", "paired", "--file", str(SCORES), "--kind", "outcome"], capsys)
    assert code == 2
    assert "must be an outcome 1/0 (kind outcome), found" in err
