"""The station: the bench of attached units, connections to them, and the ledger that records it all.

The CLI and the console both go through a Station, so what one can do the other can too.  The station
is handed a ready discovery (real USB or a simulator, chosen by the composition root in ``console/``);
the ledger and the management client load on first use, so a command that needs neither starts fast.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from i18n import N_
from terminal.discovery import Device, Discovery
from terminal.errors import DeviceNotFound, NaiadError
from terminal.models import BOOTLOADER, RUN

if TYPE_CHECKING:
    from terminal.client import ManagementClient
    from terminal.events import ProgressCallback
    from terminal.fastboot import FastbootClient

    from .ledger import Ledger

LOG = logging.getLogger(__name__)
REENUMERATION_TIMEOUT = 30.0


class UnitDidNotReturn(NaiadError):
    message = N_("Unit {serial} did not come back in {mode} mode within {seconds} s")
    remedy = N_("Check the unit's screen and cable; power-cycle it if it stays dark, then run 'naiad devices'.")


class WrongMode(NaiadError):
    message = N_("Unit {serial} is in {mode} mode; this needs {needed} mode")
    remedy = N_("Run 'naiad reboot {serial} --mode {needed}' first.")


class Station:
    """One bench: the discovery it is handed, and a ledger (opened on first use)."""

    def __init__(self, discovery: Discovery, ledger_url: str | None = None, *, ledger: Ledger | None = None) -> None:
        self.discovery = discovery
        self._ledger_url = ledger_url
        self._ledger = ledger
        self._acting: Ledger | None = None
        self._lock = threading.Lock()

    @property
    def ledger(self) -> Ledger:
        """The ledger, writing as the operator given to :meth:`act_as` (nobody until then)."""
        with self._lock:
            if self._ledger is None:
                from .ledger import Ledger

                self._ledger = Ledger.open(self._ledger_url)
            return self._acting or self._ledger

    def act_as(self, operator: str) -> None:
        """From now on the ledger's operations and audit entries name ``operator`` (already authenticated)."""
        base = self.ledger
        with self._lock:
            self._acting = base.as_operator(operator)

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
            self._acting = None

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the bench -----------------------------------------------------------------------------------
    def devices(self) -> list[Device]:
        """The attached units; each is recorded in the ledger as seen."""
        devices = self.discovery.devices()
        for device in devices:
            self.record_seen(device)
        return devices

    def record_seen(self, device: Device) -> None:
        if device.serial:
            self.ledger.device_seen(device.serial, device.model, device.path)

    def find(self, serial: str) -> Device:
        device = self.discovery.find(serial)
        self.record_seen(device)
        return device

    def wait_for(
        self, serial: str, mode: str, timeout: float = REENUMERATION_TIMEOUT, *, unless_back_in: str | None = None
    ) -> Device:
        """The unit once it enumerates in ``mode`` (after a reboot or a replug).

        With ``unless_back_in``, also the unit once it has gone and come back in that mode instead (power
        cut during a reboot): the caller tells the two apart by the device's mode, instead of waiting out
        ``timeout`` for a unit that is already back."""
        deadline = time.monotonic() + timeout
        gone = False
        while True:
            try:
                device = self.discovery.find(serial)
                if _usable_in(device, mode) or (gone and unless_back_in and _usable_in(device, unless_back_in)):
                    self.record_seen(device)
                    return device
            except DeviceNotFound:
                gone = True
            if time.monotonic() >= deadline:
                raise UnitDidNotReturn(serial=serial, mode=mode, seconds=int(timeout))
            time.sleep(0.1)

    # -- run mode --------------------------------------------------------------------------------------
    @contextmanager
    def connect(self, serial: str) -> Iterator[ManagementClient]:
        """A management session with a run-mode unit."""
        from terminal.client import ManagementClient

        device = self.find(serial)
        if device.mode != RUN or not device.port:
            raise WrongMode(serial=serial, mode=device.mode, needed=RUN)
        with ManagementClient(f"serial:{device.port}", expected_serial=serial) as client:
            yield client

    def info(self, serial: str) -> dict[str, Any]:
        with self.connect(serial) as client:
            return client.info()

    def logs(self, serial: str, progress: ProgressCallback | None = None) -> str:
        with self.connect(serial) as client:
            return client.logs(progress)

    # -- bootloader mode -------------------------------------------------------------------------------
    def open_fastboot(
        self, device: Device, on_info: Callable[[str], None] | None = None, timeout: float = 10.0
    ) -> FastbootClient:
        """A fastboot session with a unit in bootloader mode, checked to be that unit by its serialno."""
        return open_device_fastboot(self.discovery, device, on_info=on_info, timeout=timeout)

    def reboot(
        self, serial: str, mode: str, *, wait: bool = True, on_info: Callable[[str], None] | None = None
    ) -> Device | None:
        """Reboot a unit into ``mode``; with ``wait``, return it once it is back in that mode."""
        if mode not in (RUN, BOOTLOADER):
            raise ValueError(mode)
        device = self.find(serial)
        with self.ledger.operation(serial, "reboot") as op:
            if device.mode == RUN:
                with self.connect(serial) as client:
                    client.reboot(mode)
            else:
                with self.open_fastboot(device, on_info) as fastboot:
                    if mode == RUN:
                        fastboot.reboot()
                    else:
                        fastboot.reboot_bootloader()
            back = self.wait_for(serial, mode) if wait else None
            op.result = {"from": device.mode, "to": mode, "path": back.path if back else None}
        return back


def open_device_fastboot(
    discovery: Discovery, device: Device, *, on_info: Callable[[str], None] | None = None, timeout: float = 10.0
) -> FastbootClient:
    """A fastboot session with ``device`` as ``discovery`` found it (over that bus's USB or fastboot TCP).

    Needs no station and no ledger, so ``naiad fastboot SERIAL getvar`` opens no database (see
    ``console/cli_fastboot.py`` for why a query records nothing).
    """
    if device.mode != BOOTLOADER or not device.fastboot:
        from terminal.fastboot.errors import NotInBootloader

        raise NotInBootloader(serial=device.serial, mode=device.mode)
    from terminal.fastboot import open_fastboot

    backend = discovery.backend() if device.fastboot.startswith("usb:") else None
    return open_fastboot(device.fastboot, serial=device.serial, on_info=on_info, usb_backend=backend, timeout=timeout)


def _usable_in(device: Device, mode: str) -> bool:
    """The device is enumerated in ``mode`` (with its serial port, for run mode)."""
    return device.mode == mode and (mode != RUN or bool(device.port))
