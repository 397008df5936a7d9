"""What a valid spec can still get wrong for the AWS resources it becomes: the checks ``cdk synth`` runs
after the model's (``stacks/spec_loading.py``), here so that ``canarywise validate`` runs them without CDK.

Example
-------
>>> from canarywise.spec import load_spec
>>> synth_problems(load_spec("config/mangaassist.yaml"), "mangaassist.yaml")
[]
"""

from __future__ import annotations

import math
from datetime import timedelta

from canarywise.spec.ladder import worst_case_ladder_text, worst_case_stage_seconds
from canarywise.spec.model import AlbSource, RolloutSpec

# CodePipeline's Step Functions invoke action waits for the canary execution at most this long (its default
# timeout; AWS raises it only through a Service Quotas request, account-wide). A ladder that can run longer
# is started without waiting (`waits_for_canary`): a Lambda invoke action starts the execution and the
# manual approval action waits instead, with a timeout long enough for the ladder (`approval_timeout`).
PIPELINE_ACTION_TIMEOUT = timedelta(days=7)
# How long a person has to approve once the canary is ready (the approval action's timeout for a ladder the
# pipeline waits for).
APPROVAL_WINDOW = timedelta(days=3)
# CodePipeline's manual approval action timeout: per action, 5 minutes to 86,400 minutes (60 days).
APPROVAL_TIMEOUT_MAX = timedelta(minutes=86_400)


def waits_for_canary(spec: RolloutSpec) -> bool:
    """Whether the pipeline's Canary action can wait for the whole ladder (its worst case fits in
    `PIPELINE_ACTION_TIMEOUT`); otherwise it starts the execution and moves on to the approval."""
    return sum(worst_case_stage_seconds(spec)) <= PIPELINE_ACTION_TIMEOUT.total_seconds()


def approval_timeout(spec: RolloutSpec) -> timedelta:
    """The manual approval action's timeout: `APPROVAL_WINDOW` after a ladder the pipeline waited for, else
    the ladder's worst case plus that window (the approval is pending while the ladder runs), in whole
    minutes.

    Example
    -------
    >>> from canarywise.spec import load_spec
    >>> approval_timeout(load_spec("lambdas/canarywise/demo/specs/storefront-chatbot.yaml"))  # 28 d + 3 d
    datetime.timedelta(days=31)
    """
    if waits_for_canary(spec):
        return APPROVAL_WINDOW
    return timedelta(minutes=math.ceil(sum(worst_case_stage_seconds(spec)) / 60)) + APPROVAL_WINDOW


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
    if approval_timeout(spec) > APPROVAL_TIMEOUT_MAX:
        stretched = spec.anti_flapping.first_stage_multiplier != 1
        problems.append(
            f"{source}: stages: the ladder can run {longest / 3600:g} h"
            f"{' after a rollback' if stretched else ''} ({worst_case_ladder_text(spec)}); with "
            f"{APPROVAL_WINDOW.total_seconds() / 3600:g} h to approve that is longer than the "
            f"{APPROVAL_TIMEOUT_MAX.total_seconds() / 3600:g} h CodePipeline's manual approval action can "
            "wait: shorten the max_duration values"
            f"{' or lower anti_flapping.first_stage_multiplier' if stretched else ''}"
        )
    return problems
