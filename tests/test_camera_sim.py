"""The camera group end to end: ``CameraUnit`` against the simulator's camera over its pty (the real wire).

Capture and decode a frame set, switch the projector and exposures, write a calibration blob and read it back,
and see a blob of another unit refused with the stored one kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from test_camera_formats import calibration

from camera.frames import decode_frame_set
from terminal.camera_unit import CameraUnit
from terminal.client import ManagementClient
from terminal.errors import RemoteError
from terminal.models import model_by_id

DF2 = model_by_id("df2").camera


@pytest.fixture
def unit(sim: Any) -> Iterator[tuple[CameraUnit, str, Any]]:
    terminal = sim.terminals()[0]
    with ManagementClient(f"serial:{terminal['pty']}", timeout=20.0) as client:
        yield CameraUnit(client), terminal["serial"], sim


def test_a_capture_of_the_simulator_decodes_to_the_module_s_images(unit: tuple[CameraUnit, str, Any]) -> None:
    camera, _serial, _sim = unit
    capabilities = camera.capabilities()
    assert (capabilities.module, capabilities.ir, capabilities.rgb) == (
        DF2.module,
        DF2.ir_resolution,
        DF2.rgb_resolution,
    )
    assert capabilities.depth == capabilities.ir and capabilities.depth_range_mm == DF2.depth_range_mm
    steps: list[tuple[int, int]] = []
    camera.projector(True)
    frame_set = camera.capture(progress=lambda done, total: steps.append((done, total)))
    frames = decode_frame_set(frame_set)
    (w, h), (rw, rh) = DF2.ir_resolution, DF2.rgb_resolution
    assert frames.ir is not None and frames.ir.shape == (h, w) and frames.ir.dtype == np.uint8
    assert frames.rgb is not None and frames.rgb.shape == (rh, rw, 3) and frames.rgb.dtype == np.uint8
    assert frames.depth is not None and frames.depth.shape == (h, w) and frames.depth.dtype == np.uint16
    low, high = DF2.depth_range_mm
    measured = frames.depth[frames.depth > 0]
    assert measured.size > 0.2 * frames.depth.size and low <= measured.min() and measured.max() <= high
    assert frames.ir.std() > 10  # the default scene holds a board, not a blank image
    total = sum(len(f.png) for f in frame_set.frames.values())
    assert steps[-1] == (total, total)


def test_projector_and_exposure_reach_the_unit(unit: tuple[CameraUnit, str, Any]) -> None:
    camera, _serial, _sim = unit
    assert camera.projector(False) is False and camera.projector() is False
    frames = decode_frame_set(camera.capture(["depth"]))
    assert frames.depth is not None and not frames.depth.any()  # no projector, no depth
    assert camera.exposure(ir_us=500, rgb_us=20000) == (500, 20000) and camera.exposure() == (500, 20000)
    with pytest.raises(RemoteError) as caught:
        camera.exposure(ir_us=10)
    assert caught.value.params["code"] == "bad-request" and camera.exposure() == (500, 20000)


def test_a_calibration_is_written_read_back_and_one_of_another_unit_refused(unit: tuple[CameraUnit, str, Any]) -> None:
    camera, serial, _sim = unit
    assert camera.read_calibration() is None
    blob = dataclasses.replace(calibration(), serial=serial, model="df2").encode()
    camera.write_calibration(blob)
    assert camera.read_calibration() == blob
    foreign = dataclasses.replace(calibration(), serial="DF2OTHER0001", model="df2").encode()
    with pytest.raises(RemoteError) as caught:
        camera.write_calibration(foreign)
    assert caught.value.params["code"] == "bad-request"
    assert camera.read_calibration() == blob  # the stored one is kept
