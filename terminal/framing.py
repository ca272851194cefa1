"""Frames of the management protocol on a byte stream (see docs/protocol.md).

A frame body is a fixed header, a CBOR payload piece and a CRC-32; on the wire it is COBS-encoded
between two zero bytes.  A receiver that meets garbage loses at most the frame the garbage touched:
the next zero byte starts a fresh frame, and a body with a bad CRC is dropped.
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from i18n import _

from .errors import FrameError

LOG = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"
HEADER = struct.Struct(">BBHHHH")  # version, flags, seq, type, fragment, fragments
CRC = struct.Struct(">I")
OVERHEAD = HEADER.size + CRC.size
MIN_FRAME = 64  # smallest body a link may negotiate
DEFAULT_FRAME = 256  # body limit before hello has negotiated one
MAX_FRAME = 65536
MAX_FRAGMENTS = 0xFFFF

FLAG_REPLY = 0x01
FLAG_ERROR = 0x02
ATTEMPT_SHIFT = 4  # bits 4-7: the request's transmission number (mod 16), echoed in its reply
ATTEMPT_MASK = 0xF0


@dataclass(frozen=True)
class Frame:
    """One frame: a whole message, or one fragment of a reply too large for the link's frame size."""

    seq: int
    type: int
    piece: bytes
    flags: int = 0
    fragment: int = 0
    fragments: int = 1

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def attempt(self) -> int:
        return (self.flags & ATTEMPT_MASK) >> ATTEMPT_SHIFT


def cobs_encode(data: bytes) -> bytes:
    """Consistent overhead byte stuffing: the result holds no zero byte."""
    out = bytearray()
    for segment in data.split(DELIMITER):
        while len(segment) >= 254:
            out.append(0xFF)
            out += segment[:254]
            segment = segment[254:]
        out.append(len(segment) + 1)
        out += segment
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise FrameError(detail=_("its byte stuffing is broken"))
        out += data[i + 1 : end]
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``, delimiters included."""
    body = (
        HEADER.pack(PROTOCOL_VERSION, frame.flags, frame.seq & 0xFFFF, frame.type, frame.fragment, frame.fragments)
        + frame.piece
    )
    body += CRC.pack(zlib.crc32(body))
    return DELIMITER + cobs_encode(body) + DELIMITER


def decode_body(body: bytes) -> Frame:
    """A frame from its unstuffed body; FrameError when anything is off."""
    if len(body) < OVERHEAD:
        raise FrameError(detail=_("it is too short"))
    (crc,) = CRC.unpack_from(body, len(body) - CRC.size)
    if zlib.crc32(body[: -CRC.size]) != crc:
        raise FrameError(detail=_("its CRC does not match"))
    version, flags, seq, type_, fragment, fragments = HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameError(detail=_("it has protocol version {version}", version=version))
    if fragments == 0 or fragment >= fragments:
        raise FrameError(detail=_("its fragment numbers are inconsistent"))
    return Frame(seq, type_, body[HEADER.size : -CRC.size], flags, fragment, fragments)


def split_frames(seq: int, type_: int, payload: bytes, max_frame: int, flags: int = 0) -> list[Frame]:
    """``payload`` cut into as few frames as fit ``max_frame`` body bytes each."""
    room = max_frame - OVERHEAD
    count = max(1, -(-len(payload) // room))
    if count > MAX_FRAGMENTS:
        raise FrameError(
            detail=_(
                "a message of {size} bytes does not fit {count} frames of {frame_size} bytes",
                size=len(payload),
                count=MAX_FRAGMENTS,
                frame_size=max_frame,
            )
        )
    return [Frame(seq, type_, payload[i * room : (i + 1) * room], flags, i, count) for i in range(count)]


class FrameDecoder:
    """Incremental receiver: feed it bytes as they come, get back the good frames.

    Bad frames (CRC, stuffing, oversize) are counted in ``errors`` and dropped; the stream
    resynchronises at the next delimiter.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.errors = 0
        self._buffer = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> Iterator[Frame]:
        self._buffer += data
        while True:
            end = self._buffer.find(0)
            if end < 0:
                # a COBS body grows by one byte in 254, plus rounding
                if len(self._buffer) > self.max_frame + self.max_frame // 254 + 2:
                    self._buffer.clear()
                    self._overflow = True
                return
            stuffed = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._overflow:  # the tail of an oversized frame
                self._overflow = False
                self.errors += 1
                continue
            if not stuffed:
                continue
            try:
                body = cobs_decode(stuffed)
                if len(body) > self.max_frame:
                    raise FrameError(detail=_("it is larger than the negotiated frame size"))
                yield decode_body(body)
            except FrameError as exc:
                self.errors += 1
                LOG.debug("dropped a frame: %s", exc.params.get("detail"))


class Reassembler:
    """Collects the fragments of one message; keeps what it has across retransmissions.

    What it holds is bounded, so that fragments of a message that never completes cannot eat memory: a
    message announcing more than ``max_fragments`` fragments is refused, one whose pieces pass ``max_bytes``
    is dropped, and with ``max_age`` a message started longer ago than that is stale and starts afresh.
    """

    def __init__(
        self,
        *,
        max_bytes: int | None = None,
        max_fragments: int = MAX_FRAGMENTS,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes, self.max_fragments, self.max_age = max_bytes, max_fragments, max_age
        self._clock = clock
        self._key: tuple[int, int, int, int] | None = None
        self._pieces: dict[int, bytes] = {}
        self._bytes = 0
        self._started = 0.0

    @property
    def partial(self) -> bool:
        """Some fragments of a message are in, not all."""
        return self._key is not None and 0 < len(self._pieces) < self._key[3]

    def reset(self) -> None:
        self._key, self._pieces, self._bytes = None, {}, 0

    def add(self, frame: Frame) -> bytes | None:
        """The whole payload once every fragment of the frame's message is in, else None."""
        key = (frame.seq, frame.type, frame.flags & ~ATTEMPT_MASK, frame.fragments)  # any transmission's pieces
        if key != self._key or self._stale():
            self.reset()  # another message, or this one too old: what was collected goes
            if frame.fragments > self.max_fragments:
                return None
            self._key, self._started = key, self._clock()
        self._bytes += len(frame.piece) - len(self._pieces.get(frame.fragment, b""))
        self._pieces[frame.fragment] = frame.piece
        if self.max_bytes is not None and self._bytes > self.max_bytes:
            self.reset()
            return None
        if len(self._pieces) < frame.fragments:
            return None
        payload = b"".join(self._pieces[i] for i in range(frame.fragments))
        self.reset()
        return payload

    def _stale(self) -> bool:
        return self.max_age is not None and self._clock() - self._started > self.max_age
