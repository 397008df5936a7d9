"""The one place boto3 and botocore are imported (they ship no type information)."""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

__all__ = ["AwsCallError", "BotoCoreError", "ClientError", "client", "error_code"]

# A Lambda has seconds, not minutes: fail fast; callers that must insist (traffic) retry themselves.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=20)

# What a boto3 call raises when AWS refuses or cannot be reached.
AwsCallError = (ClientError, BotoCoreError)


# The environment a client is bound to when it is made: region, credentials and endpoints.
_ENV_KEYS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


def client(service_name: str) -> Any:
    """A boto3 client; endpoints come from the environment (``AWS_ENDPOINT_URL`` in local mode).

    Clients are reused across invocations of a warm Lambda (making one costs 10-25 ms, and a handler needs
    up to four); a change to the environment they were made from (tests, local mode) makes a new one.
    """
    endpoint_key = f"AWS_ENDPOINT_URL_{service_name.upper()}"
    key = (service_name, *(os.environ.get(name) for name in (*_ENV_KEYS, endpoint_key)))
    return _cached_client(key)


@functools.lru_cache(maxsize=64)
def _cached_client(key: tuple[str | None, ...]) -> Any:
    return boto3.client(key[0], config=_CONFIG)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a `ClientError` (``"ThrottlingException"``), else the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def client_with_credentials(service_name: str, credentials: dict[str, str]) -> Any:
    """A boto3 client signed with `credentials` (``accessKeyId``, ``secretAccessKey``, ``sessionToken``: a
    CodePipeline job's artifact credentials) instead of the function's own role."""
    return boto3.client(
        service_name,
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
        config=_CONFIG,
    )
