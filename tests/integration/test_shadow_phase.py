"""Shadow mode end to end on moto: `PairedMetrics` lines → CloudWatch → `PairedSource` → the shadow gate →
the registry. Expected numbers are counted with numpy from the requests the test generates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from aws_kit import TABLE
from numpy.testing import assert_allclose

from canarywise.cli.main import main
from canarywise.data.metric_source.paired import PairedSource
from canarywise.data.registry import Registry
from canarywise.decision.shadow import PairedNumeric
from canarywise.emit import PairedMetrics
from canarywise.runtime.shadow import check_running_shadows, check_shadow
from canarywise.spec import load_spec
from canarywise.stats.paired_sequential import PairedCells

SPEC = load_spec(
    Path(__file__).resolve().parents[2] / "lambdas/canarywise/demo/specs/mangaassist-shadow.yaml"
)
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(minutes=30)
INTENTS = ("faq", "policy", "recommendation")


def _put(cloudwatch: Any, lines: list[str], stamp: datetime) -> None:
    """What CloudWatch makes of EMF lines: one datapoint per metric per line, under each dimension set."""
    data: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        emf = json.loads(line)
        (directive,) = emf["_aws"]["CloudWatchMetrics"]
        for dims in directive["Dimensions"]:
            for metric in directive["Metrics"]:
                data.setdefault(directive["Namespace"], []).append(
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": [{"Name": d, "Value": emf[d]} for d in dims],
                        "Timestamp": stamp,
                        "Value": emf[metric["Name"]][0],
                    }
                )
    for namespace, items in data.items():
        for offset in range(0, len(items), 1000):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=items[offset : offset + 1000])


def _requests(token_shift: float, n: int = 100) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    current_pass = rng.random(n) < 0.97
    return {
        "intent": rng.choice(INTENTS, n),
        "pass_current": current_pass,
        "pass_candidate": np.where(rng.random(n) < 0.05, ~current_pass, current_pass),
        "unsupported_current": rng.random(n) < 0.04,
        "unsupported_candidate": rng.random(n) < 0.04,
        "slow_current": rng.lognormal(0.5, 1.0, n),
        "slow_candidate": rng.lognormal(0.5, 1.0, n),
        "tokens_current": rng.normal(120, 30, n).round(),
        "tokens_candidate": rng.normal(120 + token_shift, 30, n).round(),
    }


def _emit(requests: dict[str, np.ndarray]) -> list[str]:
    lines: list[str] = []
    pairs = PairedMetrics(spec=SPEC, output=lines.append)
    for i, intent in enumerate(requests["intent"]):
        pairs.record(
            "guardrail_pass_rate",
            bool(requests["pass_current"][i]),
            bool(requests["pass_candidate"][i]),
            slice_value=str(intent),
        )
        pairs.record(
            "unsupported_answer_rate",
            bool(requests["unsupported_current"][i]),
            bool(requests["unsupported_candidate"][i]),
        )
        pairs.record("slow_response_rate", requests["slow_current"][i], requests["slow_candidate"][i])
        pairs.record("prompt_tokens", requests["tokens_current"][i], requests["tokens_candidate"][i])
    return lines


def _cells(current: np.ndarray, candidate: np.ndarray) -> PairedCells:
    return PairedCells(
        int((current & candidate).sum()),
        int((current & ~candidate).sum()),
        int((~current & candidate).sum()),
        int((~current & ~candidate).sum()),
    )


def test_paired_source_reads_what_the_service_emitted(registry_table: str) -> None:
    cloudwatch = boto3.client("cloudwatch")
    requests = _requests(token_shift=0.0)
    _put(cloudwatch, _emit(requests), NOW - timedelta(minutes=10))
    obs = PairedSource(cloudwatch).observe(SPEC, START, NOW)
    assert obs.aggregates[("guardrail_pass_rate", None)] == _cells(
        requests["pass_current"], requests["pass_candidate"]
    )
    rec = requests["intent"] == "recommendation"
    assert obs.aggregates[("guardrail_pass_rate", "recommendation")] == _cells(
        requests["pass_current"][rec], requests["pass_candidate"][rec]
    )
    threshold = SPEC.metric("slow_response_rate").threshold
    assert obs.aggregates[("slow_response_rate", None)] == _cells(
        requests["slow_current"] > threshold, requests["slow_candidate"] > threshold
    )
    tokens = obs.aggregates[("prompt_tokens", None)]
    assert isinstance(tokens, PairedNumeric)
    d = requests["tokens_candidate"] - requests["tokens_current"]
    assert_allclose(
        [tokens.n, tokens.differences.mean, tokens.differences.variance], [d.size, d.mean(), d.var(ddof=1)]
    )
    assert_allclose(tokens.candidate.mean, requests["tokens_candidate"].mean())
    assert obs.latest["prompt_tokens"] <= NOW


def test_check_shadow_records_the_rejection_and_keeps_it(registry_table: str) -> None:
    cloudwatch = boto3.client("cloudwatch")
    registry = Registry(TABLE, boto3_client=boto3.client("dynamodb"))
    _put(cloudwatch, _emit(_requests(token_shift=75.0)), NOW - timedelta(minutes=10))
    assert registry.start_shadow("s1", SPEC, candidate="retriever-v2", started_at=START)
    assert not registry.start_shadow("s1", SPEC, candidate="retriever-v2", started_at=START)  # a retry
    decision = check_shadow(shadow_id="s1", now=NOW, registry=registry, source=PairedSource(cloudwatch))
    assert decision.kind.value == "REJECTED"
    assert decision.reason.startswith("prompt_tokens: harm proven")
    later = check_shadow(
        shadow_id="s1", now=NOW + timedelta(minutes=5), registry=registry, source=PairedSource(cloudwatch)
    )
    checks = registry.shadow_checks("s1")
    assert [c.decision for c in checks] == ["REJECTED", later.kind.value]
    assert checks[0].details["findings"]
    phase = registry.shadow_phase("s1")
    assert phase is not None
    assert phase["status"] == "REJECTED"  # the phase has ended; a later look is history only


def test_the_scheduled_look_checks_running_phases_until_they_end(registry_table: str) -> None:
    cloudwatch = boto3.client("cloudwatch")
    registry = Registry(TABLE, boto3_client=boto3.client("dynamodb"))
    _put(cloudwatch, _emit(_requests(token_shift=75.0)), NOW - timedelta(minutes=10))
    registry.start_shadow("s2", SPEC, candidate="retriever-v2", started_at=START)
    assert registry.list_running_shadows("mangaassist") == ("s2",)
    assert registry.list_running_shadows("other-service") == ()
    source = PairedSource(cloudwatch)
    first = check_running_shadows(service="mangaassist", now=NOW, registry=registry, source=source)
    assert first == {"s2": "REJECTED"}
    assert registry.list_running_shadows("mangaassist") == ()  # ended: out of the running index


def test_cli_starts_a_phase_and_reports_its_gate(
    registry_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`canarywise shadow start` / `status` against the registry: exit 6 while deciding, 5 once rejected."""
    spec_file = Path(__file__).resolve().parents[2] / "lambdas/canarywise/demo/specs/mangaassist-shadow.yaml"
    table = ["--service", "mangaassist", "--table", TABLE]
    assert main(["shadow", "start", "--candidate", "retriever-v2", "--spec", str(spec_file), *table]) == 0
    shadow_id = capsys.readouterr().out.strip()
    assert shadow_id.startswith("mangaassist-shadow-retriever-v2-")
    assert main(["shadow", "status", shadow_id, *table, "--json"]) == 6
    assert json.loads(capsys.readouterr().out)["status"] == "RUNNING"
    cloudwatch = boto3.client("cloudwatch")
    _put(cloudwatch, _emit(_requests(token_shift=75.0)), datetime.now(UTC) + timedelta(seconds=20))
    registry = Registry(TABLE, boto3_client=boto3.client("dynamodb"))
    later = datetime.now(UTC) + timedelta(minutes=2)
    check_running_shadows(
        service="mangaassist", now=later, registry=registry, source=PairedSource(cloudwatch)
    )
    assert main(["shadow", "status", shadow_id, *table]) == 5
    assert "prompt_tokens: harm proven" in capsys.readouterr().out
    assert main(["shadow", "status", "nope", *table]) == 1
    assert "no shadow phase 'nope' of service 'mangaassist'" in capsys.readouterr().err
