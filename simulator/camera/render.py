"""What a structured-light module sees: pure functions of (ground truth, scene, capture settings) -> arrays.

A scene is at most one plane in front of a dark, distant room: a ChArUco board at a pose (OpenCV's own board
image, so OpenCV detects it) or a flat wall at a distance and tilt.  Each camera looks at it through its exact
per-pixel rays (``optics.rays``): a plane maps rays to plane coordinates by a homography, and the board texture
is sampled with ``s x s`` samples per pixel from the texture level that matches the samples, then area-filtered,
so edges are anti-aliased and the board's corners stay where OpenCV's model puts them.  A face scene
(``FaceScene``: a head, a photo, a screen or a mask) is rendered by ``simulator.face.render``.

- IR: flood-lit grey, or with ``speckle`` (projector on and working) the projector's dots over a weak flood.
- RGB: the same scene through the RGB camera (X_rgb = R X_ir + t), tinted; Gaussian-blurred when defocused.
- Depth (uint16 mm on the IR pixel grid): the true Z, leaning a hair per capture (``_lean``), plus noise of
  sigma_z = Z^2 * sigma_d / (f * b) (Z in mm, f the IR focal length in px, b the projector baseline in mm),
  holes where the speckle is lost (a few small blobs, more on dark squares), 0 outside ``depth_range_mm`` and
  everywhere when the projector is off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from terminal.camera import Board, Intrinsics

from ..face.scene import FaceScene
from .optics import Floats, ray_bounds, rays, vignetting
from .truth import CameraTruth

Image = npt.NDArray[np.uint8]
Depth = npt.NDArray[np.uint16]
OVERSAMPLE_IR, OVERSAMPLE_RGB = 2, 1  # samples per pixel along each axis before area filtering
TEXTURE_PX_PER_SQUARE = 112  # level 0 of a board texture (16 * 7: four exact halvings)
TEXTURE_MAX_PX = 4096  # a board of many squares gets fewer texels per square
TEXTURE_LEVELS = 4
ALBEDO_BLACK, ALBEDO_WHITE = 0.06, 0.88  # texture code 0 and 255
BACKGROUND_CODE = 30  # the room behind the target: far and dark
WALL_TEXEL_M = 0.002
IR_WHITE_DN, RGB_WHITE_DN = 215.0, 225.0
RGB_TINT = np.array([0.93, 1.0, 1.04], dtype=np.float32)  # B, G, R of a white surface
SENSOR_NOISE_DN = 1.2
OPTICS_SIGMA_PX = 0.5
DEFOCUS_SIGMA_PX = 3.0
SPECKLE_AMBIENT = 0.2  # flood share of a speckle image
HOLE_SHARE = 0.01  # depth lost in small blobs
HOLE_PX = 6
DARK_HOLE_SHARE = 0.03  # extra depth lost per pixel on dark surfaces
DEPTH_LEAN_MM = (1.0, 2.0)  # how far (mm) a capture's target leans from frontal at the image's side edge


@dataclass(frozen=True)
class BoardScene:
    board: Board
    rvec: tuple[float, float, float]  # X_ir = R(rvec) X_board + tvec (OpenCV's board frame, metres)
    tvec_m: tuple[float, float, float]


@dataclass(frozen=True)
class WallScene:
    distance_m: float  # along the IR camera's optical axis
    tilt_deg: tuple[float, float] = (0.0, 0.0)  # about the camera's x axis, then its y axis


@dataclass(frozen=True)
class EmptyScene:
    pass


Scene = BoardScene | WallScene | EmptyScene | FaceScene  # faces: simulator.face.render


@dataclass(frozen=True)
class Capture:
    """The unit's state during one capture."""

    streams: tuple[str, ...] = ("ir", "rgb", "depth")
    speckle: bool = False
    projector: bool = True  # on and working: dots in a speckle IR image, depth at all
    rgb_defocus: bool = False
    ir_gain: float = 1.0  # exposure relative to the default
    rgb_gain: float = 1.0
    depth_scale: float = 1.0  # depth engine's baseline / the physical one (1 unless the projector moved)
    depth_range_mm: tuple[int, int] = (1, 65535)


