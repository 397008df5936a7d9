"""cdk-nag at synth: an unacknowledged AwsSolutions finding fails synth; an acknowledgement clears it.

A two-resource app keeps this fast; the full stack passing nag is shown by every synth in test_stack.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs

from stacks.nag import acknowledge, add_nag_checks


def _app_with_queue(outdir: Path, *, acknowledged: bool) -> cdk.App:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "NagProbe")
    queue = sqs.Queue(stack, "Queue", encryption=sqs.QueueEncryption.SQS_MANAGED)  # no DLQ, no SSL policy
    if acknowledged:
        acknowledge(queue, "AwsSolutions-SQS3", "probe queue: it is the dead-letter queue in this test")
        acknowledge(queue, "AwsSolutions-SQS4", "probe queue: never deployed, only synthesized in this test")
    add_nag_checks(app)
    return app


def test_unacknowledged_finding_fails_synth(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        _app_with_queue(tmp_path, acknowledged=False).synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert re.search(r"AwsSolutions-SQS3", report)
    assert re.search(r"AwsSolutions-SQS4", report)


def test_acknowledged_findings_pass(tmp_path: Path) -> None:
    _app_with_queue(tmp_path, acknowledged=True).synth()


def test_an_acknowledgement_needs_a_reason(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    queue = sqs.Queue(cdk.Stack(app, "NagProbe"), "Queue")
    with pytest.raises(ValueError, match=r"an acknowledgement needs a specific reason, found 'ok'"):
        acknowledge(queue, "AwsSolutions-SQS3", "ok")
