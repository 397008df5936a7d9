"""What the CLI tests share: one call of ``canarywise`` through ``canarywise.cli.main.main``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from canarywise.cli.main import main

RunCli = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Exit code, stdout and stderr of one CLI call (argparse errors exit through SystemExit)."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
