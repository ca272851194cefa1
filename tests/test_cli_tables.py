"""The summary tables of ``naiad provision`` and ``naiad demo`` in an 80-column terminal: every serial, Initial Key
ID and KCV whole (a person must tell the failed unit and read its key ID), the problem of a failed unit under the
table, no line wider than the terminal."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from console.cli_demo import demo_problems, demo_table
from console.cli_provision import batch_line, problem_lines, summary_table
from i18n import set_language
from keys.errors import KeysError
from provisioning.pipeline import UnitRun
from provisioning.steps import StepOutcome

KCV = "4dfb6c3505"


def unit(serial: str, recipe: str, *, failed_at: str | None = None, key_id: str | None = None) -> UnitRun:
    steps = [StepOutcome(step="flash", ok=True, seconds=3.0)]
    if key_id is not None:
        steps.append(StepOutcome(step="inject", ok=True, data={"initial_key_id": key_id, "kcv": KCV}))
    if failed_at is not None:
        error = KeysError()
        steps.append(StepOutcome(step=failed_at, ok=False, error=error))
    result = "failed" if failed_at else "succeeded"
    return UnitRun(serial, recipe, result, steps, 1, "station-1", seconds=12.5)


def rendered(thing: Any) -> list[str]:
    console = Console(width=80, record=True, color_system=None, force_terminal=False)
    console.print(thing)
    return console.export_text().splitlines()


def test_the_provision_table_keeps_serials_and_key_ids_whole_at_80_columns() -> None:
    set_language("en")
    units = [
        unit("DF2035031D9", "distributor-bulk", key_id="DE11000100000001"),
        unit("DF2035031DA", "distributor-bulk", failed_at="register-inventory"),
    ]
    lines = rendered(summary_table(units, "Recipe distributor-bulk"))
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= 80, text
    for whole in ("DF2035031D9", "DF2035031DA", "DE11000100000001", "4DFB6C"):
        assert whole in text, text
    assert "…" not in text, text
    assert "register-inventory" in text.replace("\n", "").replace("│", "").replace(" ", ""), text
    problems = problem_lines(units)
    assert len(problems) == 1 and problems[0].startswith("DF2035031DA · register-inventory: ")
    assert "units: 2" in batch_line(SimpleNamespace(units=units, recipe=SimpleNamespace(name="x"), seconds=3.0))  # type: ignore[arg-type]


def test_the_demo_table_fits_80_columns_with_three_recipes() -> None:
    set_language("en")
    serials = ["DF2035031D9", "DF2035031DA"]
    recipes = ("distributor-bulk", "installer-onsite", "support-diagnose")
    batches = []
    for name in recipes:
        failed = "firmware-update" if name == "installer-onsite" else None
        units = [
            unit(serials[0], name, key_id="DE11000100000001" if name == recipes[0] else None),
            unit(serials[1], name, failed_at=failed),
        ]
        batches.append(SimpleNamespace(recipe=SimpleNamespace(name=name), units=units))
    run: Any = SimpleNamespace(world=SimpleNamespace(serials=serials), batches=batches)
    lines = rendered(demo_table(run))
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text, text
    for whole in (*serials, "DE11000100000001", "4DFB6C", *recipes):
        assert whole in text, text
    assert [p.split(":")[0] for p in demo_problems(run)] == ["DF2035031DA · firmware-update (installer-onsite)"]


def test_a_failed_units_bar_stops_where_it_failed_and_bars_keep_their_count_at_80_columns() -> None:
    from dataclasses import dataclass
    from io import StringIO

    from rich.progress import Progress

    from console.cli_progress import RecipeBars, bar_columns
    from terminal.events import PhaseStarted, Progressed, StepFinished

    @dataclass
    class Ended:
        ok: bool
        result: str

        def as_dict(self) -> dict[str, Any]:
            return {"result": self.result, "steps": []}

    console = Console(file=StringIO(), width=80, force_terminal=False)
    with Progress(*bar_columns(80), console=console) as progress:
        bars = RecipeBars(progress, "installer-onsite", outcome=lambda result: result.as_dict()["result"])
        bars.progressed(Progressed("DF2035031D9", "installer-onsite", "field-check", 2, 6, counts="items"))
        long = "Check the camera in the field"
        bars.phase_started(PhaseStarted("DF2035031D9", "installer-onsite", "field-check", long))
        bars.phase_started(PhaseStarted("DF2035031D9", "field-check", "check", "Checking against the stored calib"))
        lines = rendered(progress.make_tasks_table(progress.tasks))
        assert len(lines) == 1 and len(lines[0]) <= 80, lines
        assert re.search(r" 2/6 \d+:\d\d:\d\d$", lines[0].rstrip()) and "DF2035031D9" in lines[0], lines
        bars.finished(StepFinished("DF2035031D9", "installer-onsite", Ended(False, "failed")))
        [task] = progress.tasks
        assert (task.completed, task.total) == (2, 6) and "✗" in task.description


def test_a_batch_report_that_cannot_be_written_is_in_the_json_and_an_unreconciled_batch_says_why(
    tmp_path: Path,
) -> None:
    from console.cli_provision import reports_json, write_reports
    from provisioning.report_batch import findings

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    batch: Any = SimpleNamespace(units=[])
    station: Any = SimpleNamespace(ledger=None)
    files, error = write_reports(batch, station, blocker / "reports", as_json=True)
    assert files == [] and error is not None
    shown = reports_json(blocker / "reports", files, error)
    assert shown["report_files"] == [] and shown["report_error"]["error"] == "ReportNotWritten", shown

    lines = findings({"ok": False, "error": {"error": "LedgerUnavailable", "message": "the database is gone"}})
    assert len(lines) == 1 and "the database is gone" in lines[0][1] and "naiad inventory reconcile" in lines[0][1]


def test_keep_says_the_kept_key_store_cannot_be_opened_again(tmp_path: Path) -> None:
    from console.cli_demo import kept_lines

    set_language("en")
    lines = kept_lines(tmp_path, "DF2035031D9")
    assert any("cannot be opened again" in line for line in lines)
    assert not any("ledger, key store" in line for line in lines)
    assert lines[-1].endswith(f"NAIAD_DATA_DIR={tmp_path / 'data'} naiad history DF2035031D9")
