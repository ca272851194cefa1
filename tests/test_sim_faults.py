"""Simulator faults for flashing: bandwidth cap, unplug on the fastboot links, corrupted writes,
power cuts mid-download and mid-write, and the bootloader's anti-rollback index."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import write_bootloader_bus

from simulator import link
from simulator.control import SimulatorCommandFailed
from simulator.fastboot_server import BootloaderService, FastbootEngine, FastbootTcpServer
from simulator.link import DEFAULT_BURST, MB, Faults, InvalidFault, TokenBucket
from simulator.slots import SlotStore, WriteInterrupted, build_boot_image
from simulator.state import UnitStore
from simulator.unit import VirtualTerminal
from terminal.fastboot import FastbootDisconnected, open_fastboot
from terminal.models import BOOTLOADER, RUN, model_by_id

MiB = 1 << 20


@pytest.fixture
def store(tmp_path: Path) -> SlotStore:
    return SlotStore.create(tmp_path / "unit", model_by_id("df2"))


def _flash(store: SlotStore, partition: str, image: bytes, tmp_path: Path) -> None:
    path = tmp_path / "image.bin"
    path.write_bytes(image)
    with path.open("rb") as fh:
        store.write_image(partition, fh)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_bucket_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Bandwidth caps made from now on wait on a fake clock: the test counts their waits, not the wall clock."""
    clock = FakeClock()
    monkeypatch.setattr(link, "TokenBucket", functools.partial(TokenBucket, clock=clock, sleep=clock.sleep))
    return clock


# -- the token bucket and the fault set ------------------------------------------------------------


def test_token_bucket_holds_the_rate_over_a_long_transfer() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, burst=100, clock=clock, sleep=clock.sleep)
    assert bucket.consume(100) == 0.0  # the burst goes at once
    assert bucket.consume(500) == pytest.approx(0.5)
    for _ in range(20):
        clock.now += 0.001  # work between pieces overlaps with the refill, it is not added to the wait
        bucket.consume(250)
    assert clock.now - 100.0 == pytest.approx((100 + 500 + 20 * 250 - 100) / 1000.0)


def test_token_bucket_refills_only_up_to_its_burst_after_idling() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, burst=100, clock=clock, sleep=clock.sleep)
    bucket.consume(100)
    clock.now += 60.0  # a long pause earns no more than the burst
    assert bucket.consume(300) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_a_sleep_that_overshoots_does_not_slow_the_link_below_the_cap() -> None:
    clock = FakeClock()

    def late_sleep(seconds: float) -> None:
        clock.now += seconds * 1.5  # a loaded machine wakes late

    bucket = TokenBucket(1000.0, burst=100, clock=clock, sleep=late_sleep)
    waits = [bucket.consume(100) for _ in range(3)]
    assert waits == [0.0, pytest.approx(0.1), pytest.approx(0.05)]  # the late wake-up is credited


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ber", 1.5),
        ("drop", -0.1),
        ("latency_ms", -1),
        ("bandwidth_mbps", -40),
        ("bandwidth_mbps", "fast"),
        ("unplug_after_bytes", -1),
        ("unplug_after_bytes", 1.5),
        ("corrupt_writes", -2),
        ("corrupt_writes", True),
        ("ber", float("nan")),
        ("no_such_fault", 1),
    ],
)
def test_bad_faults_are_refused_and_change_nothing(name: str, value: Any) -> None:
    faults = Faults(bandwidth_mbps=40.0)
    before = faults.as_dict()
    with pytest.raises(InvalidFault) as caught:
        good = {"corrupt_writes": 3} if name == "latency_ms" else {"latency_ms": 5.0}
        faults.update(**good, **{name: value})  # the good change in the same call is not applied
    assert name in str(caught.value) and caught.value.remedy_text
    assert faults.as_dict() == before


