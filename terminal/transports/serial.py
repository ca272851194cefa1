"""Serial backend (pyserial): a CDC-ACM port, a pyserial URL, or an already open port object."""

from __future__ import annotations

import errno
import logging
from typing import Any

import serial

from ..errors import TransportDisconnected, TransportNotFound, TransportPermissionDenied
from . import Transport

LOG = logging.getLogger(__name__)


class SerialTransport(Transport):
    def __init__(self, port: str | Any, baudrate: int = 115200) -> None:
        if isinstance(port, str):
            self.path, self._port = port, None
        else:
            self.path, self._port = str(getattr(port, "port", None) or port), port
        self._owned = isinstance(port, str)
        self._baudrate = baudrate

    def open(self) -> None:
        if self._port is not None and self._port.is_open:
            return
        try:
            self._port = serial.serial_for_url(
                self.path, baudrate=self._baudrate, timeout=0, write_timeout=10, exclusive=True
            )
        except serial.SerialException as exc:
            raise self._translate(exc) from exc
        except ValueError as exc:  # a URL scheme pyserial does not know
            raise TransportNotFound(path=self.path) from exc

    def _translate(self, exc: Exception) -> Exception:
        """A port that cannot be opened: no permission, else not there (pyserial keeps the errno)."""
        if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
            return TransportPermissionDenied(path=self.path)
        return TransportNotFound(path=self.path)

    def close(self) -> None:
        port, self._port = self._port, (None if self._owned else self._port)
        if port is not None and self._owned:
            try:
                port.close()
            except (OSError, serial.SerialException):
                LOG.debug("closing %s failed", self.path, exc_info=True)

    def _require(self) -> Any:
        if self._port is None:
            raise TransportDisconnected(path=self.path)
        return self._port

    def read(self, size: int, timeout: float) -> bytes:
        port = self._require()
        try:
            port.timeout = timeout
            data: bytes = port.read(max(1, min(size, port.in_waiting or 1)))
            if data and port.in_waiting:
                data += port.read(min(size - len(data), port.in_waiting))
            return data
        except (OSError, serial.SerialException, TypeError, AttributeError) as exc:
            raise TransportDisconnected(path=self.path) from exc

    def write(self, data: bytes) -> None:
        port = self._require()
        try:
            port.write(data)
        except (OSError, serial.SerialException, TypeError, AttributeError) as exc:
            raise TransportDisconnected(path=self.path) from exc


def from_path(rest: str) -> SerialTransport:
    return SerialTransport(rest)
