"""Frames of a face scene, in exactly ``simulator.camera.render.render``'s layouts, and its ground truth.

Each presentation's surface (``surfaces``) is splatted into each camera (``splat``) and shaded:

- IR: the camera's own flood, albedo x cos(incidence) x (0.5 m / range)^2 plus a specular term (glossy resin,
  screen glass), plus sunlight's ambient IR (albedo x ``ambient_ir``, no falloff); with ``speckle`` and the
  projector on, the projector's dots (seen from the projector, beside the IR camera) over a weak flood.
- RGB: room light, ambient plus a key light from ``Light.direction_deg`` (Lambert, with a little gloss),
  ``rgb_level`` bright and ``warmth`` tinted; a screen emits its picture instead, with moiré (the camera's pixels
  beat against the screen's 93 um pixel grid, its R, G, B stripes a third of a pixel apart).
- Depth: the same model as every other scene (``camera.render._depth``): sigma_z = Z^2 sigma_d / (f b), holes,
  dark surfaces lose more, none at grazing incidence, 0 outside the range and when the projector is off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from terminal.camera import Intrinsics

from ..camera.optics import rays, vignetting
from ..camera.render import (
    ALBEDO_BLACK,
    ALBEDO_WHITE,
    BACKGROUND_CODE,
    DEFOCUS_SIGMA_PX,
    IR_WHITE_DN,
    OPTICS_SIGMA_PX,
    RGB_TINT,
    RGB_WHITE_DN,
    SPECKLE_AMBIENT,
    Capture,
    _depth,
    _dots,
    _remap,
    _to_uint8,
)
from ..camera.truth import CameraTruth
from .heads import GRID_ORIGIN_M, TEXEL_M, Floats
from .scene import FaceScene, Light
from .splat import Layer, pose, splat
from .surfaces import Surface, surface

Point = tuple[float, float]
Box = tuple[float, float, float, float]
Z_REF_M = 0.5  # the IR flood gives a white surface IR_WHITE_DN here
BACKGROUND_ALBEDO = ALBEDO_BLACK + BACKGROUND_CODE * (ALBEDO_WHITE - ALBEDO_BLACK) / 255
AMBIENT_RGB, KEY_RGB = 0.45, 0.6
WARMTH_GAIN = 0.12
SCREEN_BRIGHTNESS, SCREEN_REFLECTION = 0.9, 0.04
PIXEL_PITCH_M, MOIRE_DEPTH = 0.000093, 0.22
GRAZING_COS = 0.2  # structured light loses depth on surfaces turned further than this from the camera
SPECKLE_DOTS = 30000


@dataclass(frozen=True)
class FaceTruth:
    """Where a presented face is: its box (x0, y0, x1, y1 as CenterFace draws one) and five landmarks
    (camera.faces.LANDMARKS order), projected into each image; ``others`` are the scene's other faces."""

    rgb_box: Box
    rgb_landmarks: tuple[Point, ...]
    ir_box: Box
    ir_landmarks: tuple[Point, ...]
    distance_m: float
    others: tuple[FaceTruth, ...] = ()


@dataclass(frozen=True)
class _Placed:
    scene: FaceScene
    surface: Surface
    rotation: npt.NDArray[np.float64]  # X_ir = rotation X_head + t
    t: npt.NDArray[np.float64]


def _placed(scene: FaceScene) -> list[_Placed]:
    out = []
    for one in (scene, *scene.others):
        rotation = pose(one.yaw_deg, one.pitch_deg, one.roll_deg)
        t = np.array([one.offset_m[0], one.offset_m[1], one.distance_m])
        out.append(_Placed(one, surface(one.presentation, one.identity, one.bend), rotation, t))
    return out


def _rgb_pose(truth: CameraTruth, placed: _Placed) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    r = np.array(truth.rgb_from_ir.R, dtype=np.float64)
    return r @ placed.rotation, r @ placed.t + np.array(truth.rgb_from_ir.t_m)


def _project(camera: Intrinsics, pts: npt.NDArray[np.float64], rotation: np.ndarray, t: np.ndarray) -> np.ndarray:
    rvec, _ = cv2.Rodrigues(rotation)
    out, _ = cv2.projectPoints(pts, rvec, t.reshape(3, 1), np.array(camera.K), np.array(camera.dist))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def face_truth(truth: CameraTruth, scene: FaceScene) -> FaceTruth:
    """The projected ground truth of ``scene``'s face (and in ``.others`` of its other faces)."""
    found = []
    for placed in _placed(scene):
        s = placed.surface
        ir_points = _project(truth.ir, s.landmarks, placed.rotation, placed.t)
        ir_outline = _project(truth.ir, s.outline, placed.rotation, placed.t)
        rgb_rotation, rgb_t = _rgb_pose(truth, placed)
        rgb_points = _project(truth.rgb, s.landmarks, rgb_rotation, rgb_t)
        rgb_outline = _project(truth.rgb, s.outline, rgb_rotation, rgb_t)
        found.append(
            FaceTruth(
                rgb_box=_box(rgb_outline),
                rgb_landmarks=_points(rgb_points),
                ir_box=_box(ir_outline),
                ir_landmarks=_points(ir_points),
                distance_m=placed.scene.distance_m,
            )
        )
    return replace(found[0], others=tuple(found[1:]))


