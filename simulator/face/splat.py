"""Seeing a surface through a camera: dense point splatting with a z-buffer.

The surface's canonical grid is resampled so that neighbouring points land at most ``SPACING_PX`` apart in the
image, every point is projected with ``cv2.projectPoints`` through the camera's own intrinsics and distortion
(so a face lands exactly where OpenCV's model puts it), and the nearest point wins each pixel.  Big images are
splatted at 1/k resolution and the winners' grid coordinates interpolated back up: the texture, normals and
albedo are then looked up per full-resolution pixel, so only the silhouettes are coarser.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from terminal.camera import Intrinsics

from ..camera.optics import ray_bounds
from .heads import GRID_ORIGIN_M, TEXEL_M, Floats
from .surfaces import Surface

SPACING_PX = 0.75
STEPS_PER_OCTAVE = 8
NEAR_MARGIN_M = 0.06  # how much nearer than its origin a turned head's nose may come
MIN_Z_M, RAY_MARGIN = 0.05, 0.05
SPLAT_FOCAL_PX = 560.0  # a camera of a longer focal length is splatted at 1/k resolution
INDEX_BITS = 24
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Layer:
    """What a camera sees of one surface, in the image window [y0:y1, x0:x1]: where it is hit, the camera's Z
    (m) there and the canonical grid coordinates (texel column, row) of what it sees."""

    x0: int
    y0: int
    hit: Mask
    z: Floats
    tx: Floats
    ty: Floats

    @property
    def window(self) -> tuple[slice, slice]:
        h, w = self.hit.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


def reduction(camera: Intrinsics) -> int:
    """k: the camera is splatted at 1/k of its resolution."""
    return max(1, round(camera.fx / SPLAT_FOCAL_PX))


@dataclass(frozen=True)
class Cloud:
    """A surface's points: (N, 3) head coordinates, (N, 2) texel coordinates, the 8 corners of their box."""

    head: npt.NDArray[np.float32]
    texels: Floats
    corners: npt.NDArray[np.float64]


