"""The bench's batch summary: how a run of a recipe ended, for the operator at the bench.

Counts per result, each failed unit with its problem and what to do, the reconciliation with the authorised
inventory (:attr:`provisioning.pipeline.BatchRun.reconciliation`, in the words of ``naiad provision``), the time
per unit, and a link that opens the batch's reports folder.  It only shows what the run returned: the report
itself was written on the worker (:func:`console.station_resources.write_reports`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _

from .unit_card import elapsed_text, error_texts

if TYPE_CHECKING:
    from provisioning.pipeline import BatchRun, UnitRun
    from terminal.errors import NaiadError

RESULT_LABELS: dict[str, str] = {
    "succeeded": N_("Succeeded"),
    "failed": N_("Failed"),
    "already-done": N_("Already done"),
    "held-elsewhere": N_("Held by another station"),
}
"""The pipeline's unit results (:data:`provisioning.pipeline.UNIT_RESULTS`) as the summary names them."""


@dataclass
class BenchOutcome:
    """What a bench run hands back: the batch, where its reports are, the files written or why none were."""

    batch: BatchRun
    folder: Path
    files: list[Path] = field(default_factory=list)
    report_error: NaiadError | None = None


def failed_step_label(unit: UnitRun) -> str | None:
    """The msgid of the title of the step a unit's run failed at (None: it failed outside a step)."""
    from provisioning.steps import STEPS

    failed = next((s for s in unit.steps if not s.ok), None)
    cls = STEPS.get(failed.step) if failed is not None else None
    return cls.label if cls is not None else None


def counts_of(batch: BatchRun) -> dict[str, int]:
    """How many units ended in each result (every result named, zero or not)."""
    counts = dict.fromkeys(RESULT_LABELS, 0)
    for unit in batch.units:
        counts[unit.result] = counts.get(unit.result, 0) + 1
    return counts


def problem_text(unit: UnitRun) -> str:
    """A failed unit's problem in plain words: the step, the error and what to do."""
    error = unit.error
    if error is None:
        return _(RESULT_LABELS.get(unit.result, unit.result))
    message, remedy = error_texts(error)
    step = failed_step_label(unit)
    text = _("Failed at “{step}”: {message}", step=_(step), message=message) if step else message
    return text + ("\n" + _("What to do: {remedy}", remedy=remedy) if remedy else "")


class BatchSummary(QFrame):
    """The summary panel under the bench; hidden until a run ends."""

    closed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("batchSummary")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.outcome: BenchOutcome | None = None
        self.error: BaseException | None = None
        self.title = QLabel()
        self.title.setObjectName("summaryTitle")
        self.title.setWordWrap(True)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.clicked.connect(self._close)
        self.counts_label = QLabel()
        self.counts_label.setObjectName("summaryCounts")
        self.problems = QLabel()
        self.problems.setObjectName("summaryProblems")
        self.problems.setWordWrap(True)
        self.reconciliation = QLabel()
        self.reconciliation.setObjectName("summaryReconciliation")
        self.reconciliation.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("summaryTimes")
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(120)
        self.table.horizontalHeader().setStretchLastSection(True)  # type: ignore[union-attr]
        self.reports_label = QLabel()
        self.reports_label.setObjectName("summaryReports")
        self.reports_label.setWordWrap(True)
        self.open_reports_button = QPushButton()
        self.open_reports_button.setObjectName("openReports")
        self.open_reports_button.clicked.connect(self.open_reports)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.close_button)
        reports = QHBoxLayout()
        reports.addWidget(self.reports_label, 1)
        reports.addWidget(self.open_reports_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.counts_label)
        layout.addWidget(self.problems)
        layout.addWidget(self.reconciliation)
        layout.addWidget(self.table)
        layout.addLayout(reports)
        self.hide()

    def show_outcome(self, outcome: BenchOutcome) -> None:
        self.outcome, self.error = outcome, None
        self.retranslate()
        self.show()

    def show_refused(self, error: BaseException) -> None:
        """The run was refused before any unit was touched (the key store, the role, a step's set-up)."""
        self.outcome, self.error = None, error
        self.retranslate()
        self.show()

    def counts(self) -> dict[str, int]:
        return counts_of(self.outcome.batch) if self.outcome is not None else {}

    def open_reports(self) -> bool:
        """Open the batch's reports folder in the system's file manager; False when there is none to open."""
        if self.outcome is None or not self.outcome.folder.is_dir():
            return False
        return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.outcome.folder))))

    def retranslate(self) -> None:
        self.close_button.setToolTip(_("Close the summary"))
        self.open_reports_button.setText(_("Open the reports folder"))
        self.table.setHorizontalHeaderLabels([_("Unit"), _("Result"), _("Time")])
        if self.error is not None:
            message, remedy = error_texts(self.error)
            self.title.setText(_("The run was refused; no unit was touched: {message}", message=message))
            self.counts_label.setText(_("What to do: {remedy}", remedy=remedy) if remedy else "")
            for widget in (self.problems, self.reconciliation, self.table, self.reports_label):
                widget.hide()
            self.open_reports_button.hide()
            return
        if self.outcome is None:
            return
        batch = self.outcome.batch
        self.title.setText(
            _(
                "Recipe {recipe} finished: {units} units in {time}",
                recipe=batch.recipe.name,
                units=len(batch.units),
                time=elapsed_text(batch.seconds),
            )
        )
        counts = counts_of(batch)
        self.counts_label.setText(" · ".join(f"{_(RESULT_LABELS[r])}: {counts[r]}" for r in RESULT_LABELS))
        failed = [unit for unit in batch.units if unit.result == "failed"]
        self.problems.setText("\n".join(f"{unit.serial}: {problem_text(unit)}" for unit in failed))
        self.problems.setVisible(bool(failed))
        self.reconciliation.setText("\n".join(self.reconciliation_lines()))
        self.reconciliation.setVisible(True)
        self.table.setRowCount(len(batch.units))
        for row, unit in enumerate(batch.units):
            seconds = unit.seconds or sum(s.seconds for s in unit.steps)
            for column, text in enumerate(
                (unit.serial, _(RESULT_LABELS.get(unit.result, unit.result)), f"{seconds:.1f} s")
            ):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.show()
        if self.outcome.report_error is not None:
            message, remedy = error_texts(self.outcome.report_error)
            text = _("The batch report could not be written: {problem}", problem=message)
            self.reports_label.setText(text + (" " + remedy if remedy else ""))
        else:
            self.reports_label.setText(_("Reports: {path}", path=str(self.outcome.folder)))
        self.reports_label.show()
        self.open_reports_button.setVisible(self.outcome.folder.is_dir())

    def reconciliation_lines(self) -> list[str]:
        """The batch's reconciliation with the inventory, as ``naiad provision`` prints it (a recipe that neither
        keys nor registers units has none to do)."""
        if self.outcome is None:
            return []
        from provisioning.pipeline import reconciliation_lines

        lines = reconciliation_lines(self.outcome.batch)
        return lines or [_("This recipe neither keys nor registers units: no reconciliation with the inventory.")]

    def _close(self) -> None:
        self.hide()
        self.closed.emit()
