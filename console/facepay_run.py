"""Running the face-pay check from the bench: the card's "Face-pay check…" action, its page and its runs.

The action is offered only while a role that may run the check is logged in (:data:`provisioning.facepay_steps.ROLES`:
it takes and refunds a 0.01 test payment).  A run is one job on the console's workers that calls the check through a
:class:`FacePayEngine` (:class:`EngineFacePay`, the real one, runs :func:`provisioning.facepay_check.run_facepay_check`
with the wiring's presenter and the station's outbox); its events drive the card and the unit's
:class:`~console.facepay_page.FacePayPage`: each frame set the check judges comes as
``Observed(kind="face", data=FaceObservation)``, its depth coloured on the worker (:class:`FaceColouring`), and the
result as the step's ``StepFinished``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from PyQt6.QtCore import QObject, pyqtSignal
from PyQt6.QtWidgets import QWidget

from camera.observations import FACE, FaceObservation
from i18n import N_, _
from provisioning.facepay_steps import ROLES, FacePayCheckResult, stage_label
from terminal.errors import NaiadError
from terminal.events import Fanout, Listener, Observed

from .calibration_run import false_colour_of
from .composition import Wiring
from .facepay_page import PRESENTATION_LABELS, ColouredFace, FacePayPage
from .operator_login import OperatorLogin, role_text
from .platform_access import PlatformAccess, PlatformActions
from .unit_card import Bench
from .unit_runs import UnitRun, UnitRuns
from .workers import Job, Workers

if TYPE_CHECKING:
    from enrollment.config import PlatformConfig
    from provisioning.facepay_check import AnalyserFactory
    from provisioning.operators import OperatorSession
    from provisioning.outbox import Outbox

LOG = logging.getLogger(__name__)

WAITING = N_("Waiting for the face-pay check…")
NOT_STARTED = N_("The face-pay check did not start: {message}")
PASSED = N_("Face-pay check passed ({presentation})")


PROMPT_SECONDS = 600.0
"""How long a check waits for the operator to present what it asked for (a real unit) before it gives up."""


class FacePayEngine(Protocol):
    """The face-pay check as the bench calls it, always on a worker thread."""

    def check(
        self,
        serial: str,
        presentation: str,
        session: OperatorSession | None,
        secret: str,
        listener: Listener,
        ask: Callable[[str], None],
    ) -> FacePayCheckResult:
        """Run the check of ``serial`` with ``presentation`` before it; ``secret`` opens the key store; ``ask(text)``
        tells the operator what to present (a real unit) and returns once they have."""
        ...


class PresentationDeclined(NaiadError):
    message = N_("The operator did not present the face or the attack")
    remedy = N_("Start the check again and confirm once it is in front of the camera.")


class PresentationNotConfirmed(NaiadError):
    message = N_("Nobody confirmed the presentation within {seconds} s")
    remedy = N_("Start the check again and confirm once it is in front of the camera.")


class PresentPrompt(QObject):
    """The question "is it in front of the camera?" of one run, asked on the worker and answered on the page."""

    asked = pyqtSignal(str)

    def __init__(self, timeout: float = PROMPT_SECONDS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timeout = timeout
        self._answered = threading.Event()
        self._declined = False

    def ask(self, text: str) -> None:
        """On the worker: show ``text`` and wait for the operator; PresentationDeclined or ...NotConfirmed else."""
        self._answered.clear()
        self._declined = False
        self.asked.emit(text)
        if not self._answered.wait(self._timeout):
            raise PresentationNotConfirmed(seconds=round(self._timeout))
        if self._declined:
            raise PresentationDeclined()

    def confirm(self) -> None:
        self._answered.set()

    def decline(self) -> None:
        self._declined = True
        self._answered.set()


def nobody_to_ask(_text: str) -> None:
    """A run without a page (started by a test or a script): a real unit's check ends at once, saying why."""
    raise PresentationDeclined()