@functools.lru_cache(maxsize=8)
def points(surface: Surface, step_m: float) -> Cloud:
    """The surface's points about ``step_m`` apart (read-only; kept for the next frame at the same step)."""
    rows, cols = np.nonzero(surface.valid)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    factor = TEXEL_M / step_m
    h, w = max(2, round((r1 - r0) * factor)), max(2, round((c1 - c0) * factor))
    height = cv2.resize(surface.height[r0:r1, c0:c1], (w, h), interpolation=cv2.INTER_LINEAR)
    valid = cv2.resize(surface.valid[r0:r1, c0:c1].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    ys, xs = np.nonzero(valid)
    tx = (xs.astype(np.float32) + 0.5) * np.float32((c1 - c0) / w) - 0.5 + c0
    ty = (ys.astype(np.float32) + 0.5) * np.float32((r1 - r0) / h) - 0.5 + r0
    texel = np.float32(TEXEL_M)
    head = np.column_stack([GRID_ORIGIN_M[0] + tx * texel, GRID_ORIGIN_M[1] + ty * texel, height[ys, xs]])
    texels = np.column_stack([tx, ty])
    head, texels = head.astype(np.float32), texels.astype(np.float32)
    head.setflags(write=False)
    texels.setflags(write=False)
    low, high = [float(head[:, i].min()) for i in range(3)], [float(head[:, i].max()) for i in range(3)]
    corners = np.array([[(low, high)[i >> b & 1][b] for b in range(3)] for i in range(8)])
    return Cloud(head, texels, corners)


def step_for(camera: Intrinsics, nearest_m: float) -> float:
    """The grid step (m) that keeps neighbouring points at most SPACING_PX apart in the camera's splat image,
    rounded down to an eighth of an octave below the texel (so that nearby distances share one point cloud) and
    at most an octave below it: nearer than about 0.3 m the gaps are filled instead of splatting millions."""
    needed = SPACING_PX * max(nearest_m, 0.05) * reduction(camera) / camera.fx
    level = min(1.0, max(0.0, math.ceil(math.log2(TEXEL_M / needed) * STEPS_PER_OCTAVE) / STEPS_PER_OCTAVE))
    return float(TEXEL_M / 2.0**level)


def _in_view_mask(camera: Intrinsics, cam: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Points in front of the camera whose rays are within (a margin around) the camera's: the distortion
    polynomial folds back far outside the view, so those must not be projected."""
    z = cam[:, 2]
    bx0, bx1, by0, by1 = ray_bounds(camera)
    keep = z > MIN_Z_M
    keep &= (cam[:, 0] > (bx0 - RAY_MARGIN) * z) & (cam[:, 0] < (bx1 + RAY_MARGIN) * z)
    keep &= (cam[:, 1] > (by0 - RAY_MARGIN) * z) & (cam[:, 1] < (by1 + RAY_MARGIN) * z)
    return np.asarray(keep)


def _in_view(camera: Intrinsics, corners: npt.NDArray[np.float64]) -> bool:
    """Whether a box (its corners, camera coordinates) is wholly in view: then so is everything in it (the
    perspective image of a box is the hull of its corners' images)."""
    return bool(_in_view_mask(camera, corners).all())


def project(camera: Intrinsics, cam: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(N, 2) pixel coordinates of camera-frame points ``cam`` ((N, 3), Z > 0): OpenCV's pinhole and
    distortion model (k1, k2, p1, p2, k3), as ``cv2.projectPoints`` computes it (which is much slower)."""
    x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
    k1, k2, p1, p2, k3 = (np.float32(v) for v in (*camera.dist, 0.0, 0.0, 0.0, 0.0, 0.0)[:5])
    r2 = x * x + y * y
    radial = np.float32(1) + r2 * (k1 + r2 * (k2 + r2 * k3))
    two_xy = np.float32(2) * x * y
    xd = x * radial + p1 * two_xy + p2 * (r2 + np.float32(2) * x * x)
    yd = y * radial + p1 * (r2 + np.float32(2) * y * y) + p2 * two_xy
    return np.column_stack(
        [xd * np.float32(camera.fx) + np.float32(camera.cx), yd * np.float32(camera.fy) + np.float32(camera.cy)]
    )


def splat(
    camera: Intrinsics, surface: Surface, rotation: npt.NDArray[np.float64], t: npt.NDArray[np.float64]
) -> Layer | None:
    """The layer of ``surface`` seen by ``camera`` at X_cam = rotation X_head + t."""
    cloud = points(surface, step_for(camera, float(t[2]) - NEAR_MARGIN_M))
    transform = np.hstack([rotation, t.reshape(3, 1)])
    cam = np.asarray(cv2.transform(cloud.head.reshape(-1, 1, 3), transform), dtype=np.float32).reshape(-1, 3)
    texels = cloud.texels
    if not _in_view(camera, cloud.corners @ rotation.T + t):  # else every point is: no need to look at each
        keep = np.flatnonzero(_in_view_mask(camera, cam))  # take() is several times faster than a mask here
        cam, texels = cam.take(keep, axis=0), texels.take(keep, axis=0)
        if cam.shape[0] == 0:
            return None
    k = reduction(camera)
    px = project(camera, cam)
    xi = np.floor((px[:, 0] + np.float32(0.5)) / np.float32(k)).astype(np.int64)
    yi = np.floor((px[:, 1] + np.float32(0.5)) / np.float32(k)).astype(np.int64)
    wk, hk = -(-camera.width // k), -(-camera.height // k)
    inside = (xi >= 0) & (xi < wk) & (yi >= 0) & (yi < hk)
    if not inside.any():
        return None
    zk = cam[:, 2]
    if not inside.all():
        keep = np.flatnonzero(inside)
        xi, yi, zk, texels = xi[keep], yi[keep], zk[keep], texels.take(keep, axis=0)
    x0, x1, y0, y1 = int(xi.min()), int(xi.max()) + 1, int(yi.min()), int(yi.max()) + 1
    w, h = x1 - x0, y1 - y0
    empty = np.iinfo(np.int64).max
    buffer = np.full(h * w, empty, dtype=np.int64)
    key = (np.rint(zk * np.float32(64000.0)).astype(np.int64) << INDEX_BITS) | np.arange(zk.size, dtype=np.int64)
    np.minimum.at(buffer, (yi - y0) * w + (xi - x0), key)
    hit = buffer != empty
    winner = (buffer[hit] & ((1 << INDEX_BITS) - 1)).astype(np.intp)
    attributes = np.zeros((h * w, 3), dtype=np.float32)
    attributes[hit, 0] = zk[winner]
    attributes[hit, 1:] = texels.take(winner, axis=0)
    grid = attributes.reshape(h, w, 3)
    mask = hit.reshape(h, w).astype(np.float32)
    grid, mask = _fill_holes(grid, mask)
    if k > 1:
        full_w, full_h = min(w * k, camera.width - x0 * k), min(h * k, camera.height - y0 * k)
        weighted = cv2.resize(grid * mask[..., None], (w * k, h * k), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (w * k, h * k), interpolation=cv2.INTER_LINEAR)[:full_h, :full_w]
        grid = np.asarray(
            weighted[:full_h, :full_w] / np.maximum(mask, 1e-6)[..., None], dtype=np.float32
        )  # no blending with the misses
        x0, y0 = x0 * k, y0 * k
    inside_mask = mask > 0.5
    return Layer(x0, y0, inside_mask, grid[..., 0], grid[..., 1], grid[..., 2])


def _fill_holes(grid: Floats, mask: Floats) -> tuple[Floats, Floats]:
    """Pixels no point landed on, inside the surface: the mean of their hit neighbours."""
    closed = cv2.morphologyEx(  # outside the window is empty (OpenCV's default border would fill its edges)
        mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
    )  # a 3 x 3 closing fills gaps of up to two pixels
    holes = (closed > 0) & (mask == 0)
    if not holes.any():
        return grid, mask
    weight = cv2.boxFilter(mask, -1, (3, 3), normalize=False)
    summed = cv2.boxFilter(grid * mask[..., None], -1, (3, 3), normalize=False)
    filled = grid.copy()
    filled[holes] = summed[holes] / np.maximum(weight[holes], 1e-6)[:, None]
    return filled, np.maximum(mask, holes.astype(np.float32))


def pose(yaw_deg: float, pitch_deg: float, roll_deg: float) -> npt.NDArray[np.float64]:
    """The head's rotation: roll (image plane) after pitch (about x) after yaw (about y)."""

    def about(axis: int, degrees: float) -> npt.NDArray[np.float64]:
        rvec = np.zeros(3)
        rvec[axis] = math.radians(degrees)
        matrix, _ = cv2.Rodrigues(rvec)
        return np.asarray(matrix, dtype=np.float64)

    return about(2, roll_deg) @ about(0, pitch_deg) @ about(1, yaw_deg)
