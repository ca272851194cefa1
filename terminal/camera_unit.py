"""Host side of the camera group (docs/protocol.md section 9): a unit's 3D camera module as typed calls.

Replies are shape-checked by the client (``terminal.schema``); what a shape cannot say is checked here before
a byte of a frame is read: the capture answers exactly the streams asked, each frame is the object of its own
stream, of the stream's size and pixel format as the camera announced them, and no larger than the unit's
``max_frame_bytes``, ``MAX_FRAME_BYTES`` and what a PNG of its pixels can take.  Each frame is then read with
the chunked object transfer, bounded by its descriptor, and must arrive with the descriptor's byte count and
SHA-256.  So a unit can make a capture fail with a typed error, never make the station read without bound.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from i18n import N_, _

from .camera import MAX_BLOB, CameraCalibration
from .client import ManagementClient
from .errors import MalformedReply, ObjectTooLarge, RemoteError, TransferError
from .events import ProgressCallback
from .models import CameraModule
from .protocol import CAMERA_STREAMS, OBJECT_CALIBRATION, ErrorCode, MessageType, Payload, frame_object, type_name

MAX_FRAME_BYTES = 64 * 1024 * 1024  # the most the station reads of one frame, whatever the unit allows
MAX_SIDE = 4096  # pixels: no camera module of a terminal comes near it (the largest model is 1920 wide)
PNG_CONTAINER = 64 * 1024  # signature, header, end and ancillary chunks a PNG may add to its pixel data
FORMATS = {"ir": (1, 8), "rgb": (3, 8), "depth": (1, 16)}  # stream -> (channels, bits)


class FrameMismatch(TransferError):
    """A frame arrived unlike its capture's descriptor: another size or another SHA-256."""

    message = N_("Unit {serial} sent {name} unlike its capture described it: {detail}")
    remedy = N_("The unit's firmware does not follow the management protocol: update it, or report it to its vendor.")


@dataclass(frozen=True)
class Capabilities:
    """What the camera module is: sizes as (width, height), the depth range and the projector baseline."""

    module: str
    ir: tuple[int, int]
    rgb: tuple[int, int]
    depth: tuple[int, int]
    depth_range_mm: tuple[int, int]
    projector_baseline_mm: float
    max_frame_bytes: int

    def size(self, stream: str) -> tuple[int, int]:
        return {"ir": self.ir, "rgb": self.rgb, "depth": self.depth}[stream]


@dataclass(frozen=True)
class FramePng:
    """One captured frame as the unit sent it: a PNG of ``width`` x ``height`` pixels (``camera.frames`` decodes it)."""

    stream: str
    width: int
    height: int
    channels: int
    bits: int
    png: bytes


@dataclass(frozen=True)
class FrameSet:
    """The frames of one capture, by stream; ``timestamp`` is the unit's clock (UTC seconds)."""

    frame_set: int
    timestamp: float
    frames: dict[str, FramePng]


def png_bound(width: int, height: int, channels: int, bits: int) -> int:
    """The most bytes a PNG of these pixels takes: the raw rows with their filter bytes, deflate's stored-block
    and chunk framing (well under 1/64 of it) and ``PNG_CONTAINER``.  An incompressible frame fits; a bigger
    descriptor is a lie."""
    raw = width * height * channels * bits // 8
    return raw + height + raw // 64 + PNG_CONTAINER


def size_text(width: int, height: int) -> str:
    """A frame size as messages show it: ``640x400``."""
    return f"{width}x{height}"


