"""The console's camera calibration panel: opened from a unit's card by the roles that may calibrate or check,
the step run off the GUI thread (a scripted engine sending the real event and observation types, with synthetic
frames), and what the panel draws: the view with its corners and coverage, each camera's figures with their
uncertainties, the depth in false colour with its figures, and the outcome (checksum, or verdict and advice)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from helpers import IdleDiscovery, device
from PyQt6.QtCore import QThread
from PyQt6.QtWidgets import QApplication, QLabel, QPushButton
from test_console_keys import NOWHERE, PASSWORDS, ROLES, FakeStation, _cheap_scrypt, ledger, log_in  # noqa: F401

import i18n
from camera.labels import VERDICT_LABELS
from camera.observations import CAMERA, DEPTH, VIEW, CameraObservation, DepthObservation, ViewObservation
from console.calibration_panel import CHECK, FULL, CalibrationPanel, outcome_text
from console.calibration_run import (
    CALIBRATED,
    MODE_ROLES,
    WAITING,
    CameraRoleNeeded,
    DepthColouring,
    FieldCheckFailed,
    false_colour_of,
)
from console.frame_view import FrameView, image_from_array
from console.main_window import MainWindow
from console.workers import Job, Workers
from i18n import _
from provisioning.camera_steps import CHECK_ROLES, ROLE
from provisioning.ledger import Ledger
from terminal.errors import NaiadError
from terminal.events import Listener, Observed, Recorder, Reporter

WAIT_MS = 5000
SERIAL = "DF2A00001"
CHECKSUM = "3f2a9c1d4b5e" + "0" * 52


def on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -- synthetic observations --------------------------------------------------------------------------------


def ir_frame(width: int = 320, height: int = 200) -> np.ndarray:
    return np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))


def corners(count: int = 12) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(60, 260, 4), np.linspace(50, 150, count // 4))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def view(accepted: bool = True, views: int = 1, stream: str = "ir", reason: str | None = None) -> ViewObservation:
    grid = np.zeros((6, 8), bool)
    grid[1:5, 1:7] = accepted
    image = ir_frame() if stream == "ir" else np.dstack([ir_frame()] * 3)
    return ViewObservation(stream, image, corners(), accepted, reason, float(grid.mean()), grid, views)


def depth(distance_m: float | None = 0.5) -> DepthObservation:
    frame = np.full((200, 320), 500, np.uint16)
    frame[:, :40] = 0  # no depth at the left edge
    frame[100:] = 700
    figures = {"fill_rate": 0.875, "plane_rms_mm": 0.82, "plane_rms_pct": 0.164, "z_error_pct": -0.21}
    return DepthObservation(frame, distance_m, figures, passed=True)


def ir_camera() -> CameraObservation:
    k = [[921.3, 0.0, 641.2], [0.0, 920.8, 401.7], [0.0, 0.0, 1.0]]
    std = {"fx": 0.41, "fy": 0.39, "cx": 0.52, "cy": 0.48, "k1": 0.0021}
    return CameraObservation("ir", {"K": k, "dist": [-0.1234, 0.05, 0.0, 0.0, 0.0], "rms_px": 0.123}, std, True)


def stereo() -> CameraObservation:
    return CameraObservation("rgb_from_ir", {"R": np.eye(3).tolist(), "t_m": [0.025, -0.0001, 0.0003], "rms_px": 0.2})


@dataclass
class FakeCameraResult:
    serial: str
    step: str
    ok: bool
    verdict: str | None = None
    checksum: str | None = None
    error: NaiadError | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    advice: str | None = None
    findings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "ok": self.ok}


class ScriptedCamera:
    """``calibrate_units`` for one unit as the step behaves: phases, observations, then its result."""

    def __init__(self, poses: int = 40) -> None:
        self.calls: list[tuple[str, str, str | None, bool]] = []  # serial, mode, operator, on the GUI thread
        self.release = threading.Event()
        self.release.set()
        self.poses = poses
        self.jig_asked: list[bool] = []  # on the GUI thread, each time

    def jig_poses(self) -> int:
        self.jig_asked.append(on_gui_thread())
        return self.poses

    def calibrate(self, station: Any, serial: str, mode: str, session: Any, listener: Listener) -> list[Any]:
        self.calls.append((serial, mode, getattr(session, "operator", None), on_gui_thread()))
        self.release.wait(WAIT_MS / 1000)
        step = "calibrate" if mode == FULL else "field-check"
        report = Reporter(listener, serial, step)
        report.phase("capture", "Capturing views")
        if mode == FULL:
            for index in range(3):
                for stream in ("ir", "rgb"):
                    reason = "blurred" if index == 1 else None
                    report.observe(VIEW, view(accepted=index != 1, views=index, stream=stream, reason=reason))
                report.progress(index + 1, 3, counts="items")
            report.observe(CAMERA, ir_camera())
            report.observe(CAMERA, stereo())
            report.observe(DEPTH, depth(0.5))
            report.observe(DEPTH, depth(1.0))
            result = FakeCameraResult(serial, step, True, checksum=CHECKSUM)
        else:
            report.observe(VIEW, view())
            report.observe(VIEW, view(stream="rgb"))
            report.observe(DEPTH, depth(None))
            advice = "Recalibrate the unit on the jig."
            figures = {"reprojection_rms_px": 1.84, "misalignment_px": 3.2, "depth_bias_pct": -0.4, "fill_rate": 0.98}
            findings = ["Reprojection error 1.84 px (limit 0.80 px)", "IR-RGB misalignment 3.20 px (limit 1.50 px)"]
            result = FakeCameraResult(
                serial, step, False, "recalibrate", figures=figures, advice=advice, findings=findings
            )
        report.finished(result)
        return [result]


# -- the window ------------------------------------------------------------------------------------------------


@pytest.fixture
def engine() -> ScriptedCamera:
    return ScriptedCamera()


@pytest.fixture
def window(
    qtbot: Any,
    ledger: Ledger,  # noqa: F811 - the fixture of test_console_keys, imported above
    engine: ScriptedCamera,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    caplog.set_level(logging.DEBUG)
    gui_calls: list[str] = []
    station = FakeStation(ledger, gui_calls)
    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, camera=engine)
    qtbot.addWidget(win)
    win.start()
    win._on_device_added(device(SERIAL, 1))
    yield win
    engine.release.set()
    qtbot.waitUntil(lambda: not win.camera.running(), timeout=WAIT_MS)
    win.close()
    assert gui_calls == [] and not any(gui for *_rest, gui in engine.calls)  # the GUI thread ran no step
    assert not any(engine.jig_asked)  # nor built the jig


def open_panel(qtbot: Any, window: MainWindow) -> CalibrationPanel:
    card = window.bench.card(SERIAL)
    assert card is not None and card.camera_button.isVisibleTo(card) and card.camera_button.isEnabled()
    card.camera_button.click()
    panel = window.camera.panels.get(SERIAL)
    assert panel is not None and panel.isVisible()
    qtbot.waitUntil(lambda: window.camera.jig_poses is not None, timeout=WAIT_MS)  # asked on a worker
    return panel


def feed(panel: CalibrationPanel, *observations: Any, unit: str = SERIAL) -> None:
    """Observations to the panel as a run sends them: through the worker's :class:`DepthColouring`."""
    kinds = {ViewObservation: VIEW, CameraObservation: CAMERA, DepthObservation: DEPTH}
    recorder = Recorder()
    report = Reporter(DepthColouring(recorder), unit, "calibrate")
    for observation in observations:
        report.observe(kinds[type(observation)], observation)
    for event in recorder.of(Observed):
        panel.observed(event)


