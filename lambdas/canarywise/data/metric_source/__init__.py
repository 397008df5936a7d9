"""Per-variant sufficient statistics from CloudWatch: the module moved to
`canarywise.data.metric_source.source` as is (the next commit splits it); every name is imported from here.
"""

from canarywise.data.metric_source.source import (
    ALB_NAMESPACE,
    FIXED_SLOTS,
    FREEZE_AFTER,
    FRESHNESS_PROBE,
    MAX_DATAPOINTS_PER_CALL,
    MAX_QUERIES_PER_CALL,
    OTHER_SLICE,
    AlbDimensions,
    FrozenStage,
    MetricSource,
    MetricSourceError,
    Reading,
    freeze_after,
    resolution_at,
    whole_window,
)

__all__ = [
    "ALB_NAMESPACE",
    "FIXED_SLOTS",
    "FREEZE_AFTER",
    "FRESHNESS_PROBE",
    "MAX_DATAPOINTS_PER_CALL",
    "MAX_QUERIES_PER_CALL",
    "OTHER_SLICE",
    "AlbDimensions",
    "FrozenStage",
    "MetricSource",
    "MetricSourceError",
    "Reading",
    "freeze_after",
    "resolution_at",
    "whole_window",
]
