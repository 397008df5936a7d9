"""Per-variant sufficient statistics from CloudWatch, stage by stage: the engine's `Observations`.

Each evaluated spec metric becomes GetMetricData queries per stage window, per variant and per slice:

================================  ========================================================================
metric                            queries (statistic → sufficient statistic)
================================  ========================================================================
service, proportion               ``<MetricName>`` SampleCount → n, Sum → successes (a 0/1 value)
service, tail_exceedance          ``<MetricName>`` (a 0/1 exceedance indicator) as a proportion
service, mean                     ``<MetricName>`` SampleCount → n, Sum → sum;
                                  ``<MetricName>Squared`` Sum → sum of squares
ALB ``http_5xx``                  ``AWS/ApplicationELB`` RequestCount Sum → n,
                                  HTTPCode_Target_5XX_Count Sum → successes
new assignments (all metrics)     ``Canarywise`` NewAssignment Sum (dimensions ``Service``, ``Variant``)
                                  → `Observations.assignments`, for the sample-ratio check
================================  ========================================================================

Service metrics carry the dimension ``Variant`` = the slot (target group) that served them, e.g. ``blue`` |
``green``; `MetricSource.for_slots` says which slot plays control (live) and which canary (the candidate)
for an experiment. For a sliced metric they also carry the slice dimension (``canarywise.emit`` emits both
dimension sets). ALB metrics carry ``TargetGroup`` and ``LoadBalancer``. Only aggregates cross the wire:
the cost of a check does not grow with traffic.

New assignments (see `canarywise.emit.is_new_assignment`) follow the weights in force even when sticky users
return to the variant of their cookie; when the service does not emit them, `Observations.assignments` stays
empty and the engine falls back to counting a metric's units (and says so in the SRM finding).

Every stage window is read as **one datapoint per query**: the period is the whole window (see
`whole_window`), so a check re-reading a two-day stage asks for the same few hundred datapoints as one reading
a ten-minute stage, far below GetMetricData's 100,800 datapoints per call. Freshness comes from the ``n``
query of each variant of each metric whose freshness the engine judges (safety and guardrail metrics, and the
primary one in A/B mode) over the last hour (at least three check intervals) at one minute, which gives the
newest datapoint's minute (see `Observations.latest`). When the stage in progress covers that hour (it is
older, and a check runs on the minute), its own ``n`` queries of those metrics are read a minute at a time
and give it, for no extra metric (GetMetricData is billed per metric requested); otherwise a separate probe
request reads them.

A closed stage's sums stop changing once CloudWatch has all its datapoints, so they are read once more and
then *frozen* (`MetricSource.read`, `FrozenStage`): the registry keeps them and every later check reads only
the stage in progress and the probe. A stage is frozen at the first check at least `freeze_after` (15
minutes) after its end whose reading of it is complete: every query answered ``Complete``, every decisive
metric with data in both variants in the stage, and each of them with a newer datapoint than the stage's end
in the probe (the pipeline has delivered past the stage). Until then it is read fresh at every check.

The parts: `queries` (the queries per metric, variant and slot, `AlbDimensions`), `windows` (stage windows,
`whole_window`, the freshness probe), `freezing` (`FrozenStage`, `freeze_after`), `slices` (slice values,
the cap, `OTHER_SLICE`) and `source` (`MetricSource`: the batched GetMetricData runs, the aggregates,
`Reading`). Everything is imported from here.

Example
-------
>>> alb = AlbDimensions("app/alb/1", {"blue": "targetgroup/blue/2", "green": "targetgroup/green/3"})
>>> source = MetricSource(alb)  # doctest: +SKIP
>>> observations = source.observe(spec, stages, now)  # doctest: +SKIP
>>> reading = source.read(spec, stages, now, frozen=registry.frozen_stages(experiment_id))  # doctest: +SKIP
>>> reading.cached, [f.stage for f in reading.to_freeze]  # doctest: +SKIP
((0,), [1])
"""

from canarywise.data.metric_source.freezing import (
    FREEZE_AFTER,
    REREAD_EVERY,
    REREAD_FOR,
    FrozenStage,
    due_for_reread,
    freeze_after,
)
from canarywise.data.metric_source.queries import (
    ALB_NAMESPACE,
    FIXED_SLOTS,
    AlbDimensions,
    MetricSourceError,
)
from canarywise.data.metric_source.slices import OTHER_SLICE
from canarywise.data.metric_source.source import (
    MAX_DATAPOINTS_PER_CALL,
    MAX_QUERIES_PER_CALL,
    MetricSource,
    Reading,
)
from canarywise.data.metric_source.windows import FRESHNESS_PROBE, resolution_at, whole_window

__all__ = [
    "ALB_NAMESPACE",
    "FIXED_SLOTS",
    "FREEZE_AFTER",
    "FRESHNESS_PROBE",
    "MAX_DATAPOINTS_PER_CALL",
    "MAX_QUERIES_PER_CALL",
    "OTHER_SLICE",
    "REREAD_EVERY",
    "REREAD_FOR",
    "AlbDimensions",
    "FrozenStage",
    "MetricSource",
    "MetricSourceError",
    "Reading",
    "due_for_reread",
    "freeze_after",
    "resolution_at",
    "whole_window",
]