@pytest.mark.parametrize("name", ["olga", "ivy", "cara", "root"])
def test_the_camera_action_is_offered_only_to_roles_that_may_calibrate_or_check(
    qtbot: Any, window: MainWindow, name: str
) -> None:
    card = window.bench.card(SERIAL)
    assert card is not None and not card.camera_button.isVisibleTo(card)
    assert window.camera.open_panel(SERIAL) is None
    log_in(qtbot, window, name, PASSWORDS[name])
    role = ROLES[name]
    assert card.camera_button.isVisibleTo(card) is (role in ("operator", "installer"))
    if card.camera_button.isVisibleTo(card):
        panel = open_panel(qtbot, window)
        assert panel.full_button.isVisible() is (role == "operator")  # a full calibration writes the unit
        assert panel.check_button.isVisible() and panel.check_button.isEnabled()
        window.operator.log_out()
        assert not panel.isVisible() and not card.camera_button.isVisibleTo(card)


def test_a_full_calibration_from_the_card_shows_views_cameras_depth_and_the_checksum(
    qtbot: Any, window: MainWindow, engine: ScriptedCamera
) -> None:
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    panel = open_panel(qtbot, window)
    engine.release.clear()
    panel.full_button.click()
    card = window.bench.card(SERIAL)
    assert card is not None and card.in_job and card.step_label.text() == _(WAITING)
    assert panel.running and not panel.full_button.isEnabled() and not panel.check_button.isEnabled()
    engine.release.set()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=WAIT_MS)

    assert engine.calls == [(SERIAL, FULL, "olga", False)]
    for frame in panel.frame_views.values():  # the IR and the RGB tab
        assert frame.frame_size is not None and (frame.frame_size.width(), frame.frame_size.height()) == (320, 200)
        assert frame.grid is not None and frame.grid.any()
    assert panel.coverage_label.text() == "Coverage: 50 % of the image · views kept: 2"
    assert panel.view_label.text() == "Last view kept: 12 corners"
    table = panel.camera_table
    texts = [table.item(row, 0).text() for row in range(4)]  # type: ignore[union-attr]
    assert texts == ["921.30 ± 0.41 px", "920.80 ± 0.39 px", "641.20 ± 0.52 px", "401.70 ± 0.48 px"]
    assert table.item(4, 0).text() == "-0.12340 ± 0.00210"  # type: ignore[union-attr]
    assert table.item(0, 1).text() == "—"  # type: ignore[union-attr]  # no RGB result was sent
    assert panel.stereo_label.text() == "IR to RGB: t = (25.00, -0.10, 0.30) mm, rotation 0.000°, RMS 0.200 px"
    depth_table = panel.depth_table
    assert depth_table.columnCount() == 2
    assert [depth_table.horizontalHeaderItem(c).text() for c in range(2)] == ["0.50 m", "1.00 m"]  # type: ignore[union-attr]
    assert depth_table.item(0, 0).text() == "87.5 %" and depth_table.item(1, 1).text() == "0.82 mm"  # type: ignore[union-attr]
    assert depth_table.item(3, 0).text() == "—"  # type: ignore[union-attr]  # not measured
    assert panel.depth_view.frame_size is not None
    assert panel.outcome_label.isVisible() and CHECKSUM[:12] in panel.outcome_label.text()
    assert panel.outcome_label.property("failed") is False
    assert card.step_label.text() == _(CALIBRATED, checksum=CHECKSUM[:12]) and not card.in_job
    assert panel.full_button.isEnabled() and not panel.progress.isVisible()
    assert any(f"{SERIAL}: Camera calibrated" in line for line in window.log_pane.lines())


