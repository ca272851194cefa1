"""Depth quality on a flat target, with the metrics of the Intel RealSense Depth Quality Tool (DQT).

Source of the definitions: librealsense, ``tools/depth-quality`` (``rs-depth-quality.cpp``: the metric
definitions and their computation; ``depth-metrics.h``: ``analyze_depth_image``, ``plane_from_points``), Apache
2.0, https://github.com/IntelRealSense/librealsense/tree/master/tools/depth-quality, and its ``readme.md``.
As there:

- **ROI**: a rectangle centred in the depth image, ``roi_fraction`` of its width and height (DQT lets the user
  pick it; ``(x0, y0, x1, y1)``, end exclusive).
- **Fill rate**: valid (non-zero) depth pixels in the ROI over all pixels of the ROI.
- The valid ROI pixels are deprojected through the IR camera's intrinsics (the depth is registered to the IR
  pixel grid); the points with the lowest and the highest 0.5 % of Z are dropped as outliers, and a plane is
  fitted to the rest by least squares (through the centroid, normal along the least spread).  Every figure
  below uses those points.  (The DQT fits the plane before it drops the outliers; fitting after keeps a few
  wild pixels from tilting the plane.)
- **Plane-fit RMS** (spatial noise, mm): RMS of the distances of the points from the fitted plane.  We also
  give it as a % of the distance (the ground truth when known, else the fitted plane's distance along the
  optical axis), which is how the model's limit is written.  (The DQT divides by ``-p.d``, the plane's
  perpendicular distance from the camera; for a tilted wall ours is the larger, by 1 / cos(tilt), so the
  percentage is the smaller: a stated deviation, chosen so the % matches the distance the wall is set at.)
- **Subpixel RMS** (px): with D_i = b f / Z_i and Dp_i = b f / Zp_i (b the projector baseline in mm, f the IR
  focal length in px, Zp_i the depth of point i projected onto the plane), RMS of D_i - Dp_i.  (The DQT's code
  divides by the point's range rather than its Z; the definition it prints, used here, divides by Z.)
- **Z accuracy** (needs the ground truth GT, the target's distance along the optical axis): the fitted plane
  is moved onto the GT plane, where it crosses the optical axis (offset = Z of that crossing - GT); the error
  of point i is offset + its signed distance from the fitted plane (positive away from the camera); the
  figure is the median error, in mm and as a % of GT.  Positive: the depth reads too far.

``z_median_mm`` is the median Z of the kept points (what the camera reads the target's distance as).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera import Intrinsics
from terminal.models import CameraLimits

from .errors import CameraError
from .labels import DEPTH_FIGURES as DEPTH_FIGURES  # how people read the figures below (label, unit)

OUTLIER_SHARE = 1 / 200  # the DQT drops this share of points at each end of Z
MIN_POINTS = 50  # fewer valid pixels than this: no plane is fitted
_MIN_NORMAL_Z = 0.1  # a plane seen almost edge-on (over ~84 degrees) does not cross the optical axis usefully
_RAY_STEP = 4
_UNDISTORT = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-12)


class UnusableFrame(CameraError):
    """A frame handed to the depth quality or the field check is not an image of the expected kind."""

    message = N_("The {stream} frame cannot be used: {detail}")
    remedy = N_("Capture the frames again; if this repeats, the unit's camera or its firmware is at fault.")


class UnusableSetting(CameraError):
    """A figure the measurement needs (baseline, distance, ROI share) is not a usable number."""

    message = N_("The depth measurement cannot use {name} = {value}")
    remedy = N_("Check the model table's camera entry and the distances asked for.")


@dataclass(frozen=True)
class DepthQuality:
    """The DQT's figures for one depth frame of a flat target; ``None`` where no plane could be fitted."""

    distance_m: float | None  # the target's true distance (ground truth), when known
    fill_rate: float  # 0..1
    plane_rms_mm: float | None
    plane_rms_pct: float | None
    z_median_mm: float | None
    z_error_mm: float | None  # None without ground truth
    z_error_pct: float | None
    subpixel_rms_px: float | None
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "roi": list(self.roi)}


