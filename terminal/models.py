"""The terminal model table: models are data (``models.toml``), keyed by USB VID:PID.

The packaged table is merged with ``models.toml`` in the station's configuration directory, so a
distributor adds a model without touching code.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from i18n import N_, _

from .dirs import config_dir
from .errors import NaiadError, UnknownModel

T = TypeVar("T")
RUN = "run"
BOOTLOADER = "bootloader"
PACKAGED_TABLE = Path(__file__).with_name("models.toml")


class ModelTableError(NaiadError):
    message = N_("The model table {path} is invalid: {detail}")
    remedy = N_("Fix the row named in the message; every model needs the fields of the packaged table.")


@dataclass(frozen=True)
class UsbId:
    vid: int
    pid: int

    @classmethod
    def parse(cls, text: str) -> UsbId:
        vid, pid = text.split(":")
        return cls(int(vid, 16), int(pid, 16))

    def __str__(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True)
class CameraSpread:
    """How far one unit's camera may differ from the model's nominal one (the simulator draws within it)."""

    focal_pct: float = 2.0  # fx, fy: within +/- this % of nominal
    principal_px: float = 12.0  # cx, cy: within +/- this many pixels of the image centre
    k1: tuple[float, float] = (-0.12, 0.02)  # radial distortion ranges
    k2: tuple[float, float] = (-0.05, 0.12)
    tangential: float = 0.001  # p1, p2: within +/- this
    rotation_deg: float = 0.5  # IR-to-RGB rotation: each axis within +/- this
    translation_mm: float = 0.8  # IR-to-RGB translation: each axis within +/- this of nominal


@dataclass(frozen=True)
class CameraLimits:
    """Acceptance limits of a calibration, a depth-quality run and a field check (DESIGN section 6)."""

    calibration_rms_px: float = 0.5  # each camera's reprojection RMS
    stereo_rms_px: float = 0.6  # IR-to-RGB (stereoCalibrate) RMS
    min_views: int = 12
    min_coverage: float = 0.6  # share of the image's grid cells that hold a detected corner
    focal_std_pct: float = 0.2  # largest standard deviation of fx, fy, as % of the value
    principal_std_px: float = 1.0  # largest standard deviation of cx, cy
    depth_distances_m: tuple[float, ...] = (0.5, 0.8)
    min_fill_rate: float = 0.95
    plane_rms_pct: float = 0.5  # plane-fit RMS, % of distance
    z_error_pct: float = 1.0  # |median Z error|, % of distance
    field_reprojection_px: float = 1.0  # a field check's reprojection RMS with the stored calibration
    field_misalignment_px: float = 2.0  # IR corners mapped into RGB against the RGB corners, RMS
    field_depth_bias_pct: float = 1.0  # depth against the board's distance from its pose, % of distance
    field_rgb_blur_px: float = 1.8  # RGB board edges blurred by a Gaussian wider than this (px): out of focus
    field_projector_fill: float = 0.5  # fill under this share of min_fill_rate: no pattern at all (the board's
    # dark squares alone take some depth away; below them the projector is dead or covered)
    max_subpixel_rms_px: float = 0.2  # a depth run's subpixel RMS (disparity noise, px)
    extra_poses: int = 12  # aimed jig poses at most, after the planned sequence, to reach views and coverage


@dataclass(frozen=True)
class CameraModule:
    module: str
    ir_resolution: tuple[int, int]
    rgb_resolution: tuple[int, int]
    focal_length_px: float  # the IR camera's nominal focal length
    baseline_mm: float  # IR camera to projector
    disparity_sigma_px: float
    depth_range_mm: tuple[int, int]
    speckle_dots: int
    rgb_focal_length_px: float
    rgb_from_ir_t_mm: tuple[float, float, float]  # nominal X_rgb = R X_ir + t, R nominally identity
    spread: CameraSpread = field(default_factory=CameraSpread)
    limits: CameraLimits = field(default_factory=CameraLimits)


@dataclass(frozen=True)
class Partition:
    name: str
    size: int
    slotted: bool


@dataclass(frozen=True)
class TerminalModel:
    id: str
    name: str
    vendor: str
    serial_prefix: str
    run_usb: UsbId
    bootloader_usb: UsbId
    hardware_revisions: tuple[str, ...]
    slot_scheme: str
    max_download_size: int
    camera: CameraModule
    partitions: tuple[Partition, ...]

    @property
    def slots(self) -> tuple[str, ...]:
        return ("a", "b") if self.slot_scheme == "ab" else ("",)

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    def usb_id(self, mode: str) -> UsbId:
        return self.run_usb if mode == RUN else self.bootloader_usb


def _triple(value: Any) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in value)
    return x, y, z


def _table(kind: type[T], row: dict[str, Any]) -> T:
    """``kind`` from a TOML table: the dataclass's defaults, overridden by the row, each value of its type."""
    defaults = kind()
    unknown = set(row) - {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    values: dict[str, Any] = {}
    for name, value in row.items():
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            values[name] = tuple(float(v) for v in value)
            if len(values[name]) != len(default) and name != "depth_distances_m":
                raise ValueError(name)
            if name == "depth_distances_m" and len(values[name]) < 2:  # one distance says nothing of a slope
                raise ValueError(name)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(name)
        else:
            values[name] = type(default)(value)
    return dataclasses.replace(defaults, **values)  # type: ignore[type-var]


def _parse_model(row: dict[str, Any], path: Path) -> TerminalModel:
    try:
        cam = row["camera"]
        return TerminalModel(
            id=row["id"],
            name=row["name"],
            vendor=row["vendor"],
            serial_prefix=row["serial_prefix"],
            run_usb=UsbId.parse(row["run_usb"]),
            bootloader_usb=UsbId.parse(row["bootloader_usb"]),
            hardware_revisions=tuple(row["hardware_revisions"]),
            slot_scheme=row["slot_scheme"],
            max_download_size=int(row["max_download_size"]),
            camera=CameraModule(
                module=cam["module"],
                ir_resolution=(cam["ir_resolution"][0], cam["ir_resolution"][1]),
                rgb_resolution=(cam["rgb_resolution"][0], cam["rgb_resolution"][1]),
                focal_length_px=float(cam["focal_length_px"]),
                baseline_mm=float(cam["baseline_mm"]),
                disparity_sigma_px=float(cam["disparity_sigma_px"]),
                depth_range_mm=(cam["depth_range_mm"][0], cam["depth_range_mm"][1]),
                speckle_dots=int(cam["speckle_dots"]),
                rgb_focal_length_px=float(cam["rgb_focal_length_px"]),
                rgb_from_ir_t_mm=_triple(cam["rgb_from_ir_t_mm"]),
                spread=_table(CameraSpread, cam.get("spread", {})),
                limits=_table(CameraLimits, cam.get("limits", {})),
            ),
            partitions=tuple(
                Partition(p["name"], int(p["size"]), bool(p.get("slotted", False))) for p in row["partition"]
            ),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelTableError(
            path=str(path),
            detail=_(
                "the row of model {model} lacks a field or has one of the wrong type: {reason}",
                model=row.get("id", "?"),
                reason=repr(exc),
            ),
        ) from exc


def read_table(path: Path) -> dict[str, TerminalModel]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelTableError(path=str(path), detail=_("it could not be read: {reason}", reason=exc)) from exc
    models = [_parse_model(row, path) for row in data.get("model", [])]
    return {m.id: m for m in models}


def user_table_path() -> Path:
    return config_dir() / "models.toml"


@functools.cache
def load_models(extra: Path | None = None) -> dict[str, TerminalModel]:
    """Every known model by id: the packaged table, then the user's table over it."""
    models = read_table(PACKAGED_TABLE)
    extra = extra or user_table_path()
    if extra.exists():
        models.update(read_table(extra))
    return models


def model_by_id(model_id: str) -> TerminalModel:
    try:
        return load_models()[model_id]
    except KeyError:
        raise UnknownModel(model=model_id) from None


def match_usb(vid: int, pid: int) -> tuple[TerminalModel, str] | None:
    """The model and mode (``run`` or ``bootloader``) a USB VID:PID belongs to, or None."""
    for model in load_models().values():
        for mode in (RUN, BOOTLOADER):
            usb = model.usb_id(mode)
            if (usb.vid, usb.pid) == (vid, pid):
                return model, mode
    return None
