"""What the camera's steps show as they go (the ``data`` of :class:`terminal.events.Observed`).

A calibration sends a :class:`ViewObservation` for every captured view (``kind`` ``"view"``), a
:class:`DepthObservation` for every depth frame it measures (``"depth"``) and a :class:`CameraObservation`
for each solved camera and for the IR-to-RGB motion (``"camera"``); a face-pay check sends a
:class:`FaceObservation` for every frame set it judges (``"face"``).  Views (the console's calibration panel)
draw them; the CLI ignores them.  Arrays are the step's own copies: a view may keep them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .faces import FaceAnalysis

VIEW = "view"
DEPTH = "depth"
CAMERA = "camera"
FACE = "face"


@dataclass(frozen=True)
class ViewObservation:
    """One captured view: the image, the board corners found in it, and whether the calibration kept it."""

    stream: str  # "ir" or "rgb"
    image: npt.NDArray[np.uint8]  # grey (H, W) or BGR (H, W, 3)
    corners: npt.NDArray[np.float32]  # (N, 2) pixel positions of the detected ChArUco corners
    accepted: bool
    reason: str | None  # why a view was not kept, translated (blurred, redundant, too few corners)
    coverage: float  # share of the image's grid cells that hold a corner of a kept view, 0..1
    coverage_grid: npt.NDArray[np.bool_]  # (rows, cols): True where a kept view's corner fell
    views: int  # views kept so far


@dataclass(frozen=True)
class DepthObservation:
    """A depth frame in millimetres (0 = no depth) and, when measured, its quality figures."""

    depth_mm: npt.NDArray[np.uint16]
    distance_m: float | None  # the target's true distance, when a jig or a board pose gives it
    figures: dict[str, float] = field(default_factory=dict)  # fill_rate, plane_rms_mm, ... (camera.depth)
    passed: bool | None = None


@dataclass(frozen=True)
class CameraObservation:
    """A solved camera (``ir``, ``rgb``) or the IR-to-RGB motion (``rgb_from_ir``), with its uncertainties."""

    name: str
    figures: dict[str, Any]  # as in ``naiad calibrate --json``: K, dist, rms_px (or R, t_m, rms_px)
    std: dict[str, float] = field(default_factory=dict)  # standard deviation of each parameter (fx, fy, ...)
    passed: bool | None = None


@dataclass(frozen=True)
class FaceObservation:
    """One frame set of a face-pay check and what the station found in it (kind ``"face"``): the views draw the
    frames side by side with the face box, the landmarks and the liveness score."""

    ir: npt.NDArray[np.uint8] | None  # grey (H, W)
    rgb: npt.NDArray[np.uint8] | None  # BGR (H, W, 3)
    depth_mm: npt.NDArray[np.uint16] | None  # on the IR grid, 0 = no depth
    analysis: FaceAnalysis
