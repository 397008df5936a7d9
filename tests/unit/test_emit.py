"""The service-side emitter: EMF lines in exactly the shape the significance check reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from canarywise.emit import EmitError, VariantMetrics, is_new_assignment
from canarywise.spec import load_spec

SPEC = load_spec(Path(__file__).resolve().parents[2] / "config" / "mangaassist.yaml")


def _lines(variant: str = "canary") -> tuple[VariantMetrics, list[str]]:
    out: list[str] = []
    return VariantMetrics(variant, spec=SPEC, output=out.append), out


def _emitted(out: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out]


def test_a_proportion_is_a_0_1_value_with_both_dimension_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "mangaassist-api")  # must not become a dimension
    emitter, out = _lines()
    emitter.record("escalation_rate", True, slice_value="returns")
    emitter.record("escalation_rate", 0)
    first, second = _emitted(out)
    [directive] = first["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "MangaAssist"
    assert directive["Dimensions"] == [["Variant"], ["Variant", "Intent"]]
    assert directive["Metrics"] == [{"Name": "Escalation", "Unit": "Count"}]
    assert (first["Variant"], first["Intent"], first["Escalation"]) == ("canary", "returns", [1.0])
    assert second["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Variant"]]
    assert second["Escalation"] == [0.0]
    assert "service" not in first


def test_a_mean_carries_its_square() -> None:
    emitter, out = _lines("control")
    emitter.record("csat", 4.5)
    [blob] = _emitted(out)
    # The variance needs sum and sum of squares: 4.5 and 4.5**2 = 20.25.
    assert (blob["CSAT"], blob["CSATSquared"], blob["Variant"]) == ([4.5], [20.25], "control")
    assert blob["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "CSAT", "Unit": "None"},
        {"Name": "CSATSquared", "Unit": "None"},
    ]


@pytest.mark.parametrize(("seconds", "indicator"), [(9.3, 1.0), (8.0, 0.0), (0.4, 0.0)])
def test_a_tail_metric_is_an_exceedance_indicator(seconds: float, indicator: float) -> None:
    emitter, out = _lines()
    emitter.record("slow_response_rate", seconds)  # threshold 8.0 s in the spec: strictly above counts
    assert _emitted(out)[0]["SlowResponse"] == [indicator]


def test_low_level_calls_without_a_spec() -> None:
    out: list[str] = []
    emitter = VariantMetrics("control", output=out.append)
    emitter.exceedance("Shop", "SlowCheckout", 2.5, 2.0, slice_=("Country", "JP"))
    emitter.mean("Shop", "OrderValue", 3.0)
    slow, value = (json.loads(line) for line in out)
    assert (slow["SlowCheckout"], slow["Country"]) == ([1.0], "JP")
    assert (value["OrderValue"], value["OrderValueSquared"]) == ([3.0], [9.0])


def test_a_new_assignment_is_a_count_per_service_and_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "mangaassist-api")  # must not become a dimension
    emitter, out = _lines("canary")
    emitter.new_assignment()
    VariantMetrics("control", output=out.append).new_assignment("other-service")
    canary, control = _emitted(out)
    [directive] = canary["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Canarywise"
    assert directive["Dimensions"] == [["Service", "Variant"]]
    assert directive["Metrics"] == [{"Name": "NewAssignment", "Unit": "Count"}]
    assert (canary["Service"], canary["Variant"], canary["NewAssignment"]) == ("mangaassist", "canary", [1.0])
    assert (control["Service"], control["Variant"]) == ("other-service", "control")
    assert "service" not in canary


@pytest.mark.parametrize(
    ("cookie_header", "new"),
    [
        (None, True),
        ("", True),
        ("session=abc; theme=dark", True),
        ("AWSALB=abc", True),  # target stickiness inside a group, not the group the weights chose
        ("AWSALBTG=Zm9v; session=abc", False),
        ('prefs={"a": 1, "b": [2]}; AWSALBTGCORS=Zm9v', False),  # a value http.cookies would stop at
        ("session=abc;AWSALBTG=Zm9v", False),
    ],
    ids=["no-header", "empty", "other-cookies", "target-stickiness", "tg-cookie", "cors-copy", "no-space"],
)
def test_a_request_without_the_target_group_cookie_is_a_new_assignment(
    cookie_header: str | None, new: bool
) -> None:
    assert is_new_assignment(cookie_header) is new


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: VariantMetrics("blue green"),
            "`variant` must be a slot name (letters, digits, '_', '.', '-'; up to 64), found 'blue green'",
        ),
        (
            lambda: VariantMetrics(""),
            "`variant` must be a slot name (letters, digits, '_', '.', '-'; up to 64), found ''",
        ),
        (
            lambda: VariantMetrics("canary").record("csat", 1.0),
            "`record` looks metrics up in the rollout spec: pass spec= to VariantMetrics",
        ),
        (
            lambda: VariantMetrics("canary", spec=SPEC).record("error_rate", 1),
            "metric 'error_rate' is read from the load balancer; the service emits nothing",
        ),
        (
            lambda: VariantMetrics("canary", spec=SPEC).record("csat", 1.0, slice_value="x"),
            "metric 'csat' has no slice_dimension, found slice_value='x'",
        ),
        (
            lambda: VariantMetrics("canary", spec=SPEC).record("hallucination_rate", 0.5),
            "metric 'hallucination_rate' is a proportion: the value must be 0/1, found 0.5",
        ),
        (
            lambda: VariantMetrics("canary").new_assignment(),
            "`new_assignment` needs the spec's service: pass spec= or service=",
        ),
    ],
    ids=[
        "variant",
        "empty-variant",
        "no-spec",
        "alb-metric",
        "no-slice",
        "not-0-1",
        "assignment-without-service",
    ],
)
def test_raises(call: Any, message: str) -> None:
    with pytest.raises(EmitError) as raised:
        call()
    assert str(raised.value) == message
