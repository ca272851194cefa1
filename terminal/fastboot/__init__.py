"""The fastboot client: the standard bootloader protocol over USB bulk endpoints or TCP.

``open_fastboot("tcp:127.0.0.1:5554")`` or ``open_fastboot("usb:1-1.3")`` gives a FastbootClient;
the transports are chosen here, lazily, so importing the package touches no device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .client import FastbootClient, PacketTransport, Source
from .errors import (
    DownloadTooLarge,
    FastbootDisconnected,
    FastbootError,
    FastbootFailure,
    FastbootProtocolError,
    FastbootTimeout,
    InvalidFastbootTarget,
    WrongUnit,
)

__all__ = [
    "DownloadTooLarge",
    "FastbootClient",
    "FastbootDisconnected",
    "FastbootError",
    "FastbootFailure",
    "FastbootProtocolError",
    "FastbootTimeout",
    "InvalidFastbootTarget",
    "PacketTransport",
    "Source",
    "open_fastboot",
]


def open_fastboot(
    target: str,
    *,
    serial: str | None = None,
    on_info: Callable[[str], None] | None = None,
    usb_backend: Any = None,
    timeout: float = 10.0,
) -> FastbootClient:
    """A connected client for ``tcp:HOST[:PORT]`` or ``usb:PORT_PATH`` (``usb_backend``: a pyusb backend).

    With ``serial`` the bootloader's ``serialno`` must name that unit (WrongUnit otherwise); one that
    does not answer ``serialno`` cannot be checked and is taken at its address."""
    scheme, sep, rest = target.partition(":")
    if not sep or not rest:
        raise InvalidFastbootTarget(target=target)
    transport: PacketTransport
    if scheme == "tcp":
        from .tcp import FastbootTcpTransport

        transport = FastbootTcpTransport.open(target, timeout=timeout)
    elif scheme == "usb":
        from .usb import FastbootUsbTransport, find_usb_device

        transport = FastbootUsbTransport.open(find_usb_device(rest, usb_backend), target)
    else:
        raise InvalidFastbootTarget(target=target)
    client = FastbootClient(transport, on_info=on_info, timeout=timeout)
    if serial:  # None or empty: any unit at this address
        _check_serial(client, serial)
    return client


def _check_serial(client: FastbootClient, serial: str) -> None:
    """WrongUnit (the client closed) when the bootloader names another unit than ``serial``."""
    try:
        actual = client.getvar("serialno").strip()
    except FastbootFailure:
        return  # a bootloader that does not say cannot be checked
    except BaseException:
        client.close()
        raise
    if actual and actual != serial:
        client.close()
        raise WrongUnit(target=client.target, actual=actual, expected=serial)
