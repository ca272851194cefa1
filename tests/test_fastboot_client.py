"""The fastboot client: protocol handling, TCP and USB transports, against the simulated bootloader."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import write_bootloader_bus
from hypothesis import given
from hypothesis import strategies as st

from simulator.fastboot_server import FastbootEngine, FastbootTcpServer, FastbootUsbServer
from simulator.slots import SlotStore
from terminal.fastboot import FastbootClient, open_fastboot
from terminal.fastboot.errors import (
    DownloadTooLarge,
    FastbootConnectFailed,
    FastbootDisconnected,
    FastbootFailure,
    FastbootHandshakeFailed,
    FastbootProtocolError,
    FastbootTimeout,
    ImageUnreadable,
    InvalidFastbootCommand,
    InvalidFastbootTarget,
)
from terminal.fastboot.protocol import (
    MAX_RESPONSE_LENGTH,
    Status,
    build_command,
    parse_response,
    parse_variable_line,
)
from terminal.fastboot.tcp import FastbootTcpTransport, parse_tcp_target
from terminal.fastboot.usb import FastbootUsbTransport, find_fastboot_interface
from terminal.models import model_by_id

MiB = 1 << 20


class ScriptedTransport:
    """A bootloader that answers each command with the next scripted list of packets."""

    target = "fake:0"
    stream_chunk_size = 4096

    def __init__(self, *answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []
        self.streamed = bytearray()
        self.pending: list[bytes] = []
        self.after_stream: tuple[int, list[bytes]] | None = None  # answer once that many bytes came
        self.closed = False

    def send(self, packet: bytes) -> None:
        self.sent.append(bytes(packet))
        self.pending += self.answers.pop(0)

    def send_stream(self, data: bytes | bytearray | memoryview) -> None:
        self.streamed += data
        if self.after_stream and len(self.streamed) == self.after_stream[0]:
            self.pending += self.after_stream[1]

    def recv(self, timeout: float) -> bytes:
        if not self.pending:
            raise FastbootTimeout(target=self.target, command="x", seconds=timeout)
        return self.pending.pop(0)

    def close(self) -> None:
        self.closed = True


# -- protocol ------------------------------------------------------------------------------------


def test_info_lines_go_to_the_callback_and_the_result() -> None:
    seen: list[str] = []
    answers = [b"INFOwriting", b"", b"TEXThalf", b"OKAYdone"]  # b"": a zero-length USB packet, skipped
    client = FastbootClient(ScriptedTransport(answers), on_info=seen.append)
    assert client.command("flash:boot") == ("done", ["writing", "half"])
    assert seen == ["writing", "half"]


def test_fail_carries_the_devices_reason() -> None:
    client = FastbootClient(ScriptedTransport([b"FAILpartition does not exist"]))
    with pytest.raises(FastbootFailure) as info:
        client.erase("recovery")
    assert info.value.reason == "partition does not exist"
    assert info.value.params["command"] == "erase:recovery"  # the command refused, not the reply
    assert "partition does not exist" in str(info.value) and info.value.remedy_text


@pytest.mark.parametrize("packet", [b"OK", b"WHAT is this", b"DATAxyz", b"O" * 300])
def test_malformed_responses_are_protocol_errors(packet: bytes) -> None:
    with pytest.raises(FastbootProtocolError):
        FastbootClient(ScriptedTransport([packet])).getvar("product")


def test_a_silent_bootloader_times_out() -> None:
    with pytest.raises(FastbootTimeout):
        FastbootClient(ScriptedTransport([])).getvar("product")


def test_download_checks_the_data_answer_and_streams_everything() -> None:
    data = os.urandom(10_000)
    transport = ScriptedTransport([b"OKAY0x100000"], [b"DATA%08x" % len(data)])
    transport.after_stream = (len(data), [b"OKAY"])
    progress: list[tuple[int, int]] = []
    FastbootClient(transport).download(data, progress=lambda done, total: progress.append((done, total)))
    assert transport.sent == [b"getvar:max-download-size", b"download:00002710"]
    assert bytes(transport.streamed) == data
    assert progress == [(4096, 10_000), (8192, 10_000), (10_000, 10_000)]


def test_download_refuses_a_wrong_data_size() -> None:
    client = FastbootClient(ScriptedTransport([b"OKAY0x100000"], [b"DATA00000005"]))
    with pytest.raises(FastbootProtocolError):
        client.download(b"123456")


def test_download_larger_than_the_limit_is_refused_before_sending() -> None:
    transport = ScriptedTransport([b"OKAY0x1000"])
    with pytest.raises(DownloadTooLarge):
        FastbootClient(transport).download(bytes(4097))
    assert transport.sent == [b"getvar:max-download-size"]


@pytest.mark.parametrize("bad", ["", "boot a", "boot:a", "boot\n", "bööt"])
def test_bad_partition_names_are_refused_before_sending(bad: str) -> None:
    transport = ScriptedTransport()
    client = FastbootClient(transport)
    with pytest.raises(InvalidFastbootCommand):
        client.erase(bad)
    with pytest.raises(InvalidFastbootCommand):
        client.flash(bad, b"x")
    assert transport.sent == []


def test_bad_oem_and_getvar_input_is_refused() -> None:
    client = FastbootClient(ScriptedTransport())
    for call in (
        lambda: client.oem(),
        lambda: client.oem("a b"),
        lambda: client.getvar("a b"),
        lambda: client.getvar(""),
        lambda: client.set_active(""),
    ):
        with pytest.raises(InvalidFastbootCommand):
            call()
    with pytest.raises(InvalidFastbootCommand):
        build_command("x" * 5000)


def test_unreadable_images_are_typed_errors(tmp_path: Path) -> None:
    client = FastbootClient(ScriptedTransport())
    with pytest.raises(ImageUnreadable):
        client.download(tmp_path / "missing.img")
    with pytest.raises(ImageUnreadable):
        client.download(b"")
    with pytest.raises(ImageUnreadable):
        client.download(io.BytesIO(b"abc"), size=4)


@given(st.binary(max_size=300))
def test_parse_response_accepts_only_well_formed_packets(packet: bytes) -> None:
    try:
        response = parse_response(packet)
    except FastbootProtocolError:
        assert (
            len(packet) < 4
            or len(packet) > MAX_RESPONSE_LENGTH
            or packet[:4] not in (b"OKAY", b"FAIL", b"INFO", b"TEXT", b"DATA")
            or packet[:4] == b"DATA"
        )
        return
    assert response.status.value.encode() == packet[:4]
    if response.status is Status.DATA:
        assert 0 <= response.data_size() <= 0xFFFFFFFF


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("partition-size:boot_a:0x4000000", ("partition-size:boot_a", "0x4000000")),
        ("product: df2", ("product", "df2")),
        ("no separator", None),
    ],
)
def test_variable_lines(line: str, parsed: tuple[str, str] | None) -> None:
    assert parse_variable_line(line) == parsed


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("tcp:127.0.0.1:5555", ("127.0.0.1", 5555)),
        ("tcp:localhost", ("localhost", 5554)),
        ("tcp:[::1]:7", ("::1", 7)),
    ],
)
def test_tcp_targets(target: str, address: tuple[str, int]) -> None:
    assert parse_tcp_target(target) == address


@pytest.mark.parametrize("target", ["tcp:", "tcp:host:port", "tcp:host:0", "tcp:host:70000", "serial:x", "x"])
def test_bad_targets(target: str) -> None:
    with pytest.raises(InvalidFastbootTarget):
        open_fastboot(target)


# -- against the simulated bootloader over TCP ---------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SlotStore:
    return SlotStore.create(tmp_path / "unit", model_by_id("df2"))


@pytest.fixture
def server(store: SlotStore) -> Iterator[FastbootTcpServer]:
    with FastbootTcpServer(lambda: FastbootEngine(store, serial="DF2A00001")) as srv:
        assert isinstance(srv, FastbootTcpServer)
        yield srv


@pytest.fixture
def client(server: FastbootTcpServer) -> Iterator[FastbootClient]:
    with open_fastboot(f"tcp:127.0.0.1:{server.port}") as fb:
        yield fb


def test_tcp_session(client: FastbootClient, store: SlotStore, tmp_path: Path) -> None:
    variables = client.getvar_all()
    assert variables["current-slot"] == "a" and variables["partition-size:system_b"] == "0x40000000"
    assert client.max_download_size == 256 * MiB
    image = tmp_path / "vendor.img"
    image.write_bytes(os.urandom(5 * MiB + 17))
    progress: list[tuple[int, int]] = []
    client.flash("vendor_b", image, progress=lambda d, t: progress.append((d, t)))
    assert progress[-1] == (5 * MiB + 17, 5 * MiB + 17)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert client.oem_sha256("vendor_b", 0, 5 * MiB + 17) == digest
    assert store.sha256("vendor_b", 0, 5 * MiB + 17) == digest
    client.set_active("b")
    assert client.getvar("current-slot") == "b"
    client.erase("vendor_b")
    assert client.oem_sha256("vendor_b", 0, 16) == hashlib.sha256(bytes(16)).hexdigest()


def test_tcp_flash_pieces_from_files_bytes_and_streams(
    client: FastbootClient, store: SlotStore, tmp_path: Path
) -> None:
    pieces_data = [os.urandom(4096) for _ in range(3)]
    path = tmp_path / "p0"
    path.write_bytes(pieces_data[0])
    seen: list[tuple[int, int]] = []
    # each piece overwrites the partition start: the last one stays
    client.flash("calib", [path, pieces_data[1], io.BytesIO(pieces_data[2])], progress=lambda d, t: seen.append((d, t)))
    assert store.read("calib", 0, 4096) == pieces_data[2]
    assert seen[-1] == (3 * 4096, 3 * 4096)


def test_tcp_failure_keeps_the_session_usable(client: FastbootClient) -> None:
    with pytest.raises(FastbootFailure) as info:
        client.flash("calib", bytes(4 * MiB + 1))
    assert "larger than partition calib" in info.value.reason
    assert client.getvar("product") == "df2"
    with pytest.raises(FastbootFailure):
        client.getvar("no-such-variable")


def test_tcp_reboot_then_the_link_is_gone(client: FastbootClient) -> None:
    client.reboot()
    with pytest.raises(FastbootDisconnected):
        client.getvar("product")


def test_tcp_nobody_listening_and_no_fastboot() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FastbootConnectFailed):
        open_fastboot(f"tcp:127.0.0.1:{port}", timeout=2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer_like_a_web_server() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4)
                conn.sendall(b"HTTP/1.1 400\r\n")

        helper = threading.Thread(target=answer_like_a_web_server)
        helper.start()
        with pytest.raises(FastbootHandshakeFailed):
            FastbootTcpTransport.connect("127.0.0.1", listener.getsockname()[1], timeout=2)
        helper.join()


def test_big_tcp_download_uses_the_file_path(client: FastbootClient, store: SlotStore, tmp_path: Path) -> None:
    image = tmp_path / "big.img"
    with image.open("wb") as fh:
        for _ in range(24):
            fh.write(os.urandom(MiB))
    client.flash("vendor_a", image)
    assert store.sha256("vendor_a", 0, 24 * MiB) == hashlib.sha256(image.read_bytes()).hexdigest()


def test_a_file_download_is_one_tcp_frame_with_progress_per_piece(tmp_path: Path) -> None:
    """The payload of a file goes out as one frame (as the stock client sends it), not a frame per piece."""
    size = 3 * MiB + 5
    image = tmp_path / "img"
    image.write_bytes(os.urandom(size))
    frames: list[int] = []

    def frame(conn: socket.socket) -> bytes:
        (length,) = struct.unpack(">Q", conn.recv(8, socket.MSG_WAITALL))
        frames.append(length)
        data = bytearray()
        while len(data) < length:
            data += conn.recv(min(MiB, length - len(data)))
        return bytes(data)

    def reply(conn: socket.socket, packet: bytes) -> None:
        conn.sendall(struct.pack(">Q", len(packet)) + packet)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def bootloader() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(conn.recv(4))
                assert frame(conn) == b"getvar:max-download-size"
                reply(conn, b"OKAY0x10000000")
                assert frame(conn) == f"download:{size:08x}".encode()
                reply(conn, f"DATA{size:08x}".encode())
                assert frame(conn) == image.read_bytes()
                reply(conn, b"OKAY")

        helper = threading.Thread(target=bootloader)
        helper.start()
        transport = FastbootTcpTransport.connect("127.0.0.1", listener.getsockname()[1], timeout=5)
        client = FastbootClient(transport)
        seen: list[int] = []
        client.download(image, progress=lambda done, total: seen.append(done))
        client.close()
        helper.join()
    assert frames[2:] == [size]
    assert seen == [MiB, 2 * MiB, 3 * MiB, size]


# -- USB: the simulator's pyusb backend over bus.json, to this bootloader's bulk socket ----------------


@pytest.fixture
def usb_sim(store: SlotStore) -> Iterator[tuple[Path, str]]:
    with tempfile.TemporaryDirectory(prefix="fbu") as short:
        sim_dir = Path(short)
        sock = sim_dir / "bulk.sock"
        write_bootloader_bus(sim_dir, address=9, bulk_socket=str(sock))
        with FastbootUsbServer(lambda: FastbootEngine(store, serial="DF2A00001"), sock):
            yield sim_dir, "usb:1-1.3"


def test_usb_session_through_the_simulated_bus(usb_sim: tuple[Path, str], store: SlotStore) -> None:
    from simulator.usb_backend import get_backend

    sim_dir, target = usb_sim
    backend = get_backend(sim_dir)
    with open_fastboot(target, usb_backend=backend) as fb:
        assert fb.target == "usb:1-1.3"
        assert fb.getvar("serialno") == "DF2A00001"
        data = os.urandom(2 * MiB + 5)
        fb.flash("boot_b", data)
        assert fb.oem_sha256("boot_b", 0, len(data)) == hashlib.sha256(data).hexdigest()
        assert len(fb.getvar_all()) > 30
    assert store.read("boot_b", 0, len(data)) == data
    with open_fastboot("usb:DF2A00001", usb_backend=backend) as fb:  # found by serial too
        assert fb.getvar("product") == "df2"
    with pytest.raises(FastbootConnectFailed):
        open_fastboot("usb:9-9", usb_backend=backend)


class _Endpoint:
    def __init__(self, address: int, packet: int) -> None:
        self.bEndpointAddress, self.bmAttributes, self.wMaxPacketSize = address, 0x02, packet


class _Interface(list[_Endpoint]):
    bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol = 0xFF, 0x42, 0x03
    bInterfaceNumber = bAlternateSetting = 0


class _Config(list[_Interface]):
    bConfigurationValue = 1


class RecordingDevice(list[_Config]):
    """Just enough of a usb.core.Device to watch the transfers a FastbootUsbTransport makes."""

    bus, address, port_numbers = 2, 5, (4,)

    def __init__(self, packet: int) -> None:
        super().__init__([_Config([_Interface([_Endpoint(0x81, packet), _Endpoint(0x02, packet)])])])
        self.writes: list[bytes] = []
        self.reads: list[int] = []

    def get_active_configuration(self) -> _Config:
        return self[0]

    def is_kernel_driver_active(self, intf: int) -> bool:
        return False

    def write(self, ep: int, data: Any, timeout: int) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def read(self, ep: int, size: int, timeout: int) -> bytes:
        self.reads.append(size)
        return b"OKAY"

    def _ctx(self) -> None:
        return None


@pytest.mark.parametrize("packet", [64, 512])
def test_usb_zero_length_packet_after_a_command_of_whole_packets(
    packet: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import usb.util

    monkeypatch.setattr(usb.util, "claim_interface", lambda dev, intf: None)
    monkeypatch.setattr(usb.util, "release_interface", lambda dev, intf: None)
    monkeypatch.setattr(usb.util, "dispose_resources", lambda dev: None)
    dev = RecordingDevice(packet)
    assert find_fastboot_interface(dev).ep_out == 0x02
    transport = FastbootUsbTransport.open(dev)
    assert transport.target == "usb:2-4"
    command = b"oem " + b"x" * (packet - 4)
    transport.send(command)
    transport.send(b"getvar:product")
    transport.send_stream(bytes(3 * MiB))
    assert dev.writes[:3] == [command, b"", b"getvar:product"]
    assert [len(w) for w in dev.writes[3:]] == [MiB, MiB, MiB]  # payload: no zero-length packet
    assert transport.recv(1.0) == b"OKAY"
    assert dev.reads[-1] % packet == 0 and dev.reads[-1] >= MAX_RESPONSE_LENGTH
    transport.close()


# -- the `naiad fastboot` command ------------------------------------------------------------------


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from console.cli_fastboot import fastboot

    return CliRunner().invoke(fastboot, list(args), catch_exceptions=False)


def test_cli_with_a_direct_target(server: FastbootTcpServer, store: SlotStore, tmp_path: Path) -> None:
    target = f"tcp:127.0.0.1:{server.port}"
    result = _cli("DF2A00001", "--target", target, "--json", "getvar", "current-slot")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"current-slot": "a"}
    everything = json.loads(_cli("-", "--target", target, "--json", "getvar", "all").stdout)
    assert everything["partition-size:calib"] == "0x400000"
    image = tmp_path / "calib.img"
    image.write_bytes(os.urandom(70_000))
    assert _cli("DF2A00001", "--target", target, "flash", "calib", str(image)).exit_code == 0
    oem = _cli("DF2A00001", "--target", target, "--json", "oem", "sha256", "calib", "0", "70000")
    assert hashlib.sha256(image.read_bytes()).hexdigest() in json.loads(oem.stdout)["info"][0]
    assert _cli("DF2A00001", "--target", target, "set_active", "b").exit_code == 0
    assert store.current_slot == "b"
    assert _cli("DF2A00001", "--target", target, "erase", "calib").exit_code == 0
    assert store.read("calib", 0, 16) == bytes(16)


def test_cli_errors_carry_the_reason_and_change_nothing(server: FastbootTcpServer, store: SlotStore) -> None:
    target = f"tcp:127.0.0.1:{server.port}"
    wrong = _cli("DF2B99999", "--target", target, "--json", "set_active", "b")
    assert wrong.exit_code == 1 and json.loads(wrong.stdout)["error"] == "WrongUnit"
    refused = _cli("DF2A00001", "--target", target, "set_active", "q")
    assert refused.exit_code == 1 and "no slot q" in refused.stderr
    assert store.current_slot == "a"
    bad = _cli("DF2A00001", "--target", "udp:1.2.3.4", "getvar", "product")
    assert bad.exit_code == 1 and "Not a fastboot target" in bad.stderr


def test_cli_finds_the_unit_by_serial_on_the_simulated_bus(
    server: FastbootTcpServer, store: SlotStore, tmp_path: Path
) -> None:
    sim = tmp_path / "sim"
    sim.mkdir()
    entry = write_bootloader_bus(sim, address=7, tcp_port=server.port)
    result = _cli("DF2A00001", "--sim", str(sim), "--json", "getvar", "serialno")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"serialno": "DF2A00001"}
    missing = _cli("DF2A00002", "--sim", str(sim), "--json", "getvar", "serialno")
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"] == "DeviceNotFound"
    entry.update(mode="run", pid=0x0201, tty="/dev/null", fastboot_tcp_port=None)
    (sim / "bus.json").write_text(json.dumps({"version": 1, "devices": [entry]}))
    running = _cli("DF2A00001", "--sim", str(sim), "--json", "reboot")
    assert running.exit_code == 1 and json.loads(running.stdout)["error"] == "NotInBootloader"