def test_a_field_check_shows_its_verdict_and_advice_on_the_panel_and_the_card(
    qtbot: Any, window: MainWindow, engine: ScriptedCamera
) -> None:
    log_in(qtbot, window, "ivy", PASSWORDS["ivy"])
    panel = open_panel(qtbot, window)
    panel.check_button.click()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=WAIT_MS)

    assert engine.calls == [(SERIAL, CHECK, "ivy", False)]
    assert panel.coverage_label.text() == "Field check view: 12 board corners found"  # no coverage: one view
    assert not panel.cameras_box.isVisible()  # a check solves no camera
    for frame in panel.frame_views.values():  # the IR and the RGB view the check looked at, without a grid
        assert frame.frame_size is not None and frame.grid is None
    text = panel.outcome_label.text()
    assert text.splitlines() == [
        "Calibration drifted: recalibrate the camera",
        "• Reprojection error 1.84 px (limit 0.80 px)",  # the findings, under the verdict
        "• IR-RGB misalignment 3.20 px (limit 1.50 px)",
        "Recalibrate the unit on the jig.",
        "Reprojection: 1.84 px · IR-RGB misalignment: 3.20 px · Depth bias: -0.40 % · Fill rate: 98.0 %",
    ]
    assert panel.outcome_label.property("failed") is True
    assert panel.depth_table.horizontalHeaderItem(0).text() == "—"  # type: ignore[union-attr]  # no known distance
    card = window.bench.card(SERIAL)
    error = FieldCheckFailed(verdict="Calibration drifted: recalibrate the camera")
    assert card is not None and card.step_label.text() == str(error) and card.step_label.toolTip() == error.remedy_text