class LoadedOnce:
    """The station's analyser factory, its detector and liveness model loaded on the first worker that needs it
    and shared by every later check (loading takes seconds: it is no part of a check's capture time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factory: AnalyserFactory | None = None

    def get(self) -> AnalyserFactory:
        with self._lock:
            if self._factory is None:
                from provisioning.facepay_check import default_analyser

                self._factory = default_analyser()
            return self._factory


@dataclass(frozen=True)
class EngineFacePay:
    """The real :class:`FacePayEngine`: :func:`provisioning.facepay_check.run_facepay_check` with the wiring's
    presenter, the station and its outbox (the key store opened on the worker by ``access``), and the analyser
    loaded once per engine (``analysers``, on the worker)."""

    wiring: Wiring
    access: PlatformAccess
    analysers: LoadedOnce = field(default_factory=LoadedOnce, compare=False, repr=False)

    def check(
        self,
        serial: str,
        presentation: str,
        session: OperatorSession | None,
        secret: str,
        listener: Listener,
        ask: Callable[[str], None],
    ) -> FacePayCheckResult:
        from provisioning.facepay_check import run_facepay_check

        stations, presenter, analyser = self.access.stations, self.wiring.presenter(ask), self.analysers.get()

        def use(outbox: Outbox, config: PlatformConfig) -> FacePayCheckResult:
            return run_facepay_check(
                stations.get(),
                outbox,
                serial,
                presenter,
                listener,
                merchant=config.test_merchant,
                session=session,
                presentation=presentation,
                analyser=analyser,
            )

        return self.access.call(secret, use)


class FacePayRoleNeeded(NaiadError):
    message = N_("The face-pay check needs a logged-in operator with one of the roles: {roles}")
    remedy = N_("Log in with one of those roles.")


class FacePayResultMissing(NaiadError):
    message = N_("Unit {serial} ended the face-pay check without a result")
    remedy = N_("Start the check again; look up the unit's test trade on the platform if one was made.")


class FacePayCheckFailed(NaiadError):
    message = N_("Face-pay check failed at “{stage}”: {detail}")
    remedy = N_("Open the unit's face-pay check page for the stages and the frames.")


class FaceColouring(Fanout):
    """Passes a step's events on to ``listener``, each face observation's depth frame turned into its false-colour
    picture first (:class:`ColouredFace`): on the step's worker thread, so the GUI thread only shows pictures."""

    def __init__(self, listener: Listener) -> None:
        super().__init__((listener,))

    def observed(self, event: Observed) -> None:
        face = event.data
        if event.kind == FACE and isinstance(face, FaceObservation):
            picture = None
            if face.depth_mm is not None:
                try:
                    picture = false_colour_of(face.depth_mm)
                except (ValueError, TypeError, NaiadError):  # a malformed frame: RGB, IR and the analysis still show
                    LOG.exception("%s: cannot colour a depth frame", event.unit)
            event = Observed(event.unit, event.step, event.kind, ColouredFace(face, picture))
        super().observed(event)


class FacePayRuns(UnitRuns):
    """The runs of the check: the card's outcome, the page's end, the log (GUI thread only)."""

    def __init__(self, bench: Bench, workers: Workers, pages: dict[str, FacePayPage], parent: QWidget | None) -> None:
        super().__init__(bench, workers, WAITING, FacePayResultMissing, parent)
        self._pages = pages

    def prepare(self, run: UnitRun, job: Job) -> None:
        """The unit's page follows the job's events from its first."""
        page = self._pages.get(run.serials[0])
        if page is None:
            return
        job.phase_started.connect(page.phase_started)
        job.message.connect(page.message)
        job.observed.connect(page.observed)

    def collect(self, run: UnitRun, outcome: Any) -> None:
        if isinstance(outcome, FacePayCheckResult):
            run.results.setdefault(outcome.serial, outcome)

    def describe(self, result: Any) -> tuple[str, dict[str, object]] | None:
        if not isinstance(result, FacePayCheckResult) or not result.passed:
            return None
        return PASSED, {"presentation": _(PRESENTATION_LABELS.get(result.presentation, result.presentation))}

    def error_of(self, run: UnitRun, serial: str) -> BaseException:
        """A failed check without a typed error names its failed stage."""
        result = run.results.get(serial)
        if isinstance(result, FacePayCheckResult) and result.error is None:
            failed = next((stage for stage in result.stages if not stage.ok), None)
            if failed is not None:
                return FacePayCheckFailed(stage=stage_label(failed.name), detail=failed.detail)
        return super().error_of(run, serial)

    def summarise(self, run: UnitRun) -> None:
        serial = run.serials[0]
        result = run.results.get(serial)
        page = self._pages.get(serial)
        if page is not None:
            checked = result if isinstance(result, FacePayCheckResult) else None
            page.end(checked, None if checked is not None else self.error_of(run, serial))
        described = self.describe(result)
        if described is None:
            self.log_failure(run, serial)
            return
        text = _("{serial}: {outcome}", serial=serial, outcome=_(described[0], **described[1]))
        if isinstance(result, FacePayCheckResult) and result.trade_no:
            text = _("{text} · trade {trade_no}", text=text, trade_no=result.trade_no)
        LOG.info("%s", text)
        self.summarised.emit(text)


