"""The host side of the camera group against a fake and a hostile camera: typed calls, bounded frame reads.

``FakeCamera`` answers the camera group and the object transfer as a unit does (docs/protocol.md); a test
rewrites its replies (``forge``) or the object it serves (``served``) to lie.  Every lie is a typed
``NaiadError``: a malformed reply, a frame too large, a frame unlike its descriptor, a PNG of another image.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import test_device_endpoint
from hostile_unit import SERIAL, genuine, reply_wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_camera_formats import calibration
from test_client_hostile import TIMEOUT, HostileUnit
from test_device_endpoint import Clock

from camera.errors import CameraError
from camera.frames import CorruptFrame, Frames, decode_frame, decode_frame_set
from terminal.camera import CalibrationBlobError
from terminal.camera_unit import (
    MAX_FRAME_BYTES,
    CameraUnit,
    Capabilities,
    FrameMismatch,
    FramePng,
    FrameSet,
    png_bound,
)
from terminal.client import ManagementClient
from terminal.errors import MalformedReply, NaiadError, ObjectTooLarge, RemoteError
from terminal.framing import FLAG_ERROR, FLAG_REPLY, Frame
from terminal.protocol import OBJECT_CALIBRATION, MessageType, Payload, frame_object

clock = test_device_endpoint.clock  # the fixture: the client on a virtual clock

W, H = 64, 40  # every stream of the fake module is this small: the tests stay fast
RNG = np.random.default_rng(8)
IMAGES: dict[str, np.ndarray] = {
    "ir": RNG.integers(0, 256, (H, W), dtype=np.uint8),
    "rgb": RNG.integers(0, 256, (H, W, 3), dtype=np.uint8),
    "depth": RNG.integers(0, 1500, (H, W), dtype=np.uint16),
}
FORMAT = {"ir": (1, 8), "rgb": (3, 8), "depth": (1, 16)}


def png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


class FakeCamera:
    """A unit's camera: capabilities, projector, exposure, capture and the objects it serves.

    ``forge[type]`` rewrites a reply map before it is sent; ``served[name]`` replaces the bytes an object read
    serves (the capture's descriptor still describes the true frame), ``announced[name]`` the total it gives."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.projector, self.exposure = False, {"ir_us": 2000, "rgb_us": 8000}
        self.forge: dict[int, Callable[[Payload], Payload]] = {}
        self.served: dict[str, bytes] = {}
        self.announced: dict[str, int] = {}
        self.refuse: dict[int, str] = {}  # type -> the error code every such request gets
        self.frame_set = 0
        self.reads: list[str] = []
        self.writes: list[str] = []

    def answer(self, request: Frame, payload: Payload) -> bytes:
        try:
            if request.type in self.refuse:
                raise LookupError(self.refuse[request.type])
            reply = self.handle(request.type, payload)
        except LookupError as exc:
            code = "not-found" if isinstance(exc, KeyError) else str(exc)
            return reply_wire(request, {"code": code, "detail": "refused"}, flags=FLAG_REPLY | FLAG_ERROR)
        if request.type in self.forge:
            reply = self.forge[request.type](reply)
        return reply_wire(request, reply)

    def handle(self, type_: int, payload: Payload) -> Payload:
        if type_ == MessageType.CAMERA_CAPABILITIES:
            return {
                "module": "SL3D-TEST",
                "ir": {"width": W, "height": H},
                "rgb": {"width": W, "height": H},
                "depth": {"width": W, "height": H, "range_mm": [250, 1200]},
                "projector_baseline_mm": 40.0,
                "max_frame_bytes": 1 << 20,
            }
        if type_ == MessageType.CAMERA_PROJECTOR:
            self.projector = payload.get("on", self.projector)
            return {"on": self.projector}
        if type_ == MessageType.CAMERA_EXPOSURE:
            self.exposure.update(payload)
            return dict(self.exposure)
        if type_ == MessageType.CAMERA_CAPTURE:
            self.frame_set += 1
            frames = {}
            for stream in payload["streams"]:
                data = self.objects[frame_object(stream)] = png(IMAGES[stream])
                channels, bits = FORMAT[stream]
                frames[stream] = {
                    "object": frame_object(stream),
                    "width": W,
                    "height": H,
                    "channels": channels,
                    "bits": bits,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).digest(),
                }
            return {"frame_set": self.frame_set, "timestamp": 1_796_000_000.5, "frames": frames}
        if type_ == MessageType.OBJECT_READ:
            name = payload["name"]
            self.reads.append(name)
            data = self.served.get(name, self.objects[name])
            offset, length = payload["offset"], payload["length"]
            total = self.announced.get(name, len(data))
            chunk = data[offset : offset + length]
            return {
                "name": name,
                "offset": offset,
                "total": total,
                "sha256": hashlib.sha256(data).digest(),
                "data": chunk,
            }
        if type_ == MessageType.OBJECT_WRITE:
            self.writes.append(payload["name"])
            if payload["offset"] == 0:
                self.objects[payload["name"] + ".partial"] = b""
            partial = self.objects[payload["name"] + ".partial"] + payload["data"]
            self.objects[payload["name"] + ".partial"] = partial
            complete = len(partial) == payload["total"]
            if complete:
                self.objects[payload["name"]] = partial
            return {"received": len(partial), "complete": complete}
        return genuine(Frame(0, type_, b"", 0), payload)


