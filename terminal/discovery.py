"""USB discovery: which units are attached, in which mode, at which physical port, on which serial port.

pyusb enumerates both modes through the backend it is given (the system's libusb when none is); the
model table turns VID:PID into model and mode; a port locator maps a run-mode unit to its serial port.
Discovery knows no particular bus beyond libusb: a composition root hands it any other backend and
locator.  ``Discovery.watch`` turns re-enumerations into added/removed events, woken by udev on Linux
with the system's USB and by polling elsewhere.

A unit whose string descriptors cannot be read (no udev rule yet) is still listed, with
``permission_denied=True`` and an empty serial, so the operator sees it and the remedy; ``find()``
then raises ``UsbAccessDenied`` rather than claiming the unit is absent.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import usb.backend
import usb.core
import usb.util

from i18n import N_, _

from .errors import DeviceNotFound, NaiadError, TransportPermissionDenied, UsbBackendMissing
from .models import BOOTLOADER, RUN, match_usb
from .ports import Endpoints, PortLocator, UsbUnit, port_path

__all__ = [
    "Device",
    "DeviceEvent",
    "Discovery",
    "Endpoints",
    "ListPortsLocator",
    "PortLocator",
    "UsbAccessDenied",
    "UsbBackendMissing",
    "UsbEnumerationFailed",
    "UsbUnit",
    "port_path",
]

LOG = logging.getLogger(__name__)

RESCAN_EVERY = 5.0  # seconds between safety re-enumerations when udev wakes the watcher


class UsbAccessDenied(TransportPermissionDenied):
    message = N_("No permission to read the USB device at {path}")


class UsbEnumerationFailed(NaiadError):
    message = N_("Listing the USB devices failed: {detail}")
    remedy = N_("Re-plug the hub and try again; if it persists, restart the station.")


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


def _key(device: Device) -> tuple[str, str]:
    return (device.serial or f"@{device.path}", device.mode)


class _Unreadable(Exception):
    """The device vanished or failed while its strings were read: skip it this round."""


class Discovery:
    """Lists the attached units and watches them come and go.

    ``backend`` is a pyusb backend, or a zero-argument callable that makes one on first use (so a
    backend's import and set-up cost nothing until a unit is looked for); None is the system's libusb.
    ``locator`` maps units to their serial ports (None: pyserial's port list).  ``hotplug`` chooses the
    watcher's wake-up: udev notifications (Linux) or polling; None means udev exactly when the system's
    libusb is in use, since udev knows nothing of a bus that another backend presents.
    """

    def __init__(
        self,
        backend: Any = None,
        locator: PortLocator | None = None,
        *,
        hotplug: bool | None = None,
        port_grace: float = 2.0,
    ) -> None:
        given = backend is not None
        factory = callable(backend) and not isinstance(backend, usb.backend.IBackend)
        self._backend: Any = None if factory else backend
        self._make_backend: Callable[[], Any] = backend if factory else _system_backend
        self.system_usb = not given
        self.hotplug = self.system_usb if hotplug is None else hotplug
        self.port_grace = port_grace
        self._locator = locator
        self._lock = threading.Lock()
        self._serials: dict[tuple[int, int, int, int], str] = {}  # (bus, address, vid, pid) -> serial

    def __repr__(self) -> str:
        return "<Discovery system USB>" if self.system_usb else f"<Discovery {self._backend or self._make_backend!r}>"

    # -- backends, chosen lazily
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = self._make_backend()
        return self._backend

    def locator(self) -> PortLocator:
        if self._locator is None:
            self._locator = ListPortsLocator()
        return self._locator

    # -- enumeration
    def devices(self) -> list[Device]:
        """Every attached unit of a known model, in port order."""
        with self._lock:
            units = [found for ids, dev in self._listed() if (found := self._unit(ids, dev)) is not None]
            endpoints = self.locator().locate([u for u, _, denied in units if not denied])
        result = [self._device(unit, dev, denied, endpoints.get(unit.path, Endpoints())) for unit, dev, denied in units]
        return sorted(result, key=lambda d: (d.bus, d.path, d.address))

    def find(self, serial: str) -> Device:
        """The attached unit with ``serial``; DeviceNotFound, or UsbAccessDenied if it may be unreadable.

        Only what finding that one unit needs is read: units whose serial is cached are matched without
        opening them, the others are read in port order until the match, and only the match is located.
        """
        with self._lock:
            listed = self._listed()
            listed.sort(key=lambda item: (self._serials.get(item[0]) != serial, item[0]))
            denied_path = None
            for ids, dev in listed:
                if self._serials.get(ids, serial) != serial:
                    continue
                found = self._unit(ids, dev)
                if found is None:
                    continue
                unit, _, denied = found
                if denied:
                    denied_path = denied_path or unit.path
                elif unit.serial == serial:
                    endpoints = self.locator().locate([unit]).get(unit.path, Endpoints())
                    return self._device(unit, dev, False, endpoints)
        if denied_path is not None:
            raise UsbAccessDenied(path=denied_path)
        raise DeviceNotFound(serial=serial)

    def _listed(self) -> list[tuple[tuple[int, int, int, int], Any]]:
        """Every USB device of a known model as (bus, address, vid, pid) and pyusb device: no string read yet."""
        try:
            found = list(
                usb.core.find(
                    find_all=True,
                    backend=self.backend(),
                    custom_match=lambda d: match_usb(d.idVendor, d.idProduct) is not None,
                )
            )
        except usb.core.USBError as exc:
            raise UsbEnumerationFailed(detail=_("the USB library reported: {reason}", reason=exc)) from exc
        listed = [((int(d.bus), int(d.address), int(d.idVendor), int(d.idProduct)), d) for d in found]
        for stale in set(self._serials) - {ids for ids, _dev in listed}:
            del self._serials[stale]
        return listed

    def _unit(self, ids: tuple[int, int, int, int], dev: Any) -> tuple[UsbUnit, Any, bool] | None:
        """The unit as USB shows it, and whether its strings were refused; None when it cannot be read now."""
        path = port_path(ids[0], dev.port_numbers, ids[1])
        model_mode = match_usb(ids[2], ids[3])
        assert model_mode is not None  # _listed kept only known ids
        try:
            serial, denied = self._serial(dev, ids, path), False
        except UsbAccessDenied:
            serial, denied = "", True
        except _Unreadable:
            return None
        return UsbUnit(serial, path, ids[2], ids[3], model_mode[1]), dev, denied

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
        if self.hotplug and sys.platform.startswith("linux"):
            monitor = _udev_monitor()
            if monitor is not None:
                return UdevWake(monitor, interval)
        return PollWake(interval)


def _system_backend() -> Any:
    """The system's USB library: libusb 1.0, else libusb 0.1, else OpenUSB."""
    import usb.backend.libusb0
    import usb.backend.libusb1
    import usb.backend.openusb

    for module in (usb.backend.libusb1, usb.backend.libusb0, usb.backend.openusb):
        backend = module.get_backend()
        if backend is not None:
            return backend
    raise UsbBackendMissing()


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
