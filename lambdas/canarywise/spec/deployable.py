"""What a valid spec can still get wrong for the AWS resources it becomes: the checks ``cdk synth`` runs
after the model's (``stacks/spec_loading.py``), here so that ``canarywise validate`` runs them without CDK.

Example
-------
>>> from canarywise.spec import load_spec
>>> synth_problems(load_spec("config/mangaassist.yaml"), "mangaassist.yaml")
[]
"""

from __future__ import annotations

from datetime import timedelta

from canarywise.spec.ladder import history_problem, worst_case_ladder_text, worst_case_stage_seconds
from canarywise.spec.model import AlbSource, RolloutSpec

# CodePipeline's Step Functions invoke action waits for the canary execution at most this long (its default
# timeout; AWS raises it only through a Service Quotas request, account-wide). A ladder that can run longer
# would fail the pipeline while the canary keeps running, and no approval would ever be asked for.
PIPELINE_ACTION_TIMEOUT = timedelta(days=7)


def synth_problems(spec: RolloutSpec, source: str) -> list[str]:
    """Problems a valid spec can still have for the AWS resources it becomes.

    One line per problem, each starting with ``source``, naming the field and the value.
    """
    problems = []
    if spec.check_interval % 60:
        problems.append(
            f"{source}: check_interval: must be a whole number of minutes (EventBridge Scheduler's finest "
            f"rate), found {spec.check_interval} s"
        )
    for i, stage in enumerate(spec.stages):
        if stage.percent != round(stage.percent):
            problems.append(
                f"{source}: stages[{i}].percent: must be a whole percent (ALB weights are integers), "
                f"found {stage.percent:g}"
            )
    for i, metric in enumerate(spec.metrics):
        # The significance check tests any hard limit, but only the ALB's metrics get the one-minute alarm.
        if metric.hard_limit is not None and not isinstance(metric.source, AlbSource):
            problems.append(
                f"{source}: metrics[{i}]: metric {metric.name!r}: hard_limit {metric.hard_limit:g} gets no "
                "CloudWatch alarm on a service metric (only ALB sources have one); remove it, or give the "
                "metric a margin"
            )
    longest = sum(worst_case_stage_seconds(spec))
    if longest > PIPELINE_ACTION_TIMEOUT.total_seconds():
        stretched = spec.anti_flapping.first_stage_multiplier != 1
        problems.append(
            f"{source}: stages: the ladder can run {longest / 3600:g} h"
            f"{' after a rollback' if stretched else ''} ({worst_case_ladder_text(spec)}), longer than the "
            f"{PIPELINE_ACTION_TIMEOUT.total_seconds() / 3600:g} h CodePipeline's Step Functions action "
            "waits for the canary execution: shorten the max_duration values"
            f"{' or lower anti_flapping.first_stage_multiplier' if stretched else ''}"
        )
    history = history_problem(spec)
    if history is not None:
        problems.append(f"{source}: {history}")
    return problems
