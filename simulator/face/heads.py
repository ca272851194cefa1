"""Identities: a photograph, a head's shape and a skin, on one canonical grid.

Everything about a face lives on the canonical grid: head coordinates in metres (x to the image's right, y down,
z away from the camera; origin between the eyes' and the mouth's centres), sampled every ``TEXEL_M``.  An
identity is one of the two photographs (``photos.PHOTOS``), maybe mirrored, fitted by a similarity onto a face
of its own size and proportions (so the relief's eyes, nose and mouth sit exactly under the photo's), a head
shape (width, depth, nose, eye sockets, cheekbones, brow, chin), a skin tone in RGB and an IR albedo.  There are
only two real photographs: identities made from the same one differ in shape, size, tone, IR albedo and mirror
image, not in the face a person would recognise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from ..camera.render import _remap
from .photos import PHOTOS, load_photo

Floats = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]
IDENTITIES = 24
TRAIN_IDENTITIES = range(0, 16)
HELD_OUT_IDENTITIES = range(16, IDENTITIES)
TEXEL_M = 0.00075
GRID_ORIGIN_M = (-0.12, -0.165)  # head coordinates (x, y) of texel (0, 0)'s centre
GRID_SHAPE = (460, 320)  # rows (y), columns (x): 0.345 m by 0.24 m
NOMINAL_LANDMARKS = ((-0.0315, -0.035), (0.0315, -0.035), (0.0, 0.003), (-0.025, 0.035), (0.025, 0.035))
DARK_SKIN_GAIN = np.array([0.50, 0.56, 0.68], dtype=np.float32)  # B, G, R of the darkest tone (tone = 1)


@dataclass(frozen=True)
class Identity:
    """One simulated person (see the module docstring for what varies)."""

    index: int
    photo: int  # index into photos.PHOTOS
    mirrored: bool
    size: float  # face size relative to the nominal (eyes 63 mm apart)
    aspect: float  # vertical stretch of the face
    half_width_m: float  # of the head at the eyes
    depth_m: float  # from the face's front to where the head's sides turn away
    nose_eye_mm: float  # how much nearer the nose tip is than the eyes
    socket_mm: float  # eye socket depth
    cheek_mm: float  # cheekbone prominence
    brow_mm: float
    chin_mm: float
    tone: float  # 0 light .. 1 dark (RGB only)
    ir_albedo: float  # skin at 850 nm, 0.50 .. 0.60

    @property
    def landmarks(self) -> npt.NDArray[np.float64]:
        """(5, 2) head coordinates (m) of the photo's landmarks on this face (camera.faces.LANDMARKS order)."""
        return _fit(self)[1]


