"""What the camera steps share: the jig, their phases, typed errors and the result a unit's step hands on.

:mod:`provisioning.calibration` runs the steps; this module holds their vocabulary so the console's panel and
the CLI can name phases and errors without loading the procedures.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from camera.errors import CameraError
from i18n import N_, _
from terminal.errors import NaiadError

CALIBRATE_STEP = "calibrate"
"""The event stream's step of a full calibration and of a field check; a full calibration's ledger operation."""
DEPTH_STEP = "depth-quality"
"""A depth-quality run: its events, its ledger operation and its camera-check record."""
CHECK_STEP = "field-check"
"""A field check: its ledger operation and camera-check record."""
FULL = "full"
CHECK = "check"
MODES = (FULL, CHECK)
ROLE = "operator"
"""The role that calibrates in full (it writes to units and the ledger), as for key injection."""
CHECK_ROLES = ("installer", "operator", "support")
"""Roles that may run a field check or a depth-quality run (they write a check record naming who ran it)."""


# --- the jig ------------------------------------------------------------------------------------------


class Jig(abc.ABC):
    """The fixture in front of a unit's camera, driven by the station: a board at planned poses, or a wall."""

    planned: int
    """Poses in its planned sequence (``present_board`` takes 0 .. planned - 1)."""

    @abc.abstractmethod
    def present_board(self, serial: str, index: int) -> None:
        """Put the board at pose ``index`` of the planned sequence in front of the unit."""

    @abc.abstractmethod
    def present_aimed(self, serial: str, x_frac: float, y_frac: float) -> None:
        """Put the board around this point of the IR image (fractions of its width and height)."""

    @abc.abstractmethod
    def present_wall(self, serial: str, distance_m: float, tilt_deg: tuple[float, float] = (0.0, 0.0)) -> None:
        """Put a flat wall at ``distance_m``, tilted about the camera's x and y axes."""

    @abc.abstractmethod
    def release(self, serial: str) -> None:
        """Take the jig's targets away (the unit sees what an installer would hold up)."""


class NoJig(Jig):
    """A station without a configured jig (real units): full calibration and depth quality are refused."""

    planned = 0

    def present_board(self, serial: str, index: int) -> None:
        raise JigNotConfigured(serial=serial)

    def present_aimed(self, serial: str, x_frac: float, y_frac: float) -> None:
        raise JigNotConfigured(serial=serial)

    def present_wall(self, serial: str, distance_m: float, tilt_deg: tuple[float, float] = (0.0, 0.0)) -> None:
        raise JigNotConfigured(serial=serial)

    def release(self, serial: str) -> None:
        """Nothing to take away."""


# --- phases -------------------------------------------------------------------------------------------


class CameraPhase(enum.StrEnum):
    PREPARE = "prepare"
    VIEWS = "views"
    COVERAGE = "coverage"
    SOLVE = "solve"
    DEPTH = "depth"
    WRITE = "write"
    VERIFY = "verify"
    READ = "read"
    CAPTURE = "capture"
    CHECK = "check"
    RECORD = "record"


PHASE_LABELS: dict[CameraPhase, str] = {
    CameraPhase.PREPARE: N_("Preparing the camera"),
    CameraPhase.VIEWS: N_("Capturing board views"),
    CameraPhase.COVERAGE: N_("Filling the image's empty areas"),
    CameraPhase.SOLVE: N_("Solving the calibration"),
    CameraPhase.DEPTH: N_("Measuring depth at {distance:g} m"),
    CameraPhase.WRITE: N_("Writing the calibration to the unit"),
    CameraPhase.VERIFY: N_("Reading the calibration back"),
    CameraPhase.READ: N_("Reading the stored calibration"),
    CameraPhase.CAPTURE: N_("Capturing the check's frames"),
    CameraPhase.CHECK: N_("Checking against the stored calibration"),
    CameraPhase.RECORD: N_("Recording in the ledger"),
}


def phase_label(phase: CameraPhase, distance_m: float | None = None) -> str:
    """The phase in the current language (``{distance}`` filled in where the label names one)."""
    return _(PHASE_LABELS[phase], distance=distance_m or 0.0)


# --- errors -------------------------------------------------------------------------------------------


class CameraStepError(CameraError):
    message = N_("The camera step on unit {serial} failed")


class JigNotConfigured(CameraStepError):
    message = N_("No calibration jig is configured for unit {serial}")
    remedy = N_(
        "Full calibration and depth quality need a jig that presents the board and walls; a field check needs "
        "none: run 'naiad calibrate --device SERIAL --mode check' with the board held up to the camera."
    )


