"""The rollout spec: one YAML file per service under ``config/``.

One model serves both ``cdk synth`` (a wrong spec fails synth, naming the field and the value) and the
runtime (the spec is stored with the experiment as its pre-registered hypothesis and re-validated when read).
It lives in the runtime package, not in ``stacks/``, because the Lambdas need it and must not import CDK.

- `canarywise.spec.model`: the models (`RolloutSpec` and its parts), their validators and limits.
- `canarywise.spec.loading`: YAML files, mappings and stored specs in, `SpecError` naming field and value.
- `canarywise.spec.ladder`: the stage ladder's worst case, checked at synth (Step Functions' history quota).

Everything is imported from here: ``from canarywise.spec import RolloutSpec, load_spec``.

Example
-------
>>> spec = load_spec("config/mangaassist.yaml")
>>> [s.percent for s in spec.stages]
[5.0, 25.0, 50.0]
"""

from canarywise.spec.ladder import (
    HELD_HISTORY_EVENTS,
    HISTORY_EVENTS_PER_POLL,
    MAX_HISTORY_EVENTS,
    STEP_FUNCTIONS_HISTORY_QUOTA,
    gate_poll_every,
    gate_poll_seconds,
    history_events,
    poll_waits,
    worst_case_ladder_text,
    worst_case_stage_seconds,
)
from canarywise.spec.loading import load_spec, parse_spec, parse_stored_spec
from canarywise.spec.model import (
    DEMO_SLOTS,
    FDR_TIER_Q,
    MAX_CHECK_INTERVAL,
    MAX_FIRST_STAGE_MULTIPLIER,
    MAX_SLICES,
    MAX_SLICES_PER_SPEC,
    AlbSource,
    AntiFlapping,
    Direction,
    Environment,
    Metric,
    MetricKind,
    MetricRole,
    RolloutSpec,
    Seconds,
    ServiceSource,
    ShadowPhase,
    SlicePolicy,
    SpecError,
    Stage,
    Statistics,
    TemporalPolicy,
    Traffic,
    parse_duration,
)
from canarywise.spec.monitor import DistributionWatch, MixWatch, Monitor, RateWatch

__all__ = [
    "DEMO_SLOTS",
    "FDR_TIER_Q",
    "HELD_HISTORY_EVENTS",
    "HISTORY_EVENTS_PER_POLL",
    "MAX_CHECK_INTERVAL",
    "MAX_FIRST_STAGE_MULTIPLIER",
    "MAX_HISTORY_EVENTS",
    "MAX_SLICES",
    "MAX_SLICES_PER_SPEC",
    "STEP_FUNCTIONS_HISTORY_QUOTA",
    "AlbSource",
    "AntiFlapping",
    "Direction",
    "DistributionWatch",
    "Environment",
    "Metric",
    "MetricKind",
    "MetricRole",
    "MixWatch",
    "Monitor",
    "RateWatch",
    "RolloutSpec",
    "Seconds",
    "ServiceSource",
    "ShadowPhase",
    "SlicePolicy",
    "SpecError",
    "Stage",
    "Statistics",
    "TemporalPolicy",
    "Traffic",
    "gate_poll_every",
    "gate_poll_seconds",
    "history_events",
    "load_spec",
    "parse_duration",
    "parse_spec",
    "parse_stored_spec",
    "poll_waits",
    "worst_case_ladder_text",
    "worst_case_stage_seconds",
]
