"""End-to-end fixtures; the helpers live in ``local_kit.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib: put this folder on sys.path so tests can `import local_kit`.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (installed on a fresh machine: ``browser.py``)."""
    from browser import chromium as find_chromium

    return find_chromium()
