"""The simulated USB bus: ``bus.json`` in the state directory, read by the simulator's pyusb backend.

Every unit sits on a fixed hub port, so its physical path (``1-1.3``) survives replugs and mode
changes, while its address changes with each enumeration, as on a real bus.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

from terminal.models import BOOTLOADER, RUN
from terminal.ports import port_path

from .state import write_json_atomically
from .unit import VirtualTerminal
from .usb_backend import BUS_FILE, BUS_VERSION

BUS = 1
HUB_PORTS = 7


def port_numbers(index: int) -> tuple[int, int]:
    """Root port and hub port of the unit at ``index``: seven units a hub."""
    return index // HUB_PORTS + 1, index % HUB_PORTS + 1


class VirtualBus:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / BUS_FILE
        self._addresses = itertools.cycle(range(2, 128))
        self._enumerated: dict[str, tuple[str, str | None, int]] = {}
        self._lock = threading.Lock()

    def publish(self, units: list[VirtualTerminal]) -> None:
        """Rewrite bus.json from the units' present state."""
        with self._lock:
            devices = [self._entry(u) for u in units if u.present]
            write_json_atomically(self.path, {"version": BUS_VERSION, "devices": devices})

    def _entry(self, unit: VirtualTerminal) -> dict[str, Any]:
        tty = unit.link.path if unit.link else None
        seen = self._enumerated.get(unit.serial)
        if seen is None or seen[:2] != (unit.mode, tty):  # a new enumeration
            seen = (unit.mode, tty, next(self._addresses))
            self._enumerated[unit.serial] = seen
        numbers = port_numbers(unit.index)
        usb = unit.model.usb_id(unit.mode)
        fastboot = unit.fastboot if unit.mode == BOOTLOADER else None
        return {
            "bus": BUS,
            "address": seen[2],
            "port_path": port_path(BUS, numbers, seen[2]),
            "port_numbers": list(numbers),
            "vid": usb.vid,
            "pid": usb.pid,
            "serial": unit.serial,
            "manufacturer": unit.model.vendor,
            "product": unit.model.name,
            "mode": unit.mode,
            "tty": tty if unit.mode == RUN else None,
            "fastboot_tcp_port": fastboot.tcp_port if fastboot else None,
            "bulk_socket": fastboot.bulk_socket if fastboot else None,
        }
