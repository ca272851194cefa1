"""The installer's merchant form: bind one unit to a merchant's store, activate it and enroll it in a subsidy.

The merchant id and store id are checked as they are typed (:data:`enrollment.config.ID`); a merchant's QR text
(scanned or pasted) fills both (:func:`enrollment.merchant_qr.parse_merchant_qr`), and a text that is not one
leaves them as they were.  Start runs :func:`provisioning.registration.bring_live` as one job on the console's
workers (:mod:`console.merchant_binding`), through the outbox :func:`console.platform_option.open_outbox` opens there;
the form ticks each step (bind, activate, subsidy-enroll) as its event arrives, with a failed step's message and
remedy, while the unit's card follows the same events.  The key store's passphrase or PIN signs the requests: it
reaches only the store's constructor, on the worker, and the form forgets it when it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from enrollment.config import ID, Merchant
from enrollment.merchant_qr import parse_merchant_qr
from i18n import N_, _
from provisioning.outbox import PendingCallDiffers
from provisioning.registration import STEP_ACTIVATE, STEP_BIND, STEP_SUBSIDY
from terminal.errors import NaiadError
from terminal.events import PhaseStarted, StepFinished

from .inject_dialog import PKCS11
from .platform_access import PlatformAccess, SecretField, fit_height
from .unit_card import error_texts, repolish
from .unit_picker import StartFoot

if TYPE_CHECKING:
    from provisioning.registration import EnrollmentStepResult

LOG = logging.getLogger(__name__)

CURRENT_PROGRAM = N_("current (the platform's default)")
"""The program choice offered first: send no program, and the platform enrols the unit in its current one.  The
programs are the platform's data; the console keeps no list of them: another is typed by its id."""
STEPS: tuple[tuple[str, str], ...] = (
    (STEP_BIND, N_("Bind to the merchant's store")),
    (STEP_ACTIVATE, N_("Activate")),
    (STEP_SUBSIDY, N_("Enroll in the subsidy program")),
)
LIVE = N_("Live at merchant {merchant}, store {store}")


# -- the form ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindRequest:
    """One press of Start: bring ``serial`` live at ``merchant`` under ``program``."""

    serial: str
    merchant: Merchant
    program: str | None
    """None: the platform's current program."""
    secret: str = field(repr=False)


@dataclass(frozen=True)
class WaitingCallRequest:
    """A press of "Send the waiting call" (``drop`` False) or "Drop the waiting call" (confirmed): the pending call
    a run stopped at (:class:`~provisioning.outbox.PendingCallDiffers`)."""

    serial: str
    method: str
    request_no: str
    drop: bool
    secret: str = field(repr=False)


def id_problem(text: str, empty: str) -> str | None:
    """The msgid of what is wrong with a merchant or store id as typed (``empty`` when nothing is), or None."""
    if not text:
        return empty
    if not ID.fullmatch(text):
        return N_("Letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64")
    return None


class FieldMessage(QLabel):
    """A wrapped message under a field of a grid, which never asks a label its height for the width it gets: the
    label asks for it itself, and the window grows to show every line."""

    def fit(self) -> None:
        fit_height(self)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        self.fit()