@dataclass(frozen=True)
class _Plane:
    """A textured plane: X_ir = R (u, v, 0) + t; texture coordinate = (u, v) / texel + offset."""

    rotation: npt.NDArray[np.float64]
    t: npt.NDArray[np.float64]
    levels: tuple[Image, ...]
    texel_m: float
    offset: float
    extent: tuple[float, float, float, float] | None  # u0, u1, v0, v1 (None: unbounded, texture wraps)


def sigma_z_mm(truth: CameraTruth, z_mm: float | npt.NDArray[np.float32]) -> float | npt.NDArray[np.float32]:
    """The depth noise the module has at ``z_mm``: Z^2 * sigma_d / (f * b)."""
    return z_mm * z_mm * truth.disparity_sigma_px / (truth.ir.fx * truth.projector_baseline_mm)


def expected_plane_rms_mm(truth: CameraTruth, z_mm: float) -> float:
    """What a plane fit of a frontal wall at ``z_mm`` should find: sigma_z and the 1 mm quantisation."""
    return math.sqrt(float(sigma_z_mm(truth, z_mm)) ** 2 + 1.0 / 12.0)


def texture_px_per_square(board: Board) -> int:
    """Texels per square at level 0: TEXTURE_PX_PER_SQUARE, less for big boards; a multiple of 8 (exact halvings)."""
    fits = TEXTURE_MAX_PX // (max(board.squares_x, board.squares_y) + 1) // 8 * 8
    return max(8, min(TEXTURE_PX_PER_SQUARE, fits))


