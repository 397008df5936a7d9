"""Canary start Lambda, the pipeline's Canary action for a ladder longer than CodePipeline's Step Functions
action can wait (`canarywise.spec.deployable.waits_for_canary`): it starts the canary execution with the
release manifest as input and reports the job done at once, with ``ExecutionArn`` as the action's output
variable (``#{Canary.ExecutionArn}``, as the Step Functions action gives it). The manual approval that
follows waits for the ladder; the promote step refuses unless the rollout is ready for approval.

AWS documents (CodePipeline, *AWS Lambda invoke action reference*) that the function must call
PutJobSuccessResult or PutJobFailureResult, and that the event must not be logged (it carries the artifact
credentials): this handler logs only the job id and the execution.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from canarywise.data._aws import client, client_with_credentials

logger = Logger()
RELEASE_MANIFEST = "release.json"
MAX_FAILURE_MESSAGE = 5000  # PutJobFailureResult's message length limit


def release_manifest(job: dict[str, Any]) -> str:
    """``release.json`` from the action's input artifact (a zip in the artifact bucket), read with the
    job's own artifact credentials."""
    data = job["data"]
    location = data["inputArtifacts"][0]["location"]["s3Location"]
    s3 = client_with_credentials("s3", data["artifactCredentials"])
    body = s3.get_object(Bucket=location["bucketName"], Key=location["objectKey"])["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        manifest = archive.read(RELEASE_MANIFEST).decode()
    json.loads(manifest)  # a manifest that is not JSON fails the job here, with the reason
    return manifest


def handler(event: dict[str, Any], context: LambdaContext, *, pipeline: Any = None, sfn: Any = None) -> None:
    job = event["CodePipeline.job"]
    pipeline = pipeline or client("codepipeline")
    try:
        manifest = release_manifest(job)
        sfn = sfn or client("stepfunctions")
        # The job id names the execution: a retried invocation of the same job starts nothing new.
        execution_arn = sfn.start_execution(
            stateMachineArn=os.environ["CANARY_STATE_MACHINE_ARN"], name=job["id"], input=manifest
        )["executionArn"]
    except Exception as exc:
        logger.exception("canary start failed", extra={"job_id": job["id"]})
        pipeline.put_job_failure_result(
            jobId=job["id"],
            failureDetails={
                "type": "JobFailed",
                "message": f"{type(exc).__name__}: {exc}"[:MAX_FAILURE_MESSAGE],
            },
        )
        return
    logger.info("canary started", extra={"job_id": job["id"], "execution_arn": execution_arn})
    pipeline.put_job_success_result(
        jobId=job["id"],
        outputVariables={"ExecutionArn": execution_arn},
        executionDetails={
            "summary": f"canary execution started: {execution_arn}",
            "externalExecutionId": execution_arn,
        },
    )
