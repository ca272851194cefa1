"""Device side of the management protocol, shared by the simulator and device-side tests.

``DeviceEndpoint`` turns received bytes into replies: it reassembles requests, negotiates the frame
size at hello, executes each request once and answers a retransmission from its reply cache.  It does
no I/O of its own, so it runs equally behind a pseudo-terminal, a socket or a test.

It holds firm against a hostile host: the cache is keyed by a SHA-256 of the request, so no forged
request is answered with another's reply; a request being reassembled is bounded in fragments and
bytes and dropped when stale; HELLO takes exactly the protocol version the specification names.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from . import framing
from .errors import FrameError
from .framing import ATTEMPT_MASK, FLAG_ERROR, FLAG_REPLY, Frame, FrameDecoder, Reassembler, split_frames
from .protocol import ErrorCode, MessageType, Payload, decode_payload, encode_payload, type_name

LOG = logging.getLogger(__name__)

Handler = Callable[[int, Payload], Payload]

MAX_REQUEST = 2 * 1024 * 1024  # bytes of one request held while it is reassembled (a 1 MiB chunk fits)
MAX_REQUEST_FRAGMENTS = 4096  # fragments one request may announce
STALE_REQUEST = 30.0  # seconds after which an unfinished request is dropped: its host gave up long ago


class RequestRejected(Exception):
    """Raised by a device handler to answer with an error reply instead of a result."""

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code, self.detail = code, detail


class DeviceEndpoint:
    def __init__(
        self,
        handler: Handler,
        *,
        max_frame_limit: int = framing.MAX_FRAME,
        cache_size: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler = handler
        self.max_frame_limit = max_frame_limit
        self.max_frame = framing.DEFAULT_FRAME
        self.session: int | None = None
        self.executions: Counter[str] = Counter()
        self._cache: OrderedDict[int, tuple[bytes, int, int, bytes]] = OrderedDict()
        self._cache_size = cache_size
        self._decoder = FrameDecoder(framing.MAX_FRAME)
        self._reassembler = Reassembler(
            max_bytes=MAX_REQUEST, max_fragments=MAX_REQUEST_FRAGMENTS, max_age=STALE_REQUEST, clock=clock
        )

    @property
    def frame_errors(self) -> int:
        return self._decoder.errors

    def receive(self, data: bytes) -> bytes:
        """Feed received bytes; return the bytes to send back (possibly none)."""
        out = bytearray()
        for frame in self._decoder.feed(data):
            if frame.is_reply:
                continue
            whole = self._reassembler.add(frame)
            if whole is not None:
                out += self._answer(frame.seq, frame.type, whole, frame.flags & ATTEMPT_MASK)
        return bytes(out)

    def _answer(self, seq: int, type_: int, data: bytes, attempt: int) -> bytes:
        fingerprint = hashlib.sha256(type_.to_bytes(2, "big") + data).digest()  # a CRC can be forged to match
        cached = self._cache.get(seq)
        if cached is not None and cached[0] == fingerprint:
            LOG.debug("retransmitted %s seq=%d answered from the cache", type_name(type_), seq)
            _, reply_type, flags, reply = cached
            return self._send(seq, reply_type, flags | attempt, reply)
        flags, reply = self._execute(type_, data)
        if type_ != MessageType.HELLO:
            self._cache[seq] = (fingerprint, type_, flags, reply)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return self._send(seq, type_, flags | attempt, reply)

    def _execute(self, type_: int, data: bytes) -> tuple[int, bytes]:
        try:
            payload = decode_payload(data)
            result = self._hello(payload) if type_ == MessageType.HELLO else self.handler(type_, payload)
            self.executions[type_name(type_)] += 1
            return FLAG_REPLY, encode_payload(result)
        except RequestRejected as exc:
            error = {"code": str(exc.code), "detail": exc.detail}
        except FrameError as exc:
            error = {"code": str(ErrorCode.BAD_REQUEST), "detail": str(exc)}
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            error = {"code": str(ErrorCode.BAD_REQUEST), "detail": repr(exc)}
        except Exception as exc:  # a handler bug must not take the link down
            LOG.exception("%s failed", type_name(type_))
            error = {"code": str(ErrorCode.INTERNAL), "detail": type(exc).__name__}
        return FLAG_REPLY | FLAG_ERROR, encode_payload(error)

    def _hello(self, payload: Payload) -> Payload:
        protocol = payload.get("protocol", framing.PROTOCOL_VERSION)
        if type(protocol) is not int or protocol != framing.PROTOCOL_VERSION:
            raise RequestRejected(ErrorCode.BAD_REQUEST, f"protocol {protocol!r} is not supported")  # 1.0, "1", true
        session = int(payload["session"])  # every field is parsed before any state changes
        wanted = int(payload.get("max_frame", framing.DEFAULT_FRAME))
        identity = self.handler(MessageType.HELLO, payload)
        if session != self.session:
            self.session = session
            self._cache.clear()
        self.max_frame = max(framing.MIN_FRAME, min(wanted, self.max_frame_limit))
        return {**identity, "protocol": framing.PROTOCOL_VERSION, "max_frame": self.max_frame}

    def _send(self, seq: int, type_: int, flags: int, reply: bytes) -> bytes:
        try:
            frames = split_frames(seq, type_, reply, self.max_frame, flags)
        except FrameError:  # more than 65535 frames at this frame size: say so instead
            error = {"code": str(ErrorCode.BAD_REQUEST), "detail": f"reply of {len(reply)} bytes is too large"}
            frames = split_frames(seq, type_, encode_payload(error), self.max_frame, flags | FLAG_ERROR)
        return b"".join(framing.encode_frame(f) for f in frames)


def frame_for(seq: int, type_: int, payload: Payload) -> Frame:
    """A one-frame request, for tests and tools that speak the protocol by hand."""
    return Frame(seq, type_, encode_payload(payload))
