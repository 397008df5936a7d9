"""The rollout spec's JSON Schema and its reference page, both generated from the pydantic model.

`spec_schema` is ``RolloutSpec.model_json_schema()`` with each field's unit and meaning (`NOTES`) as its
``description``, so an editor that reads the schema shows them. `reference_markdown` renders
``docs/spec-reference.md`` from that schema: every field with its type, unit, default and limits (the
schema's own keywords, plus the rules the model's validators apply across fields, quoted in `NOTES`).
``tests/unit/cli/test_cli_spec.py`` keeps the page equal to this output, and fails naming a field that has
no note, so a field added to the model is documented in the same change.

Example
-------
>>> schema = spec_schema()
>>> schema["properties"]["check_interval"]["description"].startswith("[time]")
True
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from canarywise.spec.model import (
    _DURATION,
    FDR_TIER_Q,
    MAX_CHECK_INTERVAL,
    MAX_SLICES_PER_SPEC,
    RolloutSpec,
)

SCHEMA_ID = "https://github.com/canarywise/canarywise/blob/main/docs/spec-schema.json"

# Field path -> (unit, meaning and the rules the validators apply). A path is the YAML key path with ``[]``
# for a list item; a metric's source has one entry per type.
NOTES: dict[str, tuple[str, str]] = {
    "service": (
        "",
        "The service's name: names the stack's resources and the CloudWatch `Service` dimension.",
    ),
    "mode": (
        "",
        "`canary`: a safety gate, stage by stage to approval; `ab`: a business test of the primary "
        "metric (needs one metric with role: primary).",
    ),
    "environment.account": ("", "AWS account to deploy to (12 digits); the CDK default when absent."),
    "environment.region": ("", "AWS region to deploy to; the CDK default when absent."),
    "traffic.create_demo": (
        "",
        "Create a demo VPC and ALB with two target groups instead of importing them.",
    ),
    "traffic.listener_arn": ("", "The existing listener whose rule splits the traffic (with target_groups)."),
    "traffic.target_groups": (
        "",
        "The service's two target groups by slot name (e.g. blue, green); exactly "
        "two. The slot name is the `Variant` the tasks in that group emit.",
    ),
    "traffic.control_target_group_arn": (
        "",
        "Older form of target_groups: slot `control`. Not with target_groups.",
    ),
    "traffic.canary_target_group_arn": (
        "",
        "Older form of target_groups: slot `canary`. Not with target_groups.",
    ),
    "traffic.rule_priority": ("", "Priority of the weighted listener rule canarywise owns."),
    "traffic.path_pattern": ("", "Path pattern of that rule, e.g. `/chat/*`."),
    "traffic.stickiness": (
        "time",
        "Target-group stickiness: how long a user stays on one variant. At most 7 days (the ALB's limit).",
    ),
    "stages[].percent": (
        "percent of traffic",
        "The candidate's share in this stage. Stages must increase; "
        "the last one below 100 (100% comes with promotion, after approval).",
    ),
    "stages[].min_duration": ("time", "The stage runs at least this long before its gate may pass."),
    "stages[].max_duration": (
        "time",
        "At least min_duration. Reaching it without the gate met is "
        "INCONCLUSIVE (see inconclusive_policy). Past 168 h (CodePipeline's Step Functions "
        "action) the pipeline starts the ladder without waiting and the approval waits; synth "
        "refuses a ladder longer than 1,368 h (the approval's 60 days less 72 h to approve).",
    ),
    "check_interval": (
        "time",
        f"How often the significance check and the stage gate run. At most "
        f"{MAX_CHECK_INTERVAL // 3600} h; synth needs whole minutes.",
    ),
    "metrics[].name": ("", "Unique within the spec; the name findings and reports use."),
    "metrics[].kind": (
        "",
        "`proportion` (events per unit), `mean` (a value per unit), `tail_exceedance` "
        "(share of units above threshold).",
    ),
    "metrics[].role": (
        "",
        "`guardrail` and `safety`: harm rolls back, non-inferiority to the margin "
        "advances; `primary`: the pre-registered success metric (at most one); "
        "`secondary`: reported with BH, never blocks.",
    ),
    "metrics[].direction": ("", "Which way is better for the candidate."),
    "metrics[].margin": (
        "metric's unit (absolute)",
        "Non-inferiority margin: to advance, the candidate must "
        "be proven no worse than control by more than this.",
    ),
    "metrics[].hard_limit": (
        "metric's unit (absolute)",
        "Absolute limit on the candidate's value; breached -> "
        "rollback. Only ALB sources get a one-minute CloudWatch alarm (synth refuses it "
        "on a service metric); required with target_response_time.",
    ),
    "metrics[].threshold": (
        "metric's unit, e.g. seconds",
        "tail_exceedance: the value above which a unit counts as exceeding. Required for that kind.",
    ),
    "metrics[].mde": (
        "metric's unit (absolute)",
        "Minimum detectable effect the tests are tuned for; statistics.mde when absent.",
    ),
    "metrics[].baseline": (
        "rate",
        "The control's expected rate; read only by `canarywise plan` to "
        "simulate the rollout. Not for mean metrics.",
    ),
    "metrics[].slice_dimension": (
        "",
        "A CloudWatch dimension (e.g. Intent) whose values are tested as slices, BH-corrected.",
    ),
    "metrics[].critical_slices": (
        "",
        "Slice values whose proven harm blocks (rolls back). Needs slice_dimension; at most max_slices.",
    ),
    "metrics[].max_relative_regression": (
        "fraction of control's value",
        "A critical slice rolls back only when its regression is estimated beyond this (one number for "
        "every critical slice, or one per slice); a smaller proven one holds like any slice.",
    ),
    "metrics[].slice_severity": (
        "weight per slice",
        "Weights of the slices in the severity-weighted composite (reported, decides nothing); default 1.",
    ),
    "metrics[].max_slices": (
        "slices",
        f"Slices read: the critical ones, then the busiest; the rest pooled "
        f"as `other`. All metrics together at most {MAX_SLICES_PER_SPEC} slices, each "
        "metric's `other` included (DynamoDB's 400 KB item).",
    ),
    "metrics[].source (alb).type": ("", "The load balancer's target-group metrics: no instrumentation."),
    "metrics[].source (alb).metric": (
        "",
        "`http_5xx` (a proportion of requests) or `target_response_time` (only a hard_limit alarm).",
    ),
    "metrics[].source (service).type": (
        "",
        "The service's own CloudWatch metric, emitted with a `Variant` dimension (`canarywise.emit`).",
    ),
    "metrics[].source (service).namespace": ("", "Its CloudWatch namespace."),
    "metrics[].source (service).metric_name": ("", "Its CloudWatch metric name."),
    "statistics.alpha": (
        "probability",
        "False-rollback rate over the whole rollout, shared (Bonferroni) by "
        "the safety/guardrail metrics; the non-inferiority gate's level.",
    ),
    "statistics.power": ("probability", "Power the mixing variance is tuned for at the MDE or margin."),
    "statistics.mde": ("metric's unit (absolute)", "Default minimum detectable effect."),
    "statistics.horizon": (
        "time",
        "The horizon the anytime-valid tests and the hard-limit backstop are tuned for.",
    ),
    "statistics.min_samples_per_arm": ("units", "Units each arm needs in a stage before its gate may pass."),
    "statistics.srm_pvalue": (
        "probability",
        "Level of the anytime-valid sample-ratio-mismatch check (HOLD below it).",
    ),
    "statistics.fdr_tier": (
        "",
        "Benjamini-Hochberg q across the registry: "
        + ", ".join(f"`{k}` {v:g}" for k, v in FDR_TIER_Q.items())
        + ".",
    ),
    "inconclusive_policy": (
        "",
        "What a stage that reaches max_duration without its gate does: `rollback` "
        "or `hold` (wait for a person).",
    ),
    "anti_flapping.cooldown": ("time", "No new rollout of the service this long after a rollback."),
    "anti_flapping.max_rollbacks_7d": (
        "rollbacks",
        "A candidate rolled back this many times in 7 days is rejected.",
    ),
    "anti_flapping.first_stage_multiplier": (
        "factor",
        "After a rollback the next try's first stage lasts this many times longer.",
    ),
    "anti_flapping.require_root_cause": (
        "",
        "A candidate rolled back in the last 7 days starts again only with `release.root_cause` (a link "
        "to the analysis) in the release manifest; it is recorded with the experiment.",
    ),
    "slice_policy.non_critical_regression": (
        "",
        "A regression proven in a slice that is not critical: `hold` the stage until a person acknowledges "
        "it (`canarywise resume`) or rolls back; `report`: a note only.",
    ),
    "temporal.hold_promote": (
        "",
        "A/B: a temporal flag (the effect's sign differs across days, or it decays) holds PROMOTE; false: "
        "reported only.",
    ),
    "temporal.alpha": ("probability", "Shared by the two temporal flags (alpha/2 each)."),
    "temporal.decay_fraction": (
        "fraction",
        "Decayed = the late half's effect proven below this fraction of the early half's.",
    ),
    "temporal.min_days": ("days", "Complete days of the stage in progress before the temporal checks run."),
    "shadow": ("", "Optional: a shadow phase before the ladder (docs/shadow.md)."),
    "shadow.veto": (
        "metric names",
        "Metrics that can reject the candidate in shadow; each needs a margin and a service source.",
    ),
    "shadow.quality": (
        "metric name",
        "Optional pre-registered hypothesis: shown better before the ladder starts.",
    ),
    "shadow.min_pairs": ("requests", "Paired requests before READY_FOR_CANARY."),
    "shadow.min_duration": ("time", "The shadow phase lasts at least this long."),
    "shadow.max_duration": ("time", "Without a gate by then the shadow phase holds for a person."),
    "monitor.interval": ("time", "How often the drift monitor looks (whole hours, at most 1 day)."),
    "monitor.baseline_weeks": ("weeks", "The baseline: the same hours of this many previous weeks."),
    "monitor.false_alerts_per_30d": ("alerts", "Expected false alerts in 30 days of stationary traffic."),
    "monitor.sustain": ("looks", "Consecutive deviating looks before a finding."),
    "monitor.variants": ("", "Variant dimension values read and summed (default: the spec's slots)."),
    "monitor.rates[].metric": ("metric name", "A proportion metric of the spec to watch."),
    "monitor.rates[].min_change": ("fraction", "Smallest absolute change of the rate worth an alert."),
    "monitor.mixes[].name": ("", "The watch's name (in alerts and drift records)."),
    "monitor.mixes[].metric": ("metric name", "A sliced metric whose mix over slice values is watched."),
    "monitor.mixes[].min_change": ("fraction", "Smallest absolute change of one category's share."),
    "monitor.distributions[].name": ("", "The watch's name (in alerts and drift records)."),
    "monitor.distributions[].namespace": ("", "CloudWatch namespace of the binned counts."),
    "monitor.distributions[].metric_name": ("", "Metric name of the binned counts `emit` records."),
    "monitor.distributions[].edges": ("value", "The bins' inner edges, increasing (n edges, n + 1 bins)."),
    "monitor.distributions[].min_change": ("KS distance", "Smallest gap of the two CDFs worth an alert."),
}


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a rollout spec file, with `NOTES` as field descriptions."""
    schema = RolloutSpec.model_json_schema()
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **copy.deepcopy(schema),
    }
    out["title"] = "canarywise rollout spec"
    for path, prop, _ in _fields(out, out, ""):
        unit, meaning = NOTES.get(path, ("", ""))
        prop["description"] = f"[{unit}] {meaning}" if unit else meaning
    return out


