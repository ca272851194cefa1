"""The bench: one card per unit, keyed by serial, laid out in physical port order.

A card shows model, serial, port, USB port path, mode and a state colour; a step label and progress
bar stay hidden until a step runs.  A unit that goes away keeps its card (greyed, "Disconnected")
until it is dismissed or comes back, so a bench operator can see which unit dropped off.  A long job
(a firmware flash) holds its card: no other action and no dismissing until the job ends, even while
the unit re-enumerates, and the job's outcome stays on the card afterwards.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _
from terminal.discovery import UsbAccessDenied
from terminal.errors import NaiadError
from terminal.events import Message, PhaseStarted, Progressed

from .style import STATE_LABELS, UnitState
from .workers import EventSignals

if TYPE_CHECKING:
    from terminal.discovery import Device

LOG = logging.getLogger(__name__)

CARD_WIDTH = 280
MODE_LABELS: dict[str, str] = {"run": N_("Run"), "bootloader": N_("Bootloader")}
NO_VALUE = "—"
PLATFORM_ACTIONS: dict[str, tuple[str, str]] = {
    "merchant": (N_("Merchant…"), N_("Bind the unit to a merchant's store, activate it and enroll it in a subsidy")),
    "subsidy": (N_("Subsidy…"), N_("The unit's subsidy: users and earnings per month, cap and months left")),
    "facepay": (
        N_("Face-pay check…"),
        N_("Check face payment end to end: a live face or an attack, liveness, a 0.01 test payment and its refund"),
    ),
}
"""The card's merchant platform actions (each shown only to the roles that may use it): name -> (text, tooltip)."""


def unit_key(device: Device) -> str:
    """A card's key: the serial; a unit whose serial cannot be read (no permission) by its port path."""
    return str(device.serial) if device.serial else f"@{device.path}"


def error_texts(error: BaseException) -> tuple[str, str | None]:
    """An error's message and remedy in the current language (re-read on each language switch)."""
    if isinstance(error, NaiadError):
        return str(error), error.remedy_text
    return _("Unexpected error: {detail}", detail=repr(error)), None


def port_sort_key(path: str, serial: str) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """Order "1-1.9" before "1-1.10": cards follow the hub's port order, not the text order."""
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[-.]", path) if p)
    return parts, serial