@functools.lru_cache(maxsize=IDENTITIES)
def identity(index: int) -> Identity:
    """Identity ``index`` (0 .. IDENTITIES - 1), drawn from a fixed seed: the same person every time."""
    rng = np.random.default_rng(9100 + index)
    u = rng.uniform
    return Identity(
        index=index,
        photo=index % len(PHOTOS),
        mirrored=(index // len(PHOTOS)) % 2 == 1,
        size=float(u(0.92, 1.08)),
        aspect=float(u(0.94, 1.06)),
        half_width_m=float(u(0.072, 0.082)),
        depth_m=float(u(0.09, 0.11)),
        nose_eye_mm=float(u(18.0, 27.0)),
        socket_mm=float(u(5.0, 9.0)),
        cheek_mm=float(u(3.0, 7.0)),
        brow_mm=float(u(3.0, 6.0)),
        chin_mm=float(u(5.0, 9.0)),
        tone=float(u(0.0, 1.0)),
        ir_albedo=float(u(0.50, 0.60)),
    )


def _photo_landmarks(ident: Identity) -> npt.NDArray[np.float64]:
    """The photo's landmarks in the (maybe mirrored) photo, image-left first."""
    points = np.array(PHOTOS[ident.photo].landmarks, dtype=np.float64)
    if not ident.mirrored:
        return points
    width = load_photo(ident.photo).shape[1]
    points[:, 0] = width - 1 - points[:, 0]
    return points[[1, 0, 2, 4, 3]]  # the mirror swaps left and right


@functools.lru_cache(maxsize=IDENTITIES)
def _fit(ident: Identity) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The similarity (2x3) from photo pixels to head coordinates that best puts the photo's landmarks on this
    face's nominal ones (least squares), and the photo's landmarks through it."""
    target = np.array(NOMINAL_LANDMARKS) * ident.size * np.array([1.0, ident.aspect])
    source = _photo_landmarks(ident)
    sc, tc = source.mean(axis=0), target.mean(axis=0)
    s, t = source - sc, target - tc
    a = float((s * t).sum()) / float((s * s).sum())
    b = float((s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum()) / float((s * s).sum())
    rotation = np.array([[a, -b], [b, a]])
    matrix = np.hstack([rotation, (tc - rotation @ sc)[:, None]])
    return matrix, source @ rotation.T + matrix[:, 2]


def grid() -> tuple[Floats, Floats]:
    """(x, y) head coordinates of every texel centre, each (rows, cols)."""
    x = GRID_ORIGIN_M[0] + np.arange(GRID_SHAPE[1], dtype=np.float32) * np.float32(TEXEL_M)
    y = GRID_ORIGIN_M[1] + np.arange(GRID_SHAPE[0], dtype=np.float32) * np.float32(TEXEL_M)
    xs, ys = np.meshgrid(x, y)
    return xs, ys


@functools.lru_cache(maxsize=IDENTITIES)
def photo_texture(index: int) -> Image:
    """The identity's photo on the canonical grid (BGR, before skin tone): what a print or a screen shows."""
    ident = identity(index)
    photo = load_photo(ident.photo)
    if ident.mirrored:
        photo = np.ascontiguousarray(photo[:, ::-1])
    matrix, _ = _fit(ident)
    to_grid = np.array([[TEXEL_M, 0, GRID_ORIGIN_M[0]], [0, TEXEL_M, GRID_ORIGIN_M[1]], [0, 0, 1]])
    to_photo = np.linalg.inv(np.vstack([matrix, [0, 0, 1]])) @ to_grid  # texel -> photo pixel
    out = cv2.warpAffine(
        photo,
        to_photo[:2],
        (GRID_SHAPE[1], GRID_SHAPE[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    image = np.asarray(out, dtype=np.uint8)
    image.setflags(write=False)
    return image


def skin_texture(index: int) -> Image:
    """The live head's colours: the photo in the identity's skin tone."""
    ident = identity(index)
    gain = 1.0 + ident.tone * (DARK_SKIN_GAIN - 1.0)
    return np.asarray(np.clip(photo_texture(index).astype(np.float32) * gain, 0, 255), dtype=np.uint8)


def luminance(image: Image) -> Floats:
    """0..1 grey of a BGR image."""
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.float32) / np.float32(255)


def skin_ir_albedo(index: int) -> Floats:
    """The live head in IR: the identity's albedo with little of the photo's contrast (light scatters under the
    skin, and brows, lips and freckles hardly show at 850 nm), blurred by about 1.5 mm."""
    ident = identity(index)
    grey = luminance(photo_texture(index))
    eyes = _texel(ident.landmarks[:2].mean(axis=0))
    patch = grey[max(eyes[1] - 20, 0) : eyes[1] + 60, max(eyes[0] - 40, 0) : eyes[0] + 40]
    ratio = grey / max(float(np.median(patch)), 0.05)
    albedo = np.float32(ident.ir_albedo) * np.clip(0.7 + 0.3 * ratio, 0.55, 1.15)
    return np.asarray(cv2.GaussianBlur(albedo, (0, 0), 2.0), dtype=np.float32)


def _texel(point: npt.NDArray[np.float64]) -> tuple[int, int]:
    return int(np.rint((point[0] - GRID_ORIGIN_M[0]) / TEXEL_M)), int(np.rint((point[1] - GRID_ORIGIN_M[1]) / TEXEL_M))


def _bump(xs: Floats, ys: Floats, cx: float, cy: float, sx: float, sy: float) -> Floats:
    return np.asarray(np.exp(-0.5 * (((xs - cx) / sx) ** 2 + ((ys - cy) / sy) ** 2)), dtype=np.float32)


@functools.lru_cache(maxsize=2 * IDENTITIES)
def head_height(index: int, relief: float = 1.0, smooth_m: float = 0.0) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """The head's surface z (m, + away from the camera; 0 at the origin before features) on the canonical grid,
    and where there is a head (head and neck for a person; ``relief`` < 1 and ``smooth_m`` > 0 make a mask's
    shallower, smoother face, which covers the face only)."""
    ident = identity(index)
    xs, ys = grid()
    lm = ident.landmarks
    eye_y, mouth_y = float(lm[:2, 1].mean()), float(lm[3:, 1].mean())
    cx = float(lm[:, 0].mean())
    below_eyes = np.clip((ys - eye_y) / 0.12, 0.0, 1.0)
    half_width = ident.half_width_m * (1.0 - 0.3 * below_eyes**2)  # the jaw is narrower than the skull
    ru, rv = (xs - cx) / half_width, (ys - eye_y) / (0.125 * ident.aspect * ident.size)
    r2 = ru**2 + rv**2
    head = ident.depth_m * (1.0 - np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)))
    valid = r2 < 0.995
    if relief >= 1.0:
        neck_r = np.clip(np.abs(xs - cx) / 0.055, 0.0, 1.0)
        neck = 0.05 + 0.06 * (1.0 - np.sqrt(1.0 - neck_r**2))
        in_neck = (ys > mouth_y + 0.02) & (np.abs(xs - cx) < 0.054)
        head = np.where(in_neck & (~valid | (neck < head)), neck, head)
        valid |= in_neck
    else:
        face_rv = (ys - (eye_y + 0.012)) / (0.108 * ident.aspect * ident.size)
        valid &= ru**2 + face_rv**2 < 0.9
    mm = 0.001 * relief
    features = np.zeros_like(head)
    for ex, ey in lm[:2]:
        features += ident.socket_mm * mm * _bump(xs, ys, ex, ey - 0.002, 0.013, 0.009)
        features -= 3.0 * mm * _bump(xs, ys, ex, ey, 0.007, 0.005)  # the eyeball
        features -= ident.cheek_mm * mm * _bump(xs, ys, ex + np.sign(ex - cx) * 0.01, eye_y + 0.03, 0.016, 0.014)
    features -= ident.brow_mm * mm * _bump(xs, ys, cx, eye_y - 0.022, 0.035, 0.007)
    features -= 5.0 * mm * _bump(xs, ys, cx, mouth_y, 0.018, 0.006)  # lips
    features += 3.0 * mm * _bump(xs, ys, cx, mouth_y + 0.02, 0.015, 0.005)
    features -= ident.chin_mm * mm * _bump(xs, ys, cx, mouth_y + 0.042, 0.016, 0.011)
    nose_x, nose_y = float(lm[2, 0]), float(lm[2, 1])
    for side in (-1.0, 1.0):  # the nostrils' wings
        features -= 6.0 * mm * _bump(xs, ys, nose_x + side * 0.015, nose_y + 0.004, 0.006, 0.006)
    top = eye_y + 0.004
    t = np.clip((ys - top) / (nose_y - top), 0.0, 1.0)
    profile = np.where(ys <= nose_y, t**1.3, np.exp(-0.5 * ((ys - nose_y) / 0.006) ** 2))
    ridge_x = cx + (nose_x - cx) * t
    width = 0.006 + 0.008 * t
    nose_shape = profile * np.exp(-0.5 * ((xs - ridge_x) / width) ** 2)
    surface = head + features
    eye_z = float(np.mean([_at(surface, p) for p in lm[:2]]))
    amplitude = _at(surface, lm[2]) - (eye_z - ident.nose_eye_mm * mm)  # the tip this much nearer than the eyes
    surface = (surface - amplitude * nose_shape).astype(np.float32)
    if smooth_m > 0:
        surface = np.asarray(cv2.GaussianBlur(surface, (0, 0), smooth_m / TEXEL_M), dtype=np.float32)
    surface.setflags(write=False)
    valid.setflags(write=False)
    return surface, valid


def _at(surface: Floats, point: npt.NDArray[np.float64]) -> float:
    x, y = _texel(point)
    return float(surface[y, x])


def surface_at(surface: Floats, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """z of ``surface`` at head coordinates ``points`` ((N, 2)), bilinear."""
    coords = ((points - np.array(GRID_ORIGIN_M)) / TEXEL_M).astype(np.float32).reshape(-1, 1, 2)
    out = _remap(surface, coords, cv2.BORDER_REPLICATE, 0)
    return np.asarray(out, dtype=np.float64).reshape(-1)


def normals(surface: Floats) -> Floats:
    """(rows, cols, 3) unit normals of ``surface`` in head coordinates, facing the camera (-z)."""
    gy, gx = np.gradient(surface, TEXEL_M)
    n = np.stack([gx, gy, -np.ones_like(surface)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return n.astype(np.float32)
