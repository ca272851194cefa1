"""Calibrate units' 3D cameras on a jig, check them in the field, and measure their depth quality.

Full calibration of one unit (operator role; docs/camera.md):

1. the camera's capabilities; projector off (calibration uses flood-lit IR);
2. the jig presents the board at each pose of its planned sequence; each IR + RGB capture is detected and
   offered to a :class:`camera.views.ViewSelector` (blurred and redundant views are dropped); then, while the
   model's views or coverage are not met, the board is aimed at the emptiest part of the image (bounded);
3. :func:`camera.calibrate.calibrate_views` solves both cameras and the IR-to-RGB motion; the model's limits
   must hold, else nothing is written anywhere;
4. projector on; the jig presents a wall at each of the model's depth distances; the depth quality must hold;
5. the blob goes to the unit and is read back; only an identical read-back is recorded in the ledger (by its
   checksum and figures), with the depth-quality run beside it; the jig is released whatever happened.

A field check (``mode="check"``, any of installer, operator, support) reads the stored calibration, captures the
board the installer holds up flood-lit and with the projector, and runs :func:`camera.fieldcheck.field_check`;
its verdict goes to the ledger.  Each unit's step is a ledger operation (``calibrate`` for a full calibration,
``field-check`` for a check, ``depth-quality`` for a depth run), failed ones too; one unit's failure never stops
the others.  Progress goes out as :mod:`terminal.events` (step ``calibrate``,
phases :class:`CameraPhase`), frames and figures as ``Observed`` events for the console's panel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from camera.calibrate import Calibration, calibrate_views
from camera.depth import depth_failures, measure_depth
from camera.detect import Detection, detect
from camera.fieldcheck import FieldCheck, field_check, foreign_check, foreign_findings, wall_check
from camera.frames import Frames, decode_frame_set
from camera.observations import CAMERA, DEPTH, VIEW, CameraObservation, DepthObservation, ViewObservation
from camera.views import PairSelector
from i18n import _
from terminal.camera import Board, CameraCalibration, Intrinsics, blob_checksum
from terminal.camera_unit import CameraUnit, Capabilities
from terminal.errors import NaiadError
from terminal.events import Listener, Reporter
from terminal.models import CameraLimits, TerminalModel, model_by_id

from .camera_steps import (
    CALIBRATE_STEP,
    CHECK_ROLES,
    CHECK_STEP,
    DEPTH_STEP,
    FULL,
    MODES,
    ROLE,
    CameraPhase,
    CameraStepCrashed,
    CameraStepResult,
    DepthOutOfLimits,
    ForeignCalibration,
    Jig,
    JigNotConfigured,
    NoJig,
    NoStoredCalibration,
    NotEnoughViews,
    NoUnitsSelected,
    OutOfLimits,
    ReadBackMismatch,
    TooFewDistances,
    UnknownMode,
    numbers,
    phase_label,
    plain,
)
from .operators import OperatorSession, require_role

if TYPE_CHECKING:
    from .ledger import Ledger
    from .station import Station

__all__ = [
    "CALIBRATE_STEP",
    "CHECK_ROLES",
    "CHECK_STEP",
    "DEPTH_STEP",
    "ROLE",
    "CameraStepResult",
    "FirstPoses",
    "Jig",
    "JigNotConfigured",
    "NoJig",
    "NoStoredCalibration",
    "calibrate_units",
    "depth_quality",
    "field_checking",
    "full_calibration",
]

LOG = logging.getLogger(__name__)

CHECK_GRID = (8, 6)
"""(cols, rows) of the empty coverage grid a field check's views are shown with, as the view selector's."""


def require_check_role(session: OperatorSession | None) -> OperatorSession:
    """A logged-in installer, operator or support engineer: a check's record names who ran it."""
    return require_role(session, *CHECK_ROLES)


# --- one unit -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """One captured view: both images (for the panel) and the board as each camera saw it."""

    frames: Frames
    ir: Detection
    rgb: Detection


