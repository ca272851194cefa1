"""Fastboot over TCP: the ``FB01`` handshake, then every message framed by an 8-byte big-endian length.

Download data goes out as large frames, from a file as one frame with ``socket.sendfile`` (zero copy)
when it can, so a 256 MiB image costs the host a few hundred system calls.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import BinaryIO

from i18n import _

from .errors import (
    FastbootConnectFailed,
    FastbootDisconnected,
    FastbootHandshakeFailed,
    FastbootProtocolError,
    FastbootTimeout,
    InvalidFastbootTarget,
)
from .protocol import MAX_RESPONSE_LENGTH

LOG = logging.getLogger(__name__)
WIRE = LOG.getChild("wire")
WIRE.propagate = False

DEFAULT_PORT = 5554
HANDSHAKE = b"FB01"
HANDSHAKE_TIMEOUT = 2.0
STREAM_CHUNK = 1 << 20
_HEADER = struct.Struct(">Q")


def parse_tcp_target(target: str) -> tuple[str, int]:
    """``tcp:HOST[:PORT]`` (or ``HOST[:PORT]``, ``[v6]:PORT``) -> (host, port)."""
    rest = target[4:] if target.startswith("tcp:") else target
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or (port_text and not port_text.isdigit()):
        raise InvalidFastbootTarget(target=target)
    port = int(port_text) if port_text else DEFAULT_PORT
    if not 0 < port < 65536:
        raise InvalidFastbootTarget(target=target)
    return host, port


class FastbootTcpTransport:
    """One fastboot session over a TCP connection; packets are frames."""

    stream_chunk_size = STREAM_CHUNK

    def __init__(self, sock: socket.socket, target: str) -> None:
        self.target = target
        self._sock: socket.socket | None = sock

    @classmethod
    def connect(cls, host: str, port: int = DEFAULT_PORT, timeout: float = 5.0) -> FastbootTcpTransport:
        target = f"tcp:{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise FastbootConnectFailed(
                target=target, detail=_("the connection failed: {reason}", reason=exc.strerror or exc)
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = cls(sock, target)
        try:
            transport._handshake()
        except BaseException:
            transport.close()
            raise
        return transport

    @classmethod
    def open(cls, target: str, timeout: float = 5.0) -> FastbootTcpTransport:
        host, port = parse_tcp_target(target)
        return cls.connect(host, port, timeout)

    def _handshake(self) -> None:
        sock = self._require()
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock.sendall(HANDSHAKE)
            reply = self._recv_exact(sock, 4, "handshake", HANDSHAKE_TIMEOUT)
        except FastbootTimeout:
            raise FastbootHandshakeFailed(target=self.target, detail=_("it did not answer FB01")) from None
        except FastbootDisconnected:
            raise FastbootHandshakeFailed(target=self.target, detail=_("it closed the connection")) from None
        except OSError as exc:
            raise FastbootHandshakeFailed(
                target=self.target, detail=_("the handshake failed: {reason}", reason=exc.strerror or exc)
            ) from exc
        if reply[:2] != b"FB" or not reply[2:].isdigit() or int(reply[2:]) < 1:
            raise FastbootHandshakeFailed(target=self.target, detail=_("it answered {answer}", answer=repr(reply)))
        LOG.debug("fastboot TCP %s: protocol version %s", self.target, reply[2:].decode())

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise FastbootDisconnected(target=self.target)
        return self._sock

    def send(self, packet: bytes) -> None:
        """One message (a command): header and payload in a single write."""
        WIRE.debug("> %r", packet[:64])
        self._sendall(_HEADER.pack(len(packet)) + packet)

    def send_stream(self, data: bytes | bytearray | memoryview) -> None:
        """Download payload: one frame, no copy of ``data``."""
        self._sendall(_HEADER.pack(len(data)))
        self._sendall(data)

    def send_file(self, fh: BinaryIO, offset: int, count: int, progress: Callable[[int], object] | None = None) -> None:
        """Download payload straight from a file: one frame, sent by the kernel in ``stream_chunk_size``
        pieces, ``progress(bytes sent)`` after each.

        One frame for the whole payload, as the stock client sends it: a frame per piece would cost the
        unit a header read and a pass through its receive loop for every MiB."""
        self._sendall(_HEADER.pack(count))
        sock = self._require()
        sock.settimeout(30.0)
        chunk = max(4096, self.stream_chunk_size)
        done = 0
        while done < count:
            step = min(chunk, count - done)
            try:
                sent = sock.sendfile(fh, offset + done, step)
            except OSError as exc:
                self.close()
                raise FastbootDisconnected(target=self.target) from exc
            if sent != step:
                self.close()
                raise FastbootDisconnected(target=self.target)
            done += step
            if progress is not None:
                progress(done)

    def _sendall(self, data: bytes | bytearray | memoryview) -> None:
        sock = self._require()
        sock.settimeout(30.0)
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            self.close()
            raise FastbootTimeout(target=self.target, command="send", seconds=30) from exc
        except OSError as exc:
            self.close()
            raise FastbootDisconnected(target=self.target) from exc

    def recv(self, timeout: float) -> bytes:
        """The next response frame; FastbootTimeout when none begins within ``timeout`` seconds."""
        sock = self._require()
        header = self._recv_exact(sock, 8, "response", timeout)
        (length,) = _HEADER.unpack(header)
        if length > MAX_RESPONSE_LENGTH:
            self.close()
            raise FastbootProtocolError(
                target=self.target,
                detail=_("a response of {size} bytes is longer than {limit}", size=length, limit=MAX_RESPONSE_LENGTH),
            )
        packet = self._recv_exact(sock, length, "response", timeout) if length else b""
        WIRE.debug("< %r", packet)
        return packet

    def _recv_exact(self, sock: socket.socket, size: int, what: str, timeout: float) -> bytes:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        sock.settimeout(timeout)
        while got < size:
            try:
                n = sock.recv_into(view[got:])
            except TimeoutError:
                if got:  # half a frame: the stream is out of step, this session is over
                    self.close()
                raise FastbootTimeout(target=self.target, command=what, seconds=timeout) from None
            except OSError as exc:
                self.close()
                raise FastbootDisconnected(target=self.target) from exc
            if n == 0:
                self.close()
                raise FastbootDisconnected(target=self.target)
            got += n
        return bytes(buf)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __repr__(self) -> str:
        return f"<FastbootTcpTransport {self.target}>"