def test_unplug_after_bytes_counts_from_when_it_is_set_and_fires_once() -> None:
    faults = Faults()
    assert not faults.cross(10_000)  # no fault: bytes just cross
    faults.update(unplug_after_bytes=1000)
    assert faults.remaining_before_unplug() == 1000
    assert not faults.cross(600)
    assert faults.cross(600)
    assert faults.unplug_after_bytes is None and not faults.cross(10_000)


def test_corrupt_writes_counts_down() -> None:
    faults = Faults(corrupt_writes=2)
    assert [faults.take_corrupt_write() for _ in range(3)] == [True, True, False]
    assert faults.corrupt_writes == 0


# -- the fastboot links -----------------------------------------------------------------------------


@pytest.fixture
def capped_server(store: SlotStore) -> Iterator[tuple[FastbootTcpServer, Faults]]:
    faults = Faults()
    server = FastbootTcpServer(lambda: FastbootEngine(store, serial="DF2A00001", faults=faults), faults=faults)
    with server:
        yield server, faults


def test_the_bandwidth_cap_slows_a_fastboot_download(
    capped_server: tuple[FastbootTcpServer, Faults], fake_bucket_clock: FakeClock
) -> None:
    server, faults = capped_server
    data = os.urandom(4 * MiB)
    faults.update(bandwidth_mbps=10.0)
    with open_fastboot(f"tcp:127.0.0.1:{server.port}") as fb:
        fb.download(data)
    # the bucket made the link wait as long as the data takes at the cap (less its burst): the cap really bit
    assert sum(fake_bucket_clock.slept) >= (len(data) - DEFAULT_BURST) / (10.0 * MB)
    faults.update(bandwidth_mbps=None)
    waited = len(fake_bucket_clock.slept)
    with open_fastboot(f"tcp:127.0.0.1:{server.port}") as fb:
        fb.download(data)
    assert len(fake_bucket_clock.slept) == waited  # lifting it works: nothing waits any more


def test_unplug_fault_on_the_usb_bulk_link(store: SlotStore) -> None:
    from simulator.usb_backend import get_backend

    faults = Faults()
    unplugged = threading.Event()
    with tempfile.TemporaryDirectory(prefix="fbu") as short:
        sim_dir = Path(short)
        service = BootloaderService(
            store, serial="DF2A00001", bulk_socket=sim_dir / "bulk.sock", faults=faults, on_unplug=unplugged.set
        )
        service.start()
        try:
            write_bootloader_bus(sim_dir, address=9, tcp_port=service.tcp_port, bulk_socket=service.bulk_socket)
            before = store.sha256("boot_b", 0, 3 * MiB)
            with open_fastboot("usb:1-1.3", usb_backend=get_backend(sim_dir)) as fb:
                faults.update(unplug_after_bytes=MiB)
                with pytest.raises(FastbootDisconnected):
                    fb.flash("boot_b", os.urandom(3 * MiB))
            assert unplugged.wait(5)
        finally:
            service.stop()
    assert store.sha256("boot_b", 0, 3 * MiB) == before  # the half download was never written


def test_power_cut_mid_write_stops_at_once_and_the_old_slot_boots(store: SlotStore, tmp_path: Path) -> None:
    image = tmp_path / "boot.img"
    image.write_bytes(build_boot_image("2.0.0", "df2", os.urandom(40 * MiB)))
    before = store.sha256("boot_b")
    with image.open("rb") as fh, pytest.raises(WriteInterrupted):
        store.flash_image("boot_b", fh, cancelled=lambda: True)  # the cut came before the first piece
    assert store.sha256("boot_b") == before  # nothing was written after the cut
    checks = iter([False, True])
    with image.open("rb") as fh, pytest.raises(WriteInterrupted):
        store.flash_image("boot_b", fh, cancelled=lambda: next(checks, True))  # one piece, then the cut
    reopened = SlotStore(store.unit_dir, store.model)
    assert reopened.boot().slot == "a"


def test_engine_refuses_commands_once_the_bootloader_is_going_down(store: SlotStore) -> None:
    down = threading.Event()
    engine = FastbootEngine(store, serial="DF2A00001", cancelled=down.is_set)
    assert engine.feed(b"getvar:product") == [b"OKAYdf2"]
    down.set()
    assert engine.feed(b"set_active:b")[0].startswith(b"FAIL")
    assert store.current_slot == "a"


