"""The field check: one look at a board (or a flat wall) with the unit's stored calibration, and a verdict.

After a drop or a knock the camera module may have moved inside the unit; this says whether the stored
calibration still holds, and if not whether a recalibration will help (drift) or the module itself is faulty
(a dead projector, a defocused RGB camera).  From one flood-lit IR + RGB view of the board and one depth frame
(projector on), with the board held still between them:

- **reprojection**: the IR corners' pose by solvePnP with the stored IR intrinsics, and the RMS distance (px)
  between the corners and the board points projected back with that pose.  A planar board absorbs much of an
  intrinsic drift into the pose, so this catches large changes (distortion, a bent lens mount);
- **IR-to-RGB misalignment**: every board corner, through the IR pose, the stored ``rgb_from_ir`` and the
  stored RGB intrinsics, lands where the RGB camera should see it; the RMS distance (RGB px) from the corners the
  RGB camera does see.  This is what a module that moved inside the unit shows first;
- **depth bias**: the depth at the IR corners against the corners' Z from the pose, median, % of distance;
- **fill rate**: plausible depth (within a factor 2 of the board's distance) over the board's area in the image.

Diagnosis, in this order (a faulty module is not mended by a recalibration): no depth on the board is a dead
or blocked projector (``ir_speckle``, an IR capture with speckle, tells whether its dots are seen at all); a
blurred RGB view or no board in it while the IR view is sharp is a defocused RGB camera; any figure over the
model's ``field_*`` limit is drift: recalibrate.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera import Board, CameraCalibration, Intrinsics
from terminal.models import CameraLimits

from .board import charuco_board
from .depth import DepthQuality, depth_failures, measure_depth, require_image
from .detect import Detection, detect, match_points
from .labels import VERDICT_LABELS as VERDICT_LABELS  # how people read a verdict, beside the verdicts

LOG = logging.getLogger(__name__)

MIN_CORNERS = 12  # fewer board corners than this in a view: no pose worth judging
PLAUSIBLE = 2.0  # depth more than this factor off the board's distance is no depth, as far as the check goes
SPECKLE_DOTS = 0.01  # share of the board's pixels lit by projector dots above which the projector shines
NEAR_LIMIT = 0.7  # a passing figure above this share of its limit: recalibrate at the next service
_DOT_STEP = 16  # grey levels a dot stands above its surroundings
_DEPTH_WINDOW = 2  # depth at a corner: median of the valid pixels within this many pixels around it


class FieldVerdict(enum.StrEnum):
    OK = "ok"
    RECALIBRATE = "recalibrate"  # drift
    PROJECTOR = "projector"  # dead projector
    DEPTH = "depth"  # depth too sparse on the target: a dirty window, a weak projector
    RGB_FOCUS = "rgb-focus"  # defocused RGB
    FOREIGN = "foreign"  # the stored calibration names another unit, model or image size
    NO_TARGET = "no-target"


ADVICE = {
    FieldVerdict.OK: N_(
        "The stored calibration holds; no recalibration is needed. Check again after a drop or a knock."
    ),
    FieldVerdict.RECALIBRATE: N_(
        "The camera has moved since it was calibrated: recalibrate it on the jig (naiad calibrate --mode full) "
        "before the unit takes face payments."
    ),
    FieldVerdict.PROJECTOR: N_(
        "The IR projector gives no usable depth: check that nothing covers its window, then replace the camera "
        "module. Recalibrating does not help; recalibrate after the repair."
    ),
    FieldVerdict.DEPTH: N_(
        "The depth camera fills too little of the target: clean the IR camera's and the projector's windows and "
        "check again; if it stays sparse, replace the camera module and recalibrate it."
    ),
    FieldVerdict.FOREIGN: N_(
        "The unit holds a calibration made for another unit or camera: calibrate this unit in full on the jig "
        "(naiad calibrate --mode full) before it takes face payments."
    ),
    FieldVerdict.RGB_FOCUS: N_(
        "The colour camera is out of focus: clean its window and check for condensation; if it stays blurred, "
        "replace the camera module and recalibrate it. Recalibrating alone does not help."
    ),
    FieldVerdict.NO_TARGET: N_(
        "Hold the calibration board still, 0.3 to 0.6 m in front of the camera, facing it, fully in view and "
        "evenly lit, and run the check again."
    ),
}
ORDER = (
    FieldVerdict.FOREIGN,
    FieldVerdict.PROJECTOR,
    FieldVerdict.DEPTH,
    FieldVerdict.RGB_FOCUS,
    FieldVerdict.NO_TARGET,
)
"""Which verdict a check with several findings gives: a faulty module before drift, which it would hide."""
NEAR_LIMIT_ADVICE = N_(
    "The stored calibration still holds, but close to its limits: recalibrate at the next service visit."
)


@dataclass(frozen=True)
class FieldCheck:
    """A field check's verdict, its figures (``None`` where not measured) and what to do, translated."""

    verdict: FieldVerdict
    passed: bool
    reprojection_rms_px: float | None
    misalignment_px: float | None
    depth_bias_pct: float | None
    board_distance_m: float | None
    fill_rate: float | None
    findings: list[str]
    advice: str
    verdicts: list[str] = field(default_factory=list)  # every verdict a finding pointed to, in order found
    ir_blur_px: float | None = None  # Gaussian-equivalent blur of the board's edges, IR and RGB
    rgb_blur_px: float | None = None
    speckle_dots: float | None = None  # share of the board lit by projector dots (with ``ir_speckle``)
    depth: DepthQuality | None = None  # a wall check's depth figures

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "verdict": str(self.verdict), "depth": self.depth and self.depth.as_dict()}


