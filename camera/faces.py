"""The face-pay check's vocabulary on the station: a found face, its quality, its liveness, and one analysis.

Detection (``camera.facedetect``) finds :class:`Face` es in an image; quality (``camera.facequality``) judges the
chosen one; liveness (``camera.liveness``) decides from depth and IR whether it is a live person or an attack;
``camera.faceanalysis`` runs the three on one frame set and gives a :class:`FaceAnalysis`.  The views, the CLI's
JSON and the provisioning step read these types only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

LANDMARKS = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")
"""The five landmarks every detector format gives, in this order.  Left and right are the image's: ``eye_left``
is the eye nearer the image's left edge (the subject's right eye), as CenterFace, RetinaFace, SCRFD and YuNet
order them."""

ATTACKS = ("photo", "screen", "mask")
"""Presentation attacks the check knows (ISO/IEC 30107 species): a printed photo, a screen replay, a 3D mask."""
LIVE = "live"
PRESENTATIONS = (LIVE, *ATTACKS)

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (x1, y1 exclusive edges)


@dataclass(frozen=True)
class Face:
    """One detected face in one image's pixel coordinates."""

    box: Box
    score: float  # the detector's confidence, 0..1
    landmarks: tuple[Point, ...] | None = None  # len(LANDMARKS) points in LANDMARKS order, or None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def centre(self) -> Point:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def scaled(self, sx: float, sy: float) -> Face:
        """This face in an image ``sx`` times as wide and ``sy`` times as high."""
        x0, y0, x1, y1 = self.box
        points = None if self.landmarks is None else tuple((x * sx, y * sy) for x, y in self.landmarks)
        return Face((x0 * sx, y0 * sy, x1 * sx, y1 * sy), self.score, points)

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "landmarks": None if self.landmarks is None else [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class FaceQuality:
    """Whether a face is good enough to judge: its figures and, translated, what is wrong with it."""

    figures: dict[str, float]  # size_px, offset (share of the image from the centre), yaw_deg, pitch_deg,
    # roll_deg, brightness (mean grey 0..255 in the box), clipped (share of pixels at 0 or 255), sharpness
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "figures": {k: round(v, 3) for k, v in self.figures.items()},
            "failures": list(self.failures),
        }


@dataclass(frozen=True)
class Liveness:
    """The combined liveness decision: live when ``score`` (0..1, how likely live) reaches the threshold and no
    hard check failed.  ``checks`` holds each feature measured (depth geometry, IR) by name."""

    live: bool
    score: float
    threshold: float
    checks: dict[str, float] = field(default_factory=dict)
    failures: tuple[str, ...] = ()  # translated: which check refused it (empty when live)

    def as_dict(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "checks": {k: round(v, 4) for k, v in self.checks.items()},
            "failures": list(self.failures),
        }


class Decision(enum.StrEnum):
    """What one frame set shows, as the station decides it."""

    LIVE = "live"  # one good face, live
    ATTACK = "attack"  # one good face, not live
    NO_FACE = "no-face"
    SEVERAL_FACES = "several-faces"
    POOR_QUALITY = "poor-quality"  # one face, but too small, turned, dark, blurred ... to judge


@dataclass(frozen=True)
class FaceAnalysis:
    """Detection, quality and liveness of one frame set.  ``faces`` are in the RGB image, best first; ``face_rgb``
    the one judged and ``face_ir`` the same face in the IR image (depth is on the IR grid)."""

    decision: Decision
    faces: tuple[Face, ...] = ()
    face_rgb: Face | None = None
    face_ir: Face | None = None
    quality: FaceQuality | None = None
    liveness: Liveness | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # "detect", "quality", "liveness"
    detail: str = ""  # translated, for people: why this decision

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": str(self.decision),
            "faces": [f.as_dict() for f in self.faces],
            "face_rgb": None if self.face_rgb is None else self.face_rgb.as_dict(),
            "face_ir": None if self.face_ir is None else self.face_ir.as_dict(),
            "quality": None if self.quality is None else self.quality.as_dict(),
            "liveness": None if self.liveness is None else self.liveness.as_dict(),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "detail": self.detail,
        }
