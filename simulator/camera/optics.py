"""A camera's per-pixel rays and shading, computed once per camera and cached (within CACHE_BYTES, least
recently used first out: a bench of many units recomputes rather than grows).

A ray is the undistorted normalised coordinate (x, y) of a pixel centre: the exact inverse of OpenCV's
distortion model (``cv2.undistortPoints`` run to convergence on a coarse grid, then cubic Lagrange
interpolation, which stays within 1e-4 px of ``cv2.projectPoints``), so a scene point seen through a ray lands
on exactly that pixel when OpenCV projects it.  ``oversample`` s > 1 gives s x s sample rays per pixel for
area filtering.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from terminal.camera import Intrinsics

Floats = npt.NDArray[np.float32]
GRID_STEP = 16  # samples between exactly undistorted grid nodes
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-14)
_PAD = 2
CACHE_BYTES = 512 * 1024 * 1024  # about 9 frog-pro or 30 df2 units' rays
_cache: OrderedDict[tuple[str, Intrinsics, int], Floats] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(key: tuple[str, Intrinsics, int], make: Callable[[], Floats]) -> Floats:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = make()
    value.setflags(write=False)
    with _cache_lock:
        _cache[key] = value
        total = sum(v.nbytes for v in _cache.values())
        while total > CACHE_BYTES and len(_cache) > 1:
            total -= _cache.popitem(last=False)[1].nbytes
    return value


def _lagrange(samples: int, nodes: int) -> npt.NDArray[np.float32]:
    """(samples, nodes) weights of 4-point Lagrange interpolation from nodes every GRID_STEP samples."""
    x = np.arange(samples) / GRID_STEP + _PAD
    base = np.floor(x)
    f = x - base
    weights = np.stack(
        [
            -f * (f - 1) * (f - 2) / 6,
            (f + 1) * (f - 1) * (f - 2) / 2,
            -(f + 1) * f * (f - 2) / 2,
            (f + 1) * f * (f - 1) / 6,
        ],
        axis=1,
    )
    matrix = np.zeros((samples, nodes), dtype=np.float32)
    rows = np.arange(samples)
    for k in range(4):
        matrix[rows, base.astype(np.intp) - 1 + k] = weights[:, k]
    return matrix


def rays(camera: Intrinsics, oversample: int = 1) -> Floats:
    """(H*s, W*s, 2) float32 normalised coordinates of each sample's ray (s = ``oversample``)."""
    return _cached(("rays", camera, oversample), lambda: _rays(camera, oversample))


def _rays(camera: Intrinsics, oversample: int) -> Floats:
    width, height = camera.width * oversample, camera.height * oversample
    nx, ny = -(-width // GRID_STEP) + 2 * _PAD + 1, -(-height // GRID_STEP) + 2 * _PAD + 1
    sample_x = ((np.arange(nx) - _PAD) * GRID_STEP + 0.5) / oversample - 0.5
    sample_y = ((np.arange(ny) - _PAD) * GRID_STEP + 0.5) / oversample - 0.5
    grid = np.stack(np.meshgrid(sample_x, sample_y), axis=-1).reshape(-1, 1, 2)
    k = np.array(camera.K, dtype=np.float64)
    dist = np.array(camera.dist, dtype=np.float64)
    nodes = cv2.undistortPoints(grid, k, dist, None, None, None, _CRITERIA).reshape(ny, nx, 2)
    along_y, along_x = _lagrange(height, ny), _lagrange(width, nx)
    out = np.empty((height, width, 2), dtype=np.float32)
    for c in range(2):  # along x on the few node rows first, then along y: the cheaper order
        out[..., c] = along_y @ (nodes[..., c].astype(np.float32) @ along_x.T)
    return out


def vignetting(camera: Intrinsics) -> Floats:
    """(H, W) relative illumination: 1 at the principal point, falling off gently towards the corners."""

    def make() -> Floats:
        x = (np.arange(camera.width, dtype=np.float32) - camera.cx) / camera.fx
        y = (np.arange(camera.height, dtype=np.float32) - camera.cy) / camera.fy
        r2 = x[None, :] ** 2 + y[:, None] ** 2
        return (1.0 / (1.0 + 0.35 * r2) ** 2).astype(np.float32)

    return _cached(("vignetting", camera, 1), make)


@functools.lru_cache(maxsize=256)
def ray_bounds(camera: Intrinsics, oversample: int = 1) -> tuple[float, float, float, float]:
    """x min, x max, y min, y max of the camera's rays: the box every ray lies in."""
    r = rays(camera, oversample)
    return float(r[..., 0].min()), float(r[..., 0].max()), float(r[..., 1].min()), float(r[..., 1].max())