class FacePayChecks(PlatformActions):
    """The cards' "Face-pay check…" action, each unit's page and the runs (GUI thread only)."""

    action = "facepay"
    roles = ROLES
    summarised = pyqtSignal(str)

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        access: PlatformAccess,
        operator: OperatorLogin,
        engine: FacePayEngine,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(bench, workers, access, operator, parent)
        self._engine = engine
        self.pages: dict[str, FacePayPage] = {}
        self.prompts: dict[str, PresentPrompt] = {}
        self.runs = FacePayRuns(bench, workers, self.pages, parent)
        self.runs.summarised.connect(self.summarised)
        bench.changed.connect(self._sync_pages)
        workers.busy_changed.connect(self._sync_pages)
        self._sync()

    def windows(self) -> list[QWidget]:
        return list(self.pages.values())

    def close_windows(self) -> None:
        """Close and delete every page (logging out, the console closing): none keeps its frames."""
        for serial in list(self.pages):
            self._drop(serial)

    def _drop(self, serial: str) -> None:
        page = self.pages.pop(serial)
        page.close()
        page.deleteLater()  # its job's signals disconnect with it; a run still going shows on the card

    def _available(self, serial: str) -> bool:
        card = self._bench.card(serial)
        return card is not None and card.connected and card.mode == "run" and not self._workers.busy(serial)

    def _sync_pages(self) -> None:
        """Each page's Start follows the role and the unit; a dismissed unit's page goes."""
        running = self.runs.running_units()
        for serial in [serial for serial in self.pages if self._bench.card(serial) is None and serial not in running]:
            self._drop(serial)
        for serial, page in self.pages.items():
            page.set_allowed(self.allowed(), self._available(serial))

    def open_for(self, serial: str) -> FacePayPage | None:
        """Show ``serial``'s page (one per unit, kept with its last run); None unless the role may run the check."""
        if not self.allowed():
            return None
        page = self.pages.get(serial)
        if page is None:
            page = FacePayPage(serial, self._window)
            page.start_requested.connect(self.start)
            prompt = self.prompts.get(serial)
            if prompt is None:  # one per unit, kept: a run's worker may still hold it when its page goes
                prompt = self.prompts[serial] = PresentPrompt(parent=self)
            prompt.asked.connect(page.ask)
            page.presented.connect(prompt.confirm)
            page.withdrawn.connect(prompt.decline)
            self.pages[serial] = page
        page.set_allowed(self.allowed(), self._available(serial))
        page.show()
        page.raise_()
        return page

    def start(self, serial: str, presentation: str, secret: str = "") -> UnitRun | None:
        """Run the check of ``serial`` off the GUI thread; None (the reason logged and shown) if refused."""
        session = self._operator.session
        if session is None or not self.allowed():  # logged out, or another role, since the page opened
            error = FacePayRoleNeeded(roles=", ".join(role_text(role) for role in ROLES))
            self._refused(serial, error)
            return None
        run = UnitRun(self.runs.next_number(), (serial,))
        engine, held, prompt = self._engine, [secret], self.prompts.get(serial)
        ask = prompt.ask if prompt is not None else nobody_to_ask

        def work(listener: Listener) -> FacePayCheckResult:
            return engine.check(serial, presentation, session, held.pop(), FaceColouring(listener), ask)

        try:
            self.runs.launch(run, work, "face-pay check")
        except NaiadError as exc:
            self._refused(serial, exc)
            return None
        page = self.pages.get(serial)
        if page is not None:
            page.begin()
        LOG.info(
            "%s",
            _(
                "Checking face pay on {serial} with: {presentation}",
                serial=serial,
                presentation=_(PRESENTATION_LABELS.get(presentation, presentation)),
            ),
        )
        return run

    def _refused(self, serial: str, error: NaiadError) -> None:
        page = self.pages.get(serial)
        if page is not None:
            page.end(None, error)
        self.runs.log_refused(error, NOT_STARTED)

    def retranslate(self) -> None:
        for page in self.pages.values():
            page.retranslate()