# -- anti-rollback ------------------------------------------------------------------------------------


def test_rollback_index_rises_on_a_successful_boot_and_refuses_older_images(store: SlotStore, tmp_path: Path) -> None:
    assert store.rollback_index == 0 and store.status()["security_version"] == 0
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"new kernel", security_version=5), tmp_path)
    store.set_active("b")
    assert store.rollback_index == 0  # activating is not booting
    assert store.boot().slot == "b"
    assert SlotStore(store.unit_dir, store.model).rollback_index == 5  # persisted
    # an older release in the other slot (the factory image has security version 0) must not boot
    _flash(store, "boot_a", build_boot_image("1.5.0", "df2", b"old kernel", security_version=3), tmp_path)
    store.set_active("a")
    result = store.boot()
    assert (result.slot, result.version, result.fell_back) == ("b", "2.0.0", True)
    assert store.slot_state("a").unbootable and store.slot_state("a").failed_boots == 3
    assert store.rollback_index == 5
    # the same security version is allowed (a re-flash or a fix without a security bump)
    _flash(store, "boot_a", build_boot_image("2.0.1", "df2", b"fix", security_version=5), tmp_path)
    store.set_active("a")
    assert store.boot().slot == "a" and store.rollback_index == 5


def test_a_bad_security_version_does_not_boot(store: SlotStore, tmp_path: Path) -> None:
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"k", security_version="high"), tmp_path)
    store.set_active("b")
    assert store.boot().slot == "a"


def test_a_store_from_before_anti_rollback_opens_with_index_zero(store: SlotStore) -> None:
    path = store.unit_dir / "slots.json"
    document = json.loads(path.read_text())
    del document["rollback_index"]
    path.write_text(json.dumps(document))
    assert SlotStore(store.unit_dir, store.model).rollback_index == 0
    document["rollback_index"] = -1
    path.write_text(json.dumps(document))
    with pytest.raises(Exception, match="rollback index"):
        SlotStore(store.unit_dir, store.model)


def test_getvar_security_version(store: SlotStore, tmp_path: Path) -> None:
    engine = FastbootEngine(store, serial="DF2A00001")
    assert engine.feed(b"getvar:security-version") == [b"OKAY0"]
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"k", security_version=7), tmp_path)
    store.set_active("b")
    store.boot()
    assert engine.feed(b"getvar:security-version") == [b"OKAY7"]
    assert b"INFOsecurity-version:7" in engine.feed(b"getvar:all")


# -- through the simulator process ---------------------------------------------------------------------


def _to_bootloader(sim: Any, serial: str) -> int:
    sim.call("reboot", serial=serial, mode=BOOTLOADER)
    port = sim.terminal(serial)["fastboot_tcp_port"]
    assert port
    return int(port)


def test_unplug_on_the_fastboot_tcp_link_and_back_in_bootloader_on_replug(sim: Any) -> None:
    from terminal.client import ManagementClient

    serial = sim.serials()[0]
    with ManagementClient(f"serial:{sim.terminal(serial)['pty']}") as client:
        assert client.info()["security_version"] == 0
    with pytest.raises(SimulatorCommandFailed):
        sim.call("faults", serial=serial, bandwidth_mbps=-1, unplug_after_bytes=10)
    assert sim.terminal(serial)["faults"]["unplug_after_bytes"] is None  # the refused change changed nothing
    port = _to_bootloader(sim, serial)
    with open_fastboot(f"tcp:127.0.0.1:{port}") as fb:
        before = fb.oem_sha256("system_b", 0, 8 * MiB)
        sim.call("faults", serial=serial, unplug_after_bytes=2 * MiB)
        with pytest.raises(FastbootDisconnected):
            fb.flash("system_b", os.urandom(8 * MiB))
    unit = sim.terminal(serial)
    assert (unit["plugged"], unit["fastboot_tcp_port"]) == (False, None)
    sim.call("replug", serial=serial)
    unit = sim.terminal(serial)
    assert unit["mode"] == BOOTLOADER and unit["fastboot_tcp_port"]
    with open_fastboot(f"tcp:127.0.0.1:{unit['fastboot_tcp_port']}") as fb:
        assert fb.getvar("serialno") == serial
        assert fb.oem_sha256("system_b", 0, 8 * MiB) == before


