"""Entry point of the ``canarywise`` command.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its parsers
and sets ``func`` (called with the parsed namespace, returns the exit code). Nothing prints a traceback for an
error canarywise raises on purpose: one line says what went wrong.

Exit codes
----------
0  done (for ``approve`` and ``rollback``: traffic moved as asked, verified by the function that moved it)
1  refused or failed: the one line says why (an experiment that is not awaiting approval, an unknown or
   promoted experiment, a stack or resource not found, AWS refusing a call); a refusal moved no traffic
2  a bad or missing argument (``--service`` included)
3  nothing to do: ``rollback`` found no rollout in progress (traffic untouched; ``--force`` acts anyway)
4  not confirmed: the y/N prompt was not answered yes, or there was no terminal to ask on and no ``--yes``
5  a regression is proven: ``test paired`` found the candidate worse on the golden set (docs/offline.md);
   ``shadow status``: the shadow gate REJECTED the candidate (docs/shadow.md)
6  ``shadow status``: the shadow gate is still deciding (CONTINUE or HOLD); ask again later
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "canarywise.cli.approve",
    "canarywise.cli.rollback",
    "canarywise.cli.pause",
    "canarywise.cli.demo",
    "canarywise.cli.spec_commands",
    "canarywise.cli.watch",
    "canarywise.cli.shadow",
)


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_TO_DO = 3
EXIT_NOT_CONFIRMED = 4
EXIT_INTERRUPTED = 130  # what a shell reports for Ctrl-C


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
        epilog="exit codes: 0 done, 1 refused or failed (one line says why), 2 bad argument, "
        "3 nothing to roll back, 4 not confirmed, 5 regression proven or shadow rejected, "
        "6 shadow still deciding",
    )
    parser.add_argument("--version", action="version", version=f"canarywise {_version()}")
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("canarywise")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CanarywiseError as exc:
        print(f"canarywise {args.command}: error: {exc}", file=sys.stderr)
        default = EXIT_USAGE if isinstance(exc, UsageError | ValueError) else EXIT_FAILED
        return int(getattr(exc, "exit_code", default))
    except KeyboardInterrupt:  # Ctrl-C, e.g. out of `status --watch`: no traceback
        print(f"canarywise {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `canarywise history | head`: the reader left; nothing more to say
        return EXIT_FAILED
    except Exception as exc:  # a bug or an unforeseen failure: one line, the traceback only on request
        if os.environ.get("CANARYWISE_DEBUG"):
            raise
        print(
            f"canarywise {args.command}: unexpected error: {type(exc).__name__}: {exc} "
            "(set CANARYWISE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
