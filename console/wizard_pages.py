"""The installer wizard's pages (:mod:`console.wizard`): what each shows and what the installer types.

The pages only draw and collect; the wizard runs each page's part of ``installer-onsite`` and tells the page how
it went.  Every text is a msgid kept on the widget and translated in :meth:`WizardPage.retranslate`, so a language
switch re-draws an open page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from camera.faces import Decision
from camera.observations import FACE, FaceObservation
from enrollment.config import Merchant
from enrollment.merchant_qr import parse_merchant_qr
from i18n import N_, _
from provisioning.steps import StepOutcome, step_class
from terminal.errors import NaiadError
from terminal.events import Observed

from .face_view import ATTACK_COLOUR, LIVE_COLOUR, OTHER_COLOUR, FaceFrameView
from .facepay_page import STREAMS, ColouredFace, decision_text
from .merchant_form import id_problem
from .unit_card import NO_VALUE, error_texts, repolish

LOG = logging.getLogger(__name__)

RECIPE = "installer-onsite"
CONNECT, UPDATE, CAMERA, MERCHANT, FACEPAY, SUBSIDY, DONE = (
    "connect",
    "update",
    "camera",
    "merchant",
    "face-pay",
    "subsidy",
    "done",
)
PAGES: tuple[str, ...] = (CONNECT, UPDATE, CAMERA, MERCHANT, FACEPAY, SUBSIDY, DONE)


@dataclass(frozen=True)
class Part:
    """A page's part of ``installer-onsite``: run as its own recipe ``installer-onsite/<name>``
    (:func:`provisioning.recipes.load_recipe_part`), so the ledger counts each part done on its own."""

    name: str
    steps: tuple[str, ...]

    @property
    def recipe_name(self) -> str:
        return f"{RECIPE}/{self.name}"


PARTS: dict[str, Part] = {
    UPDATE: Part("update", ("firmware-update",)),
    CAMERA: Part("camera", ("field-check",)),
    FACEPAY: Part("face-pay", ("face-pay-check", "bind", "activate")),
    SUBSIDY: Part("subsidy", ("subsidy-enroll",)),
    DONE: Part("report", ("report",)),
}
"""Each page that runs steps, and its steps (all of ``installer-onsite``'s, in its order)."""

TITLES: dict[str, str] = {
    CONNECT: N_("Connect the unit"),
    UPDATE: N_("Update the firmware"),
    CAMERA: N_("Check the camera"),
    MERCHANT: N_("Merchant and store"),
    FACEPAY: N_("Check face payment"),
    SUBSIDY: N_("Subsidy enrollment"),
    DONE: N_("Done"),
}
INTROS: dict[str, str] = {
    CONNECT: N_(
        "Plug the unit into this computer with its USB cable and wait until it shows below (about half a minute "
        "after it starts). With several units plugged in, choose the one to install."
    ),
    UPDATE: N_(
        "The unit gets the latest firmware. Keep it plugged in: it restarts by itself once or twice. If the cable "
        "comes out, plug it back in and the update goes on."
    ),
    CAMERA: N_(
        "Hold the check board up in front of the unit's camera, about 45 cm away and facing it, and keep it still "
        "until the check ends."
    ),
    MERCHANT: N_(
        "Scan the merchant's QR code into the first box, or type the merchant id and the store id. This comes "
        "before the face-pay check because its test payment of 0.01 yuan goes to this store (and is refunded at "
        "once), and the unit is then bound to this store."
    ),
    FACEPAY: N_(
        "Stand in front of the unit so it sees your face, then press “Start the check”. The unit pays 0.01 yuan to "
        "the store with your face and refunds it, then it is bound to the store and activated."
    ),
    SUBSIDY: N_(
        "The unit is enrolled in the platform's current subsidy program. Type a program id only when the merchant "
        "was told to use another one."
    ),
    DONE: N_("The unit is installed. Open its report to show the merchant, or save a copy to hand over."),
}
START_LABELS: dict[str, str] = {
    UPDATE: N_("Start the update"),
    CAMERA: N_("Check the camera"),
    FACEPAY: N_("Start the check"),
    SUBSIDY: N_("Enroll the unit"),
    DONE: N_("Write the report"),
}
TRY_AGAIN = N_("Try again")

IDLE, RUNNING, SUCCEEDED, FAILED, SKIPPED = "idle", "running", "succeeded", "failed", "skipped"
MARKS = {IDLE: "○", RUNNING: "…", SUCCEEDED: "✓", FAILED: "✗", SKIPPED: "–"}
STYLE = (
    'QLabel#wizardStatus[failed="true"], QLabel#wizardField[failed="true"] { color: #b71c1c; }'
    "QLabel#wizardBanner { background: #fff3e0; color: #e65100; border: 2px solid #ef6c00; border-radius: 6px;"
    " padding: 10px; font-size: 15px; font-weight: bold; }"
    "QLabel#wizardHeading { font-size: 18px; font-weight: bold; }"
    "QLabel#wizardIntro { font-size: 14px; }"
    'QLabel#wizardTrail[current="true"] { font-weight: bold; color: #1565c0; }'
)


def show_marked(label: QLabel, text: str, *, failed: bool) -> None:
    """``text`` on ``label``, red when ``failed``; hidden when empty."""
    label.setText(text)
    label.setProperty("failed", failed)
    repolish(label)
    label.setVisible(bool(text))


def wrapped(name: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)  # errors and step details carry unit and platform text
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


RETRY_HINT = N_("Then press “Try again”: it goes on from where it stopped.")


def error_lines(error: BaseException, hint: str = RETRY_HINT) -> str:
    """An error's message, its remedy, and what to do on this page (``hint``, a msgid), in plain words."""
    message, remedy = error_texts(error)
    lines = [message, remedy or "", _(hint)]
    return "\n".join(line for line in lines if line)


# -- the page every page is ---------------------------------------------------------------------------------------


class WizardPage(QWidget):
    """A page: its heading, what to do in plain words, its own widgets (``body``) and its status line."""

    retry_hint = RETRY_HINT
    """What to do after an error on this page (a msgid)."""

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setObjectName(f"wizardPage-{key}")
        self.heading = wrapped("wizardHeading")
        self.intro = wrapped("wizardIntro")
        self.status_label = wrapped("wizardStatus")
        self.status_label.hide()
        self._status: tuple[str, dict[str, object], bool] | None = None  # msgid, params, failed
        self._error: BaseException | None = None
        self._hint: str | None = None  # what to do after the error, when not the page's retry_hint
        self.body = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.intro)
        layout.addLayout(self.body, 1)
        layout.addWidget(self.status_label)

    def ready(self) -> bool:
        """Whether Next may be pressed (the page's work succeeded, or it has none left)."""
        return True

    def set_status(self, msgid: str | None, *, failed: bool = False, **params: object) -> None:
        self._error = None
        self._status = None if msgid is None else (msgid, params, failed)
        self._draw_status()

    def set_error(self, error: BaseException, hint: str | None = None) -> None:
        """``error`` with its remedy, then ``hint`` (a msgid; None: the page's :attr:`retry_hint`)."""
        self._status = None
        self._error, self._hint = error, hint
        self._draw_status()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def _draw_status(self) -> None:
        if self._error is not None:
            show_marked(self.status_label, error_lines(self._error, self._hint or self.retry_hint), failed=True)
        elif self._status is not None:
            msgid, params, failed = self._status
            show_marked(self.status_label, _(msgid, **params), failed=failed)
        else:
            show_marked(self.status_label, "", failed=False)

    def retranslate(self) -> None:
        self.heading.setText(_(TITLES[self.key]))
        self.intro.setText(_(INTROS[self.key]))
        self._draw_status()


