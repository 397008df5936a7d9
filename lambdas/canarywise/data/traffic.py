"""The traffic split: forward weights on the ALB listener rule across the control and canary target groups.

Example
-------
>>> split = TrafficSplit(rule_arn, control_arn, canary_arn)  # doctest: +SKIP
>>> split.set_weights(ALL_CONTROL)  # doctest: +SKIP
>>> split.current_weights()  # doctest: +SKIP
Weights(control=100, canary=0)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError, client, error_code
from canarywise.data.models import Weights
from canarywise.errors import CanarywiseError

logger = Logger(child=True)
T = TypeVar("T")


class TrafficError(CanarywiseError, RuntimeError):
    """The listener rule could not be read or changed, even after retries."""


class TrafficSplit:
    """Read and set the canary's share of traffic on one listener rule.

    Parameters
    ----------
    rule_arn, control_target_group_arn, canary_target_group_arn : str
        The weighted listener rule and its two target groups.
    boto3_client : optional
        An ``elbv2`` client; one is created when omitted.
    attempts : int
        Tries per call before `TrafficError` (a rollback must insist: a throttled or briefly failing
        ELB API must not leave users on a bad candidate).
    base_delay : float
        Seconds before the first retry; doubled each time (0.5, 1, 2: under 4 s in all).
    sleep : callable, optional
        Waits between tries (default ``time.sleep``); tests pass a no-op.
    """

    def __init__(
        self,
        rule_arn: str,
        control_target_group_arn: str,
        canary_target_group_arn: str,
        *,
        boto3_client: Any = None,
        attempts: int = 4,
        base_delay: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"`attempts` must be >= 1, found {attempts!r}")
        self.rule_arn = rule_arn
        self.control_target_group_arn = control_target_group_arn
        self.canary_target_group_arn = canary_target_group_arn
        self._client = boto3_client if boto3_client is not None else client("elbv2")
        self._attempts = attempts
        self._base_delay = base_delay
        self._sleep = sleep or time.sleep

    def current_weights(self) -> Weights:
        """The weights in force on the rule now (as percentages of the two target groups)."""
        forward = self._retry("read the listener rule", self._forward_config)
        weights = {tg["TargetGroupArn"]: int(tg.get("Weight", 0)) for tg in forward.get("TargetGroups", [])}
        control = weights.get(self.control_target_group_arn, 0)
        canary = weights.get(self.canary_target_group_arn, 0)
        total = control + canary
        if total == 0:
            raise TrafficError(f"listener rule {self.rule_arn} forwards to neither target group")
        # ALB weights are relative (0-999); express them as percent, the unit of the rollout spec.
        canary_percent = round(100 * canary / total)
        return Weights(control=100 - canary_percent, canary=canary_percent)

    def set_weights(self, weights: Weights) -> None:
        """Forward `weights` percent to control / canary, keeping the rule's target-group stickiness.

        Raises
        ------
        TrafficError
            When the rule still cannot be changed after `attempts` tries; the message names the rule,
            the weights and the last AWS error.
        """

        def modify() -> None:
            stickiness = self._forward_config().get("TargetGroupStickinessConfig", {"Enabled": False})
            self._client.modify_rule(
                RuleArn=self.rule_arn,
                Actions=[
                    {
                        "Type": "forward",
                        "ForwardConfig": {
                            "TargetGroups": [
                                {"TargetGroupArn": self.control_target_group_arn, "Weight": weights.control},
                                {"TargetGroupArn": self.canary_target_group_arn, "Weight": weights.canary},
                            ],
                            "TargetGroupStickinessConfig": stickiness,
                        },
                    }
                ],
            )

        self._retry(f"set weights control {weights.control} / canary {weights.canary}", modify)
        logger.info("weights set", extra={"rule_arn": self.rule_arn, "weights": weights.as_dict()})

    def _forward_config(self) -> dict[str, Any]:
        rules = self._client.describe_rules(RuleArns=[self.rule_arn])["Rules"]
        for action in rules[0].get("Actions", []) if rules else []:
            if action.get("Type") == "forward":
                config: dict[str, Any] = action.get("ForwardConfig") or {
                    "TargetGroups": [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}]
                }
                return config
        raise TrafficError(f"listener rule {self.rule_arn} has no forward action")

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        # Hand-written rather than botocore's retry modes: those retry throttling and 5xx only, while a
        # rollback should insist through any failure for a few seconds before it reports one.
        for attempt in range(1, self._attempts + 1):
            try:
                return call()
            except AwsCallError as exc:
                if attempt == self._attempts:
                    raise TrafficError(
                        f"could not {what} on listener rule {self.rule_arn} after {attempt} attempts: "
                        f"{error_code(exc)}: {exc}"
                    ) from exc
                logger.warning(
                    "listener rule call failed; retrying",
                    extra={"what": what, "attempt": attempt, "error": error_code(exc)},
                )
                self._sleep(self._base_delay * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover
