"""The simulated bootloader: a transport-agnostic fastboot engine and its TCP and USB-bulk servers.

The engine consumes packets (one TCP frame, or one USB OUT transfer) and returns response packets.
Downloads stream into an unnamed temporary file in the unit directory, never into memory, and are
accepted across any number of packets.  The servers frame packets: fastboot TCP (``FB01`` handshake,
8-byte big-endian lengths) and the simulator's bulk socket (4-byte big-endian length per transfer).

Both servers obey the unit's link faults (``simulator.link.Faults``): every byte in either direction
counts against the bandwidth cap and the unplug-after-bytes fault; when that fires the connection
drops at once and the unit is unplugged.  ``corrupt_writes`` damages flashed bytes after the write
(the answer is still OKAY, as from a flaky eMMC).  Stopping the service (unplug, power cut)
interrupts a partition write between pieces, so nothing is written after the cut.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.errors import NaiadError
from terminal.fastboot.protocol import MAX_COMMAND_LENGTH, Status, encode_response, parse_hex_size, parse_number

from .link import Faults
from .slots import SlotStore, UnknownPartition

LOG = logging.getLogger(__name__)

PROTOCOL_VERSION = "0.4"
BOOTLOADER_VERSION = "naiad-sim-1.0"
_RECV_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
_SPLICE = hasattr(os, "splice")  # Linux
_REBOOT_TARGETS = {
    "reboot": "system",
    "continue": "system",
    "reboot-bootloader": "bootloader",
    "reboot-fastboot": "bootloader",
    "reboot-recovery": "recovery",
}
OEM_HELP = "oem sha256 PARTITION [OFFSET SIZE]: SHA-256 of a partition range (decimal or 0x hex)"


def _okay(text: str = "") -> bytes:
    return encode_response(Status.OKAY, text)


def _fail(text: str) -> bytes:
    return encode_response(Status.FAIL, text)


def _info(text: str) -> bytes:
    return encode_response(Status.INFO, text)


def _english(exc: NaiadError) -> str:
    """A device speaks one language: the error's English text for FAIL."""
    try:
        return type(exc).message.format(**exc.params)
    except (KeyError, IndexError):
        return type(exc).__name__


def _number(text: str) -> int:
    """An OEM command's offset or size: a bootloader number that must not be negative."""
    value = parse_number(text)
    if value < 0:
        raise ValueError(text)
    return value


