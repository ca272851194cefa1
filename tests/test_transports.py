"""Transports addressed by paths: tcp:HOST:PORT, pyserial URLs and open port objects, bad paths."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import serial

from terminal.client import ManagementClient
from terminal.device import DeviceEndpoint
from terminal.errors import InvalidTransportPath, TransportDisconnected, TransportNotFound
from terminal.protocol import MessageType, Payload
from terminal.transports import open_transport
from terminal.transports.serial import SerialTransport
from terminal.transports.tcp import TcpTransport


def handler(type_: int, payload: Payload) -> Payload:
    if type_ == MessageType.HELLO:
        return {"serial": "NET0001", "model": "df2", "mode": "run"}
    slot = {"version": "1.0.0", "successful": True, "bootable": True}
    return {
        "model": "df2",
        "serial": "NET0001",
        "hardware_revision": "B",
        "slots": {"a": slot, "b": slot},
        "active_slot": "a",
        "security_version": 0,
    }


@pytest.fixture
def unit_on_tcp() -> Iterator[tuple[int, threading.Event, threading.Event]]:
    """A unit offering the management protocol on a TCP port (terminals on a network do)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    hang_up, hung_up = threading.Event(), threading.Event()

    stop = threading.Event()
    listener.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            endpoint = DeviceEndpoint(handler)
            conn.settimeout(0.1)  # accepted sockets do not inherit the listener's timeout on every system
            with conn:
                while not hang_up.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    conn.sendall(endpoint.receive(data))
            hung_up.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, hang_up, hung_up
    hang_up.set()
    stop.set()
    thread.join(timeout=5)
    listener.close()


@pytest.mark.parametrize("form", ["tcp", "url", "port"])
def test_every_path_form_reaches_the_unit(unit_on_tcp: Any, form: str) -> None:
    port, _, _ = unit_on_tcp
    target: Any = {
        "tcp": f"tcp:127.0.0.1:{port}",
        "url": f"socket://127.0.0.1:{port}",
        "port": serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0),
    }[form]
    transport = open_transport(target)
    assert isinstance(transport, TcpTransport if form == "tcp" else SerialTransport)
    with ManagementClient(transport, timeout=5) as client:
        assert client.identity["serial"] == "NET0001"
        assert client.info()["active_slot"] == "a"
    if form == "port":  # a port the caller opened stays the caller's to close
        assert target.is_open
        target.close()


def test_a_unit_hanging_up_is_a_disconnect(unit_on_tcp: Any) -> None:
    port, hang_up, hung_up = unit_on_tcp
    with ManagementClient(f"tcp:127.0.0.1:{port}", timeout=5) as client:
        hang_up.set()
        assert hung_up.wait(5)
        with pytest.raises(TransportDisconnected):
            client.info()


@pytest.mark.parametrize("path", ["ttyACM0", "serial:", "bogus:/dev/x", "tcp:localhost", "tcp:host:port"])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidTransportPath):
        open_transport(path)


def test_missing_ports_are_not_found() -> None:
    with pytest.raises(TransportNotFound):
        open_transport("serial:/dev/naiad-no-such-port").open()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(TransportNotFound):
        open_transport(f"tcp:127.0.0.1:{port}").open()
