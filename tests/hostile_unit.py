"""A deliberately hostile unit: genuine answers a test rewrites, in memory or on a real pseudo-terminal.

``HostileEnd`` is the unit's side of the wire (the real framing and reassembly of ``DeviceEndpoint``) that
answers each whole request through ``answer(request, payload)``, however it likes.  ``PtyUnit`` puts one
on a pty and lists it on a simulated USB bus (``simulator/bus.py``), so ``naiad --sim DIR`` discovers it
by its serial and talks to it over pyserial exactly as to a real unit.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import cbor2

from simulator.bus import VirtualBus
from terminal import framing
from terminal.device import DeviceEndpoint
from terminal.framing import FLAG_REPLY, Frame, encode_frame, split_frames
from terminal.models import RUN, model_by_id
from terminal.protocol import OBJECT_LOGS, MessageType, Payload, decode_payload

if TYPE_CHECKING:
    from simulator.unit import VirtualTerminal

SERIAL = "DF2HOSTILE01"
LOG_TEXT = ("boot #1 into run mode\n" * 40).encode()
SLOT = {"version": "1.2.0", "successful": True, "bootable": True}
DELETE = object()  # a field value meaning "leave the field out"

Answer = Callable[[Frame, Payload], bytes]


def genuine(request: Frame, payload: Payload) -> Payload:
    """What a well-behaved unit answers to ``payload`` (docs/protocol.md section 9)."""
    if request.type == MessageType.HELLO:
        wanted = payload.get("max_frame", framing.DEFAULT_FRAME)
        return {"protocol": 1, "max_frame": wanted, "serial": SERIAL, "model": "df2", "mode": "run"}
    if request.type == MessageType.INFO:
        return {
            "model": "df2",
            "serial": SERIAL,
            "hardware_revision": "B",
            "slots": {"a": SLOT, "b": {**SLOT, "version": None}},
            "active_slot": "a",
            "security_version": 0,
            "boot_count": 3,
            "secure_element": {"state": "empty"},
            "camera_module": "SL3D-640",
        }
    if request.type == MessageType.TIME:
        return {"utc": float(payload.get("utc", 1_700_000_000.0))}
    if request.type == MessageType.BOOT_HISTORY:
        boot = {"at": 1_700_000_000.0, "mode": "run", "boot": 1, "slot": "a", "version": "1.2.0"}
        return {"boots": [{**boot, "fell_back": False, "failed_attempts": 0}]}
    if request.type == MessageType.OBJECT_READ:
        offset, length = payload["offset"], payload["length"]
        data = LOG_TEXT[offset : offset + length]
        digest = hashlib.sha256(LOG_TEXT).digest()
        return {"name": OBJECT_LOGS, "offset": offset, "total": len(LOG_TEXT), "sha256": digest, "data": data}
    if request.type == MessageType.OBJECT_WRITE:
        received = payload["offset"] + len(payload["data"])
        return {"received": received, "complete": received == payload["total"]}
    return {}


def reply_wire(request: Frame, payload: Payload | bytes, *, flags: int = FLAG_REPLY, frame: int = 4096) -> bytes:
    """``payload`` (a map, or raw bytes) as the reply frames to ``request``, with its attempt bits."""
    data = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    flags |= request.flags & framing.ATTEMPT_MASK
    return b"".join(encode_frame(f) for f in split_frames(request.seq, request.type, data, frame, flags))


def forging(type_: int, **fields: Any) -> Answer:
    """A unit that answers genuinely, except that replies to ``type_`` carry ``fields`` (DELETE: left out)."""

    def answer(request: Frame, payload: Payload) -> bytes:
        reply = genuine(request, payload)
        if request.type == type_:
            reply.update(fields)
            reply = {key: value for key, value in reply.items() if value is not DELETE}
        return reply_wire(request, reply)

    return answer


class HostileEnd(DeviceEndpoint):
    """A unit's far end that answers each whole request through ``answer(request, payload)``, however it likes."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(lambda type_, payload: {})
        self.answer = answer
        self.requests: list[Frame] = []

    def receive(self, data: bytes) -> bytes:
        out = bytearray()
        for frame in self._decoder.feed(data):
            whole = self._reassembler.add(frame)
            if whole is not None:
                request = Frame(frame.seq, frame.type, whole, frame.flags)
                self.requests.append(request)
                out += self.answer(request, decode_payload(whole))
        return bytes(out)


TICK = 0.01  # seconds between two frames of an endless stream
MAX_STREAM = 3000  # frames an endless stream sends before the unit itself falls silent (30 s or more)


class PtyUnit:
    """A ``HostileEnd`` on a pseudo-terminal, listed as run-mode unit ``listed_serial`` on the bus in ``state_dir``.

    While ``stream`` is set (an answer may set it; the next request clears it) the unit sends it every
    ``TICK``, at most ``MAX_STREAM`` times in all, counted in ``streamed``."""

    def __init__(self, state_dir: Path, answer: Answer, listed_serial: str = SERIAL) -> None:
        self.end = HostileEnd(answer)
        self.stream: bytes | None = None
        self.streamed = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        # what simulator/bus.py reads of a unit, so the simulator's own bus lists this one
        self.serial, self.mode, self.index, self.present = listed_serial, RUN, 0, True
        self.model, self.link, self.fastboot = model_by_id("df2"), self, None
        state_dir.mkdir(parents=True, exist_ok=True)
        VirtualBus(state_dir).publish([cast("VirtualTerminal", self)])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hostile {self.path}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], TICK)
            if not ready:
                if self.stream is not None and self.streamed < MAX_STREAM:
                    self.streamed += 1
                    self._send(self.stream)
                continue
            try:
                incoming = os.read(self._master, 65536)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EIO):  # EIO: no host has the port open now
                    return
                time.sleep(TICK)
                continue
            self.stream = None
            self._send(self.end.receive(incoming))

    def _send(self, data: bytes) -> None:
        """Write ``data``; whatever a host that does not read leaves unwritten for a second is lost."""
        view = memoryview(data)
        while view and select.select([], [self._master], [], 1.0)[1]:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                continue
            except OSError:
                return
