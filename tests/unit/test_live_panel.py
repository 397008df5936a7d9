"""The demo's live panel: what the Lambda handlers print never scrolls over it."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from canarywise.demo.live import LiveProgress
from canarywise.local.lambda_runtime import InProcessLambdaRuntime


def test_handler_output_goes_to_the_invocation_log_not_over_the_live_panel() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    runtime = InProcessLambdaRuntime({})
    runtime.install_stdout()  # as local mode does when it starts, before the panel
    try:
        progress = LiveProgress(console)
        scenario: Any = SimpleNamespace(name="healthy", title="as good as the current model")
        progress.started(scenario, deployment=None, experiment_id="e")  # type: ignore[arg-type]
        # A "handler" that prints, as Powertools' Metrics prints its EMF line when the handler returns.
        invocation = runtime.invoke(
            "builtins.print", '{"_aws": {"CloudWatchMetrics": []}}', environment={}, function_name="f"
        )
        assert progress.live is not None
        progress.live.stop()
    finally:
        runtime.uninstall_stdout()
    assert "CloudWatchMetrics" in invocation.logs
    assert "CloudWatchMetrics" not in screen.getvalue()
