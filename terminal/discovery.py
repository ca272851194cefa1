"""USB discovery: which units are attached, in which mode, at which physical port, on which serial port.

pyusb enumerates both modes (the simulator's backend when a simulator state directory is given or
``NAIAD_SIM`` is set); the model table turns VID:PID into model and mode; a port locator maps a
run-mode unit to its serial port.  ``Discovery.watch`` turns re-enumerations into added/removed
events, woken by udev on Linux with real USB and by polling elsewhere.

A unit whose string descriptors cannot be read (no udev rule yet) is still listed, with
``permission_denied=True`` and an empty serial, so the operator sees it and the remedy; ``find()``
then raises ``UsbAccessDenied`` rather than claiming the unit is absent.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import usb.core
import usb.util

from i18n import N_

from .errors import DeviceNotFound, NaiadError, TransportPermissionDenied
from .models import BOOTLOADER, RUN, match_usb

LOG = logging.getLogger(__name__)

SIM_ENV = "NAIAD_SIM"
RESCAN_EVERY = 5.0  # seconds between safety re-enumerations when udev wakes the watcher


class UsbBackendMissing(NaiadError):
    message = N_("No USB library (libusb) is available to list the units")
    remedy = N_("Install libusb 1.0 (Debian/Ubuntu: 'apt install libusb-1.0-0'; macOS: 'brew install libusb').")


class UsbAccessDenied(TransportPermissionDenied):
    message = N_("No permission to read the USB device at {path}")


class UsbEnumerationFailed(NaiadError):
    message = N_("Listing the USB devices failed: {detail}")
    remedy = N_("Re-plug the hub and try again; if it persists, restart the station.")


class SimulatorNotFound(NaiadError):
    message = N_("No simulator state directory at {path}")
    remedy = N_("Start one with 'naiad sim start --state DIR', or unset NAIAD_SIM to use real USB.")


@dataclass(frozen=True)
class Device:
    """One attached unit as USB and the serial ports show it now."""

    serial: str
    model: str
    model_name: str
    mode: str
    path: str
    port: str | None
    vid: int
    pid: int
    bus: int
    address: int
    fastboot: str | None
    permission_denied: bool = False

    def as_dict(self) -> dict[str, object]:
        """The JSON object of ``naiad devices --json``."""
        data: dict[str, object] = dataclasses.asdict(self)
        if self.permission_denied:
            data["remedy"] = UsbAccessDenied(path=self.path).remedy_text
        return data


@dataclass(frozen=True)
class DeviceEvent:
    kind: str  # "added" | "removed"
    device: Device


@dataclass(frozen=True)
class UsbUnit:
    """What USB alone says about a unit: the input of a port locator."""

    serial: str
    path: str
    vid: int
    pid: int
    mode: str


@dataclass(frozen=True)
class Endpoints:
    """Where a unit answers besides USB: its serial port (run mode), its fastboot target (bootloader)."""

    serial_port: str | None = None
    fastboot: str | None = None


class PortLocator(Protocol):
    def locate(self, units: Sequence[UsbUnit]) -> dict[str, Endpoints]:
        """The endpoints of each unit that has any, keyed by the unit's port path."""


class ListPortsLocator:
    """Real hardware: pyserial's port list, matched by USB serial number or by USB location."""

    def locate(self, units: Sequence[UsbUnit]) -> dict[str, Endpoints]:
        run_units = [u for u in units if u.mode == RUN]
        if not run_units:
            return {}
        from serial.tools import list_ports

        ports = list_ports.comports()
        found: dict[str, Endpoints] = {}
        for unit in run_units:
            by_serial = [
                p for p in ports if unit.serial and p.serial_number == unit.serial and p.vid in (None, unit.vid)
            ]
            by_location = [p for p in ports if (p.location or "").split(":")[0] == unit.path]
            match = (by_serial or by_location or [None])[0]
            if match is not None:
                found[unit.path] = Endpoints(serial_port=match.device)
        return found


class SimPortLocator:
    """The simulator: the ``tty`` and ``fastboot_tcp_port`` its ``bus.json`` lists for each unit."""

    def __init__(self, sim_dir: Path) -> None:
        self.bus_file = sim_dir / "bus.json"

    def locate(self, units: Sequence[UsbUnit]) -> dict[str, Endpoints]:
        try:
            entries = json.loads(self.bus_file.read_text(encoding="utf-8"))["devices"]
        except (OSError, ValueError, KeyError, TypeError):
            LOG.debug("cannot read %s", self.bus_file, exc_info=True)
            return {}
        wanted = {(u.path, u.serial, u.mode) for u in units}
        found: dict[str, Endpoints] = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            key = (entry.get("port_path"), entry.get("serial"), entry.get("mode"))
            if key not in wanted:
                continue
            tcp = entry.get("fastboot_tcp_port")
            found[str(key[0])] = Endpoints(
                serial_port=entry.get("tty") or None, fastboot=f"tcp:127.0.0.1:{int(tcp)}" if tcp else None
            )
        return found


