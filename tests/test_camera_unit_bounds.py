"""What a unit cannot make the station allocate: frames decoded only in their stream's layout, sizes only of
the unit's model, objects and chunks read only up to what was asked (review of the camera wire)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tracemalloc
import types
from typing import Any

import cv2
import numpy as np
import pytest
import test_camera_unit
from hostile_unit import genuine, reply_wire
from test_camera_unit import IMAGES, FakeCamera, H, W, frame, png
from test_client_hostile import TIMEOUT, HostileUnit
from test_device_endpoint import Clock

import camera.frames as frames_module
from camera.frames import CorruptFrame, decode_frame
from terminal.camera import MAX_BLOB
from terminal.camera_unit import MAX_SIDE, CameraUnit
from terminal.client import MAX_REPLY, ManagementClient
from terminal.errors import MalformedReply, ObjectTooLarge, RequestTimeout, TransferError
from terminal.framing import Frame
from terminal.models import model_by_id
from terminal.protocol import MessageType, Payload

camera, fake, clock = test_camera_unit.camera, test_camera_unit.fake, test_camera_unit.clock  # the fixtures


def _never_decode(*args: object) -> None:
    raise AssertionError("the PNG was decoded before its header was checked")


@pytest.mark.parametrize(
    ("stream", "image"),
    [
        ("ir", np.zeros((H, W, 4), np.uint16)),  # 16-bit RGBA: the reviewer's memory bomb, small
        ("ir", IMAGES["depth"]),  # 16-bit grey where 8-bit was promised
        ("ir", IMAGES["rgb"]),
        ("rgb", np.zeros((H, W, 3), np.uint16)),
        ("rgb", IMAGES["ir"]),
        ("depth", IMAGES["ir"]),
        ("depth", np.zeros((H, W, 4), np.uint16)),
    ],
)
def test_a_png_in_another_layout_is_refused_before_it_is_decoded(
    stream: str, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png(image)
    monkeypatch.setattr(frames_module.cv2, "imdecode", _never_decode)
    with pytest.raises(CorruptFrame, match="PNG header"):
        decode_frame(frame(stream, data))


def test_an_interlaced_png_is_refused_before_it_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(png(IMAGES["ir"]))
    data[28] = 1  # IHDR's interlace method: Adam7 (decoding it needs the whole image at once)
    monkeypatch.setattr(frames_module.cv2, "imdecode", _never_decode)
    with pytest.raises(CorruptFrame):
        decode_frame(frame("ir", bytes(data)))


def test_each_stream_decodes_what_opencv_writes_for_it() -> None:
    for stream, image in IMAGES.items():
        assert np.array_equal(decode_frame(frame(stream, png(image))), image)
    assert cv2.imencode(".png", IMAGES["rgb"])[1].tobytes()[25] == 2  # BGR is written as PNG truecolour


# -- capabilities are the model's sizes -------------------------------------------------------------------
def _unit(virtual: Clock, unit: FakeCamera, **kwargs: Any) -> CameraUnit:
    client = ManagementClient(HostileUnit(virtual, unit.answer), timeout=TIMEOUT, max_frame=4096)
    client.open()
    return CameraUnit(client, **kwargs)


def test_capabilities_other_than_the_models_sizes_are_refused(clock: Clock, fake: FakeCamera) -> None:
    module = model_by_id("df2").camera
    with pytest.raises(MalformedReply) as caught:
        _unit(clock, fake, module=module).capabilities()
    assert caught.value.params["field"] == "ir" and caught.value.params["expected"] == "640x400"
    fitting = dataclasses.replace(module, ir_resolution=(W, H), rgb_resolution=(W, H))
    assert _unit(clock, fake, module=fitting).capabilities().rgb == (W, H)


def test_a_side_above_any_terminal_camera_is_refused(camera: CameraUnit, fake: FakeCamera) -> None:
    fake.forge[MessageType.CAMERA_CAPABILITIES] = lambda reply: {**reply, "rgb": {"width": 8192, "height": 8}}
    with pytest.raises(MalformedReply) as caught:
        camera.capabilities()
    assert caught.value.params["field"] == "rgb" and str(MAX_SIDE) in caught.value.params["expected"]
    assert MAX_SIDE < 8192


# -- object reads are bounded before a byte is kept -------------------------------------------------------
class _Stub:
    """A client whose unit answers every object read with ``data`` at once, announcing ``total``."""

    unit_name, chunk_size = "X", 4096

    def __init__(self, data: bytes, total: int) -> None:
        self.data, self.total = data, total
        self.read_object = types.MethodType(ManagementClient.read_object, self)
        self.read_object_into = types.MethodType(ManagementClient.read_object_into, self)

    def request(self, type_: int, payload: Payload) -> Payload:
        digest = hashlib.sha256(self.data).digest()
        return {"name": payload["name"], "offset": 0, "total": self.total, "sha256": digest, "data": self.data}


BIG = bytes(16 << 20)


def test_a_huge_calibration_chunk_is_refused_in_bounded_memory() -> None:
    stub = _Stub(BIG, len(BIG))
    tracemalloc.start()
    try:
        with pytest.raises(ObjectTooLarge) as caught:
            CameraUnit(stub).read_calibration()  # type: ignore[arg-type]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.params["limit"] == MAX_BLOB
    assert peak < 1 << 20  # not one copy of the 16 MiB chunk


def test_an_object_above_the_callers_limit_is_refused_before_a_byte_is_written() -> None:
    out = io.BytesIO()
    with pytest.raises(ObjectTooLarge):
        ManagementClient.read_object_into(_Stub(b"x" * 100, 100), "logs", out, limit=99)  # type: ignore[arg-type]
    assert out.getvalue() == b""


def test_a_chunk_longer_than_asked_for_is_refused_before_it_is_written() -> None:
    out = io.BytesIO()
    with pytest.raises(TransferError, match="bad chunk"):
        ManagementClient.read_object_into(_Stub(BIG, len(BIG)), "logs", out)  # type: ignore[arg-type]
    assert out.getvalue() == b""


def test_a_reply_larger_than_any_chunk_is_not_reassembled(clock: Clock) -> None:
    padded: list[int] = []

    def answer(request: Frame, payload: Payload) -> bytes:
        reply = genuine(request, payload)
        if request.type == MessageType.INFO:
            if padded:
                return b""  # once is enough: the client waits out its budget
            padded.append(request.seq)
            reply["padding"] = bytes(MAX_REPLY + 1)
        return reply_wire(request, reply)

    client = ManagementClient(HostileUnit(clock, answer), timeout=TIMEOUT, max_frame=4096)
    client.open()
    assert client.request(MessageType.TIME)["utc"] > 0
    with pytest.raises(RequestTimeout):
        client.info()
