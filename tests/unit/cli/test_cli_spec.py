"""``canarywise validate`` and ``canarywise schema``: the shipped spec passes, a broken one fails with one
line per problem naming the field, the JSON Schema (checked by the independent ``jsonschema``) accepts
the shipped spec and refuses what the model refuses, and the checked-in reference and schema are what the
model generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

from canarywise.cli.spec_reference import reference_markdown, schema_json, spec_schema, undocumented_fields

if TYPE_CHECKING:
    from tests.unit.cli.conftest import RunCli

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "config" / "mangaassist.yaml"


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return data


def test_the_shipped_spec_is_valid(run_cli: RunCli) -> None:
    code, out, err = run_cli(["validate", str(SPEC)])
    assert (code, err) == (0, "")
    assert out.startswith(f"{SPEC}: valid: service mangaassist, canary, stages 5% -> 25% -> 50%")


@pytest.mark.parametrize(
    ("change", "field", "shown"),
    [
        (lambda d: d["statistics"].update(alpha=1.5), "statistics.alpha", "1.5"),
        (lambda d: d["stages"][1].update(percent=2), "stages[1].percent", "2"),
        (lambda d: d["metrics"][0].update(kind="ratio"), "metrics[0].kind", "'ratio'"),
        (lambda d: d["stages"][0].update(min_duration="4 hours"), "stages[0].min_duration", "4 hours"),
        (lambda d: d.update(colour="red"), "colour", "red"),
    ],
)
def test_a_broken_spec_fails_naming_the_field(
    change: Any, field: str, shown: str, tmp_path: Path, run_cli: RunCli
) -> None:
    data = _shipped()
    change(data)
    path = _write(tmp_path, data)
    code, out, err = run_cli(["validate", str(path)])
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"canarywise validate: {path}: ")
    assert field in lines[0]
    assert shown in lines[0]
    assert "Traceback" not in err


def test_validate_runs_the_checks_synth_adds(tmp_path: Path, run_cli: RunCli) -> None:
    """A ladder of 48 h x 1.25 + 48 h + 1500 h = 1608 h passes the model but not synth (1440 h, the
    approval's longest wait, less 72 h to approve)."""
    data = _shipped()
    data["stages"][2]["max_duration"] = "1500h"
    code, _, err = run_cli(["validate", str(_write(tmp_path, data))])
    assert code == 1
    assert "stages: the ladder can run 1608 h after a rollback" in err


def test_validate_json_and_a_missing_file(tmp_path: Path, run_cli: RunCli) -> None:
    code, out, _ = run_cli(["validate", str(SPEC), "--json"])
    payload = json.loads(out)
    assert (code, payload["valid"], payload["problems"]) == (0, True, [])
    assert payload["summary"]["stages"] == [5, 25, 50]
    code, out, err = run_cli(["validate", str(tmp_path / "nope.yaml")])
    assert (code, out) == (1, "")
    assert err == f"canarywise validate: rollout spec '{tmp_path / 'nope.yaml'}' not found\n"


def test_the_schema_accepts_the_shipped_spec_and_refuses_what_the_model_refuses(
    run_cli: RunCli,
) -> None:
    code, out, _ = run_cli(["schema"])
    schema = json.loads(out)
    assert code == 0
    assert schema == spec_schema()
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(_shipped())  # durations as "48h", numbers as numbers
    for change in (
        lambda d: d["statistics"].update(alpha=1.5),
        lambda d: d["stages"][0].update(min_duration="4 hours"),
        lambda d: d["metrics"][0].update(kind="ratio"),
        lambda d: d.update(colour="red"),
        lambda d: d["metrics"][0]["source"].update(type="prometheus"),
    ):
        data = _shipped()
        change(data)
        assert not validator.is_valid(data)


def test_every_field_of_the_model_is_documented() -> None:
    assert undocumented_fields() == [], "add the field to NOTES in canarywise/cli/spec_reference.py"


def test_the_checked_in_reference_and_schema_are_generated_from_the_model(
    run_cli: RunCli,
) -> None:
    regenerate = (
        "regenerate: canarywise schema --reference > docs/spec-reference.md; "
        "canarywise schema > docs/spec-schema.json"
    )
    assert (ROOT / "docs" / "spec-reference.md").read_text() == reference_markdown(), regenerate
    assert (ROOT / "docs" / "spec-schema.json").read_text() == schema_json(), regenerate
    code, out, _ = run_cli(["schema", "--reference"])
    assert code == 0
    assert out == reference_markdown()
    # Spot checks against the model as written (config/mangaassist.yaml's comments and model.py):
    assert "| `check_interval` | duration" in out
    assert "| `300` |" in out
    assert "| `statistics.alpha` | number | probability | `0.05` | > 0, < 1 |" in out
