"""Captured frames as images: the PNGs of a ``terminal.camera_unit.FrameSet`` decoded into numpy arrays.

A frame must decode to exactly what its descriptor says (the contract's layouts: IR grey ``uint8 (H, W)``, RGB
``uint8 (H, W, 3)`` BGR, depth ``uint16 (H, W)`` millimetres); anything else is :class:`CorruptFrame`.  The PNG
header is read before the image is decoded, so a small PNG that claims a huge image, or pixels of another
depth or colour type than its stream's (which would decode to more memory), is refused unallocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera_unit import FORMATS, FramePng, FrameSet, size_text

from .errors import CameraError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The first chunk: its length and type, then width, height, bit depth, colour type, compression, filter, interlace.
_IHDR = struct.Struct(">I4sIIBBBBB")
_IHDR_LENGTH = 13
GREY, TRUECOLOUR = 0, 2  # PNG colour types
# What each stream's PNG header must say (bit depth, colour type) before a byte of it is decoded: an image in
# another layout would decode to more memory than its descriptor allows (a 16-bit RGBA PNG is 8x an IR frame).
PNG_LAYOUTS = {"ir": (8, GREY), "rgb": (8, TRUECOLOUR), "depth": (16, GREY)}


class CorruptFrame(CameraError):
    message = N_("The {stream} frame is not the image its capture described: {detail}")
    remedy = N_("Capture again; if it keeps happening, update the unit's firmware or report it to its vendor.")


@dataclass(frozen=True)
class Frames:
    """The decoded frames of one capture; None for a stream not captured."""

    ir: npt.NDArray[np.uint8] | None = None
    rgb: npt.NDArray[np.uint8] | None = None
    depth: npt.NDArray[np.uint16] | None = None


def decode_frame(frame: FramePng) -> np.ndarray:
    """``frame``'s pixels, of exactly the descriptor's shape and dtype; :class:`CorruptFrame` otherwise."""

    def corrupt(detail: str) -> CorruptFrame:
        return CorruptFrame(stream=frame.stream, detail=detail)

    png = frame.png
    if not png.startswith(PNG_SIGNATURE) or len(png) < len(PNG_SIGNATURE) + _IHDR.size:
        raise corrupt(_("it is not a PNG"))
    length, kind, width, height, bits, colour, compression, filtering, interlace = _IHDR.unpack_from(
        png, len(PNG_SIGNATURE)
    )
    if kind != b"IHDR" or length != _IHDR_LENGTH:
        raise corrupt(_("it is not a PNG"))
    if (width, height) != (frame.width, frame.height):
        found, expected = size_text(width, height), size_text(frame.width, frame.height)
        raise corrupt(_("it is {found} pixels, not {expected}", found=found, expected=expected))
    if (bits, colour) != PNG_LAYOUTS.get(frame.stream) or (compression, filtering, interlace) != (0, 0, 0):
        raise corrupt(_("its PNG header is not in its stream's pixel format"))
    try:
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise corrupt(_("it does not decode"))
    shape = (frame.height, frame.width) if frame.channels == 1 else (frame.height, frame.width, frame.channels)
    dtype = np.uint8 if frame.bits == 8 else np.uint16
    if image.shape != shape or image.dtype != dtype:
        found = "x".join(str(n) for n in image.shape) + f" {image.dtype}"
        expected = "x".join(str(n) for n in shape) + f" {np.dtype(dtype)}"
        raise corrupt(_("it decodes to {found}, not {expected}", found=found, expected=expected))
    return image


def decode_frame_set(frame_set: FrameSet) -> Frames:
    """Every frame of ``frame_set`` decoded (:class:`CorruptFrame` at the first that is not what it claims)."""
    for stream, frame in frame_set.frames.items():
        if FORMATS.get(stream) != (frame.channels, frame.bits):
            raise CorruptFrame(stream=stream, detail=_("it is not in its stream's pixel format"))
    images = {stream: decode_frame(frame) for stream, frame in frame_set.frames.items()}
    return Frames(ir=images.get("ir"), rgb=images.get("rgb"), depth=images.get("depth"))