def schema_json() -> str:
    """`spec_schema` as the text of ``docs/spec-schema.json``."""
    return json.dumps(spec_schema(), indent=2) + "\n"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    resolved: dict[str, Any] = schema["$defs"][ref.rsplit("/", 1)[1]]
    return resolved


def _not_null(node: dict[str, Any]) -> dict[str, Any]:
    """The one non-null branch of ``anyOf: [X, null]`` (an optional field), or the node itself."""
    branches: list[dict[str, Any]] = [b for b in node.get("anyOf", ()) if b.get("type") != "null"]
    return branches[0] if len(branches) == 1 and len(node["anyOf"]) == 2 else node


def _fields(
    schema: dict[str, Any], model: dict[str, Any], prefix: str
) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, property node, required) for every leaf field, depth first, in the model's order."""
    required = set(model.get("required", ()))
    for name, prop in model["properties"].items():
        path = f"{prefix}{name}"
        inner = _not_null(prop)
        union = inner.get("oneOf")
        target = _resolve(schema, inner.get("items", {}) if inner.get("type") == "array" else inner)
        if union:
            for option in union:
                sub = _resolve(schema, option)
                tag = sub["properties"]["type"]["const"]
                yield from _fields(schema, sub, f"{path} ({tag}).")
        elif target.get("type") == "object" and "properties" in target:
            yield from _fields(schema, target, f"{path}[]." if inner.get("type") == "array" else f"{path}.")
        else:
            yield path, prop, name in required


