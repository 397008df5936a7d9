"""Print the release lifecycle from `canarywise.lifecycle.table`, or write it into docs/lifecycle.md.

The table of transitions is data in one module; docs/lifecycle.md shows it, and its phase diagram, as
generated here, so the page cannot say something the code does not do. Each block sits between a pair of
markers in the page (``<!-- lifecycle:table -->`` … ``<!-- /lifecycle:table -->``, the same for
``diagram``); ``--write`` replaces what is between them. ``tests/unit/test_lifecycle_docs.py`` fails when the
page has drifted from the table.

Usage::

    python scripts/lifecycle_table.py            # print the Markdown table
    python scripts/lifecycle_table.py --diagram  # print the Mermaid diagram of the service's phases
    python scripts/lifecycle_table.py --write    # put both into docs/lifecycle.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from canarywise.lifecycle.table import TRANSITIONS, Phase, table_rows

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "lifecycle.md"
HEADER = (
    "event",
    "service from",
    "service to",
    "experiment from",
    "experiment to",
    "traffic",
    "who takes it",
)


def markdown_table() -> str:
    """The lifecycle table, one row per transition, in the table's order."""
    lines = [_cells(HEADER), _cells(("---",) * len(HEADER))]
    lines += [_cells((f"`{event}`", *rest)) for event, *rest in table_rows()]
    return "\n".join(lines) + "\n"


def mermaid_diagram() -> str:
    """The service's phases and the events that move them (``stateDiagram-v2``)."""
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {Phase.STEADY.value}"]
    for transition in TRANSITIONS.values():
        label = transition.event.value + (" (roles swap)" if transition.swaps_roles else "")
        for phase in sorted(transition.service_from):
            lines.append(f"    {phase.value} --> {transition.service_to.value}: {label}")
    lines.append("```")
    return "\n".join(lines) + "\n"


BLOCKS = {"table": markdown_table, "diagram": mermaid_diagram}


def _cells(values: tuple[str, ...] | list[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- lifecycle:{name} -->\n).*?(<!-- /lifecycle:{name} -->)", re.DOTALL)


def block(page: str, name: str) -> str | None:
    """What the page holds between the markers of block `name` (None when the markers are missing)."""
    match = _pattern(name).search(page)
    return page[match.end(1) : match.start(2)] if match else None


def synced(page: str) -> str:
    """`page` with every block replaced by what the table generates now."""
    for name, generate in BLOCKS.items():
        match = _pattern(name).search(page)
        if match is None:
            raise SystemExit(f"{DOC.relative_to(ROOT)} has no <!-- lifecycle:{name} --> block")
        page = page[: match.end(1)] + generate() + page[match.start(2) :]
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--diagram", action="store_true", help="print the Mermaid diagram instead of the table")
    what.add_argument("--write", action="store_true", help=f"write both into {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if not args.write:
        print(mermaid_diagram() if args.diagram else markdown_table(), end="")
        return 0
    before = DOC.read_text()
    after = synced(before)
    if after != before:
        DOC.write_text(after)
    verb = "updated from" if after != before else "already in step with"
    print(f"{DOC.relative_to(ROOT)}: {verb} the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
