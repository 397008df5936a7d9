"""The one place boto3 and botocore are imported (they ship no type information)."""

from __future__ import annotations

from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

__all__ = ["AwsCallError", "BotoCoreError", "ClientError", "client", "error_code"]

# A Lambda has seconds, not minutes: fail fast; callers that must insist (traffic) retry themselves.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)

# What a boto3 call raises when AWS refuses or cannot be reached.
AwsCallError = (ClientError, BotoCoreError)


def client(service_name: str) -> Any:
    """A boto3 client; endpoints come from the environment (``AWS_ENDPOINT_URL`` in local mode)."""
    return boto3.client(service_name, config=_CONFIG)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a `ClientError` (``"ThrottlingException"``), else the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__