def _type_text(schema: dict[str, Any], prop: dict[str, Any]) -> str:
    node = _not_null(prop)
    if "anyOf" in node and any(b.get("pattern") == _DURATION.pattern for b in node["anyOf"]):
        return "duration (`4h`, `30m`, `2d`, `90s` or seconds)"
    node = _resolve(schema, node)
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type")
    if kind == "array":
        return f"list of {node['items'].get('type', 'value')}s"
    if kind == "object":
        return f"map of string to {node.get('additionalProperties', {}).get('type', 'value')}"
    return {"number": "number", "integer": "integer", "string": "string", "boolean": "true/false"}.get(
        str(kind), str(kind)
    )


def _limits_text(prop: dict[str, Any]) -> str:
    node = _not_null(prop)
    if "anyOf" in node:  # a duration: the numeric branch carries the limit
        node = next((b for b in node["anyOf"] if b.get("type") == "number"), {})
    parts = []
    for key, sign in (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"),
                      ("maximum", "<=")):  # fmt: skip
        if key in node:
            parts.append(f"{sign} {node[key]:g}")
    if "minLength" in node:
        parts.append(f"at least {node['minLength']} characters")
    if "maxLength" in node:
        parts.append(f"at most {node['maxLength']} characters")
    if "minItems" in node:
        parts.append(f"at least {node['minItems']} item")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    return ", ".join(parts)


