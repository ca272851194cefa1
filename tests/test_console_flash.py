"""The console's "Flash firmware" action: the dialog, progress on the cards from worker threads,
per-unit failures, units held while flashing, language switch, and one real flash of a simulated unit."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import IdleDiscovery, demo_tool, device
from PyQt6.QtCore import Qt, QThread, QThreadPool
from PyQt6.QtWidgets import QApplication

import i18n
from console.composition import Wiring
from console.flash_dialog import FlashDialog, UnitChoice
from console.flash_monitor import FLASHED, WAITING
from console.main_window import MainWindow
from console.style import UnitState
from console.unit_card import UnitCard, error_texts
from console.workers import Job, Workers
from firmware.bundle import Bundle
from firmware.errors import MalformedBundle, UntrustedBundle
from firmware.signing import short_key_id
from i18n import _
from provisioning.flashing import FlashNotConfirmed, FlashPhase, FlashResult, phase_label
from provisioning.operators import OperatorSession
from terminal.discovery import Device
from terminal.errors import NaiadError
from terminal.events import Listener, Reporter
from terminal.models import model_by_id

WAIT_MS = 5000
NOWHERE = Wiring(Path("/nonexistent-sim"))  # the tests' discovery and station stand in for its bus
DF2 = model_by_id("df2")
FROG = model_by_id("frog-pro")


def make_bundle(tmp_path: Path, *, trust: bool = True, version: str = "2.0.0") -> Any:
    """A small signed df2 bundle (boot + sparse system) made by the project's demo tool."""
    tool = demo_tool()
    return tool.make_demo_bundle(
        tmp_path / f"df2-{version}.zip",
        version=version,
        key_dir=tmp_path / "keys",
        system_size=256 * 1024,
        boot_payload_size=4096,
        trust=trust,
    )


# -- fakes with the engine's real signature and event types -----------------------------------------


class FakeStation:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.info_gate = threading.Event()
        self.info_gate.set()

    def info(self, serial: str) -> dict[str, Any]:
        self.calls.append(("info", serial))
        self.info_gate.wait(10)
        return {"model": "df2", "serial": serial}

    def reboot(self, serial: str, mode: str) -> None:
        self.calls.append((f"reboot:{mode}", serial))


class ScriptedEngine:
    """``flash_units`` as the engine calls back: one worker thread per unit walking the phases, every unit
    held half-way through writing ``boot`` until the test opens ``gate``."""

    def __init__(self, failures: dict[str, NaiadError] | None = None, refuse: NaiadError | None = None) -> None:
        self.failures = failures or {}
        self.refuse = refuse
        self.gate = threading.Event()
        self.calls: list[tuple[Any, Path, list[str]]] = []
        self.event_threads: set[int] = set()

    def flash_units(
        self, station: Any, bundle_path: str | os.PathLike[str], serials: Sequence[str], listener: Listener
    ) -> list[FlashResult]:
        self.calls.append((station, Path(bundle_path), list(serials)))
        self.event_threads.add(threading.get_ident())

        def phase(report: Reporter, phase: FlashPhase, partition: str | None = None) -> None:
            self.event_threads.add(threading.get_ident())
            report.phase(phase, phase_label(phase, partition), partition)

        if self.refuse is not None:
            for serial in serials:
                failed = FlashResult(serial, False, None, None, (), (), 0.0, self.refuse)
                Reporter(listener, serial, "flash").finished(failed)
            raise self.refuse
        results: dict[str, FlashResult] = {}

        def one(serial: str) -> None:
            report = Reporter(listener, serial, "flash")
            phase(report, FlashPhase.CHECK)
            phase(report, FlashPhase.REBOOT)
            report.message("(bootloader) hello")
            phase(report, FlashPhase.WRITE, "boot")
            report.progress(512, 1024, "boot")
            self.gate.wait(10)
            error = self.failures.get(serial)
            if error is not None:
                result = FlashResult(serial, False, None, None, ("boot",), (), 1.5, error)
            else:
                report.progress(1024, 1024, "boot")
                for later in (FlashPhase.VERIFY, FlashPhase.SWITCH, FlashPhase.BOOT, FlashPhase.CONFIRM):
                    phase(report, later)
                result = FlashResult(serial, True, "2.0.0", "b", ("boot", "system"), (), 2.25)
            results[serial] = result
            report.finished(result)

        workers = [threading.Thread(target=one, args=(serial,)) for serial in serials]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return [results[serial] for serial in serials]


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def station() -> FakeStation:
    return FakeStation()


