"""The face-pay check page of one unit: what the check sees and how far it got, as it happens.

It shows the frame sets the check judges (:class:`camera.observations.FaceObservation`, its depth coloured on the
step's worker: :class:`ColouredFace`) side by side, RGB, IR and depth, with the face box, the landmarks and the
liveness score drawn over them (in RGB the face the detector found, in IR and depth the same face mapped there);
the check's stages (:data:`provisioning.facepay_steps.STAGES`) with a tick or a cross and the seconds each took;
the trade number and whether the test payment was refunded; and the outcome in plain words.  It only draws: its
Start button asks (``start_requested``) and :mod:`console.facepay_run` runs the check off the GUI thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PyQt6.QtCore import Qt, pyqtBoundSignal, pyqtSignal
from PyQt6.QtGui import QHideEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from camera.faces import ATTACKS, LIVE, PRESENTATIONS, Decision, FaceAnalysis
from camera.observations import FACE, FaceObservation
from i18n import N_, _
from provisioning.facepay_steps import STAGES, TEST_AMOUNT, FacePayCheckResult, stage_label
from terminal.errors import NaiadError
from terminal.events import Message, Observed, PhaseStarted

from .calibration_panel import fit_table
from .face_view import ATTACK_COLOUR, LIVE_COLOUR, OTHER_COLOUR, FaceFrameView
from .platform_access import SecretField
from .unit_card import NO_VALUE, error_texts, repolish

LOG = logging.getLogger(__name__)

PRESENTATION_LABELS: dict[str, str] = {
    LIVE: N_("Live face"),
    "photo": N_("Attack: printed photo"),
    "screen": N_("Attack: screen replay"),
    "mask": N_("Attack: 3D mask"),
}
ATTACK_NAMES: dict[str, str] = {"photo": N_("printed photo"), "screen": N_("screen replay"), "mask": N_("3D mask")}
DECISION_LABELS: dict[Decision, str] = {
    Decision.LIVE: N_("live"),
    Decision.ATTACK: N_("attack"),
    Decision.NO_FACE: N_("no face"),
    Decision.SEVERAL_FACES: N_("several faces"),
    Decision.POOR_QUALITY: N_("face too poor to judge"),
}
STREAMS: tuple[tuple[str, str], ...] = (("rgb", N_("RGB")), ("ir", N_("IR")), ("depth", N_("Depth")))
COLUMNS = (N_("Stage"), N_("Time"), N_("Detail"))
MARKS = {None: "○", True: "✓", False: "✗"}
RUNNING_MARK = "…"


@dataclass(frozen=True)
class ColouredFace:
    """A face observation as the page draws it: its frames and analysis, and its depth frame in false colour,
    made on the step's worker (:class:`console.facepay_run.FaceColouring`) so the GUI thread only shows pictures."""

    observation: FaceObservation
    depth_picture: npt.NDArray[np.uint8] | None  # BGR (H, W, 3); None when there was no depth to colour


def decision_text(analysis: FaceAnalysis, *, threshold: bool = True) -> str:
    """What the station found in a frame set, for people: the decision and, when judged, the liveness score (and
    the threshold it is held to, unless ``threshold`` is False: a caption drawn on a frame stays short)."""
    liveness = analysis.liveness
    decision = _(DECISION_LABELS.get(analysis.decision, N_("unknown")))
    if liveness is None:
        return decision
    if not threshold:
        return _("{decision} · liveness {score:.2f}", decision=decision, score=liveness.score)
    return _(
        "{decision} · liveness {score:.2f} (threshold {threshold:.2f})",
        decision=decision,
        score=liveness.score,
        threshold=liveness.threshold,
    )


def refund_text(result: FacePayCheckResult) -> tuple[str, bool]:
    """The test payment's fate in plain words, and whether it is as it should be (paid back, or never made)."""
    if result.trade_no is None:
        pending = result.extra.get("payment_pending")
        if pending:
            return _(
                "Payment {out_trade_no} pending: it may be taken; the next check settles and refunds it",
                out_trade_no=pending,
            ), False
        if result.presentation in ATTACKS:
            return _("No trade made: the attack was not paid with"), True
        return _("No trade made"), result.passed
    if result.refunded:
        return _("Refunded ({amount} yuan)", amount=TEST_AMOUNT), True
    return _("NOT refunded yet: the unit's next check refunds trade {trade_no}", trade_no=result.trade_no), False


