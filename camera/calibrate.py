"""Solving a camera module's calibration from board views: each camera's intrinsics, then IR-to-RGB.

Each camera is solved alone with ``calibrateCameraExtended`` (OpenCV's five-coefficient model), which also gives
the standard deviation of every parameter and the error of every view; a view far worse than the others (a
misread corner, a moved board) is dropped and the camera solved again once.  The IR-to-RGB motion comes from
``stereoCalibrate`` on the corners both cameras saw, with both cameras' intrinsics held fixed.  The unit path
(the station's jig) and the folder path (:mod:`camera.offline`) share :func:`calibrate_views`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera import Board, CameraCalibration, Extrinsics, Intrinsics
from terminal.models import CameraLimits

from .board import charuco_board
from .detect import Detection, match_points
from .errors import CalibrationFailed, TooFewViews

PARAMETERS = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
MIN_POINTS = 6  # corners of one view a solve uses (a pose from a plane needs 4 in general position)
MIN_SOLVE_VIEWS = 3  # below this a camera cannot be solved at all; the limits ask for far more
OUTLIER_FACTOR = 4.0  # a view with an RMS this many times the median ...
OUTLIER_FLOOR_PX = 0.5  # ... and above this is dropped before the final solve
RMS_ABOVE = N_("{camera} reprojection RMS {value:.3f} px is above {limit:.3f} px")
FOCAL_UNCERTAIN = N_("{camera} focal length uncertain: standard deviation {value:.3f} % is above {limit:.3f} %")
PRINCIPAL_UNCERTAIN = N_(
    "{camera} principal point uncertain: standard deviation {value:.2f} px is above {limit:.2f} px"
)
STEREO_RMS_ABOVE = N_("IR-to-RGB RMS {value:.3f} px is above {limit:.3f} px")
Points = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class CameraResult:
    """One camera's intrinsics with their reprojection RMS, standard deviations and per-view errors."""

    intrinsics: Intrinsics
    rms_px: float
    std: dict[str, float]
    per_view_rms: list[float]
    views_used: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "K": [list(row) for row in self.intrinsics.K],
            "dist": list(self.intrinsics.dist),
            "rms_px": self.rms_px,
            "std": dict(self.std),
        }


@dataclass(frozen=True)
class StereoResult:
    """The IR-to-RGB motion (X_rgb = R X_ir + t) and the RMS of both cameras' reprojections."""

    rgb_from_ir: Extrinsics
    rms_px: float
    views_used: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "R": [list(row) for row in self.rgb_from_ir.R],
            "t_m": list(self.rgb_from_ir.t_m),
            "rms_px": self.rms_px,
        }


@dataclass(frozen=True)
class Calibration:
    """A camera module's calibration, as ``naiad calibrate --json`` prints it and a unit stores it."""

    ir: CameraResult
    rgb: CameraResult
    stereo: StereoResult
    views_used: int
    coverage: float | None = None  # share of the IR image the views covered, when a selector measured it

    def as_json(self) -> dict[str, Any]:
        return {
            "ir": self.ir.as_dict(),
            "rgb": self.rgb.as_dict(),
            "rgb_from_ir": self.stereo.as_dict(),
            "views_used": self.views_used,
        }

    def failures(self, limits: CameraLimits) -> list[str]:
        """What breaks ``limits``, translated; empty when the calibration is accepted."""
        above: list[tuple[float, float, str, str]] = []  # (figure, limit, msgid, camera): broken when figure > limit
        for name, result in (("IR", self.ir), ("RGB", self.rgb)):
            focal = max(result.std["fx"] / result.intrinsics.fx, result.std["fy"] / result.intrinsics.fy) * 100
            above += [
                (result.rms_px, limits.calibration_rms_px, RMS_ABOVE, name),
                (focal, limits.focal_std_pct, FOCAL_UNCERTAIN, name),
                (max(result.std["cx"], result.std["cy"]), limits.principal_std_px, PRINCIPAL_UNCERTAIN, name),
            ]
        above.append((self.stereo.rms_px, limits.stereo_rms_px, STEREO_RMS_ABOVE, "IR-RGB"))
        out = [
            _(msgid, camera=camera, value=value, limit=limit) for value, limit, msgid, camera in above if value > limit
        ]
        if self.views_used < limits.min_views:
            out.append(
                _("{found} views used; at least {needed} are needed", found=self.views_used, needed=limits.min_views)
            )
        if self.coverage is not None and self.coverage < limits.min_coverage:
            out.append(
                _(
                    "the views cover {coverage:.0%} of the image; at least {needed:.0%} is needed",
                    coverage=self.coverage,
                    needed=limits.min_coverage,
                )
            )
        return out

    def to_blob(self, serial: str, model: str, created: float) -> CameraCalibration:
        figures: dict[str, float | int] = {
            "ir_rms_px": self.ir.rms_px,
            "rgb_rms_px": self.rgb.rms_px,
            "stereo_rms_px": self.stereo.rms_px,
            "views_used": self.views_used,
        }
        for name, result in (("ir", self.ir), ("rgb", self.rgb)):
            for parameter in ("fx", "fy", "cx", "cy"):
                figures[f"{name}_std_{parameter}"] = result.std[parameter]
        return CameraCalibration(
            serial=serial,
            model=model,
            ir=self.ir.intrinsics,
            rgb=self.rgb.intrinsics,
            rgb_from_ir=self.stereo.rgb_from_ir,
            created=created,
            figures=figures,
        )