def _box(pts: np.ndarray) -> Box:
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def _points(pts: np.ndarray) -> tuple[Point, ...]:
    return tuple((float(x), float(y)) for x, y in pts)


def _lookup(image: np.ndarray, layer: Layer) -> np.ndarray:
    return np.asarray(_remap(image, np.dstack([layer.tx, layer.ty]), cv2.BORDER_REPLICATE, 0))


def _rotated(vectors: Floats, rotation: npt.NDArray[np.float64]) -> Floats:
    """(h, w, 3) ``vectors`` turned by ``rotation`` (OpenCV's per-pixel transform: no BLAS threads)."""
    return np.asarray(cv2.transform(vectors, rotation), dtype=np.float32)


def _dot(vectors: Floats, direction: Floats) -> Floats:
    return np.asarray(
        vectors[..., 0] * direction[0] + vectors[..., 1] * direction[1] + vectors[..., 2] * direction[2],
        dtype=np.float32,
    )


def _warm(light: Light) -> Floats:
    w = max(-1.0, min(1.0, light.warmth))
    return np.array([1 - WARMTH_GAIN * w, 1.0, 1 + WARMTH_GAIN * w], dtype=np.float32)


def render_face(
    truth: CameraTruth, scene: FaceScene, capture: Capture, rng: np.random.Generator, dots: int = SPECKLE_DOTS
) -> dict[str, np.ndarray]:
    """The frames of ``capture.streams`` of ``scene`` as ``truth``'s module sees it (OpenCV layouts)."""
    placed = _placed(scene)
    streams = set(capture.streams)
    frames: dict[str, np.ndarray] = {}
    if {"ir", "depth"} & streams:
        flood, ambient, z_m, albedo, cos = _ir_layers(truth, placed, scene.light)
        if "ir" in streams:
            if capture.speckle and capture.projector:
                flood = flood * (SPECKLE_AMBIENT + _speckle(truth, z_m, dots) * np.isfinite(z_m))
            radiance = cv2.GaussianBlur(flood + ambient, (0, 0), OPTICS_SIGMA_PX)
            shade = vignetting(truth.ir) * np.float32(IR_WHITE_DN / ALBEDO_WHITE * capture.ir_gain)
            frames["ir"] = _to_uint8(radiance * shade, rng)
        if "depth" in streams:
            seen = np.isfinite(z_m) & (cos >= GRAZING_COS)
            z_mm = np.where(seen, z_m * 1000.0, 0.0).astype(np.float32)
            codes = np.clip((albedo - ALBEDO_BLACK) * (255 / (ALBEDO_WHITE - ALBEDO_BLACK)), 0, 255).astype(np.uint8)
            frames["depth"] = _depth(truth, z_mm, codes, capture, rng)
    if "rgb" in streams:
        colour = _rgb_layers(truth, placed, scene.light)
        sigma = DEFOCUS_SIGMA_PX if capture.rgb_defocus else OPTICS_SIGMA_PX
        colour = np.asarray(cv2.GaussianBlur(colour, (0, 0), sigma), dtype=np.float32)
        colour *= _rgb_shade(truth.rgb)
        colour *= np.float32(RGB_WHITE_DN / ALBEDO_WHITE * capture.rgb_gain)
        frames["rgb"] = _to_uint8(colour, rng)
    return frames


@functools.lru_cache(maxsize=8)
def _rgb_shade(camera: Intrinsics) -> Floats:
    """(H, W, 3) vignetting times the camera's tint."""
    shade = np.asarray(vignetting(camera)[..., None] * RGB_TINT, dtype=np.float32)
    shade.setflags(write=False)
    return shade


