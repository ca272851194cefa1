"""One virtual terminal: power, USB plug state, run and bootloader modes, the management handler."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from terminal.camera import MAX_BLOB
from terminal.device import DeviceEndpoint, RequestRejected
from terminal.models import BOOTLOADER, RUN, TerminalModel, model_by_id
from terminal.protocol import (
    OBJECT_CALIBRATION,
    OBJECT_LOGS,
    OBJECT_LOOPBACK,
    OBJECT_SLOT_HASHES,
    ErrorCode,
    MessageType,
    Payload,
)

from .camera.service import SimCamera
from .face_pay import FacePayApp
from .face_pay_platform import PlatformStore
from .fastboot_server import BootloaderService
from .link import Faults, PtyLink
from .manufacturer import Manufacturer
from .secure_element import SimSecureElement
from .slots import NoBootableSlot, SlotStore
from .state import UnitStore

LOG = logging.getLogger(__name__)
OFF = "off"
MAX_OBJECT = 64 * 1024 * 1024
MAX_CHUNK = 1024 * 1024  # most object bytes one reply carries
REBOOT_DELAY = 0.05  # the reply leaves before the unit goes away, as on real hardware
MAX_UTC = 253_402_300_800  # 10000-01-01T00:00:00Z: a clock beyond it has no calendar date
HOST_LOGGED = 64  # characters of a HELLO's host name the log keeps


def _stored(data: bytes) -> tuple[bytes, bytes]:
    return data, hashlib.sha256(data).digest()


class ObjectSink:
    """An object arriving in chunks; kept only when its SHA-256 matches."""

    def __init__(self, total: int, sha256: bytes, limit: int = MAX_OBJECT) -> None:
        if not 0 <= total <= limit:
            raise RequestRejected(ErrorCode.BAD_REQUEST, f"object of {total} bytes is too large")
        self.total, self.sha256, self.data = total, sha256, bytearray()


class VirtualTerminal:
    def __init__(
        self,
        store: UnitStore,
        index: int,
        faults: Faults,
        on_change: Callable[[], None],
        usb_dir: Path,
        platforms: PlatformStore | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.faults = faults
        self._on_change = on_change
        state = store.load()
        self.serial = state.serial
        self.hardware_revision = state.hardware_revision
        self.model: TerminalModel = model_by_id(state.model)
        self.flash = SlotStore.open_or_create(store.directory, self.model)
        self.secure_element = SimSecureElement(store, self.serial, Manufacturer(store.state_dir), faults)
        self._bulk_socket = usb_dir / f"{self.serial}.sock"
        self.mode = OFF
        self.plugged = True
        self.link: PtyLink | None = None
        self.endpoint: DeviceEndpoint | None = None
        self.fastboot: BootloaderService | None = None  # while in bootloader mode
        self.executions: dict[str, int] = {}
        self._objects: dict[str, tuple[bytes, bytes]] = {}  # name -> (data, SHA-256)
        self._incoming: dict[str, ObjectSink] = {}
        self.camera = SimCamera(store, self.serial, self.model, faults, self._objects)
        self.face_pay = FacePayApp(self.serial, store, self.camera, platforms or PlatformStore(store.state_dir))
        self._powered = threading.Event()  # set from a link's start to its end: an app running sees it go
        self._lock = threading.RLock()

    # -- power and plug ------------------------------------------------------------------------------
    def power_on(self, mode: str = RUN) -> None:
        """Boot: run mode boots the active slot (falling back as A/B does); no bootable slot stays in the bootloader."""
        with self._lock:
            self.secure_element.forget()  # a boot starts with empty RAM
            state = self.store.load()
            state.boot_count += 1
            boot: dict[str, Any] = {"at": time.time(), "boot": state.boot_count, "mode": mode}
            if mode == RUN:
                try:
                    result = self.flash.boot()
                    boot.update(
                        slot=result.slot,
                        version=result.version,
                        fell_back=result.fell_back,
                        failed_attempts=result.failed_attempts,
                    )
                except NoBootableSlot:
                    mode = boot["mode"] = BOOTLOADER
                    boot["error"] = "no bootable slot"
            state.boots.append(boot)
            self.store.save(state)
            self.store.log(
                f"boot #{state.boot_count} into {mode} mode"
                + (f", slot {boot['slot']} version {boot['version']}" if "slot" in boot else "")
            )
            self.mode = mode
            self._objects.pop(OBJECT_LOOPBACK, None)
            self._incoming.clear()
            self.camera.boot()
            self._connect()

    def power_cut(self) -> None:
        with self._lock:
            self.secure_element.forget()
            self._disconnect()
            self.mode = OFF
            self._notify()

    def unplug(self) -> None:
        with self._lock:
            self.plugged = False
            self._disconnect()
            self._notify()

    def replug(self) -> None:
        with self._lock:
            self.plugged = True
            self._connect()

    def reboot(self, mode: str) -> None:
        with self._lock:
            self.store.log(f"reboot into {mode} mode")
            self._disconnect()
            self.power_on(mode)

    def shutdown(self) -> None:
        with self._lock:
            self._disconnect()
            self.mode = OFF

    def _connect(self) -> None:
        if self.plugged and self.mode == RUN and self.link is None:
            self._powered = threading.Event()
            self._powered.set()
            self.endpoint = DeviceEndpoint(self.handle)
            self.link = PtyLink(self._receive, self.faults, on_unplug=self.unplug)
        elif self.plugged and self.mode == BOOTLOADER and self.fastboot is None:
            service = BootloaderService(
                self.flash,
                serial=self.serial,
                bulk_socket=self._bulk_socket,
                hw_revision=self.hardware_revision,
                on_reboot=self._fastboot_reboot,
                faults=self.faults,
                on_unplug=self.unplug,
            )
            service.start()  # published only once it listens: the bus may be read at any moment
            self.fastboot = service
        self._notify()

    def _disconnect(self) -> None:
        self._powered.clear()  # an app under way stops at its next step; its reply would go nowhere
        link, self.link = self.link, None
        if link is not None:
            link.close()
        fastboot, self.fastboot = self.fastboot, None
        if fastboot is not None:
            fastboot.stop()
        if self.endpoint is not None:
            for name, count in self.endpoint.executions.items():
                self.executions[name] = self.executions.get(name, 0) + count
            self.endpoint = None

    def _fastboot_reboot(self, target: str) -> None:
        mode = BOOTLOADER if target == "bootloader" else RUN
        threading.Thread(target=self.reboot, args=(mode,), name=f"reboot {self.serial}", daemon=True).start()

    def _receive(self, data: bytes) -> bytes:
        endpoint = self.endpoint
        return endpoint.receive(data) if endpoint is not None else b""

    def _notify(self) -> None:
        self._on_change()

    # -- what the station sees -----------------------------------------------------------------------
    @property
    def present(self) -> bool:
        """On the USB bus: powered, plugged and not between modes."""
        return self.plugged and (self.link is not None or self.fastboot is not None)

    def execution_counts(self) -> dict[str, int]:
        counts = dict(self.executions)
        if self.endpoint is not None:
            for name, count in self.endpoint.executions.items():
                counts[name] = counts.get(name, 0) + count
        return counts

    def status(self) -> dict[str, Any]:
        state = self.store.load()
        return {
            "serial": self.serial,
            "model": self.model.id,
            "mode": self.mode,
            "plugged": self.plugged,
            "pty": self.link.path if self.link else None,
            "fastboot_tcp_port": self.fastboot.tcp_port if self.fastboot else None,
            "active_slot": self.flash.current_slot,
            "security_version": self.flash.rollback_index,
            "hardware_revision": state.hardware_revision,
            "boot_count": state.boot_count,
            "secure_element": str(self.secure_element.state()),
            "faults": self.faults.as_dict(),
        }

    # -- management protocol ---------------------------------------------------------------------------
    def handle(self, type_: int, payload: Payload) -> Payload:
        if type_ in SimSecureElement.REQUESTS:
            return self.secure_element.handle(type_, payload)
        if type_ in SimCamera.REQUESTS:
            return self.camera.handle(type_, payload)
        handler = self._HANDLERS.get(type_)
        if handler is None:
            raise RequestRejected(ErrorCode.UNKNOWN_TYPE, f"0x{type_:04x}")
        return handler(self, payload)

    def _face_pay_test(self, payload: Payload) -> Payload:
        return self.face_pay.run(payload, self._powered)

    def _hello(self, payload: Payload) -> Payload:
        self.store.log(f"hello from {str(payload.get('host', '?'))[:HOST_LOGGED]}")
        return {"serial": self.serial, "model": self.model.id, "mode": self.mode}

    def _info(self, payload: Payload) -> Payload:
        state = self.store.load()
        return {
            "model": self.model.id,
            "serial": self.serial,
            "hardware_revision": state.hardware_revision,
            **self.firmware_info(),
            "security_version": self.flash.rollback_index,
            "boot_count": state.boot_count,
            "secure_element": {"state": str(self.secure_element.state())},
            "camera_module": self.model.camera.module,
        }

    def firmware_info(self) -> Payload:
        """Firmware version and health of each slot, and the active slot."""
        flash = self.flash.status()
        slots = {
            name or "-": {
                "version": meta["version"],
                "successful": meta["successful"],
                "bootable": not meta["unbootable"],
            }
            for name, meta in flash["slots"].items()
        }
        return {"slots": slots, "active_slot": flash["active"] or "-"}

    def _reboot(self, payload: Payload) -> Payload:
        mode = payload["mode"]
        if mode not in (RUN, BOOTLOADER):
            raise RequestRejected(ErrorCode.BAD_REQUEST, f"unknown mode {mode!r}")
        timer = threading.Timer(REBOOT_DELAY, self.reboot, args=(mode,))
        timer.daemon = True
        timer.start()
        return {}

    def _time(self, payload: Payload) -> Payload:
        state = self.store.load()
        if "utc" in payload:
            utc = payload["utc"]
            if isinstance(utc, bool) or not isinstance(utc, int | float) or not 0 <= utc < MAX_UTC:
                raise RequestRejected(ErrorCode.BAD_REQUEST, f"utc {utc!r} is not a time")  # NaN, inf, text
            state.clock_offset = float(utc) - time.time()
            self.store.save(state)
            self.store.log("clock set by the station")
        return {"utc": time.time() + state.clock_offset}

    def _boot_history(self, payload: Payload) -> Payload:
        return {"boots": self.store.load().boots}

    def _object_read(self, payload: Payload) -> Payload:
        name, offset, length = str(payload["name"]), int(payload["offset"]), int(payload["length"])
        if name in (OBJECT_LOGS, OBJECT_CALIBRATION, OBJECT_SLOT_HASHES) and (offset == 0 or name not in self._objects):
            # a transfer starts: freeze a snapshot so every chunk agrees
            data = self._snapshot(name)
            if data is None:
                self._objects.pop(name, None)
            else:
                self._objects[name] = _stored(data)
        if name not in self._objects:
            raise RequestRejected(ErrorCode.NOT_FOUND, name)
        data, digest = self._objects[name]
        if not 0 <= offset <= len(data) or length <= 0:
            raise RequestRejected(ErrorCode.BAD_REQUEST, f"offset {offset} length {length}")
        return {
            "name": name,
            "offset": offset,
            "total": len(data),
            "sha256": digest,
            "data": data[offset : offset + min(length, MAX_CHUNK)],
        }

    def _snapshot(self, name: str) -> bytes | None:
        if name == OBJECT_LOGS:
            return self.store.read_log()
        if name == OBJECT_SLOT_HASHES:  # hashed from flash now: what the unit holds, not what it was sent
            return json.dumps(self.flash.slot_hashes(), sort_keys=True).encode()
        return self.camera.read_calibration()

    def _object_write(self, payload: Payload) -> Payload:
        name, offset, total = str(payload["name"]), int(payload["offset"]), int(payload["total"])
        sha, data = payload["sha256"], payload["data"]
        if not isinstance(sha, bytes) or len(sha) != 32 or not isinstance(data, bytes):
            raise RequestRejected(ErrorCode.BAD_REQUEST, "sha256 and data must be bytes")
        if name not in (OBJECT_LOOPBACK, OBJECT_CALIBRATION):
            raise RequestRejected(ErrorCode.READ_ONLY, name)
        sink = self._incoming.get(name)
        if offset == 0:
            limit = MAX_BLOB if name == OBJECT_CALIBRATION else MAX_OBJECT  # no blob is larger: refuse, not buffer
            sink = self._incoming[name] = ObjectSink(total, sha, limit)
        if sink is None or offset != len(sink.data) or (sink.total, sink.sha256) != (total, sha):
            raise RequestRejected(ErrorCode.BAD_REQUEST, f"unexpected chunk at offset {offset}")
        if len(sink.data) + len(data) > sink.total:
            raise RequestRejected(ErrorCode.BAD_REQUEST, "more data than announced")
        sink.data += data
        complete = len(sink.data) == sink.total
        if complete:
            del self._incoming[name]
            if hashlib.sha256(sink.data).digest() != sink.sha256:
                raise RequestRejected(ErrorCode.INTEGRITY, "SHA-256 mismatch")
            if name == OBJECT_CALIBRATION:
                self.camera.write_calibration(bytes(sink.data))  # kept on disk, read back from there
            else:
                self._objects[name] = _stored(bytes(sink.data))
        return {"received": len(sink.data), "complete": complete}

    _HANDLERS: ClassVar[dict[int, Callable[[VirtualTerminal, Payload], Payload]]] = {
        MessageType.HELLO: _hello,
        MessageType.INFO: _info,
        MessageType.REBOOT: _reboot,
        MessageType.TIME: _time,
        MessageType.BOOT_HISTORY: _boot_history,
        MessageType.OBJECT_READ: _object_read,
        MessageType.OBJECT_WRITE: _object_write,
        MessageType.FACE_PAY_TEST: _face_pay_test,
    }
