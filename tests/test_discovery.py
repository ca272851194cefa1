"""Discovery over the simulator's pyusb backend, the watcher's events, port locators and the usb: transport."""

from __future__ import annotations

import errno
import json
import os
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import usb.backend.libusb0
import usb.backend.libusb1
import usb.backend.openusb
import usb.core
from serial.tools import list_ports, list_ports_common

from console.composition import Wiring
from simulator.locator import SimPortLocator, SimulatorNotFound, usb_bus
from simulator.usb_backend import SimUsbBackend
from terminal.discovery import (
    Device,
    DeviceEvent,
    Discovery,
    ListPortsLocator,
    PollWake,
    UdevWake,
    UsbAccessDenied,
    UsbBackendMissing,
    UsbEnumerationFailed,
    UsbUnit,
    port_path,
)
from terminal.errors import DeviceNotFound, InvalidTransportPath, TransportNotFound
from terminal.ports import Endpoints
from terminal.transports import open_transport
from terminal.transports.usb import UnitNotInRunMode

GET = 10.0  # seconds a test waits for an event before it fails (never asserted as a duration)


def run_entry(
    serial: str = "DF2A00001",
    port: tuple[int, ...] = (1, 3),
    address: int = 7,
    tty: str | None = "/dev/pts/7",
    pid: int = 0x0201,
) -> dict[str, Any]:
    return {
        "bus": 1,
        "address": address,
        "port_path": "1-" + ".".join(map(str, port)),
        "port_numbers": list(port),
        "vid": 0x3A6E,
        "pid": pid,
        "serial": serial,
        "manufacturer": "Naiad Reference Devices",
        "product": "Dragonfly 2",
        "mode": "run",
        "tty": tty,
        "fastboot_tcp_port": None,
        "bulk_socket": None,
    }


def boot_entry(
    serial: str = "DF2A00001", port: tuple[int, ...] = (1, 3), address: int = 8, tcp: int | None = None
) -> dict[str, Any]:
    return {
        **run_entry(serial, port, address, None, 0x0202),
        "mode": "bootloader",
        "fastboot_tcp_port": tcp,
        "bulk_socket": "/tmp/none.sock",
    }


def write_bus(sim_dir: Path, devices: list[dict[str, Any]]) -> None:
    tmp = sim_dir / "bus.json.tmp"
    tmp.write_text(json.dumps({"version": 1, "devices": devices}), encoding="utf-8")
    tmp.replace(sim_dir / "bus.json")


def sim_discovery(sim_dir: Path, **options: Any) -> Discovery:
    """Discovery over the simulator's bus, as the composition root builds it."""
    return Discovery(*usb_bus(sim_dir), **options)


# --------------------------------------------------------------------------- listing


def test_both_modes_with_model_path_and_ports(tmp_path: Path) -> None:
    write_bus(
        tmp_path,
        [
            boot_entry("DF2A00002", (1, 4), 9, tcp=5555),
            run_entry(),
            {**boot_entry("FRP000007", (2, 1, 10), 3), "pid": 0x0302},
        ],
    )
    devices = sim_discovery(tmp_path).devices()
    assert [d.as_dict() for d in devices] == [
        {
            "serial": "DF2A00001",
            "model": "df2",
            "model_name": "Dragonfly 2",
            "mode": "run",
            "path": "1-1.3",
            "port": "/dev/pts/7",
            "vid": 0x3A6E,
            "pid": 0x0201,
            "bus": 1,
            "address": 7,
            "fastboot": None,
            "permission_denied": False,
        },
        {
            "serial": "DF2A00002",
            "model": "df2",
            "model_name": "Dragonfly 2",
            "mode": "bootloader",
            "path": "1-1.4",
            "port": None,
            "vid": 0x3A6E,
            "pid": 0x0202,
            "bus": 1,
            "address": 9,
            "fastboot": "tcp:127.0.0.1:5555",
            "permission_denied": False,
        },
        {
            "serial": "FRP000007",
            "model": "frog-pro",
            "model_name": "Frog Pro",
            "mode": "bootloader",
            "path": "1-2.1.10",
            "port": None,
            "vid": 0x3A6E,
            "pid": 0x0302,
            "bus": 1,
            "address": 3,
            "fastboot": "usb:1-2.1.10",
            "permission_denied": False,
        },
    ]
    json.dumps([d.as_dict() for d in devices])