def outcome_text(result: FacePayCheckResult) -> str:
    """The check's outcome in plain words: what passed, or which stage failed and why."""
    if result.passed:
        if result.presentation in ATTACKS:
            return _(
                "Passed: the station and the unit refused the {attack}; no trade was made",
                attack=_(ATTACK_NAMES[result.presentation]),
            )
        return _(
            "Passed: paid {amount} yuan with the face and refunded it, in {seconds:.1f} s",
            amount=TEST_AMOUNT,
            seconds=result.total_seconds,
        )
    failed = next((stage for stage in result.stages if not stage.ok), None)
    lines = []
    if failed is not None:
        lines.append(
            _("Failed at “{stage}”: {detail}", stage=stage_label(failed.name), detail=failed.detail or NO_VALUE)
        )
    if result.error is not None:
        message, remedy = error_texts(result.error)
        if failed is None or message != failed.detail:  # a stage's detail is often its error's message
            lines.append(message)
        lines.append(remedy or "")
    return "\n".join(line for line in lines if line) or _("Failed")


def show_marked(label: QLabel, text: str, *, failed: bool) -> None:
    """Show ``text`` on ``label``, red when ``failed`` (the style sheet's ``failed`` property)."""
    label.setText(text)
    label.setProperty("failed", failed)
    repolish(label)
    label.show()