@pytest.fixture
def window(
    qtbot: Any,
    engine: ScriptedEngine,
    station: FakeStation,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    caplog.set_level(logging.INFO)
    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, flash=engine.flash_units)
    qtbot.addWidget(win)
    win.start()
    win.operator._on_logged_in(OperatorSession("olga", "operator"))  # the bench's actions are an operator's
    yield win
    engine.gate.set()
    station.info_gate.set()
    qtbot.waitUntil(lambda: not win.flash_monitor.running(), timeout=WAIT_MS)
    win.close()


def bench_of(window: MainWindow, *devices: Device) -> list[UnitCard]:
    cards = []
    for dev in devices:
        window._on_device_added(dev)
        card = window.bench.card(dev.serial)
        assert card is not None
        cards.append(card)
    return cards


def step_text(card: UnitCard) -> str:
    return card.step_label.text() if not card.step_label.isHidden() else ""


def state_of(card: UnitCard) -> UnitState:
    return card.state


def start_from_dialog(qtbot: Any, window: MainWindow, bundle: Path) -> FlashDialog:
    dialog = window.open_flash_dialog(str(bundle))
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=WAIT_MS)
    assert dialog.start_button.isEnabled()
    dialog.start_button.click()
    return dialog


# -- the dialog -----------------------------------------------------------------------------------------


def test_the_dialog_shows_the_bundle_and_ticks_the_attached_idle_units_it_fits(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    made = make_bundle(tmp_path)
    units = [
        UnitChoice("DF2A00001", "df2", "Dragonfly 2", "1-1.1", "run", attached=True, busy=False),
        UnitChoice("DF2A00002", "df2", "Dragonfly 2", "1-1.2", "bootloader", attached=True, busy=False),
        UnitChoice("DF2A00003", "df2", "Dragonfly 2", "1-1.3", "run", attached=False, busy=False),
        UnitChoice("DF2A00004", "df2", "Dragonfly 2", "1-1.4", "run", attached=True, busy=True),
        UnitChoice("FRP000005", "frog-pro", "Frog Pro", "1-1.5", "run", attached=True, busy=False),
    ]
    dialog = FlashDialog(units, workers=Workers())
    qtbot.addWidget(dialog)
    assert dialog.selected_serials() == [] and not dialog.start_button.isEnabled()
    assert dialog.hint_label.text() == _("Choose a firmware bundle.")

    dialog.load_bundle(str(made.path))
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=WAIT_MS)

    assert dialog.version_value.text() == "2.0.0"
    assert dialog.security_value.text() == "0"
    assert "Dragonfly 2 (df2)" in dialog.models_value.text()
    assert dialog.signature_value.text() == _(
        "Signed by trusted key {key_id} ({algorithm})", key_id=short_key_id(made.key_id), algorithm="ed25519"
    )
    rows = [dialog.partition_tree.topLevelItem(i) for i in range(dialog.partition_tree.topLevelItemCount())]
    assert [(r.text(0), r.text(1)) for r in rows if r is not None] == [("boot", _("Raw")), ("system", _("Sparse"))]

    assert dialog.selected_serials() == ["DF2A00001", "DF2A00002"]
    notes = {}
    for index in range(dialog.unit_tree.topLevelItemCount()):
        item = dialog.unit_tree.topLevelItem(index)
        assert item is not None
        notes[item.text(0)] = (item.text(4), bool(item.flags() & Qt.ItemFlag.ItemIsEnabled))
    assert notes == {
        "DF2A00001": ("", True),
        "DF2A00002": ("", True),
        "DF2A00003": (_("Not attached"), False),
        "DF2A00004": (_("Busy"), False),
        "FRP000005": (_("Not for this bundle"), False),
    }
    assert dialog.start_button.isEnabled()

    first = dialog.unit_tree.topLevelItem(0)
    assert first is not None
    first.setCheckState(0, Qt.CheckState.Unchecked)
    assert dialog.selected_serials() == ["DF2A00002"]
    with qtbot.waitSignal(dialog.start_requested, timeout=WAIT_MS) as started:
        dialog.start_button.click()
    assert started.args == [str(made.path), ["DF2A00002"]]

    dialog.tick_all(False)
    assert dialog.selected_serials() == [] and not dialog.start_button.isEnabled()