def test_unknown_usb_ids_are_not_units(tmp_path: Path) -> None:
    write_bus(tmp_path, [{**run_entry(), "vid": 0x1D6B, "pid": 0x0002}, run_entry("DF2A00009", (1, 2), 4)])
    assert [d.serial for d in sim_discovery(tmp_path).devices()] == ["DF2A00009"]


def test_find_and_missing_serial(tmp_path: Path) -> None:
    write_bus(tmp_path, [run_entry()])
    discovery = sim_discovery(tmp_path)
    assert discovery.find("DF2A00001").path == "1-1.3"
    with pytest.raises(DeviceNotFound) as err:
        discovery.find("DF2A99999")
    assert "DF2A99999" in str(err.value) and err.value.remedy_text


def test_naiad_sim_environment_is_read_by_the_composition_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_bus(tmp_path, [run_entry()])
    monkeypatch.setenv("NAIAD_SIM", str(tmp_path))
    assert [d.serial for d in Wiring.resolve().discovery().devices()] == ["DF2A00001"]


def no_system_usb(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (usb.backend.libusb1, usb.backend.libusb0, usb.backend.openusb):
        monkeypatch.setattr(module, "get_backend", lambda *a, **k: None)


def test_discovery_ignores_naiad_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The core follows no environment variable: without a backend it is the system's USB, simulator or not."""
    write_bus(tmp_path, [run_entry()])
    monkeypatch.setenv("NAIAD_SIM", str(tmp_path))
    no_system_usb(monkeypatch)
    with pytest.raises(UsbBackendMissing):
        Discovery().devices()
    with pytest.raises(UsbBackendMissing):
        open_transport("usb:1-1.3").open()


def test_a_backend_factory_is_called_once_on_first_use(tmp_path: Path) -> None:
    write_bus(tmp_path, [run_entry()])
    made: list[SimUsbBackend] = []

    def factory() -> SimUsbBackend:
        made.append(SimUsbBackend(tmp_path))
        return made[-1]

    discovery = Discovery(factory, SimPortLocator(tmp_path))
    assert made == []
    assert [d.serial for d in discovery.devices()] == ["DF2A00001"]
    discovery.find("DF2A00001")
    assert len(made) == 1 and discovery.backend() is made[0]


def test_hotplug_wake_follows_the_backend_not_the_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr("terminal.discovery._udev_monitor", lambda: FakeMonitor([]))
    assert Discovery().hotplug and isinstance(Discovery()._wake_source(0.1), UdevWake)
    given = Discovery(SimUsbBackend(tmp_path))
    assert not given.hotplug and isinstance(given._wake_source(0.1), PollWake)
    assert isinstance(Discovery(SimUsbBackend(tmp_path), hotplug=True)._wake_source(0.1), UdevWake)
    assert isinstance(Discovery(hotplug=False)._wake_source(0.1), PollWake)


class CountingBackend(SimUsbBackend):
    """Counts how often each unit is opened (to read its string descriptors)."""

    def __init__(self, sim_dir: Path) -> None:
        super().__init__(sim_dir)
        self.opened: list[str] = []

    def open_device(self, dev: Any) -> Any:
        self.opened.append(dev.serial)
        return super().open_device(dev)


class RecordingLocator(SimPortLocator):
    def __init__(self, sim_dir: Path) -> None:
        super().__init__(sim_dir)
        self.asked: list[list[str]] = []

    def locate(self, units: Any) -> dict[str, Endpoints]:
        self.asked.append([u.serial for u in units])
        return super().locate(units)


def test_find_reads_and_locates_only_up_to_the_named_unit(tmp_path: Path) -> None:
    write_bus(tmp_path, [run_entry(f"DF2A0000{i}", (1, i), 10 + i, f"/dev/pts/{i}") for i in (1, 2, 3)])
    backend, locator = CountingBackend(tmp_path), RecordingLocator(tmp_path)
    discovery = Discovery(backend, locator)
    assert discovery.find("DF2A00002").port == "/dev/pts/2"
    assert "DF2A00003" not in backend.opened and locator.asked == [["DF2A00002"]]
    backend.opened.clear()
    assert discovery.find("DF2A00002").path == "1-1.2"  # cached: no unit is opened again
    assert backend.opened == []
    with pytest.raises(DeviceNotFound):
        discovery.find("DF2A00009")
    assert sorted(backend.opened) == ["DF2A00003"]  # only the one never read before


def test_simulator_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(SimulatorNotFound) as err:
        sim_discovery(tmp_path / "nope").devices()
    assert "nope" in str(err.value) and "naiad sim start" in (err.value.remedy_text or "")


def test_invalid_bus_file_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "bus.json").write_text('{"version": 1, "devices": [{"bus": 1}]}', encoding="utf-8")
    with pytest.raises(UsbEnumerationFailed):
        sim_discovery(tmp_path).devices()