def _ir_layers(
    truth: CameraTruth, placed: list[_Placed], light: Light
) -> tuple[Floats, Floats, Floats, Floats, Floats]:
    """Flood and ambient radiance (albedo units), Z (m, inf off the surfaces), albedo and cos(incidence)."""
    ir = truth.ir
    shape = (ir.height, ir.width)
    flood = np.full(shape, BACKGROUND_ALBEDO, dtype=np.float32)
    albedo = np.full(shape, BACKGROUND_ALBEDO, dtype=np.float32)
    z_m = np.full(shape, np.inf, dtype=np.float32)
    cos = np.ones(shape, dtype=np.float32)
    for one in placed:
        layer = splat(ir, one.surface, one.rotation, one.t)
        if layer is None:
            continue
        win = layer.window
        sel = layer.hit & (layer.z < z_m[win])
        ray = rays(ir)[win]
        norm = np.sqrt(ray[..., 0] ** 2 + ray[..., 1] ** 2 + 1.0)
        n = _rotated(_lookup(one.surface.normals, layer), one.rotation)
        c = np.clip(-(n[..., 0] * ray[..., 0] + n[..., 1] * ray[..., 1] + n[..., 2]) / norm, 0.0, 1.0)
        a = _lookup(one.surface.ir_albedo, layer)
        falloff = (Z_REF_M / np.maximum(layer.z * norm, 0.05)) ** 2
        s = one.surface
        f = (a * c + np.float32(s.specular) * c**s.shininess) * falloff
        flood[win][sel], albedo[win][sel], z_m[win][sel], cos[win][sel] = f[sel], a[sel], layer.z[sel], c[sel]
    ambient = (albedo * np.float32(max(0.0, light.ambient_ir))).astype(np.float32)
    return flood, ambient, z_m, albedo, cos


def _speckle(truth: CameraTruth, z_m: Floats, dots_in_view: int) -> Floats:
    """Dot brightness (0..1) on each IR pixel: the surface point seen from the projector beside the IR camera."""
    ir = truth.ir
    spread = 1.4
    width, height = int(ir.width * spread), int(ir.height * spread)
    pattern = _dots(width, height, int(dots_in_view * spread * spread))
    ray = rays(ir)
    z = np.where(np.isfinite(z_m), z_m, 1e6).astype(np.float32)
    baseline = np.float32(truth.projector_baseline_mm / 1000.0)
    coords = np.dstack([ir.fx * (ray[..., 0] - baseline / z) + width / 2, ir.fx * ray[..., 1] + height / 2]).astype(
        np.float32
    )
    return np.asarray(_remap(pattern, coords, cv2.BORDER_CONSTANT, 0), dtype=np.float32)


def _light_vector(light: Light) -> Floats:
    """Towards the key light, in camera coordinates (x right, y down, z forward)."""
    az, el = (math.radians(a) for a in light.direction_deg)
    return np.array([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)], dtype=np.float32)


def _rgb_layers(truth: CameraTruth, placed: list[_Placed], light: Light) -> Floats:
    """(H, W, 3) BGR radiance in albedo units: room-lit surfaces, emitting screens, the dark room."""
    rgb = truth.rgb
    level = np.float32(max(0.0, light.rgb_level))
    warm = _warm(light) * level
    colour = np.empty((rgb.height, rgb.width, 3), dtype=np.float32)
    colour[:] = BACKGROUND_ALBEDO * warm
    z_m = np.full((rgb.height, rgb.width), np.inf, dtype=np.float32)
    to_light = _light_vector(light)
    for one in placed:
        rotation, t = _rgb_pose(truth, one)
        layer = splat(rgb, one.surface, rotation, t)
        if layer is None:
            continue
        win = layer.window
        sel = layer.hit & (layer.z < z_m[win])
        texture = _lookup(one.surface.texture, layer).astype(np.float32) * np.float32(1 / 255)
        if one.surface.emissive:
            shown = texture * np.float32(SCREEN_BRIGHTNESS) * _moire(layer) + np.float32(SCREEN_REFLECTION) * warm
        else:
            n = _rotated(_lookup(one.surface.normals, layer), rotation)
            lambert = np.clip(_dot(n, to_light), 0.0, 1.0)
            half = to_light + np.array([0.0, 0.0, -1.0], dtype=np.float32)  # towards the camera, near enough
            gloss = np.float32(one.surface.specular * KEY_RGB) * np.clip(
                _dot(n, half / np.linalg.norm(half)), 0, 1
            ) ** np.float32(one.surface.shininess)
            lit = np.float32(AMBIENT_RGB) + np.float32(KEY_RGB) * lambert
            shown = (np.float32(ALBEDO_WHITE) * texture * lit[..., None] + gloss[..., None]) * warm
        colour[win][sel], z_m[win][sel] = shown[sel], layer.z[sel]
    return colour


def _moire(layer: Layer) -> Floats:
    """(h, w, 3) the screen's pixel grid as the camera samples it: B, G, R stripes a third of a pixel apart."""
    x = (GRID_ORIGIN_M[0] + layer.tx * np.float32(TEXEL_M)) / np.float32(PIXEL_PITCH_M)
    y = (GRID_ORIGIN_M[1] + layer.ty * np.float32(TEXEL_M)) / np.float32(PIXEL_PITCH_M)
    rows = np.float32(0.6) + np.float32(0.4) * np.cos(np.float32(2 * math.pi) * y)
    stripes = [np.cos(np.float32(2 * math.pi) * (x - np.float32(c / 3))) for c in (2, 1, 0)]  # B, G, R
    return np.dstack([np.float32(1) + np.float32(MOIRE_DEPTH) * s * rows for s in stripes]).astype(np.float32)
