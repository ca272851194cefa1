"""The camera's shared formats: the ChArUco board file and the calibration blob a unit stores.

Both sides use them: the station's calibration (``camera/``) writes a blob and the unit keeps it (the unit checks
it before it accepts it); the simulator renders the board a board file describes.  Nothing here needs OpenCV.

Calibration blob (``camera/calibration`` object, docs/protocol.md): ``MAGIC`` (4 bytes), the format version
(1 byte), the SHA-256 of the body (32 bytes), then the body: a CBOR map ``{"serial", "model", "created",
"ir", "rgb", "rgb_from_ir", "figures"}``.  A camera is ``{"width", "height", "K": [[3x3]], "dist": [...]}``
(OpenCV's distortion order k1, k2, p1, p2, k3...); ``rgb_from_ir`` is ``{"R": [[3x3]], "t_m": [x, y, z]}``
with X_rgb = R X_ir + t.  ``figures`` holds plain numbers (RMS, standard deviations, views used).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from i18n import N_, _

from .errors import NaiadError

MAGIC = b"NCAL"
BLOB_VERSION = 1
_HEADER = len(MAGIC) + 1 + 32
MAX_BLOB = 64 * 1024  # a blob is a few hundred bytes; anything near this is not one
MAX_INTEGER = 2**53  # integers beyond this lose precision in JSON (the ledger) and carry no measurement
MAX_DISTORTION = 100.0  # |coefficient|: real lenses stay within a few units
MAX_FOCAL_WIDTHS = 100  # a focal length beyond 100 image widths, or under 1/100 of one, is no camera
MAX_BASELINE_M = 1.0  # |t| between the two cameras of one module
_BODY_KEYS = frozenset({"serial", "model", "created", "ir", "rgb", "rgb_from_ir", "figures"})
_CAMERA_KEYS = frozenset({"width", "height", "K", "dist"})
_MOTION_KEYS = frozenset({"R", "t_m"})
# The ArUco dictionaries OpenCV predefines (cv2.aruco.DICT_*).
DICTIONARIES = frozenset(
    [f"DICT_{n}X{n}_{size}" for n in (4, 5, 6, 7) for size in (50, 100, 250, 1000)]
    + [
        "DICT_ARUCO_ORIGINAL",
        "DICT_APRILTAG_16h5",
        "DICT_APRILTAG_25h9",
        "DICT_APRILTAG_36h10",
        "DICT_APRILTAG_36h11",
        "DICT_ARUCO_MIP_36h12",
    ]
)
Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


class BoardFileError(NaiadError):
    message = N_("The board file {path} cannot be used: {detail}")
    remedy = N_(
        'A board file is JSON like {{"type": "charuco", "dictionary": "DICT_5X5_100", "squares_x": 11, '
        '"squares_y": 8, "square_length_m": 0.024, "marker_length_m": 0.018}}; measure the printed board.'
    )


class CalibrationBlobError(NaiadError):
    message = N_("The camera calibration blob is not valid: {detail}")
    remedy = N_("Calibrate the unit again; a blob that fails its checksum or shape is never used.")


@dataclass(frozen=True)
class Board:
    """A ChArUco board: squares, markers inside the white squares, sizes as printed (metres)."""

    dictionary: str = "DICT_5X5_100"
    squares_x: int = 11
    squares_y: int = 8
    square_length_m: float = 0.024
    marker_length_m: float = 0.018
    legacy_pattern: bool = False  # boards of OpenCV before 4.6 with an even number of rows start differently

    @property
    def corners(self) -> int:
        """Inner chessboard corners: the points a calibration uses."""
        return (self.squares_x - 1) * (self.squares_y - 1)

    @classmethod
    def from_dict(cls, data: Any, path: str = "-") -> Board:
        def fail(detail: str) -> BoardFileError:
            return BoardFileError(path=path, detail=detail)

        if not isinstance(data, dict):
            raise fail(_("it is not a JSON object"))
        if data.get("type", "charuco") != "charuco":
            raise fail(_("type {type!r} is not supported; only charuco boards are", type=data.get("type")))
        known = {"type", "dictionary", "squares_x", "squares_y", "square_length_m", "marker_length_m"}
        unknown = sorted(set(data) - known - {"legacy_pattern"})
        if unknown:
            raise fail(_("unknown fields: {names}", names=", ".join(unknown)))
        missing = sorted(known - {"type"} - set(data))
        if missing:
            raise fail(_("missing fields: {names}", names=", ".join(missing)))
        dictionary = data["dictionary"]
        if dictionary not in DICTIONARIES:
            raise fail(_("dictionary {name!r} is not an OpenCV ArUco dictionary", name=dictionary))
        for name in ("squares_x", "squares_y"):
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 100:
                raise fail(_("{name} must be a whole number from 2 to 100", name=name))
        for name in ("square_length_m", "marker_length_m"):
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 2:
                raise fail(_("{name} must be a length in metres above 0 and under 2", name=name))
        if data["marker_length_m"] >= data["square_length_m"]:
            raise fail(_("the markers must be smaller than the squares"))
        if not isinstance(data.get("legacy_pattern", False), bool):
            raise fail(_("legacy_pattern must be true or false"))
        markers, available = data["squares_x"] * data["squares_y"] // 2, cls.dictionary_size(dictionary)
        if markers > available:
            raise fail(
                _(
                    "the board needs {markers} markers and {dictionary} has only {available}",
                    markers=markers,
                    dictionary=dictionary,
                    available=available,
                )
            )
        return cls(
            dictionary=dictionary,
            squares_x=data["squares_x"],
            squares_y=data["squares_y"],
            square_length_m=float(data["square_length_m"]),
            marker_length_m=float(data["marker_length_m"]),
            legacy_pattern=data.get("legacy_pattern", False),
        )

    @staticmethod
    def dictionary_size(dictionary: str) -> int:
        """Markers in one of OpenCV's predefined dictionaries (a board has one per white square)."""
        fixed = {
            "DICT_ARUCO_ORIGINAL": 1024,
            "DICT_APRILTAG_16h5": 30,
            "DICT_APRILTAG_25h9": 35,
            "DICT_APRILTAG_36h10": 2320,
            "DICT_APRILTAG_36h11": 587,
            "DICT_ARUCO_MIP_36h12": 250,
        }
        return fixed.get(dictionary) or int(dictionary.rsplit("_", 1)[1])

    @classmethod
    def read(cls, path: Path) -> Board:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BoardFileError(path=str(path), detail=_("it cannot be read: {reason}", reason=exc)) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BoardFileError(path=str(path), detail=_("it is not JSON: {reason}", reason=exc)) from exc
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "charuco", **asdict(self)}


