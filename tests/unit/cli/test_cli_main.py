"""No traceback reaches the user: an unforeseen error is one line (exit 1), Ctrl-C is "interrupted" (130);
``--version`` says the installed version."""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.unit.cli.conftest import RunCli


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (
            RuntimeError("boom"),
            1,
            "canarywise schema: unexpected error: RuntimeError: boom "
            "(set CANARYWISE_DEBUG=1 for the traceback)\n",
        ),
        (KeyboardInterrupt(), 130, "canarywise schema: interrupted\n"),
    ],
)
def test_an_unforeseen_error_is_one_line(
    raised: BaseException, code: int, message: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> int:
        raise raised

    monkeypatch.delenv("CANARYWISE_DEBUG", raising=False)
    monkeypatch.setattr("canarywise.cli.spec_commands.run_schema", broken)
    assert run_cli(["schema"]) == (code, "", message)


def test_debug_shows_the_traceback(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setenv("CANARYWISE_DEBUG", "1")
    monkeypatch.setattr("canarywise.cli.spec_commands.run_schema", broken)
    with pytest.raises(RuntimeError, match="boom"):
        run_cli(["schema"])


def test_version(run_cli: RunCli) -> None:
    assert run_cli(["--version"]) == (0, f"canarywise {version('canarywise')}\n", "")
