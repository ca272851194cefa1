"""Where a unit is: its physical port path, what USB says about it, and where it answers besides USB.

The vocabulary shared by discovery (which asks a port locator) and whatever locates ports for it: the
host's serial-port list for real hardware, or any other bus a composition root plugs in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

# Immutable values as named tuples: cheaper to define than frozen dataclasses, and every command imports them.


class UsbUnit(NamedTuple):
    """What USB alone says about a unit: the input of a port locator."""

    serial: str
    path: str
    vid: int
    pid: int
    mode: str


class Endpoints(NamedTuple):
    """Where a unit answers besides USB: its serial port (run mode), its fastboot target (bootloader)."""

    serial_port: str | None = None
    fastboot: str | None = None


class PortLocator(Protocol):
    def locate(self, units: Sequence[UsbUnit]) -> dict[str, Endpoints]:
        """The endpoints of each unit that has any, keyed by the unit's port path."""


def port_path(bus: int, port_numbers: Sequence[int] | None, address: int) -> str:
    """The physical port path (``1-4.2``) that names a hub port; ``1-@7`` if the backend has no ports."""
    if not port_numbers:
        return f"{bus}-@{address}"
    return f"{bus}-{'.'.join(str(p) for p in port_numbers)}"
