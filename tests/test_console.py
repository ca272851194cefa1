"""The console shell: hot-plug cards over the real Discovery on a simulator bus, language switch,
threading (device I/O off the GUI thread, widgets only on it) and clean shutdown."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PyQt6.QtCore import QThread
from PyQt6.QtWidgets import QApplication

import i18n
from console.app import run_console
from console.composition import Wiring
from console.main_window import MainWindow
from console.style import UnitState
from console.unit_card import Bench, UnitCard, port_sort_key
from console.workers import ConsoleClosing, DeviceWatcher, Job, UnitsBusy, Workers
from i18n import _
from simulator.locator import SimulatorNotFound
from terminal.discovery import Device, UsbAccessDenied
from terminal.errors import DeviceNotFound, NaiadError
from terminal.models import model_by_id

DF2 = model_by_id("df2")
WAIT_MS = 2000


# -- a simulated bus written by the test -----------------------------------------------------------


def write_bus(sim_dir: Path, devices: list[dict[str, Any]]) -> None:
    """Rewrite bus.json atomically, as the simulator does on every plug, unplug or mode change."""
    tmp = sim_dir / "bus.json.tmp"
    tmp.write_text(json.dumps({"version": 1, "devices": devices}), encoding="utf-8")
    os.replace(tmp, sim_dir / "bus.json")


def run_unit(serial: str, port: int, address: int, tty: str) -> dict[str, Any]:
    return {
        "bus": 1,
        "address": address,
        "port_path": f"1-1.{port}",
        "port_numbers": [1, port],
        "vid": DF2.run_usb.vid,
        "pid": DF2.run_usb.pid,
        "serial": serial,
        "manufacturer": DF2.vendor,
        "product": DF2.name,
        "mode": "run",
        "tty": tty,
        "fastboot_tcp_port": None,
        "bulk_socket": None,
    }


def bootloader_unit(serial: str, port: int, address: int, tcp_port: int, sim_dir: Path) -> dict[str, Any]:
    return {
        "bus": 1,
        "address": address,
        "port_path": f"1-1.{port}",
        "port_numbers": [1, port],
        "vid": DF2.bootloader_usb.vid,
        "pid": DF2.bootloader_usb.pid,
        "serial": serial,
        "manufacturer": DF2.vendor,
        "product": DF2.name,
        "mode": "bootloader",
        "tty": None,
        "fastboot_tcp_port": tcp_port,
        "bulk_socket": str(sim_dir / f"{serial}.bulk"),
    }


class RecordingDiscovery:
    """The real Discovery, noting which thread runs ``watch`` (it must not be the GUI thread)."""

    def __init__(self, sim_dir: Path) -> None:
        self.inner = Wiring(sim_dir).discovery()
        self.watch_threads: list[int] = []

    def watch(self, stop: threading.Event, interval: float = 0.25) -> Iterator[Any]:
        self.watch_threads.append(threading.get_ident())
        yield from self.inner.watch(stop, interval)


class FakeStation:
    """Stands in for provisioning.station.Station: records the calling thread, answers like a unit."""

    def __init__(self, fail_with: NaiadError | None = None) -> None:
        self.fail_with = fail_with
        self.calls: list[tuple[str, str, int]] = []

    def info(self, serial: str) -> dict[str, Any]:
        self.calls.append(("info", serial, threading.get_ident()))
        if self.fail_with is not None:
            raise self.fail_with
        return {
            "model": "df2",
            "serial": serial,
            "hardware_revision": "B",
            "slots": {"a": "1.2.0", "b": "1.1.0"},
            "active_slot": "a",
            "boot_count": 7,
            "secure_element": "SE050",
            "camera_module": "SL3D-640",
            "uptime_s": 42,
        }

    def reboot(self, serial: str, mode: str) -> None:
        self.calls.append((f"reboot:{mode}", serial, threading.get_ident()))
        if self.fail_with is not None:
            raise self.fail_with


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    write_bus(tmp_path, [])
    return tmp_path


@pytest.fixture
def discovery(sim_dir: Path) -> RecordingDiscovery:
    return RecordingDiscovery(sim_dir)


@pytest.fixture
def station() -> FakeStation:
    return FakeStation()


@pytest.fixture
def window(
    qtbot: Any,
    sim_dir: Path,
    discovery: RecordingDiscovery,
    station: FakeStation,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    caplog.set_level(logging.INFO)  # as run_console does: the pane shows what logging lets through
    win = MainWindow(Wiring(sim_dir), make_discovery=lambda: discovery, make_station=lambda: station)
    qtbot.addWidget(win)
    win.start()
    yield win
    win.close()


def state_of(card: UnitCard) -> UnitState:
    """The card's state, read afresh (a plain attribute read would let mypy assume it never changes)."""
    return card.state


