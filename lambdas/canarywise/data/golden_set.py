"""Read a golden set's per-example outcomes of the current and the candidate model from a file.

Two formats, chosen by the file's extension:

- CSV (``.csv``) with a header row naming the columns ``id``, ``slice`` (optional), ``current`` and
  ``candidate``; other columns are ignored.
- JSON lines (``.jsonl``, ``.ndjson``): one object per line with the same keys.

``current`` and ``candidate`` hold, for the same example, either an outcome (``1``/``0``, ``true``/``false``:
the model got it right) or a score (any finite number, e.g. a judge's 1-5 rating). An example without a
slice belongs to the slice ``all``. Every problem is reported as one line naming the file, the line and the
value.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from canarywise.errors import CanarywiseError

__all__ = ["GoldenSet", "GoldenSetError", "PairedExample", "read_golden_set"]

KINDS: Final = ("auto", "outcome", "score")
_COLUMNS: Final = ("id", "current", "candidate")
_TRUE: Final = frozenset({"1", "1.0", "true", "yes", "correct"})
_FALSE: Final = frozenset({"0", "0.0", "false", "no", "incorrect"})
_DEFAULT_SLICE: Final = "all"


class GoldenSetError(CanarywiseError, ValueError):
    """The golden-set file cannot be read as paired outcomes; the message names the file and the line."""


@dataclass(frozen=True)
class PairedExample:
    """One example of the golden set: the current and the candidate model's outcome (1/0) or score."""

    id: str
    slice: str
    current: float
    candidate: float


@dataclass(frozen=True)
class GoldenSet:
    """The examples of a golden set, in file order, and whether they are outcomes or scores."""

    examples: tuple[PairedExample, ...]
    kind: str  # 'outcome' or 'score'

    @property
    def slices(self) -> tuple[str, ...]:
        """The slice names, sorted."""
        return tuple(sorted({e.slice for e in self.examples}))


def _records(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record) of each example in the file."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GoldenSetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenSetError(f"{path}: cannot be read as UTF-8 text ({exc.__class__.__name__})") from None
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GoldenSetError(
                f"{path}: the header must name the columns id, current, candidate (and optionally slice); "
                f"missing {', '.join(missing)}, found {','.join(reader.fieldnames or [])!r}"
            )
        for row in reader:
            yield reader.line_num, row
    elif suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise GoldenSetError(f"{path}:{number}: not a JSON object: {line[:60]!r}") from None
            if not isinstance(record, dict):
                raise GoldenSetError(f"{path}:{number}: not a JSON object: {line[:60]!r}")
            yield number, record
    else:
        raise GoldenSetError(
            f"{path}: the extension must be .csv, .jsonl or .ndjson, found {suffix or 'none'!r}"
        )


def _value(path: Path, number: int, key: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        number_value = float(text)
    except ValueError:
        number_value = math.nan
    if not math.isfinite(number_value):
        raise GoldenSetError(
            f"{path}:{number}: `{key}` must be an outcome (1/0, true/false) or a finite score, "
            f"found {value!r}"
        )
    return number_value


def read_golden_set(path: str | Path, *, kind: str = "auto") -> GoldenSet:
    """Read a golden set's paired outcomes or scores.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.jsonl`` file (see the module docstring for the columns).
    kind : {'auto', 'outcome', 'score'}
        ``outcome``: every value must be 1/0 (true/false). ``score``: any finite number. ``auto``
        (default): outcomes when every value is 0 or 1, else scores.

    Returns
    -------
    GoldenSet

    Raises
    ------
    GoldenSetError
        A missing file, an unknown extension, a missing column or value, a duplicated id, a value that is
        not a number, an outcome that is not 0/1, or fewer than two examples.

    Example
    -------
    >>> golden = read_golden_set("config/golden/intent-golden-set.csv")
    >>> len(golden.examples), golden.kind, golden.slices[:2]
    (1000, 'outcome', ('faq', 'order-status'))
    """
    if kind not in KINDS:
        raise GoldenSetError(f"`kind` must be one of {KINDS}, found {kind!r}")
    path = Path(path)
    examples: list[PairedExample] = []
    seen: dict[str, int] = {}
    for number, record in _records(path):
        for key in _COLUMNS:
            if record.get(key) in (None, ""):
                raise GoldenSetError(f"{path}:{number}: `{key}` is missing")
        example_id = str(record["id"]).strip()
        if example_id in seen:
            raise GoldenSetError(
                f"{path}:{number}: the id {example_id!r} repeats line {seen[example_id]} "
                "(each example must appear once, with both models' outcomes)"
            )
        seen[example_id] = number
        slice_name = str(record.get("slice") or "").strip() or _DEFAULT_SLICE
        current = _value(path, number, "current", record["current"])
        candidate = _value(path, number, "candidate", record["candidate"])
        if kind == "outcome":
            for key, value in (("current", current), ("candidate", candidate)):
                if value not in (0.0, 1.0):
                    raise GoldenSetError(
                        f"{path}:{number}: `{key}` must be an outcome 1/0 (kind outcome), "
                        f"found {record[key]!r}"
                    )
        examples.append(PairedExample(example_id, slice_name, current, candidate))
    if len(examples) < 2:
        raise GoldenSetError(f"{path}: at least 2 examples are needed, found {len(examples)}")
    binary = all(e.current in (0.0, 1.0) and e.candidate in (0.0, 1.0) for e in examples)
    resolved = kind if kind != "auto" else ("outcome" if binary else "score")
    return GoldenSet(tuple(examples), resolved)
