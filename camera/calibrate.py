"""Solving a camera module's calibration from board views: each camera's intrinsics, then IR-to-RGB.

Each camera is solved alone with ``calibrateCameraExtended`` (OpenCV's five-coefficient model), which also gives
the standard deviation of every parameter and the error of every view.  The IR-to-RGB motion comes from
``stereoCalibrateExtended`` on the corners both cameras saw, with both cameras' intrinsics held fixed.  A pair far
worse than the others in any of the three (a misread corner, a moved board, swapped files) is dropped from all
three and they are solved again, so every figure comes from the same pairs.  The unit path
(the station's jig) and the folder path (:mod:`camera.offline`) share :func:`calibrate_views`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera import Board, CameraCalibration, Extrinsics, Intrinsics
from terminal.models import CameraLimits

from .detect import Detection, match_points
from .errors import CalibrationFailed, CoverageTooLow, TooFewViews

PARAMETERS = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")
MIN_POINTS = 6  # corners of one view a solve uses (a pose from a plane needs 4 in general position)
MIN_SOLVE_VIEWS = 3  # below this a camera cannot be solved at all; the limits ask for far more
OUTLIER_FACTOR = 4.0  # a view with an RMS this many times the median ...
OUTLIER_FLOOR_PX = 0.5  # ... and above this is dropped before the final solve
SOLVE_ROUNDS = 4  # a bad pair can hide another (two files swapped): drop and solve again up to this often
MIN_TILT_DEG = 15.0  # a view pins the focal length only when its board is tilted by more than this ...
MIN_TILTED = 3  # ... and this many views must be so tilted about each of the camera's x and y axes
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)
NOT_COMMON = N_("too few corners seen by both cameras ({found}, at least {needed} needed)")
WORSE = N_("its corners fit far worse than the other pairs' ({errors})")
NOT_TILTED = N_(
    "{camera}: too few views tilted by more than {degrees:.0f} degrees about the image's {axis} axis "
    "({found}, at least {needed} needed); the focal length is not pinned down"
)
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
    tilted: tuple[int, int] = (MIN_TILTED, MIN_TILTED)  # views tilted over MIN_TILT_DEG about x, about y

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
    views_used: int
    per_view_rms: Sequence[float] = ()  # the worse of the two cameras' RMS in each view

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
    dropped: tuple[tuple[int, str, str], ...] = ()  # pairs left out: (index into the pairs, kind, why translated)

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
        out += self.untilted()
        if self.views_used < limits.min_views:
            out.append(_(TooFewViews.message, found=self.views_used, needed=limits.min_views))
        if self.coverage is not None and self.coverage < limits.min_coverage:
            out.append(_(CoverageTooLow.message, coverage=self.coverage, needed=limits.min_coverage))
        return out

    def untilted(self) -> list[str]:
        """Each camera axis about which too few views were tilted to pin the focal length, translated."""
        out = []
        for name, result in (("IR", self.ir), ("RGB", self.rgb)):
            for axis, found in zip(("x", "y"), result.tilted, strict=True):
                if found < MIN_TILTED:
                    out.append(
                        _(NOT_TILTED, camera=name, degrees=MIN_TILT_DEG, axis=axis, found=found, needed=MIN_TILTED)
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
    """One camera's intrinsics from the (board points, image points) of its views; a far worse view is dropped."""
    views = [(o, i) for o, i in points if len(o) >= MIN_POINTS]
    if len(views) < MIN_SOLVE_VIEWS:
        raise TooFewViews(found=len(views), needed=MIN_SOLVE_VIEWS)
    result = _camera(views, image_size)
    bad = outliers(result.per_view_rms)
    if bad and len(views) - len(bad) >= MIN_SOLVE_VIEWS:
        result = _camera([v for n, v in enumerate(views) if n not in bad], image_size)
    return result


def outliers(errors: Sequence[float]) -> set[int]:
    """Indices of the views whose error is far above the others' (a misread corner, a moved board)."""
    limit = max(OUTLIER_FACTOR * float(np.median(errors)), OUTLIER_FLOOR_PX) if len(errors) else 0.0
    return {n for n, e in enumerate(errors) if e > limit}