def _default_text(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return ""
    value = prop["default"]
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if value == []:
        return "empty"
    return f"`{value}`"


def reference_markdown() -> str:
    """The text of ``docs/spec-reference.md``."""
    schema = spec_schema()
    lines = [
        "# Rollout spec reference",
        "",
        "<!-- Generated from the pydantic model by `canarywise schema --reference > docs/spec-reference.md`; "
        "a test keeps it equal. -->",
        "",
        "One YAML file per service under `config/` (e.g. `config/mangaassist.yaml`). Check one with "
        "`canarywise validate SPEC` (the same checks as `cdk synth`); editors can use the JSON Schema, "
        "`canarywise schema > spec-schema.json`. Durations are `4h`, `30m`, `2d`, `90s` or a number of "
        "seconds; defaults of durations are shown in seconds. Unknown keys are refused.",
        "",
        "| field | type | unit | default | limits | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for path, prop, required in _fields(schema, schema, ""):
        unit, meaning = NOTES.get(path, ("", ""))
        cells = [f"`{path}`", _type_text(schema, prop), unit, _default_text(prop, required),
                 _limits_text(prop), meaning]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def undocumented_fields() -> list[str]:
    """Field paths of the model that have no entry in `NOTES` (a test keeps this empty)."""
    schema = RolloutSpec.model_json_schema()
    return [path for path, _, _ in _fields(schema, schema, "") if path not in NOTES]
