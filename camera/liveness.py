"""Liveness: is the face in front of the unit a live person, or a photo, a screen or a mask?

Two kinds of evidence, both on the IR grid (the depth is registered to it), measured by
:func:`liveness_features` inside the face's IR box:

- **Depth geometry.** The face's depth is averaged into a GRID x GRID grid of cells over its box (which takes
  the depth noise down and makes every measure independent of the face's size in pixels); points nearer or
  farther than a face can be from its middle are left out, so a box that is off by a tenth still measures the
  face.  A plane is fitted to the cells (``camera.depth.fit_plane``): a photo or a screen is nearly one
  (``plane_rms_mm``), a face is not; ``depth_span_mm`` is the face's total depth along the plane's normal;
  ``nose_eye_mm`` how much nearer the nose is than the eyes and ``nose_plane_mm`` how far it stands out of the
  plane; a quadric fitted to the cells gives the principal curvatures (a head curves both ways, a bent sheet
  of paper one way only) and ``relief_rms_mm``, the relief a smooth bend does not explain (nose, eye sockets).
- **IR.** The module's own IR flood falls off as 1/range^2 and with the cosine of the incidence; sunlight's IR
  does neither.  Fitting the face's IR cells as ``flood x shading + ambient`` (the shading from the depth's
  surface) gives ``ir_reflectance``, the surface's reflectance under the flood alone (a screen is dark, paper
  bright, skin in between, a mask's resin or silicone brighter), and ``ir_ambient``, the ambient share;
  ``ir_contrast`` is the fine texture (skin scatters light under its surface and looks smooth, printed toner
  does not) and ``ir_specular`` the highlights, both relative to the flood's level.

:func:`assess_liveness` applies hard checks first (each a human range, set loose on the training renders;
see docs/liveness.md), then the classifier (:class:`LivenessModel`, a small ONNX network trained by
``tools/train_liveness.py``); one decision with one score.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera import Intrinsics

from .depth import fit_plane, pixel_rays, require_image
from .errors import CameraError
from .faces import Face, Liveness

LOG = logging.getLogger(__name__)

FEATURES = (
    "depth_fill",
    "distance_mm",
    "plane_rms_mm",
    "depth_span_mm",
    "nose_eye_mm",
    "nose_plane_mm",
    "curvature_mean",
    "curvature_min",
    "relief_rms_mm",
    "ir_level",
    "ir_reflectance",
    "ir_ambient",
    "ir_contrast",
    "ir_specular",
)
"""What :func:`liveness_features` measures, in this order (see the module's docstring; lengths in mm,
curvatures in 1/m, IR level in DN, the rest plain ratios)."""
GEOMETRY = FEATURES[:9]  # the depth's; the rest are the IR's

GRID = 12  # depth cells across the face box, each way
DEPTH_PX = 40  # the face's depth is taken every n-th pixel, n the box's width over this (cells of ~10 samples)
IR_PX = 64  # the IR inside the face box is measured resampled to this width: the same scale at any distance
MIN_CELL_FILL = 0.3  # a cell with less of its pixels holding face depth is left out
MIN_CELLS = 16  # fewer usable cells: no geometry at all
FACE_NEAR_MM, FACE_FAR_MM = 110.0, 160.0  # face depth kept: this much nearer / farther than the box's middle
CORE_SHARE = 0.4  # the middle of the box (share of its width and height) whose median depth is the reference
IR_ELLIPSE = (0.36, 0.42)  # IR measured in this ellipse (semi-axes as shares of the box's width and height)
REFERENCE_MM = 500.0  # ir_reflectance is the IR level the surface would have at this distance, over 255
SPECULAR_PERCENTILE = 99.0
FLAT_SHADING = 0.02  # the flood's shading varies less than this share over the face: a flat target, no fit
WHOLE_CELL = 0.95  # the flood fit uses the cells this much on the face
SMOOTH_PX = 5  # depth smoothed over this many (stepped) pixels before its normals are taken
TRIM_SHARE = 0.2  # the flood fit's second pass leaves out this share of cells, the furthest off the first
# Where the landmarks are in a face box when the detector gives none (shares of the box's width and height).
DEFAULT_LANDMARKS = ((0.32, 0.4), (0.68, 0.4), (0.5, 0.6), (0.36, 0.78), (0.64, 0.78))
LANDMARK_WINDOW = 0.06  # depth around a landmark: a square of this share of the box's width, each side

Floats = npt.NDArray[np.float64]
MODEL_DIR = Path(__file__).resolve().parent / "models"
SHIPPED_MODEL = MODEL_DIR / "liveness.onnx"
META_FEATURES = "naiad.features"  # the model's inputs by name, comma-separated, in its input's column order
META_THRESHOLD = "naiad.threshold"  # the score at and above which it calls a face live


@dataclass(frozen=True)
class HardCheck:
    """A range a live face's feature lies in; outside it the face is refused whatever the classifier says."""

    feature: str
    low: float | None
    high: float | None
    message: str  # N_ msgid with {value}