def test_an_untrusted_or_unreadable_bundle_cannot_be_started(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    made = make_bundle(tmp_path, trust=False)
    units = [UnitChoice("DF2A00001", "df2", "Dragonfly 2", "1-1.1", "run", attached=True, busy=False)]
    dialog = FlashDialog(units, workers=Workers())
    qtbot.addWidget(dialog)
    requested: list[Any] = []
    dialog.start_requested.connect(lambda *args: requested.append(args))

    dialog.load_bundle(str(made.path))
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=WAIT_MS)
    with Bundle.open(made.path, require_trusted=False) as bundle:
        trust_error = bundle.trust_error
    assert trust_error is not None
    assert dialog.signature_value.text() == str(trust_error)
    assert dialog.signature_value.toolTip() == trust_error.remedy_text
    assert dialog.version_value.text() == "2.0.0"  # still shown, for inspection
    assert not dialog.start_button.isEnabled()
    assert _("This bundle cannot be flashed: its signature is not trusted.") in dialog.hint_label.text()
    dialog.start()
    assert requested == []

    junk = tmp_path / "not-a-bundle.zip"
    junk.write_bytes(b"this is no zip archive" * 10)
    before = junk.read_bytes()
    dialog.path_edit.clear()
    qtbot.keyClicks(dialog.path_edit, str(junk))
    qtbot.keyClick(dialog.path_edit, Qt.Key.Key_Return)  # reads the file; never starts a flash
    qtbot.waitUntil(lambda: dialog.load_error is not None, timeout=WAIT_MS)
    assert isinstance(dialog.load_error, MalformedBundle)
    assert dialog.summary is None and dialog.version_value.text() == "—"
    assert str(dialog.load_error) in dialog.hint_label.text()
    assert not dialog.start_button.isEnabled()
    dialog.start()
    assert requested == []
    assert junk.read_bytes() == before


# -- flashing from the bench ----------------------------------------------------------------------------


