"""`canarywise.emit.PairedMetrics`: one request's pair becomes the EMF line the shadow gate's reader sums."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from canarywise.emit import EmitError, PairedMetrics
from canarywise.spec import load_spec

SPEC = load_spec(
    Path(__file__).resolve().parents[2] / "lambdas/canarywise/demo/specs/mangaassist-shadow.yaml"
)


def _lines(record: Any) -> list[dict[str, Any]]:
    out: list[str] = []
    record(PairedMetrics(spec=SPEC, output=out.append))
    return [json.loads(line) for line in out]


@pytest.mark.parametrize(
    ("current", "candidate", "cell"),
    [(True, True, "Both"), (True, False, "CurrentOnly"), (False, True, "CandidateOnly"), (0, 0, "Neither")],
)
def test_a_binary_pair_is_one_cell(current: bool, candidate: bool, cell: str) -> None:
    (line,) = _lines(lambda p: p.record("guardrail_pass_rate", current, candidate, slice_value="faq"))
    cells = {k: v[0] for k, v in line.items() if k.startswith("GuardrailPassPair")}
    assert cells == {
        f"GuardrailPassPair{c}": float(c == cell) for c in ("Both", "CurrentOnly", "CandidateOnly", "Neither")
    }
    assert (line["Variant"], line["Intent"]) == ("shadow", "faq")
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Variant"], ["Variant", "Intent"]]


def test_a_tail_pair_compares_each_side_with_the_threshold() -> None:
    (line,) = _lines(lambda p: p.record("slow_response_rate", 9.5, 2.0))  # threshold 8 s
    assert line["SlowResponsePairCurrentOnly"] == [1.0]


def test_a_numeric_pair_is_the_difference_and_each_side_with_squares() -> None:
    (line,) = _lines(lambda p: p.record("prompt_tokens", 118, 201))
    assert (line["PromptTokensPairDiff"], line["PromptTokensPairDiffSquared"]) == ([83.0], [6889.0])
    assert (line["PromptTokensPairCurrent"], line["PromptTokensPairCandidateSquared"]) == ([118.0], [40401.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.record("error_rate", 1, 0), "metric 'error_rate' is read from the load balancer"),
        (lambda p: p.record("guardrail_pass_rate", 0.5, 1), "`current` must be 0/1, found 0.5"),
        (lambda p: p.record("prompt_tokens", 1, 2, slice_value="faq"), "has no slice_dimension"),
    ],
)
def test_refusals_name_the_metric_and_value(call: Any, message: str) -> None:
    with pytest.raises(EmitError, match=message.replace("(", r"\(")):
        call(PairedMetrics(spec=SPEC, output=lambda _: None))
