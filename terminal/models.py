"""The terminal model table: models are data (``models.toml``), keyed by USB VID:PID.

The packaged table is merged with ``models.toml`` in the station's configuration directory, so a
distributor adds a model without touching code.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i18n import N_, _

from .dirs import config_dir
from .errors import NaiadError, UnknownModel

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
class CameraModule:
    module: str
    ir_resolution: tuple[int, int]
    rgb_resolution: tuple[int, int]
    focal_length_px: float
    baseline_mm: float
    disparity_sigma_px: float
    depth_range_mm: tuple[int, int]
    speckle_dots: int


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
