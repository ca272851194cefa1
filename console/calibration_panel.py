"""The calibration panel of one unit: what a camera calibration or field check sees and finds, as it happens.

It shows the live IR (or RGB) view with the board corners the step detected and the coverage grid of the views
kept so far (:class:`camera.observations.ViewObservation`), each camera's result with its uncertainties
(:class:`~camera.observations.CameraObservation`), the depth image in false colour and its quality figures
(:class:`ColouredDepth`, a :class:`~camera.observations.DepthObservation` coloured on the step's worker), and the
outcome: the calibration's checksum, or a field check's verdict and advice.  It only draws: its buttons ask
(``start_requested``) and :mod:`console.calibration_run` runs the step off the GUI thread and feeds it the step's
events.  Closed, it lets its frames go (the figures and the outcome stay for when it is opened again).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QHideEvent
from PyQt6.QtWidgets import (
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from camera.labels import CHECK_FIGURES, DEPTH_FIGURES, NO_VALUE, figure_text, verdict_text
from camera.observations import CAMERA, DEPTH, VIEW, CameraObservation, ViewObservation
from i18n import N_, _
from provisioning.camera_steps import CHECK, FULL
from terminal.errors import NaiadError
from terminal.events import Message, Observed, PhaseStarted, Progressed

from .frame_view import FrameView
from .unit_card import error_texts, repolish

LOG = logging.getLogger(__name__)

CAMERAS: tuple[tuple[str, str], ...] = (("ir", N_("IR camera")), ("rgb", N_("RGB camera")))
PARAMETERS = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")


@dataclass(frozen=True)
class ColouredDepth:
    """A depth observation as the panel draws it: the false-colour picture of its frame, made on the step's worker
    (:class:`console.calibration_run.DepthColouring`) so the GUI thread only shows it, and its figures."""

    picture: npt.NDArray[np.uint8] | None  # BGR (H, W, 3); None when the frame could not be coloured
    distance_m: float | None
    figures: dict[str, float] = field(default_factory=dict)
    passed: bool | None = None


def rotation_deg(matrix: Any) -> float:
    """The angle of a rotation matrix, in degrees."""
    trace = float(np.trace(np.asarray(matrix, float)))
    return math.degrees(math.acos(max(-1.0, min(1.0, (trace - 1.0) / 2.0))))


def camera_values(observation: CameraObservation) -> dict[str, float]:
    """fx, fy, cx, cy and the distortion coefficients of a solved camera, from its ``K`` and ``dist``."""
    figures = observation.figures
    values: dict[str, float] = {}
    k = figures.get("K")
    if k is not None:
        matrix = np.asarray(k, float)
        values.update(fx=matrix[0, 0], fy=matrix[1, 1], cx=matrix[0, 2], cy=matrix[1, 2])
    for name, value in zip(PARAMETERS[4:], figures.get("dist") or (), strict=False):
        values[name] = float(value)
    return values


def value_text(name: str, value: float, std: float | None) -> str:
    """Text such as 921.30 ± 0.41 px (focal length, principal point) or -0.12340 ± 0.00210 (a distortion term)."""
    if name in ("fx", "fy", "cx", "cy"):
        if std is None:
            return _("{value:.2f} px", value=value)
        return _("{value:.2f} ± {std:.2f} px", value=value, std=std)
    if std is None:
        return f"{value:.5f}"
    return f"{value:.5f} ± {std:.5f}"


def outcome_text(result: Any) -> tuple[str, bool]:
    """A finished step's outcome for people (a check's verdict with its findings under it, or the checksum; the
    advice and the check's figures) and whether it passed."""
    figures = getattr(result, "figures", None) or {}
    verdict = getattr(result, "verdict", None)
    ok = bool(getattr(result, "ok", False))
    lines: list[str] = []
    if verdict:
        lines.append(verdict_text(verdict))
        lines += [f"• {finding}" for finding in getattr(result, "findings", None) or () if finding]
    error = getattr(result, "error", None)
    if error is not None:
        message, remedy = error_texts(error)
        lines += [message, remedy or ""]
    elif ok and not verdict:
        checksum = getattr(result, "checksum", None)
        if checksum:
            lines.append(_("Calibrated and written to the unit (checksum {checksum})", checksum=str(checksum)[:12]))
        else:
            lines.append(_("Done"))
    advice = getattr(result, "advice", None)
    if isinstance(advice, str) and advice:
        lines.append(advice)
    if verdict:
        shown = []
        for key, label, value_msgid in CHECK_FIGURES:
            text = figure_text(key, value_msgid, figures.get(key))
            if text != NO_VALUE:
                shown.append(_("{label}: {value}", label=_(label), value=text))
        lines.append(" · ".join(shown))
    return "\n".join(line for line in lines if line), ok