@dataclass
class _Findings:
    """What a check found so far: the verdicts it points to, in order of discovery, and the sentences."""

    verdicts: list[FieldVerdict] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    near: bool = False

    def add(self, verdict: FieldVerdict | None, line: str) -> None:
        if verdict is not None:
            self.verdicts.append(verdict)
        self.lines.append(line)

    def verdict(self) -> FieldVerdict:
        for verdict in ORDER:
            if verdict in self.verdicts:
                return verdict
        return FieldVerdict.RECALIBRATE if self.verdicts else FieldVerdict.OK

    def advice(self, verdict: FieldVerdict) -> str:
        return _(NEAR_LIMIT_ADVICE) if verdict is FieldVerdict.OK and self.near else _(ADVICE[verdict])

    def against(self, value: float | None, limit: float, over: str, near: str) -> None:
        """A finding (and drift) when ``|value|`` is over ``limit``; a note when it is near it."""
        if value is None:
            return
        if abs(value) > limit:
            self.add(FieldVerdict.RECALIBRATE, _(over, value=value, limit=limit))
        elif abs(value) > NEAR_LIMIT * limit:
            self.near = True
            self.add(None, _(near, value=value, limit=limit))


def blur_px(detection: Detection) -> float | None:
    """The Gaussian sigma (px) that explains the board edges' steepness (``Detection.sharpness``)."""
    if detection.count == 0 or detection.sharpness <= 0:
        return None
    return 1.0 / (detection.sharpness * math.sqrt(2 * math.pi))


