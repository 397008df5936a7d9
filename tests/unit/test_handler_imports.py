"""Each Lambda handler module imports only what its function's bundle ships.

The functions that must act fast (rollback, stage gate, promote) load neither scipy nor numpy, so their
bundle can leave both out (issue 14). A handler module that starts importing one of the left-out packages
at module load would fail its cold start in Lambda with ``ModuleNotFoundError`` while every in-process
test still passes, because the test venv has everything. So each module is imported in a fresh
interpreter (``sys.modules`` of this process is shared by all tests) and the packages its bundle lacks
must be absent afterwards.

Import inside the function that needs it (as ``canarywise.stats.means`` does with ``scipy.special``)
when a slim function only reaches a heavy package through a module it needs for something else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# handler module -> top-level packages (or subpackages) its function's bundle does not ship.
# Not scipy.stats for the significance check: absent at module load, but imported at run time (the
# Benjamini-Hochberg step, stats.multiple.adjust_pvalues), so its bundle must keep it.
ABSENT = {
    "canarywise.handlers.rollback": ("scipy", "numpy", "jinja2"),
    "canarywise.handlers.stage_gate": ("scipy", "numpy"),
    "canarywise.handlers.promote": ("scipy", "numpy", "jinja2"),
    "canarywise.handlers.significance_check": ("jinja2",),
}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_after_import(module: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "lambdas"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", sorted(ABSENT))
def test_handler_module_does_not_import_what_its_bundle_lacks(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert module in loaded
    for package in ABSENT[module]:
        found = sorted(name for name in loaded if name == package or name.startswith(package + "."))
        assert not found, f"{module} imports {found[:3]} at module load; its bundle has no {package}"


def test_probe_sees_a_heavy_import() -> None:
    """The probe itself can fail: importing the statistics that use scipy at module load shows scipy."""
    assert "scipy.optimize" in _loaded_after_import("canarywise.stats.sequential")