@dataclass
class _UnitCamera:
    """One unit's camera step, on one management connection: the procedures of full, check and depth."""

    camera: CameraUnit
    caps: Capabilities
    model: TerminalModel
    serial: str
    board: Board
    report: Reporter
    figures: dict[str, Any] = field(default_factory=dict)
    """What the step measured so far (a failed step's result keeps it): plain numbers."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    """The depth runs so far, one per distance."""

    @property
    def limits(self) -> CameraLimits:
        return self.model.camera.limits

    def phase(self, phase: CameraPhase, distance_m: float | None = None) -> None:
        self.report.phase(phase, phase_label(phase, distance_m))

    # -- full ----------------------------------------------------------------------------------------
    def calibrate(self, jig: Jig) -> tuple[Calibration, list[dict[str, Any]]]:
        """Views from the jig, solved and checked against the limits, and the depth quality at each distance."""
        self.camera.projector(False)
        selector = PairSelector(self.board, self.caps.ir, self.caps.rgb)
        self.phase(CameraPhase.VIEWS)
        # One view is detected while the unit renders and sends the next: detection (OpenCV) and the link both
        # let go of the GIL, so a jig run takes about as long as its captures.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"detect-{self.serial}") as detector:
            pending: Future[_View] | None = None
            for index in range(jig.planned):
                jig.present_board(self.serial, index)
                frames = self._capture()
                if pending is not None:
                    self._offer(selector, pending.result())
                pending = detector.submit(self._detect, frames)
                self.report.progress(index + 1, jig.planned, counts="items")
            if pending is not None:
                self._offer(selector, pending.result())
        self._fill(jig, selector)
        self.phase(CameraPhase.SOLVE)
        calibration = calibrate_views(selector.accepted, self.board, self.caps.ir, self.caps.rgb)
        self.figures.update(plain(dict(calibration.to_blob(self.serial, self.model.id, 0.0).figures)))
        failures = calibration.failures(self.limits)
        for name, result in (("ir", calibration.ir), ("rgb", calibration.rgb)):
            self.report.observe(CAMERA, CameraObservation(name, result.as_dict(), dict(result.std), not failures))
        self.report.observe(CAMERA, CameraObservation("rgb_from_ir", calibration.stereo.as_dict(), {}, not failures))
        if failures:
            raise OutOfLimits(serial=self.serial, failures="; ".join(failures))
        depth = self.depth(jig, self.limits.depth_distances_m, calibration.ir.intrinsics)
        failed = [failure for run in depth for failure in run["failures"]]
        if failed:
            raise OutOfLimits(serial=self.serial, failures="; ".join(failed))
        return calibration, depth

    def _capture(self) -> Frames:
        """One flood-lit IR + RGB capture of what the jig presents."""
        frames = decode_frame_set(self.camera.capture(("ir", "rgb")))
        assert frames.ir is not None and frames.rgb is not None  # decode_frame_set checked what was asked
        return frames

    def _detect(self, frames: Frames) -> _View:
        assert frames.ir is not None and frames.rgb is not None
        return _View(frames, detect(frames.ir, self.board), detect(frames.rgb, self.board))

    def _offer(self, selector: PairSelector, view: _View) -> None:
        """Offer a detected view to the selector; both images shown with their corners and the coverage so far
        (the RGB one first: the IR view, whose coverage is the calibration's, is the last word)."""
        verdict = selector.offer(view.ir, view.rgb)
        assert view.frames.ir is not None and view.frames.rgb is not None
        kept = len(selector.accepted)
        for stream, image, found, coverage in (
            ("rgb", view.frames.rgb, view.rgb, selector.rgb),
            ("ir", view.frames.ir, view.ir, selector.ir),
        ):
            shown = ViewObservation(
                stream,
                image,
                found.corners,
                verdict.accepted,
                verdict.reason,
                coverage.coverage(),
                coverage.coverage_grid(),
                kept,
            )
            self.report.observe(VIEW, shown)

    def _fill(self, jig: Jig, selector: PairSelector) -> None:
        """Aimed poses at the image's empty cells until the model's views and coverage are met (bounded)."""
        limits = self.limits
        tried: set[tuple[float, float]] = set()  # an aim that gave nothing would give nothing again
        while len(selector.accepted) < limits.min_views or selector.coverage() < limits.min_coverage:
            holes = [hole for hole in selector.ir.holes() if hole not in tried]
            if len(tried) >= limits.extra_poses or not holes:
                raise NotEnoughViews(
                    serial=self.serial,
                    views=len(selector.accepted),
                    coverage=round(100 * selector.coverage()),
                    needed=limits.min_views,
                    min_coverage=round(100 * limits.min_coverage),
                )
            if not tried:
                self.phase(CameraPhase.COVERAGE)
            tried.add(holes[0])
            jig.present_aimed(self.serial, *holes[0])
            self._offer(selector, self._detect(self._capture()))
            self.report.progress(len(tried), limits.extra_poses, counts="items")

    def depth(self, jig: Jig, distances_m: Sequence[float], ir: Intrinsics) -> list[dict[str, Any]]:
        """The depth quality on a flat wall at each distance, projector on: each run's figures and failures,
        each failure led by its distance."""
        self.camera.projector(True)
        runs = self.runs
        for distance in distances_m:
            self.phase(CameraPhase.DEPTH, distance)
            jig.present_wall(self.serial, distance)
            frames = decode_frame_set(self.camera.capture(("depth",)))
            assert frames.depth is not None
            quality = measure_depth(
                frames.depth, ir, self.caps.projector_baseline_mm, distance, range_mm=self.caps.depth_range_mm
            )
            failures = [
                _("At {distance:g} m: {failure}", distance=distance, failure=failure)
                for failure in depth_failures(quality, self.limits)
            ]
            figures = plain(quality.as_dict())
            self.report.observe(DEPTH, DepthObservation(frames.depth, distance, numbers(figures), not failures))
            runs.append({"distance_m": distance, "figures": figures, "failures": failures, "passed": not failures})
        return runs

    def store(self, blob: CameraCalibration) -> str:
        """Write the blob and read it back; its checksum once the unit holds exactly it."""
        data = blob.encode()
        self.phase(CameraPhase.WRITE)
        self.camera.write_calibration(data, self.report.progress_callback())
        self.phase(CameraPhase.VERIFY)
        back = self.camera.read_calibration()
        expected = blob_checksum(data)
        if back != data:
            got = blob_checksum(back)[:12] if back is not None else _("none")
            raise ReadBackMismatch(serial=self.serial, got=got, expected=expected[:12])
        return expected

    # -- check ---------------------------------------------------------------------------------------
    def stored(self) -> tuple[CameraCalibration, str]:
        self.phase(CameraPhase.READ)
        blob = self.camera.read_calibration()
        if blob is None:
            raise NoStoredCalibration(serial=self.serial)
        return CameraCalibration.decode(blob), blob_checksum(blob)

    def _show_check_views(self, flood: Frames) -> None:
        """The check's IR and RGB views with the corners found, for the panel and the installer holding the
        board (no selector: nothing is kept, nothing covered)."""
        view = self._detect(flood)
        assert flood.ir is not None and flood.rgb is not None
        for stream, image, found in (("ir", flood.ir, view.ir), ("rgb", flood.rgb, view.rgb)):
            grid = np.zeros((CHECK_GRID[1], CHECK_GRID[0]), bool)
            self.report.observe(VIEW, ViewObservation(stream, image, found.corners, True, None, 0.0, grid, 0))

    def foreign(self, calibration: CameraCalibration) -> list[str]:
        """Why the stored ``calibration`` is not this unit's, translated; empty when it is."""
        return foreign_findings(calibration, self.serial, self.model.id, self.caps.ir, self.caps.rgb)

    def field_check(self) -> tuple[FieldCheck, str]:
        """The stored calibration against a flood-lit board view and a depth frame: the check and the checksum."""
        calibration, checksum = self.stored()
        self.phase(CameraPhase.CAPTURE)
        self.camera.projector(False)
        flood = decode_frame_set(self.camera.capture(("ir", "rgb")))
        self.camera.projector(True)
        lit = decode_frame_set(self.camera.capture(("ir", "depth"), speckle=True))
        assert flood.ir is not None and flood.rgb is not None and lit.depth is not None
        self.phase(CameraPhase.CHECK)
        self._show_check_views(flood)
        checked = field_check(
            flood.ir,
            flood.rgb,
            lit.depth,
            calibration,
            self.board,
            self.limits,
            ir_speckle=lit.ir,
            serial=self.serial,
            model=self.model.id,
        )
        self.report.observe(DEPTH, DepthObservation(lit.depth, checked.board_distance_m, numbers(checked.as_dict())))
        return checked, checksum

    def wall_check(self, distance_m: float | None) -> tuple[FieldCheck, str]:
        """The stored calibration's depth on a flat wall filling the view (no board at hand): fill and noise,
        and with the wall's taped ``distance_m`` its bias.  The check and the checksum."""
        calibration, checksum = self.stored()
        foreign = foreign_check(calibration, self.serial, self.model.id, self.caps.ir, self.caps.rgb)
        if foreign is not None:
            return foreign, checksum
        self.phase(CameraPhase.CAPTURE)
        self.camera.projector(True)
        lit = decode_frame_set(self.camera.capture(("depth",)))
        assert lit.depth is not None
        self.phase(CameraPhase.CHECK)
        baseline, depth_range = self.caps.projector_baseline_mm, self.caps.depth_range_mm
        checked = wall_check(lit.depth, calibration.ir, baseline, self.limits, distance_m, range_mm=depth_range)
        figures = numbers(checked.depth.as_dict()) if checked.depth is not None else {}
        self.report.observe(DEPTH, DepthObservation(lit.depth, distance_m, figures, checked.passed))
        return checked, checksum


def _run_on_unit(
    station: Station,
    serial: str,
    step: str,
    board: Board,
    report: Reporter,
    ledger: Ledger,
    procedure: Callable[[_UnitCamera, Ledger, float], CameraStepResult],
    jig: Jig | None,
) -> CameraStepResult:
    """One unit's step as a ledger operation of kind ``step``; any error becomes the unit's failed result.
    ``jig``: released afterwards, whatever happened (a field check uses what the installer holds up: None)."""
    started = time.monotonic()
    unit: _UnitCamera | None = None
    try:
        device = station.find(serial)  # recorded as seen: the operation needs the unit in the ledger
        model = model_by_id(device.model)
        with ledger.operation(serial, step) as op:
            with station.connect(serial) as client:
                camera = CameraUnit(client, module=model.camera)  # the unit may not announce other sizes
                report.phase(CameraPhase.PREPARE, phase_label(CameraPhase.PREPARE))
                unit = _UnitCamera(camera, camera.capabilities(), model, serial, board, report)
                was_on = camera.projector()
                try:
                    result = procedure(unit, ledger, started)
                finally:
                    if jig is not None:
                        _quietly(serial, lambda: jig.release(serial))
                    _quietly(serial, lambda: camera.projector(was_on))
            op.result = {k: v for k, v in result.as_dict().items() if k not in ("figures", "calibration")}
    except Exception as exc:
        error = exc if isinstance(exc, NaiadError) else CameraStepCrashed(serial=serial, detail=crash_detail(exc))
        if isinstance(exc, NaiadError):
            LOG.info("%s: %s failed: %s", serial, step, exc)
        else:
            LOG.exception("%s: %s crashed", serial, step)
        seconds = time.monotonic() - started
        if unit is None:
            result = CameraStepResult(serial, step, False, seconds, error)
        else:  # what was measured before the failure: the figures that explain it
            result = CameraStepResult(serial, step, False, seconds, error, dict(unit.figures), depth=list(unit.runs))
    report.finished(result)
    return result


def crash_detail(exc: BaseException) -> str:
    """An unexpected error as support reads it: its module-qualified type and the first line of its text
    (``cv2.error: ...``; the camera steps handle no secrets)."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    first = next(iter(str(exc).strip().splitlines()), "")[:200]
    return f"{name}: {first}" if first else name


def _quietly(serial: str, action: Callable[[], object]) -> None:
    """Tidying after a step (projector, jig): a unit gone by now must not hide the step's own outcome."""
    try:
        action()
    except NaiadError as exc:
        LOG.info("%s: could not tidy up after the camera step: %s", serial, exc)


def _full(jig: Jig) -> Callable[[_UnitCamera, Ledger, float], CameraStepResult]:
    def procedure(unit: _UnitCamera, ledger: Ledger, started: float) -> CameraStepResult:
        calibration, depth = unit.calibrate(jig)
        blob = calibration.to_blob(unit.serial, unit.model.id, time.time())
        checksum = unit.store(blob)
        unit.phase(CameraPhase.RECORD)
        figures = numbers(dict(blob.figures))
        ledger.record_calibration(unit.serial, checksum, figures)
        depth_figures = _depth_figures(depth)
        ledger.record_camera_check(unit.serial, DEPTH_STEP, True, depth_figures, calibration=checksum)
        seconds = time.monotonic() - started
        return CameraStepResult(
            unit.serial,
            CALIBRATE_STEP,
            True,
            seconds,
            figures={**figures, **depth_figures},
            checksum=checksum,
            calibration=calibration.as_json(),
            depth=depth,
        )

    return procedure


def _checking(wall: bool, distance_m: float | None) -> Callable[[_UnitCamera, Ledger, float], CameraStepResult]:
    """A field check's procedure: on the board held up, or (``wall``) on a flat wall."""

    def procedure(unit: _UnitCamera, ledger: Ledger, started: float) -> CameraStepResult:
        checked, checksum = unit.wall_check(distance_m) if wall else unit.field_check()
        return _checked(unit, ledger, started, checked, checksum)

    return procedure


def _checked(unit: _UnitCamera, ledger: Ledger, started: float, checked: FieldCheck, checksum: str) -> CameraStepResult:
    """A field check's outcome recorded, with a finding when the ledger does not know the unit's calibration."""
    unit.phase(CameraPhase.RECORD)
    findings = list(checked.findings)
    if checksum not in {record.checksum for record in ledger.calibrations(unit.serial)}:
        findings.append(
            _("The unit's calibration {checksum} is not one the ledger recorded for it", checksum=checksum[:12])
        )
    figures = plain(checked.as_dict())
    flags = {f"verdict.{verdict}": 1 for verdict in checked.verdicts}  # every fault found, not just the first
    verdict = str(checked.verdict)
    recorded = {**numbers(figures), **flags}
    ledger.record_camera_check(unit.serial, CHECK_STEP, checked.passed, recorded, verdict, calibration=checksum)
    seconds = time.monotonic() - started
    return CameraStepResult(
        unit.serial,
        CHECK_STEP,
        bool(checked.passed),
        seconds,
        figures=figures,
        checksum=checksum,
        verdict=verdict,
        advice=checked.advice,
        findings=findings,
    )


def _depth_figures(runs: list[dict[str, Any]]) -> dict[str, float | int]:
    """One flat map of numbers for the ledger: each figure named after its distance (``fill_rate.0.5m``)."""
    figures: dict[str, float | int] = {}
    for run in runs:
        figures.update(numbers(run["figures"], suffix=f".{run['distance_m']:g}m"))
    return figures


# --- the public steps ---------------------------------------------------------------------------------


def _check_serials(serials: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(serials))  # a unit named twice is calibrated once
    if not chosen:
        raise NoUnitsSelected()
    return chosen


def _acting(station: Station, session: OperatorSession) -> Ledger:
    ledger = station.ledger
    return ledger if ledger.operator == session.operator else ledger.as_operator(session.operator)


class FirstPoses(Jig):
    """A jig that presents only the first ``poses`` of another's planned sequence (a shorter calibration: the
    station aims the board at the image's empty areas afterwards, as it does after any sequence)."""

    def __init__(self, jig: Jig, poses: int) -> None:
        self.jig = jig
        self.planned = max(0, min(poses, jig.planned))

    def present_board(self, serial: str, index: int) -> None:
        self.jig.present_board(serial, index)

    def present_aimed(self, serial: str, x_frac: float, y_frac: float) -> None:
        self.jig.present_aimed(serial, x_frac, y_frac)

    def present_wall(self, serial: str, distance_m: float, tilt_deg: tuple[float, float] = (0.0, 0.0)) -> None:
        self.jig.present_wall(serial, distance_m, tilt_deg)

    def release(self, serial: str) -> None:
        self.jig.release(serial)


def calibrate_units(
    station: Station,
    jig: Jig,
    serials: Sequence[str],
    listener: Listener | None = None,
    *,
    mode: str = FULL,
    board: Board = Board(),  # noqa: B008 - a frozen dataclass: one shared default is safe
    session: OperatorSession | None = None,
    max_workers: int | None = None,
    wall: bool = False,
    wall_distance_m: float | None = None,
) -> list[CameraStepResult]:
    """Calibrate (``full``, on ``jig``) or field-check (``check``) every unit of ``serials`` in parallel.

    A field check looks at the board held up; with ``wall`` at a flat wall filling the view instead
    (:func:`camera.fieldcheck.wall_check`: depth fill and noise, and its bias when ``wall_distance_m`` is given).

    Refused as a whole (typed error, no unit touched) for an unknown mode, no units, a ``session`` without the
    role (``operator`` for full, one of :data:`CHECK_ROLES` for check), or a full calibration without a jig.
    Results come in the order of ``serials``; a unit's failure is its result's ``error``.  ``listener`` gets every
    unit's events (step ``calibrate``) from the worker threads.
    """
    if mode not in MODES:
        raise UnknownMode(mode=mode)
    chosen = _check_serials(serials)
    if mode == FULL:
        one = full_calibration(station, jig, session, board=board, units=chosen)
    else:
        one = field_checking(station, session, board=board, wall=wall, wall_distance_m=wall_distance_m)
    workers = max(1, min(max_workers or len(chosen), len(chosen)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calibrate") as pool:
        return list(pool.map(lambda serial: one(serial, listener), chosen))


UnitStep = Callable[[str, "Listener | None"], CameraStepResult]
"""One unit's camera step (serial, listener) -> its result, never raised: made once per run, run per unit."""


def full_calibration(
    station: Station,
    jig: Jig,
    session: OperatorSession | None,
    *,
    board: Board = Board(),  # noqa: B008 - a frozen dataclass: one shared default is safe
    poses: int | None = None,
    units: Sequence[str] = (),
) -> UnitStep:
    """A full calibration of one unit at a time on ``jig`` (its first ``poses`` planned poses when given), with
    the checks made once: the ``operator`` role and a configured jig (typed errors naming ``units``, no unit
    touched)."""
    ledger = _acting(station, require_role(session, ROLE))
    if poses is not None:
        jig = FirstPoses(jig, poses)
    if jig.planned <= 0:
        raise JigNotConfigured(serial=", ".join(units) or "-")  # before any unit is touched
    procedure = _full(jig)

    def one(serial: str, listener: Listener | None = None) -> CameraStepResult:
        report = Reporter(listener, serial, CALIBRATE_STEP)
        return _run_on_unit(station, serial, CALIBRATE_STEP, board, report, ledger, procedure, jig)

    return one


def field_checking(
    station: Station,
    session: OperatorSession | None,
    *,
    board: Board = Board(),  # noqa: B008 - a frozen dataclass: one shared default is safe
    wall: bool = False,
    wall_distance_m: float | None = None,
) -> UnitStep:
    """A field check of one unit at a time (on the board held up, or ``wall``), once the role is checked (one of
    :data:`CHECK_ROLES`)."""
    ledger = _acting(station, require_check_role(session))
    procedure = _checking(wall, wall_distance_m)

    def one(serial: str, listener: Listener | None = None) -> CameraStepResult:
        report = Reporter(listener, serial, CALIBRATE_STEP)
        return _run_on_unit(station, serial, CHECK_STEP, board, report, ledger, procedure, None)

    return one


def depth_quality(
    station: Station,
    jig: Jig,
    serial: str,
    distances_m: Sequence[float] | None = None,
    listener: Listener | None = None,
    *,
    session: OperatorSession | None = None,
) -> CameraStepResult:
    """The depth quality of ``serial`` on the jig's wall at each distance (default: the model's), recorded.

    The IR intrinsics are the unit's stored calibration's, else the model's nominal ones; a stored calibration
    that is not the unit's (another serial, model or image size) fails the run with :class:`ForeignCalibration`.
    Needs a logged-in installer, operator or support engineer (the record names them); refused before any unit
    is touched without a jig or with fewer than two distances.  ``ok`` is whether every distance passed.
    """
    ledger = _acting(station, require_check_role(session))
    if jig.planned <= 0:
        raise JigNotConfigured(serial=serial)  # before the unit is touched, as calibrate_units
    if distances_m is not None and len(distances_m) < 2:
        raise TooFewDistances(count=len(distances_m))

    def procedure(unit: _UnitCamera, ledger: Ledger, started: float) -> CameraStepResult:
        stored = unit.camera.read_calibration()
        checksum = blob_checksum(stored) if stored is not None else None
        if stored is None:
            unit.report.message(_("The unit holds no calibration: the model's nominal IR camera is used"))
            ir = _nominal_ir(unit)
        else:
            calibration = CameraCalibration.decode(stored)
            foreign = unit.foreign(calibration)
            if foreign:
                raise ForeignCalibration(serial=unit.serial, findings="; ".join(foreign))
            ir = calibration.ir
        runs = unit.depth(jig, distances_m or unit.limits.depth_distances_m, ir)
        failures = [failure for run in runs for failure in run["failures"]]
        unit.phase(CameraPhase.RECORD)
        figures = _depth_figures(runs)
        ledger.record_camera_check(unit.serial, DEPTH_STEP, not failures, figures, calibration=checksum)
        error = DepthOutOfLimits(serial=unit.serial, failures="; ".join(failures)) if failures else None
        seconds = time.monotonic() - started
        return CameraStepResult(unit.serial, DEPTH_STEP, not failures, seconds, error, figures, checksum, depth=runs)

    report = Reporter(listener, serial, DEPTH_STEP)
    return _run_on_unit(station, serial, DEPTH_STEP, Board(), report, ledger, procedure, jig)


def _nominal_ir(unit: _UnitCamera) -> Intrinsics:
    module = unit.model.camera
    width, height = unit.caps.ir
    f = module.focal_length_px
    return Intrinsics(width, height, f, f, (width - 1) / 2, (height - 1) / 2)
