"""Where a face found in the RGB image is in the IR image (and so on the depth, which is on the IR grid).

The two cameras sit a few centimetres apart, so the same face lands some pixels apart in their images, by an
amount that depends on its distance (parallax).  :func:`face_in_ir` finds that distance from the depth itself:
it projects the IR grid's depth points into the RGB image with the calibration (X_rgb = R X_ir + t) and takes
the median depth of those that fall in the middle of the RGB face box; then it moves the box corners and the
landmarks back into the IR image at that distance.  The face's relief (a few centimetres) moves its points by
under a pixel at the baselines of these modules, so one distance serves the whole face.

A unit without a stored calibration uses :func:`nominal_calibration`, its model's nominal camera module.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

from terminal.camera import CameraCalibration, Extrinsics, Intrinsics
from terminal.models import CameraModule

from .depth import pixel_rays, undistort
from .faces import Face, Point

LOG = logging.getLogger(__name__)

FACE_WIDTH_M = 0.16  # a detector's face box at the face's distance, roughly (ear to ear): the fallback distance
CORE_SHARE = 0.5  # the middle of the RGB box (this share of its width and height) whose depth places the face
MIN_DEPTH_POINTS = 12  # fewer depth points in the core: no measured distance, the face's size gives one
SEARCH_RANGE_M = (0.15, 2.0)  # where a face can be: bounds the IR region searched for its depth points
_STEP = 4  # depth points taken every _STEP pixels in each direction (plenty for a median)

Floats = npt.NDArray[np.float64]


def nominal_calibration(serial: str, model_id: str, module: CameraModule) -> CameraCalibration:
    """The model's nominal camera module as a calibration: for a unit that has none stored.

    Principal points at the image centres, no distortion, the IR-to-RGB motion a pure translation.  Good to a
    few pixels on a unit within its model's spread: enough to place a face box, not to measure a board."""

    def camera(size: tuple[int, int], focal: float) -> Intrinsics:
        width, height = size
        return Intrinsics(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)

    x, y, z = (v / 1000.0 for v in module.rgb_from_ir_t_mm)
    identity = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    return CameraCalibration(
        serial=serial,
        model=model_id,
        ir=camera(module.ir_resolution, module.focal_length_px),
        rgb=camera(module.rgb_resolution, module.rgb_focal_length_px),
        rgb_from_ir=Extrinsics(identity, (x, y, z)),
        created=0.0,
        figures={"nominal": 1},
    )


def _motion(extrinsics: Extrinsics) -> tuple[Floats, Floats]:
    return np.array(extrinsics.R, np.float64), np.array(extrinsics.t_m, np.float64) * 1000.0


def _project(points_mm: Floats, camera: Intrinsics) -> Floats:
    """Pixels (N, 2) of camera-frame points (N, 3, mm) through ``camera``'s lens (OpenCV's model)."""
    if not len(points_mm):
        return np.zeros((0, 2), np.float64)
    k, dist = np.array(camera.K, np.float64), np.array(camera.dist, np.float64)
    pixels, _jacobian = cv2.projectPoints(points_mm.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k, dist)
    return np.asarray(pixels, np.float64).reshape(-1, 2)


def rgb_to_ir(pixels: npt.ArrayLike, z_rgb_mm: float, calibration: CameraCalibration) -> Floats:
    """IR pixels (N, 2) of RGB pixels (N, 2) on a surface ``z_rgb_mm`` from the RGB camera."""
    rays = undistort(np.asarray(pixels, np.float64).reshape(-1, 2), calibration.rgb)
    points = np.column_stack([rays * z_rgb_mm, np.full(len(rays), z_rgb_mm)])
    rotation, t = _motion(calibration.rgb_from_ir)
    return _project((points - t) @ rotation, calibration.ir)  # X_ir = R^T (X_rgb - t)


def _corners(box: tuple[float, float, float, float]) -> Floats:
    x0, y0, x1, y1 = box
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[x0, y0], [xm, y0], [x1, y0], [x1, ym], [x1, y1], [xm, y1], [x0, y1], [x0, ym]], np.float64)


def face_distance_mm(face_rgb: Face, depth_mm: npt.NDArray[np.uint16], calibration: CameraCalibration) -> float | None:
    """The median distance (mm, along the RGB camera's axis) of the depth points that land in the middle of
    ``face_rgb``'s box; None when fewer than MIN_DEPTH_POINTS do (no depth on the face)."""
    ir = calibration.ir
    if depth_mm.shape != (ir.height, ir.width):
        return None
    x0, y0, x1, y1 = face_rgb.box
    cx, cy = face_rgb.centre
    hw, hh = (x1 - x0) * CORE_SHARE / 2, (y1 - y0) * CORE_SHARE / 2
    # The IR region the core can be in, for any distance a face can be at: only its depth points are projected.
    core = _corners((cx - hw, cy - hh, cx + hw, cy + hh))
    reach = np.vstack([rgb_to_ir(core, z * 1000.0, calibration) for z in SEARCH_RANGE_M])
    left, top = (max(0, int(v)) for v in np.floor(reach.min(axis=0)))
    right, bottom = (int(v) + 1 for v in np.ceil(reach.max(axis=0)))
    right, bottom = min(ir.width, right), min(ir.height, bottom)
    if right <= left or bottom <= top:
        return None
    z = depth_mm[top:bottom:_STEP, left:right:_STEP].astype(np.float64)
    valid = z > 0
    if np.count_nonzero(valid) < MIN_DEPTH_POINTS:
        return None
    rays = pixel_rays(ir)[top:bottom:_STEP, left:right:_STEP][valid]
    points = np.column_stack([rays * z[valid][:, None], z[valid]])
    rotation, t = _motion(calibration.rgb_from_ir)
    in_rgb = points @ rotation.T + t
    pixels = _project(in_rgb, calibration.rgb)
    inside = (np.abs(pixels[:, 0] - cx) <= hw) & (np.abs(pixels[:, 1] - cy) <= hh) & (in_rgb[:, 2] > 0)
    if np.count_nonzero(inside) < MIN_DEPTH_POINTS:
        return None
    return float(np.median(in_rgb[inside, 2]))


def face_in_ir(face_rgb: Face, depth_mm: npt.NDArray[np.uint16], calibration: CameraCalibration) -> Face | None:
    """The same face in the IR image: its box (the bounds of the mapped box outline) and landmarks.

    The distance comes from the depth on the face (:func:`face_distance_mm`); without depth there (the
    projector off, a surface that swallows its dots) from the box's size (a face is about FACE_WIDTH_M wide), so
    the IR image can still be judged.  None when the face falls outside the IR image altogether."""
    z_mm = face_distance_mm(face_rgb, depth_mm, calibration)
    if z_mm is None:
        z_mm = calibration.rgb.fx * FACE_WIDTH_M * 1000.0 / max(face_rgb.width, 1.0)
        LOG.debug("no depth on the face: placed at %.0f mm from its size", z_mm)
    outline = rgb_to_ir(_corners(face_rgb.box), z_mm, calibration)
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0)
    ir = calibration.ir
    if x1 <= 0 or y1 <= 0 or x0 >= ir.width or y0 >= ir.height:
        return None
    landmarks: tuple[Point, ...] | None = None
    if face_rgb.landmarks is not None:
        mapped = rgb_to_ir(np.array(face_rgb.landmarks, np.float64), z_mm, calibration)
        landmarks = tuple((float(x), float(y)) for x, y in mapped)
    return Face((float(x0), float(y0), float(x1), float(y1)), face_rgb.score, landmarks)
