"""A wrong rollout spec fails synth with one line naming the field and the value — one test per class.

Each case breaks config/mangaassist.yaml in one place and goes through the synth entry point
(``stacks.synth.build_app``, what ``app.py`` runs); ``test_app_py_exits_with_the_message`` runs ``app.py``
as the CDK CLI does. None of these reach a construct, so they are fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canarywise.spec import SpecError, gate_poll_seconds, history_events, load_spec
from canarywise.spec.deployable import approval_timeout, waits_for_canary
from stacks.synth import build_app

ROOT = Path(__file__).resolve().parents[2]
SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}
ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LISTENER = f"{ELB}:listener/app/shop-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
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


def _slice_everything(data: dict[str, Any]) -> None:
    data["metrics"][0]["max_slices"] = 50
    data["metrics"][3] |= {"slice_dimension": "Intent", "max_slices": 50}


def _import_bad_listener(data: dict[str, Any]) -> None:
    data["traffic"] = {
        "listener_arn": "not-an-arn",
        "control_target_group_arn": f"{ELB}:targetgroup/c/0123abcd",
        "canary_target_group_arn": f"{ELB}:targetgroup/k/4567abcd",
    }


def _import_slots(**target_groups: str) -> Breaker:
    def breaker(data: dict[str, Any]) -> None:
        data["traffic"] = {"listener_arn": LISTENER, "target_groups": target_groups}

    return breaker


def _import_slots_and_legacy(data: dict[str, Any]) -> None:
    _import_slots(blue=f"{ELB}:targetgroup/b/0123abcd", green=f"{ELB}:targetgroup/g/4567abcd")(data)
    data["traffic"]["control_target_group_arn"] = f"{ELB}:targetgroup/c/0123abcd"


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
    (
        "service name",
        _set("service", "Bad Name!"),
        "service: String should match pattern '^[a-z][a-z0-9-]{1,40}$' (found 'Bad Name!')",
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
        _set("check_interval", "330s"),
        "check_interval: must be a whole number of minutes (EventBridge Scheduler's finest rate), "
        "found 330 s",
    ),
    (
        "fractional percent",
        _set("stages.0.percent", 2.5),
        "stages[0].percent: must be a whole percent (ALB weights are integers), found 2.5",
    ),
    # The worst case is after a rollback: the first stage then lasts first_stage_multiplier (1.25) times
    # longer.
    (
        "ladder longer than the approval can wait",
        _set("stages.2.max_duration", "60d"),
        "stages: the ladder can run 1548 h after a rollback (max_duration 48 h × first_stage_multiplier 1.25 "
        "+ 48 h + 1440 h); with 72 h to approve that is longer than the 1440 h CodePipeline's manual "
        "approval action can wait: shorten the max_duration values or lower "
        "anti_flapping.first_stage_multiplier",
    ),
    (
        "first stage multiplier unbounded",
        _set("anti_flapping.first_stage_multiplier", 50),
        "anti_flapping.first_stage_multiplier: Input should be less than or equal to 10 (found 50)",
    ),
    (
        "first stage multiplier infinite",
        _set("anti_flapping.first_stage_multiplier", math.inf),
        "anti_flapping.first_stage_multiplier: Input should be a finite number (found inf)",
    ),
    (
        "last stage at 100%",
        _set("stages.2.percent", 100),
        "stages: the last stage, stages[2].percent, sends 100% to the canary: its gate can never pass with "
        "no control traffic to compare (100% comes with promotion, after approval)",
    ),
    (
        "max duration infinite",
        _set("stages.0.max_duration", math.inf),
        "stages[0].max_duration: must be a finite duration, found inf",
    ),
    (
        "max duration NaN",
        _set("stages.1.max_duration", math.nan),
        "stages[1].max_duration: must be a finite duration, found nan",
    ),
    (
        "check interval longer than the schedule can express",
        _set("check_interval", "2d"),
        "check_interval: must be at most 1 day (the schedule's maximum event age is the interval less a "
        "minute, and EventBridge Scheduler allows at most 1 day), found 172800 s",
    ),
    (
        "hard limit on a service metric (no alarm)",
        _set("metrics.4.hard_limit", 0.05),
        "metrics[4]: metric 'hallucination_rate': hard_limit 0.05 gets no CloudWatch alarm on a service "
        "metric (only ALB sources have one); remove it, or give the metric a margin",
    ),
    (
        "too many slices for one metric",
        _set("metrics.0.max_slices", 80),
        "metrics[0].max_slices: Input should be less than or equal to 50 (found 80)",
    ),
    (
        "critical slices beyond the cap",
        _set("metrics.0.max_slices", 1),
        "metrics[0]: metric 'escalation_rate' lists 2 critical_slices, more than its max_slices 1",
    ),
    (
        "slices beyond what one check record holds",
        _slice_everything,
        "metrics: the sliced metrics are read in up to 102 slices (escalation_rate 50 + 1 other, "
        "slow_response_rate 50 + 1 other), more than the 100 one check record holds under DynamoDB's 400 KB "
        "item limit: lower max_slices",
    ),
    (
        "imported listener ARN malformed",
        _import_bad_listener,
        "traffic.listener_arn: not an ALB listener ARN (found 'not-an-arn')",
    ),
    (
        "imported target group ARN malformed",
        _import_slots(blue=f"{ELB}:targetgroup/b/0123abcd", green="nope"),
        "traffic.target_groups (green): not an ALB target group ARN (found 'nope')",
    ),
    (
        "three target groups",
        _import_slots(
            blue=f"{ELB}:targetgroup/b/0123abcd",
            green=f"{ELB}:targetgroup/g/4567abcd",
            red=f"{ELB}:targetgroup/r/89abcdef",
        ),
        "traffic: target_groups must name exactly two slots, found ['blue', 'green', 'red']",
    ),
    (
        "target_groups and the old control/canary fields both",
        _import_slots_and_legacy,
        "traffic: give target_groups or control_target_group_arn/canary_target_group_arn, not both",
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


def test_duplicate_yaml_key_is_refused_naming_key_and_line(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys without a word; the spec loader refuses them."""
    lines = (ROOT / "config" / "mangaassist.yaml").read_text().splitlines()
    first = lines.index("  alpha: 0.05") + 1  # 1-based line numbers, as an editor shows them
    lines.insert(first, "  alpha: 0.5")
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError) as raised:
        build_app({"spec": str(path), **SKIP_BUNDLING})
    assert str(raised.value).splitlines() == [
        f"{path}: statistics.alpha: duplicate key at line {first + 1} (first at line {first})"
    ]