def field_check(
    ir: npt.NDArray[np.uint8],
    rgb: npt.NDArray[np.uint8],
    depth: npt.NDArray[np.uint16],
    calibration: CameraCalibration,
    board: Board,
    limits: CameraLimits,
    *,
    ir_speckle: npt.NDArray[np.uint8] | None = None,
    serial: str | None = None,
    model: str | None = None,
) -> FieldCheck:
    """Judge the stored ``calibration`` on one board view (see the module's docstring).

    With the unit's ``serial`` and ``model``, a calibration made for another unit, model or image size gives
    the ``foreign`` verdict.  Else frames of the wrong kind or size for the calibration raise
    :class:`camera.depth.UnusableFrame`; anything a camera can capture (no board, no depth, saturated depth)
    gives a verdict."""
    if serial is not None and model is not None:
        sizes = [tuple(np.shape(frame)[1::-1]) if np.ndim(frame) >= 2 else (0, 0) for frame in (ir, rgb)]
        foreign = foreign_check(calibration, serial, model, sizes[0], sizes[1])
        if foreign is not None:
            return foreign
    ir_size = (calibration.ir.height, calibration.ir.width)
    ir = require_image(ir, "ir", np.uint8, ir_size)
    rgb = require_image(rgb, "rgb", np.uint8, (calibration.rgb.height, calibration.rgb.width), channels=3)
    depth = require_image(depth, "depth", np.uint16, ir_size)
    if ir_speckle is not None:
        ir_speckle = require_image(ir_speckle, "ir_speckle", np.uint8, ir_size)
    found = _Findings()
    figures: dict[str, Any] = {}

    ir_view = detect(ir, board)
    figures["ir_blur_px"] = blur_px(ir_view)
    pose = _pose(ir_view, board, calibration.ir) if ir_view.count >= MIN_CORNERS else None
    if pose is None:
        found.add(
            FieldVerdict.NO_TARGET,
            _(
                "The board was not found in the IR image ({count} corners, {needed} needed)",
                count=ir_view.count,
                needed=MIN_CORNERS,
            ),
        )
        return _result(found, figures)
    rotation, translation, reprojection = pose
    figures["reprojection_rms_px"] = reprojection
    board_points = np.asarray(charuco_board(board).getChessboardCorners(), np.float64)
    corners_ir = board_points @ rotation.T + translation  # every corner of the board, in IR camera coordinates
    seen = corners_ir[ir_view.ids]
    distance_mm = float(np.median(seen[:, 2])) * 1000.0
    figures["board_distance_m"] = distance_mm / 1000.0
    found.against(
        reprojection,
        limits.field_reprojection_px,
        N_("The IR corners reproject {value:.2f} px RMS from the stored calibration (limit {limit:.2f} px)"),
        N_("The IR corners reproject {value:.2f} px RMS, close to the limit of {limit:.2f} px"),
    )

    _check_depth(found, figures, depth, ir, ir_speckle, ir_view, seen, limits)
    _check_rgb(found, figures, rgb, board, calibration, corners_ir, limits)
    return _result(found, figures)


def foreign_findings(
    calibration: CameraCalibration, serial: str, model: str, ir_size: tuple[int, int], rgb_size: tuple[int, int]
) -> list[str]:
    """Why ``calibration`` is not this unit's (serial, model, IR and RGB sizes as width x height), translated;
    empty when it is."""
    lines = []
    if calibration.serial != serial:
        lines.append(_("The stored calibration was made for unit {other}", other=calibration.serial))
    if calibration.model != model:
        lines.append(_("The stored calibration was made for model {other}", other=calibration.model))
    for name, camera, size in (("IR", calibration.ir, ir_size), ("RGB", calibration.rgb, rgb_size)):
        if (camera.width, camera.height) != tuple(size):
            lines.append(
                _(
                    "The stored {camera} calibration is for {width}x{height} images; the camera gives "
                    "{actual_width}x{actual_height}",
                    camera=name,
                    width=camera.width,
                    height=camera.height,
                    actual_width=size[0],
                    actual_height=size[1],
                )
            )
    return lines


def foreign_check(
    calibration: CameraCalibration, serial: str, model: str, ir_size: tuple[int, int], rgb_size: tuple[int, int]
) -> FieldCheck | None:
    """The ``foreign`` verdict when ``calibration`` is not this unit's (:func:`foreign_findings`); else None."""
    found = _Findings()
    for line in foreign_findings(calibration, serial, model, ir_size, rgb_size):
        found.add(FieldVerdict.FOREIGN, line)
    return _result(found, {}) if found.lines else None


