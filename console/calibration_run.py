"""Calibrating a unit's camera from the bench: the card's "Camera calibration…" action, its panel and its runs.

The action is offered only to a logged-in role that may calibrate (``operator``) or check (also ``installer`` and
``support``, who check units at the counter and the repair desk); each mode's button shows only to its roles,
and a full calibration's is enabled only when the station has a jig.  A run is one job on the console's workers
that calls :func:`provisioning.calibration.calibrate_units` for the unit with the jig of
:meth:`console.composition.Wiring.jig`; its events drive the card (phases, progress, the outcome) and the unit's
:class:`~console.calibration_panel.CalibrationPanel` (views, results, depth, verdict).  A panel lives until its
unit's card is dismissed or the operator logs out.

The camera machinery is reached through :class:`CameraEngine` (tests pass a scripted one); :class:`EngineCamera`,
the real one, imports it on the worker at first use, and depth frames are coloured there
(:class:`DepthColouring`), so the GUI thread never loads OpenCV.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from PyQt6.QtWidgets import QWidget

from camera.labels import verdict_text
from camera.observations import DEPTH, DepthObservation
from i18n import N_, _
from provisioning.camera_steps import CHECK, CHECK_ROLES, FULL, ROLE
from terminal.errors import NaiadError
from terminal.events import Fanout, Listener, Observed

from .calibration_panel import CalibrationPanel, ColouredDepth
from .composition import Wiring
from .operator_login import OperatorLogin, role_text
from .unit_card import Bench, error_texts
from .unit_runs import UnitRun, UnitRuns
from .workers import Job, StationProvider, Workers

if TYPE_CHECKING:
    from provisioning.operators import OperatorSession
    from provisioning.station import Station

LOG = logging.getLogger(__name__)

MODE_ROLES: dict[str, tuple[str, ...]] = {FULL: (ROLE,), CHECK: CHECK_ROLES}
"""Who may start each mode (the step's own roles): a full calibration writes the unit; anyone who services a unit
may check it."""
WAITING = N_("Waiting for the camera…")
NOT_STARTED = N_("Camera calibration did not start: {message}")
CALIBRATED = N_("Camera calibrated ({checksum})")
CHECKED = N_("Camera check: {verdict}")
MIN_SPAN_MM = 200.0
"""The least depth range a false-colour picture spreads over."""


class CameraEngine(Protocol):
    """The camera steps as the bench calls them, always on a worker thread."""

    def calibrate(
        self, station: Station, serial: str, mode: str, session: OperatorSession | None, listener: Listener
    ) -> Any: ...

    def jig_poses(self) -> int:
        """Poses the station's jig plans; 0 when it has none (a full calibration is then refused)."""
        ...


@dataclass(frozen=True)
class EngineCamera:
    """The real :class:`CameraEngine`: :func:`provisioning.calibration.calibrate_units` with the wiring's jig."""

    wiring: Wiring

    def calibrate(
        self, station: Station, serial: str, mode: str, session: OperatorSession | None, listener: Listener
    ) -> Any:
        from provisioning.calibration import calibrate_units

        return calibrate_units(station, self.wiring.jig(), [serial], listener, mode=mode, session=session)

    def jig_poses(self) -> int:
        return self.wiring.jig().planned  # the simulator's jig loads OpenCV: asked on a worker


def false_colour_of(depth_mm: npt.NDArray[np.uint16]) -> npt.NDArray[np.uint8]:
    """The depth frame in false colour over the range it holds: the 2nd to 98th percentile of a sparse sample (so
    stray pixels do not flatten the picture), widened to at least :data:`MIN_SPAN_MM` around the median so a flat
    wall's noise does not fill the whole colour map.  OpenCV's work: call it on a worker, never the GUI thread."""
    from camera.colour import false_colour  # OpenCV, loaded by the first step's worker, not with the console

    sample = depth_mm[::4, ::4]
    valid = sample[sample > 0]
    if valid.size == 0:
        return np.zeros((*depth_mm.shape, 3), np.uint8)
    near, middle, far = (float(v) for v in np.percentile(valid, (2, 50, 98)))
    if far - near < MIN_SPAN_MM:
        near, far = middle - MIN_SPAN_MM / 2, middle + MIN_SPAN_MM / 2
    low = max(0, int(near))
    return false_colour(depth_mm, (low, min(65535, max(int(far), low + 1))))


class DepthColouring(Fanout):
    """Passes a step's events on to ``listener``, each depth frame turned into its false-colour picture first
    (:class:`ColouredDepth`): on the step's worker thread, so the GUI thread only shows pictures."""

    def __init__(self, listener: Listener) -> None:
        super().__init__((listener,))

    def observed(self, event: Observed) -> None:
        depth = event.data
        if event.kind == DEPTH and isinstance(depth, DepthObservation):
            try:
                picture: npt.NDArray[np.uint8] | None = false_colour_of(depth.depth_mm)
            except (ValueError, TypeError, NaiadError):  # a malformed frame: its figures still show
                LOG.exception("%s: cannot colour a depth frame", event.unit)
                picture = None
            coloured = ColouredDepth(picture, depth.distance_m, dict(depth.figures), depth.passed)
            event = Observed(event.unit, event.step, event.kind, coloured)
        super().observed(event)


class CameraRoleNeeded(NaiadError):
    message = N_("This camera step needs a logged-in operator with one of the roles: {roles}")
    remedy = N_("Log in with one of those roles.")


class CameraResultMissing(NaiadError):
    message = N_("Unit {serial} ended the camera step without a result")
    remedy = N_("Start the step again; a calibration that did not finish wrote nothing to the unit.")


class FieldCheckFailed(NaiadError):
    message = N_("Camera check failed: {verdict}")
    remedy = N_("Open the unit's camera calibration panel for the findings and what to do.")


@dataclass(eq=False)
class CameraRun(UnitRun):
    """One press of "Full calibration" or "Field check" on one unit's panel."""

    mode: str = FULL


class CameraCalibrations(UnitRuns):
    """The cards' "Camera calibration…" action, each unit's panel and the runs (GUI thread only)."""

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        stations: StationProvider,
        operator: OperatorLogin,
        engine: CameraEngine,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(bench, workers, WAITING, CameraResultMissing, parent)
        self._stations = stations
        self._operator = operator
        self._engine = engine
        self._window = parent
        self.panels: dict[str, CalibrationPanel] = {}
        self.jig_poses: int | None = None
        """The station's planned jig poses, asked once on a worker when a panel first opens (None: not known yet)."""
        self._jig_asked = False
        operator.changed.connect(self._sync)
        bench.changed.connect(self._sync_panels)
        workers.busy_changed.connect(self._sync_panels)
        self._sync()

    def allowed_modes(self) -> list[str]:
        """The modes the logged-in operator's role may start (none when nobody is logged in)."""
        session = self._operator.session
        return [mode for mode, roles in MODE_ROLES.items() if session is not None and session.role in roles]

    def _sync(self) -> None:
        """The cards offer the panel only to a role that may start something; logging out closes the panels."""
        allowed = bool(self.allowed_modes())
        self._bench.allow_camera(allowed)
        if not allowed:
            self.close_panels()
        self._sync_panels()

    def _sync_panels(self) -> None:
        """Each panel's buttons follow the role, the unit and the jig; a dismissed unit's panel goes."""
        running = self.running_units()
        for serial in [serial for serial in self.panels if self._bench.card(serial) is None and serial not in running]:
            self._drop(serial)
        modes = self.allowed_modes()
        for serial, panel in self.panels.items():
            panel.set_allowed(modes, self._available(serial), self.jig_poses)

    def _available(self, serial: str) -> bool:
        card = self._bench.card(serial)
        return card is not None and card.connected and card.mode == "run" and not self._workers.busy(serial)

    def open_panel(self, serial: str) -> CalibrationPanel | None:
        """Show ``serial``'s panel (one per unit, kept with its last run); None unless a role may use it."""
        if not self.allowed_modes():
            return None
        panel = self.panels.get(serial)
        if panel is None:
            panel = CalibrationPanel(serial, self._window)
            panel.start_requested.connect(self.start)
            self.panels[serial] = panel
            panel.set_allowed(self.allowed_modes(), self._available(serial), self.jig_poses)
        self._ask_jig()
        panel.show()
        panel.raise_()
        return panel

    def close_panels(self) -> None:
        """Close and delete every panel (logging out, the console closing): none keeps its frames."""
        for serial in list(self.panels):
            self._drop(serial)

    def _drop(self, serial: str) -> None:
        panel = self.panels.pop(serial)
        panel.close()
        panel.deleteLater()  # its job's signals disconnect with it; a run still going shows on the card

    def _ask_jig(self) -> None:
        """Ask once, on a worker, how many poses the jig plans (building the simulator's jig loads OpenCV)."""
        if self._jig_asked:
            return
        self._jig_asked = True
        engine = self._engine
        job = Job(lambda _listener: engine.jig_poses(), (), "jig")
        job.succeeded.connect(self._on_jig)
        job.failed.connect(self._on_jig_failed)
        try:
            self._workers.start(job)
        except NaiadError:  # the console is closing
            self._jig_asked = False

    def _on_jig(self, poses: object) -> None:
        self.jig_poses = poses if isinstance(poses, int) else 0
        self._sync_panels()

    def _on_jig_failed(self, error: BaseException) -> None:
        LOG.error("%s", _("No calibration jig: {message}", message=error_texts(error)[0]))
        self._jig_asked = False  # asked again when a panel next opens
        self._on_jig(0)

    # -- a run ------------------------------------------------------------------------------------------

    def start(self, serial: str, mode: str) -> CameraRun | None:
        """Run ``mode`` on ``serial`` off the GUI thread; None (the reason logged and shown) if refused."""
        session = self._operator.session
        roles = MODE_ROLES.get(mode, ())
        if session is None or session.role not in roles:  # logged out, or another operator, since the panel opened
            names = ", ".join(role_text(role) for role in roles)
            self.log_refused(CameraRoleNeeded(roles=names), NOT_STARTED)
            return None
        run = CameraRun(self.next_number(), (serial,), mode=mode)
        engine, stations = self._engine, self._stations

        def work(listener: Listener) -> Any:
            return engine.calibrate(stations.get(), serial, mode, session, DepthColouring(listener))

        try:
            self.launch(run, work, "calibrate")
        except NaiadError as exc:
            self.log_refused(exc, NOT_STARTED)
            return None
        panel = self.panels.get(serial)
        if panel is not None:
            panel.begin(mode)
        if mode == FULL:
            LOG.info("%s", _("Calibrating the camera of {serial}", serial=serial))
        else:
            LOG.info("%s", _("Checking the camera of {serial}", serial=serial))
        return run

    def prepare(self, run: UnitRun, job: Job) -> None:
        """The unit's panel follows the job's events from its first."""
        panel = self.panels.get(run.serials[0])
        if panel is None:
            return
        job.phase_started.connect(panel.phase_started)
        job.progressed.connect(panel.progressed)
        job.message.connect(panel.message)
        job.observed.connect(panel.observed)

    def describe(self, result: Any) -> tuple[str, dict[str, object]] | None:
        """A calibrated unit's checksum, or a passed check's verdict."""
        if not getattr(result, "ok", False):
            return None
        verdict = getattr(result, "verdict", None)
        if verdict:
            return CHECKED, {"verdict": verdict_text(verdict)}
        return CALIBRATED, {"checksum": str(getattr(result, "checksum", None) or "")[:12]}

    def error_of(self, run: UnitRun, serial: str) -> BaseException:
        """A failed check without an error says its verdict; otherwise as any run."""
        result = run.results.get(serial)
        verdict = getattr(result, "verdict", None)
        if result is not None and getattr(result, "error", None) is None and verdict:
            return FieldCheckFailed(verdict=verdict_text(verdict))
        return super().error_of(run, serial)

    def summarise(self, run: UnitRun) -> None:
        assert isinstance(run, CameraRun)
        serial = run.serials[0]
        result = run.results.get(serial)
        panel = self.panels.get(serial)
        if panel is not None:
            panel.end(result, None if result is not None else self.error_of(run, serial))
        described = self.describe(result)
        if described is None:
            self.log_failure(run, serial)
            return
        text = _("{serial}: {outcome}", serial=serial, outcome=_(described[0], **described[1]))
        LOG.info("%s", text)
        self.summarised.emit(text)

    def retranslate(self) -> None:
        for panel in self.panels.values():
            panel.retranslate()