@dataclass(frozen=True)
class Intrinsics:
    """One camera: image size, camera matrix K (fx, fy, cx, cy; no skew) and OpenCV distortion coefficients."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def K(self) -> Matrix3:
        return ((self.fx, 0.0, self.cx), (0.0, self.fy, self.cy), (0.0, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "K": [list(r) for r in self.K], "dist": list(self.dist)}

    @classmethod
    def from_dict(cls, data: Any) -> Intrinsics:
        _require(isinstance(data, dict), _("a camera is not a map"))
        _require_keys(data, _CAMERA_KEYS)
        width, height = data.get("width"), data.get("height")
        _require(
            all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 16384 for v in (width, height)),
            _("a camera's image size is not a size"),
        )
        k = _matrix(data.get("K"))
        _require(k[0][1] == k[1][0] == k[2][0] == k[2][1] == 0 and k[2][2] == 1, _("K is not a camera matrix"))
        low, high = width / MAX_FOCAL_WIDTHS, width * MAX_FOCAL_WIDTHS
        _require(low <= k[0][0] <= high and low <= k[1][1] <= high, _("K's focal lengths are not those of a camera"))
        _require(0 <= k[0][2] <= width and 0 <= k[1][2] <= height, _("K's principal point is outside the image"))
        dist = data.get("dist")
        _require(isinstance(dist, list) and len(dist) in (4, 5, 8, 12, 14), _("dist is not a distortion vector"))
        coefficients = tuple(_number(v) for v in dist)
        _require(all(abs(v) <= MAX_DISTORTION for v in coefficients), _("dist holds a coefficient beyond any lens"))
        return cls(width, height, k[0][0], k[1][1], k[0][2], k[1][2], coefficients)


@dataclass(frozen=True)
class Extrinsics:
    """A rigid motion: X_to = R X_from + t (metres)."""

    R: Matrix3
    t_m: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"R": [list(r) for r in self.R], "t_m": list(self.t_m)}

    @classmethod
    def from_dict(cls, data: Any) -> Extrinsics:
        _require(isinstance(data, dict), _("rgb_from_ir is not a map"))
        _require_keys(data, _MOTION_KEYS)
        rotation = _matrix(data.get("R"))
        t = data.get("t_m")
        _require(isinstance(t, list) and len(t) == 3, _("t_m is not three numbers"))
        x, y, z = (_number(v) for v in t)
        _require(math.hypot(x, y, z) <= MAX_BASELINE_M, _("t_m is farther than the cameras of one module"))
        rt_r = [[sum(rotation[k][i] * rotation[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
        orthonormal = all(abs(rt_r[i][j] - (i == j)) < 1e-6 for i in range(3) for j in range(3))
        _require(orthonormal and _det(rotation) > 0, _("R is not a rotation"))
        return cls(rotation, (x, y, z))


@dataclass(frozen=True)
class CameraCalibration:
    """What a unit stores: both cameras, the IR-to-RGB motion, and the figures that vouch for them."""

    serial: str
    model: str
    ir: Intrinsics
    rgb: Intrinsics
    rgb_from_ir: Extrinsics
    created: float
    figures: dict[str, float | int] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "model": self.model,
            "created": self.created,
            "ir": self.ir.to_dict(),
            "rgb": self.rgb.to_dict(),
            "rgb_from_ir": self.rgb_from_ir.to_dict(),
            "figures": dict(self.figures),
        }

    def encode(self) -> bytes:
        body = cbor2.dumps(self.body(), canonical=True)
        return MAGIC + bytes([BLOB_VERSION]) + hashlib.sha256(body).digest() + body

    @property
    def checksum(self) -> str:
        """The SHA-256 in hex of this calibration's blob: how the ledger names a calibration.  A decoded
        calibration has its blob's checksum, since only a blob that re-encodes to its own bytes decodes."""
        return blob_checksum(self.encode())

    @classmethod
    def decode(cls, blob: bytes) -> CameraCalibration:
        """The calibration in ``blob``; :class:`CalibrationBlobError` for anything that is not a whole, valid one."""
        _require(isinstance(blob, bytes) and _HEADER < len(blob) <= MAX_BLOB, _("its size is wrong"))
        _require(blob[: len(MAGIC)] == MAGIC, _("it does not start with the calibration magic"))
        version = blob[len(MAGIC)]
        _require(version == BLOB_VERSION, _("format version {version} is not known", version=version))
        body = blob[_HEADER:]
        _require(hashlib.sha256(body).digest() == blob[len(MAGIC) + 1 : _HEADER], _("its checksum does not match"))
        try:
            data = cbor2.loads(body)
        except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError):
            raise CalibrationBlobError(detail=_("its body is not CBOR")) from None
        _require(isinstance(data, dict), _("its body is not a map"))
        _require_keys(data, _BODY_KEYS)
        serial, model, created, figures = (data.get(k) for k in ("serial", "model", "created", "figures"))
        _require(isinstance(serial, str) and isinstance(model, str), _("serial and model must be text"))
        _require(bool(serial) and bool(model), _("serial and model must not be empty"))
        _require(isinstance(figures, dict), _("figures is not a map"))
        _require(all(isinstance(k, str) for k in figures), _("a figure's name is not text"))
        calibration = cls(
            serial=serial,
            model=model,
            ir=Intrinsics.from_dict(data.get("ir")),
            rgb=Intrinsics.from_dict(data.get("rgb")),
            rgb_from_ir=Extrinsics.from_dict(data.get("rgb_from_ir")),
            created=_number(created),
            figures={k: _number(v) for k, v in figures.items()},
        )
        # One calibration, one blob: trailing bytes, another CBOR form or number type would give it two checksums.
        _require(calibration.encode() == blob, _("it is not in the canonical encoding of its calibration"))
        return calibration


def blob_checksum(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _require(condition: bool, detail: str) -> None:
    if not condition:
        raise CalibrationBlobError(detail=detail)


def _require_keys(data: dict[Any, Any], known: frozenset[str]) -> None:
    _require(set(data) == known, _("its keys are not {names}", names=", ".join(sorted(known))))


def _number(value: Any) -> float:
    """``value`` unchanged (an int stays an int, so the blob re-encodes to its own bytes) if it is a finite float
    or an int within ``MAX_INTEGER`` (a CBOR bignum is not, and ``math.isfinite`` would overflow on it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        _require(abs(value) <= MAX_INTEGER, _("a number is beyond any measurement"))
        return value
    _require(isinstance(value, float) and math.isfinite(value), _("a value that must be a finite number is not one"))
    return float(value)


def _matrix(value: Any) -> Matrix3:
    _require(isinstance(value, list) and len(value) == 3, _("a 3x3 matrix has not three rows"))
    rows = []
    for row in value:
        _require(isinstance(row, list) and len(row) == 3, _("a 3x3 matrix row has not three numbers"))
        a, b, c = (_number(v) for v in row)
        rows.append((a, b, c))
    return rows[0], rows[1], rows[2]


def _det(m: Matrix3) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )
