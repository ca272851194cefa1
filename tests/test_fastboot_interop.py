"""The stock AOSP fastboot client (Debian's /usr/bin/fastboot, 29.x) against the simulated bootloader,
and the same session through Naiad's own client: both must leave the same bytes in the partitions."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.fastboot_server import FastbootEngine, FastbootTcpServer
from simulator.slots import SlotStore, build_boot_image
from terminal.fastboot import open_fastboot
from terminal.models import model_by_id

FASTBOOT = shutil.which("fastboot") or "/usr/bin/fastboot"
MiB = 1 << 20

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not os.access(FASTBOOT, os.X_OK), reason="the stock fastboot client is not installed"),
]

# The 48 MiB system image, as (offset, length, content): random data, a DONT_CARE hole the image says
# nothing about, zeros, more data, and a fill pattern.
HOLE = (16 * MiB, 8 * MiB)


def _sparse_image(path: Path, regions: list[tuple[str, bytes | int]], blk: int = 4096) -> None:
    """Write an Android sparse image: ("raw", data), ("skip", bytes), ("fill", word*blocks...)."""
    chunks, total = [], 0
    for kind, arg in regions:
        if kind == "raw":
            assert isinstance(arg, bytes)
            chunks.append(struct.pack("<HHII", 0xCAC1, 0, len(arg) // blk, 12 + len(arg)) + arg)
            total += len(arg) // blk
        elif kind == "skip":
            assert isinstance(arg, int)
            chunks.append(struct.pack("<HHII", 0xCAC3, 0, arg // blk, 12))
            total += arg // blk
        else:
            assert isinstance(arg, bytes)
            word, size = arg[:4], int.from_bytes(arg[4:], "little")
            chunks.append(struct.pack("<HHII", 0xCAC2, 0, size // blk, 16) + word)
            total += size // blk
    header = struct.pack("<IHHHHIIII", 0xED26FF3A, 1, 0, 28, 12, blk, total, len(chunks), 0)
    with path.open("wb") as fh:
        fh.write(header)
        for chunk in chunks:
            fh.write(chunk)


class Images:
    def __init__(self, root: Path) -> None:
        self.boot = root / "boot.img"
        self.boot.write_bytes(build_boot_image("2.0.0", "df2", os.urandom(300_000)))
        self.raw_a, self.raw_b = os.urandom(16 * MiB), os.urandom(16 * MiB)
        self.sparse = root / "big-sparse.img"
        _sparse_image(
            self.sparse,
            [
                ("raw", self.raw_a),
                ("skip", HOLE[1]),
                ("fill", b"\0\0\0\0" + (4 * MiB).to_bytes(8, "little")),
                ("raw", self.raw_b),
                ("fill", b"\xaa\xbb\xcc\xdd" + (4 * MiB).to_bytes(8, "little")),
            ],
        )
        self.expanded_without_hole = self.raw_a + bytes(4 * MiB) + self.raw_b + b"\xaa\xbb\xcc\xdd" * MiB
        self.raw = root / "big-raw.img"  # a plain 48 MiB image with zero regions, resparsed by the client
        self.raw.write_bytes(os.urandom(20 * MiB) + bytes(12 * MiB) + os.urandom(12 * MiB) + bytes(4 * MiB))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    return Images(tmp_path_factory.mktemp("images"))


class Unit:
    def __init__(self, root: Path) -> None:
        self.store = SlotStore.create(root / "unit", model_by_id("df2"))
        self.old = os.urandom(HOLE[1])  # what the DONT_CARE hole held before the flash
        self.store.write("system_a", self.old, offset=HOLE[0])
        self.store.write("system_b", os.urandom(48 * MiB))
        self.reboots: list[str] = []
        self.server = FastbootTcpServer(
            lambda: FastbootEngine(self.store, serial="DF2A00001", hw_revision="B"), on_reboot=self.reboots.append
        )

    @property
    def target(self) -> str:
        return f"tcp:127.0.0.1:{self.server.port}"

    def check_system(self, images: Images) -> None:
        store = self.store
        assert store.sha256("system_a", 0, 16 * MiB) == hashlib.sha256(images.raw_a).hexdigest()
        assert store.read("system_a", *HOLE) == self.old  # DONT_CARE: the old content stays
        rest = store.read("system_a", HOLE[0] + HOLE[1], 24 * MiB)
        assert rest == images.expanded_without_hole[16 * MiB :]
        raw = images.raw.read_bytes()
        assert store.sha256("system_b", 0, len(raw)) == hashlib.sha256(raw).hexdigest()


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    u = Unit(tmp_path)
    u.server.start()
    yield u
    u.server.stop()


def stock(unit: Unit, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("ANDROID_PRODUCT_OUT", "ANDROID_SERIAL")}
    done = subprocess.run(
        [FASTBOOT, "-s", unit.target, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_stock_client_session(unit: Unit, images: Images) -> None:
    out = stock(unit, "getvar", "all")
    for line in (
        "(bootloader) current-slot:a",
        "(bootloader) slot-count:2",
        "(bootloader) partition-size:system_a:0x40000000",
        "(bootloader) max-download-size:0x10000000",
    ):
        assert line in out

    stock(unit, "flash", "boot", str(images.boot))
    assert unit.store.slot_version("a") == "2.0.0"  # the current slot's boot partition

    out = stock(unit, "-S", "16M", "flash", "system", str(images.sparse))
    assert "Sending sparse 'system_a' 1/" in out and "2/" in out  # really split into pieces
    out = stock(unit, "-S", "16M", "flash", "system_b", str(images.raw))
    assert "Sending sparse 'system_b' 3/" in out
    unit.check_system(images)

    stock(unit, "--slot", "b", "flash", "boot", str(images.boot))
    stock(unit, "set_active", "b")
    assert unit.store.current_slot == "b"
    assert "current-slot: b" in stock(unit, "getvar", "current-slot")
    stock(unit, "reboot")
    unit.server.stop()  # joins the server thread: the reboot handler has run
    assert unit.reboots == ["system"]
    result = unit.store.boot()
    assert (result.slot, result.version, result.fell_back) == ("b", "2.0.0", False)


def test_stock_client_sees_failures(unit: Unit, images: Images, tmp_path: Path) -> None:
    too_big = tmp_path / "calib.img"
    too_big.write_bytes(bytes(4 * MiB + 4096))
    env = {k: v for k, v in os.environ.items() if k != "ANDROID_PRODUCT_OUT"}
    done = subprocess.run(
        [FASTBOOT, "-s", unit.target, "flash", "calib", str(too_big)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode != 0
    assert "larger than partition calib" in done.stderr
    assert unit.store.sha256("calib", 0, 4096) == hashlib.sha256(bytes(4096)).hexdigest()
    done = subprocess.run(
        [FASTBOOT, "-s", unit.target, "set_active", "c"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode != 0 and unit.store.current_slot == "a"


def test_naiad_client_same_session(unit: Unit, images: Images) -> None:
    info: list[str] = []
    with open_fastboot(unit.target, on_info=info.append) as fb:
        variables = fb.getvar_all()
        assert variables["current-slot"] == "a" and variables["partition-size:system_a"] == "0x40000000"
        fb.flash("boot", images.boot)
        fb.flash("system", images.sparse)  # one sparse piece: the bootloader expands it
        fb.flash("system_b", images.raw)
        unit.check_system(images)
        assert fb.oem_sha256("system_a", 0, 16 * MiB) == hashlib.sha256(images.raw_a).hexdigest()
        assert info and "sha256" in info[-1]
        fb.flash("boot_b", images.boot)
        fb.set_active("b")
        fb.reboot()
    unit.server.stop()
    assert unit.reboots == ["system"]
    assert unit.store.boot().slot == "b"
