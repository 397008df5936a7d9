"""docs/lifecycle.md shows the lifecycle the code runs: its table and its diagram are `TRANSITIONS`."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from canarywise.lifecycle.table import TRANSITIONS, table_rows

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "lifecycle.md"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("lifecycle_table", ROOT / "scripts" / "lifecycle_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page_block(name: str) -> str:
    block = _script().block(DOC.read_text(), name)
    assert block is not None, f"docs/lifecycle.md lost its <!-- lifecycle:{name} --> markers"
    return str(block)


def test_the_pages_table_has_the_rows_of_the_code() -> None:
    """Read as a reader would: the page's table, cell by cell, is `table_rows()`, row by row."""
    lines = _page_block("table").strip().splitlines()
    header, rule, *body = lines
    assert rule.startswith("| ---")
    rows = [tuple(cell.strip().strip("`") for cell in line.strip("|").split(" | ")) for line in body]
    assert len(header.strip("|").split(" | ")) == len(rows[0])
    assert rows == table_rows()


def test_the_pages_diagram_has_every_transition() -> None:
    """Each arrow of the Mermaid diagram is one (phase, event) the table allows, and none is missing."""
    arrows = re.findall(r"^\s+(\w+) --> (\w+): (\w+)", _page_block("diagram"), re.MULTILINE)
    expected = [
        (phase.value, row.service_to.value, row.event.value)
        for row in TRANSITIONS.values()
        for phase in sorted(row.service_from)
    ]
    assert arrows == expected


def test_the_page_is_what_the_script_writes() -> None:
    script = _script()
    page = DOC.read_text()
    assert script.synced(page) == page, (
        "docs/lifecycle.md drifted from canarywise.lifecycle.table: run "
        "`python scripts/lifecycle_table.py --write` and commit"
    )


def test_a_changed_row_shows_as_drift() -> None:
    """The check can fail: a page whose `approve` row says the wrong traffic is rewritten."""
    script = _script()
    page = DOC.read_text()
    stale = page.replace("| APPROVED | all on idle |", "| APPROVED | live/idle at the stage's share |", 1)
    assert stale != page
    assert script.synced(stale) == page


def test_a_page_without_markers_is_refused() -> None:
    with pytest.raises(SystemExit, match="no <!-- lifecycle:table --> block"):
        _script().synced("# The release lifecycle\n")
