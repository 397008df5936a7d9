"""How every command reads numbers and prints: a rich table for people, ``--json`` for scripts.

Nothing is cut: in a terminal a long value folds onto the next line of its cell; piped or redirected, tables
are as wide as their content (rich would otherwise assume 80 columns and cut ids and paths with "…").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def read_number(text: str) -> float:
    """``text`` as a float, NaN when it is not a number (so one range check rejects both)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_numbers(text: str) -> list[float]:
    """Comma-separated floats, or ``[]`` when any part is not a number."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        return []


def finite_argument(text: str) -> float:
    """argparse type: any finite number (a margin, a null)."""
    value = read_number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, found {text!r}")
    return value


def probability_argument(text: str) -> float:
    """argparse type: a number in (0, 1) (alpha, power, a baseline rate)."""
    value = read_number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), found {text!r}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def print_json(payload: Mapping[str, Any]) -> None:
    """One JSON object on stdout (NaN as null, infinities as strings: strict JSON)."""
    print(json.dumps(_plain(payload), indent=2, allow_nan=False))


def fmt(value: Any) -> str:
    """A number as a person reads it: p-values keep their exponent (1e-16 stays 1e-16)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-4 or abs(value) >= 1e7):
            return f"{value:.4g}"
        return f"{value:.6g}"
    return str(value)


# Width of the console when stdout is not a terminal: wide enough for any id, path or reason on one line.
PIPED_WIDTH = 10_000


def make_console() -> Console:
    """The terminal's width in a terminal; `PIPED_WIDTH` when piped or redirected (no 80-column cut)."""
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)


def print_table(title: str, rows: Sequence[tuple[str, Any]], *, console: Console | None = None) -> None:
    """A two-column table: name, value."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold", overflow="fold")
    table.add_column(justify="right", overflow="fold")
    for name, value in rows:
        table.add_row(name, fmt(value))
    (console or make_console()).print(table)


def print_grid(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, console: Console | None = None
) -> None:
    """A table with a header row."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    (console or make_console()).print(table)