class CameraUnit:
    """The camera of the unit behind ``client`` (an open ``ManagementClient``).

    With ``module`` (the unit's model's ``camera``), the capabilities must announce the model's IR and RGB
    sizes: a unit cannot make the station read frames larger than its model's."""

    def __init__(self, client: ManagementClient, *, module: CameraModule | None = None) -> None:
        self.client = client
        self.module = module
        self._capabilities: Capabilities | None = None

    def capabilities(self) -> Capabilities:
        """What the module is (asked once per ``CameraUnit``; a capture needs it to bound its frames)."""
        if self._capabilities is None:
            reply = self.client.request(MessageType.CAMERA_CAPABILITIES)
            sizes = {stream: self._size(reply[stream], stream) for stream in CAMERA_STREAMS}
            if sizes["depth"] != sizes["ir"]:  # depth is registered to the IR image: the same pixel grid
                raise self._malformed(MessageType.CAMERA_CAPABILITIES, "depth", _("the IR image's size"))
            if self.module is not None:
                for stream, size in (("ir", self.module.ir_resolution), ("rgb", self.module.rgb_resolution)):
                    if sizes[stream] != size:
                        raise self._malformed(MessageType.CAMERA_CAPABILITIES, stream, size_text(*size))
            low, high = reply["depth"]["range_mm"]
            if low >= high:
                expected = _("[low, high] with low below high")
                raise self._malformed(MessageType.CAMERA_CAPABILITIES, "depth.range_mm", expected)
            self._capabilities = Capabilities(
                module=reply["module"],
                ir=sizes["ir"],
                rgb=sizes["rgb"],
                depth=sizes["depth"],
                depth_range_mm=(low, high),
                projector_baseline_mm=reply["projector_baseline_mm"],
                max_frame_bytes=reply["max_frame_bytes"],
            )
        return self._capabilities

    def projector(self, on: bool | None = None) -> bool:
        """Whether the IR projector is on; switches it first when ``on`` is given."""
        return bool(self.client.request(MessageType.CAMERA_PROJECTOR, {} if on is None else {"on": on})["on"])

    def exposure(self, ir_us: int | None = None, rgb_us: int | None = None) -> tuple[int, int]:
        """The IR and RGB exposure times (microseconds); sets the ones given first (50..50000, else bad-request)."""
        payload: Payload = {}
        if ir_us is not None:
            payload["ir_us"] = ir_us
        if rgb_us is not None:
            payload["rgb_us"] = rgb_us
        reply = self.client.request(MessageType.CAMERA_EXPOSURE, payload)
        return reply["ir_us"], reply["rgb_us"]

    def capture(
        self,
        streams: Sequence[str] = CAMERA_STREAMS,
        *,
        speckle: bool = False,
        progress: ProgressCallback | None = None,
    ) -> FrameSet:
        """Capture ``streams`` (a non-empty subset of ir, rgb, depth) at once and read every frame.

        ``progress`` counts the bytes of all the frames together.  ``speckle``: the IR frame shows the projector's
        dots (when it is on) instead of flood-lit IR."""
        wanted = list(streams)
        if not wanted or len(set(wanted)) != len(wanted) or not set(wanted) <= set(CAMERA_STREAMS):
            raise ValueError(f"streams must be a non-empty subset of {CAMERA_STREAMS} without repeats: {wanted}")
        capabilities = self.capabilities()
        reply = self.client.request(MessageType.CAMERA_CAPTURE, {"streams": wanted, "speckle": speckle})
        descriptors = reply["frames"]
        if sorted(descriptors) != sorted(wanted):
            raise self._malformed(MessageType.CAMERA_CAPTURE, "frames", "{" + ", ".join(wanted) + "}")
        for stream in wanted:
            self._check_descriptor(stream, descriptors[stream], capabilities)
        total, done = sum(descriptors[s]["bytes"] for s in wanted), 0
        frames = {}
        for stream in wanted:
            descriptor = descriptors[stream]

            def step(received: int, _total: int, before: int = done) -> None:
                if progress:
                    progress(before + received, total)

            png = self._read(frame_object(stream), descriptor["bytes"], descriptor["sha256"], step)
            done += len(png)
            frames[stream] = FramePng(
                stream, descriptor["width"], descriptor["height"], descriptor["channels"], descriptor["bits"], png
            )
        return FrameSet(reply["frame_set"], reply["timestamp"], frames)

    def read_calibration(self) -> bytes | None:
        """The calibration blob the unit stores (as stored, not decoded), None when it has none."""
        try:
            return self._read(OBJECT_CALIBRATION, MAX_BLOB)
        except RemoteError as exc:
            if exc.params.get("code") == ErrorCode.NOT_FOUND:
                return None
            raise

    def write_calibration(self, blob: bytes, progress: ProgressCallback | None = None) -> None:
        """Store ``blob`` on the unit; a blob that is not a valid calibration is refused here, before it is sent
        (``CalibrationBlobError``), as the unit would refuse it."""
        CameraCalibration.decode(blob)
        self.client.write_object(OBJECT_CALIBRATION, blob, progress)

    # -- checks ------------------------------------------------------------------------------------
    def _size(self, size: Payload, stream: str) -> tuple[int, int]:
        width, height = size["width"], size["height"]
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            expected = _("at most {side} x {side} pixels", side=MAX_SIDE)
            raise self._malformed(MessageType.CAMERA_CAPABILITIES, stream, expected)
        return width, height

    def _check_descriptor(self, stream: str, descriptor: Payload, capabilities: Capabilities) -> None:
        """A frame descriptor must name its stream's object in its stream's size and format, within the limits."""
        where = f"frames.{stream}"
        name = frame_object(stream)
        if descriptor["object"] != name:
            raise self._malformed(MessageType.CAMERA_CAPTURE, f"{where}.object", name)
        width, height = capabilities.size(stream)
        if (descriptor["width"], descriptor["height"]) != (width, height):
            raise self._malformed(MessageType.CAMERA_CAPTURE, f"{where}.width", size_text(width, height))
        channels, bits = FORMATS[stream]
        if (descriptor["channels"], descriptor["bits"]) != (channels, bits):
            expected = _("{channels} channels of {bits} bits", channels=channels, bits=bits)
            raise self._malformed(MessageType.CAMERA_CAPTURE, f"{where}.channels", expected)
        limit = min(capabilities.max_frame_bytes, MAX_FRAME_BYTES, png_bound(width, height, channels, bits))
        if descriptor["bytes"] > limit:
            raise ObjectTooLarge(serial=self.client.unit_name, name=name, size=descriptor["bytes"], limit=limit)

    def _read(
        self, name: str, limit: int, sha256: bytes | None = None, progress: ProgressCallback | None = None
    ) -> bytes:
        """Object ``name``, at most ``limit`` bytes; with ``sha256``, exactly ``limit`` bytes of that digest."""
        serial = self.client.unit_name

        def check(received: int, total: int) -> None:
            if sha256 is not None and total != limit:
                detail = _("{size} bytes where the capture said {expected}", size=total, expected=limit)
                raise FrameMismatch(serial=serial, name=name, detail=detail)
            if progress:
                progress(received, total)

        data = self.client.read_object(name, check, limit=limit)  # check runs after the first chunk
        if sha256 is not None and hashlib.sha256(data).digest() != sha256:
            raise FrameMismatch(serial=serial, name=name, detail=_("its SHA-256 is not the capture's"))
        return data

    def _malformed(self, type_: MessageType, field: str, expected: str) -> MalformedReply:
        client = self.client
        return MalformedReply(
            path=client.transport.path,
            serial=client.unit_name,
            request=type_name(type_),
            field=field,
            expected=expected,
        )
