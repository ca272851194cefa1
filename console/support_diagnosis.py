"""The support desk's diagnosis: the ``support-diagnose`` run's progress, then the verdict and what to do in plain
words, with what each check found (as ``naiad diagnose`` prints them).

Presentation only: the desk runs the recipe (:func:`console.recipe_job.recipe_job`) and hands the events and the
unit's run here.  The verdict is the ``verdict`` step's data (:mod:`provisioning.verdicts`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import QLabel, QProgressBar, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from i18n import N_, _
from provisioning.verdicts import ACTIONS, VERDICTS

from .history_view import plain_tooltip
from .unit_card import error_texts

if TYPE_CHECKING:
    from provisioning.pipeline import UnitRun
    from provisioning.steps import StepOutcome
    from terminal.events import PhaseStarted, Progressed

RECIPE = "support-diagnose"
VERDICT_STEP = "verdict"
HEADINGS = (N_("Check"), N_("Result"), N_("What it found"))
GREEN, ORANGE, RED = "#2e7d32", "#e65100", "#c62828"


def step_title(name: str) -> str:
    """A step's title for people (its name when the step is unknown here)."""
    from provisioning.steps import step_class

    try:
        return step_class(name).title()
    except Exception:  # a recipe step this build does not know: show its name rather than nothing
        return name


def findings(step: StepOutcome) -> str:
    """What a check found: its detail, then each finding not already said by it."""
    lines = [line for line in step.data.get("findings") or [] if line != step.detail]
    return "\n".join([step.detail, *(f"- {line}" for line in lines)]).strip()


def result_text(step: StepOutcome) -> str:
    if not step.ok:
        return _("failed")
    return _("finding") if step.data.get("findings") else _("ok")


class DiagnosisPanel(QWidget):
    """Progress while the diagnosis runs; afterwards the verdict, the action, the reasons and the checks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._run: UnitRun | None = None
        self._error: BaseException | None = None
        self._phase = ""
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.phase = QLabel()
        self.phase.setObjectName("diagnosisPhase")
        self.progress = QProgressBar()
        self.progress.setObjectName("diagnosisProgress")
        self.progress.setVisible(False)
        self.verdict = QLabel()
        self.verdict.setObjectName("diagnosisVerdict")
        self.verdict.setWordWrap(True)
        self.action = QLabel()
        self.action.setObjectName("diagnosisAction")
        self.action.setWordWrap(True)
        self.action.setStyleSheet("font-size: 14px;")
        self.reasons = QLabel()
        self.reasons.setObjectName("diagnosisReasons")
        self.reasons.setWordWrap(True)
        self.reasons.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.checks = QTreeWidget()
        self.checks.setObjectName("diagnosisChecks")
        self.checks.setRootIsDecorated(False)
        self.checks.setColumnCount(len(HEADINGS))
        self.checks.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label in (self.intro, self.phase, self.verdict, self.action, self.reasons):
            label.setTextFormat(Qt.TextFormat.PlainText)  # what the unit said, never HTML
        for widget in (self.intro, self.phase, self.progress, self.verdict, self.action, self.reasons):
            layout.addWidget(widget)
        layout.addWidget(self.checks, 1)
        self.retranslate()

    # -- what the desk tells it ----------------------------------------------------------------------------

    def clear(self) -> None:
        """Nothing diagnosed yet (another unit was found)."""
        self._run, self._error, self._phase = None, None, ""
        self.progress.setVisible(False)
        self._draw()

    def started(self) -> None:
        self._run, self._error, self._phase = None, None, ""
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._draw()

    def phase_started(self, event: PhaseStarted) -> None:
        if event.step == RECIPE:  # the pipeline's own events: one phase per check
            self._phase = event.label
            self.phase.setText(_("Checking: {step}", step=event.label))

    def progressed(self, event: Progressed) -> None:
        if event.step == RECIPE and event.total > 0:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)

    def show_run(self, run: UnitRun) -> None:
        self._run, self._error = run, None
        self.progress.setVisible(False)
        self._draw()

    def show_error(self, error: BaseException) -> None:
        """The diagnosis could not start or run at all (refused, the unit went away before any check)."""
        self._run, self._error = None, error
        self.progress.setVisible(False)
        self._draw()

    def verdict_data(self) -> dict[str, Any]:
        """The verdict step's data of the last run ({} when none)."""
        step = self._verdict_step()
        return dict(step.data) if step is not None else {}

    def retranslate(self) -> None:
        self.intro.setText(
            _(
                "The diagnosis reads the unit and changes nothing on it: firmware, keys, camera, cable and logs. "
                "Keep the calibration board in front of the camera while it runs."
            )
        )
        self.checks.setHeaderLabels([_(heading) for heading in HEADINGS])
        self._draw()

    # -- drawing -------------------------------------------------------------------------------------------

    def _verdict_step(self) -> StepOutcome | None:
        if self._run is None:
            return None
        return next((s for s in self._run.steps if s.step == VERDICT_STEP and s.ok), None)

    def _draw(self) -> None:
        running = self.progress.isVisible()
        self.phase.setVisible(running)
        if running and not self._phase:
            self.phase.setText(_("Starting the diagnosis…"))
        self.checks.clear()
        colour = ""
        if self._error is not None:
            message, remedy = error_texts(self._error)
            self.verdict.setText(_("The diagnosis could not run: {problem}", problem=message))
            colour = RED
            self.action.setText(_("What to do: {action}", action=remedy) if remedy else "")
            self.reasons.setText("")
        elif self._run is None:
            self.verdict.setText("" if running else _("No diagnosis yet."))
            self.action.setText("")
            self.reasons.setText("")
        else:
            colour = self._draw_run(self._run)
        self.verdict.setStyleSheet(f"font-size: 15px; font-weight: bold; color: {colour or 'palette(text)'};")

    def _draw_run(self, run: UnitRun) -> str:
        """Draw ``run``; the verdict's colour (red: an action is needed)."""
        verdict = self._verdict_step()
        if verdict is None:
            error = run.error
            message, remedy = error_texts(error) if error is not None else (run.result, None)
            self.verdict.setText(_("No verdict: {problem}", problem=message))
            colour = RED
            self.action.setText(_("What to do: {action}", action=remedy) if remedy else "")
            self.reasons.setText("")
        else:
            data = verdict.data
            self.verdict.setText(_("Verdict: {verdict}", verdict=_(VERDICTS.get(data["verdict"], data["verdict"]))))
            colour = GREEN if data.get("action", "none") == "none" else RED
            self.action.setText(_("What to do: {action}", action=_(ACTIONS.get(data["action"], data["action"]))))
            self.reasons.setText("\n".join(f"• {reason}" for reason in data.get("reasons") or []))
        for step in run.steps:
            if step.step == VERDICT_STEP:
                continue
            item = QTreeWidgetItem([step_title(step.step), result_text(step), findings(step)])
            item.setData(0, Qt.ItemDataRole.UserRole, step.step)
            shade = GREEN if step.ok and not step.data.get("findings") else (ORANGE if step.ok else RED)
            item.setForeground(1, QBrush(QColor(shade)))
            item.setToolTip(2, plain_tooltip(findings(step)))
            self.checks.addTopLevelItem(item)
        self.checks.resizeColumnToContents(0)
        self.checks.resizeColumnToContents(1)
        return colour
