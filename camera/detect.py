"""Finding a ChArUco board in an image: its corners, their board points, and how sharp the view is."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from terminal.camera import Board

from .board import charuco_board

_LOCAL = threading.local()  # OpenCV detectors are built once per thread and board, never shared across threads


@dataclass(frozen=True)
class Detection:
    """The ChArUco corners found in one image (none when there was no board) and the image's sharpness.

    ``sharpness`` is the steepest intensity step across the board's edges near the corners, per pixel and as a
    share of the local black-to-white contrast (median over corners): about 0.4-0.5 for a sharp edge, and
    1 / (sigma * sqrt(2 pi)) for an edge blurred by a Gaussian of sigma pixels; 0 without corners.
    """

    ids: npt.NDArray[np.int32]  # (N,)
    corners: npt.NDArray[np.float32]  # (N, 2) pixels
    image_size: tuple[int, int]  # (w, h)
    sharpness: float
    spacing_px: float = 0.0  # median distance from a corner to its nearest neighbour (about a square's side)

    @property
    def count(self) -> int:
        return int(self.ids.shape[0])


def grey(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """``image`` as 8-bit grey: grey or BGR(A), 8 or 16 bits (16-bit scaled by its brightest pixels)."""
    if image.dtype != np.uint8:
        data = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(np.percentile(data, 99.9)) or 1.0
        image = np.clip(data * (255.0 / top), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(np.asarray(image, np.uint8), code)
    return np.ascontiguousarray(image, np.uint8)


def _detector(board: Board) -> cv2.aruco.CharucoDetector:
    cache: dict[Board, cv2.aruco.CharucoDetector] = _LOCAL.__dict__.setdefault("detectors", {})
    if board not in cache:
        cache[board] = cv2.aruco.CharucoDetector(charuco_board(board))
    return cache[board]


def detect(image: npt.NDArray[np.generic], board: Board) -> Detection:
    """The board's ChArUco corners in ``image`` (grey or colour), refined to subpixel by OpenCV's detector."""
    picture = grey(image)
    height, width = picture.shape
    corners, ids, _marker_corners, _marker_ids = _detector(board).detectBoard(picture)
    if ids is None or corners is None or len(ids) == 0:
        return Detection(np.zeros(0, np.int32), np.zeros((0, 2), np.float32), (width, height), 0.0)
    points = np.asarray(corners, np.float32).reshape(-1, 2)
    spacing = _spacing(points)
    return Detection(
        np.asarray(ids, np.int32).reshape(-1), points, (width, height), _sharpness(picture, points, spacing), spacing
    )


def match_points(detection: Detection, board: Board) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The board points (N, 3) and image points (N, 2) of a detection's corners, via ``matchImagePoints``."""
    if detection.count == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32)
    charuco: Any = charuco_board(board)  # OpenCV's stubs want a list of arrays; one (N, 1, 2) array is what it takes
    objects, images = charuco.matchImagePoints(detection.corners.reshape(-1, 1, 2), detection.ids.reshape(-1, 1))
    return np.asarray(objects, np.float32).reshape(-1, 3), np.asarray(images, np.float32).reshape(-1, 2)


def _spacing(corners: npt.NDArray[np.float32]) -> float:
    if len(corners) < 2:
        return 20.0
    gaps = np.linalg.norm(corners[:, None, :] - corners[None, :, :], axis=2)
    np.fill_diagonal(gaps, np.inf)
    return float(np.median(gaps.min(axis=1)))


def _sharpness(picture: npt.NDArray[np.uint8], corners: npt.NDArray[np.float32], spacing: float) -> float:
    """Median over corners of the steepest step near each corner per unit of local contrast (see Detection).

    All corners' patches at once: a loop of small numpy calls per corner held the interpreter long enough, on
    sixteen units calibrating together, to stall the console's event loop."""
    half = int(np.clip(spacing * 0.3, 3, 12))
    height, width = picture.shape
    centres = np.rint(np.asarray(corners, np.float64).reshape(-1, 2)).astype(np.int64)  # half to even, as round()
    cx, cy = centres[:, 0], centres[:, 1]
    inside = (cx - half - 1 >= 0) & (cy - half - 1 >= 0) & (cx + half + 2 <= width) & (cy + half + 2 <= height)
    if not inside.any():
        return 0.0
    offsets = np.arange(-half - 1, half + 2)
    rows, cols = cy[inside, None] + offsets, cx[inside, None] + offsets
    patches = picture[rows[:, :, None], cols[:, None, :]].astype(np.float32)
    gx = (patches[:, 1:-1, 2:] - patches[:, 1:-1, :-2]) / 2
    gy = (patches[:, 2:, 1:-1] - patches[:, :-2, 1:-1]) / 2
    low, high = np.percentile(patches.reshape(len(patches), -1), (5, 95), axis=1)
    contrast = high - low
    kept = contrast >= 20
    if not kept.any():
        return 0.0
    steepest = np.hypot(gx, gy).reshape(len(patches), -1).max(axis=1)
    return float(np.median(steepest[kept].astype(np.float64) / contrast[kept].astype(np.float64)))
