"""One transport interface, one module per backend, addressed by string paths.

``serial:/dev/ttyACM0`` (or any pyserial ``serial_for_url`` URL such as ``socket://`` or ``loop://``,
or an already open pyserial port), ``tcp:HOST:PORT``, ``usb:BUS-PORT.PORT`` (the run-mode unit at that
physical port, reached through its CDC-ACM serial port).
"""

from __future__ import annotations

import abc
import importlib
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidTransportPath

if TYPE_CHECKING:
    from ..discovery import Discovery

_BACKENDS = {"serial": "serial", "tcp": "tcp", "usb": "usb"}


class Transport(abc.ABC):
    """A byte stream to one unit."""

    path: str

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def read(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes; ``b""`` when nothing came within ``timeout`` seconds.

        Raises TransportDisconnected when the unit went away."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"


def open_transport(target: str | Any, *, discovery: Discovery | None = None) -> Transport:
    """A closed Transport for ``target``: a path string or an open pyserial port.

    ``discovery`` resolves ``usb:`` paths (None: the system's USB bus)."""
    if not isinstance(target, str):
        from .serial import SerialTransport

        return SerialTransport(target)
    scheme, sep, rest = target.partition(":")
    if "://" in target:  # a bare pyserial URL: socket://, loop://, rfc2217://
        scheme, rest = "serial", target
    if not sep or scheme not in _BACKENDS or not rest:
        raise InvalidTransportPath(path=target)
    if scheme == "usb":
        from .usb import from_path

        return from_path(rest, discovery)
    module = importlib.import_module(f"{__name__}.{_BACKENDS[scheme]}")
    transport: Transport = module.from_path(rest)
    return transport