def test_corrupt_writes_make_the_unit_digest_differ_although_flash_said_okay(sim: Any) -> None:
    serial = sim.serials()[0]
    port = _to_bootloader(sim, serial)
    data = os.urandom(2 * MiB)
    expected = hashlib.sha256(data).hexdigest()
    sim.call("faults", serial=serial, corrupt_writes=1)
    with open_fastboot(f"tcp:127.0.0.1:{port}") as fb:
        fb.flash("system_b", data)  # OKAY, as a flaky eMMC answers
        assert fb.oem_sha256("system_b", 0, len(data)) != expected
        fb.flash("system_b", data)  # the fault was for one write only
        assert fb.oem_sha256("system_b", 0, len(data)) == expected
    assert sim.terminal(serial)["faults"]["corrupt_writes"] == 0


def test_power_cut_mid_download_leaves_the_old_slot_booting(sim: Any) -> None:
    serial = sim.serials()[0]
    port = _to_bootloader(sim, serial)
    boot_b = sim.state_dir / "units" / serial / "partitions" / "boot_b.img"
    before = hashlib.sha256(boot_b.read_bytes()).hexdigest()
    sim.call("faults", serial=serial, bandwidth_mbps=8.0)  # slow enough to cut in the middle
    image = build_boot_image("2.0.0", "df2", os.urandom(16 * MiB))
    halfway = threading.Event()
    errors: list[BaseException] = []

    def progress(done: int, total: int) -> None:
        if done > 4 * MiB:
            halfway.set()

    def flash() -> None:
        try:
            with open_fastboot(f"tcp:127.0.0.1:{port}") as fb:
                fb.flash("boot_b", image, progress=progress)
                fb.set_active("b")
        except BaseException as exc:
            errors.append(exc)
        finally:
            halfway.set()

    worker = threading.Thread(target=flash)
    worker.start()
    assert halfway.wait(30)
    sim.call("power_cut", serial=serial)
    worker.join(30)
    assert errors and isinstance(errors[0], FastbootDisconnected)
    assert sim.terminal(serial)["mode"] == "off"
    assert hashlib.sha256(boot_b.read_bytes()).hexdigest() == before  # no byte of the image landed
    sim.call("faults", serial=serial, bandwidth_mbps=None)
    sim.call("power_on", serial=serial)
    unit = sim.terminal(serial)
    assert (unit["mode"], unit["active_slot"]) == (RUN, "a")


def test_bandwidth_cap_is_set_at_start_through_the_command_line(sim_factory: Any) -> None:
    sim = sim_factory(terminals=1, bandwidth_mbps=2.0)
    assert sim.terminal(sim.serials()[0])["faults"]["bandwidth_mbps"] == 2.0


def test_bandwidth_cap_applies_to_the_management_link(tmp_path: Path, fake_bucket_clock: FakeClock) -> None:
    from terminal.client import ManagementClient
    from terminal.protocol import OBJECT_LOOPBACK

    store = UnitStore.create(tmp_path / "units", model_by_id("df2"))
    unit = VirtualTerminal(store, 0, Faults(bandwidth_mbps=2.0), lambda: None, tmp_path)
    unit.power_on(RUN)
    blob = os.urandom(600_000)
    try:
        assert unit.link is not None
        with ManagementClient(f"serial:{unit.link.path}", timeout=30) as client:
            client.write_object(OBJECT_LOOPBACK, blob)
    finally:
        unit.shutdown()
    assert sum(fake_bucket_clock.slept) >= (len(blob) - DEFAULT_BURST) / (2.0 * MB)  # the bucket never lets it by
