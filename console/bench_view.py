"""The bench view: choose a recipe and its site settings, tick units (or none: all attached), Start; one card per
unit follows its run, and a batch summary comes at the end.

A run is one :func:`console.recipe_job.recipe_job` on the workers, followed by the bench's cards
(:meth:`console.unit_card.Bench.follow`).  The batch report is written on the same worker after the run
(:func:`console.station_resources.write_reports`), so the GUI thread never touches the ledger or a file of the run.
The recipes offered are the built-ins the logged-in operator may run (:func:`console.access.may_run`) and any
recipe file opened; a recipe file that is wrong shows its error with its line, and nothing starts.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import StepFinished

from .access import may_run
from .batch_summary import BatchSummary, BenchOutcome, failed_step_label
from .context import ConsoleContext
from .platform_access import SecretField
from .recipe_form import RECIPE_FILE_FILTER, RecipeForm
from .unit_card import error_texts, repolish
from .workers import Job

if TYPE_CHECKING:
    from provisioning.pipeline import BatchRun, UnitRun
    from provisioning.recipes import Recipe

    from .recipe_job import RecipeRequest

LOG = logging.getLogger(__name__)

OPEN_FILE = "\0open"
"""The chooser's data of its "Open recipe file…" entry (no recipe source starts with a NUL)."""
WAITING = N_("Waiting to start…")
SUCCEEDED = N_("Done: {recipe}")
ALREADY_DONE = N_("Already done earlier: {recipe}")
HELD_ELSEWHERE = N_("Another station is working on this unit")
SHORTCUTS: dict[str, str] = {
    "start": "Ctrl+Return",
    "select_all": "Ctrl+A",
    "select_none": "Ctrl+Shift+A",
    "open_reports": "Ctrl+Shift+R",
    "choose_recipe": "Ctrl+R",
    "open_recipe": "Ctrl+O",
}
"""The bench's keyboard shortcuts (docs/console.md lists them)."""
SAVE_DELAY_MS = 600
"""Site settings are saved this long after the last keystroke."""
CARDS_MIN_HEIGHT = 190
"""The cards keep at least one row of their own height when the settings and the summary are shown."""


class BenchRunRefused(NaiadError):
    """Start pressed when the bench cannot start."""


class NoUnitsToStart(BenchRunRefused):
    message = N_("There is no unit to start on")
    remedy = N_("Plug units in and wait until their cards show Connected or Bootloader, then press Start.")


class RecipeNotAllowed(BenchRunRefused):
    message = N_("Your role may not run the recipe {recipe}")
    remedy = N_("Log in as an operator whose role runs every step of it.")


def bench_job(context: ConsoleContext, request: RecipeRequest, folder: Path) -> Job:
    """The recipe job of ``request``, then the batch's report written in ``folder``, both on the worker; its result
    is a :class:`BenchOutcome`."""
    from .recipe_job import recipe_job
    from .station_resources import write_reports

    stations = context.stations

    def report(batch: BatchRun) -> BenchOutcome:
        files, error = write_reports(batch, stations.get(), folder, as_json=True)
        return BenchOutcome(batch, folder, files, error)

    return recipe_job(context, request, name="bench", then=report)