# -- connect ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitChoice:
    """A unit on the bench as the connect page lists it; ``waiting`` the msgid of why it cannot be chosen yet."""

    serial: str
    model: str
    path: str
    waiting: str | None = None


class ConnectPage(WizardPage):
    """The units on the bench; the one to install is chosen (by itself when there is one)."""

    chosen_changed = pyqtSignal()
    retry_hint = N_("Then press Next again.")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(CONNECT, parent)
        self.units_list = QListWidget()
        self.units_list.setObjectName("wizardUnits")
        self.units_list.itemSelectionChanged.connect(self.chosen_changed)
        self.body.addWidget(self.units_list, 1)
        self._units: list[UnitChoice] = []
        self.retranslate()

    def set_units(self, units: Sequence[UnitChoice]) -> None:
        """The bench changed: list its units, keeping the choice (the only usable unit is chosen by itself)."""
        kept = self.chosen()
        self._units = list(units)
        usable = [u.serial for u in self._units if u.waiting is None]
        if kept not in usable:
            kept = usable[0] if len(usable) == 1 else None
        blocker = self.units_list.blockSignals(True)
        self.units_list.clear()
        for unit in self._units:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, unit.serial)
            if unit.waiting is not None:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable & ~Qt.ItemFlag.ItemIsEnabled)
            self.units_list.addItem(item)
            item.setSelected(unit.serial == kept)
        self.units_list.blockSignals(blocker)
        self._draw_units()
        self.chosen_changed.emit()

    def chosen(self) -> str | None:
        for item in self.units_list.selectedItems():
            serial = item.data(Qt.ItemDataRole.UserRole)
            if isinstance(serial, str):
                return serial
        return None

    def ready(self) -> bool:
        return self.chosen() is not None

    def _draw_units(self) -> None:
        for row, unit in enumerate(self._units):
            item = self.units_list.item(row)
            if item is None:
                continue
            text = _("{model} · serial {serial} · port {path}", model=unit.model, serial=unit.serial, path=unit.path)
            if unit.waiting is not None:
                text += " — " + _(unit.waiting)
            item.setText(text)
        if not self._units:
            self.set_status(N_("No unit is plugged in yet."))
        elif self.chosen() is None and len([u for u in self._units if u.waiting is None]) > 1:
            self.set_status(N_("Several units are plugged in: click the one to install."))
        else:
            self.set_status(None)

    def retranslate(self) -> None:
        super().retranslate()
        self._draw_units()


