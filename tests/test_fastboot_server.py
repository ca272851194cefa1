"""The simulated bootloader: the packet engine, its TCP and USB bulk-socket servers."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import sparse_image

from simulator.fastboot_server import BootloaderService, FastbootEngine, FastbootTcpServer, FastbootUsbServer
from simulator.slots import SlotStore, build_boot_image
from terminal.models import model_by_id

MiB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> SlotStore:
    return SlotStore.create(tmp_path / "unit", model_by_id("df2"))


@pytest.fixture
def engine(store: SlotStore) -> Iterator[FastbootEngine]:
    eng = FastbootEngine(store, serial="DF2A00001", hw_revision="B")
    yield eng
    eng.close()


def one(engine: FastbootEngine, command: str) -> bytes:
    replies = engine.feed(command.encode())
    assert len(replies) == 1, replies
    return replies[0]


def download(engine: FastbootEngine, data: bytes, piece: int = 4096) -> list[bytes]:
    assert one(engine, f"download:{len(data):08x}") == b"DATA%08x" % len(data)
    replies: list[bytes] = []
    for offset in range(0, len(data), piece):
        assert not replies, "OKAY came before the last byte"
        replies += engine.feed(memoryview(data)[offset : offset + piece])
    return replies


# -- engine: variables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("current-slot", b"a"),  # the stock 29.x client wants "a", not "_a"
        ("slot-count", b"2"),
        ("max-download-size", b"0x10000000"),
        ("partition-size:boot", b"0x4000000"),
        ("partition-size:system_b", b"0x40000000"),
        ("partition-type:calib", b"raw"),
        ("has-slot:boot", b"yes"),
        ("has-slot:calib", b"no"),
        ("is-logical:system_a", b"no"),
        ("is-userspace", b"no"),
        ("product", b"df2"),
        ("serialno", b"DF2A00001"),
        ("hw-revision", b"B"),
        ("secure", b"no"),
        ("version-bootloader", b"naiad-sim-1.0"),
        ("slot-successful:a", b"yes"),
        ("slot-retry-count:b", b"3"),
    ],
)
def test_getvar(engine: FastbootEngine, name: str, value: bytes) -> None:
    assert one(engine, f"getvar:{name}") == b"OKAY" + value


@pytest.mark.parametrize("name", ["nonsense", "has-slot:nope", "partition-size:boot_c", "partition-size:"])
def test_unknown_variables_fail(engine: FastbootEngine, name: str) -> None:
    assert one(engine, f"getvar:{name}").startswith(b"FAIL")


def test_getvar_all_lists_every_partition_in_classic_sized_lines(engine: FastbootEngine) -> None:
    replies = engine.feed(b"getvar:all")
    assert replies[-1] == b"OKAY"
    lines = [r[4:].decode() for r in replies[:-1]]
    assert all(r.startswith(b"INFO") and len(r) <= 64 for r in replies[:-1])
    for part in ("boot_a", "boot_b", "system_a", "system_b", "vendor_a", "vendor_b", "calib"):
        assert f"partition-size:{part}:" in "\n".join(lines)
    assert "current-slot:a" in lines and "slot-count:2" in lines


def test_current_slot_follows_set_active(engine: FastbootEngine) -> None:
    assert one(engine, "set_active:b") == b"OKAY"
    assert one(engine, "getvar:current-slot") == b"OKAYb"
    assert one(engine, "getvar:partition-size:boot") == b"OKAY0x4000000"
    assert one(engine, "set_active:c").startswith(b"FAIL")
    assert one(engine, "getvar:current-slot") == b"OKAYb"


# -- engine: download and flash -------------------------------------------------------------------


def test_download_spans_many_packets_and_flashes(engine: FastbootEngine, store: SlotStore) -> None:
    data = os.urandom(300_001)
    assert download(engine, data, piece=7777) == [b"OKAY"]
    assert one(engine, "flash:boot_b") == b"OKAYwrote boot_b"
    assert store.read("boot_b", 0, len(data)) == data
    assert one(engine, "flash:boot_b") == b"FAILno image downloaded"  # consumed by the flash


def test_flash_without_slot_suffix_writes_the_current_slot(engine: FastbootEngine, store: SlotStore) -> None:
    one(engine, "set_active:b")
    download(engine, b"\x42" * 8192)
    assert one(engine, "flash:vendor") == b"OKAYwrote vendor_b"
    assert store.read("vendor_b", 0, 8192) == b"\x42" * 8192


def test_download_larger_than_max_download_size_fails(engine: FastbootEngine, store: SlotStore) -> None:
    reply = one(engine, f"download:{256 * MiB + 1:08x}")
    assert reply.startswith(b"FAILdata too large")
    assert engine.expecting == 0
    assert one(engine, "getvar:product") == b"OKAYdf2"  # still in command mode


@pytest.mark.parametrize("argument", ["", "zz", "123456789", "00000000"])
def test_bad_download_sizes_fail(engine: FastbootEngine, argument: str) -> None:
    assert one(engine, f"download:{argument}").startswith(b"FAIL")
    assert engine.expecting == 0


def test_more_data_than_announced_fails_and_discards(engine: FastbootEngine) -> None:
    one(engine, "download:00000010")
    assert engine.feed(b"x" * 17) == [b"FAILmore data than the download announced"]
    assert one(engine, "flash:boot_b") == b"FAILno image downloaded"


def test_image_larger_than_the_partition_fails_untouched(engine: FastbootEngine, store: SlotStore) -> None:
    before = store.sha256("calib")
    download(engine, os.urandom(4 * MiB + 4096), piece=MiB)
    reply = one(engine, "flash:calib")
    assert reply.startswith(b"FAILThe image (4198400 bytes) is larger than partition calib")
    assert store.sha256("calib") == before


def test_unknown_partition_fails(engine: FastbootEngine) -> None:
    download(engine, b"abcd")
    assert one(engine, "flash:recovery") == b"FAILThe unit has no partition recovery"
    assert one(engine, "erase:recovery").startswith(b"FAIL")


def test_sparse_download_leaves_dont_care_untouched(engine: FastbootEngine, store: SlotStore) -> None:
    old = os.urandom(16 * 4096)
    store.write("system_a", old)
    first, last = os.urandom(4096), os.urandom(4096)
    image = sparse_image(4096, [("raw", first, 0), ("skip", b"", 8), ("fill", b"\0\0\0\0", 2), ("raw", last, 0)])
    assert download(engine, image, piece=1000) == [b"OKAY"]
    assert one(engine, "flash:system") == b"OKAYwrote system_a"
    got = store.read("system_a", 0, 16 * 4096)
    assert got[:4096] == first
    assert got[4096 : 9 * 4096] == old[4096 : 9 * 4096]
    assert got[9 * 4096 : 11 * 4096] == bytes(2 * 4096)
    assert got[11 * 4096 : 12 * 4096] == last
    assert got[12 * 4096 :] == old[12 * 4096 :]


def test_download_is_streamed_to_an_unnamed_file_in_the_unit_dir(engine: FastbootEngine, store: SlotStore) -> None:
    one(engine, f"download:{MiB:08x}")
    engine.feed(bytes(1000))
    assert engine._download is not None
    assert Path(os.readlink(f"/proc/self/fd/{engine._download.fileno()}")).parent == store.unit_dir
    engine.close()
    assert not [p for p in store.unit_dir.iterdir() if p.name.startswith(".download")]


# -- engine: other commands ------------------------------------------------------------------------


def test_erase(engine: FastbootEngine, store: SlotStore) -> None:
    store.write("calib", b"\xff" * 4096)
    assert one(engine, "erase:calib") == b"OKAYerased calib"
    assert store.read("calib", 0, 4096) == bytes(4096)


def test_oem_sha256(engine: FastbootEngine, store: SlotStore) -> None:
    data = os.urandom(10_000)
    store.write("calib", data, offset=4096)
    replies = engine.feed(b"oem sha256 calib 4096 10000")
    assert replies[-1] == b"OKAY"
    assert replies[0] == f"INFOcalib 0x1000+0x2710 sha256 {hashlib.sha256(data).hexdigest()}".encode()
    whole = engine.feed(b"oem sha256 boot_a")
    assert whole[0].endswith(store.sha256("boot_a").encode())
    hexed = engine.feed(b"oem sha256 calib 0x1000 0x2710")
    assert hexed[0] == replies[0]


@pytest.mark.parametrize(
    "command",
    [
        "oem sha256",
        "oem sha256 calib 1",
        "oem sha256 calib x 1",
        "oem sha256 calib 0 4194305",
        "oem sha256 calib -1 5",
        "oem sha256 nope",
        "oem frobnicate",
    ],
)
def test_bad_oem_commands_fail(engine: FastbootEngine, command: str) -> None:
    assert one(engine, command).startswith(b"FAIL")


@pytest.mark.parametrize(
    ("command", "target"), [("reboot", "system"), ("reboot-bootloader", "bootloader"), ("continue", "system")]
)
def test_reboot_answers_then_flags_the_target(engine: FastbootEngine, command: str, target: str) -> None:
    assert one(engine, command) == b"OKAY"
    assert engine.reboot_target == target


@pytest.mark.parametrize("packet", [b"\xff\xfe", b"x" * 4097, b"boot", b"flashing unlock", b"upload"])
def test_bad_commands_fail(engine: FastbootEngine, packet: bytes) -> None:
    replies = engine.feed(packet)
    assert len(replies) == 1 and replies[0].startswith(b"FAIL")


def test_zero_length_packet_is_ignored(engine: FastbootEngine) -> None:
    assert engine.feed(b"") == []


# -- TCP server ----------------------------------------------------------------------------------


@pytest.fixture
def tcp(store: SlotStore) -> Iterator[tuple[FastbootTcpServer, list[str]]]:
    reboots: list[str] = []
    server = FastbootTcpServer(lambda: FastbootEngine(store, serial="DF2A00001"), on_reboot=reboots.append)
    server.start()
    yield server, reboots
    server.stop()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"FB01")
    assert sock.recv(4, socket.MSG_WAITALL) == b"FB01"
    return sock


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack(">Q", len(data)) + data)


def _recv(sock: socket.socket) -> bytes:
    (n,) = struct.unpack(">Q", sock.recv(8, socket.MSG_WAITALL))
    return sock.recv(n, socket.MSG_WAITALL) if n else b""


def test_tcp_handshake_and_getvar(tcp: tuple[FastbootTcpServer, list[str]]) -> None:
    with _connect(tcp[0].port) as sock:
        _send(sock, b"getvar:current-slot")
        assert _recv(sock) == b"OKAYa"


def test_tcp_bad_handshake_is_dropped(tcp: tuple[FastbootTcpServer, list[str]]) -> None:
    with socket.create_connection(("127.0.0.1", tcp[0].port), timeout=10) as sock:
        sock.sendall(b"HELO")
        assert sock.recv(16) == b""
    with _connect(tcp[0].port) as sock:  # the server is still there for a proper client
        _send(sock, b"getvar:product")
        assert _recv(sock) == b"OKAYdf2"


def test_tcp_download_in_one_big_frame_and_in_many(tcp: tuple[FastbootTcpServer, list[str]], store: SlotStore) -> None:
    data = os.urandom(3 * MiB + 123)
    with _connect(tcp[0].port) as sock:
        _send(sock, f"download:{len(data):08x}".encode())
        assert _recv(sock) == b"DATA%08x" % len(data)
        _send(sock, data)
        assert _recv(sock) == b"OKAY"
        _send(sock, b"flash:vendor_a")
        assert _recv(sock) == b"OKAYwrote vendor_a"
        _send(sock, f"download:{len(data):08x}".encode())
        _recv(sock)
        for offset in range(0, len(data), 65536):
            _send(sock, data[offset : offset + 65536])
        assert _recv(sock) == b"OKAY"
        _send(sock, b"flash:vendor_b")
        assert _recv(sock) == b"OKAYwrote vendor_b"
    digest = hashlib.sha256(data).hexdigest()
    assert store.sha256("vendor_a", 0, len(data)) == store.sha256("vendor_b", 0, len(data)) == digest


def test_tcp_oversized_frame_too_much_data_and_long_commands(tcp: tuple[FastbootTcpServer, list[str]]) -> None:
    with _connect(tcp[0].port) as sock:
        _send(sock, b"download:00000010")
        _recv(sock)
        _send(sock, b"y" * 100)  # more than announced, in one frame
        assert _recv(sock) == b"FAILmore data than the download announced"
        _send(sock, b"getvar:" + b"x" * 5000)
        assert _recv(sock).startswith(b"FAILcommand longer")
        _send(sock, b"getvar:slot-count")
        assert _recv(sock) == b"OKAY2"


def test_tcp_new_connection_starts_a_new_session(tcp: tuple[FastbootTcpServer, list[str]]) -> None:
    with _connect(tcp[0].port) as sock:
        _send(sock, b"download:00100000")
        _recv(sock)
        _send(sock, b"half")  # then the host goes away mid-download
    with _connect(tcp[0].port) as sock:
        _send(sock, b"getvar:slot-count")
        assert _recv(sock) == b"OKAY2"


def test_tcp_reboot_answers_then_drops_the_link(tcp: tuple[FastbootTcpServer, list[str]]) -> None:
    server, reboots = tcp
    with _connect(server.port) as sock:
        _send(sock, b"reboot-bootloader")
        assert _recv(sock) == b"OKAY"
        assert sock.recv(8) == b""
    with _connect(server.port) as sock:  # a later host gets a session; the callback has run by now
        _send(sock, b"getvar:product")
        assert _recv(sock) == b"OKAYdf2"
    assert reboots == ["bootloader"]


def test_tcp_reboot_handler_errors_do_not_stop_the_server(store: SlotStore) -> None:
    def broken(target: str) -> None:
        raise RuntimeError("core failed")

    with FastbootTcpServer(lambda: FastbootEngine(store, serial="S"), on_reboot=broken) as server:
        assert isinstance(server, FastbootTcpServer)
        for _ in range(2):
            with _connect(server.port) as sock:
                _send(sock, b"reboot")
                assert _recv(sock) == b"OKAY"


# -- USB bulk-socket server -------------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fb") as path:  # Unix socket paths must stay short
        yield Path(path)


def _usb_send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack(">I", len(data)) + data)


def _usb_recv(sock: socket.socket) -> bytes:
    (n,) = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))
    return sock.recv(n, socket.MSG_WAITALL) if n else b""


def test_usb_bulk_socket_framing(store: SlotStore, short_dir: Path) -> None:
    reboots: list[str] = []
    path = short_dir / "bulk.sock"
    with (
        FastbootUsbServer(lambda: FastbootEngine(store, serial="S"), path, reboots.append),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
    ):
        sock.connect(str(path))
        _usb_send(sock, b"getvar:has-slot:boot")
        assert _usb_recv(sock) == b"OKAYyes"
        _usb_send(sock, b"")  # a zero-length packet after a command is no command
        data = os.urandom(100_000)
        _usb_send(sock, b"download:%08x" % len(data))
        assert _usb_recv(sock) == b"DATA%08x" % len(data)
        for offset in range(0, len(data), 16384):
            _usb_send(sock, data[offset : offset + 16384])
        assert _usb_recv(sock) == b"OKAY"
        _usb_send(sock, b"flash:boot_b")
        assert _usb_recv(sock) == b"OKAYwrote boot_b"
        _usb_send(sock, b"reboot")
        assert _usb_recv(sock) == b"OKAY"
        assert sock.recv(4) == b""
    assert not path.exists()
    assert reboots == ["system"]
    assert store.read("boot_b", 0, len(data)) == data


def test_usb_session_survives_a_host_reconnect(store: SlotStore, short_dir: Path) -> None:
    """The device's state outlives a host handle: a download begun on one connection ends on the next."""
    path = short_dir / "bulk.sock"
    with FastbootUsbServer(lambda: FastbootEngine(store, serial="S"), path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            _usb_send(sock, b"download:00000008")
            assert _usb_recv(sock) == b"DATA00000008"
            _usb_send(sock, b"1234")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(path))
            _usb_send(sock, b"5678")
            assert _usb_recv(sock) == b"OKAY"
            _usb_send(sock, b"flash:calib")
            assert _usb_recv(sock) == b"OKAYwrote calib"
    assert store.read("calib", 0, 8) == b"12345678"