# Loose human ranges: each well outside every live training render (docs/liveness.md gives the margins).
HARD_CHECKS = (
    HardCheck("depth_fill", 0.25, None, N_("There is too little depth on the face ({value:.0%} of it)")),
    HardCheck(
        "plane_rms_mm",
        2.0,
        None,
        N_("The face is nearly flat (plane-fit residual {value:.1f} mm): a photo or a screen"),
    ),
    HardCheck(
        "depth_span_mm",
        15.0,
        250.0,
        N_("The face's depth spans {value:.0f} mm; a live face's spans a few centimetres"),
    ),
    HardCheck(  # no lower bound near 0: an eye turned away has no depth, and then nothing is measured (0)
        "nose_eye_mm",
        -5.0,
        70.0,
        N_("The nose is {value:.0f} mm nearer than the eyes; on a live face it is 15 to 30 mm"),
    ),
    HardCheck(
        "ir_reflectance",
        0.1,
        None,
        N_("The face is dark in infrared (reflectance {value:.2f}): a screen does that, skin does not"),
    ),
)


class LivenessModelError(CameraError):
    """The liveness model file is missing, not ONNX, or not a model of the liveness features."""

    message = N_("The liveness model {path} cannot be used: {detail}")
    remedy = N_(
        "Remove the liveness model setting to use the shipped model, or point it at a model made by "
        "tools/train_liveness.py."
    )


