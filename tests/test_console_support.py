"""The support desk end to end against the simulator: a provisioned unit with a dead projector is found by its
label's QR text, its history shows the key injection (KCV, never a key), the diagnosis says what is wrong and what
to do, and the report is exported as PDF and JSON.  Refused input (a wrong QR text, a bad report name) shows its
error and changes nothing; a unit the ledger never saw says so.

One demo world for the module (two units, a 1 MiB bundle): the first unit is flashed, keyed, registered and
labelled by the quick bulk recipe; the second is left untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot
from stationcheck import write_quick_bulk

from console.console_settings import ConsoleSettings
from console.context import ConsoleContext
from console.demo_world import BDK_LABEL, DemoWorld
from console.operator_login import OperatorLogin
from console.support_desk import SupportDesk
from console.unit_card import Bench
from console.workers import StationProvider, Workers
from provisioning import operators as ops
from provisioning.pipeline import run_recipe
from provisioning.recipes import load_recipe

pytestmark = pytest.mark.slow  # a demo world and a full diagnosis: about 25 s

WAIT_MS = 60_000


@dataclass
class World:
    demo: DemoWorld
    serial: str
    """The provisioned unit."""
    qr_text: str
    """Its label's QR text, as the label step made it."""
    untouched: str
    """A unit the ledger never saw at work."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("support")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ops, "SCRYPT_N", 2**8)
        with DemoWorld(root / "world", 2, firmware_mib=1) as demo:
            serial, untouched = demo.serials
            recipe = write_quick_bulk(root / "quick-bulk.toml", demo.bundle_path, BDK_LABEL)
            batch = run_recipe(load_recipe(str(recipe)), [serial], demo.resources("operator"))
            [run] = batch.units
            assert run.ok, batch.as_dict()
            label = next(step for step in run.steps if step.step == "label")
            yield World(demo, serial, label.data["qr_text"], untouched)


@pytest.fixture
def desk(world: World, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SupportDesk]:
    """The desk as the shell builds it, the world's support engineer logged in."""
    for name, value in world.demo.env("support").items():
        monkeypatch.setenv(name, value)
    context = console_context(world.demo, tmp_path)
    context.operator.session = world.demo.session("support")
    context.operator.changed.emit()
    shown = SupportDesk(context)
    qtbot.addWidget(shown)
    qtbot.addWidget(context.bench)
    yield shown
    context.workers.shutdown()
    context.stations.close()


def console_context(demo: DemoWorld, folder: Path) -> ConsoleContext:
    """What the main window makes: workers, a station over the world's units, the login, the bench's cards (the
    units the bus shows) and the settings."""
    workers = Workers()
    stations = StationProvider(demo.wiring.station)
    operator = OperatorLogin(workers, stations)
    bench = Bench()
    for device in demo.wiring.discovery().devices():
        bench.device_added(device)
    settings = ConsoleSettings(
        ledger_url=demo.ledger_url, platform_config=str(demo.platform_config_path), reports_dir=str(folder)
    )
    return ConsoleContext(demo.wiring, workers, stations, operator, bench, settings, folder / "console.json")


def scan(qtbot: QtBot, desk: SupportDesk, text: str) -> None:
    """What a label scanner does: type the text into the find field, then Enter."""
    desk.find_field.clear()
    QTest.keyClicks(desk.find_field, text)
    QTest.keyClick(desk.find_field, Qt.Key.Key_Return)


def history_read(qtbot: QtBot, desk: SupportDesk) -> None:
    qtbot.waitUntil(lambda: desk._history_job is None and desk.history_data is not None, timeout=WAIT_MS)