def test_no_usb_library(monkeypatch: pytest.MonkeyPatch) -> None:
    no_system_usb(monkeypatch)
    with pytest.raises(UsbBackendMissing) as err:
        Discovery().devices()
    assert "libusb" in (err.value.remedy_text or "")


class DeniedBackend(SimUsbBackend):
    """Like a unit without the udev rule: its descriptors are listed, opening it is refused."""

    def open_device(self, dev: Any) -> Any:
        raise usb.core.USBError("Access denied (insufficient permissions)", None, errno.EACCES)


def test_unit_without_permission_is_listed_with_the_remedy(tmp_path: Path) -> None:
    write_bus(tmp_path, [run_entry()])
    discovery = Discovery(DeniedBackend(tmp_path), SimPortLocator(tmp_path))
    [device] = discovery.devices()
    assert (device.permission_denied, device.serial, device.path, device.model) == (True, "", "1-1.3", "df2")
    assert "udev" in str(device.as_dict()["remedy"])
    with pytest.raises(UsbAccessDenied) as err:
        discovery.find("DF2A00001")
    assert err.value.params["path"] == "1-1.3"


def test_port_path() -> None:
    assert port_path(1, (4, 2), 7) == "1-4.2"
    assert port_path(3, [1], 2) == "3-1"
    assert port_path(2, None, 9) == "2-@9"


class FakePort(list_ports_common.ListPortInfo):  # type: ignore[misc]
    def __init__(self, device: str, serial: str | None, location: str | None, vid: int | None) -> None:
        super().__init__(device, skip_link_detection=True)
        self.serial_number, self.location, self.vid = serial, location, vid


def test_list_ports_locator_matches_serial_number_then_location(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = [
        FakePort("/dev/ttyACM0", "OTHER", "1-4.1:1.0", 0x2341),
        FakePort("/dev/ttyACM1", None, "1-4.2:1.0", None),
        FakePort("/dev/ttyACM2", "DF2A00001", "3-1:1.0", 0x3A6E),
    ]
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: ports)
    units = [
        UsbUnit("DF2A00001", "1-9", 0x3A6E, 0x0201, "run"),
        UsbUnit("DF2A00002", "1-4.2", 0x3A6E, 0x0201, "run"),
        UsbUnit("DF2A00003", "1-4.3", 0x3A6E, 0x0201, "run"),
        UsbUnit("DF2A00004", "1-4.1", 0x3A6E, 0x0202, "bootloader"),
    ]
    found = ListPortsLocator().locate(units)
    assert {path: e.serial_port for path, e in found.items()} == {"1-9": "/dev/ttyACM2", "1-4.2": "/dev/ttyACM1"}


# --------------------------------------------------------------------------- watching