# -- pages that run steps ------------------------------------------------------------------------------------------


class StepPage(WizardPage):
    """A page that runs its part: its steps with a mark each, what runs now, a progress bar, and Start."""

    start_requested = pyqtSignal()
    fills = False
    """Whether the page's own widgets take the room left (the face views); else its steps follow them closely."""

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(key, parent)
        self.part = PARTS[key]
        self.state = IDLE
        self._steps: dict[str, tuple[str, str]] = {name: (IDLE, "") for name in self.part.steps}
        self.steps_grid = QGridLayout()
        self.steps_grid.setColumnStretch(2, 1)
        self.step_marks: dict[str, QLabel] = {}
        self.step_names: dict[str, QLabel] = {}
        self.step_details: dict[str, QLabel] = {}
        for row, name in enumerate(self.part.steps):
            mark, title, detail = QLabel(), QLabel(), wrapped("wizardStepDetail")
            mark.setMinimumWidth(20)
            self.steps_grid.addWidget(mark, row, 0, Qt.AlignmentFlag.AlignTop)
            self.steps_grid.addWidget(title, row, 1, Qt.AlignmentFlag.AlignTop)
            self.steps_grid.addWidget(detail, row, 2, Qt.AlignmentFlag.AlignTop)
            self.step_marks[name], self.step_names[name], self.step_details[name] = mark, title, detail
        self.activity_label = wrapped("wizardActivity")
        self.progress = QProgressBar()
        self.progress.hide()
        self.start_button = QPushButton()
        self.start_button.setObjectName("wizardStart")
        self.start_button.clicked.connect(lambda _checked=False: self.start_requested.emit())
        self.extra = QVBoxLayout()  # a subclass's widgets, above the steps
        controls = QHBoxLayout()
        controls.addStretch(1)
        controls.addWidget(self.start_button)
        self.body.addLayout(self.extra, 1 if self.fills else 0)
        self.body.addLayout(self.steps_grid)
        self.body.addWidget(self.activity_label)
        self.body.addWidget(self.progress)
        self.body.addLayout(controls)
        if not self.fills:
            self.body.addStretch(1)
        self._activity = ""

    def ready(self) -> bool:
        return self.state in (SUCCEEDED, SKIPPED)

    def begin(self) -> None:
        """The part started: every step not done yet waits."""
        self.state = RUNNING
        self._steps = {name: (s if s == SUCCEEDED else IDLE, d) for name, (s, d) in self._steps.items()}
        self._activity = ""
        self.progress.setRange(0, 0)
        self.progress.show()
        self.set_status(N_("Working… keep the unit plugged in."))
        self.retranslate()

    def phase(self, step: str, label: str) -> None:
        """A step of the part started (``label``: its title, already in the user's language)."""
        if step in self._steps:
            self._steps[step] = (RUNNING, self._steps[step][1])
            self._activity = label
            self.progress.setRange(0, 0)
            self._draw_steps()

    def show_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(min(1000, done * 1000 // total))

    def show_message(self, text: str) -> None:
        self._activity = text
        self.activity_label.setText(text)

    def end(self, outcomes: Sequence[StepOutcome], error: BaseException | None) -> None:
        """The part ended: each step's outcome (those it reached), and the error that stopped it (None: done)."""
        for outcome in outcomes:
            if outcome.step in self._steps:
                self._steps[outcome.step] = (SUCCEEDED if outcome.ok else FAILED, outcome.detail)
        self.progress.hide()
        self._activity = ""
        if error is None:
            self.state = SUCCEEDED
            self._steps = {name: (SUCCEEDED, detail) for name, (_state, detail) in self._steps.items()}
            self.set_status(N_("Done. Press Next."))
        else:
            self.state = FAILED
            self._steps = {n: (IDLE if s == RUNNING else s, d) for n, (s, d) in self._steps.items()}
            self.set_error(error)
        self.retranslate()

    def mark_done_before(self) -> None:
        """The ledger says this part was done for the unit (the wizard was opened again)."""
        self.state = SUCCEEDED
        self._steps = {name: (SUCCEEDED, detail) for name, (_state, detail) in self._steps.items()}
        self.set_status(N_("Already done for this unit. Press Next."))
        self.retranslate()

    def reset(self) -> None:
        self.state = IDLE
        self._steps = {name: (IDLE, "") for name in self.part.steps}
        self._activity = ""
        self.progress.hide()
        self.set_status(None)
        self.retranslate()

    def start_label(self) -> str:
        return TRY_AGAIN if self.state == FAILED else START_LABELS[self.key]

    def _draw_steps(self) -> None:
        for name, (state, detail) in self._steps.items():
            self.step_marks[name].setText(MARKS[state])
            self.step_names[name].setText(_(step_class(name).label))
            self.step_details[name].setText(detail)
        self.activity_label.setText(
            _("Now: {activity}", activity=self._activity) if self._activity and self.state == RUNNING else ""
        )
        self.activity_label.setVisible(self.state == RUNNING and bool(self._activity))

    def retranslate(self) -> None:
        super().retranslate()
        self.start_button.setText(_(self.start_label()))
        self._draw_steps()


class UpdatePage(StepPage):
    """The firmware update; without a bundle in the site settings it says so, and the update is skipped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(UPDATE, parent)
        self.bundle_label = wrapped("wizardBundle")
        self.extra.addWidget(self.bundle_label)
        self._bundle: str | None = None
        self.retranslate()

    def set_bundle(self, bundle: str | None) -> None:
        """The bundle the site settings name (None: none; the update is then skipped)."""
        self._bundle = bundle
        if bundle is None and self.state in (IDLE, SKIPPED):
            self.state = SKIPPED
        elif bundle is not None and self.state == SKIPPED:
            self.state = IDLE
        self.retranslate()

    def retranslate(self) -> None:
        super().retranslate()
        if self._bundle is None:
            self.bundle_label.setText(
                _(
                    "No firmware bundle is set for installs, so the firmware is not updated: the unit keeps the "
                    "firmware it has, and you can go on. To update units, an administrator sets the bundle in "
                    "Settings (installer-onsite, firmware-update.bundle), then open the wizard again."
                )
            )
        else:
            self.bundle_label.setText(_("Firmware bundle: {name}", name=Path(self._bundle).name))
        self.start_button.setVisible(self._bundle is not None)


class CameraPage(StepPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(CAMERA, parent)
        self.retranslate()


class MerchantPage(WizardPage):
    """The merchant and store, typed or from the merchant's QR text; Next only when both are valid ids and the QR
    text (when there is one) is a merchant's."""

    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(MERCHANT, parent)
        self.qr_edit = QLineEdit()
        self.qr_edit.setObjectName("wizardMerchantQr")
        self.qr_edit.textChanged.connect(self._qr_changed)
        self.merchant_edit, self.store_edit = QLineEdit(), QLineEdit()
        self.merchant_edit.setObjectName("wizardMerchantId")
        self.store_edit.setObjectName("wizardStoreId")
        for edit in (self.merchant_edit, self.store_edit):
            edit.setMaxLength(64)
            edit.textChanged.connect(lambda _text: self._refresh())
            edit.textEdited.connect(lambda _text: self._typed())
        self.qr_caption, self.merchant_caption, self.store_caption = QLabel(), QLabel(), QLabel()
        self.qr_message, self.merchant_message, self.store_message = (wrapped("wizardField") for _i in range(3))
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        rows = (
            (self.qr_caption, self.qr_edit, self.qr_message),
            (self.merchant_caption, self.merchant_edit, self.merchant_message),
            (self.store_caption, self.store_edit, self.store_message),
        )
        for row, (caption, edit, message) in enumerate(rows):
            grid.addWidget(caption, 2 * row, 0)
            grid.addWidget(edit, 2 * row + 0, 1)
            grid.addWidget(message, 2 * row + 1, 1)
        self.body.addLayout(grid)
        self.body.addStretch(1)
        self._qr_error: NaiadError | None = None
        self.retranslate()

    def _qr_changed(self, text: str) -> None:
        """A merchant QR text fills both ids; any other text is refused (shown), the ids left as they were."""
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

    def _typed(self) -> None:
        """An id typed by hand: the ids are no longer the QR text's, so a refused scan no longer holds Next."""
        if self.qr_edit.text():
            blocked = self.qr_edit.blockSignals(True)
            self.qr_edit.clear()
            self.qr_edit.blockSignals(blocked)
            self._qr_error = None
            self._refresh()

    def set_merchant(self, merchant: Merchant | None) -> None:
        """Fill in the store the unit was bound to before (the wizard opened again)."""
        self.qr_edit.clear()
        self.merchant_edit.setText("" if merchant is None else merchant.merchant_id)
        self.store_edit.setText("" if merchant is None else merchant.store_id)

    def set_locked(self, locked: bool) -> None:
        """The unit is bound to the store shown (its face-pay part is done): the store cannot change here."""
        for edit in (self.qr_edit, self.merchant_edit, self.store_edit):
            edit.setReadOnly(locked)
        self.set_status(N_("The unit is already bound to this store. Press Next.") if locked else None)

    def problems(self) -> dict[str, str]:
        found = {
            "merchant": id_problem(self.merchant_edit.text(), N_("Enter the merchant id.")),
            "store": id_problem(self.store_edit.text(), N_("Enter the store id.")),
        }
        return {name: msgid for name, msgid in found.items() if msgid is not None}

    def merchant(self) -> Merchant | None:
        """The store typed or scanned, None while something is wrong."""
        if self._qr_error is not None or self.problems():
            return None
        return Merchant(self.merchant_edit.text(), self.store_edit.text())

    def ready(self) -> bool:
        return self.merchant() is not None

    def _refresh(self) -> None:
        problems = self.problems()
        typed = {"merchant": self.merchant_edit.text(), "store": self.store_edit.text()}
        for name, label in (("merchant", self.merchant_message), ("store", self.store_message)):
            msgid = problems.get(name)
            show_marked(label, _(msgid) if msgid and typed[name] else "", failed=True)  # empty: no red yet
        if self._qr_error is not None:
            message, remedy = error_texts(self._qr_error)
            show_marked(self.qr_message, "\n".join(p for p in (message, remedy) if p), failed=True)
        else:
            show_marked(self.qr_message, "", failed=False)
        self.changed.emit()

    def retranslate(self) -> None:
        super().retranslate()
        self.qr_caption.setText(_("Merchant QR code:"))
        self.qr_edit.setPlaceholderText(_("Scan or paste the merchant's QR code here"))
        self.merchant_caption.setText(_("Merchant id:"))
        self.store_caption.setText(_("Store id:"))
        self._refresh()


class FacePayWizardPage(StepPage):
    """The face-pay check with the live RGB, IR and depth views and the face box, then bind and activate."""

    fills = True

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(FACEPAY, parent)
        self.serial: str | None = None
        self.store_label = wrapped("wizardStore")
        self.views = {stream: FaceFrameView() for stream, _label in STREAMS}
        self.view_captions = {stream: QLabel() for stream, _label in STREAMS}
        frames = QGridLayout()
        for column, (stream, _label) in enumerate(STREAMS):
            self.view_captions[stream].setAlignment(Qt.AlignmentFlag.AlignCenter)
            frames.addWidget(self.view_captions[stream], 0, column)
            frames.addWidget(self.views[stream], 1, column)
            frames.setColumnStretch(column, 1)
        frames.setRowStretch(1, 1)
        self.analysis_label = wrapped("faceAnalysis")
        self.extra.addWidget(self.store_label)
        self.extra.addLayout(frames, 1)
        self.extra.addWidget(self.analysis_label)
        self._merchant: Merchant | None = None
        self._decision = ""
        self.retranslate()

    def set_merchant(self, merchant: Merchant | None) -> None:
        self._merchant = merchant
        self.retranslate()

    def begin(self) -> None:
        self.forget_frames()
        self._decision = ""
        super().begin()

    def forget_frames(self) -> None:
        for view in self.views.values():
            view.clear()

    def observed(self, event: Observed) -> None:
        """A frame set the check judged: the three views with the face box and the station's decision."""
        if event.unit != self.serial or event.kind != FACE:
            return
        data = event.data
        try:
            if isinstance(data, ColouredFace):
                self.show_face(data.observation, data.depth_picture)
            elif isinstance(data, FaceObservation):
                self.show_face(data, None)
        except (ValueError, TypeError, KeyError, IndexError, NaiadError):  # a malformed frame must not end the console
            LOG.exception("%s: cannot show a face observation", self.serial)

    def show_face(self, observation: FaceObservation, depth_picture: npt.NDArray[np.uint8] | None) -> None:
        pictures = {"rgb": observation.rgb, "ir": observation.ir, "depth": depth_picture}
        for stream, picture in pictures.items():
            if picture is not None:
                self.views[stream].show_frame(picture)
        analysis = observation.analysis
        caption = decision_text(analysis, threshold=False)
        colour = {Decision.LIVE: LIVE_COLOUR, Decision.ATTACK: ATTACK_COLOUR}.get(analysis.decision, OTHER_COLOUR)
        self.views["rgb"].show_face(analysis.face_rgb, caption, colour)
        self.views["ir"].show_face(analysis.face_ir, caption, colour)
        self.views["depth"].show_face(analysis.face_ir, caption, colour)  # depth is on the IR grid
        self._decision = analysis.detail or decision_text(analysis)
        self.analysis_label.setText(_("Station: {decision}", decision=self._decision))

    def retranslate(self) -> None:
        super().retranslate()
        for stream, label in STREAMS:
            self.view_captions[stream].setText(_(label))
        merchant = self._merchant
        self.store_label.setText(
            NO_VALUE
            if merchant is None
            else _("Store: merchant {merchant}, store {store}", merchant=merchant.merchant_id, store=merchant.store_id)
        )
        self.analysis_label.setText(_("Station: {decision}", decision=self._decision) if self._decision else "")


class SubsidyPage(StepPage):
    """The subsidy program: the platform's current one unless another id is typed."""

    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(SUBSIDY, parent)
        self.program_caption = QLabel()
        self.program_edit = QLineEdit()
        self.program_edit.setObjectName("wizardProgram")
        self.program_edit.setMaxLength(64)
        self.program_edit.textChanged.connect(lambda _text: self._refresh())
        self.program_message = wrapped("wizardField")
        row = QHBoxLayout()
        row.addWidget(self.program_caption)
        row.addWidget(self.program_edit, 1)
        self.extra.addLayout(row)
        self.extra.addWidget(self.program_message)
        self.retranslate()

    def program(self) -> str | None:
        """The program typed; None for the platform's current one."""
        return self.program_edit.text().strip() or None

    def program_problem(self) -> str | None:
        program = self.program()
        return None if program is None else id_problem(program, "")

    def _refresh(self) -> None:
        problem = self.program_problem()
        show_marked(self.program_message, _(problem) if problem else "", failed=True)
        self.changed.emit()

    def retranslate(self) -> None:
        super().retranslate()
        self.program_caption.setText(_("Subsidy program:"))
        self.program_edit.setPlaceholderText(_("Empty: the platform's current program"))
        self._refresh()


class DonePage(StepPage):
    """The end: the report written for the merchant, to open or to save a copy of."""

    open_requested = pyqtSignal()
    save_requested = pyqtSignal()
    another_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(DONE, parent)
        self.summary_label = wrapped("wizardSummary")
        self.report_label = wrapped("wizardReport")
        self.open_button, self.save_button, self.another_button = QPushButton(), QPushButton(), QPushButton()
        self.open_button.setObjectName("wizardOpenReport")
        self.save_button.setObjectName("wizardSaveReport")
        self.another_button.setObjectName("wizardAnother")
        self.open_button.clicked.connect(lambda _checked=False: self.open_requested.emit())
        self.save_button.clicked.connect(lambda _checked=False: self.save_requested.emit())
        self.another_button.clicked.connect(lambda _checked=False: self.another_requested.emit())
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        buttons.addWidget(self.another_button)
        self.extra.addWidget(self.summary_label)
        self.extra.addWidget(self.report_label)
        self.extra.addLayout(buttons)
        self.report: Path | None = None
        self._summary: tuple[str, dict[str, object]] | None = None
        self._saved: Path | None = None
        self.retranslate()

    def set_report(self, report: Path | None, summary: tuple[str, dict[str, object]] | None) -> None:
        self.report, self._summary, self._saved = report, summary, None
        self.retranslate()

    def saved(self, where: Path) -> None:
        self._saved = where
        if self.error is not None:  # an earlier copy refused: said no more
            self.set_status(None)
        self.retranslate()

    def reset(self) -> None:
        self.report = self._summary = self._saved = None
        super().reset()

    def retranslate(self) -> None:
        super().retranslate()
        self.summary_label.setText("" if self._summary is None else _(self._summary[0], **self._summary[1]))
        text = "" if self.report is None else _("Report: {path}", path=str(self.report))
        if self._saved is not None:
            text += "\n" + _("A copy was saved as {path}", path=str(self._saved))
        self.report_label.setText(text)
        self.open_button.setText(_("Open the report"))
        self.save_button.setText(_("Save a copy…"))
        self.another_button.setText(_("Install another unit"))
        self.start_button.setVisible(self.state == FAILED)  # written once: the ledger counts the report done
        for button in (self.open_button, self.save_button):
            button.setEnabled(self.report is not None)
