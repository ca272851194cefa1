"""A simulated unit's camera ground truth: what its module really is, which a calibration must find.

Each unit draws its own IR and RGB intrinsics and distortion and its IR-to-RGB motion within its model's
``spread`` around the nominal module, once, and keeps them in ``DIR/units/<serial>/camera.json`` so they
survive restarts like the factory's optics do.  ``drifted()`` is the same module after a drop: fixed offsets
a field check must notice (``DRIFT`` below).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from terminal.camera import Extrinsics, Intrinsics, Matrix3
from terminal.models import TerminalModel

from ..state import write_json_atomically

TRUTH_FILE = "camera.json"


@dataclass(frozen=True)
class Drift:
    """What a drop does to a module (documented in docs/simulator-camera.md)."""

    ir_principal_px: tuple[float, float] = (4.0, -3.0)  # IR cx, cy shift
    rotation_deg: float = 0.6  # extra IR-to-RGB rotation, about the y axis
    translation_mm: tuple[float, float, float] = (1.5, 0.0, 0.0)  # extra IR-to-RGB translation
    baseline_pct: float = -2.0  # the projector moved: the depth engine's depth reads about 2 % long


DRIFT = Drift()


@dataclass(frozen=True)
class CameraTruth:
    """One unit's physical camera module (IR camera, RGB camera, projector)."""

    ir: Intrinsics
    rgb: Intrinsics
    rgb_from_ir: Extrinsics
    projector_baseline_mm: float
    disparity_sigma_px: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ir": self.ir.to_dict(),
            "rgb": self.rgb.to_dict(),
            "rgb_from_ir": self.rgb_from_ir.to_dict(),
            "projector_baseline_mm": self.projector_baseline_mm,
            "disparity_sigma_px": self.disparity_sigma_px,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraTruth:
        return cls(
            ir=Intrinsics.from_dict(data["ir"]),
            rgb=Intrinsics.from_dict(data["rgb"]),
            rgb_from_ir=Extrinsics.from_dict(data["rgb_from_ir"]),
            projector_baseline_mm=float(data["projector_baseline_mm"]),
            disparity_sigma_px=float(data["disparity_sigma_px"]),
        )

    def drifted(self, drift: Drift = DRIFT) -> CameraTruth:
        """The same module after a drop: IR principal point, IR-to-RGB motion and projector moved."""
        dx, dy = drift.ir_principal_px
        ir = dataclasses.replace(self.ir, cx=self.ir.cx + dx, cy=self.ir.cy + dy)
        extra, _ = cv2.Rodrigues(np.array([0.0, math.radians(drift.rotation_deg), 0.0]))
        rotation = extra @ np.array(self.rgb_from_ir.R)
        t = np.array(self.rgb_from_ir.t_m) + np.array(drift.translation_mm) / 1000.0
        return dataclasses.replace(
            self,
            ir=ir,
            rgb_from_ir=extrinsics(rotation, t),
            projector_baseline_mm=self.projector_baseline_mm * (1.0 + drift.baseline_pct / 100.0),
        )


def extrinsics(rotation: np.ndarray, t_m: np.ndarray) -> Extrinsics:
    """An :class:`Extrinsics` from a numpy rotation matrix and translation (metres)."""
    r = [tuple(float(v) for v in row) for row in rotation]
    matrix: Matrix3 = ((r[0][0], r[0][1], r[0][2]), (r[1][0], r[1][1], r[1][2]), (r[2][0], r[2][1], r[2][2]))
    return Extrinsics(matrix, (float(t_m[0]), float(t_m[1]), float(t_m[2])))


def draw_truth(model: TerminalModel, rng: np.random.Generator) -> CameraTruth:
    """A unit of ``model`` as it leaves the factory: every parameter drawn within ``model.camera.spread``."""
    cam, spread = model.camera, model.camera.spread

    def camera(size: tuple[int, int], focal: float) -> Intrinsics:
        width, height = size
        fx, fy = (focal * (1 + rng.uniform(-1, 1) * spread.focal_pct / 100) for _ in range(2))
        cx = (width - 1) / 2 + rng.uniform(-1, 1) * spread.principal_px
        cy = (height - 1) / 2 + rng.uniform(-1, 1) * spread.principal_px
        k1, k2 = rng.uniform(*spread.k1), rng.uniform(*spread.k2)
        p1, p2 = rng.uniform(-1, 1, 2) * spread.tangential
        dist = (float(k1), float(k2), float(p1), float(p2), 0.0)
        return Intrinsics(width, height, float(fx), float(fy), float(cx), float(cy), dist)

    ir = camera(cam.ir_resolution, cam.focal_length_px)
    rgb = camera(cam.rgb_resolution, cam.rgb_focal_length_px)
    rotation, _ = cv2.Rodrigues(np.radians(rng.uniform(-1, 1, 3) * spread.rotation_deg))
    t_mm = np.array(cam.rgb_from_ir_t_mm) + rng.uniform(-1, 1, 3) * spread.translation_mm
    return CameraTruth(ir, rgb, extrinsics(rotation, t_mm / 1000.0), cam.baseline_mm, cam.disparity_sigma_px)


def serial_rng(serial: str, purpose: str) -> np.random.Generator:
    """A generator seeded by a unit's serial: the same unit draws the same truth and jig poses every time."""
    digest = hashlib.sha256(f"{purpose}:{serial}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def load_or_draw(unit_dir: Path, serial: str, model: TerminalModel) -> CameraTruth:
    """The unit's truth from ``camera.json``; drawn (and kept) on first use."""
    path = unit_dir / TRUTH_FILE
    if path.exists():
        return CameraTruth.from_dict(json.loads(path.read_text(encoding="utf-8")))
    truth = draw_truth(model, serial_rng(serial, "camera-truth"))
    write_json_atomically(path, truth.to_dict())
    return truth
