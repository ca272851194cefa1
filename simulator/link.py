"""A terminal's links and their faults: the serial link on a pseudo-terminal, and the fault set every link obeys.

The station opens the pty's slave side with pyserial exactly as it opens /dev/ttyACM0.  Faults apply
to the bytes in both directions: a bit-error rate, a byte-drop probability, added latency, a bandwidth
cap (a token bucket shared by all of the unit's links: pty, fastboot TCP, USB bulk socket) and an unplug
after a given number of bytes; ``corrupt_writes`` damages the next fastboot partition writes; ``counterfeit``
and ``broken_chain`` change the attestation chain the secure element serves; ``camera_drift``,
``dead_projector`` and ``rgb_defocus`` change what the camera captures (docs/simulator-camera.md).
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
from dataclasses import asdict, dataclass, fields
from typing import Any

from i18n import N_
from terminal.errors import NaiadError

LOG = logging.getLogger(__name__)
READ_SIZE = 65536
WRITE_STALL = 2.0  # seconds a reply may wait for a host that does not read before it is lost
MB = 1_000_000  # the bandwidth cap's megabyte, as link speeds are quoted
DEFAULT_BURST = 64 * 1024  # bytes a capped link may pass at once after idling (small: the cap stays honest)


class InvalidFault(NaiadError):
    """``detail`` is a msgid: the control channel carries it to the CLI, which reads it in its own language."""

    message = N_("Invalid simulator fault {name}={value}: {detail}")
    remedy = N_("Run 'naiad sim faults --help' for the faults and their ranges.")
    msgid_params = ("detail",)


class UnknownFault(InvalidFault):
    message = N_("The simulator has no fault {name}")


class TokenBucket:
    """A rate limit in bytes per second: ``consume(n)`` sleeps as long as ``n`` bytes take at that rate.

    Tokens may go negative (a debt the next caller sleeps off), and the refill is computed from the
    clock, so sleep overshoot never accumulates: over a long transfer the rate is the cap."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(DEFAULT_BURST if burst is None else burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def consume(self, n: int) -> float:
        """Account for ``n`` bytes; sleeps until they fit the rate and returns the seconds slept."""
        if n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - n
            self._stamp = now
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def _check(name: str, value: Any, ok: bool, detail: str) -> None:
    if not ok:
        raise InvalidFault(name=name, value=repr(value), detail=detail)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_VALIDATORS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "ber": (lambda v: _is_number(v) and 0 <= v <= 1, N_("it must be a probability from 0 to 1")),
    "drop": (lambda v: _is_number(v) and 0 <= v <= 1, N_("it must be a probability from 0 to 1")),
    "latency_ms": (lambda v: _is_number(v) and v >= 0, N_("it must be milliseconds, 0 or more")),
    "unplug_after_bytes": (lambda v: v is None or _is_count(v), N_("it must be a byte count, 0 or more (null: never)")),
    "bandwidth_mbps": (
        lambda v: v is None or (_is_number(v) and v >= 0),
        N_("it must be megabytes per second, more than 0 (0 or null: no cap)"),
    ),
    "corrupt_writes": (_is_count, N_("it must be a count of partition writes, 0 or more")),
    "counterfeit": (lambda v: isinstance(v, bool), N_("it must be true or false")),
    "broken_chain": (lambda v: isinstance(v, bool), N_("it must be true or false")),
    "camera_drift": (lambda v: isinstance(v, bool), N_("it must be true or false")),
    "dead_projector": (lambda v: isinstance(v, bool), N_("it must be true or false")),
    "rgb_defocus": (lambda v: isinstance(v, bool), N_("it must be true or false")),
}


@dataclass
class Faults:
    """One unit's faults; the control channel changes them while the unit runs (``update``)."""

    ber: float = 0.0  # probability of each bit being flipped (serial link)
    drop: float = 0.0  # probability of each byte being lost (serial link)
    latency_ms: float = 0.0  # added before every answer (serial link)
    unplug_after_bytes: int | None = None  # unplug once this many more bytes have crossed any link
    bandwidth_mbps: float | None = None  # cap of every link, in 10^6 bytes per second
    corrupt_writes: int = 0  # the next N fastboot partition writes are damaged on their way to flash
    counterfeit: bool = False  # the secure element's attestation chain comes from a CA no station trusts
    broken_chain: bool = False  # its attestation certificate's signature does not verify
    camera_drift: bool = False  # the camera was dropped: its module moved (simulator.camera.truth.DRIFT)
    dead_projector: bool = False  # no dots, no depth; the projector still answers "on"
    rgb_defocus: bool = False  # the RGB camera is out of focus (Gaussian blur, sigma 3 px)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._crossed = 0
        self._bucket: TokenBucket | None = None
        self.rng = random.Random()
        self.update(**asdict(self))  # validates the constructor's values too

    def update(self, **changes: Any) -> None:
        """Change some faults; all are checked first, so a bad value changes nothing (InvalidFault)."""
        names = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise UnknownFault(name=key, value=repr(value))
            valid, detail = _VALIDATORS[key]
            _check(key, value, valid(value), detail)
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)
            if "unplug_after_bytes" in changes:
                self._crossed = 0  # "after N more bytes" counts from now
            if "bandwidth_mbps" in changes:
                self._bucket = TokenBucket(self.bandwidth_mbps * MB) if self.bandwidth_mbps else None

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return asdict(self)

    def cross(self, n: int) -> bool:
        """``n`` bytes crossed one of the unit's links; True when the unplug fault fires (it is then cleared)."""
        with self._lock:
            if self.unplug_after_bytes is None or n <= 0:
                return False
            self._crossed += n
            if self._crossed < self.unplug_after_bytes:
                return False
            self.unplug_after_bytes, self._crossed = None, 0
        LOG.warning("fault: unplug after the configured byte count")
        return True

    def remaining_before_unplug(self) -> int | None:
        """Bytes that may still cross before the unplug fault fires (None: no such fault)."""
        with self._lock:
            if self.unplug_after_bytes is None:
                return None
            return max(0, self.unplug_after_bytes - self._crossed)

    def throttle(self, n: int) -> None:
        """Wait as long as ``n`` bytes take under the bandwidth cap (no wait without one)."""
        bucket = self._bucket
        if bucket is not None:
            bucket.consume(n)

    def take_corrupt_write(self) -> bool:
        """True when the partition write being made must be damaged (and counts it)."""
        with self._lock:
            if self.corrupt_writes <= 0:
                return False
            self.corrupt_writes -= 1
            return True


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

    def __init__(
        self, receive: Callable[[bytes], bytes], faults: Faults, on_unplug: Callable[[], None], seed: int | None = None
    ) -> None:
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
        """Count crossing bytes against the cap and the unplug fault; True when the unplug fires."""
        if self.faults.cross(n):
            return True
        self.faults.throttle(n)
        return False

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
