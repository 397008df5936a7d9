"""Execution control and signals: stop the canary state machine, notify people, publish StatisticalHarm.

Example
-------
>>> CanaryExecutions(state_machine_arn).stop(execution_arn, cause="escalation rate up")  # doctest: +SKIP
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data._aws import ClientError, client, error_code

logger = Logger(child=True)

# The pipeline's manual approval before 100% (the stack names its stage and action so).
APPROVAL_STAGE, APPROVAL_ACTION = "Approval", "Approve"
HARM_NAMESPACE = "Canarywise"
HARM_METRIC = "StatisticalHarm"


class CanaryExecutions:
    """Executions of the canary state machine (``STATE_MACHINE_ARN``): a rollback stops its experiment's."""

    def __init__(self, state_machine_arn: str, *, boto3_client: Any = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = boto3_client if boto3_client is not None else client("stepfunctions")

    def stop(self, execution_arn: str, *, cause: str) -> bool:
        """Stop one execution; False when it had already ended (stopping is what we wanted anyway)."""
        try:
            self._client.stop_execution(
                executionArn=execution_arn, error="Canarywise.RolledBack", cause=cause[:32768]
            )
        except ClientError as exc:
            if error_code(exc) not in {"ExecutionDoesNotExist", "ExecutionNotFound"}:
                raise
            return False
        status = self._client.describe_execution(executionArn=execution_arn)["status"]
        logger.info("execution stopped", extra={"execution_arn": execution_arn, "status": status})
        return True


class PendingApproval:
    """The pipeline's manual approval before 100%: a rollback rejects it, so no stale click can promote.

    Parameters
    ----------
    pipeline_name, stage_name, action_name : str
        Where the approval action is (``PIPELINE_NAME``; the stage and action names the stack gives it).
    """

    def __init__(
        self, pipeline_name: str, stage_name: str, action_name: str, *, boto3_client: Any = None
    ) -> None:
        self.pipeline_name = pipeline_name
        self.stage_name = stage_name
        self.action_name = action_name
        self._client = boto3_client if boto3_client is not None else client("codepipeline")

    def reject(self, summary: str) -> bool:
        """Reject the approval if one is waiting; True when this call rejected it."""
        state = self._client.get_pipeline_state(name=self.pipeline_name)
        for stage in state.get("stageStates", []):
            if stage.get("stageName") != self.stage_name:
                continue
            for action in stage.get("actionStates", []):
                latest = action.get("latestExecution") or {}
                if action.get("actionName") != self.action_name or latest.get("status") != "InProgress":
                    continue
                token = latest.get("token")
                if not token:
                    continue
                self._client.put_approval_result(
                    pipelineName=self.pipeline_name,
                    stageName=self.stage_name,
                    actionName=self.action_name,
                    result={"summary": summary[:512], "status": "Rejected"},
                    token=token,
                )
                return True
        return False


class AlertTopic:
    """The SNS topic people subscribe to (``ALERT_TOPIC_ARN``)."""

    def __init__(self, topic_arn: str, *, boto3_client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = boto3_client if boto3_client is not None else client("sns")

    def publish(self, subject: str, message: Mapping[str, Any]) -> str:
        """Publish `message` as JSON; returns the message id. The subject is cut to SNS's 100 characters."""
        response = self._client.publish(
            TopicArn=self.topic_arn,
            Subject=subject[:100],
            Message=json.dumps(message, default=str, indent=2),
        )
        return str(response["MessageId"])


class HarmSignal:
    """The ``StatisticalHarm`` metric (namespace ``Canarywise``, dimension ``Service``) the alarms watch."""

    def __init__(self, *, boto3_client: Any = None) -> None:
        self._client = boto3_client if boto3_client is not None else client("cloudwatch")

    def publish(self, service: str, *, harm: bool, timestamp: datetime) -> None:
        """1 when harm is proven for `service`, else 0 (published every check so the alarm has data)."""
        self._client.put_metric_data(
            Namespace=HARM_NAMESPACE,
            MetricData=[
                {
                    "MetricName": HARM_METRIC,
                    "Dimensions": [{"Name": "Service", "Value": service}],
                    "Timestamp": timestamp,
                    "Value": 1.0 if harm else 0.0,
                    "Unit": "Count",
                }
            ],
        )


class FunctionBatches:
    """Hands a batch of work to another invocation of a function (``InvocationType=Event``: asynchronous,
    at most the function's own retry policy): the significance check's fan-out past its per-invocation
    bound.

    Example
    -------
    >>> FunctionBatches(context.invoked_function_arn, event).hand(["exp-1", "exp-2"])  # doctest: +SKIP
    """

    def __init__(self, function_arn: str, event: Mapping[str, Any], *, boto3_client: Any = None) -> None:
        self.function_arn = function_arn
        self.event = dict(event)
        self._client = boto3_client if boto3_client is not None else client("lambda")

    def hand(self, experiment_ids: list[str]) -> None:
        """Invoke the function once with the event and ``experiment_ids``; raises when Lambda refuses."""
        payload = json.dumps(self.event | {"experiment_ids": experiment_ids}, default=str)
        self._client.invoke(FunctionName=self.function_arn, InvocationType="Event", Payload=payload)
