"""docs/emf.md's example lines, parsed the way CloudWatch Logs extracts EMF metrics, are the series the
significance check queries, and what `VariantMetrics` prints.

The parser follows AWS's *Specification: Embedded metric format*: one JSON object per log event; ``_aws``
with a numeric ``Timestamp`` and ``CloudWatchMetrics`` (metric directives: ``Namespace``, ``Dimensions`` =
dimension sets of at most 30 names of root members holding strings, ``Metrics`` = definitions with ``Name``
and an optional ``Unit``); each metric's root member a number or an array of numbers; one metric per
dimension set. The expected series are written out by hand from the doc's table, then compared with the
queries `canarywise.data.metric_source` builds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from canarywise.data.metric_source.queries import assignment_query, metric_queries
from canarywise.decision.models import ObservationKey, Variant
from canarywise.emit import VariantMetrics
from canarywise.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "emf.md"
SPEC = load_spec(ROOT / "config" / "mangaassist.yaml")


@dataclass(frozen=True)
class Datum:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name: CloudWatch matches the set, not the order
    unit: str | None
    values: tuple[float, ...]
    timestamp: int


class EmfError(ValueError):
    pass


def extract(line: str) -> list[Datum]:
    """What CloudWatch Logs makes of one EMF log event (raises EmfError where it would reject it)."""
    try:
        root = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EmfError(f"not one JSON object: {exc}") from None
    if not isinstance(root, dict) or not isinstance(root.get("_aws"), dict):
        raise EmfError("no _aws metadata object")
    meta = root["_aws"]
    if not isinstance(meta.get("Timestamp"), int | float) or isinstance(meta["Timestamp"], bool):
        raise EmfError("_aws.Timestamp must be a number")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        raise EmfError("_aws.CloudWatchMetrics must be an array")
    out = []
    for directive in directives:
        namespace, sets, metrics = (directive.get(k) for k in ("Namespace", "Dimensions", "Metrics"))
        if not isinstance(namespace, str) or not isinstance(sets, list) or not isinstance(metrics, list):
            raise EmfError("a directive needs Namespace, Dimensions and Metrics")
        for dimension_set in sets:
            if not isinstance(dimension_set, list) or len(dimension_set) > 30:
                raise EmfError(f"bad dimension set {dimension_set!r}")
            for key in dimension_set:
                if not isinstance(root.get(key), str):
                    raise EmfError(f"dimension {key!r} has no string target member")
        for definition in metrics:
            name = definition.get("Name")
            value = root.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise EmfError(f"metric {name!r} has no numeric target member")
            for dimension_set in sets:
                dims = tuple(sorted((key, root[key]) for key in dimension_set))
                out.append(
                    Datum(
                        namespace, name, dims, definition.get("Unit"), tuple(values), int(meta["Timestamp"])
                    )
                )
    return out


def documented_lines() -> list[str]:
    (block,) = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    return block.strip().splitlines()


def _series(data: list[Datum]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    return {(d.namespace, d.name, d.dimensions) for d in data}


def test_the_documented_lines_give_the_series_written_in_the_doc() -> None:
    data = [datum for line in documented_lines() for datum in extract(line)]
    green = ("Variant", "green")
    expected = {
        ("MangaAssist", "Escalation", (green,)): (1.0,),
        ("MangaAssist", "Escalation", (("Intent", "returns"), green)): (1.0,),
        ("MangaAssist", "Hallucination", (green,)): (0.0,),
        ("MangaAssist", "SlowResponse", (green,)): (1.0,),  # 9.3 s > the 8 s threshold
        ("MangaAssist", "CSAT", (green,)): (4.0,),
        ("MangaAssist", "CSATSquared", (green,)): (16.0,),
        ("Canarywise", "NewAssignment", (("Service", "mangaassist"), green)): (1.0,),
    }
    assert {(d.namespace, d.name, d.dimensions): d.values for d in data} == expected
    assert {d.name: d.unit for d in data} == {
        "Escalation": "Count", "Hallucination": "Count", "SlowResponse": "Count", "CSAT": "None",
        "CSATSquared": "None", "NewAssignment": "Count",
    }  # fmt: skip


def test_the_documented_series_are_the_ones_the_check_queries() -> None:
    """Every series the lines produce is one the significance check reads for slot green (as canary)."""
    slots = {Variant.CONTROL: "blue", Variant.CANARY: "green"}
    queried = set()
    for name in ("escalation_rate", "hallucination_rate", "slow_response_rate", "csat"):
        metric = SPEC.metric(name)
        for slice_value in (None, "returns"):
            if slice_value and not metric.slice_dimension:
                continue
            key = ObservationKey(name, 0, Variant.CANARY, slice_value)
            queried |= {(q.namespace, q.metric_name, tuple(sorted(q.dimensions)))
                        for q in metric_queries(metric, key, alb=None, slots=slots)}  # fmt: skip
    assignments = assignment_query(SPEC, 0, Variant.CANARY, "green")
    queried.add((assignments.namespace, assignments.metric_name, tuple(sorted(assignments.dimensions))))
    produced = _series([datum for line in documented_lines() for datum in extract(line)])
    assert produced == queried


def test_the_documented_lines_are_what_the_python_helper_prints() -> None:
    lines: list[str] = []
    metrics = VariantMetrics("green", spec=SPEC, output=lines.append)
    metrics.record("escalation_rate", True, slice_value="returns")
    metrics.record("hallucination_rate", False)
    metrics.record("slow_response_rate", 9.3)
    metrics.record("csat", 4.0)
    metrics.new_assignment()

    def without_time(line: str) -> Any:
        data = json.loads(line)
        del data["_aws"]["Timestamp"]
        return data

    assert [without_time(line) for line in lines] == [without_time(line) for line in documented_lines()]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"_aws":{"CloudWatchMetrics":[]}}', "Timestamp"),
        ('{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Variant"]],'
         '"Metrics":[{"Name":"M"}]}]},"Variant":3,"M":1}', "string target member"),
        ('{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Variant"]],'
         '"Metrics":[{"Name":"M"}]}]},"Variant":"green","M":"1"}', "numeric target member"),
        ('log prefix {"_aws":{}}', "not one JSON object"),
    ],
)  # fmt: skip
def test_the_parser_rejects_what_the_specification_forbids(line: str, problem: str) -> None:
    """The parser is strict where CloudWatch is, so the tests above could fail on a malformed doc line."""
    with pytest.raises(EmfError, match=problem):
        extract(line)
