"""The calibration panels' upkeep: OpenCV's work (the depth's false colour) runs on the step's worker, never on the
GUI thread; a closed panel lets its frames go; a dismissed unit's panel, and every panel at log-out, is deleted;
without a jig a full calibration is not offered (the jig is asked for on a worker too)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from helpers import device
from test_console_calibration import (  # noqa: F401 - fixtures
    CHECKSUM,
    SERIAL,
    WAIT_MS,
    ScriptedCamera,
    engine,
    on_gui_thread,
    open_panel,
    window,
)
from test_console_keys import PASSWORDS, _cheap_scrypt, ledger, log_in  # noqa: F401

import camera.colour
from camera.observations import DEPTH, DepthObservation
from console.calibration_panel import ColouredDepth
from console.calibration_run import DepthColouring
from console.main_window import MainWindow
from terminal.events import Observed, Recorder, Reporter


def test_depth_frames_are_coloured_on_the_worker_never_on_the_gui_thread(
    qtbot: Any,
    window: MainWindow,  # noqa: F811 - the fixture of test_console_calibration, imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_gui: list[bool] = []
    real = camera.colour.false_colour

    def spy(depth_mm: Any, range_mm: tuple[int, int]) -> Any:
        on_gui.append(on_gui_thread())
        return real(depth_mm, range_mm)

    monkeypatch.setattr(camera.colour, "false_colour", spy)
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    panel = open_panel(qtbot, window)
    panel.full_button.click()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=WAIT_MS)

    assert on_gui == [False, False]  # the run's two depth frames, each coloured by the step's worker
    assert panel.depth_view.frame_size is not None and panel.depth_table.columnCount() == 2
    raw = DepthObservation(np.full((20, 32), 500, np.uint16), 0.5, {"fill_rate": 1.0})
    panel.observed(Observed(SERIAL, "calibrate", DEPTH, raw))  # not coloured: the slot does not colour it either
    assert on_gui == [False, False] and panel.depth_table.columnCount() == 2


GUI_SIDE = """
import sys
import numpy as np
from PyQt6.QtWidgets import QApplication
import console.main_window
from camera.observations import DEPTH, VIEW, ViewObservation
from console.calibration_panel import CalibrationPanel, ColouredDepth
from terminal.events import Observed
app = QApplication([])
panel = CalibrationPanel("X")
panel.show()
depth = ColouredDepth(np.zeros((8, 8, 3), np.uint8), 0.5, {"fill_rate": 1.0}, True)
panel.observed(Observed("X", "calibrate", DEPTH, depth))
grid = np.zeros((6, 8), bool)
view = ViewObservation("ir", np.zeros((8, 8), np.uint8), np.zeros((0, 2), np.float32), True, None, 0.0, grid, 1)
panel.observed(Observed("X", "calibrate", VIEW, view))
app.processEvents()
print("cv2" in sys.modules)
"""


def test_the_console_and_its_panel_never_load_opencv() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", GUI_SIDE], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]  # OpenCV loads on a step's worker only


def test_a_depth_frame_that_cannot_be_coloured_still_brings_its_figures(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    odd = DepthObservation(np.full((4, 4), 500.0, np.float32), 0.5, {"fill_rate": 0.5}, True)
    with caplog.at_level(logging.ERROR):
        Reporter(DepthColouring(recorder), SERIAL, "calibrate").observe(DEPTH, odd)
    [event] = recorder.of(Observed)
    assert event.data == ColouredDepth(None, 0.5, {"fill_rate": 0.5}, True)
    assert "cannot colour a depth frame" in caplog.text


def frames_shown(win: MainWindow) -> list[bool]:
    panel = win.camera.panels[SERIAL]
    return [view.frame_size is not None for view in (*panel.frame_views.values(), panel.depth_view)]


def test_a_closed_panel_lets_its_frames_go_and_keeps_its_figures(
    qtbot: Any,
    window: MainWindow,  # noqa: F811 - the fixture of test_console_calibration, imported above
    engine: ScriptedCamera,  # noqa: F811
) -> None:
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    panel = open_panel(qtbot, window)
    panel.full_button.click()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=WAIT_MS)
    assert frames_shown(window) == [True, True, True]  # the IR and RGB views, the depth
    panel.close()
    assert frames_shown(window) == [False, False, False]
    assert window.camera.open_panel(SERIAL) is panel  # the same panel, with its last run's figures and outcome
    assert panel.depth_table.columnCount() == 2 and CHECKSUM[:12] in panel.outcome_label.text()
    assert panel.coverage_label.text() == "Coverage: no view yet"

    engine.release.clear()
    panel.full_button.click()
    panel.close()  # closed while it runs: its frames still come, and go when it ends
    engine.release.set()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=WAIT_MS)
    assert frames_shown(window) == [False, False, False] and not panel.running


def test_a_dismissed_units_panel_and_every_panel_at_log_out_is_deleted(
    qtbot: Any,
    window: MainWindow,  # noqa: F811 - the fixture of test_console_calibration, imported above
) -> None:
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    panel = open_panel(qtbot, window)
    panel.check_button.click()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=WAIT_MS)
    window._on_device_removed(device(SERIAL, 1))
    assert window.camera.panels == {SERIAL: panel}  # unplugged: the card, and so its panel, stay until dismissed
    with qtbot.waitSignal(panel.destroyed, timeout=WAIT_MS):
        window.bench.dismiss(SERIAL)
        assert window.camera.panels == {}

    window._on_device_added(device(SERIAL, 1))
    again = open_panel(qtbot, window)
    assert again.depth_table.columnCount() == 0  # a new panel: nothing of the deleted one's run
    with qtbot.waitSignal(again.destroyed, timeout=WAIT_MS):
        window.operator.log_out()
        assert window.camera.panels == {}


def test_without_a_jig_a_full_calibration_is_shown_disabled_saying_why(
    qtbot: Any,
    window: MainWindow,  # noqa: F811 - the fixture of test_console_calibration, imported above
    engine: ScriptedCamera,  # noqa: F811
) -> None:
    engine.poses = 0  # the real bus: NoJig
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    panel = open_panel(qtbot, window)
    assert engine.jig_asked == [False]  # asked once, on a worker
    assert panel.full_button.isVisible() and not panel.full_button.isEnabled()
    assert "no calibration jig" in panel.full_button.toolTip()
    assert panel.check_button.isEnabled()  # a field check needs no jig