class CalibrationPanel(QDialog):
    """One unit's camera calibration and field check, as they run (non-modal; kept while the console runs)."""

    start_requested = pyqtSignal(str, str)  # (serial, mode: "full" or "check")

    def __init__(self, serial: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("calibrationPanel")
        self.serial = serial
        self.running = False
        self._allowed: set[str] = set()
        self._available = True
        self._jig_poses: int | None = None
        self._mode: str | None = None  # of the last run begun
        self._view: dict[str, ViewObservation] = {}
        self._cameras: dict[str, CameraObservation] = {}
        self._depths: list[ColouredDepth] = []  # figures only: the one picture shown is the depth view's
        self._phase: str | None = None
        self._outcome: Any = None
        self._outcome_error: BaseException | None = None

        self.views = QTabWidget()
        self.frame_views = {stream: FrameView() for stream in ("ir", "rgb")}
        for view in self.frame_views.values():
            self.views.addTab(view, "")
        self.views.currentChanged.connect(lambda _index: self._draw_view())
        self.coverage_label = QLabel()
        self.coverage_label.setObjectName("coverageLabel")
        self.view_label = QLabel()
        self.view_label.setWordWrap(True)
        left = QVBoxLayout()
        left.addWidget(self.views, 1)
        left.addWidget(self.coverage_label)
        left.addWidget(self.view_label)

        self.cameras_box = QGroupBox()
        self.camera_table = QTableWidget(len(PARAMETERS) + 1, len(CAMERAS))
        fit_table(self.camera_table)
        self.camera_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # type: ignore[union-attr]
        self.camera_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # type: ignore[union-attr]
        self.stereo_label = QLabel()
        self.stereo_label.setWordWrap(True)
        cameras = QVBoxLayout(self.cameras_box)
        cameras.addWidget(self.camera_table)
        cameras.addWidget(self.stereo_label)

        self.depth_box = QGroupBox()
        self.depth_view = FrameView()
        self.depth_view.setMinimumSize(200, 110)
        self.depth_table = QTableWidget(len(DEPTH_FIGURES) + 1, 0)
        fit_table(self.depth_table)
        self.depth_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # type: ignore[union-attr]
        self.depth_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # type: ignore[union-attr]
        depth = QVBoxLayout(self.depth_box)
        depth.addWidget(self.depth_view, 1)
        depth.addWidget(self.depth_table)

        self.phase_label = QLabel()
        self.phase_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.outcome_label = QLabel()
        self.outcome_label.setObjectName("cardStep")  # the style sheet's red for failed="true"
        self.outcome_label.setWordWrap(True)
        self.outcome_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.full_button = QPushButton()
        self.full_button.setObjectName("fullCalibrationButton")
        self.full_button.clicked.connect(lambda: self.start_requested.emit(self.serial, FULL))
        self.check_button = QPushButton()
        self.check_button.setObjectName("fieldCheckButton")
        self.check_button.clicked.connect(lambda: self.start_requested.emit(self.serial, CHECK))
        buttons = QHBoxLayout()
        buttons.addWidget(self.full_button)
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)

        right = QVBoxLayout()
        right.addWidget(self.cameras_box)
        right.addWidget(self.depth_box, 1)
        top = QHBoxLayout()
        top.addLayout(left, 5)
        top.addLayout(right, 4)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.phase_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.outcome_label)
        layout.addLayout(buttons)
        self.progress.hide()
        self.retranslate()
        self.resize(1180, 720)

    # -- what may be started -------------------------------------------------------------------------------

    def set_allowed(self, modes: Iterable[str], available: bool, jig_poses: int | None = None) -> None:
        """The modes the logged-in role may start, whether the unit can take a step now (attached, idle) and the
        poses the station's jig plans (0: no jig, so no full calibration; None: not known yet)."""
        self._allowed = set(modes)
        self._available = available
        if jig_poses != self._jig_poses:
            self._jig_poses = jig_poses
            self._set_full_tip()
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        idle = self._available and not self.running
        self.full_button.setVisible(FULL in self._allowed)
        self.check_button.setVisible(CHECK in self._allowed)
        self.full_button.setEnabled(idle and FULL in self._allowed and bool(self._jig_poses))
        self.check_button.setEnabled(idle and CHECK in self._allowed)

    def _set_full_tip(self) -> None:
        if self._jig_poses == 0:
            tip = _("This station has no calibration jig: a full calibration needs one, a field check does not")
        else:
            tip = _("Calibrate both cameras and the depth on the jig, then write it to the unit")
        self.full_button.setToolTip(tip)

    # -- a run ---------------------------------------------------------------------------------------------

    def begin(self, mode: str) -> None:
        """A run started on this unit: forget the last one's pictures and figures."""
        self.running = True
        self._mode = mode
        self.cameras_box.setVisible(mode != CHECK)  # a check solves no camera: no table of dashes
        self._cameras.clear()
        self._depths.clear()
        self._outcome = self._outcome_error = None
        self.forget_frames()
        self._phase = _("Starting the full calibration…") if mode == FULL else _("Starting the field check…")
        self.progress.setRange(0, 0)
        self.progress.show()
        self._sync_buttons()
        self.retranslate()

    def end(self, result: Any = None, error: BaseException | None = None) -> None:
        """The run ended: its unit's result (a ``CameraStepResult``), or the error that kept it from starting."""
        self.running = False
        self._phase = None
        self.progress.hide()
        if result is not None or error is not None:
            self._outcome, self._outcome_error = result, error
        if not self.isVisible():  # closed while it ran: nobody looks at its last frames
            self.forget_frames()
        self._sync_buttons()
        self.retranslate()

    def forget_frames(self) -> None:
        """Let the frames shown go (a full-size IR, RGB and depth picture each); figures and outcome stay."""
        self._view.clear()
        for view in (*self.frame_views.values(), self.depth_view):
            view.clear()
        self._draw_view()

    def hideEvent(self, event: QHideEvent | None) -> None:
        """Closed by the operator (not the desktop minimising the console): the frames go."""
        if event is not None and not event.spontaneous():
            self.forget_frames()
        super().hideEvent(event)

    def phase_started(self, event: PhaseStarted) -> None:
        if event.unit == self.serial:
            self._phase = event.label
            self.progress.setRange(0, 0)
            self.phase_label.setText(event.label)

    def progressed(self, event: Progressed) -> None:
        if event.unit != self.serial:
            return
        if event.total <= 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, event.total)
            self.progress.setValue(max(0, min(event.total, event.done)))

    def message(self, event: Message) -> None:
        if event.unit == self.serial:
            self.view_label.setText(event.text)

    def observed(self, event: Observed) -> None:
        """Show what the step saw: a view, a depth frame or a solved camera (other kinds are not ours)."""
        if event.unit != self.serial:
            return
        data = event.data
        try:
            if event.kind == VIEW and isinstance(data, ViewObservation):
                self.show_view(data)
            elif event.kind == DEPTH and isinstance(data, ColouredDepth):
                self.show_depth(data)
            elif event.kind == CAMERA and isinstance(data, CameraObservation):
                self.show_camera(data)
        except (ValueError, TypeError, KeyError, IndexError, NaiadError):  # a malformed frame must not end the console
            LOG.exception("%s: cannot show a %s observation", self.serial, event.kind)

    # -- drawing what was observed -------------------------------------------------------------------------

    def show_view(self, view: ViewObservation) -> None:
        stream = view.stream if view.stream in self.frame_views else "ir"
        self._view[stream] = view
        frame = self.frame_views[stream]
        frame.show_frame(view.image)
        frame.show_corners(view.corners, kept=view.accepted)
        frame.show_grid(None if self._mode == CHECK else view.coverage_grid)  # a check keeps no views to cover
        self._draw_view()  # the tab shown stays as the operator chose: IR and RGB views may alternate

    def show_depth(self, depth: ColouredDepth) -> None:
        if depth.picture is not None:
            self.depth_view.show_frame(depth.picture)
        if depth.figures:
            self._depths.append(replace(depth, picture=None))
            self._draw_depth()

    def show_camera(self, camera: CameraObservation) -> None:
        self._cameras[camera.name] = camera
        self._draw_cameras()

    def _current_view(self) -> ViewObservation | None:
        widget = self.views.currentWidget()
        for stream, frame in self.frame_views.items():
            if frame is widget:
                return self._view.get(stream)
        return None

    def _draw_view(self) -> None:
        view = self._current_view()
        if view is None:
            self.coverage_label.setText(_("Coverage: no view yet"))
            self.view_label.setText("")
            return
        corners = len(view.corners)
        if self._mode == CHECK:  # one view against the stored calibration: what it found, no coverage
            if corners:
                self.coverage_label.setText(_("Field check view: {corners} board corners found", corners=corners))
            else:
                self.coverage_label.setText(_("Field check view: no board corners found"))
            self.view_label.setText(view.reason or "")
            return
        self.coverage_label.setText(
            _(
                "Coverage: {percent:.0f} % of the image · views kept: {views}",
                percent=100.0 * view.coverage,
                views=view.views,
            )
        )
        if view.accepted:
            self.view_label.setText(_("Last view kept: {corners} corners", corners=corners))
        else:
            self.view_label.setText(
                _("Last view dropped ({corners} corners): {reason}", corners=corners, reason=view.reason or NO_VALUE)
            )

    def _draw_cameras(self) -> None:
        table = self.camera_table
        table.setHorizontalHeaderLabels([_(label) for _name, label in CAMERAS])
        table.setVerticalHeaderLabels([*PARAMETERS, _("RMS")])
        for column, (name, _label) in enumerate(CAMERAS):
            observed = self._cameras.get(name)
            values = camera_values(observed) if observed is not None else {}
            for row, parameter in enumerate(PARAMETERS):
                value = values.get(parameter)
                text = (
                    NO_VALUE
                    if observed is None or value is None
                    else value_text(parameter, value, observed.std.get(parameter))
                )
                table.setItem(row, column, QTableWidgetItem(text))
            rms = None if observed is None else observed.figures.get("rms_px")
            rms_text = NO_VALUE if rms is None else _("{value:.3f} px", value=float(rms))
            table.setItem(len(PARAMETERS), column, QTableWidgetItem(rms_text))
        stereo = self._cameras.get("rgb_from_ir")
        if stereo is None or "t_m" not in stereo.figures:
            self.stereo_label.setText(_("IR to RGB: not solved yet"))
            return
        t_mm = [1000.0 * float(v) for v in stereo.figures["t_m"]]
        self.stereo_label.setText(
            _(
                "IR to RGB: t = ({x:.2f}, {y:.2f}, {z:.2f}) mm, rotation {angle:.3f}°, RMS {rms:.3f} px",
                x=t_mm[0],
                y=t_mm[1],
                z=t_mm[2],
                angle=rotation_deg(stereo.figures.get("R", np.eye(3))),
                rms=float(stereo.figures.get("rms_px", math.nan)),
            )
        )

    def _draw_depth(self) -> None:
        table = self.depth_table
        table.setColumnCount(len(self._depths))
        table.setVisible(bool(self._depths))  # a check's depth frame alone has no figures: no empty table
        table.setVerticalHeaderLabels([*(_(label) for _key, label, _value in DEPTH_FIGURES), _("Verdict")])
        headers = []
        for column, depth in enumerate(self._depths):
            distance = depth.distance_m
            headers.append(NO_VALUE if distance is None else _("{distance:.2f} m", distance=distance))
            for row, (key, _label, value_msgid) in enumerate(DEPTH_FIGURES):
                table.setItem(row, column, QTableWidgetItem(figure_text(key, value_msgid, depth.figures.get(key))))
            passed = {True: _("pass"), False: _("fail"), None: NO_VALUE}[depth.passed]
            table.setItem(len(DEPTH_FIGURES), column, QTableWidgetItem(passed))
        table.setHorizontalHeaderLabels(headers)

    def _draw_outcome(self) -> None:
        if self._outcome_error is not None:
            message, remedy = error_texts(self._outcome_error)
            text, ok = "\n".join(part for part in (message, remedy) if part), False
        elif self._outcome is not None:
            text, ok = outcome_text(self._outcome)
        else:
            self.outcome_label.hide()
            return
        self.outcome_label.setText(text)
        self.outcome_label.setProperty("failed", not ok)
        repolish(self.outcome_label)
        self.outcome_label.show()

    def retranslate(self) -> None:
        self.setWindowTitle(_("Camera calibration — {serial}", serial=self.serial))
        self.views.setTabText(0, _("IR view"))
        self.views.setTabText(1, _("RGB view"))
        self.cameras_box.setTitle(_("Cameras (value ± standard deviation)"))
        self.depth_box.setTitle(_("Depth quality"))
        self.full_button.setText(_("Full calibration"))
        self._set_full_tip()
        self.check_button.setText(_("Field check"))
        self.check_button.setToolTip(_("Check the stored calibration against one view of the board"))
        self.phase_label.setText(self._phase or "")
        self.phase_label.setVisible(self._phase is not None)
        self._draw_view()
        self._draw_cameras()
        self._draw_depth()
        self._draw_outcome()


def fit_table(table: QTableWidget) -> None:
    """A read-only table as tall as its rows (no empty space, no vertical scrolling)."""
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSizeAdjustPolicy(QTableWidget.SizeAdjustPolicy.AdjustToContents)
    table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