def _cells(values: npt.NDArray[np.float32], weights: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Weighted sums of ``values`` over GRID x GRID equal cells (area resampling: partial pixels count in part)."""
    return np.asarray(cv2.resize(values * weights, (GRID, GRID), interpolation=cv2.INTER_AREA), np.float32)


def _crop(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return None if x1 - x0 < 4 or y1 - y0 < 4 else (x0, y0, x1, y1)


def _landmarks(face: Face) -> Floats:
    if face.landmarks is not None and len(face.landmarks) == len(DEFAULT_LANDMARKS):
        return np.array(face.landmarks, np.float64)
    x0, y0 = face.box[:2]
    return np.array([(x0 + u * face.width, y0 + v * face.height) for u, v in DEFAULT_LANDMARKS], np.float64)


def _window_depth(z: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_], x: float, y: float, r: int) -> float:
    """Median face depth within ``r`` pixels of (x, y) (crop coordinates); NaN without any."""
    cx, cy = round(x), round(y)
    ys, xs = slice(max(0, cy - r), max(0, cy + r + 1)), slice(max(0, cx - r), max(0, cx + r + 1))
    good = z[ys, xs][valid[ys, xs]]
    return float(np.median(good)) if len(good) else float("nan")


def _quadric(u: Floats, v: Floats, w: Floats) -> Floats:
    """The coefficients (a, b, c, d, e, f) of the least-squares w = a u^2 + b uv + c v^2 + d u + e v + f."""
    design = np.column_stack([u * u, u * v, v * v, u, v, np.ones_like(u)])
    coefficients, *_rest = np.linalg.lstsq(design, w, rcond=None)
    return np.asarray(coefficients, np.float64)


@dataclass(frozen=True)
class _Cells:
    """The face's depth cells: which of the GRID x GRID are usable, their pixels' weights (at ``step``), and the
    flood's expected shading of each usable cell (:func:`_shading`)."""

    step: int
    weights: npt.NDArray[np.float32]
    filled: npt.NDArray[np.float32]
    usable: npt.NDArray[np.bool_]
    shading: Floats


def _geometry(
    depth_mm: npt.NDArray[np.uint16], face: Face, ir_camera: Intrinsics, crop: tuple[int, int, int, int]
) -> tuple[dict[str, float], _Cells | None]:
    """The depth features (FEATURES' geometry part) of the face in ``crop`` and its cells; zeros and None where
    there is no depth to measure."""
    x0, y0, x1, y1 = crop
    step = max(1, round((x1 - x0) / DEPTH_PX))
    z = depth_mm[y0:y1:step, x0:x1:step].astype(np.float32)
    h, w = z.shape
    core_x, core_y = round(w * (1 - CORE_SHARE) / 2), round(h * (1 - CORE_SHARE) / 2)
    core = z[core_y : h - core_y, core_x : w - core_x]
    core_valid = core[core > 0]
    features = dict.fromkeys(GEOMETRY, 0.0)
    features["depth_fill"] = float(np.count_nonzero(core_valid)) / max(1, core.size)
    if len(core_valid) < MIN_CELLS:
        return features, None
    reference = float(np.median(core_valid))
    features["distance_mm"] = reference
    valid = (z >= reference - FACE_NEAR_MM) & (z <= reference + FACE_FAR_MM)
    weights = valid.astype(np.float32)
    filled = _cells(np.ones_like(z), weights)
    usable = filled >= MIN_CELL_FILL
    if np.count_nonzero(usable) < MIN_CELLS:
        return features, None
    cell_z = _cells(z, weights)[usable] / filled[usable]
    rays = pixel_rays(ir_camera)[y0:y1:step, x0:x1:step].astype(np.float32)
    cell_rays = np.dstack([_cells(rays[..., i], np.ones_like(z)) for i in range(2)])[usable]
    points = np.column_stack([cell_rays * cell_z[:, None], cell_z]).astype(np.float64)
    plane = fit_plane(points)
    if plane is None:
        return features, None
    offsets = plane.distances(points)  # positive behind the plane
    features["plane_rms_mm"] = float(np.sqrt(np.mean(offsets**2)))
    low, high = np.percentile(offsets, [2.0, 98.0])
    features["depth_span_mm"] = float(high - low)
    across = np.cross([0.0, 1.0, 0.0], plane.normal)
    across /= np.linalg.norm(across)
    down = np.cross(plane.normal, across)
    centred = points - points.mean(axis=0)
    u, v = centred @ across, centred @ down
    a, b, c, d, e, f = _quadric(u, v, offsets)
    fitted = a * u * u + b * u * v + c * v * v + d * u + e * v + f
    curvatures = np.linalg.eigvalsh(np.array([[2 * a, b], [b, 2 * c]])) * 1000.0  # 1/mm -> 1/m
    features.update(
        curvature_min=float(curvatures[0]),
        curvature_mean=float(curvatures.mean()),
        relief_rms_mm=float(np.sqrt(np.mean((offsets - fitted) ** 2))),
    )
    shading = _shading(z, weights, rays, filled, usable)
    marks = (_landmarks(face) - (x0, y0)) / step
    radius = max(1, round(LANDMARK_WINDOW * w))
    eye_left, eye_right, nose = (_window_depth(z, valid, x, y, radius) for x, y in marks[:3])
    if np.isfinite(nose) and np.isfinite(eye_left) and np.isfinite(eye_right):
        features["nose_eye_mm"] = (eye_left + eye_right) / 2 - nose
        nose_x, nose_y = np.clip(np.round(marks[2]).astype(int), 0, (w - 1, h - 1))
        nose_point = np.append(rays[nose_y, nose_x] * nose, nose).astype(np.float64)
        features["nose_plane_mm"] = -float(plane.distances(nose_point[None, :])[0])
    return features, _Cells(step, weights, filled, usable, shading)


def _flood(ir: npt.NDArray[np.uint8], crop: tuple[int, int, int, int], cells: _Cells) -> tuple[float, float]:
    """(flood, ambient): the face's IR in its cells fitted as flood x shading + ambient (DN), the flood being what
    a frontal surface of the face's reflectance shows at REFERENCE_MM under the module's own light alone.

    The flood falls off with the range and turns with the surface; sunlight's IR does neither.  A robust fit (the
    cells furthest off, eyes and highlights, left out of a second pass) separates them on a face with relief; on
    a flat target, whose shading hardly varies, all the light is taken as the flood's."""
    x0, y0, x1, y1 = crop
    step = cells.step
    pixels = ir[y0:y1:step, x0:x1:step].astype(np.float32)
    filled = cells.filled[cells.usable]
    whole = filled >= WHOLE_CELL  # at the face's rim the smoothed depth's normals are too steep or too flat
    if np.count_nonzero(whole) < MIN_CELLS:
        whole[:] = True
    level = (_cells(pixels, cells.weights)[cells.usable] / filled)[whole]
    shading = cells.shading[whole]
    mean = float(shading.mean())
    if float(shading.std()) < FLAT_SHADING * mean:
        return float(level.mean()) / mean, 0.0
    design = np.column_stack([shading, np.ones_like(shading)])
    keep = np.ones(len(shading), bool)
    for _pass in range(2):
        (flood, ambient), *_rest = np.linalg.lstsq(design[keep], level[keep], rcond=None)
        misfit = np.abs(design @ (flood, ambient) - level)
        keep = misfit <= np.quantile(misfit, 1.0 - TRIM_SHARE)
    if flood <= 0:
        return float(level.mean()) / mean, 0.0
    return float(flood), float(ambient)


def _shading(
    z: npt.NDArray[np.float32],
    weights: npt.NDArray[np.float32],
    rays: npt.NDArray[np.float32],
    filled: npt.NDArray[np.float32],
    usable: npt.NDArray[np.bool_],
) -> Floats:
    """Each usable cell's mean of cos(incidence) x (REFERENCE_MM / range)^2: what the flood gives a surface of
    reflectance 1 there.  Normals from the depth smoothed over SMOOTH_PX pixels (the face's depth only)."""
    kernel = (SMOOTH_PX, SMOOTH_PX)
    smooth = cv2.blur(z * weights, kernel) / np.maximum(cv2.blur(weights, kernel), 1e-6)
    x, y = rays[..., 0] * smooth, rays[..., 1] * smooth
    # The normal is the cross product of the surface's steps along the image's rows and columns.
    (xr, yr, zr), (xc, yc, zc) = ([np.gradient(v, axis=axis) for v in (x, y, smooth)] for axis in (1, 0))
    nx, ny, nz = yr * zc - zr * yc, zr * xc - xr * zc, xr * yc - yr * xc
    ranges = np.maximum(np.sqrt(x * x + y * y + smooth * smooth), 1.0)
    lengths = np.maximum(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-9)
    cos = np.abs(nx * x + ny * y + nz * smooth) / (lengths * ranges)
    per_pixel = (cos * (REFERENCE_MM / ranges) ** 2).astype(np.float32)
    return np.asarray(_cells(per_pixel, weights)[usable] / filled[usable], np.float64)


@functools.lru_cache(maxsize=64)
def _ellipse(width: int, height: int) -> npt.NDArray[np.bool_]:
    ys, xs = np.ogrid[:height, :width]
    ax, ay = IR_ELLIPSE
    inside: npt.NDArray[np.bool_] = ((xs - (width - 1) / 2) / (ax * width)) ** 2 + (
        (ys - (height - 1) / 2) / (ay * height)
    ) ** 2 <= 1.0
    return inside


def _infrared(ir: npt.NDArray[np.uint8], crop: tuple[int, int, int, int], cells: _Cells | None) -> dict[str, float]:
    """The IR features of the face in ``crop``: reflectance and ambient share from the flood fit, texture and
    highlights inside the box's IR_ELLIPSE resampled to IR_PX pixels wide (the same scale on the face at any
    distance), both relative to the flood's level so that sunlight's even IR does not change them."""
    x0, y0, x1, y1 = crop
    height = max(4, round(IR_PX * (y1 - y0) / (x1 - x0)))
    patch = np.asarray(cv2.resize(ir[y0:y1, x0:x1], (IR_PX, height), interpolation=cv2.INTER_AREA), np.float32)
    inside = _ellipse(IR_PX, height)
    values = patch[inside]
    level = float(np.median(values))
    if cells is None:  # no depth: no distance, no shading; the level as it is
        flood, ambient, flood_level = level, 0.0, level
    else:
        flood, ambient = _flood(ir, crop, cells)
        flood_level = flood * float(cells.shading.mean())
    fine = patch - cv2.GaussianBlur(patch, (0, 0), IR_PX / 32)
    scale = max(flood_level, 1.0)
    return {
        "ir_level": level,
        "ir_reflectance": flood / 255.0,
        "ir_ambient": ambient / max(flood, 1.0),
        "ir_contrast": float(fine[inside].std()) / scale,
        "ir_specular": (float(np.percentile(values, SPECULAR_PERCENTILE)) - level) / scale,
    }


def liveness_features(
    ir: npt.NDArray[np.uint8], depth_mm: npt.NDArray[np.uint16], face_ir: Face, ir_camera: Intrinsics
) -> dict[str, float]:
    """Every feature of FEATURES for the face at ``face_ir`` (IR pixels); depth and IR on ``ir_camera``'s grid.

    A face box mostly outside the image, or without depth, gives zeros for what cannot be measured (the hard
    checks then refuse it)."""
    shape = (ir_camera.height, ir_camera.width)
    require_image(ir, "ir", np.uint8, shape)
    require_image(depth_mm, "depth", np.uint16, shape)
    crop = _crop(face_ir.box, ir_camera.width, ir_camera.height)
    if crop is None:
        return dict.fromkeys(FEATURES, 0.0)
    features, cells = _geometry(depth_mm, face_ir, ir_camera, crop)
    features.update(_infrared(ir, crop, cells))
    return {name: features[name] for name in FEATURES}


class LivenessModel:
    """The liveness classifier: an ONNX model of float32 [N, F] features to a float32 [N, 1] live probability.

    The model names its F inputs (META_FEATURES) and its threshold (META_THRESHOLD) in its own metadata, so a
    site's retrained model carries both.  onnxruntime runs it on one thread."""

    def __init__(self, session: object, inputs: tuple[str, ...], threshold: float, path: Path) -> None:
        self._session = session
        self.inputs = inputs
        self.threshold = threshold
        self.path = path

    @classmethod
    def load(cls, path: Path | None = None) -> LivenessModel:
        """The model at ``path`` (None: the shipped one); :class:`LivenessModelError` when it cannot serve."""
        import onnxruntime

        path = SHIPPED_MODEL if path is None else Path(path)

        def fail(detail: str) -> LivenessModelError:
            return LivenessModelError(path=str(path), detail=detail)

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise fail(_("it cannot be read: {reason}", reason=exc.strerror or str(exc))) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for anything that is not a model
            raise fail(_("it is not an ONNX model onnxruntime can run")) from exc
        meta = session.get_modelmeta().custom_metadata_map
        inputs = tuple(name for name in meta.get(META_FEATURES, "").split(",") if name)
        unknown = sorted(set(inputs) - set(FEATURES))
        if not inputs or unknown:
            raise fail(_("its metadata does not name liveness features it can take"))
        try:
            threshold = float(meta.get(META_THRESHOLD, ""))
        except ValueError:
            threshold = float("nan")
        if not 0.0 < threshold < 1.0:
            raise fail(_("its metadata holds no threshold between 0 and 1"))
        ins, outs = session.get_inputs(), session.get_outputs()
        if len(ins) != 1 or len(outs) != 1 or len(ins[0].shape) != 2 or ins[0].shape[1] != len(inputs):
            raise fail(_("it does not take one row of {count} features", count=len(inputs)))
        return cls(session, inputs, threshold, path)

    def score(self, features: Mapping[str, float]) -> float:
        """How likely the face that gave ``features`` is live, 0..1."""
        row = np.array([[features[name] for name in self.inputs]], np.float32)
        (output,) = self._session.run(None, {self._session.get_inputs()[0].name: row})  # type: ignore[attr-defined]
        value = float(np.asarray(output, np.float64).reshape(-1)[0])
        return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0  # NaN is no evidence of life


def hard_failures(features: Mapping[str, float]) -> list[str]:
    """The hard checks ``features`` fail, translated; any feature that is not a finite number fails first (every
    comparison with NaN is false, so a range check alone would let it through)."""
    failures = [
        _("The liveness measure {feature} is not a finite number", feature=name)
        for name, value in features.items()
        if not math.isfinite(value)
    ]
    for check in HARD_CHECKS:
        value = features[check.feature]
        low = -math.inf if check.low is None else check.low
        high = math.inf if check.high is None else check.high
        if math.isfinite(value) and not low <= value <= high:
            failures.append(_(check.message, value=value))
    return failures


def assess_liveness(
    ir: npt.NDArray[np.uint8],
    depth_mm: npt.NDArray[np.uint16],
    face_ir: Face,
    ir_camera: Intrinsics,
    model: LivenessModel,
    threshold: float | None = None,
) -> Liveness:
    """The combined decision on the face at ``face_ir``: live when no hard check fails and the classifier's
    score reaches ``threshold`` (None: the model's own).  The score is the classifier's, 0 when a hard check
    failed (``checks["model_score"]`` keeps the classifier's either way; a feature that is not a finite number is
    left out of ``checks`` and named in ``failures``)."""
    limit = model.threshold if threshold is None else threshold
    features = liveness_features(ir, depth_mm, face_ir, ir_camera)
    failures = hard_failures(features)
    model_score = model.score(features)
    score = 0.0 if failures else model_score
    if not failures and not model_score >= limit:
        failures.append(
            _(
                "The liveness classifier scores the face {score:.2f}, under the threshold {threshold:.2f}",
                score=model_score,
                threshold=limit,
            )
        )
    measured = {name: value for name, value in features.items() if math.isfinite(value)}  # JSON has no NaN
    checks = {**measured, "model_score": model_score}
    return Liveness(not failures, score, limit, checks, tuple(failures))