def _pose(
    view: Detection, board: Board, camera: Intrinsics
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float] | None:
    """(R, t in metres, reprojection RMS px) of the board from ``view`` with ``camera``; None if PnP fails."""
    objects, pixels = match_points(view, board)
    if len(objects) < MIN_CORNERS:
        return None
    k, dist = _matrices(camera)
    try:
        ok, rvec, tvec = cv2.solvePnP(objects, pixels, k, dist, flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            return None
        rvec, tvec = cv2.solvePnPRefineLM(objects, pixels, k, dist, rvec, tvec)
    except cv2.error:  # corners that no pose explains (degenerate, or nearly on one line)
        return None
    projected, _jacobian = cv2.projectPoints(objects, rvec, tvec, k, dist)
    errors = projected.reshape(-1, 2) - pixels.astype(np.float64)
    rms = float(np.sqrt(np.mean(np.sum(errors**2, axis=1))))
    translation = np.asarray(tvec, np.float64).reshape(3)
    if not math.isfinite(rms) or translation[2] <= 0:
        return None
    return np.asarray(cv2.Rodrigues(rvec)[0], np.float64), translation, rms


def _matrices(camera: Intrinsics) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    return np.array(camera.K, np.float64), np.array(camera.dist, np.float64)


def _check_depth(
    found: _Findings,
    figures: dict[str, Any],
    depth: npt.NDArray[np.uint16],
    ir: npt.NDArray[np.uint8],
    ir_speckle: npt.NDArray[np.uint8] | None,
    view: Detection,
    seen: npt.NDArray[np.float64],
    limits: CameraLimits,
) -> None:
    """Fill rate over the board, depth bias at its corners, and the projector's diagnosis when depth is missing."""
    expected_mm = seen[:, 2] * 1000.0
    distance_mm = float(np.median(expected_mm))
    area = np.zeros(depth.shape, np.uint8)
    cv2.fillConvexPoly(area, cv2.convexHull(np.round(view.corners).astype(np.int32)), 1)
    inside = area.astype(bool)
    values = depth.astype(np.float64)
    plausible = (values > distance_mm / PLAUSIBLE) & (values < distance_mm * PLAUSIBLE)
    fill = _share(plausible & inside, inside)
    figures["fill_rate"] = fill
    if ir_speckle is not None:
        figures["speckle_dots"] = _speckle_dots(ir_speckle, ir, inside)
    if fill < limits.min_fill_rate * limits.field_projector_fill:
        dots = figures.get("speckle_dots")
        if dots is not None and dots < SPECKLE_DOTS:
            line = N_("No depth on the board ({fill:.0%} filled) and no projector dots in the IR image")
        elif dots is not None:
            line = N_("No depth on the board ({fill:.0%} filled) although the projector's dots are seen")
        else:
            line = N_("No plausible depth on the board ({fill:.0%} filled)")
        found.add(FieldVerdict.PROJECTOR, _(line, fill=fill))
        return
    if fill < limits.min_fill_rate:
        found.add(
            FieldVerdict.DEPTH,
            _(
                "Depth covers {fill:.0%} of the board, less than the limit of {limit:.0%}",
                fill=fill,
                limit=limits.min_fill_rate,
            ),
        )
    measured = np.array([_depth_at(values, plausible, x, y) for x, y in view.corners])
    known = np.isfinite(measured)
    if np.count_nonzero(known) < MIN_CORNERS:
        found.add(None, _("Too few board corners have depth to measure its bias"))
        return
    bias_pct = 100.0 * float(np.median(measured[known] - expected_mm[known])) / distance_mm
    figures["depth_bias_pct"] = bias_pct
    found.against(
        bias_pct,
        limits.field_depth_bias_pct,
        N_("Depth at the board is {value:+.2f} % off its distance from the pose (limit {limit:.2f} %)"),
        N_("Depth at the board is {value:+.2f} % off its distance, close to the limit of {limit:.2f} %"),
    )


def _depth_at(values: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], x: float, y: float) -> float:
    """Median valid depth around pixel (x, y); NaN when there is none."""
    cx, cy, r = round(float(x)), round(float(y)), _DEPTH_WINDOW
    window = values[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1]
    good = window[valid[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1]]
    return float(np.median(good)) if len(good) else math.nan