class SecretDialog(QDialog):
    """Asks the key store's passphrase or PIN (hidden) before a run that needs the key store."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(_("Unlock the key store"))
        self.field = SecretField()
        self.field.retranslate()
        explain = QLabel(_("The recipe injects keys or signs for the platform: the key store must be unlocked."))
        explain.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.field.caption(), self.field)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def take(self) -> str:
        """The secret typed, and the field emptied."""
        secret = self.field.text()
        self.field.forget()
        return secret


class BenchView(QWidget):
    """The recipe bar, the selection and Start, the cards, and the summary of the last run (GUI thread only)."""

    def __init__(self, context: ConsoleContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.bench = context.bench
        self.job: Job | None = None
        """The last run started (None once it ended)."""
        self.runs: dict[Job, tuple[str, tuple[str, ...]]] = {}
        """The runs going on: each job's recipe and units (another run may start on units left free)."""
        self.recipe: Recipe | None = None
        self.outcome: BenchOutcome | None = None
        self._files: list[str] = []  # recipe files opened, in order
        self._error: BaseException | None = None  # the chosen recipe's error (shown; Start stays off)
        self.ask_secret: Callable[[], str | None] = self._ask_secret
        """Asks the key store's secret ("" or None: not given); tests replace it."""

        self.recipe_caption = QLabel()
        self.recipe_box = QComboBox()
        self.recipe_box.setObjectName("recipeChooser")
        self.recipe_box.setMinimumContentsLength(24)
        self.recipe_caption.setBuddy(self.recipe_box)
        self.recipe_box.activated.connect(self._on_chosen)
        self.description = QLabel()
        self.description.setObjectName("recipeDescription")
        self.description.setWordWrap(True)
        self.form = RecipeForm()
        self.form.edited.connect(self._on_form_edited)
        self.settings_box = QGroupBox()
        self.settings_box.setCheckable(True)  # its tick folds the form away, so the cards keep their room
        self.settings_box.toggled.connect(self.form.setVisible)
        box_layout = QVBoxLayout(self.settings_box)
        box_layout.addWidget(self.form)
        self.recipe_error = QLabel()
        self.recipe_error.setObjectName("recipeError")
        self.recipe_error.setWordWrap(True)
        self.recipe_error.setProperty("failed", True)
        self.recipe_error.setStyleSheet("color: #b71c1c;")
        self.recipe_error.hide()
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_settings)

        self.select_all_button = QPushButton()
        self.select_all_button.setObjectName("selectAll")
        self.select_all_button.clicked.connect(self.bench.select_all)
        self.select_none_button = QPushButton()
        self.select_none_button.setObjectName("selectNone")
        self.select_none_button.clicked.connect(self.bench.select_none)
        self.start_button = QPushButton()
        self.start_button.setObjectName("startRun")
        self.start_button.clicked.connect(lambda _checked=False: self.start())
        self.status = QLabel()
        self.status.setObjectName("benchStatus")
        self.summary = BatchSummary()

        self.actions_by_name: dict[str, QAction] = {}
        for name, handler in (
            ("start", lambda: self.start()),
            ("select_all", self.bench.select_all),
            ("select_none", self.bench.select_none),
            ("open_reports", self.summary.open_reports),
            ("choose_recipe", self._focus_chooser),
            ("open_recipe", lambda: self.choose_recipe_file()),
        ):
            action = QAction(self)
            action.setObjectName(f"bench:{name}")
            action.setShortcut(QKeySequence(SHORTCUTS[name]))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _checked=False, handler=handler: handler())
            self.addAction(action)
            self.actions_by_name[name] = action

        bar = QHBoxLayout()
        bar.addWidget(self.recipe_caption)
        bar.addWidget(self.recipe_box)
        bar.addWidget(self.description, 1)
        selection = QHBoxLayout()
        selection.addWidget(self.select_all_button)
        selection.addWidget(self.select_none_button)
        selection.addWidget(self.status, 1)
        selection.addWidget(self.start_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.settings_box)
        layout.addWidget(self.recipe_error)
        layout.addLayout(selection)
        self.bench.setMinimumHeight(CARDS_MIN_HEIGHT)
        layout.addWidget(self.bench, 1)
        layout.addWidget(self.summary)

        context.operator.changed.connect(self.refresh_recipes)
        self.bench.selection_changed.connect(self._sync_start)
        self.bench.changed.connect(self._sync_start)
        context.workers.busy_changed.connect(self._sync_start)
        self.refresh_recipes()

    # -- the recipe bar ---------------------------------------------------------------------------------

    def offered(self) -> list[str]:
        """The built-in recipes the logged-in operator may run, by name."""
        from provisioning.recipes import BUILT_IN_RECIPES, recipe_outline

        session = self.context.operator.session
        allowed = []
        for name in BUILT_IN_RECIPES:
            recipe = recipe_outline(name)
            if recipe is not None and may_run(session, recipe):
                allowed.append(name)
        return allowed

    def refresh_recipes(self) -> None:
        """Offer the recipes the operator logged in now may run (on each login and logout)."""
        current = self.source()
        self.recipe_box.blockSignals(True)
        self.recipe_box.clear()
        for name in self.offered():
            self.recipe_box.addItem(name, name)
        for path in self._files:
            self.recipe_box.addItem(Path(path).name, path)
        self.recipe_box.addItem("", OPEN_FILE)
        self.recipe_box.blockSignals(False)
        sources = [self.recipe_box.itemData(i) for i in range(self.recipe_box.count())]
        index = sources.index(current) if current in sources else 0
        self.recipe_box.setCurrentIndex(index)
        self.retranslate()
        self._show_recipe(self.source())

    def source(self) -> str | None:
        """The chosen recipe: a built-in's name or a file's path (None: none chosen)."""
        data = self.recipe_box.currentData()
        return data if isinstance(data, str) and data != OPEN_FILE else None

    def choose(self, source: str) -> None:
        """Choose the recipe ``source`` (a built-in offered, or a file: it is opened)."""
        for index in range(self.recipe_box.count()):
            if self.recipe_box.itemData(index) == source:
                self.recipe_box.setCurrentIndex(index)
                self._show_recipe(source)
                return
        self.open_recipe_file(source)

    def choose_recipe_file(self) -> None:
        """Ask for a recipe file and open it."""
        path, _chosen = QFileDialog.getOpenFileName(self, _("Open recipe file…"), "", RECIPE_FILE_FILTER)
        if path:
            self.open_recipe_file(path)
        else:
            self.refresh_recipes()  # back to the recipe chosen before

    def open_recipe_file(self, path: str) -> None:
        """Offer the recipe file at ``path`` and choose it; a file that is wrong shows its error (nothing starts)."""
        path = str(Path(path).expanduser().resolve())
        if path not in self._files:
            self._files.append(path)
        self.refresh_recipes()
        self.recipe_box.setCurrentIndex(self.recipe_box.findData(path))
        self._show_recipe(path)

    def _on_chosen(self, index: int) -> None:
        if self.recipe_box.itemData(index) == OPEN_FILE:
            self.choose_recipe_file()
        else:
            self._show_recipe(self.source())

    def _focus_chooser(self) -> None:
        self.recipe_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.recipe_box.showPopup()

    def _show_recipe(self, source: str | None) -> None:
        """Show the chosen recipe's description and site settings; check it (the error, with its line, if any)."""
        self._save_timer.stop()
        if source is None:
            self.form.show_recipe("", {})
            self.settings_box.hide()
            self.recipe = None
            self._set_error(None)
            return
        self.form.show_recipe(source, self.context.settings.overrides(source))
        self.settings_box.setVisible(bool(self.form.fields))
        # folded when the kept settings already make a runnable recipe; open when something is missing or wrong
        self.settings_box.setChecked(self.check_recipe() is None)
        self.form.setVisible(self.settings_box.isChecked())

    def check_recipe(self) -> Recipe | None:
        """Load the chosen recipe with the site settings; its error shown (a setting still to give is no error)."""
        from provisioning.recipes import MissingSetting, RecipeError, load_recipe

        source = self.source()
        self.recipe = None
        if source is None:
            return None
        try:
            self.recipe = load_recipe(source, self.form.values())
        except MissingSetting as exc:
            self._set_error(None if self.form.missing() else exc)
        except RecipeError as exc:
            self._set_error(exc)
        else:
            self._set_error(None)
        return self.recipe

    def _set_error(self, error: BaseException | None) -> None:
        self._error = error
        if error is None:
            self.recipe_error.hide()
        else:
            message, remedy = error_texts(error)
            self.recipe_error.setText(message + ("\n" + _("What to do: {remedy}", remedy=remedy) if remedy else ""))
            self.recipe_error.show()
            repolish(self.recipe_error)
        self._sync_start()

    def _on_form_edited(self) -> None:
        self._save_timer.start()
        self.check_recipe()

    def save_settings(self) -> None:
        """Keep the chosen recipe's site settings (``context.settings.recipe_settings``)."""
        self._save_timer.stop()
        source = self.source()
        if source is None:
            return
        values = self.form.values()
        if values == self.context.settings.overrides(source):
            return
        try:
            self.context.update_settings(self.context.settings.with_overrides(source, values))
        except OSError as exc:
            LOG.warning("%s", _("The site settings could not be saved: {reason}", reason=exc.strerror or str(exc)))

    # -- selection and Start ----------------------------------------------------------------------------

    def units_to_start(self) -> tuple[list[str], bool]:
        """The units Start works on, and whether they are the ticked ones (else every attached one)."""
        ticked = self.bench.selected()
        return (ticked, True) if ticked else (self.bench.attached(), False)

    def _sync_start(self) -> None:
        serials, ticked = self.units_to_start()
        if ticked:
            self.start_button.setText(_("Start on {count} ticked units", count=len(serials)))
        else:
            self.start_button.setText(_("Start on all {count} attached units", count=len(serials)))
        ready = self.source() is not None and self._error is None and not self.form.missing()
        self.start_button.setEnabled(ready and bool(serials))
        if self._error is None and self.source() is not None and self.form.missing():
            self.status.setText(
                _("Give the settings marked required: {settings}", settings=", ".join(self.form.missing()))
            )
        elif self.runs:
            recipe, running = list(self.runs.values())[-1]
            self.status.setText(_("Running {recipe} on {count} units…", recipe=recipe, count=len(running)))
        else:
            self.status.setText("")

    def start(self) -> Job | None:
        """Start the chosen recipe on the ticked units (none ticked: every attached unit); None when refused (the
        reason is shown)."""
        from provisioning.steps import needed

        from .recipe_job import RecipeRequest, _secret_from_environment

        self.save_settings()
        recipe = self.check_recipe()
        if recipe is None:
            return None
        serials, _ticked = self.units_to_start()
        if not serials:
            self._set_error(NoUnitsToStart())
            return None
        if not may_run(self.context.operator.session, recipe):
            self._set_error(RecipeNotAllowed(recipe=recipe.name))
            return None
        settings = self.context.settings
        secret = ""
        needs_store = bool(needed(step.name for step in recipe.steps) & {"store", "outbox"})
        if needs_store and not _secret_from_environment(settings.effective_keystore()):
            secret = self.ask_secret() or ""
            if not secret:
                return None
        folder = self.reports_folder(recipe.name)
        request = RecipeRequest(recipe, tuple(serials), secret, reports_dir=folder)
        job = bench_job(self.context, request, folder)
        del secret, request
        self.bench.follow(job)
        units = tuple(serials)
        job.step_finished.connect(lambda event: self._on_unit_finished(event, units))
        held = weakref.ref(job)  # the slots must not keep the job alive (a cycle through its own connections)
        job.succeeded.connect(lambda outcome: self._on_succeeded(held(), outcome))
        job.failed.connect(lambda error: self._on_refused(held(), error))
        try:
            self.context.workers.start(job)
        except NaiadError as exc:
            self._set_error(exc)
            return None
        self.job, self.outcome = job, None
        self.runs[job] = (recipe.name, units)
        self.summary.hide()
        self.bench.select_none()
        self.bench.begin_recipe(recipe.name, serials, WAITING)
        LOG.info("%s", _("Started {recipe} on {count} units", recipe=recipe.name, count=len(serials)))
        self._sync_start()
        return job

    def reports_folder(self, recipe: str) -> Path:
        """The batch's folder: under the settings' reports folder, else ``<data dir>/reports``."""
        from .station_resources import batch_folder_name, reports_folder

        name = batch_folder_name(recipe)
        chosen = self.context.settings.reports_dir
        return Path(chosen).expanduser() / name if chosen else reports_folder(name)

    def _ask_secret(self) -> str | None:
        dialog = SecretDialog(self)
        try:
            return dialog.take() if dialog.exec() == QDialog.DialogCode.Accepted else None
        finally:
            dialog.field.forget()
            dialog.deleteLater()

    # -- the run's outcomes -----------------------------------------------------------------------------

    def _on_unit_finished(self, event: StepFinished, serials: tuple[str, ...]) -> None:
        unit = event.result
        if event.step != getattr(unit, "recipe", None) or event.unit not in serials:
            return  # a step's own finish inside the recipe: the pipeline's comes at the unit's end
        self._show_unit(event.unit, unit)  # type: ignore[arg-type]

    def _show_unit(self, serial: str, unit: UnitRun) -> None:
        card = self.bench.card(serial)
        if card is None:
            return
        if unit.result == "succeeded":
            card.show_result(SUCCEEDED, recipe=unit.recipe)
        elif unit.result == "already-done":
            card.show_result(ALREADY_DONE, recipe=unit.recipe)
        elif unit.result == "held-elsewhere":
            card.show_result(HELD_ELSEWHERE)
        else:
            error = unit.error
            if error is None:
                card.show_result(N_("Failed"))
            else:
                card.show_error(error, sticky=True, step=failed_step_label(unit))
        card.end_job()

    def _on_succeeded(self, job: Job | None, outcome: BenchOutcome) -> None:
        _recipe, serials = self.runs.pop(job, ("", ())) if job is not None else ("", ())
        self.job = None if self.job is job else self.job
        self.outcome = outcome
        shown = {unit.serial for unit in outcome.batch.units}
        for unit in outcome.batch.units:
            card = self.bench.card(unit.serial)
            if card is not None and card.in_job:
                self._show_unit(unit.serial, unit)
        for serial in serials:
            card = self.bench.card(serial)
            if serial not in shown and card is not None:
                card.clear_step()
                card.end_job()
        self.bench.tick()
        self.summary.show_outcome(outcome)
        LOG.info("%s", self.summary.title.text())
        for line in self.summary.reconciliation_lines():
            LOG.info("%s", line)
        self._sync_start()

    def _on_refused(self, job: Job | None, error: BaseException) -> None:
        _recipe, serials = self.runs.pop(job, ("", ())) if job is not None else ("", ())
        self.job = None if self.job is job else self.job
        for serial in serials:
            card = self.bench.card(serial)
            if card is not None:
                card.show_error(error, sticky=True)
                card.end_job()
        self.bench.tick()
        message, remedy = error_texts(error)
        LOG.error(
            "%s",
            _("The run was refused; no unit was touched: {message}", message=message)
            + (f" — {remedy}" if remedy else ""),
        )
        self.summary.show_refused(error)
        self._sync_start()

    # -- language ---------------------------------------------------------------------------------------

    def retranslate(self) -> None:
        self.recipe_caption.setText(_("&Recipe:"))
        open_index = self.recipe_box.findData(OPEN_FILE)
        if open_index >= 0:
            self.recipe_box.setItemText(open_index, _("Open recipe file…"))
        for index in range(self.recipe_box.count()):
            data = self.recipe_box.itemData(index)
            if data != OPEN_FILE:
                self.recipe_box.setItemData(index, data, Qt.ItemDataRole.ToolTipRole)
        source = self.source()
        from provisioning.recipes import recipe_outline

        recipe = recipe_outline(source) if source else None
        self.description.setText(recipe.title() if recipe is not None else "")
        self.recipe_box.setToolTip(_("The recipe Start runs ({shortcut})", shortcut=SHORTCUTS["choose_recipe"]))
        self.settings_box.setTitle(_("Site settings"))
        self.form.retranslate()
        self.select_all_button.setText(_("Select all"))
        self.select_all_button.setToolTip(SHORTCUTS["select_all"])
        self.select_none_button.setText(_("Select none"))
        self.select_none_button.setToolTip(SHORTCUTS["select_none"])
        self.start_button.setToolTip(
            _(
                "Run the recipe on the ticked units, or on every attached unit when none is ticked ({shortcut})",
                shortcut=SHORTCUTS["start"],
            )
        )
        if self._error is not None:
            self._set_error(self._error)
        self.summary.retranslate()
        self.bench.retranslate()
        self._sync_start()