def port_path(bus: int, port_numbers: Sequence[int] | None, address: int) -> str:
    """The physical port path (``1-4.2``) that names a hub port; ``1-@7`` if the backend has no ports."""
    if not port_numbers:
        return f"{bus}-@{address}"
    return f"{bus}-{'.'.join(str(p) for p in port_numbers)}"


def _key(device: Device) -> tuple[str, str]:
    return (device.serial or f"@{device.path}", device.mode)


class _Unreadable(Exception):
    """The device vanished or failed while its strings were read: skip it this round."""


class Discovery:
    """Lists the attached units and watches them come and go."""

    def __init__(
        self,
        sim_dir: str | os.PathLike[str] | None = None,
        *,
        backend: Any = None,
        locator: PortLocator | None = None,
        port_grace: float = 2.0,
    ) -> None:
        chosen = os.fspath(sim_dir) if sim_dir is not None else os.environ.get(SIM_ENV) or None
        self.sim_dir = Path(chosen) if chosen else None
        self.port_grace = port_grace
        self._backend = backend
        self._locator = locator
        self._lock = threading.Lock()
        self._serials: dict[tuple[int, int, int, int], str] = {}  # (bus, address, vid, pid) -> serial

    def __repr__(self) -> str:
        return f"<Discovery {self.sim_dir or 'usb'}>"

    # -- backends, chosen lazily
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = self._load_backend()
        return self._backend

    def _load_backend(self) -> Any:
        if self.sim_dir is not None:
            from simulator.usb_backend import get_backend  # the one seam from terminal to the simulator

            try:
                return get_backend(self.sim_dir)
            except FileNotFoundError as exc:
                raise SimulatorNotFound(path=str(self.sim_dir)) from exc
        import usb.backend.libusb0
        import usb.backend.libusb1
        import usb.backend.openusb

        for module in (usb.backend.libusb1, usb.backend.libusb0, usb.backend.openusb):
            backend = module.get_backend()
            if backend is not None:
                return backend
        raise UsbBackendMissing()

    def locator(self) -> PortLocator:
        if self._locator is None:
            self._locator = SimPortLocator(self.sim_dir) if self.sim_dir is not None else ListPortsLocator()
        return self._locator

    # -- enumeration
    def devices(self) -> list[Device]:
        """Every attached unit of a known model, in port order."""
        with self._lock:
            return self._enumerate()

    def find(self, serial: str) -> Device:
        """The attached unit with ``serial``; DeviceNotFound, or UsbAccessDenied if it may be unreadable."""
        devices = self.devices()
        for device in devices:
            if device.serial == serial:
                return device
        denied = [d for d in devices if d.permission_denied]
        if denied:
            raise UsbAccessDenied(path=denied[0].path)
        raise DeviceNotFound(serial=serial)

    def _enumerate(self) -> list[Device]:
        backend = self.backend()
        try:
            found = list(
                usb.core.find(
                    find_all=True,
                    backend=backend,
                    custom_match=lambda d: match_usb(d.idVendor, d.idProduct) is not None,
                )
            )
        except usb.core.USBError as exc:
            raise UsbEnumerationFailed(detail=str(exc)) from exc
        units: list[tuple[UsbUnit, Any, bool]] = []
        seen: set[tuple[int, int, int, int]] = set()
        for dev in found:
            ids = (int(dev.bus), int(dev.address), int(dev.idVendor), int(dev.idProduct))
            seen.add(ids)
            path = port_path(ids[0], dev.port_numbers, ids[1])
            model_mode = match_usb(ids[2], ids[3])
            assert model_mode is not None  # custom_match kept only known ids
            try:
                serial, denied = self._serial(dev, ids, path), False
            except UsbAccessDenied:
                serial, denied = "", True
            except _Unreadable:
                continue
            units.append((UsbUnit(serial, path, ids[2], ids[3], model_mode[1]), dev, denied))
        for stale in set(self._serials) - seen:
            del self._serials[stale]
        endpoints = self.locator().locate([u for u, _, denied in units if not denied])
        result = [self._device(unit, dev, denied, endpoints.get(unit.path, Endpoints())) for unit, dev, denied in units]
        return sorted(result, key=lambda d: (d.bus, d.path, d.address))

    def _serial(self, dev: Any, ids: tuple[int, int, int, int], path: str) -> str:
        cached = self._serials.get(ids)
        if cached is not None:
            return cached
        try:
            langids = usb.util.get_langids(dev)
            serial: str | None = usb.util.get_string(dev, dev.iSerialNumber, langids[0]) if langids else None
        except usb.core.USBError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise UsbAccessDenied(path=path) from exc
            if exc.errno not in (errno.ENODEV, errno.ENOENT):
                LOG.warning("reading the serial number of the unit at %s failed: %s", path, exc)
            raise _Unreadable() from exc
        finally:
            try:
                usb.util.dispose_resources(dev)
            except usb.core.USBError:
                LOG.debug("releasing %s failed", path, exc_info=True)
        if not serial:
            LOG.warning("the unit at %s has no serial number; it is ignored", path)
            raise _Unreadable()
        self._serials[ids] = serial
        return serial

    @staticmethod
    def _device(unit: UsbUnit, dev: Any, denied: bool, endpoints: Endpoints) -> Device:
        model_mode = match_usb(unit.vid, unit.pid)
        assert model_mode is not None
        model = model_mode[0]
        fastboot = None
        if unit.mode == BOOTLOADER:
            fastboot = endpoints.fastboot or f"usb:{unit.path}"
        return Device(
            serial=unit.serial,
            model=model.id,
            model_name=model.name,
            mode=unit.mode,
            path=unit.path,
            port=endpoints.serial_port if unit.mode == RUN else None,
            vid=unit.vid,
            pid=unit.pid,
            bus=int(dev.bus),
            address=int(dev.address),
            fastboot=fastboot,
            permission_denied=denied,
        )

    # -- hot-plug
    def watch(self, stop: threading.Event, interval: float = 0.25) -> Iterator[DeviceEvent]:
        """Yield "added" for every present unit, then events as units come, go or change, until ``stop`` is set.

        Units are keyed by (serial, mode): a mode change is "removed" (old) then "added" (new); a unit
        whose port, path or address changed in between two looks is likewise removed and added again.
        A run-mode unit whose serial port has not appeared yet is held back for ``port_grace`` seconds.
        """
        current: dict[tuple[str, str], Device] = {}
        first_seen: dict[tuple[str, str], float] = {}
        wake = self._wake_source(interval)
        try:
            snapshot = self._settled(self.devices(), first_seen)
            while True:
                yield from _diff(current, snapshot)
                current = {_key(d): d for d in snapshot}
                if stop.is_set():
                    return
                events = wake.wait(stop)
                if stop.is_set():
                    return
                if not events and not first_seen:
                    snapshot = list(current.values())
                    continue
                try:
                    snapshot = self._settled(self.devices(), first_seen)
                except NaiadError as exc:
                    LOG.warning("re-enumeration failed, keeping the last view: %s", exc)
                    snapshot = list(current.values())
        finally:
            wake.close()

    def _settled(self, devices: list[Device], first_seen: dict[tuple[str, str], float]) -> list[Device]:
        """Hide run-mode units whose serial port is still coming, up to ``port_grace`` seconds."""
        now = time.monotonic()
        waiting = {_key(d) for d in devices if d.mode == RUN and d.port is None and not d.permission_denied}
        for key in set(first_seen) - waiting:
            del first_seen[key]
        shown = []
        for device in devices:
            key = _key(device)
            if key in waiting and now - first_seen.setdefault(key, now) < self.port_grace:
                continue
            shown.append(device)
        return shown

    def _wake_source(self, interval: float) -> _Wake:
        if self.sim_dir is None and self._backend is None and sys.platform.startswith("linux"):
            monitor = _udev_monitor()
            if monitor is not None:
                return UdevWake(monitor, interval)
        return PollWake(interval)