class FastbootEngine:
    """The device side of fastboot for one unit: commands in, responses out, writes into the SlotStore."""

    def __init__(
        self,
        store: SlotStore,
        *,
        serial: str,
        hw_revision: str | None = None,
        max_download_size: int | None = None,
        version_bootloader: str = BOOTLOADER_VERSION,
        faults: Faults | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self._cancelled = cancelled or (lambda: False)
        self.serial = serial
        self.hw_revision = hw_revision
        self.max_download_size = max_download_size or store.model.max_download_size
        self.version_bootloader = version_bootloader
        self.reboot_target: str | None = None
        self._download: Any = None  # unbuffered temporary file
        self._expected = 0
        self._flashing: str | None = None
        """The partition of the unbroken run of download/flash commands going on: its next flash is the next piece
        of the same image (a re-sparsed image arrives so); any other command ends the run."""

    @property
    def expecting(self) -> int:
        """Bytes of download payload still to come (0 when a command is expected)."""
        return self._expected

    def feed(self, packet: bytes | bytearray | memoryview) -> list[bytes]:
        """One packet from the host; the response packets to send back, in order."""
        if self._expected:
            return self._data(packet)
        if not packet:
            return []  # a zero-length packet ends a transfer; it is not a command
        if len(packet) > MAX_COMMAND_LENGTH:
            return [_fail(f"command longer than {MAX_COMMAND_LENGTH} bytes")]
        try:
            command = bytes(packet).decode("ascii")
        except UnicodeDecodeError:
            return [_fail("command is not ASCII")]
        LOG.debug("%s: %s", self.serial, command[:80])
        try:
            return self._command(command)
        except NaiadError as exc:
            return [_fail(_english(exc))]
        except OSError as exc:
            LOG.exception("%s: %s failed", self.serial, command[:80])
            return [_fail(f"storage error: {exc.strerror or exc}")]

    def close(self) -> None:
        self._discard()

    # -- download --------------------------------------------------------------------------

    def download_fd(self, length: int) -> int | None:
        """The download file's descriptor when ``length`` more payload bytes are welcome (for splice)."""
        if self._download is None or not 0 < length <= self._expected:
            return None
        return int(self._download.fileno())

    def downloaded(self, n: int) -> list[bytes]:
        """``n`` payload bytes were written straight into ``download_fd()`` at its position."""
        self._expected -= n
        return [] if self._expected else [_okay()]

    def _data(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        if len(chunk) > self._expected:
            self._discard()
            return [_fail("more data than the download announced")]
        self._download.write(chunk)
        self._expected -= len(chunk)
        return [] if self._expected else [_okay()]

    def _start_download(self, argument: str) -> list[bytes]:
        try:
            size = parse_hex_size(argument)
        except ValueError:
            return [_fail(f"bad download size {argument[:16]!r}")]
        if size == 0:
            return [_fail("empty download")]
        if size > self.max_download_size:
            return [_fail(f"data too large: {size} > max-download-size {self.max_download_size}")]
        self._discard()
        self._download = tempfile.TemporaryFile(  # noqa: SIM115 - lives until flashed or replaced
            dir=self.store.unit_dir, prefix=".download-", buffering=0
        )
        self._expected = size
        return [encode_response(Status.DATA, f"{size:08x}")]

    def _discard(self) -> None:
        download, self._download = self._download, None
        self._expected = 0
        if download is not None:
            download.close()

    # -- commands ------------------------------------------------------------------------------

    def _command(self, command: str) -> list[bytes]:
        if self._cancelled():
            return [_fail("the bootloader is going down")]
        verb, sep, argument = command.partition(":")
        if verb not in ("download", "flash"):
            self._flashing = None
        if command in _REBOOT_TARGETS:
            self.reboot_target = _REBOOT_TARGETS[command]
            return [_okay()]
        if verb == "getvar" and sep:
            return self._getvar(argument)
        if verb == "download" and sep:
            return self._start_download(argument)
        if verb == "flash" and sep:
            return self._flash(argument)
        if verb == "erase" and sep:
            ref = self.store.erase(argument)
            return [_okay(f"erased {ref.full_name}")]
        if verb == "set_active" and sep:
            self.store.set_active(argument)
            return [_okay()]
        if command.startswith("oem "):
            return self._oem(command[4:].split())
        return [_fail(f"unknown command {command[:40]}")]

    def _flash(self, partition: str) -> list[bytes]:
        if self._download is None or self._expected:
            return [_fail("no image downloaded")]
        new_image = self._flashing != partition
        self._flashing = None  # a refused or cut-off piece ends the image: the next flash starts a new one
        try:
            written = self.store.flash_image(partition, self._download, self._cancelled, new_image=new_image)
        finally:
            self._discard()
        ref = written.ref
        self._flashing = partition
        if self.faults is not None and written.extents and self.faults.take_corrupt_write():
            self.store.corrupt(ref.full_name, written.extents, self.faults.rng)
        return [_okay(f"wrote {ref.full_name}")]

    def _oem(self, words: list[str]) -> list[bytes]:
        if words[:1] == ["sha256"] and len(words) in (2, 4):
            ref = self.store.resolve(words[1])
            try:
                offset, size = (_number(words[2]), _number(words[3])) if len(words) == 4 else (0, ref.size)
            except ValueError:
                return [_fail("oem sha256: OFFSET and SIZE must be numbers")]
            digest = self.store.sha256(words[1], offset, size)
            return [_info(f"{ref.full_name} {offset:#x}+{size:#x} sha256 {digest}"), _okay()]
        if words[:1] == ["help"]:
            return [_info(OEM_HELP), _okay()]
        return [_fail(f"unknown oem command; {OEM_HELP}"[:200])]

    # -- variables ------------------------------------------------------------------------------

    def _getvar(self, name: str) -> list[bytes]:
        if name == "all":
            return [_info(f"{key}:{value}") for key, value in self.variables()] + [_okay()]
        value = self.variable(name)
        return [_fail(f"unknown variable {name[:40]}")] if value is None else [_okay(value)]

    def _slotted(self) -> bool:
        return self.store.model.slot_scheme == "ab"

    def variable(self, name: str) -> str | None:
        """One variable as the stock client expects it (``current-slot`` is ``a``, sizes in hex)."""
        simple = {
            "version": PROTOCOL_VERSION,
            "version-bootloader": self.version_bootloader,
            "product": self.store.model.id,
            "serialno": self.serial,
            "secure": "no",
            "unlocked": "yes",
            "max-download-size": f"{self.max_download_size:#x}",
            "is-userspace": "no",
            "slot-count": str(len(self.store.slots)) if self._slotted() else "0",
            "security-version": str(self.store.rollback_index),
        }
        if self.hw_revision:
            simple["hw-revision"] = self.hw_revision
        if self._slotted():
            simple["current-slot"] = self.store.current_slot
        if name in simple:
            return simple[name]
        key, _, argument = name.partition(":")
        if not argument:
            return None
        if key == "has-slot":
            return "yes" if self.store.has_slot(argument) else "no"
        if key in ("partition-size", "partition-type", "is-logical"):
            ref = self.store.resolve(argument)
            return {"partition-size": f"{ref.size:#x}", "partition-type": "raw", "is-logical": "no"}[key]
        if key in ("slot-successful", "slot-unbootable", "slot-retry-count") and self._slotted():
            state = self.store.slot_state(argument)
            if key == "slot-retry-count":
                return str(state.tries_remaining)
            flag = state.successful if key == "slot-successful" else state.unbootable
            return "yes" if flag else "no"
        return None

    def variables(self) -> list[tuple[str, str]]:
        """Every variable for ``getvar:all``, in a stable order."""
        names = [
            "version",
            "version-bootloader",
            "product",
            "serialno",
            "hw-revision",
            "secure",
            "unlocked",
            "max-download-size",
            "is-userspace",
            "slot-count",
            "current-slot",
            "security-version",
        ]
        if self._slotted():
            for slot in self.store.slots:
                names += [f"slot-successful:{slot}", f"slot-unbootable:{slot}", f"slot-retry-count:{slot}"]
        names += [f"has-slot:{p.name}" for p in self.store.model.partitions]
        for ref in self.store.partitions():
            names += [
                f"partition-size:{ref.full_name}",
                f"partition-type:{ref.full_name}",
                f"is-logical:{ref.full_name}",
            ]
        out = []
        for name in names:
            with contextlib.suppress(UnknownPartition):
                value = self.variable(name)
                if value is not None:
                    out.append((name, value))
        return out


# -- servers ------------------------------------------------------------------------------------

RebootCallback = Callable[[str], None]


class LinkUnplugged(ConnectionError):
    """The unplug fault fired: the session ends at once, mid-frame if need be."""


class _PacketServer(abc.ABC):
    """Accepts one host connection at a time on a listening socket and runs it through an engine."""

    header: struct.Struct

    def __init__(
        self,
        engine_factory: Callable[[], FastbootEngine],
        on_reboot: RebootCallback | None,
        faults: Faults | None = None,
        on_unplug: Callable[[], None] | None = None,
    ) -> None:
        self._engine_factory = engine_factory
        self._on_reboot = on_reboot
        self._faults = faults
        self._on_unplug = on_unplug
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @abc.abstractmethod
    def _bind(self) -> socket.socket:
        """The listening socket, bound (TCP port or Unix socket path)."""

    def start(self) -> None:
        self._listener = self._bind()
        self._listener.listen(4)
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)
        if self._listener is not None and self._thread is not None:
            with contextlib.suppress(OSError), socket.socket(self._listener.family) as waker:
                waker.settimeout(1.0)
                waker.connect(self._listener.getsockname())  # wakes accept() at once
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> _PacketServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._listener is not None
        self._listener.settimeout(0.5)
        engine: FastbootEngine | None = None
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                if self._stop.is_set():
                    conn.close()
                    break
                self._conn = conn
                try:
                    engine = self._session_engine(engine)
                    self._session(conn, engine)
                except (OSError, ConnectionError) as exc:
                    LOG.info("%s: session ended: %s", type(self).__name__, exc)
                finally:
                    self._conn = None
                    conn.close()
                if engine is not None and engine.reboot_target is not None:
                    target, engine.reboot_target = engine.reboot_target, None
                    if self._on_reboot is not None:
                        try:
                            self._on_reboot(target)
                        except Exception:  # the simulator core's problem; this server keeps serving
                            LOG.exception("%s: reboot handler failed", type(self).__name__)
        finally:
            if engine is not None:
                engine.close()

    def _session_engine(self, engine: FastbootEngine | None) -> FastbootEngine:
        return engine or self._engine_factory()

    def _cross(self, n: int) -> None:
        """``n`` bytes crossed the link: count them against the unplug fault, wait out the bandwidth cap."""
        faults = self._faults
        if faults is None or n <= 0:
            return
        if faults.cross(n):
            if self._on_unplug is not None:
                threading.Thread(target=self._on_unplug, name="unplug", daemon=True).start()
            raise LinkUnplugged("unplugged by the unplug-after-bytes fault")
        faults.throttle(n)

    def _handshake(self, conn: socket.socket) -> bool:
        return True

    def _session(self, conn: socket.socket, engine: FastbootEngine) -> None:
        conn.settimeout(None)
        if not self._handshake(conn):
            return
        buf = bytearray(_RECV_CHUNK)
        view = memoryview(buf)
        while not self._stop.is_set():
            head = _recv_exact(conn, self.header.size)
            if head is None:
                return
            self._cross(len(head))
            (length,) = self.header.unpack(head)
            if engine.expecting:
                replies = self._stream(conn, engine, length, view)
            elif length > MAX_COMMAND_LENGTH:
                _drain(conn, length, view)
                self._cross(length)
                replies = [_fail(f"command longer than {MAX_COMMAND_LENGTH} bytes")]
            else:
                packet = _recv_exact(conn, length) if length else b""
                if packet is None:
                    return
                self._cross(length)
                if self._stop.is_set():
                    return  # powered off between the command's arrival and its execution
                replies = engine.feed(packet)
            for reply in replies:
                frame = self.header.pack(len(reply)) + reply
                self._cross(len(frame))
                conn.sendall(frame)
            if engine.reboot_target is not None:
                return  # the unit resets: the host sees the link drop

    def _stream(self, conn: socket.socket, engine: FastbootEngine, length: int, view: memoryview) -> list[bytes]:
        """Feed a payload frame to the engine in pieces, never holding it whole."""
        fd = engine.download_fd(length)
        if fd is not None and _SPLICE:
            return self._splice(conn, engine, length, fd)
        replies: list[bytes] = []
        remaining = length
        while remaining:
            n = conn.recv_into(view[: min(remaining, len(view))])
            if n == 0:
                raise ConnectionError("the host closed the link during a download")
            self._cross(n)  # an unplug drops this piece: it never reached the unit
            remaining -= n
            if engine.expecting:
                replies += engine.feed(view[:n])
        return replies

    def _splice(self, conn: socket.socket, engine: FastbootEngine, length: int, fd: int) -> list[bytes]:
        """Move a payload frame from the socket to the download file in the kernel (socket, pipe, file):
        the bytes never enter Python, which keeps many units at full speed on a small host."""
        read_end, write_end = os.pipe()
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            replies: list[bytes] = []
            remaining = length
            while remaining:
                n = os.splice(conn.fileno(), write_end, min(remaining, _PIPE_SIZE))
                if n == 0:
                    raise ConnectionError("the host closed the link during a download")
                self._cross(n)  # an unplug drops this piece: it never reached the unit
                left = n
                while left:
                    left -= os.splice(read_end, fd, left)
                remaining -= n
                replies += engine.downloaded(n)
            return replies
        finally:
            os.close(read_end)
            os.close(write_end)


class FastbootTcpServer(_PacketServer):
    """Fastboot over TCP for one unit, on 127.0.0.1 by default (port 0: any free port)."""

    header = struct.Struct(">Q")

    def __init__(
        self,
        engine_factory: Callable[[], FastbootEngine],
        host: str = "127.0.0.1",
        port: int = 0,
        on_reboot: RebootCallback | None = None,
        faults: Faults | None = None,
        on_unplug: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(engine_factory, on_reboot, faults, on_unplug)
        self._address = (host, port)

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self._address)
        return sock

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() the server first"
        return int(self._listener.getsockname()[1])

    def _session_engine(self, engine: FastbootEngine | None) -> FastbootEngine:
        if engine is not None:  # a new TCP connection is a new session: no half-finished download
            engine.close()
        return self._engine_factory()

    def _handshake(self, conn: socket.socket) -> bool:
        conn.settimeout(5.0)
        try:
            hello = _recv_exact(conn, 4)
        except TimeoutError:
            return False
        if hello is None or hello[:2] != b"FB" or not hello[2:].isdigit():
            LOG.info("fastboot TCP: bad handshake %r", hello)
            return False
        conn.sendall(b"FB01")
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True


class FastbootUsbServer(_PacketServer):
    """The unit's USB bulk endpoints on a Unix stream socket: each transfer a 4-byte length then its bytes.

    The engine lives as long as the server, as a device's state outlives a host closing its handle."""

    header = struct.Struct(">I")

    def __init__(
        self,
        engine_factory: Callable[[], FastbootEngine],
        path: str | os.PathLike[str],
        on_reboot: RebootCallback | None = None,
        faults: Faults | None = None,
        on_unplug: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(engine_factory, on_reboot, faults, on_unplug)
        self.path = Path(path)

    def _bind(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        return sock

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    """``size`` bytes, or None when the peer closed the connection first."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = conn.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buf)


def _drain(conn: socket.socket, length: int, view: memoryview) -> None:
    while length:
        n = conn.recv_into(view[: min(length, len(view))])
        if n == 0:
            raise ConnectionError("the host closed the link")
        length -= n


class BootloaderService:
    """A unit's bootloader while it is in bootloader mode: fastboot on TCP and on its USB bulk socket.

    The simulator core starts one when a unit enters bootloader mode and stops it when the unit
    leaves; ``tcp_port`` and ``bulk_socket`` go into ``bus.json``.  ``on_reboot(target)`` is called
    after the host's reboot command was answered (``system``, ``bootloader`` or ``recovery``); the
    core then calls ``SlotStore.boot()`` to bring the unit up in run mode.  ``faults`` are the unit's
    link faults; ``on_unplug()`` is called (on its own thread) when the unplug fault fires.
    """

    def __init__(
        self,
        store: SlotStore,
        *,
        serial: str,
        bulk_socket: str | os.PathLike[str] | None = None,
        hw_revision: str | None = None,
        on_reboot: RebootCallback | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        on_unplug: Callable[[], None] | None = None,
    ) -> None:
        self._halted = threading.Event()  # set first thing on stop: in-flight writes stop at once

        def engine() -> FastbootEngine:
            return FastbootEngine(
                store, serial=serial, hw_revision=hw_revision, faults=faults, cancelled=self._halted.is_set
            )

        self.tcp = FastbootTcpServer(engine, host, port, on_reboot, faults, on_unplug)
        self.usb = (
            FastbootUsbServer(engine, bulk_socket, on_reboot, faults, on_unplug) if bulk_socket is not None else None
        )

    @property
    def tcp_port(self) -> int:
        return self.tcp.port

    @property
    def bulk_socket(self) -> str | None:
        return str(self.usb.path) if self.usb is not None else None

    def start(self) -> None:
        self.tcp.start()
        if self.usb is not None:
            try:
                self.usb.start()
            except BaseException:
                self.tcp.stop()
                raise

    def stop(self) -> None:
        self._halted.set()
        if self.usb is not None:
            self.usb.stop()
        self.tcp.stop()
