"""What each presentation is made of: a surface on the canonical grid (shape, colours, IR albedo, gloss).

- live: the identity's head (``heads.head_height``), its skin colours, skin's IR albedo (0.50-0.60, low contrast).
- photo: paper (x +-9 cm, y -12.5..+13 cm around the face), flat or bent about its vertical axis, with the photo
  printed life size; IR: paper 0.8 where blank, toner absorbing where printed (high contrast).
- screen: a tablet's display (14.4 x 21 cm, 1 cm black bezel), planar, showing the photo at 0.9 scale by its own
  light (RGB); IR: dark glass (0.05) with a mirror glint where it faces the camera.
- mask: the identity's face, shallower (0.75 of the relief) and smoother (4 mm), face only; RGB: the photo printed
  on it; IR: resin, uniform 0.78 and glossy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from . import heads
from .heads import GRID_ORIGIN_M, GRID_SHAPE, TEXEL_M, Floats, Image

Mask = npt.NDArray[np.bool_]
SKIN_SPECULAR, SKIN_SHININESS = 0.04, 6.0
PAPER_EXTENT_M = (-0.09, 0.09, -0.125, 0.13)  # x0, x1, y0, y1
PAPER_IR, TONER_SHARE = 0.80, 0.12  # blank paper's IR albedo; what is left of it under solid toner
SCREEN_EXTENT_M = (-0.072, 0.072, -0.1, 0.11)
SCREEN_BEZEL_M = 0.01
SCREEN_SCALE = 0.9  # the face on the screen, relative to life size
SCREEN_IR, BEZEL_IR = 0.05, 0.04
SCREEN_SPECULAR, SCREEN_SHININESS = 0.8, 5000.0  # a mirror glint of the flood, about 1 degree wide
MASK_RELIEF, MASK_SMOOTH_M = 0.75, 0.004  # the hard case: relief near a shallow face
MASK_IR, MASK_SPECULAR, MASK_SHININESS = 0.78, 0.15, 15.0


@dataclass(frozen=True, eq=False)
class Surface:
    """A presentation on the canonical grid; ``landmarks`` and ``outline`` are head coordinates (m) of its five
    landmarks and of the border of its face box."""

    height: Floats
    valid: Mask
    normals: Floats
    texture: Image  # BGR: reflectance, or emitted light when ``emissive``
    ir_albedo: Floats
    specular: float
    shininess: float
    emissive: bool
    landmarks: npt.NDArray[np.float64]  # (5, 3)
    outline: npt.NDArray[np.float64]  # (K, 3)


def surface(presentation: str, identity: int, bend: float = 0.0) -> Surface:
    """The surface of ``presentation`` ("live", "photo", "screen", "mask") of ``identity``."""
    if presentation == "photo":
        return _photo(identity, round(bend, 3))
    if presentation == "screen":
        return _screen(identity)
    if presentation == "mask":
        return _mask(identity)
    return _live(identity)


def face_outline(landmarks: npt.NDArray[np.float64], per_side: int = 8) -> npt.NDArray[np.float64]:
    """(4 * per_side, 2) points on the border of the face box around ``landmarks`` ((5, 2)), as CenterFace draws
    it on these renders (medians over random scenes): one eye distance either side of the centre, from 0.9
    eye-to-mouth distances above the eyes to 0.7 below the mouth."""
    eye_y, mouth_y = landmarks[:2, 1].mean(), landmarks[3:, 1].mean()
    span = mouth_y - eye_y
    half = float(np.hypot(*(landmarks[1] - landmarks[0])))
    cx = landmarks[:, 0].mean()
    x0, x1, y0, y1 = cx - half, cx + half, eye_y - 0.9 * span, mouth_y + 0.7 * span
    s = np.linspace(0.0, 1.0, per_side, endpoint=False)
    return np.concatenate(
        [
            np.stack([x0 + (x1 - x0) * s, np.full_like(s, y0)], axis=1),
            np.stack([np.full_like(s, x1), y0 + (y1 - y0) * s], axis=1),
            np.stack([x1 - (x1 - x0) * s, np.full_like(s, y1)], axis=1),
            np.stack([np.full_like(s, x0), y1 - (y1 - y0) * s], axis=1),
        ]
    )


def _with_z(height: Floats, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.column_stack([points, heads.surface_at(height, points)])


def _frozen(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


def _made(
    height: Floats,
    valid: Mask,
    texture: Image,
    ir_albedo: Floats,
    gloss: tuple[float, float],
    landmarks_2d: npt.NDArray[np.float64],
    emissive: bool = False,
) -> Surface:
    landmarks = _with_z(height, landmarks_2d)
    outline = _with_z(height, face_outline(landmarks_2d))
    made = Surface(height, valid, heads.normals(height), texture, ir_albedo, *gloss, emissive, landmarks, outline)
    _frozen(made.normals, texture, ir_albedo, landmarks, outline)
    return made


@functools.lru_cache(maxsize=heads.IDENTITIES)
def _live(identity: int) -> Surface:
    height, valid = heads.head_height(identity)
    ident = heads.identity(identity)
    return _made(
        height,
        valid,
        heads.skin_texture(identity),
        heads.skin_ir_albedo(identity),
        (SKIN_SPECULAR, SKIN_SHININESS),
        ident.landmarks,
    )


@functools.lru_cache(maxsize=heads.IDENTITIES)
def _mask(identity: int) -> Surface:
    height, valid = heads.head_height(identity, MASK_RELIEF, MASK_SMOOTH_M)
    photo = heads.photo_texture(identity)
    grey = cv2.cvtColor(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    printed = np.asarray(cv2.addWeighted(photo, 0.8, grey, 0.2, 10.0), dtype=np.uint8)  # paint: a little flat
    rng = np.random.default_rng(identity)
    grain = cv2.GaussianBlur(rng.standard_normal(GRID_SHAPE).astype(np.float32), (0, 0), 3.0)
    albedo = np.asarray(MASK_IR * (1.0 + 0.02 * grain / max(float(grain.std()), 1e-6)), dtype=np.float32)
    return _made(height, valid, printed, albedo, (MASK_SPECULAR, MASK_SHININESS), heads.identity(identity).landmarks)


def _rectangle(extent: tuple[float, float, float, float]) -> Mask:
    xs, ys = heads.grid()
    x0, x1, y0, y1 = extent
    return np.asarray((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1))


@functools.lru_cache(maxsize=32)
def _photo(identity: int, bend: float) -> Surface:
    xs, _ = heads.grid()
    height = np.asarray(bend * xs**2 / 2, dtype=np.float32)
    photo = heads.photo_texture(identity)
    printed = np.asarray(cv2.convertScaleAbs(photo, alpha=0.9, beta=10.0), dtype=np.uint8)  # paper, toner gamut
    albedo = np.float32(PAPER_IR) * (TONER_SHARE + (1 - TONER_SHARE) * heads.luminance(photo))
    return _made(height, _rectangle(PAPER_EXTENT_M), printed, albedo, (0.02, 4.0), heads.identity(identity).landmarks)


@functools.lru_cache(maxsize=heads.IDENTITIES)
def _screen(identity: int) -> Surface:
    height = np.zeros(GRID_SHAPE, dtype=np.float32)
    shown = _scaled(heads.photo_texture(identity), SCREEN_SCALE)
    display = _rectangle(SCREEN_EXTENT_M)
    x0, x1, y0, y1 = SCREEN_EXTENT_M
    b = SCREEN_BEZEL_M
    valid = _rectangle((x0 - b, x1 + b, y0 - b, y1 + b))
    shown[~display] = 12  # the bezel: black plastic
    albedo = np.where(display, np.float32(SCREEN_IR), np.float32(BEZEL_IR)).astype(np.float32)
    landmarks = heads.identity(identity).landmarks * SCREEN_SCALE
    return _made(height, valid, shown, albedo, (SCREEN_SPECULAR, SCREEN_SHININESS), landmarks, emissive=True)


def _scaled(image: Image, scale: float) -> Image:
    """``image`` on the canonical grid, shown ``scale`` times as large about the head origin."""
    ox, oy = (-GRID_ORIGIN_M[0] / TEXEL_M, -GRID_ORIGIN_M[1] / TEXEL_M)  # the origin's texel
    matrix = np.array([[scale, 0.0, ox * (1 - scale)], [0.0, scale, oy * (1 - scale)]])
    out = cv2.warpAffine(image, matrix, (GRID_SHAPE[1], GRID_SHAPE[0]), borderMode=cv2.BORDER_REPLICATE)
    return np.array(out, dtype=np.uint8)