def test_a_flash_drives_each_card_from_worker_thread_events_on_the_gui_thread(
    qtbot: Any, tmp_path: Path, window: MainWindow, engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gui_thread: list[bool] = []
    gui_thread = QApplication.instance().thread()  # type: ignore[union-attr]
    for name in ("show_step", "show_progress", "show_result", "show_error", "begin_job", "end_job"):
        original = getattr(UnitCard, name)

        def spy(self: UnitCard, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            on_gui_thread.append(QThread.currentThread() is gui_thread)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(UnitCard, name, spy)
    made = make_bundle(tmp_path)
    assert not window.flash_action.isEnabled()  # nothing on the bench to flash yet
    first, second = bench_of(window, device("DF2A00001", 1), device("DF2A00002", 2, mode="bootloader"))
    assert window.flash_action.isEnabled()

    start_from_dialog(qtbot, window, made.path)
    writing = _("Writing {partition}", partition="boot")
    qtbot.waitUntil(lambda: step_text(first) == writing and step_text(second) == writing, timeout=WAIT_MS)
    for card in (first, second):
        qtbot.waitUntil(lambda card=card: card.progress.value() == 500, timeout=WAIT_MS)
        assert card.state is UnitState.BUSY and card.property("state") == "busy"
        assert not card.progress.isHidden()
    assert engine.calls[0][1] == made.path and engine.calls[0][2] == ["DF2A00001", "DF2A00002"]
    assert engine.event_threads and threading.main_thread().ident not in engine.event_threads

    engine.gate.set()
    qtbot.waitUntil(lambda: not window.flash_monitor.running(), timeout=WAIT_MS)
    done = _(FLASHED, version="2.0.0", slot="b")
    for card in (first, second):
        assert step_text(card) == done and card.progress.isHidden()
        assert not card.in_job
    assert state_of(first) is UnitState.RUN and state_of(second) is UnitState.BOOTLOADER
    assert first.info_button.isEnabled() and first.reboot_button.isEnabled()
    assert on_gui_thread and all(on_gui_thread)
    lines = window.log_pane.lines()
    assert any(
        _(
            "Flashed {bundle}: {ok} of {total} units updated, {failed} failed",
            bundle=made.path.name,
            ok=2,
            total=2,
            failed=0,
        )
        in line
        for line in lines
    )
    assert any("DF2A00001: (bootloader) hello" in line for line in lines)


def test_one_units_failure_shows_on_its_card_while_the_others_finish(
    qtbot: Any, tmp_path: Path, window: MainWindow, engine: ScriptedEngine
) -> None:
    failure = FlashNotConfirmed(serial="DF2A00002", running="1.0.0", running_slot="a", version="2.0.0", slot="b")
    engine.failures["DF2A00002"] = failure
    made = make_bundle(tmp_path)
    good, bad, other = bench_of(window, device("DF2A00001", 1), device("DF2A00002", 2), device("DF2A00003", 3))
    assert window.start_flash(str(made.path), ["DF2A00001", "DF2A00002"]) is not None
    assert step_text(good) == _(WAITING) and good.in_job and not other.in_job

    engine.gate.set()
    qtbot.waitUntil(lambda: not window.flash_monitor.running(), timeout=WAIT_MS)
    assert step_text(good) == _(FLASHED, version="2.0.0", slot="b") and state_of(good) is UnitState.RUN
    assert state_of(bad) is UnitState.ERROR
    assert bad.step_label.text() == str(failure) and bad.step_label.toolTip() == failure.remedy_text
    assert bad.reboot_button.isEnabled()  # the unit is free again: the operator may act on it
    assert other.step_label.isHidden() and state_of(other) is UnitState.RUN

    window._on_device_added(device("DF2A00002", 2, address=22))  # the unit re-enumerates: the error stays
    assert state_of(bad) is UnitState.ERROR and bad.step_label.text() == str(failure)
    lines = window.log_pane.lines()
    assert any(f"DF2A00002: {failure}" in line for line in lines)
    assert any("1 of 2 units updated, 1 failed" in line for line in lines)


def test_a_unit_being_flashed_gets_no_other_action(
    qtbot: Any, tmp_path: Path, window: MainWindow, engine: ScriptedEngine, station: FakeStation
) -> None:
    made = make_bundle(tmp_path)
    flashing, querying = bench_of(window, device("DF2A00001", 1), device("DF2A00002", 2))
    station.info_gate.clear()
    window.request_info("DF2A00002")  # an info still running on the other unit
    qtbot.waitUntil(lambda: window.workers.busy("DF2A00002"), timeout=WAIT_MS)
    assert state_of(querying) is UnitState.BUSY
    assert window.start_flash(str(made.path), ["DF2A00002"]) is None
    assert engine.calls == []

    assert window.start_flash(str(made.path), ["DF2A00001"]) is not None
    qtbot.waitUntil(lambda: flashing.progress.value() == 500, timeout=WAIT_MS)
    assert not flashing.info_button.isEnabled() and not flashing.reboot_button.isEnabled()
    window.request_reboot("DF2A00001", "bootloader")
    window.request_info("DF2A00001")
    assert ("reboot:bootloader", "DF2A00001") not in station.calls and ("info", "DF2A00001") not in station.calls
    assert window.start_flash(str(made.path), ["DF2A00001"]) is None
    assert len(engine.calls) == 1

    dialog = window.open_flash_dialog(str(made.path))
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=WAIT_MS)
    assert dialog.selected_serials() == []  # one unit is flashing, the other is busy with info
    item = dialog.unit_tree.topLevelItem(0)
    assert item is not None and item.text(4) == _("Busy")
    assert not dialog.start_button.isEnabled()

    window._on_device_removed(device("DF2A00001", 1))  # it reboots into its bootloader mid-flash
    assert state_of(flashing) is UnitState.DISCONNECTED
    assert flashing.dismiss_button.isHidden()
    window.bench.dismiss("DF2A00001")
    window.dismiss_action.trigger()
    assert window.bench.card("DF2A00001") is flashing
    window._on_device_added(device("DF2A00001", 1, mode="bootloader", address=31))
    assert state_of(flashing) is UnitState.BUSY

    engine.gate.set()
    station.info_gate.set()
    qtbot.waitUntil(
        lambda: not window.flash_monitor.running() and not window.workers.busy("DF2A00002"), timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: dialog.selected_serials() == ["DF2A00001", "DF2A00002"], timeout=WAIT_MS)
    assert dialog.start_button.isEnabled()


@pytest.mark.parametrize("cause", ["refused", "crashed"])
def test_a_flash_that_cannot_start_shows_why_on_every_card_and_frees_them(
    qtbot: Any, tmp_path: Path, station: FakeStation, cause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    error: BaseException
    if cause == "refused":
        error = UntrustedBundle(path="fw.zip")
        flash = ScriptedEngine(refuse=error).flash_units
    else:  # the engine broke before any unit had a result
        error = ImportError("No module named 'provisioning.flashing'")

        def flash(*_args: Any) -> list[FlashResult]:
            raise error

    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, flash=flash)
    qtbot.addWidget(win)
    cards = bench_of(win, device("DF2A00001", 1), device("DF2A00002", 2))
    assert win.start_flash(str(tmp_path / "fw.zip"), ["DF2A00001", "DF2A00002"]) is not None
    qtbot.waitUntil(lambda: not win.flash_monitor.running(), timeout=WAIT_MS)
    shown, _remedy = error_texts(error)
    for card in cards:
        assert state_of(card) is UnitState.ERROR and card.step_label.text() == shown
        assert not card.in_job and card.reboot_button.isEnabled()
    assert any(shown in line for line in win.log_pane.lines())
    win.close()


def test_all_console_work_runs_as_jobs_on_the_one_worker_pool(
    qtbot: Any, tmp_path: Path, engine: ScriptedEngine, station: FakeStation, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, Workers]] = []
    start = Workers.start

    def spy(self: Workers, job: Job) -> Job:
        started.append((job.name, self))
        return start(self, job)

    def forbidden(*_args: Any) -> Any:
        raise AssertionError("the console started work outside its workers")

    monkeypatch.setattr(Workers, "start", spy)
    monkeypatch.setattr(QThread, "start", forbidden)
    monkeypatch.setattr(QThreadPool, "globalInstance", forbidden)
    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, flash=engine.flash_units)
    qtbot.addWidget(win)
    win.start()
    bench_of(win, device("DF2A00001", 1))
    win.request_info("DF2A00001")
    qtbot.waitUntil(lambda: "DF2A00001" in win.info_dialogs, timeout=WAIT_MS)
    made = make_bundle(tmp_path)
    start_from_dialog(qtbot, win, made.path)
    engine.gate.set()
    qtbot.waitUntil(lambda: not win.flash_monitor.running(), timeout=WAIT_MS)
    win.close()
    assert [name for name, _workers in started] == [
        "discovery",
        "operator count",
        "action",
        "reading a bundle",
        "flash",
    ]
    assert all(workers is win.workers for _name, workers in started)
    assert not win.watcher.is_running() and not win.workers.busy_units()


