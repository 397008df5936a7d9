"""Copy the long-form docs into README.md's sections, so the two never say different things.

README.md carries the demo, the decision rule and the deployment guide in full (a platform engineer reads
one page); docs/ holds the same text as separate pages. The docs are the source: edit them, then run
``python scripts/sync_readme.py`` (``make readme``). ``tests/unit/test_readme.py`` fails when the README has
drifted from the docs.

Each doc becomes the README section named by its first heading's README title: the doc's title line is
replaced by ``## <title>``, every other heading moves one level down when the doc's title is a level-1
heading (so the doc's ``##`` subsections become the README's ``###``), and image and doc links gain the
``docs/`` prefix they need from the repository root.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# README section title -> the doc it is copied from.
SECTIONS = {
    "The local demo": "docs/demo.md",
    "The decision rule": "docs/decision-rule.md",
    "Deploying to an AWS account": "docs/deploying.md",
}


def section_text(title: str, doc: Path) -> str:
    """The README section for `doc`: its body under ``## title``, headings and image links adjusted."""
    first, *body = doc.read_text().splitlines()
    demote = first.startswith("# ")
    lines = [f"## {title}"]
    fenced = False
    for line in body:
        if line.startswith("```"):
            fenced = not fenced
        if demote and not fenced and re.match(r"#{2,5} ", line):
            line = "#" + line
        # image and doc links are relative to docs/: from the repository root they need the prefix
        lines.append(re.sub(r"\]\((img/|[a-z-]+\.md\b)", r"](docs/\1", line))
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n\n"


def synced(readme: str) -> str:
    """`readme` with every section in SECTIONS replaced by its doc's current text."""
    for title, doc in SECTIONS.items():
        pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
        match = pattern.search(readme)
        if match is None:
            raise SystemExit(f"README.md has no section '## {title}'")
        readme = readme[: match.start()] + section_text(title, ROOT / doc) + readme[match.end() :]
    return readme


def main() -> int:
    before = README.read_text()
    after = synced(before)
    if after != before:
        README.write_text(after)
        print("README.md: sections updated from docs/")
    else:
        print("README.md: already in step with docs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