class FacePayPage(QDialog):
    """One unit's face-pay check, as it runs (non-modal; kept while its card is on the bench)."""

    start_requested = pyqtSignal(str, str, str)  # (serial, presentation, key store secret)
    presented = pyqtSignal()  # the operator put what the prompt asked for before the unit
    withdrawn = pyqtSignal()  # the operator declined to, or closed the page while asked

    def __init__(self, serial: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("facePayPage")
        self.serial = serial
        self.running = False
        self._allowed = False
        self._available = True
        self._phase: str | None = None
        self._result: FacePayCheckResult | None = None
        self._error: BaseException | None = None
        self._analysis: FaceAnalysis | None = None
        self._message = ""

        self.views = {stream: FaceFrameView() for stream, _label in STREAMS}
        self.view_captions = {stream: QLabel() for stream, _label in STREAMS}
        frames = QGridLayout()
        for column, (stream, _label) in enumerate(STREAMS):
            self.view_captions[stream].setAlignment(Qt.AlignmentFlag.AlignCenter)
            frames.addWidget(self.view_captions[stream], 0, column)
            frames.addWidget(self.views[stream], 1, column)
            frames.setColumnStretch(column, 1)
        frames.setRowStretch(1, 1)
        self.analysis_label = QLabel()
        self.analysis_label.setObjectName("faceAnalysis")
        self.analysis_label.setWordWrap(True)

        self.stages_box = QGroupBox()
        self.stage_table = QTableWidget(len(STAGES), len(COLUMNS))
        fit_table(self.stage_table)
        self.stage_table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.stage_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.stage_table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        vertical = self.stage_table.verticalHeader()
        assert vertical is not None
        vertical.hide()
        stages = QVBoxLayout(self.stages_box)
        stages.addWidget(self.stage_table)

        self.trade_box = QGroupBox()
        self.trade_caption, self.refund_caption, self.total_caption = QLabel(), QLabel(), QLabel()
        self.trade_value, self.refund_value, self.total_value = QLabel(), QLabel(), QLabel()
        self.trade_value.setObjectName("tradeNo")
        self.trade_value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.refund_value.setObjectName("cardStep")  # the style sheet's red for failed="true"
        self.refund_value.setWordWrap(True)
        trade = QGridLayout(self.trade_box)
        for row, (caption, value) in enumerate(
            (
                (self.trade_caption, self.trade_value),
                (self.refund_caption, self.refund_value),
                (self.total_caption, self.total_value),
            )
        ):
            trade.addWidget(caption, row, 0, Qt.AlignmentFlag.AlignTop)
            trade.addWidget(value, row, 1)
        trade.setColumnStretch(1, 1)
        trade.setRowStretch(3, 1)

        self.prompt_box = QFrame()
        self.prompt_box.setObjectName("presentPrompt")
        self.prompt_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.prompt_label = QLabel()
        self.prompt_label.setWordWrap(True)
        self.ready_button = QPushButton()
        self.ready_button.setObjectName("presentedButton")
        self.ready_button.clicked.connect(lambda: self._answer(self.presented))
        self.decline_button = QPushButton()
        self.decline_button.clicked.connect(lambda: self._answer(self.withdrawn))
        prompt = QHBoxLayout(self.prompt_box)
        prompt.addWidget(self.prompt_label, 1)
        prompt.addWidget(self.ready_button)
        prompt.addWidget(self.decline_button)
        self.prompt_box.hide()

        self.outcome_label = QLabel()
        self.outcome_label.setObjectName("cardStep")
        self.outcome_label.setWordWrap(True)
        self.outcome_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.presentation_caption = QLabel()
        self.presentation_combo = QComboBox()
        self.presentation_combo.setObjectName("presentationCombo")
        for presentation in PRESENTATIONS:
            self.presentation_combo.addItem("", presentation)
        self.secret_caption = QLabel()
        self.secret_edit = SecretField()
        self.secret_edit.textChanged.connect(lambda _text: self._sync_buttons())
        self.start_button = QPushButton()
        self.start_button.setObjectName("startFacePayButton")
        self.start_button.clicked.connect(self.start)
        controls = QHBoxLayout()
        controls.addWidget(self.presentation_caption)
        controls.addWidget(self.presentation_combo)
        controls.addSpacing(12)
        controls.addWidget(self.secret_caption)
        controls.addWidget(self.secret_edit, 1)
        controls.addWidget(self.start_button)

        bottom = QHBoxLayout()
        bottom.addWidget(self.stages_box, 3)
        bottom.addWidget(self.trade_box, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(frames, 1)
        layout.addWidget(self.analysis_label)
        layout.addLayout(bottom)
        layout.addWidget(self.prompt_box)
        layout.addWidget(self.outcome_label)
        layout.addLayout(controls)
        self._stages: dict[str, tuple[bool | None, float | None, str]] = {}
        self.retranslate()
        self.resize(1200, 760)

    # -- what may be started -------------------------------------------------------------------------------

    @property
    def last_result(self) -> FacePayCheckResult | None:
        """The last check's result (None before one ended, or when it ended without one)."""
        return self._result

    @property
    def last_error(self) -> BaseException | None:
        """What kept the last check from giving a result (refused before it ran, the role, the key store)."""
        return self._error

    def presentation(self) -> str:
        return str(self.presentation_combo.currentData())

    def set_allowed(self, allowed: bool, available: bool) -> None:
        """Whether the logged-in role may run the check, and whether the unit can take it now (attached, idle)."""
        self._allowed, self._available = allowed, available
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        for widget in (self.start_button, self.presentation_combo, self.presentation_caption):
            widget.setVisible(self._allowed)
        self.secret_caption.setVisible(self._allowed)
        self.secret_edit.setVisible(self._allowed)
        idle = self._allowed and self._available and not self.running
        self.start_button.setEnabled(idle and not self.secret_edit.missing())
        self.presentation_combo.setEnabled(not self.running)

    def start(self) -> None:
        if self.start_button.isEnabled():
            self.start_requested.emit(self.serial, self.presentation(), self.secret_edit.text())

    # -- a run ---------------------------------------------------------------------------------------------

    def begin(self) -> None:
        """A check started on this unit: forget the last one's frames, stages and outcome."""
        self.running = True
        self._result = self._error = self._analysis = None
        self._stages.clear()
        self._message = ""
        self._phase = None
        self.forget_frames()
        self._sync_buttons()
        self.retranslate()

    def end(self, result: FacePayCheckResult | None, error: BaseException | None = None) -> None:
        """The check ended with its result, or an error that kept it from running."""
        self.running = False
        self._phase = None
        self.prompt_box.hide()
        self._result, self._error = result, error
        if result is not None:
            self._stages = {stage.name: (stage.ok, stage.seconds, stage.detail) for stage in result.stages}
        if not self.isVisible():  # closed while it ran: nobody looks at its last frames
            self.forget_frames()
        self._sync_buttons()
        self.retranslate()

    def forget_frames(self) -> None:
        """Let the frames go (a full RGB, IR and depth picture); stages and outcome stay."""
        for view in self.views.values():
            view.clear()

    def hideEvent(self, event: QHideEvent | None) -> None:
        """Closed by the operator (not the desktop minimising the console): the frames and the secret go, and a
        question asked is answered no (nobody is there to present)."""
        if event is not None and not event.spontaneous():
            self.forget_frames()
            self.secret_edit.forget()
            self._answer(self.withdrawn)
        super().hideEvent(event)

    def ask(self, text: str) -> None:
        """The check waits for the operator to present something (a real unit: ``text`` says what and where)."""
        self.prompt_label.setText(text)
        self.prompt_box.show()
        self.ready_button.setFocus()

    def _answer(self, signal: pyqtBoundSignal) -> None:
        if not self.prompt_box.isHidden():
            self.prompt_box.hide()
            signal.emit()

    def phase_started(self, event: PhaseStarted) -> None:
        if event.unit == self.serial:
            self._phase = event.phase if event.phase in STAGES else None
            self._message = event.label
            self.retranslate()

    def message(self, event: Message) -> None:
        if event.unit == self.serial:
            self._message = event.text
            self.analysis_label.setText(event.text)

    def observed(self, event: Observed) -> None:
        """Show a frame set the check judged (other kinds are not ours)."""
        if event.unit != self.serial or event.kind != FACE:
            return
        data = event.data
        try:
            if isinstance(data, ColouredFace):
                self.show_face(data.observation, data.depth_picture)
            elif isinstance(data, FaceObservation):  # not coloured on a worker: shown without its depth
                self.show_face(data, None)
        except (ValueError, TypeError, KeyError, IndexError, NaiadError):  # a malformed frame must not end the console
            LOG.exception("%s: cannot show a face observation", self.serial)

    def show_face(self, observation: FaceObservation, depth_picture: npt.NDArray[np.uint8] | None) -> None:
        pictures = {"rgb": observation.rgb, "ir": observation.ir, "depth": depth_picture}
        for stream, picture in pictures.items():
            if picture is not None:
                self.views[stream].show_frame(picture)
        analysis = observation.analysis
        self._analysis = analysis
        caption = decision_text(analysis, threshold=False)
        colour = {Decision.LIVE: LIVE_COLOUR, Decision.ATTACK: ATTACK_COLOUR}.get(analysis.decision, OTHER_COLOUR)
        self.views["rgb"].show_face(analysis.face_rgb, caption, colour)
        self.views["ir"].show_face(analysis.face_ir, caption, colour)
        self.views["depth"].show_face(analysis.face_ir, caption, colour)  # depth is on the IR grid
        self._draw_analysis()

    # -- drawing -------------------------------------------------------------------------------------------

    def _draw_analysis(self) -> None:
        analysis = self._analysis
        if analysis is None:
            self.analysis_label.setText(self._message)
            return
        said = analysis.detail or decision_text(analysis)  # the analysis says it in full when it can
        self.analysis_label.setText(_("Station: {decision}", decision=said))

    def _draw_stages(self) -> None:
        table = self.stage_table
        table.setHorizontalHeaderLabels([_(column) for column in COLUMNS])
        for row, name in enumerate(STAGES):
            ok, seconds, detail = self._stages.get(name, (None, None, ""))
            mark = RUNNING_MARK if name == self._phase and ok is None else MARKS[ok]
            label = QTableWidgetItem(f"{mark}  {stage_label(name)}")
            if ok is not None:
                label.setForeground(LIVE_COLOUR.darker(140) if ok else ATTACK_COLOUR.darker(130))
            time = QTableWidgetItem(NO_VALUE if seconds is None else _("{seconds:.2f} s", seconds=seconds))
            time.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            text = QTableWidgetItem(detail)
            text.setToolTip(detail)
            for column, item in enumerate((label, time, text)):
                table.setItem(row, column, item)
        header, rows = table.horizontalHeader(), table.verticalHeader()
        assert header is not None and rows is not None
        rows.resizeSections(QHeaderView.ResizeMode.ResizeToContents)
        table.setFixedHeight(header.sizeHint().height() + rows.length() + 2 * table.frameWidth())  # every row shows

    def _draw_trade(self) -> None:
        result = self._result
        self.trade_value.setText(NO_VALUE if result is None or result.trade_no is None else result.trade_no)
        if result is None:
            refund, good = NO_VALUE, True
        else:
            refund, good = refund_text(result)
        show_marked(self.refund_value, refund, failed=not good)
        total = NO_VALUE if result is None else _("{seconds:.2f} s", seconds=result.total_seconds)
        self.total_value.setText(total)

    def _draw_outcome(self) -> None:
        if self._error is not None:
            text, ok = "\n".join(part for part in error_texts(self._error) if part), False
        elif self._result is not None:
            text, ok = outcome_text(self._result), self._result.passed
        elif self.running:
            text, ok = _("Checking…"), True
        else:
            self.outcome_label.hide()
            return
        show_marked(self.outcome_label, text, failed=not ok)

    def retranslate(self) -> None:
        self.setWindowTitle(_("Face-pay check — {serial}", serial=self.serial))
        for stream, label in STREAMS:
            self.view_captions[stream].setText(_(label))
        self.stages_box.setTitle(_("Stages"))
        self.trade_box.setTitle(_("Test payment"))
        self.trade_caption.setText(_("Trade number:"))
        self.refund_caption.setText(_("Refund:"))
        self.total_caption.setText(_("Total time:"))
        self.presentation_caption.setText(_("Present:"))
        for index, presentation in enumerate(PRESENTATIONS):
            self.presentation_combo.setItemText(index, _(PRESENTATION_LABELS[presentation]))
        self.presentation_combo.setToolTip(
            _("A live face must pass; an attack passes only when the station and the unit both refuse it")
        )
        self.secret_caption.setText(self.secret_edit.caption())
        self.secret_edit.retranslate()
        self.ready_button.setText(_("It is in front of the camera"))
        self.decline_button.setText(_("Cancel the check"))
        self.start_button.setText(_("Start the check"))
        self.start_button.setToolTip(
            _("Pay {amount} yuan to the test merchant with the face, query the trade, refund it", amount=TEST_AMOUNT)
        )
        self._draw_analysis()
        self._draw_stages()
        self._draw_trade()
        self._draw_outcome()
        self._sync_buttons()