def wait_card(qtbot: Any, window: MainWindow, serial: str) -> UnitCard:
    qtbot.waitUntil(lambda: window.bench.card(serial) is not None, timeout=WAIT_MS)
    card = window.bench.card(serial)
    assert card is not None
    return card


# -- hot-plug ---------------------------------------------------------------------------------------


def test_plugged_unit_shows_its_card_within_two_seconds(qtbot: Any, window: MainWindow, sim_dir: Path) -> None:
    assert window.bench.cards() == []
    assert not window.bench.placeholder.isHidden()

    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    card = wait_card(qtbot, window, "DF2A00001")

    assert card.title.text() == "Dragonfly 2"
    assert card.serial_value.text() == "DF2A00001"
    assert card.port_value.text() == "/dev/pts/7"
    assert card.path_value.text() == "1-1.3"
    assert card.mode_value.text() == _("Run")
    assert card.state is UnitState.RUN
    assert card.property("state") == "run"
    assert card.state_badge.text() == _("Connected")
    assert card.step_label.isHidden() and card.progress.isHidden()
    assert window.bench.placeholder.isHidden()


def test_unplugged_unit_keeps_its_card_shown_disconnected_and_a_returning_unit_reuses_it(
    qtbot: Any, window: MainWindow, sim_dir: Path
) -> None:
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7"), run_unit("DF2A00002", 4, 8, "/dev/pts/8")])
    card = wait_card(qtbot, window, "DF2A00001")
    wait_card(qtbot, window, "DF2A00002")

    write_bus(sim_dir, [run_unit("DF2A00002", 4, 8, "/dev/pts/8")])
    qtbot.waitUntil(lambda: card.state is UnitState.DISCONNECTED, timeout=WAIT_MS)
    assert card.state_badge.text() == _("Disconnected")
    assert card.property("state") == "disconnected"
    assert card.serial_value.text() == "DF2A00001"  # last known details stay on the card
    assert not card.dismiss_button.isHidden()
    assert not card.info_button.isEnabled() and not card.reboot_button.isEnabled()
    other = window.bench.card("DF2A00002")
    assert other is not None and other.state is UnitState.RUN

    write_bus(sim_dir, [run_unit("DF2A00001", 3, 11, "/dev/pts/9"), run_unit("DF2A00002", 4, 8, "/dev/pts/8")])
    qtbot.waitUntil(lambda: card.state is UnitState.RUN, timeout=WAIT_MS)
    assert window.bench.card("DF2A00001") is card
    assert card.port_value.text() == "/dev/pts/9"
    assert len(window.bench.cards()) == 2


def test_dismiss_removes_only_disconnected_cards(qtbot: Any, window: MainWindow, sim_dir: Path) -> None:
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7"), run_unit("DF2A00002", 4, 8, "/dev/pts/8")])
    card = wait_card(qtbot, window, "DF2A00001")
    wait_card(qtbot, window, "DF2A00002")
    window.bench.dismiss("DF2A00002")  # connected: stays
    assert window.bench.card("DF2A00002") is not None

    write_bus(sim_dir, [run_unit("DF2A00002", 4, 8, "/dev/pts/8")])
    qtbot.waitUntil(lambda: card.state is UnitState.DISCONNECTED, timeout=WAIT_MS)
    window.dismiss_action.trigger()
    assert window.bench.card("DF2A00001") is None
    assert [c.serial for c in window.bench.cards()] == ["DF2A00002"]


