"""Entry point of the ``canarywise`` command.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its parsers
and sets ``func`` (called with the parsed namespace, returns the exit code). A bad argument exits 2 with one
line naming it; an error canarywise raises on purpose exits 1 with one line; neither prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from canarywise.errors import CanarywiseError

# Command modules, in the order `canarywise --help` lists them. A module that does not exist yet is skipped,
# so a half-built tree still has a working CLI.
COMMAND_MODULES = (
    "canarywise.cli.plan",
    "canarywise.cli.test_commands",
    "canarywise.cli.bounds",
    "canarywise.cli.operator",
    "canarywise.cli.demo",
)


class UsageError(CanarywiseError, ValueError):
    """A command-line argument is wrong; the message names it and shows the value."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, naming the argument; argparse's usage block is one `--help` away.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="canarywise",
        description="Statistically sound canary rollouts and A/B tests for ML models behind an ALB.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CanarywiseError as exc:
        print(f"canarywise {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError | ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
