"""Helpers for the infrastructure tests: synthesize a spec (no bundle, no Docker) and read the template.

Synth takes ~15 s on this machine, so each module synthesizes once (module-scoped fixtures) and asserts on
the resulting CloudFormation template. Bundling is skipped with the context ``aws:cdk:bundling-stacks: []``:
the Lambda asset then points at ``lambdas/`` as it is, so these tests never need ``build/lambda-bundle``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# `stacks` is a top-level folder, not an installed package (``cdk synth`` runs app.py from the repo root);
# pytest's importlib mode does not put the root on sys.path, so do it here.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stacks.synth import build_app  # noqa: E402

SPEC = ROOT / "config" / "mangaassist.yaml"
SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}


@dataclass(frozen=True)
class Synthesized:
    template: dict[str, Any]
    outdir: Path

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_}

    def one(self, type_: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
        return next(iter(found.items()))

    def logical_id(self, type_: str, contains: str) -> str:
        found = [k for k in self.resources(type_) if contains in k]
        assert len(found) == 1, f"expected one {type_} with {contains!r} in its id, found {found}"
        return found[0]

    def text(self, value: str | dict[str, Any]) -> str:
        """A template string value, ``Fn::Join`` joined, every other token as a marker (:func:`text_of`)."""
        return text_of(value)

    def json_value(self, value: str | dict[str, Any]) -> Any:
        """A template value holding JSON (a definition, ``Stack.to_json_string``), parsed."""
        return json.loads(text_of(value))

    def state_machine_definition(self, contains: str) -> dict[str, Any]:
        """The ASL of a state machine, with every CloudFormation token replaced by a JSON string marker
        ``"<Ref X>"`` / ``"<GetAtt X.Arn>"`` so references stay checkable."""
        machine = self.template["Resources"][self.logical_id("AWS::StepFunctions::StateMachine", contains)]
        definition: dict[str, Any] = self.json_value(machine["Properties"]["DefinitionString"])
        return definition


def token_marker(token: dict[str, Any]) -> str:
    if "Ref" in token:
        return f"<Ref {token['Ref']}>"
    if "Fn::GetAtt" in token:
        return f"<GetAtt {'.'.join(token['Fn::GetAtt'])}>"
    return "<token>"


def text_of(value: str | dict[str, Any]) -> str:
    """`value` with ``Fn::Join`` joined and every other token replaced by its :func:`token_marker`."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(text_of(part) for part in parts)
    return token_marker(value)


def synthesize(spec_file: Path, outdir: Path) -> Synthesized:
    """Synth through the same entry point as ``cdk synth`` (spec loading, the stack, cdk-nag)."""
    app = build_app({"spec": str(spec_file), **SKIP_BUNDLING}, outdir=str(outdir))
    assembly = app.synth()
    (stack,) = assembly.stacks
    return Synthesized(template=stack.template, outdir=outdir)


def spec_data() -> dict[str, Any]:
    data = yaml.safe_load(SPEC.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="session")
def synthesize_spec() -> Callable[[Path, Path], Synthesized]:
    """:func:`synthesize`, for module-scoped fixtures (test modules cannot import conftest by name)."""
    return synthesize


@pytest.fixture
def mangaassist() -> dict[str, Any]:
    """A fresh copy of config/mangaassist.yaml as data, to break one field at a time."""
    return spec_data()
