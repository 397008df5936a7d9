"""The rollout spec at synth: which file (``-c spec=config/x.yaml``), validated, plus what synth alone needs.

A wrong spec must fail ``cdk synth`` with one line per problem naming the field and the value. The model
(``canarywise.spec``) does the validation shared with the runtime; this module adds the checks that only the
infrastructure cares about (`canarywise.spec.deployable`, shared with ``canarywise validate``), with the same
message format, and raises the same :class:`SpecError`.
``app.py`` turns it into a failed synth.
"""

from __future__ import annotations

from pathlib import Path

from constructs import Construct

from canarywise.spec import RolloutSpec, SpecError, load_spec
from canarywise.spec.deployable import PIPELINE_ACTION_TIMEOUT, synth_problems

__all__ = ["DEFAULT_SPEC", "PIPELINE_ACTION_TIMEOUT", "load_rollout_spec", "spec_path", "synth_problems"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = "config/mangaassist.yaml"


def spec_path(scope: Construct) -> Path:
    """The spec file named by the ``spec`` context value, relative to the working directory or the repo."""
    value = scope.node.try_get_context("spec") or DEFAULT_SPEC
    path = Path(str(value))
    if not path.is_absolute() and not path.exists() and (ROOT / path).exists():
        path = ROOT / path
    return path


def load_rollout_spec(scope: Construct) -> RolloutSpec:
    """Load and check the spec for synth; :class:`SpecError` lists every problem, one per line."""
    path = spec_path(scope)
    spec = load_spec(path)
    problems = synth_problems(spec, str(path))
    if problems:
        raise SpecError("\n".join(problems))
    return spec