def test_a_mode_the_role_may_not_start_is_refused_and_logged(
    qtbot: Any, window: MainWindow, engine: ScriptedCamera
) -> None:
    log_in(qtbot, window, "ivy", PASSWORDS["ivy"])
    assert window.camera.start(SERIAL, FULL) is None
    error = CameraRoleNeeded(roles="operator")
    assert window.log_pane.lines()[-1].endswith(
        f"{_('Camera calibration did not start: {message}', message=str(error))} — {error.remedy_text}"
    )
    assert engine.calls == []


def test_the_start_buttons_wait_while_another_job_holds_the_unit(qtbot: Any, window: MainWindow) -> None:
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    panel = open_panel(qtbot, window)
    release = threading.Event()
    job = window.workers.run(lambda _listener: release.wait(WAIT_MS / 1000), (SERIAL,), "flash")
    assert not panel.full_button.isEnabled() and not panel.check_button.isEnabled()
    assert window.camera.start(SERIAL, CHECK) is None  # refused: the unit is busy
    release.set()
    qtbot.waitUntil(job.returned.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.workers.busy(SERIAL), timeout=WAIT_MS)
    assert panel.full_button.isEnabled() and panel.check_button.isEnabled()


# -- the listener's observed signal ---------------------------------------------------------------------------


def test_observations_reach_the_observed_signal_on_the_gui_thread(qtbot: Any) -> None:
    workers = Workers()
    seen: list[tuple[Observed, bool]] = []
    gui = QApplication.instance().thread()  # type: ignore[union-attr]
    sent = view()

    def work(listener: Listener) -> None:
        Reporter(listener, SERIAL, "calibrate").observe(VIEW, sent)

    job = Job(work, (), "calibrate")
    job.observed.connect(lambda event: seen.append((event, QThread.currentThread() is gui)))
    workers.start(job)
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    ((event, on_gui),) = seen
    assert on_gui and (event.unit, event.kind) == (SERIAL, VIEW) and event.data is sent
    assert workers.shutdown()


# -- the panel fed directly --------------------------------------------------------------------------------------


