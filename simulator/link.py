"""A terminal's serial link on a pseudo-terminal, with faults on demand.

The station opens the pty's slave side with pyserial exactly as it opens /dev/ttyACM0.  Faults apply
to the bytes in both directions: a bit-error rate, a byte-drop probability, added latency, and an
unplug after a given number of bytes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import asdict, dataclass

LOG = logging.getLogger(__name__)
READ_SIZE = 65536
WRITE_STALL = 2.0  # seconds a reply may wait for a host that does not read before it is lost


@dataclass
class Faults:
    ber: float = 0.0  # probability of each bit being flipped
    drop: float = 0.0  # probability of each byte being lost
    latency_ms: float = 0.0  # added before every answer
    unplug_after_bytes: int | None = None  # unplug once this many more bytes have crossed the link

    def update(self, **changes: float | int | None) -> None:
        for key, value in changes.items():
            if key not in asdict(self):
                raise ValueError(f"unknown fault {key}")
            setattr(self, key, value)

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _gaps(rng: random.Random, p: float) -> int:
    """Distance to the next event of probability ``p`` per position (geometric)."""
    return math.floor(math.log(1.0 - rng.random()) / math.log1p(-p)) if p < 1 else 0


def damage(data: bytes, faults: Faults, rng: random.Random) -> bytes:
    """``data`` as a noisy link delivers it."""
    if not data or (faults.ber <= 0 and faults.drop <= 0):
        return data
    out = bytearray(data)
    if faults.ber > 0:
        bit = _gaps(rng, faults.ber)
        while bit < len(out) * 8:
            out[bit // 8] ^= 1 << (bit % 8)
            bit += 1 + _gaps(rng, faults.ber)
    if faults.drop > 0:
        drops = []
        pos = _gaps(rng, faults.drop)
        while pos < len(out):
            drops.append(pos)
            pos += 1 + _gaps(rng, faults.drop)
        for pos in reversed(drops):
            del out[pos]
    return bytes(out)


class PtyLink:
    """One pseudo-terminal pair; ``receive`` turns incoming bytes into the bytes to answer."""

    def __init__(self, receive: Callable[[bytes], bytes], faults: Faults, on_unplug: Callable[[], None],
                 seed: int | None = None) -> None:
        self._receive = receive
        self.faults = faults
        self._on_unplug = on_unplug
        self._rng = random.Random(seed)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"link {self.path}", daemon=True)
        self._bytes = 0
        self._thread.start()

    def close(self) -> None:
        """Unplug: the pty goes away and the host's open port fails at once."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _count(self, n: int) -> bool:
        """Count crossing bytes; True when the unplug fault fires."""
        self._bytes += n
        limit = self.faults.unplug_after_bytes
        return limit is not None and self._bytes >= limit

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                incoming = os.read(self._master, READ_SIZE)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                if exc.errno == errno.EIO:  # no host has the port open right now
                    time.sleep(0.05)
                    continue
                return
            if self._count(len(incoming)):
                return self._unplug()
            answer = self._receive(damage(incoming, self.faults, self._rng))
            if answer:
                if self.faults.latency_ms:
                    time.sleep(self.faults.latency_ms / 1000)
                if self._count(len(answer)):
                    return self._unplug()
                self._write(damage(answer, self.faults, self._rng))

    def _unplug(self) -> None:
        self.faults.unplug_after_bytes = None
        threading.Thread(target=self._on_unplug, name="unplug", daemon=True).start()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_STALL
        while view and not self._stop.is_set() and time.monotonic() < deadline:
            try:
                written = os.write(self._master, view)
                view = view[written:]
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)
            except OSError:
                return
        if view:
            LOG.debug("%s: host is not reading; %d bytes lost", self.path, len(view))