def _camera(views: list[Points], image_size: tuple[int, int]) -> CameraResult:
    objects = [o.reshape(-1, 1, 3).astype(np.float32) for o, _ in views]
    images = [i.reshape(-1, 1, 2).astype(np.float32) for _, i in views]
    try:
        rms, k, dist, rvecs, _t, std, _se, per_view = cv2.calibrateCameraExtended(
            objects, images, image_size, np.eye(3), np.zeros(5), criteria=_CRITERIA
        )
    except cv2.error as exc:
        raise CalibrationFailed(details=_("OpenCV could not solve the camera: {reason}", reason=exc.err)) from exc
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(dist)) and np.isfinite(rms)):
        raise CalibrationFailed(details=_("the camera solve did not converge"))
    width, height = image_size
    coefficients = tuple(float(v) for v in np.ravel(dist)[:5])
    intrinsics = Intrinsics(width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), coefficients)
    deviations = {name: float(v) for name, v in zip(PARAMETERS, np.ravel(std)[: len(PARAMETERS)], strict=True)}
    errors = [float(e) for e in np.ravel(per_view)]
    return CameraResult(intrinsics, float(rms), deviations, errors, len(views), _tilted(rvecs))


def _tilted(rvecs: Sequence[npt.ArrayLike]) -> tuple[int, int]:
    """Views whose board is tilted by more than MIN_TILT_DEG about the camera's x axis, and about its y axis."""
    about_x = about_y = 0
    for rvec in rvecs:
        normal = cv2.Rodrigues(np.asarray(rvec, np.float64))[0][:, 2]
        about_x += bool(np.degrees(np.arctan2(abs(normal[1]), abs(normal[2]))) > MIN_TILT_DEG)
        about_y += bool(np.degrees(np.arctan2(abs(normal[0]), abs(normal[2]))) > MIN_TILT_DEG)
    return about_x, about_y


def calibrate_stereo(
    pairs: list[tuple[Detection, Detection]], board: Board, ir: Intrinsics, rgb: Intrinsics
) -> StereoResult:
    """The IR-to-RGB motion from the corners both cameras saw in each pair, both intrinsics held fixed."""
    common = [_common(i, r, board) for i, r in pairs]
    return _stereo([c for c in common if len(c[0]) >= MIN_POINTS], ir, rgb)


def _common(ir: Detection, rgb: Detection, board: Board) -> tuple[npt.NDArray[np.float32], ...]:
    """Board points and both cameras' image points of the corners both detections hold."""
    _ids, a, b = np.intersect1d(ir.ids, rgb.ids, return_indices=True)
    shared = replace(ir, ids=ir.ids[a], corners=ir.corners[a])
    objects, ir_points = match_points(shared, board)
    return objects, ir_points, rgb.corners[b]


def _stereo(common: list[tuple[npt.NDArray[np.float32], ...]], ir: Intrinsics, rgb: Intrinsics) -> StereoResult:
    if len(common) < 1:
        raise TooFewViews(found=0, needed=MIN_SOLVE_VIEWS)
    objects = [o.reshape(-1, 1, 3) for o, _a, _b in common]
    ir_points = [a.reshape(-1, 1, 2) for _o, a, _b in common]
    rgb_points = [b.reshape(-1, 1, 2) for _o, _a, b in common]
    try:
        rms, *_k, rotation, translation, _e, _f, _r, _t, per_view = cv2.stereoCalibrateExtended(
            objects,
            ir_points,
            rgb_points,
            np.array(ir.K),
            np.array(ir.dist),
            np.array(rgb.K),
            np.array(rgb.dist),
            (ir.width, ir.height),
            np.eye(3),
            np.zeros((3, 1)),
            flags=cv2.CALIB_FIX_INTRINSIC,
            criteria=_CRITERIA,
        )
    except cv2.error as exc:
        raise CalibrationFailed(details=_("OpenCV could not solve IR-to-RGB: {reason}", reason=exc.err)) from exc
    r = tuple(tuple(float(v) for v in row) for row in rotation)
    t = tuple(float(v) for v in np.ravel(translation))
    errors = [float(e) for e in np.asarray(per_view, np.float64).reshape(len(common), -1).max(axis=1)]
    return StereoResult(Extrinsics(r, t), float(rms), len(common), errors)  # type: ignore[arg-type]