Connect = Callable[..., CameraUnit]


@pytest.fixture
def fake() -> FakeCamera:
    return FakeCamera()


@pytest.fixture
def camera(clock: Clock, fake: FakeCamera) -> Any:
    client = ManagementClient(HostileUnit(clock, fake.answer), timeout=TIMEOUT, max_frame=4096)
    client.open()
    yield CameraUnit(client)
    client.close()


def test_capabilities_are_typed_sizes(camera: CameraUnit) -> None:
    assert camera.capabilities() == Capabilities("SL3D-TEST", (W, H), (W, H), (W, H), (250, 1200), 40.0, 1 << 20)


def test_projector_and_exposure_are_read_and_set(camera: CameraUnit) -> None:
    assert camera.projector() is False
    assert camera.projector(True) is True and camera.projector() is True
    assert camera.exposure() == (2000, 8000)
    assert camera.exposure(ir_us=500) == (500, 8000)


def test_a_capture_reads_every_frame_and_decodes_to_the_images(camera: CameraUnit) -> None:
    seen: list[tuple[int, int]] = []
    frame_set = camera.capture(progress=lambda done, total: seen.append((done, total)))
    assert (frame_set.frame_set, frame_set.timestamp, sorted(frame_set.frames)) == (1, 1_796_000_000.5, sorted(IMAGES))
    frames = decode_frame_set(frame_set)
    for stream, image in IMAGES.items():
        decoded = getattr(frames, stream)
        assert decoded.dtype == image.dtype and np.array_equal(decoded, image)
    total = sum(len(f.png) for f in frame_set.frames.values())
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_capture_of_some_streams_leaves_the_others_none(camera: CameraUnit) -> None:
    frames = decode_frame_set(camera.capture(["ir"]))
    assert frames.rgb is None and frames.depth is None and frames.ir is not None


@pytest.mark.parametrize("streams", [[], ["ir", "ir"], ["thermal"]])
def test_a_bad_stream_list_is_refused_before_the_unit_is_asked(camera: CameraUnit, streams: list[str]) -> None:
    with pytest.raises(ValueError):
        camera.capture(streams)


def _set(path: str, value: Any) -> Callable[[Payload], Payload]:
    """A forgery that puts ``value`` at the dotted ``path`` of a reply."""

    def forge(reply: Payload) -> Payload:
        *parents, last = path.split(".")
        node = reply
        for key in parents:
            node = node[key]
        node[last] = value
        return reply

    return forge


