"""The simulator's pyusb backend: descriptors, strings, bulk transfers over the unit socket, errors."""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import usb.core
import usb.util

from simulator.usb_backend import SimBusError, SimUsbBackend, get_backend

RUN_ENTRY: dict[str, Any] = {
    "bus": 1,
    "address": 7,
    "port_path": "1-1.3",
    "port_numbers": [1, 3],
    "vid": 0x3A6E,
    "pid": 0x0201,
    "serial": "DF2A00001",
    "manufacturer": "Naiad Reference Devices",
    "product": "Dragonfly 2",
    "mode": "run",
    "tty": "/dev/pts/7",
    "fastboot_tcp_port": None,
    "bulk_socket": None,
}


def boot_entry(sock: str | None, address: int = 9) -> dict[str, Any]:
    return {
        **RUN_ENTRY,
        "address": address,
        "pid": 0x0202,
        "mode": "bootloader",
        "tty": None,
        "port_path": "1-1.4",
        "port_numbers": [1, 4],
        "serial": "DF2A00002",
        "bulk_socket": sock,
    }


def write_bus(sim_dir: Path, devices: list[dict[str, Any]]) -> None:
    tmp = sim_dir / "bus.json.tmp"
    tmp.write_text(json.dumps({"version": 1, "devices": devices}), encoding="utf-8")
    tmp.replace(sim_dir / "bus.json")


Handler = Callable[[bytes], list[bytes]]


