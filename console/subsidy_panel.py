"""The subsidy panel: a unit's (or a merchant's units') subsidy, per month and in total, with a small chart.

Opened from a card for its unit, or from the Bench menu for a merchant id typed in.  The status is asked with
:func:`provisioning.registration.subsidy_status` as a job on the console's workers (it is a signed platform read,
so the key store opens there); the panel shows a unit's program and window, a table of its months (users
counted, yuan earned), its totals (earned, cap left, months left) and :class:`~console.subsidy_chart.SubsidyChart`.
A merchant with several units gets a chooser and the merchant's total.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from enrollment.config import ID
from i18n import N_, _
from provisioning.registration import ROLES_SUBSIDY
from terminal.errors import NaiadError

from .calibration_panel import fit_table
from .operator_login import OperatorLogin
from .platform_access import PlatformAccess, PlatformActions, SecretField
from .subsidy_chart import SubsidyChart
from .unit_card import NO_VALUE, Bench, error_texts, repolish
from .workers import Job, Workers

if TYPE_CHECKING:
    from provisioning.registration import UnitSubsidy

LOG = logging.getLogger(__name__)

UNIT, MERCHANT = "unit", "merchant"
KINDS: tuple[tuple[str, str], ...] = ((UNIT, N_("Unit serial")), (MERCHANT, N_("Merchant id")))
COLUMNS = (N_("Month"), N_("From"), N_("To"), N_("Users"), N_("Earned (yuan)"))


def day(timestamp: str | None) -> str:
    """The date of a platform time (``yyyy-MM-dd HH:mm:ss``), or a dash."""
    return timestamp[:10] if timestamp else NO_VALUE


class SubsidyPanel(QDialog):
    """Asks for a unit's or a merchant's subsidy (``query_requested(kind, id, secret)``) and shows it."""

    query_requested = pyqtSignal(str, str, str)

    def __init__(self, serial: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("subsidyPanel")
        self.loading = False
        self.answered = False
        self.units: list[UnitSubsidy] = []
        self._error: BaseException | None = None

        self.kind_combo = QComboBox()
        for kind, _label in KINDS:
            self.kind_combo.addItem("", kind)
        self.kind_combo.currentIndexChanged.connect(lambda _index: self._refresh())
        self.id_edit = QLineEdit(serial or "")
        self.id_edit.setMaxLength(64)
        self.id_edit.textChanged.connect(lambda _text: self._refresh())
        self.id_edit.returnPressed.connect(self.query)
        self.show_button = QPushButton()
        self.show_button.setObjectName("showSubsidyButton")
        self.show_button.clicked.connect(self.query)
        self.id_message = QLabel()
        self.secret_caption = QLabel()
        self.secret_edit = SecretField()
        self.secret_edit.textChanged.connect(lambda _text: self._refresh())
        query = QHBoxLayout()
        query.addWidget(self.kind_combo)
        query.addWidget(self.id_edit, 1)
        query.addWidget(self.show_button)
        secret = QHBoxLayout()
        secret.addWidget(self.secret_caption)
        secret.addWidget(self.secret_edit, 1)

        self.unit_caption = QLabel()
        self.unit_combo = QComboBox()
        self.unit_combo.currentIndexChanged.connect(lambda _index: self._draw_unit())
        self.merchant_label = QLabel()
        chooser = QFormLayout()
        chooser.addRow(self.unit_caption, self.unit_combo)
        self.status_label = QLabel()
        self.status_label.setObjectName("cardStep")  # red for a failed query
        self.status_label.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        fit_table(self.table)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # type: ignore[union-attr]
        self.table.verticalHeader().hide()  # type: ignore[union-attr]
        self.totals_label = QLabel()
        self.totals_label.setObjectName("subsidyTotals")
        self.totals_label.setWordWrap(True)
        self.chart = SubsidyChart()

        layout = QVBoxLayout(self)
        layout.addLayout(query)
        layout.addWidget(self.id_message)
        layout.addLayout(secret)
        layout.addWidget(self.merchant_label)
        layout.addLayout(chooser)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table)
        layout.addWidget(self.totals_label)
        layout.addWidget(self.chart, 1)
        for label in (self.id_message, self.merchant_label, self.unit_caption, self.status_label):
            label.setWordWrap(True)
        self.id_message.setObjectName("cardStep")
        self.id_message.setProperty("failed", True)
        self.kind_combo.setCurrentIndex(0 if serial else 1)
        self.retranslate()
        self.resize(760, 640)

    # -- asking ----------------------------------------------------------------------------------------------

    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def blocker(self) -> str | None:
        """The msgid of why Show is off; None when it is on."""
        if self.loading:
            return N_("Asking the platform…")
        text = self.id_edit.text()
        if not text:
            return N_("Enter the unit's serial.") if self.kind() == UNIT else N_("Enter the merchant id.")
        if not ID.fullmatch(text):
            return N_("Letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64")
        if self.secret_edit.missing():
            return N_("Enter the key store's passphrase or PIN.")
        return None

    def query(self) -> None:
        if self.blocker() is None:
            self.query_requested.emit(self.kind(), self.id_edit.text(), self.secret_edit.text())

    def begin(self) -> None:
        self.loading = True
        self._refresh()

    def show_units(self, units: Sequence[UnitSubsidy]) -> None:
        """The platform's answer: each unit's subsidy (a merchant may have several units, or none)."""
        self.loading = False
        self.answered = True
        self._error = None
        self.units = list(units)
        self.unit_combo.blockSignals(True)
        self.unit_combo.clear()
        self.unit_combo.addItems([unit.serial for unit in self.units])
        self.unit_combo.blockSignals(False)
        self.retranslate()

    def show_error(self, error: BaseException) -> None:
        self.loading = False
        self._error = error
        self.units = []
        self.unit_combo.clear()
        self.retranslate()

    def current(self) -> UnitSubsidy | None:
        index = self.unit_combo.currentIndex()
        return self.units[index] if 0 <= index < len(self.units) else None

    def done(self, result: int) -> None:
        """Closing forgets the passphrase or PIN typed."""
        self.secret_edit.forget()
        super().done(result)

    # -- drawing ---------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        blocker = self.blocker()
        self.show_button.setEnabled(blocker is None)
        typed = self.id_edit.text()
        invalid = bool(typed) and not ID.fullmatch(typed)
        self.id_message.setText(_(blocker) if invalid and blocker else "")
        self.id_message.setVisible(invalid)
        self.id_edit.setPlaceholderText(
            _("The unit's serial") if self.kind() == UNIT else _("The merchant's id, e.g. 2088000000000001")
        )

    def _draw_unit(self) -> None:
        unit = self.current()
        several = len(self.units) > 1
        self.unit_caption.setVisible(several)
        self.unit_combo.setVisible(several)
        error = self._error
        failed = error is not None
        if error is not None:
            status = "\n".join(part for part in error_texts(error) if part)
        elif unit is None:
            status = _("The platform knows no unit of this merchant.") if self.answered else ""
        elif unit.program is None:
            status = _("Unit {serial} is not enrolled in a subsidy program.", serial=unit.serial)
        else:
            status = _(
                "Unit {serial} at merchant {merchant}, store {store}: program {program}, activated {activated}, "
                "window ends {end}",
                serial=unit.serial,
                merchant=unit.merchant_id,
                store=unit.store_id,
                program=unit.program,
                activated=day(unit.activated),
                end=day(unit.window_end),
            )
        self.status_label.setText(status)
        self.status_label.setVisible(bool(status))
        if self.status_label.property("failed") != failed:
            self.status_label.setProperty("failed", failed)
            repolish(self.status_label)
        months = unit.months if unit is not None else ()
        self.table.setHorizontalHeaderLabels([_(column) for column in COLUMNS])
        self.table.setRowCount(len(months))
        for row, month in enumerate(months):
            cells = (_("Month {index}", index=month.index), day(month.start), day(month.end), str(month.users))
            for column, text in enumerate((*cells, f"{month.earned:.2f}")):
                item = QTableWidgetItem(text)
                if column >= 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.setVisible(bool(months))
        if unit is None or unit.program is None:
            self.totals_label.hide()
        else:
            self.totals_label.setText(
                _(
                    "Earned {earned:.2f} yuan · cap left {cap_left:.2f} yuan · months left {months}",
                    earned=unit.earned,
                    cap_left=unit.cap_left,
                    months=unit.months_left,
                )
            )
            self.totals_label.show()
        self.chart.show_months(months)
        self.chart.setVisible(unit is not None and unit.program is not None)

    def retranslate(self) -> None:
        self.setWindowTitle(_("Subsidy status"))
        for index, (_kind, label) in enumerate(KINDS):
            self.kind_combo.setItemText(index, _(label))
        self.show_button.setText(_("Show"))
        self.secret_caption.setText(self.secret_edit.caption())
        self.secret_edit.retranslate()
        self.unit_caption.setText(_("Unit:"))
        merchant_total = sum((unit.earned for unit in self.units), Decimal(0))
        if self.kind() == MERCHANT and self.units:
            self.merchant_label.setText(
                _("{count} units · {earned:.2f} yuan earned in all", count=len(self.units), earned=merchant_total)
            )
            self.merchant_label.show()
        else:
            self.merchant_label.hide()
        self._refresh()
        self._draw_unit()


class SubsidyPanels(PlatformActions):
    """The cards' "Subsidy…" action and the Bench menu's: panels and their queries (GUI thread only)."""

    action = "subsidy"
    roles = ROLES_SUBSIDY

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        access: PlatformAccess,
        operator: OperatorLogin,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(bench, workers, access, operator, parent)
        self.panels: list[SubsidyPanel] = []
        self.menu_action = QAction(self)
        self.menu_action.setObjectName("subsidyStatusAction")
        self.menu_action.triggered.connect(lambda _checked=False: self.open_for(None))
        self._sync()
        self.retranslate()

    def windows(self) -> list[QWidget]:
        return list(self.panels)

    def _sync(self) -> None:
        super()._sync()
        self.menu_action.setVisible(self.allowed())

    def open_for(self, serial: str | None) -> SubsidyPanel | None:
        """A panel for ``serial`` (asked at once), or for a merchant id to type; None unless the role may read."""
        if not self.allowed():
            return None
        panel = SubsidyPanel(serial, self._window)
        panel.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        panel.query_requested.connect(lambda kind, value, secret, panel=panel: self.query(panel, kind, value, secret))
        panel.finished.connect(lambda _result, panel=panel: self._forget(panel))
        self.panels.append(panel)
        panel.show()
        panel.raise_()
        if serial:
            panel.query()
        return panel

    def _forget(self, panel: SubsidyPanel) -> None:
        if panel in self.panels:
            self.panels.remove(panel)

    def query(self, panel: SubsidyPanel, kind: str, value: str, secret: str) -> Job | None:
        """Ask the platform for the subsidy of unit or merchant ``value`` off the GUI thread."""
        access, held, session = self._access, [secret], self._operator.session
        by = {"serial": value} if kind == UNIT else {"merchant_id": value}

        def work(_listener: Any) -> list[UnitSubsidy]:
            from provisioning.registration import subsidy_status

            return access.call(held.pop(), lambda outbox, _config: subsidy_status(outbox, session=session, **by))

        job = Job(work, (), "subsidy status")
        job.succeeded.connect(panel.show_units)
        job.failed.connect(panel.show_error)
        try:
            self._workers.start(job)
        except NaiadError as exc:
            panel.show_error(exc)
            return None
        panel.begin()
        return job

    def retranslate(self) -> None:
        self.menu_action.setText(_("Subsidy status…"))
        self.menu_action.setToolTip(
            _("A unit's or a merchant's subsidy: users and earnings per month, cap and months left")
        )
        for panel in self.panels:
            panel.retranslate()