def test_duplicate_key_inside_a_list_item_is_refused(tmp_path: Path) -> None:
    text = "metrics:\n  - name: a\n    kind: proportion\n    name: b\n"
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        build_app({"spec": str(path), **SKIP_BUNDLING})
    assert str(raised.value).splitlines() == [
        f"{path}: metrics[0].name: duplicate key at line 4 (first at line 2)"
    ]


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


def test_shipped_spec_worst_case_history_stays_under_the_bound() -> None:
    """config/mangaassist.yaml after a rollback: 48 h x 1.25 + 48 h + 60 h = 168 h, 12 five-minute polls an
    hour, 9 events each: 18,144 events, under the 20,000 synth allows."""
    spec = load_spec(ROOT / "config" / "mangaassist.yaml")
    assert history_events(spec) == 168 * 12 * 9 == 18_144


def test_held_and_failed_polls_cannot_reach_the_history_quota() -> None:
    """Fault table rows 1 and 7. Past a stage's maximum under `inconclusive_policy: hold` the stage polls once
    a day: a standard execution lives at most 365 days (Step Functions quota), so 365 polls × 9 events =
    3,285, which fit beside the 20,000 synth allows the ladder under the 25,000 quota. After a failed gate
    (about 20 events) it waits 3 check intervals (27 events' worth of polls). Both waits scale with the
    execution's own interval: 300 s → 900 s and 288 × 300 s; 0 in local mode."""
    from canarywise.spec import (
        HELD_HISTORY_EVENTS,
        MAX_HISTORY_EVENTS,
        STEP_FUNCTIONS_HISTORY_QUOTA,
        poll_waits,
    )

    assert HELD_HISTORY_EVENTS == 365 * 9 == 3_285
    assert MAX_HISTORY_EVENTS + HELD_HISTORY_EVENTS < STEP_FUNCTIONS_HISTORY_QUOTA
    spec = load_spec(ROOT / "config" / "mangaassist.yaml")
    assert poll_waits(spec, 300) == {"unavailable_wait_seconds": 900, "held_wait_seconds": 86_400}
    assert poll_waits(spec, 0) == {"unavailable_wait_seconds": 0, "held_wait_seconds": 0}


def test_a_fourteen_day_ab_test_polls_less_often_and_the_approval_waits_for_it() -> None:
    """The storefront A/B spec: 14 d x first_stage_multiplier 2 = 672 h after a rollback. Five-minute polls:
    8,064 x 9 = 72,576 events; ten: 36,288; twenty: 2,016 x 9 = 18,144, under 20,000. CodePipeline's Step
    Functions action waits 168 h, so the approval waits instead: 672 h + 72 h to approve = 31 days."""
    spec = load_spec(ROOT / "lambdas" / "canarywise" / "demo" / "specs" / "storefront-chatbot.yaml")
    assert gate_poll_seconds(spec) == 20 * 60
    assert history_events(spec, every=4) == 18_144
    assert not waits_for_canary(spec)
    assert approval_timeout(spec).total_seconds() == 31 * 24 * 3600
    shipped = load_spec(ROOT / "config" / "mangaassist.yaml")
    assert (gate_poll_seconds(shipped), waits_for_canary(shipped)) == (300, True)
    assert approval_timeout(shipped).total_seconds() == 3 * 24 * 3600
