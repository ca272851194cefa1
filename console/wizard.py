"""The installer wizard: one unit at a shop counter, page by page, from plugging it in to the merchant's report.

Connect, update the firmware, check the camera, merchant and store, check face payment (then bind and activate),
subsidy enrollment, done.  Each page that does something runs its part of the built-in ``installer-onsite`` recipe
(with the site settings of the console's Settings) as a recipe of its own, ``installer-onsite/<part>``
(:func:`provisioning.recipes.load_recipe_part`), through the one pipeline (:func:`console.recipe_job.recipe_job`
on the console's workers).  The merchant is asked between the camera check and the face-pay check, whose test
payment goes to that store.  So the ledger knows which pages a unit has done: a wizard opened again for it (after
a console restart) goes to its first page not done, and a failed part tried again resumes from its failed step (same
part, same digest).  The pipeline waits up to two minutes for a unit that was unplugged; meanwhile the wizard says
plainly to plug it back in, and goes on when it is back.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, QUrl, pyqtSlot
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from enrollment.config import Merchant
from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Message, Observed, PhaseStarted, Progressed

from .platform_access import SecretField
from .recipe_job import RecipeRequest, recipe_job
from .unit_card import repolish
from .wizard_pages import (
    CAMERA,
    CONNECT,
    DONE,
    FACEPAY,
    FAILED,
    IDLE,
    MARKS,
    MERCHANT,
    PAGES,
    PARTS,
    RECIPE,
    RUNNING,
    SKIPPED,
    STYLE,
    SUBSIDY,
    SUCCEEDED,
    TITLES,
    UPDATE,
    CameraPage,
    ConnectPage,
    DonePage,
    FacePayWizardPage,
    MerchantPage,
    StepPage,
    SubsidyPage,
    UnitChoice,
    UpdatePage,
    WizardPage,
)
from .workers import Job

if TYPE_CHECKING:
    from provisioning.pipeline import BatchRun
    from provisioning.recipes import Recipe
    from provisioning.steps import StepOutcome

    from .context import ConsoleContext

LOG = logging.getLogger(__name__)

BUNDLE_SETTING = "firmware-update.bundle"
REPORTS_FOLDER = "reports"
SAVE_AGAIN = N_("Then press “Save a copy…” again and choose another place.")
REPORT_PREFERENCE = (".pdf", ".html")
"""The report file handed to the merchant: the PDF, else the HTML page."""


class WizardPartFailed(NaiadError):
    message = N_("The unit did not finish “{page}”")
    remedy = N_("Check that the unit is plugged in and started, then try again.")
    msgid_params = ("page",)


@dataclass(frozen=True)
class UnitProgress:
    """What the ledger says the wizard already did for a unit: the parts done, and the store it was bound to."""

    done: frozenset[str]
    merchant: Merchant | None


def part_recipe(key: str, overrides: Mapping[str, str]) -> Recipe:
    """The page ``key``'s part of ``installer-onsite`` as the ledger runs and counts it (a :class:`RecipeError` when
    the site settings do not let it run).  The update's name carries its settings' digest: a unit updated with one
    bundle is not "already done" for another bundle set later (the step leaves a unit that runs the bundle's
    version alone, so running it again costs a version read)."""
    from provisioning.recipes import load_recipe_part

    part = PARTS[key]
    recipe = load_recipe_part(RECIPE, part.name, part.steps, overrides)
    if key != UPDATE:
        return recipe
    return load_recipe_part(RECIPE, f"{part.name}-{recipe.digest[:12]}", part.steps, overrides)


def part_names(overrides: Mapping[str, str]) -> dict[str, str]:
    """Each page's part's recipe name with these site settings (a part that cannot run keeps its plain name)."""
    names = {}
    for key, part in PARTS.items():
        try:
            names[key] = part_recipe(key, overrides).name
        except NaiadError:
            names[key] = part.recipe_name
    return names


def read_progress(context: ConsoleContext, serial: str) -> UnitProgress:
    """On a worker: the unit's succeeded runs (by recipe name) and its latest binding's store, from the ledger."""
    ledger = context.stations.get().ledger
    done = frozenset(run.recipe for run in ledger.unit_runs(serial) if run.status == SUCCEEDED)
    merchant = None
    for step in reversed(ledger.unit_steps(serial)):
        if step.name == "bind" and step.status == SUCCEEDED and step.recipe.startswith(RECIPE):
            merchant_id, store_id = step.data.get("merchant_id"), step.data.get("store_id")
            if isinstance(merchant_id, str) and isinstance(store_id, str):
                merchant = Merchant(merchant_id, store_id)
                break
    return UnitProgress(done, merchant)


def reports_dir(context: ConsoleContext) -> Path:
    """Where the wizard's reports go: the settings' reports folder, else ``<data dir>/reports``."""
    from terminal.dirs import data_dir

    chosen = context.settings.reports_dir
    return Path(chosen) if chosen else data_dir() / REPORTS_FOLDER


def report_file(files: object) -> Path | None:
    """The report to hand over, of the files the report step wrote."""
    paths = [Path(f) for f in files if isinstance(f, str)] if isinstance(files, list) else []
    for suffix in REPORT_PREFERENCE:
        for path in paths:
            if path.suffix == suffix:
                return path
    return paths[0] if paths else None


class InstallerWizard(QWidget):
    """The installer's view: one unit, one page at a time, with Back, Next and Cancel."""

    def __init__(self, context: ConsoleContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("installerWizard")
        self.setStyleSheet(STYLE)
        self.context = context
        self.serial: str | None = None
        self.merchant: Merchant | None = None
        self.index = 0
        self.job: Job | None = None
        self.running: str | None = None  # the recipe name of the part the job runs
        self.looking_up: Job | None = None
        self.away = False  # the pipeline said the unit went away and waits for it
        self.started_at: float | None = None

        self.connect_page = ConnectPage()
        self.update_page = UpdatePage()
        self.camera_page = CameraPage()
        self.merchant_page = MerchantPage()
        self.facepay_page = FacePayWizardPage()
        self.subsidy_page = SubsidyPage()
        self.done_page = DonePage()
        self.pages: dict[str, WizardPage] = {
            CONNECT: self.connect_page,
            UPDATE: self.update_page,
            CAMERA: self.camera_page,
            MERCHANT: self.merchant_page,
            FACEPAY: self.facepay_page,
            SUBSIDY: self.subsidy_page,
            DONE: self.done_page,
        }
        self.stack = QStackedWidget()
        for key in PAGES:
            self.stack.addWidget(self.pages[key])
        self.trail = {key: QLabel() for key in PAGES}
        trail = QVBoxLayout()
        for key in PAGES:
            self.trail[key].setObjectName("wizardTrail")
            trail.addWidget(self.trail[key])
        trail.addStretch(1)
        self.unit_label = QLabel()
        self.unit_label.setObjectName("wizardUnit")
        self.banner = QLabel()
        self.banner.setObjectName("wizardBanner")
        self.banner.setWordWrap(True)
        for label in (self.unit_label, self.banner):
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.banner.hide()

        self.secret_row = QWidget()
        self.secret_caption = QLabel()
        self.secret_edit = SecretField()
        self.secret_edit.textChanged.connect(lambda _text: self._sync())
        secret = QHBoxLayout(self.secret_row)
        secret.setContentsMargins(0, 0, 0, 0)
        secret.addWidget(self.secret_caption)
        secret.addWidget(self.secret_edit, 1)
        self.secret_row.hide()

        self.back_button, self.next_button, self.cancel_button = QPushButton(), QPushButton(), QPushButton()
        self.back_button.setObjectName("wizardBack")
        self.next_button.setObjectName("wizardNext")
        self.cancel_button.setObjectName("wizardCancel")
        self.back_button.clicked.connect(self.back)
        self.next_button.clicked.connect(self.next)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.next_button)

        main = QVBoxLayout()
        main.addWidget(self.unit_label)
        main.addWidget(self.banner)
        main.addWidget(self.stack, 1)
        main.addWidget(self.secret_row)  # shown on the pages whose part signs platform calls
        main.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.addLayout(trail)
        layout.addLayout(main, 1)

        self.connect_page.chosen_changed.connect(self._sync)
        self.merchant_page.changed.connect(self._sync)
        self.subsidy_page.changed.connect(self._sync)
        for key in PARTS:
            page = self.pages[key]
            assert isinstance(page, StepPage)
            page.start_requested.connect(lambda key=key: self.start_part(key))
        self.done_page.open_requested.connect(self.open_report)
        self.done_page.save_requested.connect(self.save_report)
        self.done_page.another_requested.connect(self.cancel)
        context.bench.changed.connect(self._bench_changed)
        context.workers.busy_changed.connect(self._bench_changed)  # a unit freed by another job is choosable
        context.operator.changed.connect(self._operator_changed)
        context.settings_changed.connect(lambda _settings: self._enter(self.page_key))
        self._bench_changed()
        self.retranslate()

    # -- where we are ----------------------------------------------------------------------------------------

    @property
    def page_key(self) -> str:
        return PAGES[self.index]

    @property
    def page(self) -> WizardPage:
        return self.pages[self.page_key]

    def busy(self) -> bool:
        return self.job is not None or self.looking_up is not None

    def unit_attached(self) -> bool:
        card = None if self.serial is None else self.context.bench.card(self.serial)
        return card is not None and card.connected

    # -- navigation -------------------------------------------------------------------------------------------

    def next(self) -> None:
        if self.busy() or not self.page.ready():
            return
        if self.page_key == CONNECT:
            chosen = self.connect_page.chosen()
            if chosen is not None:
                self._look_up(chosen)
            return
        if self.page_key == MERCHANT:
            self._choose_merchant(self.merchant_page.merchant())
        if self.index < len(PAGES) - 1:
            self._go(self.index + 1)

    def back(self) -> None:
        if not self.busy() and self.index > 0:
            self._go(self.index - 1)

    def cancel(self) -> None:
        """Leave this unit (what was done stays in the ledger: opening the wizard for it again goes on)."""
        if self.busy():
            return
        self.serial = self.merchant = None
        self.away = False
        self.started_at = None
        self.secret_edit.forget()
        for key in PARTS:
            page = self.pages[key]
            assert isinstance(page, StepPage)
            page.reset()
        self.facepay_page.forget_frames()
        self.merchant_page.set_merchant(None)
        self.merchant_page.set_locked(False)
        self.subsidy_page.program_edit.clear()
        self._go(0)
        self._bench_changed()

    def _go(self, index: int) -> None:
        self.index = index
        self.stack.setCurrentIndex(index)
        self._enter(self.page_key)

    def _enter(self, key: str) -> None:
        """A page is shown: give it what it needs, and start what starts by itself (the report)."""
        if key != self.page_key:
            return
        if key == UPDATE:
            bundle = self.context.settings.overrides(RECIPE).get(BUNDLE_SETTING)
            self.update_page.set_bundle(bundle or None)
        elif key == MERCHANT:
            self.merchant_page.set_locked(self.facepay_page.state == SUCCEEDED)  # bound: done by name in the ledger
        elif key == FACEPAY:
            self.facepay_page.serial = self.serial
            self.facepay_page.set_merchant(self.merchant)
        self.secret_row.setVisible(self._needs_secret(key))
        if key == DONE and self.done_page.state == IDLE and self.serial is not None:
            self.start_part(DONE)
        self._sync()

    def _choose_merchant(self, merchant: Merchant | None) -> None:
        if merchant != self.merchant and self.facepay_page.state != RUNNING:
            self.merchant = merchant
            if self.facepay_page.state != IDLE:  # another store: the check, bind and activate are for it anew
                self.facepay_page.reset()

    # -- the unit ------------------------------------------------------------------------------------------------

    def _look_up(self, serial: str) -> None:
        """Read what the ledger knows of the unit (on a worker), then go to its first page not done."""
        context = self.context
        overrides = context.settings.overrides(RECIPE)

        def look_up(_listener: object) -> tuple[UnitProgress, dict[str, str]]:
            return read_progress(context, serial), part_names(overrides)

        job = Job(look_up, name="wizard look-up")
        job.succeeded.connect(lambda found: self._looked_up(serial, *found))
        job.failed.connect(self._look_up_failed)
        self.looking_up = job
        self.connect_page.set_status(N_("Looking the unit up…"))
        try:
            context.workers.start(job)
        except NaiadError as exc:
            self._look_up_failed(exc)
        self._sync()

    def _look_up_failed(self, error: BaseException) -> None:
        self.looking_up = None
        self.connect_page.set_error(error)
        self._sync()

    def _looked_up(self, serial: str, progress: UnitProgress, names: Mapping[str, str]) -> None:
        self.looking_up = None
        self.serial = serial
        self.started_at = time.monotonic()
        whole = RECIPE in progress.done  # the whole recipe run by `naiad provision`
        for key, part in PARTS.items():
            page = self.pages[key]
            assert isinstance(page, StepPage)
            if (whole or names.get(key, part.recipe_name) in progress.done) and key != DONE:
                page.mark_done_before()
            else:
                page.reset()
        self.merchant = progress.merchant
        self.merchant_page.set_merchant(progress.merchant)
        self.connect_page.set_status(None)
        done = ", ".join(sorted(progress.done)) or "-"
        LOG.info("%s", _("Installer wizard: unit {serial}, parts done before: {parts}", serial=serial, parts=done))
        self._go(self._first_not_done())

    def _first_not_done(self) -> int:
        for index, key in enumerate(PAGES):
            if key == CONNECT:
                continue
            if key == MERCHANT:
                if self.merchant is None or self.facepay_page.state != SUCCEEDED:
                    return index
                continue
            page = self.pages[key]
            if key == DONE or not (isinstance(page, StepPage) and page.state == SUCCEEDED):
                return index
        return len(PAGES) - 1

    @pyqtSlot()
    def _bench_changed(self) -> None:
        """The bench changed: the connect page's list, and whether the chosen unit is away."""
        bench, workers = self.context.bench, self.context.workers
        units = []
        for card in bench.cards():
            if not card.connected:
                continue
            device = card.device
            waiting = None
            if card.serial.startswith("@"):
                waiting = N_("its serial number cannot be read: see the bench")
            elif card.mode != "run":
                waiting = N_("starting up: wait a moment")
            elif workers.busy(card.serial) and card.serial != self.serial:
                waiting = N_("busy with other work")
            units.append(UnitChoice(card.serial, device.model_name or device.model, str(device.path), waiting))
        self.connect_page.set_units(units)
        if self.unit_attached():
            self.away = False  # back (the pipeline goes on by itself)
        self._draw_banner()
        self._sync()

    def _draw_banner(self) -> None:
        # while a part runs, the unit restarts by itself (a flash): only the pipeline's word that it went away counts
        gone = self.away or (self.job is None and not self.unit_attached())
        away = self.serial is not None and self.index > 0 and gone
        if away:
            text = _("The unit was unplugged: plug it back in.")
            if self.job is not None:
                text += " " + _("The wizard waits up to two minutes and goes on by itself once it is back.")
            self.banner.setText(text)
        self.banner.setVisible(away)

    def _operator_changed(self) -> None:
        if self.context.operator.session is None:
            self.secret_edit.forget()
            if not self.busy():
                self.cancel()

    # -- running a page's part -------------------------------------------------------------------------------

    def _needs_secret(self, key: str) -> bool:
        from provisioning.steps import needed

        part = PARTS.get(key)
        return part is not None and bool(needed(part.steps) & {"store", "outbox"})

    def start_part(self, key: str) -> None:
        """Run the page's part on the unit, as the recipe ``installer-onsite/<part>``."""
        page = self.pages[key]
        assert isinstance(page, StepPage)
        if self.busy() or self.serial is None or not self._may_start(key):
            return
        part = PARTS[key]
        try:
            recipe = part_recipe(key, self.context.settings.overrides(RECIPE))
        except NaiadError as exc:
            page.state = FAILED
            page.set_error(exc)
            page.retranslate()
            self._sync()
            return
        request = RecipeRequest(
            recipe=recipe,
            serials=(self.serial,),
            secret=self.secret_edit.text() if self._needs_secret(key) else "",
            merchant=self.merchant if key == FACEPAY else None,
            program=self.subsidy_page.program() if key == SUBSIDY else None,
            reports_dir=reports_dir(self.context) if key == DONE else None,
        )
        from .facepay_run import FaceColouring  # the face-pay page's depth pictures, coloured on the worker

        job = recipe_job(
            self.context, request, name=f"wizard {part.name}", listen=FaceColouring if key == FACEPAY else None
        )
        if key == FACEPAY:
            job.observed.connect(self._on_observed)
        job.phase_started.connect(self._on_phase_started)
        job.progressed.connect(self._on_progressed)
        job.message.connect(self._on_message)
        job.succeeded.connect(lambda batch: self._part_ended(key, batch, None))
        job.failed.connect(lambda error: self._part_ended(key, None, error))
        self.context.bench.follow(job)
        try:
            self.context.workers.start(job)
        except NaiadError as exc:
            page.state = FAILED
            page.set_error(exc)
            page.retranslate()
            self._sync()
            return
        self.job = job
        self.running = recipe.name
        self.away = False
        page.begin()
        LOG.info("%s", _("Installer wizard: {recipe} started on {serial}", recipe=recipe.name, serial=self.serial))
        self._sync()

    def _may_start(self, key: str) -> bool:
        if not self.unit_attached():
            return False
        if self._needs_secret(key) and self.secret_edit.missing():
            return False
        if key == FACEPAY and self.merchant is None:
            return False
        if key == SUBSIDY and self.subsidy_page.program_problem() is not None:
            return False
        return not (key == UPDATE and self.update_page.state == SKIPPED)

    def _part_ended(self, key: str, batch: BatchRun | None, error: BaseException | None) -> None:
        self.job = None
        ran, self.running = self.running, None
        self.away = False
        page = self.pages[key]
        assert isinstance(page, StepPage)
        outcomes: list[StepOutcome] = []
        if batch is not None:
            unit = batch.units[0]
            outcomes = list(unit.steps)
            if not unit.ok:
                error = unit.error or WizardPartFailed(page=TITLES[key])
        page.end(outcomes, error)
        if key == DONE and error is None:
            self._report_written(outcomes)
        seconds = "?" if self.started_at is None else f"{time.monotonic() - self.started_at:.1f}"
        ended = (
            N_("Installer wizard: {recipe} on {serial} failed, {seconds} s after Connect")
            if error
            else N_("Installer wizard: {recipe} on {serial} done, {seconds} s after Connect")
        )
        LOG.info("%s", _(ended, recipe=ran, serial=self.serial, seconds=seconds))
        self._draw_banner()
        self._sync()

    def _report_written(self, outcomes: Sequence[StepOutcome]) -> None:
        files = next((o.data.get("files") for o in outcomes if o.step == "report"), None)
        merchant = self.merchant
        summary: tuple[str, dict[str, object]] = (
            (N_("Unit {serial} is installed."), {"serial": self.serial})
            if merchant is None
            else (
                N_("Unit {serial} is installed and live at merchant {merchant}, store {store}."),
                {"serial": self.serial, "merchant": merchant.merchant_id, "store": merchant.store_id},
            )
        )
        self.done_page.set_report(report_file(files), summary)
        self.done_page.set_status(N_("The report is written."))

    @pyqtSlot(PhaseStarted)
    def _on_phase_started(self, event: PhaseStarted) -> None:
        if event.unit != self.serial or self.job is None:
            return
        page = self.page
        if isinstance(page, StepPage) and event.step == self.running:
            self.away = False  # the pipeline goes on: the unit is back
            page.phase(event.phase, event.label)
            self._draw_banner()

    @pyqtSlot(Progressed)
    def _on_progressed(self, event: Progressed) -> None:
        page = self.page
        if event.unit == self.serial and isinstance(page, StepPage) and event.step != self.running:
            page.show_progress(event.done, event.total)

    @pyqtSlot(Message)
    def _on_message(self, event: Message) -> None:
        page = self.page
        if event.unit != self.serial or not isinstance(page, StepPage):
            return
        if event.step == self.running:  # the pipeline's only message: the unit went away, it waits
            self.away = True
            self._draw_banner()
        else:
            page.show_message(event.text)

    @pyqtSlot(Observed)
    def _on_observed(self, event: Observed) -> None:
        self.facepay_page.observed(event)

    # -- the report --------------------------------------------------------------------------------------------

    def open_report(self) -> None:
        report = self.done_page.report
        if report is not None and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(report))):
            self.done_page.set_status(
                N_("No program on this computer opens {name}: save a copy and open it on another."),
                failed=True,
                name=report.name,
            )

    def save_report(self) -> None:
        report = self.done_page.report
        if report is None or self.busy():
            return
        chosen, _filter = QFileDialog.getSaveFileName(
            self, _("Save a copy of the report"), str(Path.home() / report.name), f"*{report.suffix}"
        )
        if not chosen:
            return
        target = Path(chosen)

        def copy(_listener: object) -> Path:
            from provisioning.reports import ReportNotWritten

            try:
                shutil.copyfile(report, target)
            except OSError as exc:  # a folder, no right to write, no room, the report itself
                reason = exc.strerror or _("it is not a file that can be written")
                raise ReportNotWritten(path=str(target), reason=reason) from exc
            return target

        job = Job(copy, name="wizard report copy")
        job.succeeded.connect(self.done_page.saved)
        job.failed.connect(lambda error: self.done_page.set_error(error, SAVE_AGAIN))
        try:
            self.context.workers.start(job)
        except NaiadError as exc:
            self.done_page.set_error(exc, SAVE_AGAIN)

    # -- drawing -----------------------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Buttons and marks as the state now allows."""
        busy = self.busy()
        key = self.page_key
        page = self.page
        self.back_button.setEnabled(self.index > 0 and not busy)
        self.next_button.setVisible(key != DONE)
        self.next_button.setEnabled(not busy and page.ready() and (key == CONNECT or self.unit_attached()))
        self.cancel_button.setEnabled(not busy and (self.index > 0 or self.serial is not None))
        for step_key in PARTS:
            step_page = self.pages[step_key]
            assert isinstance(step_page, StepPage)
            step_page.start_button.setEnabled(not busy and self._may_start(step_key))
        self.done_page.another_button.setEnabled(not busy)
        self.done_page.save_button.setEnabled(not busy and self.done_page.report is not None)
        self.unit_label.setText(_("Unit: {serial}", serial=self.serial) if self.serial else "")
        self.cancel_button.setText(_("Cancel") if key != DONE else _("Close"))
        self._draw_trail()

    def _draw_trail(self) -> None:
        for index, key in enumerate(PAGES):
            page = self.pages[key]
            state = page.state if isinstance(page, StepPage) else (SUCCEEDED if index < self.index else IDLE)
            if key == MERCHANT and self.merchant is not None and index != self.index:
                state = SUCCEEDED
            if key == CONNECT and self.serial is not None:
                state = SUCCEEDED
            label = self.trail[key]
            label.setText(f"{MARKS[state]}  {index + 1}. {_(TITLES[key])}")
            label.setProperty("current", index == self.index)
            repolish(label)

    def retranslate(self) -> None:
        for page in self.pages.values():
            page.retranslate()
        self.secret_caption.setText(self.secret_edit.caption())
        self.secret_edit.retranslate()
        self.back_button.setText(_("Back"))
        self.next_button.setText(_("Next"))
        self._draw_banner()
        self._sync()


__all__ = ["InstallerWizard", "UnitProgress", "WizardPartFailed", "read_progress", "report_file", "reports_dir"]