class NoStoredCalibration(CameraStepError):
    message = N_("Unit {serial} holds no camera calibration to check against")
    remedy = N_("Calibrate it in full on a jig first ('naiad calibrate --device {serial}').")


class NotEnoughViews(CameraStepError):
    message = N_(
        "Unit {serial}: {views} usable board views covering {coverage} % of the image; the model needs {needed} "
        "views and {min_coverage} %"
    )
    remedy = N_(
        "Nothing was written. Check that the jig's board is the one named by --board, lit evenly and in focus, "
        "then calibrate again."
    )


class OutOfLimits(CameraStepError):
    message = N_("Unit {serial} is outside its model's limits: {failures}")
    remedy = N_(
        "Nothing was written to the unit and no calibration was recorded (the ledger keeps the failed attempt). "
        "Check the jig (board, walls, lighting) and calibrate again; a unit that fails twice goes to repair."
    )


class DepthOutOfLimits(CameraStepError):
    message = N_("The depth of unit {serial} is outside its model's limits: {failures}")
    remedy = N_(
        "Check that the wall is flat, matt and evenly lit at the distance asked, then measure again; a unit that "
        "fails on a good wall needs a full calibration, and after that repair."
    )


class ForeignCalibration(CameraStepError):
    message = N_("Unit {serial} holds a calibration that is not its own: {findings}")
    remedy = N_("Calibrate the unit in full on the jig ('naiad calibrate --device {serial}'), then measure again.")


class ReadBackMismatch(CameraStepError):
    message = N_("Unit {serial} read back calibration {got} instead of the {expected} written to it")
    remedy = N_(
        "The unit did not keep what it was sent, so nothing was recorded. Calibrate it again; if it happens "
        "again, send the unit for repair: its calibration store is faulty."
    )


class CameraStepCrashed(CameraStepError):
    message = N_("The camera step on unit {serial} stopped on an unexpected error: {detail}")
    remedy = N_("Nothing was recorded. Send the station's log to support, then run the step again.")


class NoUnitsSelected(CameraStepError):
    message = N_("No unit to calibrate")
    remedy = N_("Name units with --device SERIAL, or use --all with units attached in run mode.")


class TooFewDistances(CameraStepError):
    message = N_("Depth quality needs two or more distances, not {count}")
    remedy = N_("Give --distance twice or more (for example --distance 0.5 --distance 0.8), or none for the model's.")


class UnknownMode(CameraStepError):
    message = N_("There is no calibration mode {mode}")
    remedy = N_("Use --mode full (on a jig) or --mode check (a field check).")


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraStepResult:
    """One unit's outcome of a camera step (``step``: calibrate, field-check or depth-quality); a
    :class:`terminal.events.StepResult`.

    ``figures`` are plain numbers (RMS, standard deviations, depth figures; None where not measured), also on
    a failed step as far as it got; ``checksum`` names the calibration written (full) or checked against
    (check); ``verdict`` is a field check's :class:`camera.fieldcheck.FieldVerdict`, ``findings`` what led to
    it, translated; ``depth`` holds one run per distance (``distance_m``, ``figures``, ``failures``, ``passed``).
    """

    serial: str
    step: str
    ok: bool
    seconds: float
    error: NaiadError | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    checksum: str | None = None
    verdict: str | None = None
    advice: str | None = None
    """A field check's advice for the person at the unit, translated."""
    calibration: dict[str, Any] | None = None
    """A full calibration's result in the shape of ``naiad calibrate --from-images --json``."""
    findings: list[str] = field(default_factory=list)
    depth: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "step": self.step,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "checksum": self.checksum,
            "verdict": self.verdict,
            "advice": self.advice,
            "figures": dict(self.figures),
            "calibration": self.calibration,
            "findings": list(self.findings),
            "depth": list(self.depth),
            "error": self.error.as_dict() if self.error is not None else None,
        }


def plain(figures: dict[str, Any], suffix: str = "") -> dict[str, float | int | None]:
    """The numbers of ``figures`` for people and JSON, each name + ``suffix``: None (not measured) and NaN or
    infinity kept as None, bools, texts and nested values left out."""
    kept: dict[str, float | int | None] = {}
    for name, value in figures.items():
        if value is None:
            kept[name + suffix] = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            kept[name + suffix] = value if math.isfinite(value) else None
    return kept


def numbers(figures: dict[str, Any], suffix: str = "") -> dict[str, float | int]:
    """The finite numbers of ``figures`` (see :func:`plain`): what the ledger keeps of a step's figures."""
    return {name: value for name, value in plain(figures, suffix).items() if value is not None}
