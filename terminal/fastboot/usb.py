"""Fastboot over USB: the interface of class FF, subclass 42, protocol 03 and its two bulk endpoints.

Real pyusb on a ``usb.core.Device`` (from the default backend, or the simulator's backend over
``bus.json``).  A command is one OUT transfer, followed by a zero-length packet when its length is a
multiple of the endpoint's packet size, since only a short packet ends a transfer on the device
side; download payload needs none because the device counts the bytes it was promised.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from dataclasses import dataclass
from typing import Any

from terminal.errors import TransportPermissionDenied

from .errors import (
    FastbootDisconnected,
    FastbootError,
    FastbootInterfaceNotFound,
    FastbootTimeout,
    FastbootUsbBackendMissing,
    FastbootUsbDeviceNotFound,
    InvalidFastbootTarget,
)
from .protocol import MAX_RESPONSE_LENGTH

LOG = logging.getLogger(__name__)
WIRE = LOG.getChild("wire")
WIRE.propagate = False

FASTBOOT_CLASS = (0xFF, 0x42, 0x03)
STREAM_CHUNK = 1 << 20
"""Bytes per OUT transfer during a download: a multiple of every USB packet size."""
WRITE_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class FastbootInterface:
    """Where fastboot lives on a USB device."""

    configuration: int
    interface: int
    alternate: int
    ep_in: int
    ep_out: int
    in_packet_size: int
    out_packet_size: int


def port_path(dev: Any) -> str:
    """The physical port path of a pyusb device (``1-1.3``), named as discovery names it."""
    from ..discovery import port_path as discovery_port_path

    return discovery_port_path(dev.bus, getattr(dev, "port_numbers", None), dev.address)


def find_fastboot_interface(dev: Any, target: str = "usb") -> FastbootInterface:
    """The first interface FF/42/03 of ``dev`` with a bulk IN and a bulk OUT endpoint."""
    import usb.util

    for cfg in dev:
        for intf in cfg:
            if (intf.bInterfaceClass, intf.bInterfaceSubClass, intf.bInterfaceProtocol) != FASTBOOT_CLASS:
                continue
            ep_in = ep_out = None
            for ep in intf:
                if usb.util.endpoint_type(ep.bmAttributes) != usb.util.ENDPOINT_TYPE_BULK:
                    continue
                if usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN:
                    ep_in = ep_in or ep
                else:
                    ep_out = ep_out or ep
            if ep_in is not None and ep_out is not None:
                return FastbootInterface(
                    configuration=cfg.bConfigurationValue,
                    interface=intf.bInterfaceNumber,
                    alternate=intf.bAlternateSetting,
                    ep_in=ep_in.bEndpointAddress,
                    ep_out=ep_out.bEndpointAddress,
                    in_packet_size=max(8, ep_in.wMaxPacketSize & 0x7FF),
                    out_packet_size=max(8, ep_out.wMaxPacketSize & 0x7FF),
                )
    raise FastbootInterfaceNotFound(target=target)


def find_usb_device(path: str, backend: Any = None) -> Any:
    """The attached USB device with a fastboot interface at port path ``path`` (or with that serial)."""
    import usb.core

    wanted = path.removeprefix("usb:")
    if not wanted:
        raise InvalidFastbootTarget(target=path)
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.NoBackendError as exc:
        raise FastbootUsbBackendMissing(target=path) from exc
    for dev in devices:
        if port_path(dev) == wanted:
            return dev
    for dev in devices:
        try:
            if dev.serial_number == wanted:
                return dev
        except (ValueError, usb.core.USBError):
            continue
    raise FastbootUsbDeviceNotFound(target=path)


class FastbootUsbTransport:
    """One fastboot session on a USB device: a claimed interface and its bulk endpoints."""

    stream_chunk_size = STREAM_CHUNK

    def __init__(self, dev: Any, target: str | None = None) -> None:
        self.dev = dev
        self.target = target or f"usb:{port_path(dev)}"
        self.interface: FastbootInterface | None = None

    @classmethod
    def open(cls, dev: Any, target: str | None = None) -> FastbootUsbTransport:
        transport = cls(dev, target)
        transport._claim()
        return transport

    def _claim(self) -> None:
        import usb.core
        import usb.util

        found = find_fastboot_interface(self.dev, self.target)
        try:
            try:
                active = self.dev.get_active_configuration()
            except usb.core.USBError:
                active = None
            if active is None or active.bConfigurationValue != found.configuration:
                self.dev.set_configuration(found.configuration)
            try:
                if self.dev.is_kernel_driver_active(found.interface):
                    self.dev.detach_kernel_driver(found.interface)
            except (NotImplementedError, usb.core.USBError):
                pass  # not Linux, or no driver bound: nothing to detach
            usb.util.claim_interface(self.dev, found.interface)
            if found.alternate:
                self.dev.set_interface_altsetting(found.interface, found.alternate)
        except usb.core.USBError as exc:
            raise self._translate(exc, "open") from exc
        self.interface = found
        LOG.debug("%s: fastboot interface %s", self.target, found)

    def _require(self) -> FastbootInterface:
        if self.interface is None:
            raise FastbootDisconnected(target=self.target)
        return self.interface

    def _translate(self, exc: Exception, what: str, timeout: float = 0.0) -> FastbootError | Exception:
        import usb.core

        if isinstance(exc, usb.core.USBTimeoutError):
            return FastbootTimeout(target=self.target, command=what, seconds=timeout)
        code = getattr(exc, "errno", None) or getattr(exc, "backend_error_code", None)
        if code in (errno.EACCES, errno.EPERM):
            return TransportPermissionDenied(path=self.target)
        return FastbootDisconnected(target=self.target)

    def _write(self, data: bytes | bytearray | memoryview, timeout_ms: int) -> None:
        import usb.core

        intf = self._require()
        try:
            written = self.dev.write(intf.ep_out, data, timeout_ms)
        except usb.core.USBError as exc:
            raise self._translate(exc, "write", timeout_ms / 1000) from exc
        if written != len(data):
            raise FastbootDisconnected(target=self.target)

    def send(self, packet: bytes) -> None:
        intf = self._require()
        WIRE.debug("> %r", packet[:64])
        self._write(packet, WRITE_TIMEOUT_MS)
        if packet and len(packet) % intf.out_packet_size == 0:
            self._write(b"", WRITE_TIMEOUT_MS)

    def send_stream(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        for offset in range(0, len(view), STREAM_CHUNK):
            self._write(view[offset : offset + STREAM_CHUNK], WRITE_TIMEOUT_MS)

    def recv(self, timeout: float) -> bytes:
        """One IN transfer: a whole response (at most 256 bytes, as the AOSP host reads it)."""
        import usb.core

        intf = self._require()
        packet = intf.in_packet_size
        size = -(-MAX_RESPONSE_LENGTH // packet) * packet
        try:
            data = self.dev.read(intf.ep_in, size, max(1, int(timeout * 1000)))
        except usb.core.USBError as exc:
            raise self._translate(exc, "read", timeout) from exc
        WIRE.debug("< %r", bytes(data))
        return bytes(data)

    def close(self) -> None:
        intf, self.interface = self.interface, None
        if intf is None:
            return
        import usb.core
        import usb.util

        with contextlib.suppress(usb.core.USBError):  # gone already (it rebooted): nothing to release
            usb.util.release_interface(self.dev, intf.interface)
        usb.util.dispose_resources(self.dev)