@dataclass(frozen=True)
class Plane:
    """A plane fitted to points in camera coordinates (mm): n . X + d = 0, with n pointing away from the camera."""

    normal: npt.NDArray[np.float64]
    d: float

    def distances(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Signed distances of ``points`` (N, 3) from the plane; positive behind it, seen from the camera."""
        result: npt.NDArray[np.float64] = points @ self.normal + self.d
        return result

    @property
    def axis_z(self) -> float:
        """Z where the optical axis crosses the plane."""
        return -self.d / float(self.normal[2])


def fit_plane(points: npt.NDArray[np.float64]) -> Plane | None:
    """Least-squares plane through ``points`` (N, 3): through their centroid, normal along the least spread.

    None when the points do not span a plane that faces the camera (too few, collinear or seen edge-on)."""
    if len(points) < 3:
        return None
    centroid = points.mean(axis=0)
    centred = points - centroid
    values, vectors = np.linalg.eigh(centred.T @ centred)
    if not np.all(np.isfinite(values)) or values[1] <= 0:
        return None
    normal = vectors[:, 0]
    if normal[2] < 0:
        normal = -normal
    if normal[2] < _MIN_NORMAL_Z:
        return None
    return Plane(normal, -float(normal @ centroid))


def require_image(
    array: object, stream: str, dtype: type[np.generic], shape: tuple[int, ...] | None = None, *, channels: int = 1
) -> npt.NDArray[Any]:
    """``array`` if it is an image of ``dtype`` with ``channels`` (and ``shape`` (H, W) when given), else
    :class:`UnusableFrame` saying what is wrong."""
    if not isinstance(array, np.ndarray):
        raise UnusableFrame(stream=stream, detail=_("it is not an image array"))
    if array.dtype != dtype:
        raise UnusableFrame(
            stream=stream,
            detail=_("its pixels are {found}, not {wanted}", found=str(array.dtype), wanted=dtype.__name__),
        )
    wanted_ndim = 2 if channels == 1 else 3
    if array.ndim != wanted_ndim or (channels > 1 and array.shape[2] != channels) or min(array.shape[:2]) < 1:
        raise UnusableFrame(stream=stream, detail=_("its shape {shape} is not an image's", shape=array.shape))
    if shape is not None and array.shape[:2] != shape:
        raise UnusableFrame(
            stream=stream,
            detail=_(
                "it is {found} pixels, the calibration says {wanted}", found=_size(array.shape), wanted=_size(shape)
            ),
        )
    return array


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


def _require_number(name: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
        raise UnusableSetting(name=name, value=value)
    return float(value)


@functools.lru_cache(maxsize=8)
def pixel_rays(camera: Intrinsics) -> npt.NDArray[np.float64]:
    """(H, W, 2) normalised, undistorted image coordinates (x/z, y/z) of every pixel of ``camera``.

    Undistorted exactly on a grid every ``_RAY_STEP`` pixels and interpolated in between (distortion is smooth:
    under 0.002 px off at 1280x800 with strong distortion), five times faster than every pixel."""
    xs = np.arange(0, camera.width + _RAY_STEP, _RAY_STEP, dtype=np.float64)
    ys = np.arange(0, camera.height + _RAY_STEP, _RAY_STEP, dtype=np.float64)
    grid_x, grid_y = np.meshgrid(xs, ys)
    coarse = undistort(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1), camera).reshape(len(ys), len(xs), 2)
    map_x, map_y = np.meshgrid(
        np.arange(camera.width, dtype=np.float32) / _RAY_STEP, np.arange(camera.height, dtype=np.float32) / _RAY_STEP
    )
    channels = [cv2.remap(coarse[..., i], map_x, map_y, cv2.INTER_LINEAR) for i in range(2)]
    return np.dstack(channels).astype(np.float64)


def undistort(pixels: npt.NDArray[Any], camera: Intrinsics) -> npt.NDArray[np.float64]:
    """Normalised undistorted coordinates (N, 2) of pixel positions (N, 2) of ``camera``."""
    points = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
    if not len(points):
        return np.zeros((0, 2), dtype=np.float64)
    k = np.array(camera.K, dtype=np.float64)
    dist = np.array(camera.dist, dtype=np.float64)
    result = cv2.undistortPoints(points, k, dist, criteria=_UNDISTORT)
    return np.asarray(result, dtype=np.float64).reshape(-1, 2)


def centre_roi(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    """The DQT's ROI: ``fraction`` of the width and height, centred; at least one pixel."""
    w, h = max(1, round(width * fraction)), max(1, round(height * fraction))
    x0, y0 = (width - w) // 2, (height - h) // 2
    return x0, y0, x0 + w, y0 + h


def measure_depth(
    depth_mm: npt.NDArray[np.uint16],
    ir: Intrinsics,
    baseline_mm: float,
    distance_m: float | None = None,
    *,
    roi_fraction: float = 0.8,
    range_mm: tuple[int, int] | None = None,
) -> DepthQuality:
    """The DQT's figures of ``depth_mm`` (a flat target filling the ROI), see the module's docstring.

    ``distance_m`` is the ground truth (Z accuracy needs it); depth outside ``range_mm`` (the module's range,
    when given) counts as no depth, as the camera itself would report it.  Raises :class:`UnusableFrame` or
    :class:`UnusableSetting` for input that cannot be measured at all; a frame without depth is measured
    (fill rate 0, no plane) and fails :func:`depth_failures`."""
    depth = require_image(depth_mm, "depth", np.uint16, (ir.height, ir.width))
    baseline = _require_number("baseline_mm", baseline_mm, 0.0, 10_000.0)
    fraction = _require_number("roi_fraction", roi_fraction, 0.0, 1.0)
    truth_mm = None if distance_m is None else 1000.0 * _require_number("distance_m", distance_m, 0.0, 100.0)
    roi = centre_roi(ir.width, ir.height, fraction)
    x0, y0, x1, y1 = roi
    patch = depth[y0:y1, x0:x1]
    valid = patch > 0
    if range_mm is not None:
        valid &= (patch >= range_mm[0]) & (patch <= range_mm[1])
    fill_rate = float(np.count_nonzero(valid)) / valid.size
    nothing = DepthQuality(distance_m, fill_rate, None, None, None, None, None, None, roi)
    if np.count_nonzero(valid) < MIN_POINTS:
        return nothing
    z = patch[valid].astype(np.float64)
    rays = pixel_rays(ir)[y0:y1, x0:x1][valid]
    points = np.column_stack([rays * z[:, None], z])
    order = np.argsort(z, kind="stable")
    cut = len(order) // round(1 / OUTLIER_SHARE)
    kept = points[order[cut : len(order) - cut]]
    plane = fit_plane(kept)
    if plane is None:
        return nothing
    offsets = plane.distances(kept)
    plane_rms = float(np.sqrt(np.mean(offsets**2)))
    projected_z = kept[:, 2] - offsets * plane.normal[2]
    bf = baseline * ir.fx
    subpixel = float(np.sqrt(np.mean((bf / kept[:, 2] - bf / projected_z) ** 2)))
    axis_z = plane.axis_z
    reference = truth_mm if truth_mm is not None else axis_z
    z_error = None if truth_mm is None else float(np.median(axis_z - truth_mm + offsets))
    return DepthQuality(
        distance_m=distance_m,
        fill_rate=fill_rate,
        plane_rms_mm=plane_rms,
        plane_rms_pct=100.0 * plane_rms / reference if reference > 0 else None,
        z_median_mm=float(np.median(kept[:, 2])),
        z_error_mm=z_error,
        z_error_pct=None if z_error is None or truth_mm is None else 100.0 * z_error / truth_mm,
        subpixel_rms_px=subpixel if math.isfinite(subpixel) else None,
        roi=roi,
    )


def depth_failures(quality: DepthQuality, limits: CameraLimits) -> list[str]:
    """Why ``quality`` fails the model's ``limits``, translated; empty when it passes."""
    failures = []
    if quality.fill_rate < limits.min_fill_rate:
        failures.append(
            _(
                "Fill rate {value:.1%} is below the limit of {limit:.1%}",
                value=quality.fill_rate,
                limit=limits.min_fill_rate,
            )
        )
    if quality.plane_rms_pct is None:
        failures.append(_("No plane could be fitted to the depth: too few valid pixels, or no flat target in view"))
    elif quality.plane_rms_pct > limits.plane_rms_pct:
        failures.append(
            _(
                "Plane-fit RMS {value:.2f} mm ({pct:.2f} % of the distance) is above the limit of {limit:.2f} %",
                value=quality.plane_rms_mm,
                pct=quality.plane_rms_pct,
                limit=limits.plane_rms_pct,
            )
        )
    if quality.subpixel_rms_px is not None and quality.subpixel_rms_px > limits.max_subpixel_rms_px:
        failures.append(
            _(
                "Subpixel RMS {value:.3f} px is above the limit of {limit:.3f} px",
                value=quality.subpixel_rms_px,
                limit=limits.max_subpixel_rms_px,
            )
        )
    if quality.z_error_pct is not None and abs(quality.z_error_pct) > limits.z_error_pct:
        failures.append(
            _(
                "Z accuracy {value:+.1f} mm ({pct:+.2f} % of the distance) is outside the limit of {limit:.2f} %",
                value=quality.z_error_mm,
                pct=quality.z_error_pct,
                limit=limits.z_error_pct,
            )
        )
    return failures