def test_find_by_label_diagnose_and_export(world: World, desk: SupportDesk, qtbot: QtBot, tmp_path: Path) -> None:
    demo, serial = world.demo, world.serial
    scan(qtbot, desk, world.qr_text)
    history_read(qtbot, desk)
    assert desk.serial == serial and desk.find_field.text() == serial
    rows = desk.history.rows()
    kinds = [row[1] for row in rows]
    assert {"run", "step", "operation", "injection"} <= set(kinds), rows
    with demo.ledger() as ledger:
        [injection] = ledger.injections(serial)
    from keys.kcv import shown

    [injected] = [row for row in rows if row[1] == "injection"]
    assert injection.initial_key_id.hex().upper() in injected[2] and shown(injection.kcv) in injected[2]
    assert all(row[0].endswith("UTC+08:00") for row in rows)  # China time, as the CLI and the reports
    assert not re.search(r"[0-9A-Fa-f]{32}", " ".join(" ".join(row) for row in rows))  # nothing as long as a key
    times = [row[0] for row in rows]
    assert times == sorted(times, reverse=True)  # newest first
    assert not desk.diagnose_button.isHidden() and desk.diagnose_button.isEnabled()

    demo.simulator("faults", serial=serial, dead_projector=True)
    try:
        job = desk.diagnose()
        assert job is not None
        phases: list[str] = []
        job.phase_started.connect(lambda event: phases.append(event.phase))
        assert not desk.diagnose_button.isEnabled()  # one diagnosis at a time
        with qtbot.waitSignal(job.succeeded, timeout=WAIT_MS):
            pass
    finally:
        demo.simulator("faults", serial=serial, dead_projector=False)
    assert "camera-self-test" in phases and "verdict" in phases
    verdict = desk.diagnosis.verdict_data()
    assert (verdict["verdict"], verdict["action"]) == ("dead-projector", "rma")
    assert desk.diagnosis.verdict.text() == "Verdict: The IR projector is dead"
    assert desk.diagnosis.action.text() == "What to do: Return the unit to the manufacturer (RMA)"
    checks = desk.diagnosis.checks
    found = {
        str(item.data(0, Qt.ItemDataRole.UserRole)): item.text(1)
        for item in (checks.topLevelItem(i) for i in range(checks.topLevelItemCount()))
        if item is not None
    }
    assert set(found) == {
        "unit-info", "boot-history", "firmware-slots", "key-status", "field-check", "camera-self-test", "link-check",
        "logs",
    }  # fmt: skip
    assert found["key-status"] == "ok" and found["camera-self-test"] in ("finding", "failed")
    qtbot.waitUntil(lambda: any(row[2] == "support-diagnose" for row in desk.history.rows()), timeout=WAIT_MS)
    assert desk.diagnose_button.isEnabled()

    for name in ("report.pdf", "report.json"):
        job = desk.export_report(tmp_path / "out" / name)
        assert job is not None
        with qtbot.waitSignal(job.succeeded, timeout=WAIT_MS):
            pass
        assert str(tmp_path / "out" / name) in desk.status.text()
    assert (tmp_path / "out" / "report.pdf").read_bytes().startswith(b"%PDF")
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert (report["verdict"]["verdict"], report["verdict"]["action"]) == ("dead-projector", "rma")
    shown_texts = [label.text() for label in desk.findChildren(QLabel)] + [" ".join(r) for r in desk.history.rows()]
    for secret in (demo.env("support")["NAIAD_KEYSTORE_PASSPHRASE"], demo.token("support")):
        assert not any(secret in text for text in shown_texts)


def test_wrong_input_changes_nothing(world: World, desk: SupportDesk, qtbot: QtBot, tmp_path: Path) -> None:
    desk.find_unit(world.serial)
    history_read(qtbot, desk)
    before = desk.history.rows()
    scan(qtbot, desk, world.qr_text.replace("NAIAD1;S=", "NAIAD1;X="))
    assert "is not a unit's serial or the text of its label's QR code" in desk.status.text()
    assert desk.serial == world.serial and desk.history.rows() == before and desk._history_job is None
    assert desk.find_unit("bad serial!") is None and "bad serial!" in desk.status.text()

    assert desk.export_report(tmp_path / "report.docx") is None
    assert "report.docx" in desk.status.text() and ".pdf" in desk.status.text()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    job = desk.export_report(blocked / "report.json")
    assert job is not None
    with qtbot.waitSignal(job.failed, timeout=WAIT_MS):
        pass
    assert "The report could not be written to" in desk.status.text()
    assert not list(tmp_path.glob("report*")) and blocked.read_text(encoding="utf-8") == "not a folder"