class Watcher:
    def __init__(self, discovery: Discovery, interval: float = 0.01) -> None:
        self.stop = threading.Event()
        self.events: queue.Queue[DeviceEvent] = queue.Queue()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(discovery, interval), daemon=True)
        self.thread.start()

    def _run(self, discovery: Discovery, interval: float) -> None:
        try:
            for event in discovery.watch(self.stop, interval):
                self.events.put(event)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)

    def next(self) -> tuple[str, str, str, str | None]:
        event = self.events.get(timeout=GET)
        return event.kind, event.device.serial, event.device.mode, event.device.port

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=GET)
        assert not self.thread.is_alive() and not self.errors


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Any]:
    watchers: list[Watcher] = []

    def start(**kwargs: Any) -> Watcher:
        watcher = Watcher(sim_discovery(tmp_path, **kwargs))
        watchers.append(watcher)
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()


def test_watch_add_mode_change_and_remove(tmp_path: Path, watch: Any) -> None:
    write_bus(tmp_path, [run_entry()])
    watcher = watch()
    assert watcher.next() == ("added", "DF2A00001", "run", "/dev/pts/7")
    write_bus(tmp_path, [run_entry(), run_entry("DF2A00002", (1, 4), 9, "/dev/pts/9")])
    assert watcher.next() == ("added", "DF2A00002", "run", "/dev/pts/9")
    write_bus(tmp_path, [boot_entry(address=10), run_entry("DF2A00002", (1, 4), 9, "/dev/pts/9")])
    assert watcher.next() == ("removed", "DF2A00001", "run", "/dev/pts/7")
    assert watcher.next() == ("added", "DF2A00001", "bootloader", None)
    write_bus(tmp_path, [boot_entry(address=10)])
    assert watcher.next() == ("removed", "DF2A00002", "run", "/dev/pts/9")
    write_bus(tmp_path, [run_entry(address=11, tty="/dev/pts/3")])
    assert watcher.next() == ("removed", "DF2A00001", "bootloader", None)
    assert watcher.next() == ("added", "DF2A00001", "run", "/dev/pts/3")
    watcher.close()
    assert watcher.events.empty()


def test_watch_replug_in_the_same_mode_is_reported(tmp_path: Path, watch: Any) -> None:
    write_bus(tmp_path, [run_entry()])
    watcher = watch()
    assert watcher.next()[0] == "added"
    write_bus(tmp_path, [run_entry(port=(1, 5), address=20, tty="/dev/pts/8")])
    assert watcher.next() == ("removed", "DF2A00001", "run", "/dev/pts/7")
    assert watcher.next() == ("added", "DF2A00001", "run", "/dev/pts/8")


def test_watch_holds_a_run_unit_until_its_serial_port_appears(tmp_path: Path, watch: Any) -> None:
    write_bus(tmp_path, [run_entry(tty=None), boot_entry("DF2A00002", (1, 4), 9)])
    watcher = watch(port_grace=3600.0)
    assert watcher.next() == ("added", "DF2A00002", "bootloader", None)  # the portless unit was held back
    write_bus(tmp_path, [run_entry(tty="/dev/pts/4"), boot_entry("DF2A00002", (1, 4), 9)])
    assert watcher.next() == ("added", "DF2A00001", "run", "/dev/pts/4")


def test_watch_without_grace_reports_a_portless_unit(tmp_path: Path, watch: Any) -> None:
    write_bus(tmp_path, [run_entry(tty=None)])
    watcher = watch(port_grace=0.0)
    assert watcher.next() == ("added", "DF2A00001", "run", None)


def test_watch_survives_a_bad_rescan(tmp_path: Path, watch: Any, caplog: pytest.LogCaptureFixture) -> None:
    write_bus(tmp_path, [run_entry()])
    watcher = watch()
    assert watcher.next()[0] == "added"
    (tmp_path / "bus.json").write_text("garbage", encoding="utf-8")
    pause = threading.Event()
    for _ in range(int(GET / 0.01)):  # until the watcher has tried the bad file at least once
        if "re-enumeration failed" in caplog.text:
            break
        pause.wait(0.01)
    assert "re-enumeration failed" in caplog.text
    assert watcher.events.empty()  # the unit was not reported gone
    write_bus(tmp_path, [])
    assert watcher.next() == ("removed", "DF2A00001", "run", "/dev/pts/7")