class ScriptedPeer:
    """The unit's side of a bulk socket: each OUT transfer goes to ``handler``, which returns IN transfers."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path, self.handler = path, handler
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.conn: socket.socket | None = None
        self.received: list[bytes] = []
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv_exact(self, conn: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        self.conn = conn
        self.connected.set()
        with conn:
            while True:
                try:
                    header = self._recv_exact(conn, 4)
                    if header is None:
                        return
                    payload = self._recv_exact(conn, struct.unpack(">I", header)[0])
                    if payload is None:
                        return
                    self.received.append(payload)
                    for reply in self.handler(payload):
                        conn.sendall(struct.pack(">I", len(reply)) + reply)
                except OSError:
                    return

    def send_raw(self, data: bytes) -> None:
        assert self.connected.wait(5) and self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        for sock in (self.conn, self.server):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # also wakes a pending accept()
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nsim", dir="/tmp"))  # AF_UNIX paths must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def peer_factory(sock_dir: Path) -> Iterator[Callable[[Handler], ScriptedPeer]]:
    peers: list[ScriptedPeer] = []

    def make(handler: Handler) -> ScriptedPeer:
        peer = ScriptedPeer(str(sock_dir / f"bulk{len(peers)}.sock"), handler)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def find(sim_dir: Path, **match: Any) -> Any:
    dev = usb.core.find(backend=get_backend(sim_dir), **match)
    assert dev is not None
    return dev


def bootloader(sim_dir: Path, peer: ScriptedPeer) -> Any:
    write_bus(sim_dir, [RUN_ENTRY, boot_entry(peer.path)])
    return find(sim_dir, idProduct=0x0202)


# --------------------------------------------------------------------------- descriptors and strings


def test_run_mode_is_a_composite_cdc_acm_device(tmp_path: Path) -> None:
    write_bus(tmp_path, [RUN_ENTRY])
    dev = find(tmp_path, idVendor=0x3A6E, idProduct=0x0201)
    assert (dev.bDeviceClass, dev.bus, dev.address, dev.port_numbers) == (0xEF, 1, 7, (1, 3))
    assert dev.port_number == 3 and dev.speed == usb.util.SPEED_HIGH and dev.bcdUSB == 0x0200
    cfg = dev.get_active_configuration()
    comm, data = cfg[(0, 0)], cfg[(1, 0)]
    assert (comm.bInterfaceClass, comm.bInterfaceSubClass) == (0x02, 0x02)
    assert [(e.bEndpointAddress, usb.util.endpoint_type(e.bmAttributes)) for e in comm] == [
        (0x82, usb.util.ENDPOINT_TYPE_INTR)
    ]
    assert data.bInterfaceClass == 0x0A
    assert sorted((e.bEndpointAddress, e.bmAttributes, e.wMaxPacketSize) for e in data) == [
        (0x01, 0x02, 512),
        (0x81, 0x02, 512),
    ]
    assert list(cfg.extra_descriptors[:2]) == [8, 0x0B]  # interface association for the composite


def test_bootloader_mode_offers_the_fastboot_interface(tmp_path: Path) -> None:
    write_bus(tmp_path, [boot_entry("/nonexistent.sock")])
    dev = find(tmp_path)
    intf = usb.util.find_descriptor(
        dev.get_active_configuration(), bInterfaceClass=0xFF, bInterfaceSubClass=0x42, bInterfaceProtocol=0x03
    )
    assert intf is not None
    assert usb.util.get_string(dev, intf.iInterface) == "fastboot"
    assert {(e.bEndpointAddress, e.bmAttributes, e.wMaxPacketSize) for e in intf} == {
        (0x81, 0x02, 512),
        (0x01, 0x02, 512),
    }


def test_raw_descriptors_agree_with_the_parsed_ones(tmp_path: Path) -> None:
    write_bus(tmp_path, [RUN_ENTRY])
    dev = find(tmp_path)
    raw_dev = bytes(dev.ctrl_transfer(0x80, 0x06, 0x0100, 0, 64))
    assert raw_dev[:2] == b"\x12\x01" and struct.unpack_from("<HH", raw_dev, 8) == (0x3A6E, 0x0201)
    raw_cfg = bytes(dev.ctrl_transfer(0x80, 0x06, 0x0200, 0, 1024))
    total = struct.unpack_from("<H", raw_cfg, 2)[0]
    assert total == len(raw_cfg) == dev.get_active_configuration().wTotalLength
    # walk the descriptor chain: every descriptor's length leads exactly to the end
    offset, types = 0, []
    while offset < len(raw_cfg):
        types.append(raw_cfg[offset + 1])
        offset += raw_cfg[offset]
    assert offset == total and types.count(4) == 2 and types.count(5) == 3 and types.count(0x0B) == 1
    truncated = bytes(dev.ctrl_transfer(0x80, 0x06, 0x0200, 0, 9))  # the host reads the header first
    assert truncated == raw_cfg[:9]


def test_string_descriptors(tmp_path: Path) -> None:
    write_bus(tmp_path, [RUN_ENTRY])
    dev = find(tmp_path)
    assert dev.langids == (0x0409,)
    assert (dev.serial_number, dev.manufacturer, dev.product) == ("DF2A00001", "Naiad Reference Devices", "Dragonfly 2")
    with pytest.raises(usb.core.USBError) as err:
        usb.util.get_string(dev, 9)
    assert err.value.errno == errno.EPIPE


# --------------------------------------------------------------------------- bulk transfers


def test_bulk_echo_through_pyusb(tmp_path: Path, peer_factory: Callable[[Handler], ScriptedPeer]) -> None:
    peer = peer_factory(lambda data: [data])
    dev = bootloader(tmp_path, peer)
    assert dev.write(0x01, b"getvar:product") == 14
    assert bytes(dev.read(0x81, 64, timeout=5000)) == b"getvar:product"
    blob = bytes(range(256)) * 4096  # 1 MiB in one transfer
    assert dev.write(0x01, blob, timeout=5000) == len(blob)
    assert bytes(dev.read(0x81, len(blob), timeout=5000)) == blob
    assert peer.received == [b"getvar:product", blob]


def test_a_read_returns_one_in_transfer(tmp_path: Path, peer_factory: Callable[[Handler], ScriptedPeer]) -> None:
    peer = peer_factory(lambda data: [b"INFOflashing", b"OKAY"])
    dev = bootloader(tmp_path, peer)
    dev.write(0x01, b"flash:boot_a")
    assert bytes(dev.read(0x81, 4096, timeout=5000)) == b"INFOflashing"
    assert bytes(dev.read(0x81, 4096, timeout=5000)) == b"OKAY"


def test_long_transfer_in_packet_sized_reads_and_overflow(
    tmp_path: Path, peer_factory: Callable[[Handler], ScriptedPeer]
) -> None:
    peer = peer_factory(lambda data: [b"A" * 1024] if data == b"big" else [b"B" * 600])
    dev = bootloader(tmp_path, peer)
    dev.write(0x01, b"big")
    assert bytes(dev.read(0x81, 512, timeout=5000)) == b"A" * 512
    assert bytes(dev.read(0x81, 512, timeout=5000)) == b"A" * 512
    dev.write(0x01, b"odd")
    with pytest.raises(usb.core.USBError) as err:
        dev.read(0x81, 100, timeout=5000)  # not a multiple of wMaxPacketSize: the packet does not fit
    assert err.value.errno == errno.EOVERFLOW


def test_timeout_keeps_a_partial_transfer(tmp_path: Path, peer_factory: Callable[[Handler], ScriptedPeer]) -> None:
    peer = peer_factory(lambda data: [])
    dev = bootloader(tmp_path, peer)
    dev.write(0x01, b"hello")  # connects; the peer answers nothing
    with pytest.raises(usb.core.USBTimeoutError):
        dev.read(0x81, 64, timeout=20)
    frame = struct.pack(">I", 6) + b"OKAYok"
    peer.send_raw(frame[:5])
    with pytest.raises(usb.core.USBTimeoutError):
        dev.read(0x81, 64, timeout=20)
    peer.send_raw(frame[5:])
    assert bytes(dev.read(0x81, 64, timeout=5000)) == b"OKAYok"


def test_closed_socket_is_enodev(tmp_path: Path, peer_factory: Callable[[Handler], ScriptedPeer]) -> None:
    peer = peer_factory(lambda data: [])
    dev = bootloader(tmp_path, peer)
    dev.write(0x01, b"reboot-bootloader")
    assert peer.connected.wait(5)
    peer.close()
    with pytest.raises(usb.core.USBError) as err:
        dev.read(0x81, 64, timeout=5000)
    assert err.value.errno == errno.ENODEV


def test_no_socket_listening_is_enodev(tmp_path: Path, sock_dir: Path) -> None:
    write_bus(tmp_path, [boot_entry(str(sock_dir / "absent.sock"))])
    dev = find(tmp_path)
    with pytest.raises(usb.core.USBError) as err:
        dev.write(0x01, b"getvar:all")
    assert err.value.errno == errno.ENODEV


def test_vanished_or_reenumerated_device_is_enodev(tmp_path: Path) -> None:
    write_bus(tmp_path, [RUN_ENTRY])
    dev = find(tmp_path)
    assert bytes(dev.ctrl_transfer(0x80, 0x00, 0, 0, 2)) == b"\x00\x00"
    write_bus(tmp_path, [{**RUN_ENTRY, "address": 12}])  # same unit, re-enumerated
    with pytest.raises(usb.core.USBError) as err:
        dev.ctrl_transfer(0x80, 0x00, 0, 0, 2)
    assert err.value.errno == errno.ENODEV
    usb.util.dispose_resources(dev)
    write_bus(tmp_path, [])
    with pytest.raises(usb.core.USBError) as err:
        dev.ctrl_transfer(0x80, 0x00, 0, 0, 2)
    assert err.value.errno == errno.ENODEV


def test_run_mode_interfaces_belong_to_cdc_acm(tmp_path: Path) -> None:
    write_bus(tmp_path, [RUN_ENTRY])
    dev = find(tmp_path)
    assert dev.is_kernel_driver_active(1)
    with pytest.raises(usb.core.USBError) as err:
        dev.write(0x01, b"x")
    assert err.value.errno == errno.EBUSY


def test_interface_is_claimed_by_one_handle(tmp_path: Path, sock_dir: Path) -> None:
    write_bus(tmp_path, [boot_entry(str(sock_dir / "s.sock"))])
    first, second = find(tmp_path), find(tmp_path)
    usb.util.claim_interface(first, 0)
    with pytest.raises(usb.core.USBError) as err:
        usb.util.claim_interface(second, 0)
    assert err.value.errno == errno.EBUSY
    usb.util.release_interface(first, 0)
    usb.util.claim_interface(second, 0)
    usb.util.dispose_resources(second)


def test_wrong_direction_or_unknown_endpoint(tmp_path: Path, sock_dir: Path) -> None:
    write_bus(tmp_path, [boot_entry(str(sock_dir / "s.sock"))])
    dev = find(tmp_path)
    with pytest.raises(usb.core.USBError) as err:
        dev.write(0x81, b"x")
    assert err.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        dev.write(0x02, b"x")


# --------------------------------------------------------------------------- the bus file


def test_bus_file_errors(tmp_path: Path) -> None:
    backend = get_backend(tmp_path)
    assert list(usb.core.find(find_all=True, backend=backend)) == []  # simulator not started yet
    (tmp_path / "bus.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SimBusError) as err:
        list(usb.core.find(find_all=True, backend=backend))
    assert err.value.errno == errno.EIO
    write_bus(tmp_path, [{**RUN_ENTRY, "mode": "recovery"}])
    with pytest.raises(SimBusError):
        usb.core.find(backend=backend)
    (tmp_path / "bus.json").write_text(json.dumps({"version": 2, "devices": []}), encoding="utf-8")
    with pytest.raises(SimBusError):
        usb.core.find(backend=backend)
    with pytest.raises(FileNotFoundError):
        get_backend(tmp_path / "missing")
    assert isinstance(backend, SimUsbBackend)


def test_reader_and_writer_threads_share_one_stream(
    tmp_path: Path, peer_factory: Callable[[Handler], ScriptedPeer]
) -> None:
    peer = peer_factory(lambda data: [data[::-1]])
    dev = bootloader(tmp_path, peer)
    usb.util.claim_interface(dev, 0)
    replies: list[bytes] = []

    def read_all() -> None:
        for _ in range(200):
            replies.append(bytes(dev.read(0x81, 512, timeout=10000)))

    reader = threading.Thread(target=read_all)
    reader.start()
    for i in range(200):
        dev.write(0x01, f"transfer {i:03d}".encode(), timeout=10000)
    reader.join(timeout=30)
    assert replies == [f"transfer {i:03d}".encode()[::-1] for i in range(200)]
    assert len(peer.received) == 200  # one connection carried everything (the peer accepts one)