class MerchantForm(QDialog):
    """One unit's merchant, store and subsidy program; Start asks for a run (``start_requested(request)``)."""

    start_requested = pyqtSignal(object)
    waiting_requested = pyqtSignal(object)

    def __init__(self, serial: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("merchantForm")
        self.serial = serial
        self.running = False
        self._note: tuple[str, dict[str, object]] | None = None  # what the last waiting-call action did
        self._qr_error: BaseException | None = None
        self._steps: dict[str, tuple[str, BaseException | None, str | None]] = {}  # state, error, detail
        self._run_error: BaseException | None = None

        self.qr_edit = QLineEdit()
        self.qr_edit.setObjectName("merchantQr")
        self.qr_edit.textChanged.connect(self._qr_changed)
        self.qr_message = self._inline_label()
        self.merchant_edit, self.store_edit = QLineEdit(), QLineEdit()
        self.merchant_message, self.store_message = self._inline_label(), self._inline_label()
        for edit in (self.merchant_edit, self.store_edit):
            edit.setMaxLength(64)
            edit.textChanged.connect(lambda _text: self._refresh())
        self.program_combo = QComboBox()  # the current program, or another typed by its id
        self.program_combo.setEditable(True)
        self.program_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.program_combo.addItem(_(CURRENT_PROGRAM))
        self.program_combo.editTextChanged.connect(lambda _text: self._refresh())
        self.program_message = self._inline_label()
        self.secret_edit = SecretField()
        self.secret_edit.textChanged.connect(lambda _text: self._refresh())
        self.qr_caption, self.merchant_caption, self.store_caption = QLabel(), QLabel(), QLabel()
        self.program_caption, self.secret_caption = QLabel(), QLabel()
        self.merchant_box = QGroupBox()
        fields = QGridLayout(self.merchant_box)  # each field's message on the row under it, as wide as the field
        fields.setColumnStretch(1, 1)
        rows: tuple[tuple[QLabel, QWidget, QLabel | None], ...] = (
            (self.qr_caption, self.qr_edit, self.qr_message),
            (self.merchant_caption, self.merchant_edit, self.merchant_message),
            (self.store_caption, self.store_edit, self.store_message),
            (self.program_caption, self.program_combo, self.program_message),
            (self.secret_caption, self.secret_edit, None),
        )
        for row, (caption, widget, message) in enumerate(rows):
            fields.addWidget(caption, 2 * row, 0)
            fields.addWidget(widget, 2 * row, 1)
            if message is not None:
                fields.addWidget(message, 2 * row + 1, 1)

        self.steps_box = QGroupBox()
        grid = QGridLayout(self.steps_box)
        grid.setColumnStretch(1, 1)
        self.step_marks: dict[str, QLabel] = {}
        self.step_names: dict[str, QLabel] = {}
        self.step_details: dict[str, QLabel] = {}
        for row, (step, _name) in enumerate(STEPS):
            mark, name, detail = QLabel(), QLabel(), self._inline_label()
            mark.setObjectName("stepMark")
            mark.setMinimumWidth(24)
            detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(mark, 2 * row, 0)
            grid.addWidget(name, 2 * row, 1)
            grid.addWidget(detail, 2 * row + 1, 1)
            self.step_marks[step], self.step_names[step], self.step_details[step] = mark, name, detail

        self.send_waiting_button, self.drop_waiting_button = QPushButton(), QPushButton()  # for PendingCallDiffers
        self.send_waiting_button.clicked.connect(lambda _checked=False: self._waiting(drop=False))
        self.drop_waiting_button.clicked.connect(lambda _checked=False: self._waiting(drop=True))
        waiting = QHBoxLayout()
        waiting.addStretch(1)
        waiting.addWidget(self.send_waiting_button)
        waiting.addWidget(self.drop_waiting_button)
        self.foot = StartFoot()
        self.start_button, self.cancel_button = self.foot.start_button, self.foot.cancel_button
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.merchant_box)
        layout.addWidget(self.steps_box)
        layout.addStretch(1)
        layout.addLayout(waiting)
        layout.addWidget(self.foot)
        self.retranslate()
        self.setMinimumWidth(560)

    @staticmethod
    def _inline_label() -> QLabel:
        label = FieldMessage()
        label.setObjectName("cardStep")  # the style sheet's red for failed="true"
        label.setProperty("failed", True)
        label.setWordWrap(True)
        label.hide()
        return label

    # -- what was typed --------------------------------------------------------------------------------------

    def _qr_changed(self, text: str) -> None:
        """A merchant QR text fills both ids; any other text is refused, the ids left as they are."""
        self._qr_error = None
        if text.strip():
            try:
                merchant = parse_merchant_qr(text.strip())
            except NaiadError as exc:
                self._qr_error = exc
            else:
                self.merchant_edit.setText(merchant.merchant_id)
                self.store_edit.setText(merchant.store_id)
        self._refresh()

    def program(self) -> str | None:
        """The program typed, None for the platform's current one (the first choice, or nothing typed)."""
        text = self.program_combo.currentText().strip()
        return None if text in ("", self.program_combo.itemText(0)) else text

    def problems(self) -> dict[str, str]:
        """What is wrong with the ids as typed: field name -> msgid (empty: all valid)."""
        program = self.program()
        found = {
            "merchant": id_problem(self.merchant_edit.text(), N_("Enter the merchant id.")),
            "store": id_problem(self.store_edit.text(), N_("Enter the store id.")),
            "program": None if program is None else id_problem(program, ""),
        }
        return {name: msgid for name, msgid in found.items() if msgid is not None}

    def blocker(self) -> str | None:
        """The msgid of why Start is off; None when it is on."""
        if self.running:
            return N_("Working with the platform…")
        problems = self.problems()
        if problems:
            return next(iter(problems.values()))
        if self.secret_edit.missing():
            return (
                N_("Enter the key store's PIN.")
                if PlatformAccess.store_kind() == PKCS11
                else N_("Enter the passphrase.")
            )
        return None

    def request(self) -> BindRequest:
        """What the installer chose (call only when :meth:`blocker` is None)."""
        merchant = Merchant(self.merchant_edit.text(), self.store_edit.text())
        return BindRequest(self.serial, merchant, self.program(), self.secret_edit.text())

    def start(self) -> None:
        """Ask for the run (the form stays open to show its steps); else change nothing."""
        if self.blocker() is not None:
            self._refresh()
            return
        self.start_requested.emit(self.request())

    # -- the call a run stopped at ----------------------------------------------------------------------------

    def waiting_call(self) -> PendingCallDiffers | None:
        """The waiting call with other content the last run stopped at, None if it did not."""
        error = self._run_error
        return error if isinstance(error, PendingCallDiffers) and not self.running else None

    def _waiting(self, *, drop: bool) -> None:
        waiting = self.waiting_call()
        if waiting is None or self.secret_edit.missing():
            return
        request_no = str(waiting.params["request_no"])
        if drop and not self.confirm_drop(request_no):
            return
        method = str(waiting.params["method"])
        self.waiting_requested.emit(WaitingCallRequest(self.serial, method, request_no, drop, self.secret_edit.text()))

    def confirm_drop(self, request_no: str) -> bool:
        """Ask before a call that may have been done is dropped for good."""
        answer = QMessageBox.question(
            self,
            _("Drop the waiting call"),
            _(
                "Drop call {request_no}? Do so only once you have checked on the platform that it is not wanted: "
                "it is never sent again.",
                request_no=request_no,
            ),
        )
        return answer == QMessageBox.StandardButton.Yes

    def begin_waiting(self) -> None:
        self.running, self._note = True, None
        self._refresh()

    def end_waiting(self, note: tuple[str, dict[str, object]] | None, error: BaseException | None) -> None:
        """The waiting call was sent or dropped (``note`` says what became of it; the steps start afresh), or
        ``error`` says why not."""
        self.running, self._note = False, note
        if error is None:
            self._run_error, self._steps = None, {}
        else:
            self._run_error = error
        self.retranslate()

    # -- a run -----------------------------------------------------------------------------------------------

    def begin(self) -> None:
        """A run started: every step waits again (a step done before is skipped, and ticked, as it comes)."""
        self.running = True
        self._run_error, self._note = None, None
        self._steps = {step: ("waiting", None, None) for step, _name in STEPS}
        self.retranslate()

    def phase_started(self, event: PhaseStarted) -> None:
        if event.unit == self.serial and event.step in self._steps:
            self._steps[event.step] = ("running", None, None)
            self._draw_steps()

    def step_finished(self, event: StepFinished) -> None:
        if event.unit == self.serial:
            self.show_result(event.result)

    def show_result(self, result: Any) -> None:
        step = getattr(result, "step", None)
        if step in self._steps:
            ok = bool(getattr(result, "ok", False))
            detail = getattr(result, "detail", None) or getattr(result, "status", None)
            self._steps[step] = ("done" if ok else "failed", getattr(result, "error", None), detail)
            self._draw_steps()

    def end(self, results: Sequence[EnrollmentStepResult] | None, error: BaseException | None) -> None:
        """The run ended with its steps' results, or the error that stopped it (no key store, no platform)."""
        self.running = False
        for result in results or ():
            self.show_result(result)
        self._run_error = error or next((e for state, e, _d in self._steps.values() if e is not None), None)
        failed = error is not None or any(state == "failed" for state, _e, _d in self._steps.values())
        for step, (state, _error, _detail) in self._steps.items():
            if state in ("waiting", "running"):
                self._steps[step] = ("skipped" if failed else state, None, None)
        self.retranslate()

    def succeeded(self) -> bool:
        return bool(self._steps) and all(state == "done" for state, _e, _d in self._steps.values())

    def done(self, result: int) -> None:
        """Closing forgets the passphrase or PIN typed."""
        self.secret_edit.forget()
        super().done(result)

    # -- drawing ---------------------------------------------------------------------------------------------

    def _show(self, label: QLabel, text: str | None) -> None:
        """Show ``text`` under its field (none: hide it), the form growing to show every wrapped line."""
        label.setText(text or "")
        label.setVisible(bool(text))
        if isinstance(label, FieldMessage):
            label.fit()

    def _refresh(self) -> None:
        problems = self.problems()
        typed = {
            "merchant": self.merchant_edit.text(),
            "store": self.store_edit.text(),
            "program": self.program() or "",
        }
        fields = (("merchant", self.merchant_message), ("store", self.store_message), ("program", self.program_message))
        for name, label in fields:
            msgid = problems.get(name)
            self._show(label, _(msgid) if msgid and typed[name] else None)  # an empty field is the foot's hint
        qr = None
        if self._qr_error is not None:
            qr = "\n".join(part for part in error_texts(self._qr_error) if part)
        self._show(self.qr_message, qr)
        editable = not self.running
        for widget in (self.qr_edit, self.merchant_edit, self.store_edit, self.program_combo, self.secret_edit):
            widget.setEnabled(editable)
        blocker = self.blocker()
        self.start_button.setEnabled(blocker is None)
        if blocker is not None:
            self.foot.show_hint(_(blocker))
        elif self._run_error is not None:
            self.foot.show_hint(_("The run stopped:"), self._run_error)
        elif self._note is not None:
            self.foot.show_hint(_(self._note[0], **self._note[1]))
        elif self.succeeded():
            merchant = self.request().merchant
            self.foot.show_hint(_(LIVE, merchant=merchant.merchant_id, store=merchant.store_id))
        else:
            self.foot.show_hint(_("Ready to bind, activate and enroll unit {serial}.", serial=self.serial))
        waiting = self.waiting_call() is not None
        for button in (self.send_waiting_button, self.drop_waiting_button):
            button.setVisible(waiting)
            button.setEnabled(waiting and not self.secret_edit.missing())

    def _draw_steps(self) -> None:
        marks = {"waiting": "○", "running": "…", "done": "✓", "failed": "✗", "skipped": "—"}
        for step, name in STEPS:
            state, error, detail = self._steps.get(step, ("waiting", None, None))
            mark = self.step_marks[step]
            mark.setText(marks[state])
            mark.setProperty("state", state)
            repolish(mark)
            self.step_names[step].setText(_(name))
            text = None
            if error is not None:
                text = "\n".join(part for part in error_texts(error) if part)
            elif state == "skipped":
                text = _("Not run: an earlier step did not succeed.")
            self._show(self.step_details[step], text)
            self.step_details[step].setProperty("failed", error is not None)
            repolish(self.step_details[step])
            tip = detail if isinstance(detail, str) else ""
            self.step_names[step].setToolTip(tip)

    def retranslate(self) -> None:
        self.setWindowTitle(_("Merchant — unit {serial}", serial=self.serial))
        self.merchant_box.setTitle(_("Merchant and store"))
        self.qr_caption.setText(_("Merchant QR code:"))
        self.qr_edit.setPlaceholderText(_("Scan or paste the merchant's QR code text"))
        self.merchant_caption.setText(_("Merchant id:"))
        self.store_caption.setText(_("Store id:"))
        self.program_caption.setText(_("Subsidy program:"))
        typed = self.program()  # setItemText on the current item rewrites the edit: a typed program is put back
        self.program_combo.setItemText(0, _(CURRENT_PROGRAM))
        self.program_combo.setEditText(self.program_combo.itemText(0) if typed is None else typed)
        self.program_combo.setToolTip(
            _("The platform enrolls the unit in its current program; to choose another, type its id.")
        )
        self.secret_caption.setText(self.secret_edit.caption())
        self.secret_edit.retranslate()
        self.steps_box.setTitle(_("Steps"))
        self.start_button.setText(_("Bind and activate") if not self._steps else _("Run again"))
        self.cancel_button.setText(_("Close"))
        self.send_waiting_button.setText(_("Send the waiting call"))
        self.send_waiting_button.setToolTip(_("Send the call the run stopped at, as it was written"))
        self.drop_waiting_button.setText(_("Drop the waiting call…"))
        self.drop_waiting_button.setToolTip(_("Drop it once you have checked on the platform that it is not wanted"))
        self._draw_steps()
        self._refresh()