class UnitCard(QFrame):
    """One unit on the bench.  Emits requests; never does device I/O itself."""

    info_requested = pyqtSignal(str)
    reboot_requested = pyqtSignal(str, str)
    dismiss_requested = pyqtSignal(str)
    camera_requested = pyqtSignal(str)
    platform_requested = pyqtSignal(str, str)  # (action of PLATFORM_ACTIONS, serial)

    def __init__(self, device: Device, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.serial: str = unit_key(device)
        self.device: Device = device
        self.connected = True
        self._step: tuple[str, dict[str, object] | None] | None = None  # params None: text already translated
        self._result: tuple[str, dict[str, object]] | None = None
        self._error: BaseException | None = None
        self._sticky_error = False
        self._in_job = False
        self._camera_allowed = False
        self._platform_allowed: set[str] = set()
        self.setObjectName("unitCard")
        self.setFixedWidth(CARD_WIDTH)
        self.setFrameShape(QFrame.Shape.StyledPanel)

        self.state_badge = QLabel()
        self.state_badge.setObjectName("stateBadge")
        self.dismiss_button = QToolButton()
        self.dismiss_button.setText("✕")
        self.dismiss_button.clicked.connect(lambda: self.dismiss_requested.emit(self.serial))
        self.title = QLabel()
        self.title.setObjectName("cardTitle")
        self.model_id = QLabel()
        self.model_id.setObjectName("cardModelId")

        self.serial_value, self.port_value, self.path_value, self.mode_value = (QLabel() for _i in range(4))
        for value in (self.serial_value, self.port_value, self.path_value):
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.serial_caption, self.port_caption, self.path_caption, self.mode_caption = (QLabel() for _i in range(4))
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.serial_caption, self.serial_value)
        form.addRow(self.port_caption, self.port_value)
        form.addRow(self.path_caption, self.path_value)
        form.addRow(self.mode_caption, self.mode_value)

        self.step_label = QLabel()
        self.step_label.setObjectName("cardStep")
        self.step_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)

        self.info_button = QPushButton()
        self.info_button.clicked.connect(lambda: self.info_requested.emit(self.serial))
        self.reboot_button = QPushButton()
        self.reboot_button.clicked.connect(self._request_reboot)
        self.camera_button = QPushButton()
        self.camera_button.setObjectName("cameraButton")
        self.camera_button.clicked.connect(lambda: self.camera_requested.emit(self.serial))
        self.platform_grid = platform = QGridLayout()  # two a row: three do not fit a card's width in every language
        self.platform_buttons: dict[str, QPushButton] = {}
        for index, action in enumerate(PLATFORM_ACTIONS):
            button = self.platform_buttons[action] = QPushButton()
            button.setObjectName(f"{action}Button")
            button.clicked.connect(
                lambda _checked=False, action=action: self.platform_requested.emit(action, self.serial)
            )
            platform.addWidget(button, index // 2, index % 2)

        top = QHBoxLayout()
        top.addWidget(self.state_badge)
        top.addStretch(1)
        top.addWidget(self.dismiss_button)
        actions = QHBoxLayout()
        actions.addWidget(self.info_button)
        actions.addWidget(self.reboot_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.title)
        layout.addWidget(self.model_id)
        layout.addLayout(form)
        layout.addWidget(self.step_label)
        layout.addWidget(self.progress)
        layout.addLayout(actions)
        layout.addWidget(self.camera_button)
        layout.addLayout(platform)

        self.step_label.hide()
        self.progress.hide()
        self.update_device(device)

    # -- what the bench tells the card ------------------------------------------------------------

    def update_device(self, device: Device) -> None:
        """The unit is (again) on the bus, possibly in another mode or at another address."""
        self.device = device
        self.connected = True
        if not self._sticky_error:
            self._error = None
        self.retranslate()

    def mark_disconnected(self) -> None:
        """The unit left the bus; keep the last known details, greyed."""
        self.connected = False
        self.retranslate()

    @property
    def mode(self) -> str:
        return str(self.device.mode)

    @property
    def state(self) -> UnitState:
        if not self.connected:
            return UnitState.DISCONNECTED
        if self.error is not None:
            return UnitState.ERROR
        if self._step is not None or self._in_job:
            return UnitState.BUSY
        return UnitState.BOOTLOADER if self.mode == "bootloader" else UnitState.RUN

    # -- steps (actions now, flashing and the pipeline later) -------------------------------------

    def show_step(self, msgid: str, **params: object) -> None:
        """A step started: show its (translatable) name and an indeterminate progress bar."""
        self._start_step(msgid, params)

    def show_phase(self, label: str) -> None:
        """A step's phase started; ``label`` comes from its event, already in the current language."""
        self._start_step(label, None)

    def _start_step(self, text: str, params: dict[str, object] | None) -> None:
        self._step = (text, params)
        self._result = None
        self._error = None
        self._sticky_error = False
        self.progress.setRange(0, 0)
        self.retranslate()

    def show_progress(self, done: int, total: int) -> None:
        """Progress of the running step; ``total`` <= 0 means unknown."""
        if total <= 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(max(0, min(1000, round(1000 * done / total))))

    def clear_step(self) -> None:
        self._step = None
        self.retranslate()

    def show_error(self, error: BaseException, *, sticky: bool = False) -> None:
        """The last step failed; the card shows the error and its remedy until the next step or replug.

        A ``sticky`` error (a failed flash) survives replugs: it stays until the next step starts.
        """
        self._step = None
        self._result = None
        self._error = error
        self._sticky_error = sticky
        self.retranslate()

    def show_result(self, msgid: str, **params: object) -> None:
        """The step or job ended well; its (translatable) outcome stays on the card until the next step."""
        self._step = None
        self._error = None
        self._sticky_error = False
        self._result = (msgid, params)
        self.retranslate()

    # -- long jobs (flashing) ---------------------------------------------------------------------

    def begin_job(self) -> None:
        """A long job now owns the unit: its actions and dismissing are off until :meth:`end_job`."""
        self._in_job = True
        self.retranslate()

    def end_job(self) -> None:
        self._in_job = False
        self.retranslate()

    @property
    def in_job(self) -> bool:
        return self._in_job

    def allow_camera(self, allowed: bool) -> None:
        """Offer "Camera calibration…" (only to a logged-in role that may calibrate or check a camera)."""
        self._camera_allowed = allowed
        self.retranslate()

    def allow_platform(self, actions: set[str]) -> None:
        """Offer these merchant platform actions (the logged-in role decides which)."""
        self._platform_allowed = set(actions)
        shown = [button for action, button in self.platform_buttons.items() if action in self._platform_allowed]
        for index, button in enumerate(shown):  # the offered ones fill the grid in order, without gaps
            self.platform_grid.removeWidget(button)
            self.platform_grid.addWidget(button, index // 2, index % 2)
        self.retranslate()

    @property
    def error(self) -> BaseException | None:
        """What the card reports as wrong: the last failed step, or no permission to read the unit."""
        if getattr(self.device, "permission_denied", False):
            return UsbAccessDenied(path=self.device.path)
        return self._error

    # -- drawing ------------------------------------------------------------------------------------

    def retranslate(self) -> None:
        """Re-read every text in the current language and redraw the state."""
        device = self.device
        state = self.state
        self.state_badge.setText(_(STATE_LABELS[state]))
        self.dismiss_button.setToolTip(_("Remove this card from the bench"))
        self.dismiss_button.setVisible(state is UnitState.DISCONNECTED and not self._in_job)
        self.title.setText(str(device.model_name))
        self.model_id.setText(_("Model {model}", model=device.model))
        self.serial_caption.setText(_("Serial:"))
        self.port_caption.setText(_("Port:"))
        self.path_caption.setText(_("USB port:"))
        self.mode_caption.setText(_("Mode:"))
        self.serial_value.setText(str(device.serial) or NO_VALUE)
        self.port_value.setText(self._port_text())
        self.path_value.setText(str(device.path) or NO_VALUE)
        msgid = MODE_LABELS.get(self.mode)
        self.mode_value.setText(_(msgid) if msgid else self.mode)
        self._draw_step()
        self.info_button.setText(_("Info"))
        self.info_button.setToolTip(_("Read the unit's model, firmware slots and boot count"))
        if self.mode == "bootloader":
            self.reboot_button.setText(_("Reboot to run mode"))
        else:
            self.reboot_button.setText(_("Reboot to bootloader"))
        idle = (
            state in (UnitState.RUN, UnitState.BOOTLOADER, UnitState.ERROR) and bool(device.serial) and not self._in_job
        )
        self.info_button.setEnabled(idle)
        self.reboot_button.setEnabled(idle)
        self.camera_button.setText(_("Camera calibration…"))
        self.camera_button.setToolTip(_("Calibrate the 3D camera or check its calibration, watching what it sees"))
        self.camera_button.setVisible(self._camera_allowed)
        # open while a step runs too: the panel shows a running calibration; it starts nothing on a busy unit
        self.camera_button.setEnabled(self.connected and self.mode == "run" and bool(device.serial))
        for action, button in self.platform_buttons.items():  # platform calls name the serial: the unit may be away
            text, tip = PLATFORM_ACTIONS[action]
            button.setText(_(text))
            button.setToolTip(_(tip))
            button.setVisible(action in self._platform_allowed)
            button.setEnabled(bool(device.serial) and not (action == "merchant" and self._in_job))
        self._apply_state(state)

    def _port_text(self) -> str:
        if self.device.port:
            return str(self.device.port)
        if self.device.fastboot:
            return _("fastboot {target}", target=self.device.fastboot)
        return NO_VALUE

    def _draw_step(self) -> None:
        error = self.error
        if error is not None:
            message, remedy = error_texts(error)
            self.step_label.setText(message)
            self.step_label.setToolTip(remedy or "")
            self.step_label.setProperty("failed", True)
            self.step_label.show()
            self.progress.hide()
        elif self._step is not None:
            text, params = self._step
            self.step_label.setText(text if params is None else _(text, **params))
            self.step_label.setToolTip("")
            self.step_label.setProperty("failed", False)
            self.step_label.show()
            self.progress.show()
        elif self._result is not None:
            msgid, params = self._result
            self.step_label.setText(_(msgid, **params))
            self.step_label.setToolTip("")
            self.step_label.setProperty("failed", False)
            self.step_label.show()
            self.progress.hide()
        else:
            self.step_label.setProperty("failed", False)
            self.step_label.hide()
            self.progress.hide()
        repolish(self.step_label)

    def _apply_state(self, state: UnitState) -> None:
        if self.property("state") != state.value:
            self.setProperty("state", state.value)
            repolish(self)
            for child in self.findChildren(QLabel):
                repolish(child)

    def _request_reboot(self) -> None:
        target = "run" if self.mode == "bootloader" else "bootloader"
        self.reboot_requested.emit(self.serial, target)


def repolish(widget: QWidget) -> None:
    """Re-apply the style sheet after a dynamic property the sheet selects on has changed."""
    style = widget.style()
    if style is not None:
        style.unpolish(widget)
        style.polish(widget)


class Bench(QWidget):
    """All unit cards, in port order, reflowed to the window width."""

    info_requested = pyqtSignal(str)
    reboot_requested = pyqtSignal(str, str)
    camera_requested = pyqtSignal(str)
    platform_requested = pyqtSignal(str, str)
    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cards: dict[str, UnitCard] = {}
        self._columns = 0
        self._camera_allowed = False
        self._platform_allowed: set[str] = set()
        self.placeholder = QLabel()
        self.placeholder.setObjectName("benchPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._grid.setSpacing(10)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(self._grid_host)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.placeholder)
        layout.addWidget(self.scroll_area)
        self.retranslate()
        self._sync_placeholder()

    def card(self, key: str) -> UnitCard | None:
        """The card of the unit with this serial (or ``@PATH`` for a unit whose serial is unreadable)."""
        return self._cards.get(key)

    def cards(self) -> list[UnitCard]:
        """Cards in bench order (physical port path, then serial)."""
        return sorted(self._cards.values(), key=lambda c: port_sort_key(str(c.device.path), c.serial))

    def counts(self) -> dict[UnitState, int]:
        result = dict.fromkeys(UnitState, 0)
        for card in self._cards.values():
            result[card.state] += 1
        return result

    def device_added(self, device: Device) -> None:
        """A unit appeared (or came back, or changed mode): re-use its card by serial."""
        card = self._cards.get(unit_key(device))
        if card is None:
            card = UnitCard(device)
            card.info_requested.connect(self.info_requested)
            card.reboot_requested.connect(self.reboot_requested)
            card.dismiss_requested.connect(self.dismiss)
            card.camera_requested.connect(self.camera_requested)
            card.platform_requested.connect(self.platform_requested)
            card.allow_camera(self._camera_allowed)
            card.allow_platform(self._platform_allowed)
            self._cards[card.serial] = card
            self._reflow(force=True)
        else:
            card.update_device(device)
            self._reflow(force=True)
        self.changed.emit()

    def device_removed(self, device: Device) -> None:
        """A unit left the bus.  A stale removal (the card already shows a newer presence) is ignored."""
        card = self._cards.get(unit_key(device))
        if card is None or not card.connected:
            return
        shown = card.device
        if (shown.mode, shown.bus, shown.address) != (device.mode, device.bus, device.address):
            LOG.debug("ignoring stale removal of %s (%s)", device.serial, device.mode)
            return
        card.mark_disconnected()
        self.changed.emit()

    def follow(self, events: EventSignals) -> None:
        """Show a step's phases and progress on its units' cards, whatever the step (flash, keys, calibration)."""
        events.phase_started.connect(self._on_phase_started)
        events.progressed.connect(self._on_progressed)
        events.message.connect(self._on_message)

    @pyqtSlot(PhaseStarted)
    def _on_phase_started(self, event: PhaseStarted) -> None:
        card = self._cards.get(event.unit)
        if card is not None:
            card.show_phase(event.label)

    @pyqtSlot(Progressed)
    def _on_progressed(self, event: Progressed) -> None:
        card = self._cards.get(event.unit)
        if card is not None:
            card.show_progress(event.done, event.total)

    @pyqtSlot(Message)
    def _on_message(self, event: Message) -> None:
        if event.unit:
            LOG.info("%s", _("Unit {serial}: {message}", serial=event.unit, message=event.text))
        else:  # about the run, not one unit (earlier inventory calls sent again)
            LOG.info("%s", event.text)

    def allow_camera(self, allowed: bool) -> None:
        """Whether the cards offer the camera calibration panel (the logged-in role decides)."""
        self._camera_allowed = allowed
        for card in self._cards.values():
            card.allow_camera(allowed)

    def allow_platform(self, action: str, allowed: bool) -> None:
        """Whether the cards offer merchant platform ``action`` (the logged-in role decides)."""
        (self._platform_allowed.add if allowed else self._platform_allowed.discard)(action)
        for card in self._cards.values():
            card.allow_platform(self._platform_allowed)

    def dismiss(self, serial: str) -> None:
        """Remove a disconnected unit's card; a connected unit's card, or one held by a job, stays."""
        card = self._cards.get(serial)
        if card is None or card.connected or card.in_job:
            return
        del self._cards[serial]
        self._grid.removeWidget(card)
        card.deleteLater()
        self._reflow(force=True)
        self.changed.emit()

    def dismiss_disconnected(self) -> int:
        gone = [serial for serial, card in self._cards.items() if not card.connected and not card.in_job]
        for serial in gone:
            self.dismiss(serial)
        return len(gone)

    def retranslate(self) -> None:
        self.placeholder.setText(
            _("No units on the bench yet. Plug a terminal in (run or bootloader mode) and it appears here.")
        )
        for card in self._cards.values():
            card.retranslate()

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        self._reflow()

    def _sync_placeholder(self) -> None:
        empty = not self._cards
        self.placeholder.setVisible(empty)
        self.scroll_area.setVisible(not empty)

    def _reflow(self, force: bool = False) -> None:
        spacing = self._grid.spacing()
        viewport = self.scroll_area.viewport()
        width = viewport.width() if viewport is not None else self.width()
        columns = max(1, (width - spacing) // (CARD_WIDTH + spacing))
        if columns == self._columns and not force:
            return
        self._columns = columns
        for card in self._cards.values():
            self._grid.removeWidget(card)
        for index, card in enumerate(self.cards()):
            self._grid.addWidget(card, index // columns, index % columns)
            card.show()
        self._sync_placeholder()