def test_bootloader_service_serves_both_links(store: SlotStore, short_dir: Path) -> None:
    done = threading.Event()
    service = BootloaderService(
        store, serial="DF2A00001", bulk_socket=short_dir / "b.sock", on_reboot=lambda target: done.set()
    )
    service.start()
    try:
        assert service.bulk_socket == str(short_dir / "b.sock")
        with _connect(service.tcp_port) as sock:
            _send(sock, b"getvar:serialno")
            assert _recv(sock) == b"OKAYDF2A00001"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(service.bulk_socket)
            _usb_send(sock, b"reboot")
            assert _usb_recv(sock) == b"OKAY"
        assert done.wait(10)
    finally:
        service.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", service.tcp_port), timeout=2).close()


def test_boot_after_flash_over_fastboot(engine: FastbootEngine, store: SlotStore) -> None:
    download(engine, build_boot_image("3.1.0", "df2", os.urandom(50_000)), piece=65536)
    one(engine, "flash:boot_b")
    one(engine, "set_active:b")
    assert one(engine, "getvar:slot-successful:b") == b"OKAYno"
    result = store.boot()
    assert (result.slot, result.version) == ("b", "3.1.0")
    assert one(engine, "getvar:slot-successful:b") == b"OKAYyes"


def test_the_flash_session_marks_where_an_image_starts(engine: FastbootEngine, store: SlotStore) -> None:
    """A new image that opens with a DONT_CARE hole beyond the old image's end is a new image, not the old one's
    continuation; the pieces of one re-sparsed image (an unbroken run of download/flash) are one image."""
    old = os.urandom(8192)
    download(engine, old)
    assert one(engine, "flash:system_b").startswith(b"OKAY")
    assert store.images.extents("system_b") == [(0, 8192)]
    assert one(engine, "getvar:current-slot").startswith(b"OKAY")  # the session moved on: the next flash is new
    data = os.urandom(4096)
    download(engine, sparse_image(4096, [("skip", b"", 4), ("raw", data, 0)]))
    assert one(engine, "flash:system_b").startswith(b"OKAY")
    assert store.images.extents("system_b") == [(16384, 4096)]  # not glued onto the old [0, 8192)
    download(engine, sparse_image(4096, [("skip", b"", 6), ("raw", data, 0)]))  # its next piece, straight after
    assert one(engine, "flash:system_b").startswith(b"OKAY")
    assert store.images.extents("system_b") == [(16384, 4096), (24576, 4096)]
