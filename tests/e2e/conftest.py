"""End-to-end fixtures; the helpers live in ``local_kit.py``."""

from __future__ import annotations

import sys
from pathlib import Path

# pytest runs with --import-mode=importlib: put this folder on sys.path so tests can `import local_kit`.
sys.path.insert(0, str(Path(__file__).parent))
