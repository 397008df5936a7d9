"""Make the shared builders importable as `decision_kit`, and the statistics tests' independent references as
`score_reference` (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "stats"))