def test_watch_first_enumeration_error_is_raised(tmp_path: Path) -> None:
    with pytest.raises(SimulatorNotFound):
        next(sim_discovery(tmp_path / "absent").watch(threading.Event()))


class FakeMonitor:
    def __init__(self, events: list[object]) -> None:
        self.events = events
        self.timeouts: list[float | None] = []

    def poll(self, timeout: float | None = None) -> object | None:
        self.timeouts.append(timeout)
        return self.events.pop(0) if self.events else None


def test_udev_wake_drains_a_burst_and_rescans_periodically() -> None:
    stop = threading.Event()
    monitor = FakeMonitor(["usb add", "usb add intf", "tty add"])
    wake = UdevWake(monitor, interval=0.01, rescan_every=3600.0)
    assert wake.wait(stop) is True
    assert monitor.events == [] and monitor.timeouts == [0.01, 0, 0, 0]
    assert wake.wait(stop) is False  # nothing happened and no periodic look is due
    assert UdevWake(FakeMonitor([]), interval=0.01, rescan_every=0.0).wait(stop) is True


# --------------------------------------------------------------------------- usb: transport


def test_usb_transport_reaches_the_units_serial_port(tmp_path: Path) -> None:
    master, slave = os.openpty()
    discovery = sim_discovery(tmp_path)
    try:
        write_bus(tmp_path, [run_entry(tty=os.ttyname(slave)), boot_entry("DF2A00002", (1, 4), 9)])
        transport = open_transport("usb:1-1.3", discovery=discovery)
        assert transport.path == "usb:1-1.3"
        with transport:
            transport.write(b"\x7ehello")
            assert os.read(master, 64) == b"\x7ehello"
            os.write(master, b"world")
            data = b""
            while len(data) < 5:
                chunk = transport.read(64, timeout=GET)
                assert chunk
                data += chunk
            assert data == b"world"
        with pytest.raises(UnitNotInRunMode):
            open_transport("usb:1-1.4", discovery=discovery).open()
        with pytest.raises(TransportNotFound):
            open_transport("usb:1-7", discovery=discovery).open()
    finally:
        os.close(master)
        os.close(slave)


def test_usb_transport_path_syntax() -> None:
    for bad in ("usb:", "usb:1", "usb:/dev/ttyACM0", "usb:1-4.x"):
        with pytest.raises(InvalidTransportPath):
            open_transport(bad)


def test_device_is_value_object() -> None:
    a = Device("S", "df2", "Dragonfly 2", "run", "1-1", "/dev/ttyACM0", 1, 2, 1, 5, None)
    assert a == Device("S", "df2", "Dragonfly 2", "run", "1-1", "/dev/ttyACM0", 1, 2, 1, 5, None)
    assert "remedy" not in a.as_dict()


# --------------------------------------------------------------------------- against the simulator process


def test_discovery_follows_the_simulator(sim_factory: Any) -> None:
    sim = sim_factory(terminals=2)  # sets NAIAD_SIM
    discovery = Wiring.resolve().discovery()
    devices = discovery.devices()
    assert sorted(d.serial for d in devices) == sorted(sim.serials())
    for device in devices:
        assert device.mode == "run" and device.port == sim.terminal(device.serial)["pty"]
        assert device.path.startswith("1-") and os.path.exists(str(device.port))
    watcher = Watcher(discovery)
    try:
        assert {watcher.next()[1], watcher.next()[1]} == {d.serial for d in devices}
        first, second = devices
        sim.call("reboot", serial=first.serial, mode="bootloader")
        assert watcher.next() == ("removed", first.serial, "run", first.port)
        kind, serial, mode, _ = watcher.next()
        assert (kind, serial, mode) == ("added", first.serial, "bootloader")
        rebooted = discovery.find(first.serial)
        assert rebooted.path == first.path and rebooted.address != first.address and rebooted.fastboot
        sim.call("unplug", serial=second.serial)
        assert watcher.next() == ("removed", second.serial, "run", second.port)
    finally:
        watcher.close()