def test_the_panel_draws_observations_fed_to_it_directly(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    panel = CalibrationPanel(SERIAL)
    qtbot.addWidget(panel)
    assert panel.coverage_label.text() == "Coverage: no view yet"
    assert panel.stereo_label.text() == "IR to RGB: not solved yet" and not panel.outcome_label.isVisible()
    panel.observed(Observed(SERIAL, "calibrate", VIEW, view(accepted=False, reason="too few corners")))
    assert panel.view_label.text() == "Last view dropped (12 corners): too few corners"
    panel.observed(Observed("DF2A00002", "calibrate", CAMERA, ir_camera()))  # another unit's: not drawn here
    assert panel.camera_table.item(0, 0).text() == "—"  # type: ignore[union-attr]
    panel.observed(Observed(SERIAL, "calibrate", VIEW, view(stream="rgb", views=4)))
    assert panel.coverage_label.text() == "Coverage: 0 % of the image · views kept: 1"  # the IR tab's, still shown
    panel.views.setCurrentWidget(panel.frame_views["rgb"])
    assert panel.coverage_label.text() == "Coverage: 50 % of the image · views kept: 4"
    feed(panel, DepthObservation(np.zeros((20, 32), np.uint16), 0.5))
    assert panel.depth_table.columnCount() == 0  # a frame without figures is shown, not tabulated
    odd = ViewObservation("ir", np.zeros((4, 4), np.float64), corners(), True, None, 0.0, np.zeros((6, 8), bool), 1)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        panel.observed(Observed(SERIAL, "calibrate", VIEW, odd))  # logged, not raised out of the slot
    assert "cannot show a view observation" in caplog.text
    panel.end(None, CameraRoleNeeded(roles="operator"))
    assert panel.outcome_label.property("failed") is True and "operator" in panel.outcome_label.text()


def test_a_passed_check_reads_as_such() -> None:
    result = FakeCameraResult(SERIAL, "check", True, "ok", figures={"board_distance_m": 0.45}, advice="No action.")
    text, ok = outcome_text(result)
    assert ok and text.splitlines() == ["Camera OK: no drift found", "No action.", "Board distance: 0.45 m"]


@pytest.mark.parametrize("verdict", sorted(VERDICT_LABELS))
def test_every_verdict_and_role_is_the_steps_own(verdict: str) -> None:
    result = FakeCameraResult(SERIAL, "field-check", False, verdict)
    assert outcome_text(result)[0].splitlines()[0] == _(VERDICT_LABELS[verdict])  # e.g. "foreign", added by the core
    assert MODE_ROLES == {FULL: (ROLE,), CHECK: CHECK_ROLES}


def test_a_frame_is_shown_over_the_arrays_memory_scaled_with_its_aspect(qtbot: Any) -> None:
    frame = np.zeros((800, 1280), np.uint8)
    image, pixels = image_from_array(frame)
    assert pixels is frame and int(image.constBits()) == frame.ctypes.data
    crop = np.zeros((10, 20, 3), np.uint8)[:, ::2]
    _image, copied = image_from_array(crop)
    assert copied.flags.c_contiguous and copied.shape == (10, 10, 3)
    with pytest.raises(ValueError):
        image_from_array(np.zeros((4, 4), np.uint16))

    view_ = FrameView()
    qtbot.addWidget(view_)
    view_.resize(400, 400)
    view_.show_frame(frame)
    rect = view_.image_rect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (0.0, 75.0, 400.0, 250.0)
    point = view_.to_widget(639.5, 399.5)  # the frame's centre
    assert (point.x(), point.y()) == (200.0, 200.0)
    view_.show_corners(corners())
    view_.show_grid(np.ones((6, 8), bool))
    shot = view_.grab()  # paints the scaled frame, the grid and the corners
    assert not shot.isNull()


def test_the_panel_fits_1280x800_in_chinese_without_clipping(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "_language", "zh_CN")
    panel = CalibrationPanel(SERIAL)
    qtbot.addWidget(panel)
    panel.set_allowed((FULL, CHECK), True)
    feed(panel, view(), ir_camera(), stereo(), depth(0.5), depth(1.0))
    panel.end(FakeCameraResult(SERIAL, "field-check", False, "recalibrate", advice="x" * 60))
    hint = panel.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 760  # the window frame and a task bar take the rest
    panel.resize(1280, 760)
    panel.show()
    qtbot.waitExposed(panel)
    for button in panel.findChildren(QPushButton):
        if button.isVisible():
            assert button.width() >= button.sizeHint().width(), button.text()
    for label in panel.findChildren(QLabel):
        if label.isVisible() and not label.wordWrap():
            assert label.width() >= label.sizeHint().width(), label.text()


def test_depth_in_false_colour_keeps_a_flat_walls_noise_quiet_and_spreads_a_real_range() -> None:
    rng = np.random.default_rng(7)
    wall = (800 + rng.normal(0, 3, (80, 128))).astype(np.uint16)
    wall[:, :8] = 0
    picture = false_colour_of(wall)
    assert picture.shape == (80, 128, 3) and not picture[:, :8].any()  # no depth: black
    lit = picture[:, 8:].reshape(-1, 3).astype(int)
    assert np.ptp(lit, axis=0).max() < 128  # millimetres of noise stay near one colour, not the whole map
    ramp = np.tile(np.linspace(400, 1400, 128).astype(np.uint16), (80, 1))
    coloured = false_colour_of(ramp).astype(int)
    near, far = coloured[40, 2], coloured[40, -3]  # BGR
    assert near[2] > near[0] and far[0] > far[2]  # near reads red, far blue
