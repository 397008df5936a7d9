"""The app as tests build it: context → spec → the stack, with cdk-nag, as ``app.py`` composes it.

``app.py`` (what ``cdk synth`` runs) spells the same steps out and turns a :class:`SpecError` into a failed
synth; tests call :func:`build_app` with a context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App

from .nag import add_nag_checks
from .spec_loading import load_rollout_spec
from .stack import CanarywiseStack

ROOT = Path(__file__).resolve().parents[1]


def cdk_json_context() -> dict[str, Any]:
    """The feature flags and defaults of ``cdk.json``; the CDK CLI passes them, a test must pass them too."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert isinstance(context, dict)
    return context


def build_app(context: dict[str, Any] | None = None, *, outdir: str | None = None) -> App:
    """The CDK app for the spec named by ``context["spec"]``; raises :class:`SpecError` for a wrong spec.

    Without `context` the app reads its context from the CDK CLI (``-c spec=…`` and ``cdk.json``).

    Example
    -------
    >>> app = build_app({"spec": "config/mangaassist.yaml", "aws:cdk:bundling-stacks": []})
    >>> app.node.children[0].stack_name
    'canarywise-mangaassist'
    """
    app = App() if context is None else App(context={**cdk_json_context(), **context}, outdir=outdir)
    spec = load_rollout_spec(app)
    CanarywiseStack(app, f"canarywise-{spec.service}", spec=spec)
    add_nag_checks(app)
    return app