def test_a_unit_the_ledger_never_saw(world: World, desk: SupportDesk, qtbot: QtBot) -> None:
    for serial in ("DF2NEVER0001", world.untouched):
        scan(qtbot, desk, serial)
        history_read(qtbot, desk)
        assert desk.status.text().startswith(f"The ledger knows nothing of unit {serial}")
        assert desk.history.rows() == []
        if serial != world.untouched:
            assert not desk.diagnose_button.isEnabled() and desk.diagnose() is None
            assert desk.status.text().startswith("Unit DF2NEVER0001 is not attached to this station")
    assert desk.diagnose_button.isEnabled()  # attached: it may still be diagnosed (a unit keyed elsewhere)


def test_the_bench_units_are_offered(world: World, desk: SupportDesk, qtbot: QtBot) -> None:
    offered = [desk.bench_units.itemData(i) for i in range(1, desk.bench_units.count())]
    assert sorted(offered) == sorted([world.serial, world.untouched])
    index = offered.index(world.serial) + 1
    desk.bench_units.activated.emit(index)
    history_read(qtbot, desk)
    assert desk.serial == world.serial and desk.history.rows()
    assert not desk.diagnose_button.isHidden()

    desk.context.operator.log_out()  # the next person at the desk starts afresh, and may diagnose nothing
    assert desk.serial is None and desk.history.rows() == [] and desk.diagnose_button.isHidden()
    assert desk.diagnose() is None


HOSTILE = 'x <img src="file:///etc/naiad.png"><h1>FAKE OK</h1>'
"""Text a unit, the platform or a ledger row may carry: shown as typed, never as HTML."""


def test_unit_and_ledger_text_is_shown_as_text_never_as_html(qtbot: QtBot) -> None:
    import datetime as dt

    from console.history_view import HistoryView
    from console.support_diagnosis import DiagnosisPanel
    from provisioning.history import UnitHistory
    from provisioning.ledger.records import DeviceRecord
    from provisioning.pipeline import UnitRun
    from provisioning.steps import StepOutcome

    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    history = HistoryView()
    qtbot.addWidget(history)
    run = {"started": now, "recipe": HOSTILE, "status": "failed", "station": "s1", "operator": "op"}
    history.show_history(UnitHistory("SN1", DeviceRecord("SN1", HOSTILE, now, now, None), runs=[run]))
    assert HOSTILE in history.summary.text() and history.summary.textFormat() == Qt.TextFormat.PlainText
    row = history.tree.topLevelItem(0)
    assert row is not None and row.text(2) == HOSTILE and "<img" not in row.toolTip(2)

    panel = DiagnosisPanel()
    qtbot.addWidget(panel)
    verdict = StepOutcome("verdict", True, data={"verdict": HOSTILE, "action": "none", "reasons": [HOSTILE]})
    check = StepOutcome("logs", True, detail=HOSTILE, data={"findings": [HOSTILE]})
    panel.show_run(UnitRun("SN1", "support-diagnose", "succeeded", [check, verdict], 1, "s1"))
    for label in panel.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText, label.objectName()
    assert HOSTILE in panel.reasons.text() and HOSTILE in panel.verdict.text()
    item = panel.checks.topLevelItem(0)
    assert item is not None and "<img" not in item.toolTip(2) and "&lt;img" in item.toolTip(2)


def test_a_scanners_whitespace_is_ignored_and_hostile_text_refused_in_plain_words() -> None:
    from console.support_desk import UnitNotRecognised, unit_serial

    assert unit_serial("  SN-0001\r\n") == "SN-0001"
    for hostile in ("SN\x00<b>1", "x" * 100_000, "NAIAD1;S=\x00"):
        with pytest.raises(UnitNotRecognised) as refused:
            unit_serial(hostile)
        shown = str(refused.value)
        assert "\x00" not in shown and len(shown) < 200, shown
