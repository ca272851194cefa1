"""The unit side of the camera group: CAMERA_* requests, the frame objects and the stored calibration.

A capture renders what is in front of the camera now (the unit's scene, ``default`` after every boot) through
the unit's *physical* truth (drifted after a drop), keeps each frame as a PNG object ``camera/<stream>`` for
OBJECT_READ and answers with their descriptors.  The calibration blob (``camera/calibration``) is kept in
``calibration.bin`` only when it decodes and names this unit.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from terminal.camera import CalibrationBlobError, CameraCalibration, blob_checksum
from terminal.device import RequestRejected
from terminal.models import TerminalModel
from terminal.protocol import CAMERA_STREAMS, ErrorCode, MessageType, Payload, frame_object

from ..link import Faults
from ..state import UnitStore, replace_atomically
from .jig import scene_from_dict, scene_to_dict
from .render import Capture, Scene, render
from .truth import CameraTruth, load_or_draw

LOG = logging.getLogger(__name__)
CALIBRATION_FILE = "calibration.bin"
DEFAULT_IR_US, DEFAULT_RGB_US = 2000, 8000
OWN_IR_US = 1000  # the face-pay app's IR exposure: skin close up in sunlight stays below white
EXPOSURE_US = (50, 50000)
Objects = dict[str, tuple[bytes, bytes]]  # name -> (data, SHA-256): the unit's object store


@dataclass(frozen=True)
class OwnCapture:
    """What ``SimCamera.own_capture`` took: the frames by stream, and what they were rendered from."""

    frame_set: int
    frames: dict[str, np.ndarray]
    truth: CameraTruth
    scene: Scene
    capture: Capture


def _bad(detail: str) -> RequestRejected:
    return RequestRejected(ErrorCode.BAD_REQUEST, detail)


def _only(payload: Payload, allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise _bad(f"unknown fields {unknown}")


def encode_png(image: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", image)  # OpenCV's default: fast, and smallest on noisy frames
    if not ok:
        raise RequestRejected(ErrorCode.INTERNAL, "PNG encoding failed")
    return png.tobytes()


class SimCamera:
    """One unit's camera module: scene, projector, exposures, frames and calibration store."""

    REQUESTS = frozenset(
        {
            MessageType.CAMERA_CAPABILITIES,
            MessageType.CAMERA_PROJECTOR,
            MessageType.CAMERA_EXPOSURE,
            MessageType.CAMERA_CAPTURE,
        }
    )

    def __init__(self, store: UnitStore, serial: str, model: TerminalModel, faults: Faults, objects: Objects) -> None:
        self.store, self.serial, self.model, self.faults = store, serial, model, faults
        self._objects = objects
        self._truth: CameraTruth | None = None
        self._scene_data: dict[str, Any] = {"kind": "default"}
        self._lock = threading.Lock()
        self.projector_on = True
        self.ir_us, self.rgb_us = DEFAULT_IR_US, DEFAULT_RGB_US
        self.frame_set = 0
        self._rng = np.random.default_rng()

    # -- state -----------------------------------------------------------------------------------------
    @property
    def truth(self) -> CameraTruth:
        """The module as it left the factory (drawn and kept on first use)."""
        if self._truth is None:
            self._truth = load_or_draw(self.store.directory, self.serial, self.model)
        return self._truth

    def physical(self) -> CameraTruth:
        """The module as it is now: after a drop (``camera_drift``), the drifted one."""
        return self.truth.drifted() if self.faults.camera_drift else self.truth

    def boot(self) -> None:
        """Power-on state: the default scene, projector on, default exposures, no frames.

        Under the capture lock: a capture still rendering when the unit reboots must not leave its frames behind."""
        with self._lock:
            self._scene_data = {"kind": "default"}
            self.projector_on = True
            self.ir_us, self.rgb_us = DEFAULT_IR_US, DEFAULT_RGB_US
            for stream in CAMERA_STREAMS:
                self._objects.pop(frame_object(stream), None)

    def set_scene(self, data: Any) -> dict[str, Any]:
        """Put ``data`` (a scene dict) in front of the camera; returns the resolved scene."""
        scene = scene_from_dict(data, self.truth, self.model, self.serial)
        self._scene_data = dict(data)
        return scene_to_dict(scene)

    def scene(self) -> Scene:
        return scene_from_dict(self._scene_data, self.truth, self.model, self.serial)

    # -- requests ----------------------------------------------------------------------------------------
    def handle(self, type_: int, payload: Payload) -> Payload:
        return self._HANDLERS[type_](self, payload)

    def _capabilities(self, payload: Payload) -> Payload:
        _only(payload, set())
        cam = self.model.camera
        (iw, ih), (rw, rh) = cam.ir_resolution, cam.rgb_resolution
        return {
            "module": cam.module,
            "ir": {"width": iw, "height": ih},
            "rgb": {"width": rw, "height": rh},
            "depth": {"width": iw, "height": ih, "range_mm": list(cam.depth_range_mm)},
            "projector_baseline_mm": cam.baseline_mm,
            "max_frame_bytes": max_frame_bytes(self.model),
        }

    def _projector(self, payload: Payload) -> Payload:
        _only(payload, {"on"})
        if "on" in payload:
            if not isinstance(payload["on"], bool):
                raise _bad("on must be true or false")
            self.projector_on = payload["on"]
            self.store.log(f"projector {'on' if self.projector_on else 'off'}")
        return {"on": self.projector_on}  # a dead projector still says it is on

    def _exposure(self, payload: Payload) -> Payload:
        _only(payload, {"ir_us", "rgb_us"})
        for name in payload:
            value = payload[name]
            if isinstance(value, bool) or not isinstance(value, int) or not EXPOSURE_US[0] <= value <= EXPOSURE_US[1]:
                raise _bad(f"{name} must be {EXPOSURE_US[0]}..{EXPOSURE_US[1]} microseconds")
        self.ir_us = payload.get("ir_us", self.ir_us)
        self.rgb_us = payload.get("rgb_us", self.rgb_us)
        return {"ir_us": self.ir_us, "rgb_us": self.rgb_us}

    def _capture(self, payload: Payload) -> Payload:
        _only(payload, {"streams", "speckle"})
        streams, speckle = payload.get("streams"), payload.get("speckle", False)
        if (
            not isinstance(streams, list)
            or not streams
            or any(s not in CAMERA_STREAMS for s in streams)
            or len(set(streams)) != len(streams)
        ):
            raise _bad(f"streams must be a non-empty subset of {list(CAMERA_STREAMS)} without repeats")
        if not isinstance(speckle, bool):
            raise _bad("speckle must be true or false")
        with self._lock:
            return self._render(tuple(streams), speckle)

    def _capture_settings(
        self, streams: tuple[str, ...], speckle: bool, physical: CameraTruth, own: bool = False
    ) -> Capture:
        """The station's settings (projector, exposures as it set them), or with ``own`` the unit's apps' own:
        projector on and OWN_IR_US / DEFAULT_RGB_US, whatever the station left."""
        ir_us, rgb_us = (OWN_IR_US, DEFAULT_RGB_US) if own else (self.ir_us, self.rgb_us)
        return Capture(
            streams=streams,
            speckle=speckle,
            projector=(own or self.projector_on) and not self.faults.dead_projector,
            rgb_defocus=self.faults.rgb_defocus,
            ir_gain=ir_us / DEFAULT_IR_US,
            rgb_gain=rgb_us / DEFAULT_RGB_US,
            depth_scale=self.truth.projector_baseline_mm / physical.projector_baseline_mm,
            depth_range_mm=self.model.camera.depth_range_mm,
        )

    def own_capture(self) -> OwnCapture:
        """A frame set for the unit's own apps (face pay): flood IR, RGB and depth of the current scene, with the
        truth and scene it was rendered from.  The app owns the camera while it runs, so it captures with its
        own settings and leaves the station's (projector, exposures) as they were.  It counts as a capture; the
        station's frame objects stay."""
        with self._lock:
            physical, scene = self.physical(), self.scene()
            capture = self._capture_settings(CAMERA_STREAMS, False, physical, own=True)
            frames = render(physical, scene, capture, self._rng, self.model.camera.speckle_dots)
            self.frame_set += 1
            return OwnCapture(self.frame_set, frames, physical, scene, capture)

    def _render(self, streams: tuple[str, ...], speckle: bool) -> Payload:
        physical = self.physical()
        capture = self._capture_settings(streams, speckle, physical)
        for stream in CAMERA_STREAMS:  # a failed capture leaves no frames of the last one behind
            self._objects.pop(frame_object(stream), None)
        frames = render(physical, self.scene(), capture, self._rng, self.model.camera.speckle_dots)
        described: dict[str, Any] = {}
        with ThreadPoolExecutor(len(streams), thread_name_prefix="png") as pool:  # zlib lets go of the GIL
            pngs = dict(zip(streams, pool.map(encode_png, (frames[s] for s in streams)), strict=True))
        for stream in streams:
            image, png = frames[stream], pngs[stream]
            digest = hashlib.sha256(png).digest()
            self._objects[frame_object(stream)] = (png, digest)
            described[stream] = {
                "object": frame_object(stream),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "channels": 3 if image.ndim == 3 else 1,
                "bits": 16 if image.dtype == np.uint16 else 8,
                "bytes": len(png),
                "sha256": digest,
            }
        timestamp = time.time() + self.store.load().clock_offset  # the unit's clock, as TIME set it
        self.frame_set += 1  # only a capture that succeeded counts
        return {"frame_set": self.frame_set, "timestamp": timestamp, "frames": described}

    # -- the calibration object ------------------------------------------------------------------------
    def read_calibration(self) -> bytes | None:
        path = self.store.directory / CALIBRATION_FILE
        return path.read_bytes() if path.exists() else None

    def write_calibration(self, blob: bytes) -> None:
        """Keep ``blob`` if it is a whole calibration of this unit; refuse it (and keep the old one) otherwise."""
        try:
            calibration = CameraCalibration.decode(blob)
        except CalibrationBlobError as exc:
            raise RequestRejected(ErrorCode.INTEGRITY, "not a valid calibration blob") from exc
        if calibration.serial != self.serial:
            raise _bad("the calibration belongs to another unit")
        if calibration.model != self.model.id:
            raise _bad("the calibration is of another model")
        sizes = ((calibration.ir.width, calibration.ir.height), (calibration.rgb.width, calibration.rgb.height))
        if sizes != (self.model.camera.ir_resolution, self.model.camera.rgb_resolution):
            raise _bad("the calibration's image sizes are not this module's")
        replace_atomically(self.store.directory / CALIBRATION_FILE, blob)
        self.store.log(f"camera calibration stored, checksum {blob_checksum(blob)[:12]}")

    _HANDLERS: ClassVar[dict[int, Callable[[SimCamera, Payload], Payload]]] = {
        MessageType.CAMERA_CAPABILITIES: _capabilities,
        MessageType.CAMERA_PROJECTOR: _projector,
        MessageType.CAMERA_EXPOSURE: _exposure,
        MessageType.CAMERA_CAPTURE: _capture,
    }


def max_frame_bytes(model: TerminalModel) -> int:
    """An upper bound of any frame's PNG: the largest raw frame plus PNG's worst-case overhead."""
    cam = model.camera
    raw = max(cam.rgb_resolution[0] * cam.rgb_resolution[1] * 3, cam.ir_resolution[0] * cam.ir_resolution[1] * 2)
    return raw + raw // 100 + 65536