def _diff(old: Mapping[tuple[str, str], Device], new: Sequence[Device]) -> list[DeviceEvent]:
    fresh = {_key(d): d for d in new}
    removed = [DeviceEvent("removed", d) for k, d in old.items() if fresh.get(k) != d]
    added = [DeviceEvent("added", d) for k, d in fresh.items() if old.get(k) != d]
    return removed + added


class _Wake(Protocol):
    def wait(self, stop: threading.Event) -> bool:
        """Block up to one interval (less once ``stop`` is set); True when the bus may have changed."""

    def close(self) -> None: ...


class PollWake:
    """No hot-plug notifications: every interval may have changed the bus."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def wait(self, stop: threading.Event) -> bool:
        stop.wait(self.interval)
        return True

    def close(self) -> None:
        pass


class UdevWake:
    """udev (subsystems usb and tty) says when to look; a slow periodic look covers missed events."""

    def __init__(self, monitor: Any, interval: float, rescan_every: float = RESCAN_EVERY) -> None:
        self.monitor = monitor
        self.interval = interval
        self.rescan_every = rescan_every
        self._last = time.monotonic()

    def wait(self, stop: threading.Event) -> bool:
        event = self.monitor.poll(timeout=self.interval)
        due = time.monotonic() - self._last >= self.rescan_every
        if event is None and not due:
            return False
        while event is not None:  # drain the burst a plug causes (device, interfaces, tty)
            event = self.monitor.poll(timeout=0)
        self._last = time.monotonic()
        return True

    def close(self) -> None:
        self.monitor = None


def _udev_monitor() -> Any:
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by("usb")
        monitor.filter_by("tty")
        monitor.start()
        return monitor
    except Exception:  # no pyudev, no libudev, no netlink in a container: poll instead
        LOG.info("udev monitor unavailable, polling for hot-plug", exc_info=True)
        return None