def calibrate_camera(points: list[Points], image_size: tuple[int, int]) -> CameraResult:
    """One camera's intrinsics from the (board points, image points) of its views."""
    views = [(o, i) for o, i in points if len(o) >= MIN_POINTS]
    if len(views) < MIN_SOLVE_VIEWS:
        raise TooFewViews(found=len(views), needed=MIN_SOLVE_VIEWS)
    solved = _solve(views, image_size)
    per_view = solved[3]
    median = float(np.median(per_view))
    keep = [v for v, e in zip(views, per_view, strict=True) if e <= max(OUTLIER_FACTOR * median, OUTLIER_FLOOR_PX)]
    if len(keep) < len(views) and len(keep) >= MIN_SOLVE_VIEWS:
        views, solved = keep, _solve(keep, image_size)
    rms, k, dist, per_view, std = solved
    width, height = image_size
    coefficients = tuple(float(v) for v in dist.ravel()[:5])
    intrinsics = Intrinsics(width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), coefficients)
    deviations = {name: float(v) for name, v in zip(PARAMETERS, std.ravel()[: len(PARAMETERS)], strict=True)}
    return CameraResult(intrinsics, rms, deviations, [float(e) for e in per_view], len(views))


def _solve(
    views: list[Points], image_size: tuple[int, int]
) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64], list[float], npt.NDArray[np.float64]]:
    objects = [o.reshape(-1, 1, 3).astype(np.float32) for o, _ in views]
    images = [i.reshape(-1, 1, 2).astype(np.float32) for _, i in views]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)
    try:
        rms, k, dist, _r, _t, std, _se, per_view = cv2.calibrateCameraExtended(
            objects, images, image_size, np.eye(3), np.zeros(5), criteria=criteria
        )
    except cv2.error as exc:
        raise CalibrationFailed(details=_("OpenCV could not solve the camera: {reason}", reason=exc.err)) from exc
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(dist)) and np.isfinite(rms)):
        raise CalibrationFailed(details=_("the camera solve did not converge"))
    floats = np.float64
    return (
        float(rms),
        np.asarray(k, floats),
        np.asarray(dist, floats),
        [float(e) for e in np.ravel(per_view)],
        np.asarray(std, floats),
    )


def common_points(ir: Detection, rgb: Detection, board: Board) -> tuple[npt.NDArray[np.float32], ...]:
    """Board points and both cameras' image points of the corners both detections hold."""
    _ids, a, b = np.intersect1d(ir.ids, rgb.ids, return_indices=True)
    objects = np.asarray(charuco_board(board).getChessboardCorners())[ir.ids[a]]
    return np.asarray(objects, np.float32), ir.corners[a], rgb.corners[b]


def calibrate_stereo(
    pairs: list[tuple[Detection, Detection]], board: Board, ir: Intrinsics, rgb: Intrinsics
) -> StereoResult:
    """The IR-to-RGB motion from the corners both cameras saw in each pair, both intrinsics held fixed."""
    objects, ir_points, rgb_points = [], [], []
    for ir_view, rgb_view in pairs:
        obj, a, b = common_points(ir_view, rgb_view, board)
        if len(obj) >= MIN_POINTS:
            objects.append(obj.reshape(-1, 1, 3))
            ir_points.append(a.reshape(-1, 1, 2))
            rgb_points.append(b.reshape(-1, 1, 2))
    if not objects:
        raise TooFewViews(found=0, needed=1)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)
    try:
        rms, *_k, rotation, translation, _e, _f = cv2.stereoCalibrate(
            objects,
            ir_points,
            rgb_points,
            np.array(ir.K),
            np.array(ir.dist),
            np.array(rgb.K),
            np.array(rgb.dist),
            (ir.width, ir.height),
            flags=cv2.CALIB_FIX_INTRINSIC,
            criteria=criteria,
        )
    except cv2.error as exc:
        raise CalibrationFailed(details=_("OpenCV could not solve IR-to-RGB: {reason}", reason=exc.err)) from exc
    r = tuple(tuple(float(v) for v in row) for row in rotation)
    t = tuple(float(v) for v in np.ravel(translation))
    return StereoResult(Extrinsics(r, t), float(rms), len(objects))  # type: ignore[arg-type]


def calibrate_views(
    pairs: list[tuple[Detection, Detection]], board: Board, ir_size: tuple[int, int], rgb_size: tuple[int, int]
) -> Calibration:
    """Both cameras and the motion between them from pairs of views taken at the same instants."""
    ir = calibrate_camera([match_points(i, board) for i, _ in pairs], ir_size)
    rgb = calibrate_camera([match_points(r, board) for _, r in pairs], rgb_size)
    stereo = calibrate_stereo(pairs, board, ir.intrinsics, rgb.intrinsics)
    return Calibration(ir, rgb, stereo, stereo.views_used)
