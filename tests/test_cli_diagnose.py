"""``naiad diagnose`` and ``naiad history`` on a provisioned simulated unit, through the pipeline and the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from diagnosebench import Provisioned, provisioned_unit

from console.cli import cli


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    with provisioned_unit(tmp_path_factory.mktemp("cli-diagnose")) as provisioned:
        yield provisioned


def naiad(unit: Provisioned, *args: str, token: str | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["--sim", str(unit.sim.state_dir), "--ledger", unit.ledger_url, *args],
        env={
            "NAIAD_LANG": "en",
            "NAIAD_OPERATOR": unit.token if token is None else token,
            "NAIAD_CONFIG_DIR": str(unit.config_dir),
        },
    )


def test_a_healthy_unit_is_diagnosed_through_the_pipeline_and_reported(unit: Provisioned, tmp_path: Path) -> None:
    before = unit.snapshot()
    report = tmp_path / "unit.json"
    result = naiad(unit, "diagnose", unit.serial, "--json", "--report", str(report))
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["result"] == "succeeded" and shown["verdict"]["action"] == "none", shown["verdict"]
    assert [s["name"] for s in shown["steps"]] == [
        "unit-info", "boot-history", "firmware-slots", "key-status", "field-check", "camera-self-test",
        "link-check", "logs", "verdict",
    ]  # fmt: skip
    assert all(s["ok"] for s in shown["steps"])
    assert report.exists() and shown["report"] == str(report)
    assert unit.serial in report.read_text(encoding="utf-8")
    assert unit.snapshot() == before
    again = naiad(unit, "diagnose", unit.serial, "--json")  # read only: a second diagnosis runs again
    assert again.exit_code == 0 and json.loads(again.output)["run_id"] != shown["run_id"], again.output


def test_a_faulty_unit_gets_its_action_in_plain_words(unit: Provisioned) -> None:
    unit.sim.call("faults", serial=unit.serial, dead_projector=True)
    try:
        result = naiad(unit, "diagnose", unit.serial)
    finally:
        unit.sim.call("faults", serial=unit.serial, dead_projector=False)
    assert result.exit_code == 1, result.output
    assert "Verdict: The IR projector is dead" in result.output
    assert "What to do: Return the unit to the manufacturer (RMA)" in result.output
    assert "projector shows no dots" in result.output


def test_a_unit_not_attached_is_said_at_once_and_no_run_is_recorded(unit: Provisioned) -> None:
    result = naiad(unit, "diagnose", "DF2Z99999", "--json")
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert "DF2Z99999" in json.loads(result.output)["message"]
    assert unit.bench.ledger.unit_runs("DF2Z99999") == []  # refused before the pipeline (no 120 s replug wait)


def test_diagnose_shows_its_progress_and_says_each_problem_once(
    unit: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contextlib import contextmanager

    from console import cli_progress
    from terminal.events import Recorder

    seen = Recorder()

    @contextmanager
    def bars(as_json: bool, recipe: str, outcome: object = None) -> Iterator[Recorder]:
        assert recipe == "support-diagnose"
        yield seen

    monkeypatch.setattr(cli_progress, "recipe_bars", bars)
    unit.sim.call("faults", serial=unit.serial, dead_projector=True)
    try:
        result = naiad(unit, "diagnose", unit.serial)
    finally:
        unit.sim.call("faults", serial=unit.serial, dead_projector=False)
    assert result.exit_code == 1, result.output
    phases = [e.phase for e in seen.events if type(e).__name__ == "PhaseStarted"]
    assert "link-check" in phases and "verdict" in phases, phases


def test_a_check_that_could_not_run_says_its_error_once() -> None:
    from rich.console import Console

    from console.cli_diagnose import _check_rows
    from provisioning.steps import StepOutcome

    said = "The unit's firmware does not support this check (OBJECT_READ)"
    rows = _check_rows([StepOutcome("link-check", False, 0.1, said, {"findings": [said]})])
    console = Console(width=160, record=True)
    console.print(rows)
    assert console.export_text().count("does not support this check") == 1


def test_diagnose_needs_a_logged_in_operator(unit: Provisioned) -> None:
    result = naiad(unit, "diagnose", unit.serial, "--json", token="")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "log" in json.loads(result.output)["message"].lower()


def test_history_shows_what_was_done_to_the_unit(unit: Provisioned) -> None:
    table = naiad(unit, "history", unit.serial)
    assert table.exit_code == 0, table.output
    for shown in ("bench-prep", "flash", "injection", "calibration"):
        assert shown in table.output, table.output
    as_json = json.loads(naiad(unit, "history", unit.serial, "--json").output)
    [injection] = as_json["injections"]
    assert len(injection["kcv"]) == 6 and len(injection["initial_key_id"]) == 16  # keys.kcv.shown, as reports
    assert injection["kcv"] in table.output and "UTC+08:00" in table.output  # China time, as the reports show it
    assert injection["injected"].endswith("+00:00"), injection  # JSON: ISO 8601 with its offset
    assert {r["recipe"] for r in as_json["runs"]} >= {"bench-prep"}
    unknown = naiad(unit, "history", "DF2Z99999")
    assert unknown.exit_code == 1 and "knows nothing of unit DF2Z99999" in unknown.output


def test_a_tampered_unit_is_zeroised_by_naiad_sim_and_diagnosed_for_re_injection(unit: Provisioned) -> None:
    """Last: the keys do not come back."""
    tamper = CliRunner().invoke(cli, ["sim", "zeroise", unit.serial, "--state", str(unit.sim.state_dir)])
    assert tamper.exit_code == 0, tamper.output
    result = naiad(unit, "diagnose", unit.serial, "--json")
    assert result.exit_code == 1, result.output
    shown = json.loads(result.output)
    assert (shown["verdict"]["verdict"], shown["verdict"]["action"]) == ("keys-missing", "re-inject")
    [keys] = [s for s in shown["steps"] if s["name"] == "key-status"]
    assert keys["data"]["state"] == "factory" and keys["data"]["keys"] == 0
