"""The spec's monitor block and the emit helper's binned counts: what a user writes, what fails and how."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from canarywise.emit import VariantMetrics
from canarywise.spec import SpecError, load_spec, parse_spec

MONITOR_SPEC = "lambdas/canarywise/demo/specs/mangaassist-monitor.yaml"


def _data() -> dict[str, Any]:
    with open(MONITOR_SPEC, encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


def test_mode_monitor_needs_no_stages_and_no_traffic() -> None:
    spec = load_spec(MONITOR_SPEC)
    assert spec.stages == ()
    assert spec.monitor is not None
    assert spec.monitor.interval == 3600
    assert spec.monitor.watches == 5
    assert spec.monitor_variants() == ("blue", "green")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("monitor"), "mode 'monitor' needs a monitor block"),
        (
            lambda d: d.update(mode="canary", traffic={"create_demo": True}),
            "mode 'canary' needs stages (at least one)",
        ),
        (
            lambda d: d["monitor"].update(interval="90m"),
            "must be whole hours like '1h', '6h' or '1d', found '90m'",
        ),
        (lambda d: d["monitor"].update(interval="5h"), "must be whole hours that divide a day"),
        (
            lambda d: d["monitor"]["rates"].append({"metric": "csat"}),
            "monitor.rates[3].metric 'csat' is not a metric of the spec",
        ),
        (
            lambda d: d["monitor"]["mixes"].append({"name": "tone", "metric": "thumbs_down_rate"}),
            "monitor.mixes[1].metric 'thumbs_down_rate' has no slice_dimension",
        ),
        (
            lambda d: d["monitor"]["distributions"][0].update(edges=[50, 40]),
            "edges must increase: edges[1] is 40, not above 50",
        ),
        (
            lambda d: d["monitor"].update(rates=[], mixes=[], distributions=[]),
            "the monitor watches nothing",
        ),
    ],
)
def test_a_wrong_monitor_block_names_the_field(change: Any, message: str) -> None:
    data = _data()
    change(data)
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="monitor spec")
    assert message in str(info.value)


def test_histogram_emits_the_bin_the_value_falls_in() -> None:
    """Edges 50, 100, ...: 49.9 is bin 0, 50 is bin 1 (bins are [low, high)), 600 and above the last bin."""
    lines: list[str] = []
    metrics = VariantMetrics("blue", spec=load_spec(MONITOR_SPEC), output=lines.append)
    for value in (49.9, 50.0, 120.0, 600.0, 5000.0):
        metrics.observe("response_tokens", value)
    names = [next(k for k in json.loads(line) if k.startswith("ResponseTokensBin")) for line in lines]
    assert names == [
        "ResponseTokensBin00",
        "ResponseTokensBin01",
        "ResponseTokensBin02",
        "ResponseTokensBin07",
        "ResponseTokensBin07",
    ]
    assert json.loads(lines[0])["Variant"] == "blue"