def test_closing_while_flashing_asks_first(
    qtbot: Any, tmp_path: Path, window: MainWindow, engine: ScriptedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_bundle(tmp_path)
    bench_of(window, device("DF2A00001", 1))
    window.start_flash(str(made.path), ["DF2A00001"])
    answers: list[bool] = [False]
    monkeypatch.setattr(window, "confirm_interrupt_flash", lambda: answers.pop(0))
    window.close()
    assert not window._closed and window.flash_monitor.running()
    engine.gate.set()
    qtbot.waitUntil(lambda: not window.flash_monitor.running(), timeout=WAIT_MS)


# -- language -------------------------------------------------------------------------------------------


ZH = {
    "Flash firmware": "刷写固件",
    "Bundle:": "固件包：",
    "Start flashing": "开始刷写",
    "Units": "设备",
    "Not attached": "未连接",
    "Raw": "原始",
    "Version:": "版本：",
}


def test_the_language_switch_retranslates_the_open_flash_dialog(
    qtbot: Any, tmp_path: Path, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_catalog = i18n.catalog

    def catalog(language: str) -> dict[str, str]:
        table = dict(real_catalog(language))
        if language == "zh_CN":
            for msgid, text in ZH.items():
                table.setdefault(msgid, text)
        return table

    monkeypatch.setattr(i18n, "catalog", catalog)
    made = make_bundle(tmp_path)
    bench_of(window, device("DF2A00001", 1))
    window._on_device_removed(device("DF2A00001", 1))
    window.flash_action.trigger()
    dialog = window.flash_dialog
    assert dialog is not None
    dialog.load_bundle(str(made.path))
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=WAIT_MS)

    def shown() -> dict[str, str]:
        unit = dialog.unit_tree.topLevelItem(0)
        raw = dialog.partition_tree.topLevelItem(0)
        assert unit is not None and raw is not None
        return {
            "Flash firmware": dialog.windowTitle(),
            "Bundle:": dialog.bundle_caption.text(),
            "Start flashing": dialog.start_button.text(),
            "Units": dialog.units_box.title(),
            "Not attached": unit.text(4),
            "Raw": raw.text(1),
            "Version:": dialog.version_caption.text(),
        }

    english = shown()
    assert english == {msgid: msgid for msgid in ZH}
    window.language_actions["zh_CN"].trigger()
    chinese = shown()
    assert chinese == {msgid: _(msgid) for msgid in ZH}
    assert all(chinese[m] != english[m] for m in ZH)
    window.language_actions["en"].trigger()
    assert shown() == english


# -- the real engine on a simulated unit ----------------------------------------------------------------


def test_the_console_flashes_a_simulated_unit_through_the_real_engine(
    qtbot: Any, tmp_path: Path, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    made = make_bundle(tmp_path)
    serial = sim.serials()[0]
    steps: list[str] = []
    show_phase = UnitCard.show_phase
    monkeypatch.setattr(UnitCard, "show_phase", lambda card, label: (steps.append(label), show_phase(card, label)))
    win = MainWindow(Wiring(sim.state_dir))
    qtbot.addWidget(win)
    win.start()
    try:
        qtbot.waitUntil(lambda: win.bench.card(serial) is not None, timeout=WAIT_MS)
        card = win.bench.card(serial)
        assert card is not None
        dialog = win.open_flash_dialog(str(made.path))
        qtbot.waitUntil(lambda: dialog.summary is not None and dialog.start_button.isEnabled(), timeout=WAIT_MS)
        assert dialog.selected_serials() == [serial]
        dialog.start_button.click()
        qtbot.waitUntil(lambda: not win.flash_monitor.running(), timeout=90_000)
        assert step_text(card) == _(FLASHED, version="2.0.0", slot="b"), step_text(card)
        for phase in (FlashPhase.CHECK, FlashPhase.REBOOT, FlashPhase.SWITCH, FlashPhase.BOOT, FlashPhase.CONFIRM):
            assert phase_label(phase) in steps
        assert phase_label(FlashPhase.WRITE, "boot") in steps and phase_label(FlashPhase.VERIFY, "system") in steps
        qtbot.waitUntil(lambda: card.state is UnitState.RUN, timeout=WAIT_MS)
    finally:
        win.close()

    with Wiring(sim.state_dir).station() as station:
        about = station.info(serial)
    assert about["active_slot"] == "b" and about["slots"]["b"]["version"] == "2.0.0"
