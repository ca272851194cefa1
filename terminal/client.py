"""Host side of the management protocol: requests with retransmission, chunked objects.

A request is retransmitted with the same sequence number until its reply comes; each transmission
carries its number and the reply echoes it, so the retransmission timer learns from every round trip
(Jacobson's estimator, without Karn's ambiguity); the unit answers a
repeated request from its reply cache, so nothing executes twice.  Replies larger than the link's
frame size come in fragments, and fragments are kept across retransmissions.  When a noisy link keeps
losing frames the client halves the frame size (down to 64 bytes) and renegotiates, which keeps a very
noisy link usable.

Nothing a unit sends can crash or hang the station: every reply is checked against its documented shape
(``terminal.schema``) and a malformed one raises ``MalformedReply``; every request has one overall
deadline that no traffic extends; and a unit whose HELLO names another serial than the one expected is
refused (``WrongUnit``) before any other request.  An object read is bounded as a whole: a ``total`` above
the station's limit for that object is refused up front (``ObjectTooLarge``), and after a grace period the
transfer must keep a minimum average rate (``TransferTooSlow``), so a unit trickling valid chunks cannot hold it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import threading
import time
from typing import Any, BinaryIO

from i18n import _

from . import framing
from .errors import (
    MalformedReply,
    ObjectTooLarge,
    RemoteError,
    RequestTimeout,
    TransferError,
    TransferTooSlow,
    WrongUnit,
)
from .events import ProgressCallback
from .framing import ATTEMPT_SHIFT, Frame, FrameDecoder, Reassembler, split_frames
from .protocol import OBJECT_LOGS, MessageType, Payload, decode_payload, encode_payload, type_name
from .schema import Invalid, check_reply
from .transports import Transport, open_transport

LOG = logging.getLogger(__name__)
WIRE = LOG.getChild("wire")
WIRE.propagate = False  # muted unless a handler is attached on purpose

HOST_NAME = "naiad"
FRAGMENTS_PER_CHUNK = 16
INITIAL_RTO = 0.25  # seconds before the first retransmission, until round trips are measured
MIN_RTO = 0.03
MAX_RTO = 1.0
BACKOFF = 1.25  # a miss on a noisy link is loss, not congestion: grow the wait gently
CHUNK_ENVELOPE = 96  # CBOR keys, offsets and the SHA-256 around a chunk's data
MIB = 1 << 20
MAX_OBJECT = 256 * MIB  # the most the station reads of an object OBJECT_LIMITS does not name
OBJECT_LIMITS = {OBJECT_LOGS: 16 * MIB}
MAX_REPLY = 2 * MIB  # bytes of one reply held while it is reassembled (the largest chunk, 1 MiB, fits)
TRANSFER_FLOOR = 60.0  # seconds any object read may take...
MIN_TRANSFER_RATE = 32 * 1024  # ...plus a second for every this many bytes it has received


class ManagementClient:
    """One unit's management channel.  Use as a context manager: it opens and says hello.

    With ``expected_serial`` the client refuses (``WrongUnit``) a unit whose HELLO names another serial.
    """

    def __init__(
        self,
        transport: Transport | str,
        *,
        timeout: float = 10.0,
        max_frame: int = 4096,
        expected_serial: str | None = None,
    ) -> None:
        self.transport = open_transport(transport) if isinstance(transport, str) else transport
        self.timeout = timeout  # a request's whole budget, retransmissions and reassembly included
        self.expected_serial = expected_serial
        self._rto = INITIAL_RTO
        self._srtt: float | None = None
        self._rttvar = 0.0
        self.wanted_frame = max_frame
        self.max_frame = framing.DEFAULT_FRAME
        self.session = secrets.randbits(32)
        self.retransmissions = 0
        self.identity: Payload = {}
        self._seq = secrets.randbits(16)
        self._decoder = FrameDecoder()
        self._lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> Payload:
        self.transport.open()
        return self.hello()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> ManagementClient:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def frame_errors(self) -> int:
        """Frames from the unit dropped as damaged (CRC, stuffing, oversize) on this client: a clean link has none."""
        return self._decoder.errors

    @property
    def unit_name(self) -> str:
        """The unit's serial for error messages: as it said at HELLO, else as expected, else "?"."""
        return str(self.identity.get("serial") or self.expected_serial or "?")

    # -- requests ----------------------------------------------------------------------------------
    def hello(self, max_frame: int | None = None) -> Payload:
        """Negotiate the frame size; the same session keeps the unit's reply cache."""
        with self._lock:
            return self._hello(max_frame or self.wanted_frame, time.monotonic() + self.timeout)

    def _hello(self, wanted: int, give_up: float) -> Payload:
        request = {
            "protocol": framing.PROTOCOL_VERSION,
            "session": self.session,
            "max_frame": wanted,
            "host": HOST_NAME,
        }
        reply = self._exchange(MessageType.HELLO, request, give_up, adapt=False)
        found = reply["serial"]
        if self.expected_serial is not None and found != self.expected_serial:
            raise WrongUnit(path=self.transport.path, expected=self.expected_serial, found=found)
        self.max_frame = max(framing.MIN_FRAME, min(reply["max_frame"], wanted))
        self.identity = reply
        return reply

    def request(self, type_: int, payload: Payload | None = None, *, timeout: float | None = None) -> Payload:
        """Send one request and return its checked reply; RemoteError when the unit refuses it.

        The whole request, retransmissions, a frame-size renegotiation and reassembly included, ends
        within ``timeout`` (default: the client's; TransportTimeout), however the unit behaves.  A request the
        unit takes long to execute (a face-pay test) gives its own."""
        with self._lock:
            return self._exchange(type_, payload or {}, time.monotonic() + (timeout or self.timeout))

    def _exchange(self, type_: int, payload: Payload, give_up: float, *, adapt: bool = True) -> Payload:
        """One request until ``give_up`` (monotonic), under the lock: hostile traffic cannot move that deadline."""
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        data = encode_payload(payload)
        reassembler = Reassembler(max_bytes=MAX_REPLY)
        rto, sent_at = self._rto, {}
        attempt = 0
        while True:
            errors = self._decoder.errors
            tag = attempt % 16
            sent_at[tag] = time.monotonic()
            for frame in split_frames(seq, type_, data, self.max_frame, tag << ATTEMPT_SHIFT):
                self.transport.write(framing.encode_frame(frame))
            WIRE.debug("-> %s seq=%d attempt=%d %d bytes", type_name(type_), seq, attempt, len(data))
            reply = self._await_reply(seq, type_, reassembler, rto, give_up)
            if reply is not None:
                # the reply names the transmission it answers, so every round trip is a clean sample
                self._learn_rtt(time.monotonic() - sent_at.get(reply.attempt, sent_at[tag]))
                return self._unpack(type_, reply)
            if time.monotonic() >= give_up:
                raise RequestTimeout(path=self.transport.path, serial=self.unit_name, request=type_name(type_))
            self.retransmissions += 1
            rto = min(rto * BACKOFF, MAX_RTO)
            noisy = self._decoder.errors > errors or reassembler.partial
            if adapt and noisy and attempt >= 1 and self.max_frame > framing.MIN_FRAME:
                self._shrink_frames(give_up)
            attempt += 1

    def _learn_rtt(self, sample: float) -> None:
        """Jacobson's estimator (smoothed round trip plus four deviations), never under two round trips."""
        if self._srtt is None:
            self._srtt, self._rttvar = sample, sample / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - sample)
            self._srtt = 0.875 * self._srtt + 0.125 * sample
        self._rto = min(MAX_RTO, max(MIN_RTO, 2 * self._srtt, self._srtt + 4 * self._rttvar))

    def _shrink_frames(self, give_up: float) -> None:
        smaller = max(framing.MIN_FRAME, self.max_frame // 2)
        LOG.info("link is losing frames; frame size %d -> %d", self.max_frame, smaller)
        self._hello(smaller, give_up)  # within the request's own budget

    def _await_reply(self, seq: int, type_: int, reassembler: Reassembler, wait: float, give_up: float) -> Frame | None:
        """The reply, or None after ``wait`` without a fragment of it; never later than ``give_up``."""
        deadline = min(time.monotonic() + wait, give_up)
        while (left := deadline - time.monotonic()) > 0:
            chunk = self.transport.read(65536, left)
            for frame in self._decoder.feed(chunk):
                if not frame.is_reply or frame.seq != seq or frame.type != type_:
                    continue  # a late answer to an earlier attempt
                deadline = min(time.monotonic() + wait, give_up)  # the reply is flowing, within the budget
                whole = reassembler.add(frame)
                if whole is not None:
                    return Frame(seq, type_, whole, frame.flags)
        return None

    def _unpack(self, type_: int, frame: Frame) -> Payload:
        """The reply's payload in its documented shape; RemoteError for an error reply."""
        payload = decode_payload(frame.piece)
        try:
            payload = check_reply(type_, payload, error=frame.is_error)
        except Invalid as exc:
            raise MalformedReply(
                path=self.transport.path,
                serial=self.unit_name,
                request=type_name(type_),
                field=exc.field,
                expected=exc.expected,
            ) from None
        if frame.is_error:
            raise RemoteError(request=type_name(type_), code=payload["code"], detail=payload.get("detail", ""))
        return payload

    # -- system group ------------------------------------------------------------------------------
    def info(self) -> Payload:
        return self.request(MessageType.INFO)

    def reboot(self, mode: str) -> None:
        self.request(MessageType.REBOOT, {"mode": mode})

    def time(self, set_utc: float | None = None) -> float:
        """The unit's clock (UTC seconds); sets it first when ``set_utc`` is given."""
        reply = self.request(MessageType.TIME, {} if set_utc is None else {"utc": set_utc})
        return float(reply["utc"])

    def boot_history(self) -> list[dict[str, Any]]:
        return list(self.request(MessageType.BOOT_HISTORY)["boots"])

    def logs(self, progress: ProgressCallback | None = None) -> str:
        return self.read_object(OBJECT_LOGS, progress).decode("utf-8", "replace")

    # -- chunked objects ---------------------------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        """Object bytes a request or reply carries: many fragments on a good link, few on a bad one."""
        fragments = FRAGMENTS_PER_CHUNK if self.max_frame >= 1024 else 4
        return max(32, (self.max_frame - framing.OVERHEAD) * fragments - CHUNK_ENVELOPE)

    def read_object(self, name: str, progress: ProgressCallback | None = None, *, limit: int | None = None) -> bytes:
        buffer = io.BytesIO()
        self.read_object_into(name, buffer, progress, limit=limit)
        return buffer.getvalue()

    def read_object_into(
        self, name: str, out: BinaryIO, progress: ProgressCallback | None = None, *, limit: int | None = None
    ) -> int:
        """Stream object ``name`` into ``out`` chunk by chunk; check its SHA-256; return its size.

        ObjectTooLarge when the unit announces more than ``limit``, ``OBJECT_LIMITS`` (else ``MAX_OBJECT``)
        allow, before a byte is written; a chunk longer than asked for is a TransferError;
        TransferTooSlow when the transfer has taken longer than ``TRANSFER_FLOOR`` plus a second per
        ``MIN_TRANSFER_RATE`` bytes received (checked between chunks, so at most one request's ``timeout``
        late): a slow link moves any object, a unit sending a byte at a time is dropped after a minute."""
        digest = hashlib.sha256()
        offset, total, expected = 0, None, None
        started = time.monotonic()
        while total is None or offset < total:
            if (now := time.monotonic()) - started >= TRANSFER_FLOOR + offset / MIN_TRANSFER_RATE:
                seconds = round(now - started)
                raise TransferTooSlow(serial=self.unit_name, name=name, received=offset, total=total, seconds=seconds)
            length = self.chunk_size
            reply = self.request(MessageType.OBJECT_READ, {"name": name, "offset": offset, "length": length})
            data = reply["data"]
            if total is None:
                total, expected = reply["total"], reply["sha256"]
                allowed = min(OBJECT_LIMITS.get(name, MAX_OBJECT), MAX_OBJECT if limit is None else limit)
                if total > allowed:
                    raise ObjectTooLarge(serial=self.unit_name, name=name, size=total, limit=allowed)
            elif (reply["total"], reply["sha256"]) != (total, expected):
                raise TransferError(name=name, detail=_("the object changed during the transfer"))
            if (
                reply["offset"] != offset
                or (not data and offset < total)
                or offset + len(data) > total
                or len(data) > length
            ):
                raise TransferError(name=name, detail=_("the unit sent a bad chunk at offset {offset}", offset=offset))
            digest.update(data)
            out.write(data)
            offset += len(data)
            if progress:
                progress(offset, total)
        if offset != total or digest.digest() != expected:
            raise TransferError(name=name, detail=_("its SHA-256 does not match"))
        return offset

    def write_object(self, name: str, data: bytes, progress: ProgressCallback | None = None) -> None:
        """Send ``data`` as object ``name`` in chunks; the unit keeps it only if the SHA-256 matches."""
        total, sha = len(data), hashlib.sha256(data).digest()
        offset = 0
        while True:
            piece = data[offset : offset + self.chunk_size]
            reply = self.request(
                MessageType.OBJECT_WRITE, {"name": name, "offset": offset, "total": total, "sha256": sha, "data": piece}
            )
            offset += len(piece)
            if progress:
                progress(offset, total)
            if offset >= total:
                if not reply.get("complete"):
                    raise TransferError(name=name, detail=_("the unit did not accept the object"))
                return
            if reply["received"] != offset:
                raise TransferError(name=name, detail=_("the unit lost track at offset {offset}", offset=offset))