def _consensus(common: list[tuple[npt.NDArray[np.float32], ...]], ir: CameraResult, rgb: CameraResult) -> list[float]:
    """Each pair's RMS in the RGB image (px) when its IR pose is carried over by the median of all pairs' motions.

    One joint solve spreads a bad pair's error over every pair (two swapped files pull the motion off for all);
    the median of the pairs' own motions does not move for a few bad ones, so they alone stand out.
    """
    matrices = [(np.array(c.intrinsics.K), np.array(c.intrinsics.dist)) for c in (ir, rgb)]
    poses, motions = [], []
    for objects, *images in common:
        (r_ir, t_ir), (r_rgb, t_rgb) = (
            _pose(objects, image, k, dist) for image, (k, dist) in zip(images, matrices, strict=True)
        )
        rotation = r_rgb @ r_ir.T
        poses.append((r_ir, t_ir))
        motions.append((cv2.Rodrigues(rotation)[0].ravel(), t_rgb - rotation @ t_ir))
    median = np.asarray(cv2.Rodrigues(np.median([r for r, _t in motions], axis=0))[0], np.float64)
    translation = np.median([t for _r, t in motions], axis=0)
    errors = []
    for (objects, _a, b), (r_ir, t_ir) in zip(common, poses, strict=True):
        rvec = cv2.Rodrigues(median @ r_ir)[0]
        projected, _j = cv2.projectPoints(objects, rvec, median @ t_ir + translation, *matrices[1])
        errors.append(float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - b) ** 2, axis=1)))))
    return errors


def _pose(
    objects: npt.NDArray[np.float32], image: npt.NDArray[np.float32], k: npt.NDArray[Any], dist: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The board's rotation matrix and translation in a camera's frame, from one view."""
    _ok, rvec, tvec = cv2.solvePnP(objects, image, k, dist)
    return np.asarray(cv2.Rodrigues(rvec)[0], np.float64), np.asarray(tvec, np.float64).ravel()


def calibrate_views(
    pairs: list[tuple[Detection, Detection]], board: Board, ir_size: tuple[int, int], rgb_size: tuple[int, int]
) -> Calibration:
    """Both cameras and the motion between them from pairs of views taken at the same instants.

    All three solves use the same pairs: a pair far worse than the others in any of them (a misread corner, a
    board that moved between the two exposures, two files swapped) is dropped from all three, which are solved
    again (a few rounds at most); ``Calibration.dropped`` names the pairs left out (indices into ``pairs``) and why.
    """
    points = [(match_points(i, board), match_points(r, board), _common(i, r, board)) for i, r in pairs]
    kept = [n for n, (a, b, c) in enumerate(points) if min(len(a[0]), len(b[0]), len(c[0])) >= MIN_POINTS]
    dropped = [
        (n, "not-common", _(NOT_COMMON, found=len(points[n][2][0]), needed=MIN_POINTS))
        for n in range(len(pairs))
        if n not in kept
    ]
    if len(kept) < MIN_SOLVE_VIEWS:
        raise TooFewViews(found=len(kept), needed=MIN_SOLVE_VIEWS)
    for attempt in range(SOLVE_ROUNDS):
        ir = _camera([points[n][0] for n in kept], ir_size)
        rgb = _camera([points[n][1] for n in kept], rgb_size)
        common = [points[n][2] for n in kept]
        stereo = _stereo(common, ir.intrinsics, rgb.intrinsics)
        errors = {"IR": ir.per_view_rms, "RGB": rgb.per_view_rms, "IR-RGB": _consensus(common, ir, rgb)}
        bad = {name: outliers(e) for name, e in errors.items()}
        worse = sorted(set().union(*bad.values()))
        if attempt == SOLVE_ROUNDS - 1 or not worse or len(kept) - len(worse) < MIN_SOLVE_VIEWS:
            break
        for index in worse:
            why = ", ".join(
                _("{camera} {value:.2f} px", camera=name, value=errors[name][index])
                for name in errors
                if index in bad[name]
            )
            dropped.append((kept[index], "outlier", _(WORSE, errors=why)))
        kept = [n for i, n in enumerate(kept) if i not in worse]
    return Calibration(ir, rgb, stereo, len(kept), dropped=tuple(sorted(dropped)))
