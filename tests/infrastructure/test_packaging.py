"""What ``pip install canarywise[extra]`` gives: each extra covers the third-party imports of what it is for,
and the construct's modules import each other relatively (installed, stacks/ is the package canarywise_cdk).

Fast: the sources are read with ``ast``; which distribution provides an import comes from the installed
packages' own metadata (``importlib.metadata.packages_distributions``), not from a list kept here.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lambdas" / "canarywise"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What each extra is for: the sources whose imports it must cover (on top of the core dependencies).
USES = {
    "cdk": [ROOT / "stacks"],
    "cli": [PACKAGE / "cli", PACKAGE / "local", PACKAGE / "demo", ROOT / "stacks"],  # demo synthesizes
    "emit": [PACKAGE / "emit.py", PACKAGE / "spec"],
}
CORE = [PACKAGE / name for name in ("handlers", "runtime", "data", "decision", "stats", "lifecycle")]


def _distribution(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for file in [path] if path.is_file() else path.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    own = {"canarywise", "stacks", "canarywise_cdk", "__future__"}
    return {n for n in names if n not in sys.stdlib_module_names and n not in own}


def _provided(requirements: list[str]) -> set[str]:
    wanted = {_distribution(r) for r in requirements}
    # An extra such as moto[server] brings its own dependencies (flask for the server): count them too.
    for requirement in requirements:
        extras = re.findall(r"\[([^\]]+)\]", requirement)
        if extras:
            for dependency in metadata.requires(_distribution(requirement)) or []:
                if any(f'extra == "{extra}"' in dependency for extra in extras[0].split(",")):
                    wanted.add(_distribution(dependency))
    distributions = metadata.packages_distributions()
    return {module for module, dists in distributions.items() if wanted & {_distribution(d) for d in dists}}


@pytest.mark.parametrize("extra", sorted(USES))
def test_each_extra_covers_what_its_code_imports(extra: str) -> None:
    provided = _provided(PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra])
    missing = _third_party_imports(USES[extra]) - provided
    assert not missing, f"extra {extra!r} lacks the distributions of {sorted(missing)}"


def test_the_core_covers_the_functions_and_needs_no_extra() -> None:
    missing = _third_party_imports(CORE) - _provided(PROJECT["dependencies"]) - {"boto3", "botocore"}
    assert not missing, f"the core dependencies lack {sorted(missing)} (boto3 is the Lambda runtime's)"


def test_the_construct_package_imports_itself_relatively() -> None:
    """Installed, stacks/ is canarywise_cdk: an absolute ``stacks.`` import would fail there."""
    absolute = [
        f"{file.name}:{node.lineno}"
        for file in sorted((ROOT / "stacks").glob("*.py"))
        for node in ast.walk(ast.parse(file.read_text()))
        if (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("stacks"))
        or (isinstance(node, ast.Import) and any(a.name.startswith("stacks") for a in node.names))
    ]
    assert not absolute, f"use `from .module import …` in stacks/: {absolute}"
    assert (ROOT / "canarywise_cdk").resolve() == (ROOT / "stacks").resolve()