def _speckle_dots(speckle: npt.NDArray[np.uint8], flood: npt.NDArray[np.uint8], inside: npt.NDArray[np.bool_]) -> float:
    """Share of the board's pixels where the speckle image shows a small bright dot the flood-lit one has not
    (a 5x5 white top-hat, brighter by ``_DOT_STEP``): the projector's dots, whatever the board looks like."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def dots(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
        return cv2.morphologyEx(image, cv2.MORPH_TOPHAT, kernel).astype(np.int16)

    extra = (dots(speckle) - dots(flood)) > _DOT_STEP
    return _share(extra & inside, inside)


def _share(part: npt.NDArray[np.bool_], whole: npt.NDArray[np.bool_]) -> float:
    return float(np.count_nonzero(part)) / max(1, int(np.count_nonzero(whole)))


def _check_rgb(
    found: _Findings,
    figures: dict[str, Any],
    rgb: npt.NDArray[np.uint8],
    board: Board,
    calibration: CameraCalibration,
    corners_ir: npt.NDArray[np.float64],
    limits: CameraLimits,
) -> None:
    """IR-to-RGB misalignment, and the RGB camera's focus judged against the IR camera's."""
    view = detect(rgb, board)
    rgb_blur = figures["rgb_blur_px"] = blur_px(view)
    ir_blur = figures["ir_blur_px"]
    ir_sharp = ir_blur is not None and ir_blur <= limits.field_rgb_blur_px
    if view.count < MIN_CORNERS:
        verdict = FieldVerdict.RGB_FOCUS if ir_sharp else FieldVerdict.NO_TARGET
        found.add(
            verdict,
            _(
                "The board is not found in the RGB image ({count} corners) though the IR camera sees it",
                count=view.count,
            ),
        )
        return
    if rgb_blur is not None and rgb_blur > limits.field_rgb_blur_px:
        if ir_sharp:
            line = N_("The RGB image is blurred ({value:.1f} px, limit {limit:.1f} px) while the IR image is sharp")
        else:
            line = N_("Both images are blurred (RGB {value:.1f} px, limit {limit:.1f} px): hold the board still")
        found.add(
            FieldVerdict.RGB_FOCUS if ir_sharp else FieldVerdict.NO_TARGET,
            _(line, value=rgb_blur, limit=limits.field_rgb_blur_px),
        )
    extrinsics = calibration.rgb_from_ir
    rotation = np.array(extrinsics.R, np.float64)
    corners_rgb = corners_ir @ rotation.T + np.array(extrinsics.t_m, np.float64)
    k, dist = _matrices(calibration.rgb)
    predicted, _jacobian = cv2.projectPoints(corners_rgb, np.zeros(3), np.zeros(3), k, dist)
    errors = predicted.reshape(-1, 2)[view.ids] - view.corners.astype(np.float64)
    misalignment = float(np.sqrt(np.mean(np.sum(errors**2, axis=1))))
    figures["misalignment_px"] = misalignment
    found.against(
        misalignment,
        limits.field_misalignment_px,
        N_("IR and RGB disagree by {value:.1f} px RMS on the board's corners (limit {limit:.1f} px)"),
        N_("IR and RGB disagree by {value:.1f} px RMS, close to the limit of {limit:.1f} px"),
    )


def wall_check(
    depth: npt.NDArray[np.uint16],
    ir: Intrinsics,
    baseline_mm: float,
    limits: CameraLimits,
    distance_m: float | None = None,
    *,
    range_mm: tuple[int, int] | None = None,
) -> FieldCheck:
    """The field check on a flat wall filling the view: the depth quality (camera.depth) against the limits.

    Missing or noisy depth is the projector's fault; with ``distance_m`` (measured by tape) a Z error over
    ``field_depth_bias_pct`` is drift.  Nothing here sees the board, so reprojection and misalignment stay None."""
    quality = measure_depth(depth, ir, baseline_mm, distance_m, range_mm=range_mm)
    found = _Findings()
    # Fill and noise: the pattern's fault.  The Z error is judged below, against the field check's own limit.
    for line in depth_failures(quality, dataclasses.replace(limits, z_error_pct=math.inf)):
        found.add(FieldVerdict.PROJECTOR, line)
    found.against(
        quality.z_error_pct,
        limits.field_depth_bias_pct,
        N_("The wall reads {value:+.2f} % off its measured distance (limit {limit:.2f} %)"),
        N_("The wall reads {value:+.2f} % off its measured distance, close to the limit of {limit:.2f} %"),
    )
    figures = {
        "depth_bias_pct": quality.z_error_pct,
        "fill_rate": quality.fill_rate,
        "board_distance_m": None,
        "depth": quality,
    }
    return _result(found, figures)


def _result(found: _Findings, figures: dict[str, Any]) -> FieldCheck:
    verdict = found.verdict()
    LOG.debug("field check: %s %s", verdict, figures)
    return FieldCheck(
        verdict=verdict,
        passed=verdict is FieldVerdict.OK,
        reprojection_rms_px=figures.get("reprojection_rms_px"),
        misalignment_px=figures.get("misalignment_px"),
        depth_bias_pct=figures.get("depth_bias_pct"),
        board_distance_m=figures.get("board_distance_m"),
        fill_rate=figures.get("fill_rate"),
        findings=found.lines,
        verdicts=[str(v) for v in dict.fromkeys(found.verdicts)],
        advice=found.advice(verdict),
        ir_blur_px=figures.get("ir_blur_px"),
        rgb_blur_px=figures.get("rgb_blur_px"),
        speckle_dots=figures.get("speckle_dots"),
        depth=figures.get("depth"),
    )
