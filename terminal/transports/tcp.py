"""TCP backend: terminals on a network offering the management protocol on a TCP port."""

from __future__ import annotations

import socket

from ..errors import InvalidTransportPath, TransportDisconnected, TransportNotFound
from . import Transport


class TcpTransport(Transport):
    def __init__(self, host: str, port: int, connect_timeout: float = 5.0) -> None:
        self.path = f"tcp:{host}:{port}"
        self._address = (host, port)
        self._connect_timeout = connect_timeout
        self._sock: socket.socket | None = None

    def open(self) -> None:
        if self._sock is not None:
            return
        try:
            self._sock = socket.create_connection(self._address, timeout=self._connect_timeout)
        except OSError as exc:
            raise TransportNotFound(path=self.path) from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise TransportDisconnected(path=self.path)
        return self._sock

    def read(self, size: int, timeout: float) -> bytes:
        sock = self._require()
        sock.settimeout(timeout)
        try:
            data = sock.recv(size)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise TransportDisconnected(path=self.path) from exc
        if not data:
            raise TransportDisconnected(path=self.path)
        return data

    def write(self, data: bytes) -> None:
        sock = self._require()
        sock.settimeout(10.0)
        try:
            sock.sendall(data)
        except OSError as exc:
            raise TransportDisconnected(path=self.path) from exc


def from_path(rest: str) -> TcpTransport:
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidTransportPath(path=f"tcp:{rest}")
    return TcpTransport(host.strip("[]"), int(port))
