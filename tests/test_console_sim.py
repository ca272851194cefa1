"""The console against a real simulator process: hot-plug, info and reboot through the real Station."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from typing import Any

import pytest

from console.composition import Wiring
from console.main_window import MainWindow
from console.style import UnitState

WAIT_MS = 2000
COLD_START_MS = 10_000  # the window's first look at the bus includes importing and opening the USB backend


@pytest.fixture
def window(qtbot: Any, sim: Any) -> Any:
    win = MainWindow(Wiring(sim.state_dir))
    qtbot.addWidget(win)
    win.start()
    yield win
    win.close()


def test_plugged_unit_shows_within_two_seconds_and_unplugged_shows_disconnected(
    qtbot: Any, window: MainWindow, sim: Any
) -> None:
    serial = sim.serials()[0]
    qtbot.waitUntil(lambda: window.bench.card(serial) is not None, timeout=COLD_START_MS)
    card = window.bench.card(serial)
    assert card.state == UnitState.RUN
    sim.call("unplug", serial=serial)
    qtbot.waitUntil(lambda: card.state == UnitState.DISCONNECTED, timeout=WAIT_MS)
    sim.call("replug", serial=serial)  # plugged in: its card shows it within 2 s
    qtbot.waitUntil(lambda: card.state == UnitState.RUN, timeout=WAIT_MS)
    assert window.bench.card(serial) is card


def test_reboot_from_the_card_goes_through_the_station(qtbot: Any, window: MainWindow, sim: Any) -> None:
    serial = sim.serials()[0]
    qtbot.waitUntil(lambda: window.bench.card(serial) is not None, timeout=COLD_START_MS)
    card = window.bench.card(serial)
    window.request_reboot(serial, "bootloader")
    qtbot.waitUntil(lambda: card.state == UnitState.BOOTLOADER, timeout=30_000)
    assert sim.terminal(serial)["mode"] == "bootloader"
