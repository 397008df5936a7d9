"""The traffic split: the forward action of one ALB listener rule across the service's target groups (slots).

The rule is written only from a `ServiceState` (the lifecycle's desired forward) and always read back: a
change is reported only once the rule says what was asked. A forward action that names one slot sends every
request there, whatever target-group cookie a client holds; stickiness is on only while two slots share.

Example
-------
>>> split = TrafficSplit(rule_arn, {"blue": blue_arn, "green": green_arn})  # doctest: +SKIP
>>> split.apply(state)  # doctest: +SKIP
{'blue': 95, 'green': 5}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from canarywise.data._aws import AwsCallError, client, error_code
from canarywise.errors import CanarywiseError
from canarywise.lifecycle.state import ServiceState

logger = Logger(child=True)
T = TypeVar("T")


class TrafficError(CanarywiseError, RuntimeError):
    """The listener rule could not be read or changed, even after retries, or did not read back as set."""


class TrafficSplit:
    """Read and set the forward action of one listener rule.

    Parameters
    ----------
    rule_arn : str
        The weighted listener rule.
    target_groups : mapping
        Slot name → target group ARN (two slots: the live one and the idle one take turns).
    stickiness_seconds : int
        Target-group stickiness while two slots share traffic (the spec's ``traffic.stickiness``).
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
        target_groups: Mapping[str, str],
        *,
        stickiness_seconds: int = 7 * 86400,
        boto3_client: Any = None,
        attempts: int = 4,
        base_delay: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"`attempts` must be >= 1, found {attempts!r}")
        if len(target_groups) < 2:
            raise ValueError(f"`target_groups` must name at least two slots, found {dict(target_groups)!r}")
        self.rule_arn = rule_arn
        self.target_groups = dict(target_groups)
        self.stickiness_seconds = stickiness_seconds
        self._slot_of = {arn: slot for slot, arn in self.target_groups.items()}
        self._client = boto3_client if boto3_client is not None else client("elbv2")
        self._attempts = attempts
        self._base_delay = base_delay
        self._sleep = sleep or time.sleep

    def current(self) -> dict[str, int]:
        """The forward in force: slot → weight, for the slots the rule names (an unknown group raises)."""
        forward = self._retry("read the listener rule", self._forward_config)
        weights: dict[str, int] = {}
        for group in forward.get("TargetGroups", []):
            arn = group["TargetGroupArn"]
            if arn not in self._slot_of:
                raise TrafficError(f"listener rule {self.rule_arn} forwards to {arn}, which is not a slot")
            weights[self._slot_of[arn]] = int(group.get("Weight", 0))
        return weights

    def action(self, forward: Mapping[str, int]) -> dict[str, Any]:
        """The rule's forward action for `forward` (slot → weight), in the ELBv2 API's shape."""
        unknown = set(forward) - set(self.target_groups)
        if unknown:
            raise TrafficError(
                f"unknown slot(s) {sorted(unknown)}; the slots are {sorted(self.target_groups)}"
            )
        return forward_action(
            {self.target_groups[slot]: weight for slot, weight in forward.items()}, self.stickiness_seconds
        )

    def apply(self, state: ServiceState) -> dict[str, int]:
        """Write `state.forward` to the rule and read it back; returns what the rule says.

        Raises
        ------
        TrafficError
            When the rule cannot be changed after `attempts` tries, or reads back otherwise.
        """
        action = self.action(state.forward)
        self._retry(
            f"set the forward {state.forward}",
            lambda: self._client.modify_rule(RuleArn=self.rule_arn, Actions=[action]),
        )
        return self.verify(state)

    def verify(self, state: ServiceState) -> dict[str, int]:
        """Read the rule back: the slots it names and their weights must be exactly `state.forward`."""
        found = {slot: weight for slot, weight in self.current().items() if weight > 0}
        wanted = {slot: weight for slot, weight in state.forward.items() if weight > 0}
        if found != wanted:
            raise TrafficError(
                f"listener rule {self.rule_arn} reads back {found}, not {wanted} (version {state.version})"
            )
        logger.info("forward verified", extra={"rule_arn": self.rule_arn, "forward": found})
        return found

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


def forward_action(weights_by_arn: Mapping[str, int], stickiness_seconds: int) -> dict[str, Any]:
    """A forward action naming only the target groups with a weight above 0.

    Stickiness is on only when two or more groups share: with one group named, every request goes there,
    whatever ``AWSALBTG`` cookie the client holds from an earlier stage.

    Example
    -------
    >>> forward_action({"arn:blue": 100, "arn:green": 0}, 604800)["ForwardConfig"]["TargetGroups"]
    [{'TargetGroupArn': 'arn:blue', 'Weight': 100}]
    """
    named = [
        {"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights_by_arn.items() if weight > 0
    ]
    if not named:
        raise TrafficError(
            f"a forward action needs a group with a weight above 0, found {dict(weights_by_arn)}"
        )
    sticky: dict[str, Any] = (
        {"Enabled": True, "DurationSeconds": stickiness_seconds} if len(named) > 1 else {"Enabled": False}
    )
    return {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": named, "TargetGroupStickinessConfig": sticky},
    }
