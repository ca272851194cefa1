"""The support desk: find a returned unit by its serial or its label's QR text, read its whole history from the
ledger, run the read-only ``support-diagnose`` recipe on it, see the verdict and what to do, export its report.

For the roles :data:`console.access.VIEW_ROLES` gives the desk (support engineers and operators).  Everything
slow runs as a job on the console's workers: the history is read from the ledger, the diagnosis runs through
:func:`console.recipe_job.recipe_job` (no key store: every step is read-only), and the report is written by
:func:`provisioning.reports.write_report` in the format the chosen file's suffix names.  A scanner types the QR
text into the find field and presses Enter.  Input that is not a serial or a label is refused with its reason and
changes nothing on screen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _
from terminal.errors import NaiadError

from .access import may_run
from .context import ConsoleContext
from .history_view import HistoryView
from .support_diagnosis import RECIPE, DiagnosisPanel
from .unit_card import error_texts
from .workers import Job

if TYPE_CHECKING:
    from provisioning.history import UnitHistory
    from provisioning.pipeline import BatchRun
    from provisioning.recipes import Recipe
    from terminal.events import PhaseStarted, Progressed

LOG = logging.getLogger(__name__)

LABEL_PREFIX = "NAIAD"
REPORT_SUFFIXES = (".pdf", ".html", ".json", ".csv")


class UnitNotRecognised(NaiadError):
    message = N_("'{text}' is not a unit's serial or the text of its label's QR code")
    remedy = N_(
        "Type the serial printed on the unit's label (letters, digits, '.', '_', ':' and '-'), or scan the "
        "label's QR code again."
    )


class UnitNotAttached(NaiadError):
    message = N_("Unit {serial} is not attached to this station")
    remedy = N_("Plug the unit in with a USB cable; it shows on the bench when the station sees it.")


class ReportPathInvalid(NaiadError):
    message = N_("A report cannot be written as '{name}'")
    remedy = N_("Name the file with one of: .pdf, .html, .json, .csv.")


def unit_serial(text: str) -> str:
    """The serial ``text`` names: a serial as typed, or a label's QR text (``NAIAD1;S=...``); else
    :class:`UnitNotRecognised`."""
    from provisioning.labels import parse_label_text
    from provisioning.ledger.validate import serial as valid_serial

    typed = text.strip()
    shown = "".join(c if c.isprintable() else "?" for c in typed[:40]) + ("…" if len(typed) > 40 else "")
    try:
        if typed.upper().startswith(LABEL_PREFIX) or ";" in typed:
            return parse_label_text(typed)[0]
        return valid_serial(typed)
    except NaiadError as exc:
        raise UnitNotRecognised(text=shown) from exc


class SupportDesk(QWidget):
    """The support desk view (GUI thread only).  :meth:`find_unit`, :meth:`diagnose` and :meth:`export_report` return
    the job they started (None when they refused, with the reason on screen)."""

    def __init__(self, context: ConsoleContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.serial: str | None = None
        """The unit found (its history shown, the diagnosis and the report are of it)."""
        self.history_data: UnitHistory | None = None
        self._status: tuple[str, dict[str, str]] | BaseException = ("", {})
        self._history_job: Job | None = None
        self._diagnosis_job: Job | None = None
        self._export_job: Job | None = None
        self._may_diagnose = False

        self.find_label = QLabel()
        self.find_field = QLineEdit()
        self.find_field.setObjectName("supportFind")
        self.find_field.setClearButtonEnabled(True)
        self.find_field.returnPressed.connect(lambda: self.find_unit())
        self.find_label.setBuddy(self.find_field)
        self.find_button = QPushButton()
        self.find_button.setObjectName("supportFindButton")
        self.find_button.clicked.connect(lambda _checked=False: self.find_unit())
        self.bench_label = QLabel()
        self.bench_units = QComboBox()
        self.bench_units.setObjectName("supportBenchUnits")
        self.bench_units.setMinimumContentsLength(14)
        self.bench_units.activated.connect(self._bench_unit_chosen)
        self.status = QLabel()
        self.status.setObjectName("supportStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # errors carry unit, platform and scanned text
        self.unit_title = QLabel()
        self.unit_title.setObjectName("supportUnit")
        self.unit_title.setTextFormat(Qt.TextFormat.PlainText)
        self.unit_title.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.diagnose_button = QPushButton()
        self.diagnose_button.setObjectName("supportDiagnose")
        self.diagnose_button.clicked.connect(lambda _checked=False: self.diagnose())
        self.export_button = QPushButton()
        self.export_button.setObjectName("supportExport")
        self.export_button.clicked.connect(lambda _checked=False: self.export_report())
        self.history = HistoryView()
        self.diagnosis = DiagnosisPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.history, "")
        self.tabs.addTab(self.diagnosis, "")

        find_row = QHBoxLayout()
        find_row.addWidget(self.find_label)
        find_row.addWidget(self.find_field, 1)
        find_row.addWidget(self.find_button)
        find_row.addSpacing(16)
        find_row.addWidget(self.bench_label)
        find_row.addWidget(self.bench_units)
        unit_row = QHBoxLayout()
        unit_row.addWidget(self.unit_title, 1)
        unit_row.addWidget(self.diagnose_button)
        unit_row.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(find_row)
        layout.addWidget(self.status)
        layout.addLayout(unit_row)
        layout.addWidget(self.tabs, 1)

        context.bench.changed.connect(self._sync)
        context.workers.busy_changed.connect(self._sync)
        context.operator.changed.connect(self._operator_changed)
        context.settings_changed.connect(self._settings_changed)
        self.retranslate()

    # -- find ----------------------------------------------------------------------------------------------

    def find_unit(self, text: str | None = None) -> Job | None:
        """Find the unit the field (or ``text``) names and read its history; refused input changes nothing."""
        if text is not None:
            self.find_field.setText(text)
        try:
            serial = unit_serial(self.find_field.text())
        except NaiadError as exc:
            self._error(exc)
            return None
        self.find_field.setText(serial)
        if serial != self.serial:
            self.diagnosis.clear()
            self.history.show_history(None)
            self.history_data = None
        self.serial = serial
        self._note(N_("Reading the history of {serial}…"), serial=serial)
        self._sync()
        return self._read_history(serial)

    def _bench_unit_chosen(self, index: int) -> None:
        serial = self.bench_units.itemData(index)
        if serial:
            self.find_unit(str(serial))

    def _read_history(self, serial: str) -> Job | None:
        if self._history_job is not None:
            self._history_job.cancel()  # another unit asked for since: its answer is not wanted
        stations = self.context.stations

        def read(_listener: object) -> UnitHistory:
            from provisioning.history import unit_history

            return unit_history(stations.get().ledger, serial)

        job = Job(read, name="unit history")
        job.succeeded.connect(lambda history, job=job: self._history_read(job, history))
        job.failed.connect(lambda error, job=job: self._job_failed(job, error))
        return self._start(job, "_history_job")

    def _history_read(self, job: Job, history: UnitHistory) -> None:
        if job is not self._history_job or history.serial != self.serial:
            return
        self._history_job = None
        self.history_data = history
        self.history.show_history(history)
        if history.known:
            self._note()
        else:
            from provisioning.history import UnknownUnitHistory

            self._error(UnknownUnitHistory(serial=history.serial))
        self._sync()

    # -- diagnose ------------------------------------------------------------------------------------------

    def recipe(self) -> Recipe:
        """``support-diagnose`` with this station's site settings for it."""
        from provisioning.recipes import load_recipe

        return load_recipe(RECIPE, self.context.settings.overrides(RECIPE))

    def _operator_changed(self) -> None:
        if self.context.operator.session is None:  # logged out: the next person starts afresh
            self.serial, self.history_data = None, None
            self.history.show_history(None)
            self.diagnosis.clear()
            self.find_field.clear()
            self._note()
        self._settings_changed()

    def _settings_changed(self, _settings: object = None) -> None:
        """Whether the operator may run the recipe (its site settings may change it): worked out here, not at
        every bench change."""
        session = self.context.operator.session
        try:
            self._may_diagnose = session is not None and may_run(session, self.recipe())
        except NaiadError:
            self._may_diagnose = False
        self._sync()

    def attached(self, serial: str) -> bool:
        card = self.context.bench.card(serial)
        return card is not None and card.connected

    def diagnose(self) -> Job | None:
        """Run ``support-diagnose`` on the unit found; it must be attached and idle."""
        serial = self.serial
        if serial is None or self._diagnosis_job is not None or not self._may_diagnose:
            return None
        if not self.attached(serial):
            self._error(UnitNotAttached(serial=serial))
            return None
        from .recipe_job import RecipeRequest, recipe_job

        try:
            request = RecipeRequest(recipe=self.recipe(), serials=(serial,))
        except NaiadError as exc:
            self._error(exc)
            return None
        job = recipe_job(self.context, request, name=RECIPE)
        job.phase_started.connect(lambda event: self._diagnosis_phase(serial, event))
        job.progressed.connect(lambda event: self._diagnosis_progress(serial, event))
        job.succeeded.connect(lambda batch, job=job: self._diagnosed(job, batch))
        job.failed.connect(lambda error: self._diagnosis_failed(serial, error))
        started = self._start(job, "_diagnosis_job")
        if started is not None:
            self.diagnosis.started()
            self.tabs.setCurrentWidget(self.diagnosis)
            self._note(N_("Diagnosing {serial}…"), serial=serial)
            self._sync()
        return started

    def _diagnosis_phase(self, serial: str, event: PhaseStarted) -> None:
        if serial == self.serial:  # still the unit on screen
            self.diagnosis.phase_started(event)

    def _diagnosis_progress(self, serial: str, event: Progressed) -> None:
        if serial == self.serial:
            self.diagnosis.progressed(event)

    def _diagnosed(self, job: Job, batch: BatchRun) -> None:
        self._diagnosis_job = None
        run = next((u for u in batch.units if u.serial == self.serial), None)
        if run is not None:
            self.diagnosis.show_run(run)
            self._note()
            verdict = self.diagnosis.verdict_data().get("verdict_text") or run.result
            LOG.info("%s", _("Diagnosed {serial}: {verdict}", serial=run.serial, verdict=verdict))
        self._sync()
        if self.serial is not None:
            self._read_history(self.serial)  # the run and its checks are in the ledger now

    def _diagnosis_failed(self, serial: str, error: BaseException) -> None:
        self._diagnosis_job = None
        if serial == self.serial:  # else the person moved on to another unit; the log pane has it
            self.diagnosis.show_error(error)
            self._error(error)
        message, _remedy = error_texts(error)
        LOG.warning("%s", _("The diagnosis of {serial} could not run: {problem}", serial=serial, problem=message))
        self._sync()

    # -- export --------------------------------------------------------------------------------------------

    def export_report(self, path: Path | str | None = None) -> Job | None:
        """Write the unit's report to ``path`` (None: ask), in the format its suffix names."""
        serial = self.serial
        if serial is None:
            return None
        if path is None:
            path = self._ask_report_path(serial)
            if path is None:
                return None
        target = Path(path).expanduser()
        if target.suffix.lower() not in REPORT_SUFFIXES or not target.stem:
            self._error(ReportPathInvalid(name=target.name or str(path)))
            return None
        stations = self.context.stations

        def write(_listener: object) -> Path:
            from provisioning.reports import write_report

            return write_report(stations.get().ledger, serial, target)

        job = Job(write, name="unit report")
        job.succeeded.connect(lambda written, job=job: self._exported(job, written))
        job.failed.connect(lambda error, job=job: self._job_failed(job, error))
        started = self._start(job, "_export_job")
        if started is not None:
            self._note(N_("Writing the report to {path}…"), path=str(target))
            self._sync()
        return started

    def _ask_report_path(self, serial: str) -> Path | None:
        folder = Path(self.context.settings.reports_dir or Path.home())
        chosen, _filter = QFileDialog.getSaveFileName(
            self,
            _("Export the report of {serial}", serial=serial),
            str(folder / f"{serial}-report.pdf"),
            _("Reports (*.pdf *.html *.json *.csv)"),
        )
        return Path(chosen) if chosen else None

    def _exported(self, job: Job, written: Path) -> None:
        if job is self._export_job:
            self._export_job = None
        self._note(N_("Report written to {path}"), path=str(written))
        LOG.info("%s", _("Report written to {path}", path=str(written)))
        self._sync()

    # -- shared --------------------------------------------------------------------------------------------

    def _start(self, job: Job, slot: str) -> Job | None:
        try:
            self.context.workers.start(job)
        except NaiadError as exc:
            self._error(exc)
            return None
        setattr(self, slot, job)
        return job

    def _job_failed(self, job: Job, error: BaseException) -> None:
        for slot in ("_history_job", "_export_job"):
            if getattr(self, slot) is job:
                setattr(self, slot, None)
        self._error(error)
        self._sync()

    def _note(self, msgid: str = "", **params: str) -> None:
        """A plain note on the status line (``msgid``: N_-marked, re-translated on a language switch)."""
        self._status = (msgid, params)
        self._draw_status()

    def _error(self, error: BaseException) -> None:
        """An error and its remedy on the status line."""
        self._status = error
        self._draw_status()

    def _draw_status(self) -> None:
        shown = self._status
        if isinstance(shown, BaseException):
            message, remedy = error_texts(shown)
            self.status.setText(f"{message}\n{remedy}" if remedy else message)
            self.status.setStyleSheet("color: #c62828;")
        else:
            msgid, params = shown
            self.status.setText(_(msgid, **params) if msgid else "")
            self.status.setStyleSheet("")

    def _sync(self) -> None:
        """Buttons, the unit's title and the bench's units, after anything changed."""
        self._fill_bench_units()
        serial = self.serial
        self.diagnose_button.setVisible(self._may_diagnose)
        idle = serial is not None and not self.context.workers.busy(serial) and self._diagnosis_job is None
        self.diagnose_button.setEnabled(idle and serial is not None and self.attached(serial))
        self.export_button.setEnabled(serial is not None and self._export_job is None)
        if serial is None:
            self.unit_title.setText(_("No unit chosen"))
        elif self.attached(serial):
            self.unit_title.setText(_("Unit {serial} (attached)", serial=serial))
        else:
            self.unit_title.setText(_("Unit {serial} (not attached)", serial=serial))

    def _fill_bench_units(self) -> None:
        wanted = [card.serial for card in self.context.bench.cards() if card.connected]
        have = [self.bench_units.itemData(i) for i in range(1, self.bench_units.count())]
        if wanted == have and self.bench_units.count():
            return
        self.bench_units.blockSignals(True)
        self.bench_units.clear()
        self.bench_units.addItem(_("Choose a unit…"), "")
        for serial in wanted:
            self.bench_units.addItem(serial, serial)
        self.bench_units.setCurrentIndex(0)
        self.bench_units.blockSignals(False)

    def retranslate(self) -> None:
        self.find_label.setText(_("Serial or label:"))
        self.find_field.setPlaceholderText(_("Type the serial and press Enter, or scan the label's QR code"))
        self.find_button.setText(_("Find"))
        self.bench_label.setText(_("On the bench:"))
        self.diagnose_button.setText(_("Run diagnosis"))
        self.diagnose_button.setToolTip(_("Check the unit without changing it, then say what is wrong and what to do"))
        self.export_button.setText(_("Export report…"))
        self.export_button.setToolTip(_("Write the unit's report as PDF, HTML, JSON or CSV"))
        self.tabs.setTabText(0, _("History"))
        self.tabs.setTabText(1, _("Diagnosis"))
        self.bench_units.clear()  # refilled in the new language
        self.history.retranslate()
        self.diagnosis.retranslate()
        self._draw_status()
        self._settings_changed()
