"""Where the simulator's units answer besides USB, and the pieces a discovery needs to list them.

``bus.json`` (written by ``simulator/bus.py``) is read by ``read_bus`` alone: the pyusb backend presents
its units as USB devices, and ``SimPortLocator`` gives each its pty (run mode) and fastboot-TCP port
(bootloader), as pyserial's port list does for real hardware.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from i18n import N_
from terminal.errors import NaiadError
from terminal.ports import Endpoints, UsbUnit, port_path

from .usb_backend import SimBusError, SimUsbBackend, get_backend, read_bus

LOG = logging.getLogger(__name__)


class SimulatorNotFound(NaiadError):
    message = N_("No simulator state directory at {path}")
    remedy = N_("Start one with 'naiad sim start --state DIR', or unset NAIAD_SIM to use real USB.")


class SimPortLocator:
    """The ``tty`` and ``fastboot_tcp_port`` the simulator's ``bus.json`` lists for each unit."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)

    def locate(self, units: Sequence[UsbUnit]) -> dict[str, Endpoints]:
        try:
            listed = read_bus(self.state_dir)
        except SimBusError:
            LOG.debug("cannot read the bus of %s", self.state_dir, exc_info=True)
            return {}
        wanted = {(u.path, u.serial, u.mode) for u in units}
        found: dict[str, Endpoints] = {}
        for dev in listed:
            path = port_path(dev.bus, dev.port_numbers, dev.address)
            if (path, dev.serial, dev.mode) in wanted:
                tcp = f"tcp:127.0.0.1:{dev.fastboot_tcp_port}" if dev.fastboot_tcp_port else None
                found[path] = Endpoints(serial_port=dev.tty, fastboot=tcp)
        return found


def usb_bus(state_dir: str | os.PathLike[str]) -> tuple[Callable[[], SimUsbBackend], SimPortLocator]:
    """The backend factory and port locator of the simulator in ``state_dir``: ``Discovery(*usb_bus(DIR))``.

    The backend is made on first use; SimulatorNotFound then if ``state_dir`` is not a directory.
    """
    path = Path(state_dir)

    def backend() -> SimUsbBackend:
        try:
            return get_backend(path)
        except FileNotFoundError as exc:
            raise SimulatorNotFound(path=str(path)) from exc

    return backend, SimPortLocator(path)
