"""USB backend: ``usb:1-4.2`` is the run-mode unit at that physical port, reached through its CDC-ACM port.

The port path is resolved on every ``open()``, so the path keeps meaning "the unit in that hub port"
when the unit re-enumerates and its serial port changes name (``/dev/ttyACM0`` -> ``/dev/ttyACM1``).
It is resolved through the discovery the caller hands in; a bare ``usb:`` path means the system's USB.
"""

from __future__ import annotations

import logging
import re

from i18n import N_

from ..discovery import Discovery, UsbAccessDenied
from ..errors import InvalidTransportPath, TransportDisconnected, TransportNotFound
from ..models import RUN
from . import Transport
from .serial import SerialTransport

LOG = logging.getLogger(__name__)

_PORT_PATH = re.compile(r"\d+-\d+(\.\d+)*")


class UnitNotInRunMode(TransportNotFound):
    message = N_("The unit at {path} is in {mode} mode, not run mode")
    remedy = N_("Reboot the unit into run mode (or finish the flash), then try again.")


class UsbTransport(Transport):
    """The management-protocol stream of the run-mode unit at one physical USB port."""

    def __init__(self, port_path: str, discovery: Discovery, baudrate: int = 115200) -> None:
        self.port_path = port_path
        self.path = f"usb:{port_path}"
        self._discovery = discovery
        self._baudrate = baudrate
        self._serial: SerialTransport | None = None

    @property
    def serial_port(self) -> str | None:
        """The serial port the path resolved to at the last open, or None while closed."""
        return self._serial.path if self._serial is not None else None

    def resolve(self) -> str:
        """The serial port of the run-mode unit at this port path, as discovery sees it now."""
        at_path = [d for d in self._discovery.devices() if d.path == self.port_path]
        if not at_path:
            raise TransportNotFound(path=self.path)
        device = at_path[0]
        if device.permission_denied:
            raise UsbAccessDenied(path=self.path)
        if device.mode != RUN:
            raise UnitNotInRunMode(path=self.path, mode=device.mode)
        if device.port is None:
            raise TransportNotFound(path=self.path)
        return device.port

    def open(self) -> None:
        if self._serial is not None:
            return
        port = self.resolve()
        LOG.debug("%s is %s", self.path, port)
        serial = SerialTransport(port, baudrate=self._baudrate)
        serial.open()
        self._serial = serial

    def close(self) -> None:
        serial, self._serial = self._serial, None
        if serial is not None:
            serial.close()

    def _require(self) -> SerialTransport:
        if self._serial is None:
            raise TransportDisconnected(path=self.path)
        return self._serial

    def read(self, size: int, timeout: float) -> bytes:
        return self._require().read(size, timeout)

    def write(self, data: bytes) -> None:
        self._require().write(data)


def from_path(rest: str, discovery: Discovery | None = None) -> UsbTransport:
    """``usb:PORT_PATH`` on the bus ``discovery`` lists (None: the system's USB, through libusb)."""
    if not _PORT_PATH.fullmatch(rest):
        raise InvalidTransportPath(path=f"usb:{rest}")
    return UsbTransport(rest, discovery if discovery is not None else Discovery())
