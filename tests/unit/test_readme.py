"""README.md carries the demo, decision-rule and deployment docs in full: it must say what docs/ says."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _sync_module() -> Any:
    spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "scripts" / "sync_readme.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_sections_match_the_docs() -> None:
    sync = _sync_module()
    readme = (ROOT / "README.md").read_text()
    assert sync.synced(readme) == readme, "README.md drifted from docs/: run `make readme` and commit"


def test_a_changed_doc_shows_as_drift() -> None:
    """The check can fail: a README whose decision-rule section lacks a line of the doc is rewritten."""
    sync = _sync_module()
    readme = (ROOT / "README.md").read_text()
    stale = readme.replace("### When it says HOLD\n", "### When it says HOLD (old)\n", 1)
    assert stale != readme
    assert sync.synced(stale) == readme
