"""The benchmark lives in the top-level ``bench/`` folder, not in the installed package: put the repository
root on ``sys.path`` so ``import bench`` works under pytest's importlib import mode."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
