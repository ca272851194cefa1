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
import time
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import (
    QCheckBox,
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


def elapsed_text(seconds: float) -> str:
    """A run's elapsed time as a bench clock shows it: 0:07, 2:05, 1:02:05."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
    selection_changed = pyqtSignal()

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
        self._failed_step: str | None = None  # the msgid of the recipe step a failure happened in
        self._recipe: str | None = None  # the recipe whose run the card follows (its pipeline events)
        self._recipe_step: str | None = None  # the pipeline's phase label: the step running (translated)
        self._detail: str | None = None  # the running step's own phase label (translated)
        self._steps_done, self._steps_total, self._inner = 0, 0, 0.0
        self._clock: tuple[float, float | None] | None = None  # (started, ended) monotonic, of the unit's run
        self.setObjectName("unitCard")
        self.setFixedWidth(CARD_WIDTH)
        self.setFrameShape(QFrame.Shape.StyledPanel)

        self.select_box = QCheckBox()
        self.select_box.setObjectName("cardSelect")
        self.select_box.toggled.connect(lambda _checked: self.selection_changed.emit())
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
        self.detail_label = QLabel()
        self.detail_label.setObjectName("cardDetail")
        self.detail_label.setWordWrap(True)
        self.remedy_label = QLabel()
        self.remedy_label.setObjectName("cardRemedy")
        self.remedy_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.elapsed_label = QLabel()
        self.elapsed_label.setObjectName("cardElapsed")

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
        top.addWidget(self.select_box)
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
        layout.addWidget(self.detail_label)
        layout.addWidget(self.remedy_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.elapsed_label)
        layout.addLayout(actions)
        layout.addWidget(self.camera_button)
        layout.addLayout(platform)

        self.step_label.hide()
        self.detail_label.hide()
        self.remedy_label.hide()
        self.progress.hide()
        self.elapsed_label.hide()
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
        self._failed_step = None
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

    def show_error(self, error: BaseException, *, sticky: bool = False, step: str | None = None) -> None:
        """The last step failed; the card shows the error and its remedy until the next step or replug.

        A ``sticky`` error (a failed flash) survives replugs: it stays until the next step starts.  ``step`` is the
        msgid of the step that failed (a recipe's step title), said before the error.
        """
        self._step = None
        self._result = None
        self._error = error
        self._failed_step = step
        self._sticky_error = sticky
        self._end_recipe()
        self.retranslate()

    def show_result(self, msgid: str, **params: object) -> None:
        """The step or job ended well; its (translatable) outcome stays on the card until the next step."""
        self._step = None
        self._error = None
        self._failed_step = None
        self._sticky_error = False
        self._result = (msgid, params)
        self._end_recipe()
        self.retranslate()

    # -- a recipe's run (the bench's Start) ---------------------------------------------------------

    def begin_recipe(self, recipe: str, waiting: str) -> None:
        """The unit is in a run of ``recipe``: its card follows the pipeline's steps and its clock starts.
        ``waiting`` is the msgid shown until its first step starts."""
        self._recipe = recipe
        self._recipe_step, self._detail = None, None
        self._steps_done, self._steps_total, self._inner = 0, 0, 0.0
        self._clock = (time.monotonic(), None)
        self.show_step(waiting)
        self.begin_job()
        self.tick()

    def _end_recipe(self) -> None:
        if self._recipe is not None and self._clock is not None and self._clock[1] is None:
            self._clock = (self._clock[0], time.monotonic())
        self._recipe = None
        self._detail = None
        self.detail_label.hide()

    def phase_event(self, event: PhaseStarted) -> None:
        """A phase started on this unit: a recipe's step (the pipeline's) or a phase inside it, else any step's."""
        if self._recipe is None:
            self.show_phase(event.label)
            return
        if event.step == self._recipe:
            self._recipe_step, self._detail, self._inner = event.label, None, 0.0
            self._step = (event.label, None)
        else:
            self._detail, self._inner = event.label, 0.0
        self._draw_run()

    def progress_event(self, event: Progressed) -> None:
        """Progress on this unit; in a recipe's run the bar is the whole run (steps done, and the running one)."""
        if self._recipe is None:
            self.show_progress(event.done, event.total)
            return
        if event.step == self._recipe:
            self._steps_done, self._steps_total, self._inner = event.done, event.total, 0.0
        elif event.total > 0:
            self._inner = max(0.0, min(1.0, event.done / event.total))
        if self._steps_total > 0:
            whole = (self._steps_done + self._inner) / self._steps_total
            if self.progress.maximum() != 1000:
                self.progress.setRange(0, 1000)
            self.progress.setValue(max(0, min(1000, round(1000 * whole))))

    def _draw_run(self) -> None:
        """Only the texts a recipe's phase changes (cheap: a run of 16 units sends many)."""
        if self._step is None or self._error is not None:
            return
        text, params = self._step
        self.step_label.setText(text if params is None else _(text, **params))
        self.step_label.show()
        self.detail_label.setText(self._detail or "")
        self.detail_label.setVisible(bool(self._detail))
        if not self.progress.isVisible():
            self.progress.show()
        self._apply_state(self.state)

    @property
    def running(self) -> bool:
        """Whether the unit's run clock is running."""
        return self._clock is not None and self._clock[1] is None

    def elapsed(self) -> float | None:
        """Seconds of the unit's (last) run, None when it never ran one."""
        if self._clock is None:
            return None
        started, ended = self._clock
        return (ended if ended is not None else time.monotonic()) - started

    def tick(self) -> None:
        """Redraw the elapsed time (the bench's one timer calls it once a second)."""
        seconds = self.elapsed()
        if seconds is None:
            self.elapsed_label.hide()
            return
        self.elapsed_label.setText(_("Elapsed {time}", time=elapsed_text(seconds)))
        self.elapsed_label.show()

    # -- selection ----------------------------------------------------------------------------------

    @property
    def selectable(self) -> bool:
        """Whether Start may work on the unit: attached, its serial read, and no job holding it."""
        return self.connected and bool(self.device.serial) and not self._in_job

    @property
    def selected(self) -> bool:
        return self.select_box.isChecked()

    def set_selected(self, selected: bool) -> None:
        self.select_box.setChecked(selected)

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
        self.select_box.setToolTip(_("Tick to include this unit when you press Start"))
        self.tick()
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
        self.remedy_label.hide()
        if self._recipe is None:
            self.detail_label.hide()
        if error is not None:
            message, remedy = error_texts(error)
            if self._failed_step:
                message = _("Failed at “{step}”: {message}", step=_(self._failed_step), message=message)
            self.step_label.setText(message)
            self.step_label.setToolTip(remedy or "")
            self.step_label.setProperty("failed", True)
            self.step_label.show()
            self.remedy_label.setText(_("What to do: {remedy}", remedy=remedy) if remedy else "")
            self.remedy_label.setVisible(bool(remedy))
            self.progress.hide()
        elif self._step is not None:
            text, params = self._step
            self.step_label.setText(text if params is None else _(text, **params))
            self.step_label.setToolTip("")
            self.step_label.setProperty("failed", False)
            self.step_label.show()
            self.detail_label.setText(self._detail or "")
            self.detail_label.setVisible(self._recipe is not None and bool(self._detail))
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
        before = self.property("state")
        if before != state.value:
            self.setProperty("state", state.value)
            repolish(self)
            repolish(self.state_badge)
            # only the badge's rule and the greyed-out one select on the card's state: repolishing every label on
            # each busy/run change cost a 16-unit bench tens of milliseconds of its event loop per replug
            if UnitState.DISCONNECTED.value in (before, state.value):
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
    selection_changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cards: dict[str, UnitCard] = {}
        self.clock = QTimer(self)  # one timer for every card's elapsed time, running while a unit's run does
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self.tick)
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
            card.selection_changed.connect(self.selection_changed)
            card.allow_camera(self._camera_allowed)
            card.allow_platform(self._platform_allowed)
            self._cards[card.serial] = card
            self._reflow(force=True)
        else:
            placed = port_sort_key(str(card.device.path), card.serial)
            card.update_device(device)
            if port_sort_key(str(device.path), card.serial) != placed:  # a reboot keeps its port: no new layout
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
            card.phase_event(event)

    @pyqtSlot(Progressed)
    def _on_progressed(self, event: Progressed) -> None:
        card = self._cards.get(event.unit)
        if card is not None:
            card.progress_event(event)

    # -- a recipe's run, selection, the clock ---------------------------------------------------------

    def begin_recipe(self, recipe: str, serials: list[str] | tuple[str, ...], waiting: str) -> None:
        """``serials`` start a run of ``recipe``: their cards follow its steps, their clocks run."""
        for serial in serials:
            card = self._cards.get(serial)
            if card is not None:
                card.begin_recipe(recipe, waiting)
        if not self.clock.isActive():
            self.clock.start()

    def tick(self) -> None:
        """Once a second while a run is on: redraw the running clocks; stop when none runs."""
        running = [card for card in self._cards.values() if card.running]
        for card in running:
            card.tick()
        if not running:
            self.clock.stop()

    def attached(self) -> list[str]:
        """The serials of the units Start may work on (attached, readable, not held), in bench order."""
        return [card.serial for card in self.cards() if card.selectable]

    def selected(self) -> list[str]:
        """The ticked units Start may work on, in bench order."""
        return [card.serial for card in self.cards() if card.selected and card.selectable]

    def select_all(self) -> None:
        for card in self._cards.values():
            card.set_selected(card.selectable)

    def select_none(self) -> None:
        for card in self._cards.values():
            card.set_selected(False)

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
