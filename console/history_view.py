"""A unit's history from the ledger as the support desk shows it: one row per event, newest first, China time.

The rows are :meth:`provisioning.history.UnitHistory.timeline` (``brief``: the audit entries that only repeat a
row are left out), as ``naiad history SERIAL`` prints them: runs, steps, operations, key injections (Initial Key
ID and KCV, never a key), calibrations, camera checks, platform calls (no face token) and audit entries.  A kind
filter narrows the list.  Presentation only: the desk reads the history on a worker and hands it here.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from i18n import N_, _
from provisioning.history import KINDS, china_time

if TYPE_CHECKING:
    from provisioning.history import Event, UnitHistory

HEADINGS = (N_("When"), N_("Kind"), N_("What"), N_("Status"), N_("Station"), N_("Operator"))
"""The columns, as ``naiad history`` heads them."""
ALL_KINDS = ""


class HistoryView(QWidget):
    """The history of one unit (or of none yet); GUI thread only."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history: UnitHistory | None = None
        self.summary = QLabel()
        self.summary.setObjectName("historySummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)  # the unit's model as the ledger holds it
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kind_label = QLabel()
        self.kind_filter = QComboBox()
        self.kind_filter.setObjectName("historyKind")
        self.kind_filter.currentIndexChanged.connect(lambda _index: self._fill())
        self.tree = QTreeWidget()
        self.tree.setObjectName("historyRows")
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setColumnCount(len(HEADINGS))
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.kind_label)
        top.addWidget(self.kind_filter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self.retranslate()

    def show_history(self, history: UnitHistory | None) -> None:
        """Show ``history`` (None: nothing, e.g. before a unit is found)."""
        self._history = history
        self._fill()

    def events(self) -> list[Event]:
        """The events shown, newest first (after the kind filter)."""
        if self._history is None:
            return []
        wanted = self.kind_filter.currentData()
        shown = [e for e in self._history.timeline(brief=True) if not wanted or e.kind == wanted]
        return shown[::-1]

    def rows(self) -> list[tuple[str, ...]]:
        """The rows' texts as shown (for the tests and a copy-paste)."""
        return [
            tuple(item.text(column) for column in range(len(HEADINGS)))
            for item in (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
            if item is not None
        ]

    def retranslate(self) -> None:
        self.tree.setHeaderLabels([_(heading) for heading in HEADINGS])
        self.kind_label.setText(_("Show:"))
        chosen = self.kind_filter.currentData()
        self.kind_filter.blockSignals(True)
        self.kind_filter.clear()
        self.kind_filter.addItem(_("Everything"), ALL_KINDS)
        for kind in KINDS:
            self.kind_filter.addItem(_(kind), kind)
        found = self.kind_filter.findData(chosen if chosen is not None else ALL_KINDS)
        self.kind_filter.setCurrentIndex(max(found, 0))
        self.kind_filter.blockSignals(False)
        self._fill()

    def _fill(self) -> None:
        self.tree.clear()
        history = self._history
        if history is None:
            self.summary.setText("")
            return
        self.summary.setText(_summary(history))
        for event in self.events():
            item = QTreeWidgetItem(
                [
                    china_time(event.at) or "—",
                    _(event.kind),
                    event.what,
                    _(event.status) if event.status else "",
                    event.station or "",
                    event.operator or "",
                ]
            )
            item.setToolTip(2, plain_tooltip(event.what))
            self.tree.addTopLevelItem(item)
        for column in range(len(HEADINGS)):
            self.tree.resizeColumnToContents(column)


def plain_tooltip(text: str) -> str:
    """``text`` (from the ledger, a unit or the platform) as a tooltip that shows it as typed: a tooltip is rich text
    whenever its first line holds something like a tag."""
    return f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>" if text else ""


def _summary(history: UnitHistory) -> str:
    device = history.device
    counts = _(
        "{runs} recipe runs, {operations} operations, {injections} key injections",
        runs=len(history.runs),
        operations=len(history.operations),
        injections=len(history.injections),
    )
    if device is None:
        return _("Unit {serial}: not seen by a station of this ledger; {counts}", serial=history.serial, counts=counts)
    return _(
        "Unit {serial}, model {model}: first seen {first}, last seen {last}; {counts}",
        serial=history.serial,
        model=device.model,
        first=china_time(device.first_seen),
        last=china_time(device.last_seen),
        counts=counts,
    )