@functools.lru_cache(maxsize=8)
def board_texture(board: Board) -> tuple[Image, ...]:
    """OpenCV's own image of ``board`` with half a square of white paper around it, at TEXTURE_LEVELS levels."""
    cv_board = cv2.aruco.CharucoBoard(
        (board.squares_x, board.squares_y),
        board.square_length_m,
        board.marker_length_m,
        cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary)),
    )
    cv_board.setLegacyPattern(board.legacy_pattern)
    px = texture_px_per_square(board)
    image = cv_board.generateImage((board.squares_x * px, board.squares_y * px), marginSize=0, borderBits=1)
    level0 = cv2.copyMakeBorder(image, px // 2, px // 2, px // 2, px // 2, cv2.BORDER_CONSTANT, value=255)
    levels: list[Image] = [np.asarray(level0, dtype=np.uint8)]
    for _ in range(1, TEXTURE_LEVELS):
        h, w = levels[-1].shape
        half = cv2.resize(levels[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # exact 2x2 means
        levels.append(np.asarray(half, dtype=np.uint8))
    return tuple(levels)


@functools.lru_cache(maxsize=1)
def wall_texture() -> tuple[Image, ...]:
    """A matte, slightly mottled wall (tileable)."""
    rng = np.random.default_rng(7)
    noise = np.tile(rng.standard_normal((256, 256)).astype(np.float32), (3, 3))
    smooth = cv2.GaussianBlur(noise, (0, 0), 6)[256:512, 256:512]  # the middle tile: seamless when it wraps
    image = np.clip(170 + smooth * (12 / smooth.std()), 0, 255).astype(np.uint8)
    return (image,)


def _rotation(rvec: tuple[float, float, float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    matrix, _ = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))
    return np.asarray(matrix, dtype=np.float64)


def _plane(scene: Scene) -> _Plane | None:
    if isinstance(scene, BoardScene):
        b = scene.board
        texel = b.square_length_m / texture_px_per_square(b)
        margin = b.square_length_m / 2
        return _Plane(
            _rotation(scene.rvec),
            np.asarray(scene.tvec_m, dtype=np.float64),
            board_texture(b),
            texel,
            margin / texel - 0.5,
            (-margin, b.squares_x * b.square_length_m + margin, -margin, b.squares_y * b.square_length_m + margin),
        )
    if isinstance(scene, WallScene):
        ax, ay = (math.radians(a) for a in scene.tilt_deg)
        rotation = _rotation((0.0, ay, 0.0)) @ _rotation((ax, 0.0, 0.0))
        return _Plane(rotation, np.array([0.0, 0.0, scene.distance_m]), wall_texture(), WALL_TEXEL_M, 0.0, None)
    return None


def _in_camera(plane: _Plane, rotation: npt.NDArray[np.float64], t: npt.NDArray[np.float64]) -> _Plane:
    """``plane`` seen from a camera at X_cam = rotation X_ir + t."""
    return _Plane(
        rotation @ plane.rotation, rotation @ plane.t + t, plane.levels, plane.texel_m, plane.offset, plane.extent
    )


def _plane_from_rays(plane: _Plane) -> npt.NDArray[np.float64]:
    """The homography (x, y, 1) -> (u, v, 1/Z) up to scale: the inverse of [r1 r2 t]."""
    return np.linalg.inv(np.column_stack([plane.rotation[:, 0], plane.rotation[:, 1], plane.t]))


def _sample_texture(camera: Intrinsics, plane: _Plane, oversample: int) -> Image:
    """The texture codes each pixel sees (area-filtered over its samples); BACKGROUND_CODE off the plane."""
    samples = rays(camera, oversample)
    inverse = _plane_from_rays(plane)
    centre_z = float(plane.t[2] + plane.rotation[2, :2] @ _extent_centre(plane))
    cos = abs(float(plane.rotation[2, 2]))
    ratio = centre_z / (camera.fx * oversample) / plane.texel_m / math.sqrt(max(cos, 0.2))
    level = int(min(len(plane.levels) - 1, max(0, round(math.log2(max(ratio, 1e-9))))))
    scale = 2.0**level
    to_texture = np.array([[1 / scale, 0, 0], [0, 1 / scale, 0], [0, 0, 1]]) @ np.array(
        [[1 / plane.texel_m, 0, plane.offset + 0.5], [0, 1 / plane.texel_m, plane.offset + 0.5], [0, 0, 1]]
    )
    to_texture[:2, 2] -= 0.5
    homography = to_texture @ inverse
    coords = _transform(samples, homography)
    x0, x1, y0, y1 = ray_bounds(camera, oversample)
    corners = [inverse[2, 0] * x + inverse[2, 1] * y + inverse[2, 2] for x in (x0, x1) for y in (y0, y1)]
    if min(corners) <= 0:  # the plane's horizon may be in view: rays beyond it see the room
        w = inverse[2, 0] * samples[..., 0] + inverse[2, 1] * samples[..., 1] + inverse[2, 2]
        coords[w <= 0] = -1e6
    border = cv2.BORDER_WRAP if plane.extent is None else cv2.BORDER_CONSTANT
    image = _remap(plane.levels[level], coords, border, BACKGROUND_CODE)
    if oversample > 1:
        image = cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return np.asarray(image, dtype=np.uint8)


def _transform(samples: Floats, homography: npt.NDArray[np.float64]) -> Floats:
    """Each ray of ``samples`` ((H, W, 2)) through ``homography``."""
    out = cv2.perspectiveTransform(samples.reshape(-1, 1, 2), homography)
    return np.asarray(out, dtype=np.float32).reshape(samples.shape)


def _remap(texture: np.ndarray, coords: Floats, border: int, value: float) -> np.ndarray:
    """``texture`` sampled bilinearly at ``coords`` ((H, W, 2) texel coordinates, pixel centres at integers)."""
    return np.asarray(
        cv2.remap(texture, coords, None, cv2.INTER_LINEAR, borderMode=border, borderValue=value)  # type: ignore[call-overload]
    )


def _extent_centre(plane: _Plane) -> npt.NDArray[np.float64]:
    if plane.extent is None:
        return np.zeros(2)
    u0, u1, v0, v1 = plane.extent
    return np.array([(u0 + u1) / 2, (v0 + v1) / 2])


def _codes(camera: Intrinsics, plane: _Plane | None, oversample: int) -> Image:
    if plane is None:
        return np.full((camera.height, camera.width), BACKGROUND_CODE, dtype=np.uint8)
    return _sample_texture(camera, plane, oversample)


def _albedo(codes: Image, sigma: float) -> Floats:
    albedo = ALBEDO_BLACK + codes.astype(np.float32) * np.float32((ALBEDO_WHITE - ALBEDO_BLACK) / 255)
    return np.asarray(cv2.GaussianBlur(albedo, (0, 0), sigma), dtype=np.float32)


def _to_uint8(image: Floats, rng: np.random.Generator) -> Image:
    """``image`` with fresh sensor noise, rounded.  OpenCV draws the noise (several times faster than numpy's
    float32 normals on a frog-pro RGB frame), seeded from ``rng`` so a seed still decides every frame."""
    noise = np.empty(image.shape, dtype=np.float32)
    cv2.setRNGSeed(int(rng.integers(2**31)))  # OpenCV's generator is per thread: captures on two units do not mix
    cv2.randn(noise.reshape(image.shape[0], -1), np.array([0.5]), np.array([SENSOR_NOISE_DN]))  # 0.5: rounding
    image += noise
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def _surface_z_mm(camera: Intrinsics, plane: _Plane | None) -> Floats:
    """Z (mm) of the plane along each IR pixel's ray; 0 where the ray misses it."""
    if plane is None:
        return np.zeros((camera.height, camera.width), dtype=np.float32)
    samples = rays(camera, 1)
    inverse = _plane_from_rays(plane)
    x, y = samples[..., 0], samples[..., 1]
    w = inverse[2, 0] * x + inverse[2, 1] * y + inverse[2, 2]
    hit = w > 1e-6
    if plane.extent is not None:
        uv = _transform(samples, inverse)
        u0, u1, v0, v1 = plane.extent
        hit &= (uv[..., 0] >= u0) & (uv[..., 0] <= u1) & (uv[..., 1] >= v0) & (uv[..., 1] <= v1)
    z = np.zeros(w.shape, dtype=np.float32)
    z[hit] = 1000.0 / w[hit]
    return z


@functools.lru_cache(maxsize=4)
def _dots(width: int, height: int, count: int) -> Floats:
    """The projector's pattern (0..1), a fixed pseudo-random dot field larger than the IR view."""
    rng = np.random.default_rng(count)
    field = np.zeros((height, width), dtype=np.float32)
    field[rng.integers(0, height, count), rng.integers(0, width, count)] = 1.0
    blurred = cv2.GaussianBlur(field, (0, 0), 0.7)
    out: Floats = np.clip(blurred / blurred.max(), 0, 1).astype(np.float32)
    out.setflags(write=False)
    return out


def _speckle(truth: CameraTruth, plane: _Plane, dots_in_view: int) -> Floats:
    """Dot brightness (0..1) on each IR pixel: the plane seen through the projector beside the IR camera."""
    ir = truth.ir
    spread = 1.4  # the projector's field is wider than the IR camera's
    width, height = int(ir.width * spread), int(ir.height * spread)
    pattern = _dots(width, height, int(dots_in_view * spread * spread))
    inverse = _plane_from_rays(plane)
    projector = np.array([truth.projector_baseline_mm / 1000.0, 0.0, 0.0])
    k = np.array([[ir.fx, 0, width / 2], [0, ir.fx, height / 2], [0, 0, 1]])
    homography = k @ (np.eye(3) - np.outer(projector, inverse[2]))
    samples = rays(ir, 1)
    coords = _transform(samples, homography)
    return np.asarray(_remap(pattern, coords, cv2.BORDER_CONSTANT, 0), dtype=np.float32)


def render(
    truth: CameraTruth, scene: Scene, capture: Capture, rng: np.random.Generator, dots: int = 30000
) -> dict[str, np.ndarray]:
    """The frames of ``capture.streams`` of ``scene`` as ``truth``'s module sees it (OpenCV layouts)."""
    if isinstance(scene, FaceScene):
        from ..face.render import render_face  # it builds on this module's helpers

        return render_face(truth, scene, capture, rng, dots)
    plane = _plane(scene)
    frames: dict[str, np.ndarray] = {}
    ir_codes = _codes(truth.ir, plane, OVERSAMPLE_IR) if {"ir", "depth"} & set(capture.streams) else None
    z_mm = _surface_z_mm(truth.ir, plane) if ir_codes is not None else None
    if "ir" in capture.streams and ir_codes is not None and z_mm is not None:
        shade = vignetting(truth.ir) * np.float32(IR_WHITE_DN / ALBEDO_WHITE * capture.ir_gain)
        albedo = _albedo(ir_codes, OPTICS_SIGMA_PX)
        if capture.speckle and capture.projector and plane is not None:
            light = SPECKLE_AMBIENT + _speckle(truth, plane, dots) * (z_mm > 0)
            albedo = albedo * light
        frames["ir"] = _to_uint8(albedo * shade, rng)
    if "rgb" in capture.streams:
        rotation = np.array(truth.rgb_from_ir.R, dtype=np.float64)
        t = np.array(truth.rgb_from_ir.t_m, dtype=np.float64)
        codes = _codes(truth.rgb, None if plane is None else _in_camera(plane, rotation, t), OVERSAMPLE_RGB)
        sigma = DEFOCUS_SIGMA_PX if capture.rgb_defocus else OPTICS_SIGMA_PX
        grey = (
            _albedo(codes, sigma) * vignetting(truth.rgb) * np.float32(RGB_WHITE_DN / ALBEDO_WHITE * capture.rgb_gain)
        )
        frames["rgb"] = _to_uint8(grey[..., None] * RGB_TINT, rng)
    if "depth" in capture.streams and ir_codes is not None and z_mm is not None:
        frames["depth"] = _depth(truth, z_mm, ir_codes, capture, rng)
    return frames


def _lean(h: int, w: int, rng: np.random.Generator) -> Floats:
    """A target is never frontal to a millimetre: each capture's depth sees it lean a hair (DEPTH_LEAN_MM at the
    image's side edge, a fraction of a degree) about the image centre, in a random direction.  The readings then
    spread over whole millimetres, so the 1 mm quantisation dithers as on a real module instead of giving one
    value everywhere when sigma_z is well under 1 mm (frog-pro near); a plane fit takes the lean out again."""
    angle, lean = rng.uniform(0.0, 2 * math.pi), rng.uniform(*DEPTH_LEAN_MM) / (w / 2)
    xs = (np.arange(w, dtype=np.float32) - np.float32(w / 2)) * np.float32(lean * math.cos(angle))
    ys = (np.arange(h, dtype=np.float32) - np.float32(h / 2)) * np.float32(lean * math.sin(angle))
    return ys[:, None] + xs[None, :]


def _depth(truth: CameraTruth, z_mm: Floats, codes: Image, capture: Capture, rng: np.random.Generator) -> Depth:
    if not capture.projector:
        return np.zeros(z_mm.shape, dtype=np.uint16)
    sigma = sigma_z_mm(truth, z_mm)
    noisy = z_mm * np.float32(capture.depth_scale) + rng.standard_normal(z_mm.shape, dtype=np.float32) * sigma
    h, w = z_mm.shape
    noisy += _lean(h, w, rng)
    seeds = (rng.random((h // HOLE_PX + 1, w // HOLE_PX + 1)) < HOLE_SHARE).astype(np.float32)
    lost = cv2.resize(seeds, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5  # holes of about HOLE_PX pixels
    lost |= (codes < 64) & (rng.random(z_mm.shape, dtype=np.float32) < DARK_HOLE_SHARE)
    low, high = capture.depth_range_mm
    lost |= (z_mm <= 0) | (noisy < low) | (noisy > high)
    depth = np.rint(noisy).astype(np.uint16)
    depth[lost] = 0
    return depth
