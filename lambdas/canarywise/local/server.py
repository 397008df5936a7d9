"""An embedded AWS for local mode: moto in server mode on a free 127.0.0.1 port, in a thread of this process.

Starting it points every boto3 client of the process at it (``AWS_ENDPOINT_URL``, dummy credentials, no
shared config files), refuses any connection that is not to a loopback address, switches on moto's real Step
Functions execution and applies the patches of :mod:`canarywise.local.moto_patches`. Stopping it undoes all
of that.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3  # type: ignore[import-untyped]

from canarywise.errors import CanarywiseError
from canarywise.local.lambda_runtime import InProcessLambdaRuntime
from canarywise.local.moto_patches import (
    add_elbv2_cloudformation_attributes,
    index_cloudwatch_metric_data,
    keep_connections_alive,
    keep_value_distributions,
    parse_epoch_timestamps_fast,
    patch_sfn_sdk_service_names,
    route_lambda_invokes,
)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

# What every function sees in local mode, under its own variables: no X-Ray daemon to send traces to, and
# Powertools' logs kept to warnings so the demo's log file stays readable.
LOCAL_FUNCTION_ENVIRONMENT = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


class NetworkGuardError(CanarywiseError, ConnectionRefusedError):
    """Local mode tried to open a connection to something other than a loopback address."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard_connections() -> Callable[[], None]:
    """Refuse non-loopback connections until the returned undo is called: local mode never reaches AWS."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def _check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(str(address[0])):
            raise NetworkGuardError(
                f"local mode only talks to 127.0.0.1; refused a connection to {address[0]}"
            )

    def connect(self: socket.socket, address: Any) -> None:
        _check(self, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self, address)
        return original_connect_ex(self, address)

    setattr(socket.socket, "connect", connect)  # noqa: B010 - mypy refuses assigning to a method
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010

    def undo() -> None:
        setattr(socket.socket, "connect", original_connect)  # noqa: B010
        setattr(socket.socket, "connect_ex", original_connect_ex)  # noqa: B010

    return undo


class LocalAws:
    """moto in server mode on 127.0.0.1, with canarywise's handlers running in-process behind its Lambda.

    Parameters
    ----------
    log_path
        Where the handlers' log lines go (see :class:`InProcessLambdaRuntime`).
    function_environment
        Extra variables every function sees.

    Example
    -------
    >>> with LocalAws() as aws:  # doctest: +SKIP
    ...     aws.client("dynamodb").list_tables()["TableNames"]
    []
    """

    def __init__(
        self, *, log_path: Path | None = None, function_environment: Mapping[str, str] | None = None
    ) -> None:
        self.runtime = InProcessLambdaRuntime(
            {**LOCAL_FUNCTION_ENVIRONMENT, **(function_environment or {})},
            put_metric_data=self._put_metric_data,
            log_path=log_path,
        )
        self.endpoint = ""
        self._server: Any = None
        self._undo: list[Callable[[], None]] = []
        self._saved_environment: dict[str, str | None] = {}
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> LocalAws:
        from moto.server import ThreadedMotoServer

        # moto logs every failed state of an execution with its whole program: the demo reports failures.
        for name in ("werkzeug", "moto"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._undo.append(_guard_connections())
        self._undo.append(keep_connections_alive())
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        _, port = self._server.get_host_and_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._set_environment(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": None,
                "AWS_PROFILE": None,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
                # moto's Step Functions builds its own clients for service integrations on this port.
                "MOTO_PORT": str(port),
            }
        )
        # moto's backends are process-wide: a server started earlier in this process left its state there.
        self._moto_api("reset")
        self._moto_api("config", {"stepfunctions": {"execute_state_machine": True}})
        self._undo.append(patch_sfn_sdk_service_names())
        self._undo.append(route_lambda_invokes(self.runtime))
        self._undo.append(index_cloudwatch_metric_data())
        self._undo.append(keep_value_distributions())
        self._undo.append(add_elbv2_cloudformation_attributes())
        self._undo.append(parse_epoch_timestamps_fast())
        self.runtime.install_stdout()
        self._undo.append(self.runtime.uninstall_stdout)
        return self

    def stop(self) -> None:
        while self._undo:
            self._undo.pop()()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._clients = {}
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment = {}

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- use -------------------------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """A boto3 client for `service` on the local endpoint (one per service: creating one takes ~50 ms)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)
            return self._clients[service]

    def _set_environment(self, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _moto_api(self, action: str, body: Mapping[str, Any] | None = None) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/{action}",
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _put_metric_data(self, namespace: str, data: list[dict[str, Any]]) -> None:
        cloudwatch = self.client("cloudwatch")
        for start in range(0, len(data), 1000):  # PutMetricData takes at most 1000 data a call
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])
