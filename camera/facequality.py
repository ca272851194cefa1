"""Whether a detected face is good enough to judge: size, position, pose, exposure and sharpness.

Figures (``FaceQuality.figures``):

- ``size_px``: the face box's width in image pixels; ``size_share`` that width over the image's.
- ``offset``: how far the box's centre is from the image's centre, 0 at the centre and 1 at an edge (the larger
  of the horizontal and vertical shares of the half-image); a box cut by the image's edge also fails.
- ``yaw_deg``, ``pitch_deg``, ``roll_deg``: the head's pose from the five landmarks (:func:`pose_from_landmarks`).
- ``brightness``: mean grey level (0..255) in the box; ``clipped``: share of its pixels at 0 or 255.
- ``sharpness``: the box in grey resized to 64 px wide, variance of its Laplacian over its grey variance: blur
  finer than a 64th of the face does not count, and neither does the face's contrast.  The astronaut photo's
  90 px face gives 0.33; blurred by a Gaussian of 1, 2 and 3 px, 0.09, 0.03 and 0.02.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from i18n import _

from .faceconfig import QualityLimits
from .faces import LANDMARKS, Face, FaceQuality, Point

NOSE_DEPTH = 0.5
"""Nose tip in front of the eyes and mouth corners, in inter-ocular distances (about 30 mm for 63 mm): what the
simulator's heads give through their projected landmarks and CenterFace's at yaw +-20 degrees."""
EYES_TO_MOUTH = 1.15
"""Eye line to mouth line, in inter-ocular distances (the ArcFace five-point template: 40.6 / 35.2)."""
NOSE_HEIGHT = 0.5
"""Where a frontal face's nose tip is between the eye line (0) and the mouth line (1) (the same template)."""
SHARPNESS_WIDTH = 64


def pose_from_landmarks(landmarks: tuple[Point, ...] | list[Point]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the five landmarks (``camera.faces.LANDMARKS`` order).

    Roll is the eye line's angle (positive: clockwise in the image).  With the points turned upright, yaw comes
    from how far the nose tip is off the face's midline (positive: the nose turned towards the image's left) and
    pitch from where it sits between the eye and mouth lines (positive: the nose turned down), through a face whose
    nose tip stands ``NOSE_DEPTH`` in front of eyes and mouth (weak perspective; within a few degrees up to +-30).
    The signs are ``simulator.face.scene.FaceScene``'s.
    """
    points = np.asarray(landmarks, np.float64).reshape(len(LANDMARKS), 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = points
    across = eye_r - eye_l
    roll = math.atan2(across[1], across[0])
    cos, sin = math.cos(-roll), math.sin(-roll)
    upright = (points - eye_l) @ np.array([[cos, sin], [-sin, cos]])
    eye_l, eye_r, nose, mouth_l, mouth_r = upright
    iod = float(np.hypot(*(eye_r - eye_l))) or 1.0
    eyes, mouth = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    midline_x = (eyes[0] + mouth[0]) / 2
    yaw = math.atan((midline_x - nose[0]) / iod / NOSE_DEPTH)
    span = mouth[1] - eyes[1]
    where = (nose[1] - eyes[1]) / span if abs(span) > 1e-6 else NOSE_HEIGHT
    pitch = math.atan((where - NOSE_HEIGHT) * EYES_TO_MOUTH / NOSE_DEPTH)
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def assess_quality(image: npt.NDArray[np.uint8], face: Face, limits: QualityLimits) -> FaceQuality:
    """The figures of ``face`` in ``image`` (BGR or grey) and, translated, every limit it misses."""
    grey = np.asarray(image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
    height, width = grey.shape[:2]
    x0, y0, x1, y1 = face.box
    figures: dict[str, float] = {"size_px": face.width, "size_share": face.width / width}
    cx, cy = face.centre
    figures["offset"] = max(abs(cx - width / 2) / (width / 2), abs(cy - height / 2) / (height / 2))
    failures: list[str] = []
    if face.width < limits.min_face_px:
        failures.append(_("the face is too small ({size:.0f} px wide): come nearer", size=face.width))
    if figures["size_share"] > limits.max_face_share:
        failures.append(_("the face is too near the camera: step back a little"))
    cut = x0 < 1 or y0 < 1 or x1 > width - 1 or y1 > height - 1
    if figures["offset"] > limits.max_offset or cut:
        failures.append(_("the face is not in the middle of the image"))
    if face.landmarks is not None:
        yaw, pitch, roll = pose_from_landmarks(face.landmarks)
        figures.update(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
        if abs(yaw) > limits.max_yaw_deg:
            failures.append(_("the head is turned sideways ({angle:.0f} degrees): look at the camera", angle=yaw))
        if abs(pitch) > limits.max_pitch_deg:
            failures.append(_("the head is tilted up or down ({angle:.0f} degrees)", angle=pitch))
        if abs(roll) > limits.max_roll_deg:
            failures.append(_("the head is leaning to one side ({angle:.0f} degrees)", angle=roll))
    crop = grey[max(0, int(y0)) : max(0, math.ceil(y1)), max(0, int(x0)) : max(0, math.ceil(x1))]
    if crop.size < 4:
        failures.append(_("the face box holds no image"))
        return FaceQuality(figures, tuple(failures))
    figures["brightness"] = float(crop.mean())
    figures["clipped"] = float(np.count_nonzero((crop == 0) | (crop == 255)) / crop.size)
    figures["sharpness"] = sharpness(crop)
    if figures["brightness"] < limits.min_brightness:
        failures.append(_("the face is too dark: add light or face the light"))
    if figures["brightness"] > limits.max_brightness:
        failures.append(_("the face is too bright: reduce the light on it"))
    if figures["clipped"] > limits.max_clipped:
        failures.append(_("the face is over- or under-exposed ({share:.0%} of it clipped)", share=figures["clipped"]))
    if figures["sharpness"] < limits.min_sharpness:
        failures.append(_("the face is blurred: hold still"))
    return FaceQuality(figures, tuple(failures))


def sharpness(crop: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of ``crop`` (grey) at ``SHARPNESS_WIDTH`` px wide, over its grey variance."""
    height, width = crop.shape[:2]
    size = (SHARPNESS_WIDTH, max(1, round(height * SHARPNESS_WIDTH / width)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    spread = float(small.var())
    if spread < 1.0:  # a flat patch has no edges to be sharp or blurred
        return 0.0
    return float(cv2.Laplacian(small, cv2.CV_32F, ksize=1).var()) / spread
