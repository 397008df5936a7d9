"""The operator commands without AWS: the service is required, confirmation, who acts, `lifecycle`."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from canarywise.cli.deployment import NotConfirmedError, caller_identity, confirm
from canarywise.cli.main import main
from canarywise.lifecycle.table import TRANSITIONS, table_rows


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["approve", "mangaassist-v42-0123456789"],
        ["rollback", "--reason", "complaints"],
        ["rollback", "--reason", "complaints", "--force", "--yes"],
        ["report", "mangaassist-v42-0123456789"],
    ],
)
def test_every_command_that_touches_aws_needs_a_service(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CANARYWISE_SERVICE", "SERVICE"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"canarywise {argv[0]}: error: --service is required (or set $CANARYWISE_SERVICE)\n"
    )


def test_rollback_force_and_experiment_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["rollback", "--reason", "x", "--force", "--experiment", "e", "--service", "s"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "canarywise rollback: error: argument --experiment: not allowed with argument --force\n"
    )


def test_lifecycle_prints_every_transition(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle"]) == 0
    out = capsys.readouterr().out
    for event, service_from, service_to, *_, traffic, who in table_rows():
        assert f"{event}  " in out
        assert f"service     {service_from} → {service_to}\n" in out
        assert f"traffic     {traffic}\n" in out
        assert f"taken by    {who}\n" in out


def test_lifecycle_json_is_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lifecycle", "--json"]) == 0
    transitions = json.loads(capsys.readouterr().out)["transitions"]
    assert [t["event"] for t in transitions] == [event.value for event in TRANSITIONS]
    assert [tuple(t.values()) for t in transitions] == table_rows()


def test_confirm_without_a_terminal_refuses_instead_of_acting() -> None:
    with pytest.raises(
        NotConfirmedError, match=r"^not confirmed: no terminal to ask on; pass --yes to act without asking$"
    ):
        confirm("Roll back?", yes=False, stdin=io.StringIO("y\n"), stdout=io.StringIO())


@pytest.mark.parametrize("answer", ["", "n", "no", "maybe", "yess"])
def test_confirm_takes_anything_but_yes_as_no(answer: str) -> None:
    shown = io.StringIO()
    with pytest.raises(NotConfirmedError, match=r"^not confirmed: nothing changed$"):
        confirm("Roll back mangaassist?", yes=False, stdin=_Terminal(answer + "\n"), stdout=shown)
    assert shown.getvalue() == "Roll back mangaassist? [y/N] "
    assert NotConfirmedError.exit_code == 4


@pytest.mark.parametrize("answer", ["y", "Y", "yes", " YES "])
def test_confirm_goes_on_with_yes(answer: str) -> None:
    confirm("Roll back?", yes=False, stdin=_Terminal(answer + "\n"), stdout=io.StringIO())


def test_yes_does_not_ask() -> None:
    stdin = _Terminal("n\n")
    confirm("Roll back?", yes=True, stdin=stdin, stdout=io.StringIO())
    assert stdin.read() == "n\n"  # nothing was read


def test_who_acts_is_the_os_user_when_sts_cannot_say(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import NoCredentialsError

    class NoSts:
        def get_caller_identity(self) -> Any:
            raise NoCredentialsError()

    monkeypatch.setattr("canarywise.data._aws.client", lambda service: NoSts())
    monkeypatch.setattr("getpass.getuser", lambda: "ana")
    assert caller_identity() == "ana"
