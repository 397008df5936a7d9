"""A wrong rollout spec fails synth with one line naming the field and the value — one test per class.

Each case breaks config/mangaassist.yaml in one place and goes through the synth entry point
(``stacks.synth.build_app``, what ``app.py`` runs); ``test_app_py_exits_with_the_message`` runs ``app.py``
as the CDK CLI does. None of these reach a construct, so they are fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canarywise.spec import SpecError
from stacks.synth import build_app

ROOT = Path(__file__).resolve().parents[2]
SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
Breaker = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Breaker:
    """Set the spec field at dotted `path` (``stages.1.percent``) to `value`."""

    def breaker(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return breaker


def _drop_source(data: dict[str, Any]) -> None:
    del data["metrics"][0]["source"]


def _duplicate_name(data: dict[str, Any]) -> None:
    data["metrics"][2]["name"] = data["metrics"][0]["name"]


def _import_bad_listener(data: dict[str, Any]) -> None:
    data["traffic"] = {
        "listener_arn": "not-an-arn",
        "control_target_group_arn": f"{ELB}:targetgroup/c/0123abcd",
        "canary_target_group_arn": f"{ELB}:targetgroup/k/4567abcd",
    }


# (class of error, how to break the spec, the message line after "<file>: ") — config/mangaassist.yaml has
# stages 5/25/50 with min 4h/24h/48h, statistics.alpha 0.05 and power 0.8, and metrics[0] = escalation_rate.
CASES = [
    (
        "stages not increasing (equal)",
        _set("stages.1.percent", 5),
        "stages: stages must increase: stages[1].percent is 5, not above stages[0].percent 5",
    ),
    (
        "stages not increasing (decreasing weights)",
        _set("stages.2.percent", 20),
        "stages: stages must increase: stages[2].percent is 20, not above stages[1].percent 25",
    ),
    (
        "percent above 100",
        _set("stages.2.percent", 150),
        "stages[2].percent: Input should be less than or equal to 100 (found 150)",
    ),
    (
        "percent zero",
        _set("stages.0.percent", 0),
        "stages[0].percent: Input should be greater than 0 (found 0)",
    ),
    (
        "alpha above 1",
        _set("statistics.alpha", 1.5),
        "statistics.alpha: Input should be less than 1 (found 1.5)",
    ),
    ("alpha zero", _set("statistics.alpha", 0), "statistics.alpha: Input should be greater than 0 (found 0)"),
    ("power one", _set("statistics.power", 1), "statistics.power: Input should be less than 1 (found 1)"),
    (
        "metric without source",
        _drop_source,
        "metrics[0]: metric 'escalation_rate' has no source (type: alb or type: service)",
    ),
    ("duplicate metric name", _duplicate_name, "metrics: duplicate metric name 'escalation_rate'"),
    (
        "max duration below min",
        _set("stages.0.max_duration", "1h"),
        "stages[0]: max_duration (3600 s) is below min_duration (14400 s)",
    ),
    # Synth-only checks (stacks/spec_loading.py, stacks/traffic.py): what the AWS resources cannot express.
    (
        "check interval not whole minutes",
        _set("check_interval", "90s"),
        "check_interval: must be a whole number of minutes (EventBridge Scheduler's finest rate), found 90 s",
    ),
    (
        "fractional percent",
        _set("stages.0.percent", 2.5),
        "stages[0].percent: must be a whole percent (ALB weights are integers), found 2.5",
    ),
    (
        "ladder longer than the pipeline waits",
        _set("stages.2.max_duration", "5d"),
        "stages: the ladder can run 216 h (max_duration 48 h + 48 h + 120 h), longer than the 168 h "
        "CodePipeline's Step Functions action waits for the canary execution: "
        "shorten the max_duration values",
    ),
    (
        "imported listener ARN malformed",
        _import_bad_listener,
        "traffic.listener_arn: not an ALB listener ARN (found 'not-an-arn')",
    ),
]


@pytest.mark.parametrize(("name", "breaker", "message"), CASES, ids=[c[0] for c in CASES])
def test_invalid_spec_fails_synth_naming_field_and_value(
    name: str, breaker: Breaker, message: str, mangaassist: dict[str, Any], write_spec: Any
) -> None:
    breaker(mangaassist)
    path = write_spec(mangaassist)
    source = "rollout spec" if name.startswith("imported") else str(path)
    with pytest.raises(SpecError) as raised:
        build_app({"spec": str(path), **SKIP_BUNDLING})
    assert str(raised.value).splitlines() == [f"{source}: {message}"]


def test_every_problem_is_reported_at_once(mangaassist: dict[str, Any], write_spec: Any) -> None:
    _set("statistics.alpha", 2)(mangaassist)
    _set("statistics.power", -1)(mangaassist)
    path = write_spec(mangaassist)
    with pytest.raises(SpecError) as raised:
        build_app({"spec": str(path), **SKIP_BUNDLING})
    assert str(raised.value).splitlines() == [
        f"{path}: statistics.alpha: Input should be less than 1 (found 2)",
        f"{path}: statistics.power: Input should be greater than 0 (found -1)",
    ]


def test_missing_spec_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=re.escape(f"rollout spec '{missing}' not found")):
        build_app({"spec": str(missing), **SKIP_BUNDLING})


def test_app_py_exits_with_the_message(mangaassist: dict[str, Any], write_spec: Any, tmp_path: Path) -> None:
    """``cdk synth`` runs ``app.py`` with the context in CDK_CONTEXT_JSON: it must exit 1 and say why."""
    _set("statistics.alpha", 1.5)(mangaassist)
    path = write_spec(mangaassist)
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"spec": str(path)}),
        "CDK_OUTDIR": str(tmp_path / "out"),
    }
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-2:] == [
        "cdk synth failed: the rollout spec is invalid",
        f"{path}: statistics.alpha: Input should be less than 1 (found 1.5)",
    ]
    assert not (tmp_path / "out" / "manifest.json").exists()
