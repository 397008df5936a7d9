"""The Canary action of a long ladder (``canarywise.handlers.pipeline_start``): it starts the canary execution
with the release manifest from the action's input artifact and reports the job at once. moto stands in for S3
and Step Functions; it has no CodePipeline job API, so a recorder stands in for PutJob*Result."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from canarywise.handlers.pipeline_start import handler

MANIFEST = {"release": {"candidate": "v42", "release_id": "r-1"}, "timing": {"check_interval_seconds": 300}}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def put_job_success_result(self, **kwargs: Any) -> None:
        self.calls.append(("success", kwargs))

    def put_job_failure_result(self, **kwargs: Any) -> None:
        self.calls.append(("failure", kwargs))


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="artifacts")
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        arn = boto3.client("stepfunctions").create_state_machine(
            name="canarywise-storefront-chatbot-canary",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=role,
        )["stateMachineArn"]
        monkeypatch.setenv("CANARY_STATE_MACHINE_ARN", arn)
        yield arn


def _job(job_id: str, key: str, manifest: bytes) -> dict[str, Any]:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("release.json", manifest)
    boto3.client("s3").put_object(Bucket="artifacts", Key=key, Body=archive.getvalue())
    return {
        "CodePipeline.job": {
            "id": job_id,
            "data": {
                "inputArtifacts": [
                    {"location": {"s3Location": {"bucketName": "artifacts", "objectKey": key}}}
                ],
                "artifactCredentials": {"accessKeyId": "a", "secretAccessKey": "s", "sessionToken": "t"},
            },
        }
    }


def test_starts_the_canary_with_the_manifest_and_reports_its_arn(machine: str) -> None:
    recorder = Recorder()
    handler(_job("job-1", "Release/abc", json.dumps(MANIFEST).encode()), None, pipeline=recorder)
    sfn = boto3.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"] == "job-1"
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == MANIFEST
    ((outcome, call),) = recorder.calls
    assert outcome == "success"
    assert call["jobId"] == "job-1"
    assert call["outputVariables"] == {"ExecutionArn": execution["executionArn"]}


def test_a_bad_manifest_fails_the_job_with_the_reason_and_starts_nothing(machine: str) -> None:
    recorder = Recorder()
    handler(_job("job-2", "Release/bad", b"{not json"), None, pipeline=recorder)
    assert boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"] == []
    ((outcome, call),) = recorder.calls
    assert outcome == "failure"
    assert call["jobId"] == "job-2"
    assert call["failureDetails"]["type"] == "JobFailed"
    assert call["failureDetails"]["message"].startswith("JSONDecodeError: ")