def test_mode_change_updates_the_same_card(qtbot: Any, window: MainWindow, sim_dir: Path) -> None:
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    card = wait_card(qtbot, window, "DF2A00001")
    assert card.reboot_button.text() == _("Reboot to bootloader")

    write_bus(sim_dir, [bootloader_unit("DF2A00001", 3, 12, 40123, sim_dir)])
    qtbot.waitUntil(lambda: card.state is UnitState.BOOTLOADER, timeout=WAIT_MS)
    assert window.bench.card("DF2A00001") is card
    assert card.mode_value.text() == _("Bootloader")
    assert "tcp:127.0.0.1:40123" in card.port_value.text()
    assert card.path_value.text() == "1-1.3"
    assert card.property("state") == "bootloader"
    assert card.reboot_button.text() == _("Reboot to run mode")
    assert len(window.bench.cards()) == 1


# -- language ---------------------------------------------------------------------------------------


ZH_OVERRIDES = {
    "Connected": "已连接",
    "Serial:": "序列号：",
    "Mode:": "模式：",
    "Run": "运行",
    "Naiad console": "Naiad 控制台",
    "&Bench": "工作台(&B)",
    "Reboot to bootloader": "重启到引导程序",
    "Log": "日志",
}


def test_language_switch_retranslates_window_and_cards_at_once(
    qtbot: Any, window: MainWindow, sim_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_catalog = i18n.catalog

    def catalog(language: str) -> dict[str, str]:
        table = dict(real_catalog(language))
        if language == "zh_CN":  # the lead fills zh_CN.po later; make sure the switch is visible now
            for msgid, text in ZH_OVERRIDES.items():
                table.setdefault(msgid, text)
        return table

    monkeypatch.setattr(i18n, "catalog", catalog)
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    card = wait_card(qtbot, window, "DF2A00001")

    def shown() -> dict[str, str]:
        assert window.bench_menu is not None
        return {
            "Connected": card.state_badge.text(),
            "Serial:": card.serial_caption.text(),
            "Mode:": card.mode_caption.text(),
            "Run": card.mode_value.text(),
            "Naiad console": window.windowTitle().split(" — ")[0],
            "&Bench": window.bench_menu.title(),
            "Reboot to bootloader": card.reboot_button.text(),
            "Log": window.log_pane.title.text(),
        }

    english = shown()
    assert english == {msgid: msgid for msgid in ZH_OVERRIDES}

    window.language_actions["zh_CN"].trigger()  # no event loop turn: the switch is immediate
    chinese = shown()
    assert chinese == {msgid: i18n.translate(msgid, "zh_CN") for msgid in ZH_OVERRIDES}
    assert chinese == {msgid: _(msgid) for msgid in ZH_OVERRIDES}
    assert all(chinese[m] != english[m] for m in ZH_OVERRIDES)
    assert window.language_combo.currentData() == "zh_CN"

    index = window.language_combo.findData("en")
    window.language_combo.setCurrentIndex(index)
    window.language_combo.activated.emit(index)
    assert shown() == english
    assert window.language_actions["en"].isChecked()


# -- threads and shutdown ---------------------------------------------------------------------------


def test_discovery_runs_off_the_gui_thread_and_widgets_change_only_on_it(
    qtbot: Any, sim_dir: Path, discovery: RecordingDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gui_thread: list[bool] = []
    gui_thread = QApplication.instance().thread()  # type: ignore[union-attr]
    for name in ("update_device", "mark_disconnected"):
        original = getattr(UnitCard, name)

        def spy(self: UnitCard, *args: Any, _original: Any = original) -> Any:
            on_gui_thread.append(QThread.currentThread() is gui_thread)
            return _original(self, *args)

        monkeypatch.setattr(UnitCard, name, spy)

    win = MainWindow(Wiring(sim_dir), make_discovery=lambda: discovery)
    qtbot.addWidget(win)
    win.start()
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    card = wait_card(qtbot, win, "DF2A00001")
    write_bus(sim_dir, [])
    qtbot.waitUntil(lambda: card.state is UnitState.DISCONNECTED, timeout=WAIT_MS)
    win.close()

    assert discovery.watch_threads and threading.main_thread().ident not in discovery.watch_threads
    assert len(on_gui_thread) >= 2 and all(on_gui_thread)


def test_closing_the_window_stops_the_watcher_and_unhooks_everything(
    qtbot: Any, sim_dir: Path, discovery: RecordingDiscovery
) -> None:
    win = MainWindow(Wiring(sim_dir), make_discovery=lambda: discovery)
    qtbot.addWidget(win)
    win.start()
    assert win.watcher.is_running()
    qtbot.waitUntil(lambda: bool(discovery.watch_threads), timeout=WAIT_MS)
    handler = win.log_pane._handler
    assert handler in logging.getLogger().handlers

    win.close()

    assert not win.watcher.is_running()  # its job returned: no thread of the console is left watching
    assert handler not in logging.getLogger().handlers
    assert win._notify_language not in i18n._listeners


def test_watcher_reports_a_failing_bus_and_retries(qtbot: Any, sim_dir: Path) -> None:
    attempts: list[int] = []

    def make() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise DeviceNotFound(serial="bus")
        return Wiring(sim_dir).discovery()

    workers = Workers()
    watcher = DeviceWatcher(workers, make, interval=0.05, retry_delay=0.05)
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    added: list[Any] = []
    watcher.device_added.connect(added.append)
    with qtbot.waitSignal(watcher.failed, timeout=WAIT_MS) as failure:
        watcher.start()
    assert isinstance(failure.args[0], DeviceNotFound)
    qtbot.waitUntil(lambda: bool(added), timeout=WAIT_MS)
    assert added[0].serial == "DF2A00001"
    assert watcher.stop()
    assert not watcher.is_running()
    assert workers.shutdown()


# -- unit actions -----------------------------------------------------------------------------------


def test_info_runs_on_a_worker_thread_and_shows_a_dialog(
    qtbot: Any, window: MainWindow, sim_dir: Path, station: FakeStation
) -> None:
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    card = wait_card(qtbot, window, "DF2A00001")

    card.info_button.click()
    assert card.state is UnitState.BUSY and not card.step_label.isHidden()
    qtbot.waitUntil(lambda: "DF2A00001" in window.info_dialogs, timeout=WAIT_MS)

    dialog = window.info_dialogs["DF2A00001"]
    assert dialog.value_text("slots") == "a: 1.2.0, b: 1.1.0"
    assert dialog.value_text("active_slot") == "a"
    assert dialog.value_text("uptime_s") == "42"
    assert state_of(card) is UnitState.RUN and card.step_label.isHidden()
    assert station.calls[0][:2] == ("info", "DF2A00001")
    assert station.calls[0][2] != threading.main_thread().ident
    assert any("1.2.0" in line for line in window.log_pane.lines())


@pytest.mark.parametrize("station", [FakeStation(DeviceNotFound(serial="DF2A00001"))])
def test_failed_action_shows_the_error_and_its_remedy_on_the_card(
    qtbot: Any, window: MainWindow, sim_dir: Path, station: FakeStation
) -> None:
    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    card = wait_card(qtbot, window, "DF2A00001")

    card.reboot_button.click()
    qtbot.waitUntil(lambda: card.state is UnitState.ERROR, timeout=WAIT_MS)
    error = DeviceNotFound(serial="DF2A00001")
    assert card.step_label.text() == str(error)
    assert card.step_label.toolTip() == error.remedy_text
    assert card.reboot_button.isEnabled()  # the operator can try again
    assert station.calls[0][:2] == ("reboot:bootloader", "DF2A00001")
    assert any(str(error) in line for line in window.log_pane.lines())


def test_every_job_runs_on_the_one_pool_one_at_a_time_per_unit(qtbot: Any) -> None:
    workers = Workers(max_threads=4)
    release = threading.Event()
    threads: dict[str, int] = {}
    lock = threading.Lock()

    def job(name: str, *units: str) -> Job:
        def work(_listener: Any) -> str:
            with lock:
                threads[name] = threading.get_ident()
            release.wait(5)
            return name

        made = Job(work, units, name)
        made.succeeded.connect(done.append)
        return made

    done: list[object] = []
    changes: list[int] = []
    workers.busy_changed.connect(lambda: changes.append(1))
    workers.start(job("A1", "A"))
    workers.start(job("B1", "B"))
    workers.start(job("read"))  # a job for no unit (reading a bundle) runs beside them
    with pytest.raises(UnitsBusy) as refused:
        workers.start(job("A2", "A", "C"))  # A is busy: refused, and C is not taken either
    assert refused.value.params["serials"] == "A"
    assert workers.busy_units() == {"A", "B"} and not workers.busy("C") and changes
    qtbot.waitUntil(lambda: len(threads) == 3, timeout=WAIT_MS)
    assert threading.main_thread().ident not in threads.values()

    release.set()
    qtbot.waitUntil(lambda: len(done) == 3, timeout=WAIT_MS)
    assert sorted(map(str, done)) == ["A1", "B1", "read"] and workers.busy_units() == set()
    workers.start(job("A3", "A"))  # free again
    qtbot.waitUntil(lambda: len(done) == 4, timeout=WAIT_MS)
    assert workers.shutdown()
    with pytest.raises(ConsoleClosing):
        workers.start(job("late", "A"))
    assert not workers.busy("A")


# -- log pane, bench order, bad input ---------------------------------------------------------------


def test_log_records_from_any_thread_reach_the_pane(qtbot: Any, window: MainWindow) -> None:
    log = logging.getLogger("terminal.test_console")
    log.setLevel(logging.DEBUG)

    def log_from_a_device_thread() -> None:
        log.warning("unit DF2X dropped")
        log.debug("wire bytes 01 02")

    worker = threading.Thread(target=log_from_a_device_thread)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: any("unit DF2X dropped" in line for line in window.log_pane.lines()), timeout=WAIT_MS)
    assert not any("wire bytes" in line for line in window.log_pane.lines())  # below the Info filter

    window.log_pane.set_min_level(logging.DEBUG)
    assert any("wire bytes 01 02" in line for line in window.log_pane.lines())


def test_cards_follow_physical_port_order(qtbot: Any) -> None:
    bench = Bench()
    qtbot.addWidget(bench)
    for serial, path in (("DF2A00010", "1-1.10"), ("DF2A00002", "1-1.2"), ("DF2A00009", "1-1.9")):
        bench.device_added(
            Device(
                serial=serial,
                model="df2",
                model_name="Dragonfly 2",
                mode="run",
                path=path,
                port=f"/dev/pts/{serial[-2:]}",
                vid=DF2.run_usb.vid,
                pid=DF2.run_usb.pid,
                bus=1,
                address=int(serial[-2:]),
                fastboot=None,
            )
        )
    assert [c.serial for c in bench.cards()] == ["DF2A00002", "DF2A00009", "DF2A00010"]
    assert port_sort_key("1-2.1", "x") > port_sort_key("1-1.10", "x")


def test_a_stale_removal_does_not_grey_a_unit_that_already_came_back(qtbot: Any) -> None:
    bench = Bench()
    qtbot.addWidget(bench)
    common = {"serial": "DF2A00001", "model": "df2", "model_name": "Dragonfly 2", "path": "1-1.3", "bus": 1}
    run = Device(
        mode="run", port="/dev/pts/7", vid=DF2.run_usb.vid, pid=DF2.run_usb.pid, address=7, fastboot=None, **common
    )  # type: ignore[arg-type]
    boot = Device(
        mode="bootloader",
        port=None,
        vid=DF2.bootloader_usb.vid,
        pid=DF2.bootloader_usb.pid,
        address=8,
        fastboot="tcp:127.0.0.1:40000",
        **common,
    )  # type: ignore[arg-type]
    bench.device_added(run)
    bench.device_added(boot)
    bench.device_removed(run)
    card = bench.card("DF2A00001")
    assert card is not None and card.state is UnitState.BOOTLOADER
    bench.device_removed(boot)
    assert state_of(card) is UnitState.DISCONNECTED


def test_card_progress_and_steps_show_only_while_a_step_runs(qtbot: Any) -> None:
    card = UnitCard(
        Device(
            serial="DF2A00001",
            model="df2",
            model_name="Dragonfly 2",
            mode="run",
            path="1-1.3",
            port="/dev/pts/7",
            vid=DF2.run_usb.vid,
            pid=DF2.run_usb.pid,
            bus=1,
            address=7,
            fastboot=None,
        )
    )
    qtbot.addWidget(card)
    assert card.progress.isHidden()
    card.show_step(i18n.N_("Flashing {partition}…"), partition="system_b")
    card.show_progress(250, 1000)
    assert not card.progress.isHidden() and card.progress.value() == 250
    assert card.step_label.text() == _("Flashing {partition}…", partition="system_b")
    assert card.state is UnitState.BUSY and not card.info_button.isEnabled()
    card.clear_step()
    assert card.progress.isHidden() and state_of(card) is UnitState.RUN


def test_console_refuses_a_missing_simulator_dir_before_opening_anything(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-sim"
    before = list(QApplication.topLevelWidgets()) if QApplication.instance() else []
    with pytest.raises(SimulatorNotFound) as info:
        run_console(sim_dir=str(missing))
    assert str(missing) in str(info.value)
    assert info.value.remedy_text
    after = list(QApplication.topLevelWidgets()) if QApplication.instance() else []
    assert after == before
    assert not missing.exists()


def test_a_unit_without_usb_permission_gets_a_card_with_the_remedy(qtbot: Any) -> None:
    bench = Bench()
    qtbot.addWidget(bench)
    bench.device_added(
        Device(
            serial="",
            model="df2",
            model_name="Dragonfly 2",
            mode="run",
            path="1-1.5",
            port=None,
            vid=DF2.run_usb.vid,
            pid=DF2.run_usb.pid,
            bus=1,
            address=9,
            fastboot=None,
            permission_denied=True,
        )
    )
    card = bench.card("@1-1.5")
    assert card is not None and card.state is UnitState.ERROR
    denied = UsbAccessDenied(path="1-1.5")
    assert card.step_label.text() == str(denied)
    assert card.step_label.toolTip() == denied.remedy_text
    assert not card.info_button.isEnabled() and not card.reboot_button.isEnabled()


def test_run_console_opens_the_bench_on_the_simulator_and_returns_when_closed(sim_dir: Path) -> None:
    """In a process of its own: app.exec() and quit() must not leave the test session's QApplication quitting."""
    import subprocess
    import sys

    write_bus(sim_dir, [run_unit("DF2A00001", 3, 7, "/dev/pts/7")])
    script = """
import sys
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication
from console.app import run_console
from console.main_window import MainWindow

app = QApplication(sys.argv[:1])
seen = []

def check_then_close():
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    if windows and windows[0].bench.card("DF2A00001") is not None:
        seen.append(windows[0].windowTitle())
        windows[0].close()
        app.quit()
    else:
        QTimer.singleShot(50, check_then_close)

QTimer.singleShot(50, check_then_close)
QTimer.singleShot(10000, app.quit)  # never hang if the card does not show
code = run_console(sim_dir=sys.argv[1])
print(seen[0] if seen else "")
sys.exit(code)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NAIAD_LANG": "en"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(sim_dir)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert str(sim_dir.resolve()) in done.stdout