@pytest.mark.parametrize(
    ("type_", "path", "value", "field"),
    [
        (MessageType.CAMERA_CAPABILITIES, "ir", [640, 400], "ir"),
        (MessageType.CAMERA_CAPABILITIES, "rgb.width", -1, "rgb.width"),
        (MessageType.CAMERA_CAPABILITIES, "depth.range_mm", [250, 800, 1200], "depth.range_mm"),
        (MessageType.CAMERA_CAPABILITIES, "depth.range_mm", [1200, 250], "depth.range_mm"),
        (MessageType.CAMERA_CAPABILITIES, "projector_baseline_mm", math.nan, "projector_baseline_mm"),
        (MessageType.CAMERA_CAPABILITIES, "ir.width", 0, "ir"),
        (MessageType.CAMERA_CAPABILITIES, "ir.height", 1 << 20, "ir"),
        (MessageType.CAMERA_CAPABILITIES, "max_frame_bytes", "64M", "max_frame_bytes"),
        (MessageType.CAMERA_CAPABILITIES, "depth.width", W // 2, "depth"),
        (MessageType.CAMERA_PROJECTOR, "on", 1, "on"),
        (MessageType.CAMERA_EXPOSURE, "ir_us", 2.5, "ir_us"),
        (MessageType.CAMERA_CAPTURE, "frame_set", None, "frame_set"),
        (MessageType.CAMERA_CAPTURE, "timestamp", math.inf, "timestamp"),
        (MessageType.CAMERA_CAPTURE, "frames", [], "frames"),
        (MessageType.CAMERA_CAPTURE, "frames.ir.channels", 2, "frames.ir.channels"),
        (MessageType.CAMERA_CAPTURE, "frames.ir.channels", True, "frames.ir.channels"),
        (MessageType.CAMERA_CAPTURE, "frames.depth.bits", 12, "frames.depth.bits"),
        (MessageType.CAMERA_CAPTURE, "frames.rgb.sha256", bytes(16), "frames.rgb.sha256"),
        (MessageType.CAMERA_CAPTURE, "frames.rgb.bytes", -5, "frames.rgb.bytes"),
        (MessageType.CAMERA_CAPTURE, "frames.ir.object", "logs", "frames.ir.object"),
        (MessageType.CAMERA_CAPTURE, "frames.ir.object", OBJECT_CALIBRATION, "frames.ir.object"),
        (MessageType.CAMERA_CAPTURE, "frames.rgb.width", W * 2, "frames.rgb.width"),
        (MessageType.CAMERA_CAPTURE, "frames.rgb.channels", 1, "frames.rgb.channels"),
        (MessageType.CAMERA_CAPTURE, "frames.depth.bits", 8, "frames.depth.channels"),
        (MessageType.CAMERA_CAPTURE, "frames.thermal", {}, "frames.thermal.object"),
    ],
)
def test_a_reply_of_the_wrong_shape_is_a_typed_error_and_no_frame_is_read(
    camera: CameraUnit, fake: FakeCamera, type_: int, path: str, value: Any, field: str
) -> None:
    fake.forge[type_] = _set(path, value)
    with pytest.raises(MalformedReply) as caught:
        camera.capabilities()
        camera.projector()
        camera.exposure()
        camera.capture()
    assert caught.value.params["field"] == field and caught.value.params["serial"] == SERIAL
    assert fake.reads == []


DESCRIPTOR_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=40),
    st.sampled_from([0, 1, 3, 8, 16, W, H, 1 << 20, "camera/ir", "camera/rgb", "logs"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stream=st.sampled_from(["ir", "rgb", "depth"]),
    field=st.sampled_from(["object", "width", "height", "channels", "bits", "bytes", "sha256", "extra"]),
    value=DESCRIPTOR_VALUES,
)
def test_any_descriptor_field_gives_the_frames_or_a_typed_error(
    camera: CameraUnit, fake: FakeCamera, stream: str, field: str, value: Any
) -> None:
    fake.forge[MessageType.CAMERA_CAPTURE] = _set(f"frames.{stream}.{field}", value)
    try:
        frames = decode_frame_set(camera.capture())
    except NaiadError:
        return
    assert np.array_equal(getattr(frames, stream), IMAGES[stream])  # a lie the host let through changed nothing


def test_frames_other_than_asked_are_refused(camera: CameraUnit, fake: FakeCamera) -> None:
    fake.forge[MessageType.CAMERA_CAPTURE] = lambda reply: {**reply, "frames": {"rgb": reply["frames"]["ir"]}}
    with pytest.raises(MalformedReply) as caught:
        camera.capture(["ir"])
    assert caught.value.params["field"] == "frames" and fake.reads == []


@pytest.mark.parametrize(
    ("max_frame_bytes", "claimed"),
    [
        (1 << 20, (1 << 20) + 1),  # above the unit's own limit
        (1 << 40, png_bound(W, H, 3, 8) + 1),  # more than any PNG of these pixels takes
    ],
)
def test_an_oversized_frame_is_refused_before_a_byte_is_read(
    camera: CameraUnit, fake: FakeCamera, max_frame_bytes: int, claimed: int
) -> None:
    fake.forge[MessageType.CAMERA_CAPABILITIES] = _set("max_frame_bytes", max_frame_bytes)
    fake.forge[MessageType.CAMERA_CAPTURE] = _set("frames.rgb.bytes", claimed)
    with pytest.raises(ObjectTooLarge) as caught:
        camera.capture()
    assert caught.value.params["name"] == "camera/rgb" and caught.value.params["size"] == claimed
    assert fake.reads == []


def test_no_frame_passes_the_station_limit_whatever_the_unit_allows() -> None:
    assert png_bound(16384, 16384, 3, 16) > MAX_FRAME_BYTES  # so the 64 MiB cap is what bounds a huge module


def test_a_frame_object_larger_than_its_descriptor_is_cut_off_at_the_first_chunk(
    camera: CameraUnit, fake: FakeCamera
) -> None:
    fake.served["camera/ir"] = png(IMAGES["ir"]) + bytes(8 << 20)  # 8 MiB more than the descriptor says
    with pytest.raises(ObjectTooLarge) as caught:
        camera.capture(["ir"])
    assert caught.value.params["name"] == "camera/ir"
    assert fake.reads == ["camera/ir"]  # one chunk, not 8 MiB of them


def test_a_frame_object_announcing_more_than_its_descriptor_is_refused(camera: CameraUnit, fake: FakeCamera) -> None:
    fake.announced["camera/depth"] = 200 << 20
    with pytest.raises(ObjectTooLarge):
        camera.capture(["depth"])
    assert len(fake.reads) == 1


def test_a_frame_object_shorter_than_its_descriptor_is_a_mismatch(camera: CameraUnit, fake: FakeCamera) -> None:
    fake.served["camera/rgb"] = png(IMAGES["rgb"])[:-100]
    with pytest.raises(FrameMismatch) as caught:
        camera.capture(["rgb"])
    assert caught.value.params["name"] == "camera/rgb" and caught.value.remedy_text


def test_a_frame_whose_sha256_is_not_the_descriptors_is_a_mismatch(camera: CameraUnit, fake: FakeCamera) -> None:
    other = IMAGES["ir"].copy()
    other[0, 0] ^= 0xFF
    forged = png(other)
    assert len(forged) == len(png(IMAGES["ir"]))
    fake.served["camera/ir"] = forged  # a whole, self-consistent object; not the frame the capture described
    with pytest.raises(FrameMismatch):
        camera.capture(["ir"])


def frame(stream: str, data: bytes, width: int = W, height: int = H) -> FramePng:
    channels, bits = FORMAT[stream]
    return FramePng(stream, width, height, channels, bits, data)


@pytest.mark.parametrize(
    ("stream", "image"),
    [
        ("rgb", IMAGES["ir"]),  # grey where colour was promised
        ("ir", IMAGES["rgb"]),  # colour where grey was promised
        ("depth", IMAGES["ir"]),  # 8-bit where 16-bit was promised
        ("ir", IMAGES["depth"]),  # 16-bit where 8-bit was promised
        ("ir", np.zeros((H, W, 4), np.uint8)),  # with an alpha channel
        ("rgb", np.zeros((H + 1, W, 3), np.uint8)),  # another size
    ],
)
def test_a_png_of_another_image_is_a_corrupt_frame(stream: str, image: np.ndarray) -> None:
    with pytest.raises(CorruptFrame) as caught:
        decode_frame(frame(stream, png(image)))
    assert isinstance(caught.value, CameraError) and caught.value.params["stream"] == stream


def test_a_png_claiming_a_huge_image_is_refused_without_decoding() -> None:
    data = bytearray(png(IMAGES["ir"]))
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height (the CRC no longer matches either)
    with pytest.raises(CorruptFrame, match="100000x100000"):
        decode_frame(frame("ir", bytes(data)))


@pytest.mark.parametrize("data", [b"", b"GIF89a", png(IMAGES["ir"])[:60], b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_bytes_that_are_not_a_whole_png_are_a_corrupt_frame(data: bytes) -> None:
    with pytest.raises(CorruptFrame):
        decode_frame(frame("ir", data))


def test_a_frame_set_with_a_stream_in_another_format_is_corrupt() -> None:
    depth_as_ir = FrameSet(1, 0.0, {"depth": frame("ir", png(IMAGES["ir"]))})
    with pytest.raises(CorruptFrame):
        decode_frame_set(depth_as_ir)
    assert decode_frame_set(FrameSet(1, 0.0, {})) == Frames()


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600), cut=st.integers(min_value=0, max_value=2000), flip=st.integers(0, 255))
def test_any_bytes_decode_to_the_promised_image_or_a_corrupt_frame(data: bytes, cut: int, flip: int) -> None:
    good = bytearray(png(IMAGES["ir"][:8, :8]))
    if cut < len(good):
        good[cut] ^= flip
    for candidate in (data, bytes(good), bytes(good[:cut])):
        try:
            image = decode_frame(frame("ir", candidate, 8, 8))
        except CorruptFrame:
            continue
        assert image.shape == (8, 8) and image.dtype == np.uint8


# -- the calibration object -------------------------------------------------------------------------------
def test_a_calibration_is_written_and_read_back(camera: CameraUnit, fake: FakeCamera) -> None:
    assert camera.read_calibration() is None  # not-found: the unit has none
    blob = calibration().encode()
    steps: list[int] = []
    camera.write_calibration(blob, progress=lambda done, total: steps.append(done))
    assert camera.read_calibration() == blob and steps[-1] == len(blob)


def test_an_invalid_blob_is_refused_before_anything_is_sent(camera: CameraUnit, fake: FakeCamera) -> None:
    blob = bytearray(calibration().encode())
    blob[-1] ^= 1
    with pytest.raises(CalibrationBlobError):
        camera.write_calibration(bytes(blob))
    assert fake.writes == []


def test_a_calibration_object_larger_than_any_blob_is_refused(camera: CameraUnit, fake: FakeCamera) -> None:
    fake.objects[OBJECT_CALIBRATION] = bytes(100 << 20)
    with pytest.raises(ObjectTooLarge):
        camera.read_calibration()
    assert len(fake.reads) == 1


def test_other_refusals_of_a_calibration_read_are_not_taken_for_none(camera: CameraUnit, fake: FakeCamera) -> None:
    fake.refuse[MessageType.OBJECT_READ] = "busy"
    with pytest.raises(RemoteError) as caught:
        camera.read_calibration()
    assert caught.value.params["code"] == "busy"
