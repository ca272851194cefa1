"""Ticking units of the bench for a job on many at once (flashing, key injection): one list, one way.

``UnitPicker`` lists the bench's units (:class:`UnitChoice`) with a tick box each; a unit its dialog says
cannot take the job now (not attached, busy, wrong model or mode) is greyed with the reason beside it.
The operator's ticks survive the bench changing under the open dialog.  ``StartFoot`` is such a dialog's
foot: why Start is off (or what it will do) above Start and Cancel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _

from .style import UnitState
from .unit_card import MODE_LABELS, NO_VALUE, UnitCard, error_texts, repolish

# Why a unit cannot be ticked, shared by every job; the first that applies is shown.
NOT_ATTACHED = N_("Not attached")
BUSY = N_("Busy")


@dataclass(frozen=True)
class UnitChoice:
    """A unit on the bench as a dialog lists it."""

    serial: str
    model: str
    model_name: str
    path: str
    mode: str
    attached: bool
    busy: bool


def choices_from_cards(cards: Iterable[UnitCard], is_busy: Callable[[str], bool]) -> list[UnitChoice]:
    """The bench's units with a readable serial, in bench order; ``is_busy`` adds units with work queued."""
    return [
        UnitChoice(
            serial=card.serial,
            model=str(card.device.model),
            model_name=str(card.device.model_name),
            path=str(card.device.path),
            mode=card.mode,
            attached=card.connected,
            busy=card.in_job or card.state is UnitState.BUSY or is_busy(card.serial),
        )
        for card in cards
        if card.device.serial
    ]


def attached_and_idle(unit: UnitChoice) -> str | None:
    """The msgid of why ``unit`` can take no job now, or None."""
    if not unit.attached:
        return NOT_ATTACHED
    if unit.busy:
        return BUSY
    return None


class UnitPicker(QGroupBox):
    """The units of a job: a tick per available unit, "tick all" and "untick all"; ``changed`` on every tick.

    ``unavailable(unit)`` gives the msgid of why a unit cannot be ticked now (None: it can).  Units are
    ticked by default when ``ticked_by_default`` is true; the operator's own ticks are kept until :meth:`fill`
    is asked to reset them.
    """

    changed = pyqtSignal()

    def __init__(
        self,
        unavailable: Callable[[UnitChoice], str | None],
        all_text: str = N_("Tick all"),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._unavailable = unavailable
        self._all_text = all_text
        self._units: list[UnitChoice] = []
        self._ticked: dict[str, bool] = {}
        self._filling = False
        self.ticked_by_default = True
        self.unit_tree = QTreeWidget()
        self.unit_tree.setRootIsDecorated(False)
        self.unit_tree.setColumnCount(5)
        self.unit_tree.itemChanged.connect(self._item_changed)
        header = self.unit_tree.header()
        if header is not None:
            header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.all_button = QPushButton()
        self.all_button.clicked.connect(lambda: self.tick_all(True))
        self.none_button = QPushButton()
        self.none_button.clicked.connect(lambda: self.tick_all(False))
        tick_row = QHBoxLayout()
        tick_row.addWidget(self.all_button)
        tick_row.addWidget(self.none_button)
        tick_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.unit_tree)
        layout.addLayout(tick_row)

    def set_units(self, units: Sequence[UnitChoice]) -> None:
        """The bench changed: list ``units``, keeping the operator's ticks for units already listed."""
        self._units = list(units)
        self.fill()

    def fill(self, *, reset: bool = False) -> None:
        """Redraw the list (availability may have changed); ``reset`` forgets the operator's ticks."""
        if reset:
            self._ticked = {}
        self._filling = True
        try:
            self.unit_tree.clear()
            for unit in self._units:
                item = QTreeWidgetItem()
                item.setData(0, Qt.ItemDataRole.UserRole, unit.serial)
                available = self._unavailable(unit) is None
                flags = Qt.ItemFlag.ItemIsSelectable
                if available:
                    flags |= Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable
                item.setFlags(flags)
                ticked = available and self._ticked.get(unit.serial, self.ticked_by_default)
                item.setCheckState(0, Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                self.unit_tree.addTopLevelItem(item)
            self._label_units()
        finally:
            self._filling = False
        self.changed.emit()

    def _label_units(self) -> None:
        for index, unit in enumerate(self._units):
            item = self.unit_tree.topLevelItem(index)
            if item is None:
                continue
            mode = MODE_LABELS.get(unit.mode)
            reason = self._unavailable(unit)
            item.setText(0, unit.serial)
            item.setText(1, f"{unit.model_name} ({unit.model})")
            item.setText(2, unit.path or NO_VALUE)
            item.setText(3, _(mode) if mode else unit.mode)
            item.setText(4, _(reason) if reason else "")

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        serial = str(item.data(0, Qt.ItemDataRole.UserRole))
        self._ticked[serial] = item.checkState(0) == Qt.CheckState.Checked
        self.changed.emit()

    def tick_all(self, ticked: bool) -> None:
        """Tick (or untick) every unit that can take the job now."""
        for unit in self._units:
            if self._unavailable(unit) is None:
                self._ticked[unit.serial] = ticked
        self.fill()

    def selected_serials(self) -> list[str]:
        """The ticked units that can take the job now, in bench order."""
        chosen = []
        for index, unit in enumerate(self._units):
            item = self.unit_tree.topLevelItem(index)
            if item is not None and item.checkState(0) == Qt.CheckState.Checked and self._unavailable(unit) is None:
                chosen.append(unit.serial)
        return chosen

    def retranslate(self) -> None:
        self.setTitle(_("Units"))
        self.unit_tree.setHeaderLabels([_("Serial"), _("Model"), _("USB port"), _("Mode"), _("Note")])
        self.all_button.setText(_(self._all_text))
        self.none_button.setText(_("Untick all"))
        self._label_units()


class StartFoot(QWidget):
    """A job dialog's foot: a hint (red with a problem's message and remedy), then Start and Cancel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label = QLabel()
        self.hint_label.setObjectName("cardStep")  # the style sheet's red for failed="true"
        self.hint_label.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        start = self.buttons.addButton("", QDialogButtonBox.ButtonRole.AcceptRole)
        cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        assert start is not None and cancel is not None
        self.start_button: QPushButton = start
        self.cancel_button: QPushButton = cancel
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.hint_label)
        layout.addWidget(self.buttons)

    def show_hint(self, text: str, problem: BaseException | None = None) -> None:
        """Show ``text``, followed by ``problem``'s message and remedy in red when there is one."""
        if problem is not None:
            message, remedy = error_texts(problem)
            text = " ".join(part for part in (text, message, remedy) if part)
        self.hint_label.setText(text)
        failed = problem is not None
        if self.hint_label.property("failed") != failed:
            self.hint_label.setProperty("failed", failed)
            repolish(self.hint_label)
