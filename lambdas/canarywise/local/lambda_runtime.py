"""Run a Lambda handler in-process, the way the Lambda service would, for local mode.

moto stores Lambda functions but cannot run their code without Docker. Local mode routes every invoke here:
the handler string (``canarywise.handlers.stage_gate.handler``) is imported and called with the event and a
context object, under the function's own environment variables. What the handler prints is its CloudWatch Logs
stream: lines in the embedded metric format (EMF) become metric data, as CloudWatch Logs would make them, and
the rest goes to a log file.

Invocations run one at a time (a process-wide lock): handlers read their configuration from ``os.environ``,
which is shared by every thread, so two functions with different environments cannot overlap.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from canarywise.errors import CanarywiseError


class HandlerImportError(CanarywiseError):
    """The handler string does not name an importable callable."""


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invoke: the JSON payload, whether the function errored, its log lines."""

    payload: Any
    errored: bool
    logs: str


class _ThreadRoutedStdout(io.TextIOBase):
    """``sys.stdout`` that sends a thread's writes to that thread's buffer while it runs a handler.

    Handlers run on moto's request threads while the demo draws its live display on the main thread; swapping
    ``sys.stdout`` for the duration of a call would capture the display's output too.
    """

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self._local = threading.local()

    @contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        buffer = io.StringIO()
        previous = getattr(self._local, "buffer", None)
        self._local.buffer = buffer
        try:
            yield buffer
        finally:
            self._local.buffer = previous

    def _target(self) -> TextIO:
        buffer: TextIO | None = getattr(self._local, "buffer", None)
        return buffer if buffer is not None else self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def resolve_handler(handler: str) -> Callable[[Any, Any], Any]:
    """The callable a handler string names.

    Example
    -------
    >>> resolve_handler("json.dumps")  # doctest: +ELLIPSIS
    <function dumps at ...>
    """
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise HandlerImportError(f"`handler` must be 'package.module.function', found {handler!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise HandlerImportError(f"handler {handler!r}: module {module_name!r} not found ({exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise HandlerImportError(f"handler {handler!r}: {module_name!r} has no function {attribute!r}")
    return function  # type: ignore[no-any-return]


def emf_to_metric_data(line: str, *, timestamp: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """PutMetricData requests (per namespace) for one log line in the embedded metric format; {} otherwise.

    CloudWatch Logs turns EMF lines into metrics; moto has no such step. `timestamp` overrides the line's own
    (wall-clock) time: in accelerated time the metric belongs to the simulated moment of the invocation.

    Example
    -------
    >>> line = ('{"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "N", '
    ...         '"Dimensions": [["Service"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]}, '
    ...         '"Service": "s", "M": [1.0]}')
    >>> emf_to_metric_data(line)["N"][0]["MetricName"]
    'M'
    """
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    if not isinstance(record, dict) or not isinstance(record.get("_aws"), dict):
        return {}
    meta = record["_aws"]
    when = timestamp or datetime.fromtimestamp(float(meta.get("Timestamp", 0)) / 1000)
    out: dict[str, list[dict[str, Any]]] = {}
    for directive in meta.get("CloudWatchMetrics", []):
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics", []):
            raw = record.get(metric["Name"])
            values = raw if isinstance(raw, list) else [raw]
            for dimension_names in dimension_sets:
                dimensions = [{"Name": name, "Value": str(record[name])} for name in dimension_names]
                for value in values:
                    if value is None:
                        continue
                    datum: dict[str, Any] = {
                        "MetricName": metric["Name"],
                        "Dimensions": dimensions,
                        "Timestamp": when,
                        "Value": float(value),
                    }
                    if metric.get("Unit"):
                        datum["Unit"] = metric["Unit"]
                    out.setdefault(directive["Namespace"], []).append(datum)
    return out


class InProcessLambdaRuntime:
    """Runs handler strings in this process, one at a time, under each function's environment.

    Parameters
    ----------
    base_environment
        Variables every function sees (region, endpoint, Powertools switches), under the function's own.
    put_metric_data
        Called with (namespace, metric data) by :meth:`flush_metrics` for the EMF lines handlers printed;
        None drops them.
    log_path
        File the handlers' other output is appended to; None keeps it in memory only.
    clock
        The simulated "now", used as the timestamp of EMF metrics; None keeps the lines' own timestamps.

    Example
    -------
    >>> runtime = InProcessLambdaRuntime({})
    >>> runtime.invoke("json.dumps", {"a": 1}, environment={}, function_name="f").payload
    '{"a": 1}'
    """

    def __init__(
        self,
        base_environment: Mapping[str, str],
        *,
        put_metric_data: Callable[[str, list[dict[str, Any]]], None] | None = None,
        log_path: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.base_environment = dict(base_environment)
        self.put_metric_data = put_metric_data
        self.log_path = log_path
        self.clock = clock
        self.before_invoke: list[Callable[[str, Any], None]] = []
        # Called once for each handler module, right after its import (under the function's environment:
        # Powertools reads POWERTOOLS_* when a module creates its Logger and Metrics).
        self.module_hooks: list[Callable[[ModuleType], None]] = []
        self._prepared: set[str] = set()
        self._lock = threading.Lock()
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._active = 0  # invocations in progress (a rough count: enough to wait for the last one)
        self._stdout: _ThreadRoutedStdout | None = None
        self.invocations: dict[str, int] = {}

    def install_stdout(self) -> None:
        """Route handler output per thread (do it before importing handlers: loggers keep their stream)."""
        if self._stdout is None:
            self._stdout = _ThreadRoutedStdout(sys.stdout)
            sys.stdout = self._stdout

    def uninstall_stdout(self) -> None:
        if self._stdout is not None and sys.stdout is self._stdout:
            sys.stdout = self._stdout.fallback
        self._stdout = None

    def invoke(
        self,
        handler: str,
        event: Any,
        *,
        environment: Mapping[str, str],
        function_name: str,
        function_arn: str = "",
    ) -> Invocation:
        """Call the handler with `event`; an exception becomes Lambda's error payload (errorType, ...)."""
        self._active += 1
        try:
            return self._invoke(handler, event, environment, function_name, function_arn)
        finally:
            self._active -= 1

    def _invoke(
        self, handler: str, event: Any, environment: Mapping[str, str], function_name: str, function_arn: str
    ) -> Invocation:
        for hook in self.before_invoke:
            hook(handler, event)
        context = LambdaContext(
            function_name=function_name,
            invoked_function_arn=function_arn
            or f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}",
            log_group_name=f"/aws/lambda/{function_name}",
        )
        with self._lock, self._environment(environment), self._captured() as output:
            self.invocations[function_name] = self.invocations.get(function_name, 0) + 1
            try:
                function = resolve_handler(handler)
                self._prepare(handler)
                payload, errored = function(event, context), False
            except Exception as exc:
                payload, errored = self._error_payload(exc), True
                traceback.print_exc(file=output)
        logs = output.getvalue()
        self._ship(function_name, logs)
        return Invocation(payload=payload, errored=errored, logs=logs)

    def _prepare(self, handler: str) -> None:
        module_name = handler.rpartition(".")[0]
        if module_name not in self._prepared:
            self._prepared.add(module_name)
            for hook in self.module_hooks:
                hook(sys.modules[module_name])

    @staticmethod
    def _error_payload(exc: BaseException) -> dict[str, Any]:
        return {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }

    @contextmanager
    def _environment(self, environment: Mapping[str, str]) -> Iterator[None]:
        wanted = {**self.base_environment, **environment}
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @contextmanager
    def _captured(self) -> Iterator[io.StringIO]:
        if self._stdout is None:
            buffer = io.StringIO()
            yield buffer
            return
        with self._stdout.capture() as buffer:
            yield buffer

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no invocation is running (one released at the end may still be finishing)."""
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)

    def flush_metrics(self) -> None:
        """Put the metrics the handlers printed in EMF (batched, like CloudWatch Logs delivers them)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if self.put_metric_data is not None:
            for namespace, data in pending.items():
                self.put_metric_data(namespace, data)

    def _ship(self, function_name: str, logs: str) -> None:
        other = []
        for line in logs.splitlines():
            requests = emf_to_metric_data(line, timestamp=self.clock() if self.clock else None)
            if not requests:
                other.append(line)
            for namespace, data in requests.items():
                self._pending.setdefault(namespace, []).extend(data)
        if other and self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as log:
                log.writelines(f"[{function_name}] {line}\n" for line in other)
