"""Slice acknowledgements in the registry (moto DynamoDB): who, why and which finding, appended, read back
with the experiment, and read by the decision engine so the acknowledged slice no longer holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aws_kit import T0, TABLE, begin, conclude

from canarywise.data.registry import AcknowledgementRefusedError, ExperimentNotFoundError, Registry
from canarywise.decision.acknowledgement import SliceAcknowledgement


def test_acknowledgements_are_appended_and_read_with_the_experiment(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment = begin(registry, spec_data, candidate="v42", n=1)
    at = T0 + timedelta(hours=30)
    finding = {"estimate": 0.02, "ci_low": 0.011, "ci_high": 0.029}
    registry.acknowledge_slice(
        experiment.experiment_id, metric="escalation_rate", slice_="other", by="dana", reason="gift cards",
        now=at, finding=finding, stage_index=1,
    )  # fmt: skip
    registry.acknowledge_slice(
        experiment.experiment_id, metric="task_completion", slice_="browse", by="lee", reason="known",
        now=at + timedelta(minutes=5),
    )  # fmt: skip
    stored = registry.get_experiment(experiment.experiment_id).slice_acknowledgements
    assert [(a["metric"], a["slice"], a["by"]) for a in stored] == [
        ("escalation_rate", "other", "dana"),
        ("task_completion", "browse", "lee"),
    ]
    first = SliceAcknowledgement.from_dict(stored[0])
    assert (first.reason, first.at, first.stage_index, first.ci_low) == ("gift cards", at, 1, 0.011)
    assert registry.slice_acknowledgements(experiment.experiment_id) == list(stored)


def test_acknowledging_needs_a_running_experiment_and_a_reason(
    registry_table: str, spec_data: dict[str, Any]
) -> None:
    registry = Registry(TABLE)
    experiment = begin(registry, spec_data, candidate="v42", n=1)
    with pytest.raises(ValueError, match="needs a reason"):
        registry.acknowledge_slice(
            experiment.experiment_id, metric="m", slice_="s", by="dana", reason=" ", now=T0
        )
    conclude(registry, experiment, "rolled_back", T0 + timedelta(hours=1))
    with pytest.raises(AcknowledgementRefusedError, match="is ROLLED_BACK, not RUNNING"):
        registry.acknowledge_slice(
            experiment.experiment_id, metric="m", slice_="s", by="dana", reason="late", now=T0
        )
    with pytest.raises(ExperimentNotFoundError):
        registry.acknowledge_slice("nope", metric="m", slice_="s", by="dana", reason="x", now=T0)
