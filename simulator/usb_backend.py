"""A pyusb backend that presents the units of a simulator's ``bus.json`` as USB devices.

``read_bus`` is the one reader of ``bus.json`` (``simulator/bus.py`` writes it): this backend and the
port locator in ``simulator/locator.py`` both read it.

The station's real USB code (discovery, the fastboot-over-USB client) runs unchanged on it: the
descriptors are those a real unit reports, and the bootloader's bulk endpoints are carried over the
unit's ``bulk_socket`` (each transfer a 4-byte big-endian length and that many bytes).  Errors are
``usb.core.USBError`` with the errno libusb would give, so callers handle one set of errors.
"""

from __future__ import annotations

import array
import errno
import functools
import json
import logging
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import usb.backend
import usb.core
import usb.util

LOG = logging.getLogger(__name__)

BUS_FILE = "bus.json"
BUS_VERSION = 1
LANGID_EN_US = 0x0409
MAX_PACKET = 512
_HEADER = struct.Struct(">I")
_RECV_CHUNK = 1 << 20

# String descriptor indices (index 0 is the language table).
STR_MANUFACTURER, STR_PRODUCT, STR_SERIAL, STR_FASTBOOT = 1, 2, 3, 4

# bRequest / descriptor types of the standard requests the backend answers (USB 2.0, 9.4).
_GET_STATUS, _GET_DESCRIPTOR, _GET_CONFIGURATION, _SET_CONFIGURATION = 0x00, 0x06, 0x08, 0x09
_DT_DEVICE, _DT_CONFIG, _DT_STRING, _DT_INTERFACE, _DT_ENDPOINT = 1, 2, 3, 4, 5


class SimBusError(usb.core.USBError):  # type: ignore[misc]
    """``bus.json`` exists but cannot be read as a simulated bus."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"invalid simulated bus {path}: {detail}", None, errno.EIO)


def _usb_error(code: int, text: str) -> usb.core.USBError:
    if code == errno.ETIMEDOUT:
        return usb.core.USBTimeoutError(text, None, code)
    return usb.core.USBError(text, None, code)


# --------------------------------------------------------------------------- descriptors
# Named tuples rather than frozen dataclasses: the same immutable values, built at import several
# times faster, and every ``naiad`` command on a simulator imports this module.


class EndpointDescriptor(NamedTuple):
    bEndpointAddress: int
    bmAttributes: int
    wMaxPacketSize: int
    bInterval: int = 0
    bLength: int = 7
    bDescriptorType: int = _DT_ENDPOINT
    bRefresh: int = 0
    bSynchAddress: int = 0
    extra_descriptors: tuple[int, ...] = ()

    def pack(self) -> bytes:
        return struct.pack(
            "<BBBBHB",
            self.bLength,
            self.bDescriptorType,
            self.bEndpointAddress,
            self.bmAttributes,
            self.wMaxPacketSize,
            self.bInterval,
        )


class InterfaceDescriptor(NamedTuple):
    bInterfaceNumber: int
    bInterfaceClass: int
    bInterfaceSubClass: int
    bInterfaceProtocol: int
    endpoints: tuple[EndpointDescriptor, ...]
    iInterface: int = 0
    extra_descriptors: tuple[int, ...] = ()
    bAlternateSetting: int = 0
    bLength: int = 9
    bDescriptorType: int = _DT_INTERFACE

    @property
    def bNumEndpoints(self) -> int:
        return len(self.endpoints)

    def pack(self) -> bytes:
        head = struct.pack(
            "<9B",
            self.bLength,
            self.bDescriptorType,
            self.bInterfaceNumber,
            self.bAlternateSetting,
            self.bNumEndpoints,
            self.bInterfaceClass,
            self.bInterfaceSubClass,
            self.bInterfaceProtocol,
            self.iInterface,
        )
        return head + bytes(self.extra_descriptors) + b"".join(e.pack() for e in self.endpoints)


class ConfigurationDescriptor(NamedTuple):
    interfaces: tuple[InterfaceDescriptor, ...]
    extra_descriptors: tuple[int, ...] = ()
    bConfigurationValue: int = 1
    iConfiguration: int = 0
    bmAttributes: int = 0x80  # bus powered
    bMaxPower: int = 250  # 500 mA in 2 mA units
    bLength: int = 9
    bDescriptorType: int = _DT_CONFIG

    @property
    def bNumInterfaces(self) -> int:
        return len(self.interfaces)

    @property
    def wTotalLength(self) -> int:
        return len(self._body()) + self.bLength

    def _body(self) -> bytes:
        return bytes(self.extra_descriptors) + b"".join(i.pack() for i in self.interfaces)

    def pack(self) -> bytes:
        body = self._body()
        head = struct.pack(
            "<BBHBBBBB",
            self.bLength,
            self.bDescriptorType,
            len(body) + self.bLength,
            self.bNumInterfaces,
            self.bConfigurationValue,
            self.iConfiguration,
            self.bmAttributes,
            self.bMaxPower,
        )
        return head + body


@functools.cache
def _run_configuration() -> ConfigurationDescriptor:
    """A composite CDC-ACM function: an interface association, the comm and the data interface."""
    iad = (8, 0x0B, 0, 2, 0x02, 0x02, 0x01, 0)
    cdc_functional = (
        5,
        0x24,
        0x00,
        0x10,
        0x01,  # header, CDC 1.10
        5,
        0x24,
        0x01,
        0x00,
        0x01,  # call management, data interface 1
        4,
        0x24,
        0x02,
        0x02,  # abstract control management: line coding and serial state
        5,
        0x24,
        0x06,
        0x00,
        0x01,  # union: comm 0, data 1
    )
    comm = InterfaceDescriptor(
        0, 0x02, 0x02, 0x01, (EndpointDescriptor(0x82, 0x03, 16, 16),), extra_descriptors=cdc_functional
    )
    data = InterfaceDescriptor(
        1, 0x0A, 0x00, 0x00, (EndpointDescriptor(0x01, 0x02, MAX_PACKET), EndpointDescriptor(0x81, 0x02, MAX_PACKET))
    )
    return ConfigurationDescriptor((comm, data), extra_descriptors=iad)


@functools.cache
def _bootloader_configuration() -> ConfigurationDescriptor:
    """One vendor interface, class FF subclass 42 protocol 03: the standard fastboot interface."""
    fastboot = InterfaceDescriptor(
        0,
        0xFF,
        0x42,
        0x03,
        (EndpointDescriptor(0x81, 0x02, MAX_PACKET), EndpointDescriptor(0x01, 0x02, MAX_PACKET)),
        iInterface=STR_FASTBOOT,
    )
    return ConfigurationDescriptor((fastboot,))


class DeviceDescriptor(NamedTuple):
    idVendor: int
    idProduct: int
    bDeviceClass: int
    bDeviceSubClass: int
    bDeviceProtocol: int
    bus: int
    address: int
    port_numbers: tuple[int, ...]
    bLength: int = 18
    bDescriptorType: int = _DT_DEVICE
    bcdUSB: int = 0x0200
    bMaxPacketSize0: int = 64
    bcdDevice: int = 0x0100
    iManufacturer: int = STR_MANUFACTURER
    iProduct: int = STR_PRODUCT
    iSerialNumber: int = STR_SERIAL
    bNumConfigurations: int = 1
    speed: int = usb.util.SPEED_HIGH

    @property
    def port_number(self) -> int | None:
        return self.port_numbers[-1] if self.port_numbers else None

    def pack(self) -> bytes:
        return struct.pack(
            "<BBHBBBBHHHBBBB",
            self.bLength,
            self.bDescriptorType,
            self.bcdUSB,
            self.bDeviceClass,
            self.bDeviceSubClass,
            self.bDeviceProtocol,
            self.bMaxPacketSize0,
            self.idVendor,
            self.idProduct,
            self.bcdDevice,
            self.iManufacturer,
            self.iProduct,
            self.iSerialNumber,
            self.bNumConfigurations,
        )


# --------------------------------------------------------------------------- the bus


@dataclass(frozen=True)
class SimDevice:
    """One unit as ``bus.json`` listed it when the bus was enumerated (pyusb's opaque device id)."""

    bus: int
    address: int
    port_numbers: tuple[int, ...]
    vid: int
    pid: int
    serial: str
    manufacturer: str
    product: str
    mode: str
    bulk_socket: str | None
    descriptor: DeviceDescriptor = field(compare=False)
    configuration: ConfigurationDescriptor = field(compare=False)
    tty: str | None = field(default=None, compare=False)  # run mode: the unit's serial port
    fastboot_tcp_port: int | None = field(default=None, compare=False)  # bootloader: its fastboot-TCP port

    def string(self, index: int) -> str | None:
        names = {STR_MANUFACTURER: self.manufacturer, STR_PRODUCT: self.product, STR_SERIAL: self.serial}
        if self.mode == "bootloader":
            names[STR_FASTBOOT] = "fastboot"
        return names.get(index)


def _parse_entry(entry: Any) -> SimDevice:
    if not isinstance(entry, dict):
        raise TypeError("a device entry is not an object")
    mode = entry["mode"]
    if mode not in ("run", "bootloader"):
        raise ValueError(f"unknown mode {mode!r}")
    ports = tuple(int(p) for p in entry["port_numbers"])
    bus, address, vid, pid = (int(entry[k]) for k in ("bus", "address", "vid", "pid"))
    run = mode == "run"
    descriptor = DeviceDescriptor(
        vid, pid, 0xEF if run else 0x00, 0x02 if run else 0x00, 0x01 if run else 0x00, bus, address, ports
    )
    sock, tty, tcp = entry.get("bulk_socket"), entry.get("tty"), entry.get("fastboot_tcp_port")
    return SimDevice(
        bus,
        address,
        ports,
        vid,
        pid,
        str(entry["serial"]),
        str(entry.get("manufacturer", "")),
        str(entry.get("product", "")),
        mode,
        str(sock) if sock else None,
        descriptor,
        _run_configuration() if run else _bootloader_configuration(),
        str(tty) if tty else None,
        int(tcp) if tcp else None,
    )


def read_bus(sim_dir: Path) -> list[SimDevice]:
    """The units on the simulated bus now; no ``bus.json`` yet is an empty bus."""
    path = sim_dir / BUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise SimBusError(path, str(exc)) from exc
    if not isinstance(data, dict) or data.get("version") != BUS_VERSION:
        raise SimBusError(path, f"expected an object with version {BUS_VERSION}")
    try:
        return [_parse_entry(e) for e in data["devices"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise SimBusError(path, f"bad device entry: {exc!r}") from exc


# --------------------------------------------------------------------------- handles and transfers


class _Handle:
    """An open device: its claimed interfaces and the bulk connection of a bootloader unit."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.configuration = device.configuration.bConfigurationValue
        self.claimed: set[int] = set()
        self.sock: socket.socket | None = None
        self.rx = bytearray()
        self.pending_in = b""
        self.read_lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.connect_lock = threading.Lock()
        self.open = True

    def disconnect(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        self.rx.clear()
        self.pending_in = b""


def _deadline(timeout_ms: int) -> float | None:
    return None if timeout_ms <= 0 else time.monotonic() + timeout_ms / 1000.0


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


_claims_lock = threading.Lock()
_claims: dict[tuple[str, str, int, int, int], _Handle] = {}  # (sim dir, serial, bus, address, intf)


class SimUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    """The pyusb backend of one simulator state directory."""

    def __init__(self, sim_dir: Path) -> None:
        self.sim_dir = sim_dir

    def __repr__(self) -> str:
        return f"<SimUsbBackend {self.sim_dir}>"

    # -- enumeration and descriptors
    def enumerate_devices(self) -> list[SimDevice]:
        return read_bus(self.sim_dir)

    def get_parent(self, dev: SimDevice) -> None:
        return None  # hubs are not modelled; the port path carries the topology

    def get_device_descriptor(self, dev: SimDevice) -> DeviceDescriptor:
        return dev.descriptor

    def get_configuration_descriptor(self, dev: SimDevice, config: int) -> ConfigurationDescriptor:
        if config != 0:
            raise usb.core.USBError(f"no configuration {config}", None, errno.ENOENT)
        return dev.configuration

    def get_interface_descriptor(self, dev: SimDevice, intf: int, alt: int, config: int) -> InterfaceDescriptor:
        interfaces = self.get_configuration_descriptor(dev, config).interfaces
        if alt != 0 or not 0 <= intf < len(interfaces):
            raise usb.core.USBError(f"no interface {intf},{alt}", None, errno.ENOENT)
        return interfaces[intf]

    def get_endpoint_descriptor(self, dev: SimDevice, ep: int, intf: int, alt: int, config: int) -> EndpointDescriptor:
        endpoints = self.get_interface_descriptor(dev, intf, alt, config).endpoints
        if not 0 <= ep < len(endpoints):
            raise usb.core.USBError(f"no endpoint {ep}", None, errno.ENOENT)
        return endpoints[ep]

    # -- presence, open and close
    def _present(self, dev: SimDevice) -> bool:
        try:
            return dev in read_bus(self.sim_dir)
        except SimBusError:
            return False

    def _require(self, handle: _Handle) -> _Handle:
        if not handle.open or not self._present(handle.device):
            raise _usb_error(errno.ENODEV, "No such device (it may have been disconnected)")
        return handle

    def open_device(self, dev: SimDevice) -> _Handle:
        return self._require(_Handle(dev))

    def close_device(self, dev_handle: _Handle) -> None:
        for intf in list(dev_handle.claimed):
            self._release(dev_handle, intf)
        dev_handle.disconnect()
        dev_handle.open = False

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        self._require(dev_handle)
        if config_value not in (0, dev_handle.device.configuration.bConfigurationValue):
            raise usb.core.USBError(f"no configuration {config_value}", None, errno.ENOENT)
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        self._require(dev_handle)
        return dev_handle.configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        self._interface(dev_handle, intf)
        if altsetting != 0:
            raise usb.core.USBError(f"no alternate setting {altsetting}", None, errno.ENOENT)

    def _interface(self, handle: _Handle, intf: int, check_present: bool = True) -> InterfaceDescriptor:
        if check_present:
            self._require(handle)
        for interface in handle.device.configuration.interfaces:
            if interface.bInterfaceNumber == intf:
                return interface
        raise usb.core.USBError(f"no interface {intf}", None, errno.ENOENT)

    # -- interfaces: the run mode's CDC-ACM function belongs to the kernel's cdc_acm driver
    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        self._interface(dev_handle, intf)
        return dev_handle.device.mode == "run"

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        self._interface(dev_handle, intf)
        if dev_handle.device.mode == "run":
            raise NotImplementedError("the simulated CDC-ACM function is reached through its tty")
        raise usb.core.USBError("no kernel driver is attached", None, errno.ENOENT)

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        self._interface(dev_handle, intf)
        if dev_handle.device.mode == "run":
            raise usb.core.USBError("Resource busy (cdc_acm is attached)", None, errno.EBUSY)
        raise usb.core.USBError("no kernel driver for the fastboot interface", None, errno.ENOENT)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        self._interface(dev_handle, intf)
        if dev_handle.device.mode == "run":
            raise usb.core.USBError("Resource busy (cdc_acm owns the interface)", None, errno.EBUSY)
        key = (str(self.sim_dir), *self._identity(dev_handle), intf)
        with _claims_lock:
            owner = _claims.get(key)
            if owner is not None and owner is not dev_handle:
                raise usb.core.USBError("Resource busy (claimed by another handle)", None, errno.EBUSY)
            _claims[key] = dev_handle
        dev_handle.claimed.add(intf)

    @staticmethod
    def _identity(handle: _Handle) -> tuple[str, int, int]:
        return handle.device.serial, handle.device.bus, handle.device.address

    def _release(self, handle: _Handle, intf: int) -> None:
        key = (str(self.sim_dir), *self._identity(handle), intf)
        with _claims_lock:
            if _claims.get(key) is handle:
                del _claims[key]
        handle.claimed.discard(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        self._release(dev_handle, intf)

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        self._require(dev_handle)  # simulated bulk endpoints never stall

    def reset_device(self, dev_handle: _Handle) -> None:
        self._require(dev_handle)
        for intf in list(dev_handle.claimed):
            self._release(dev_handle, intf)
        dev_handle.disconnect()

    # -- control transfers: the standard requests a host sends to any device
    def ctrl_transfer(
        self,
        dev_handle: _Handle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array[int],
        timeout: int,
    ) -> int:
        handle = self._require(dev_handle)
        if bmRequestType & 0x60 == 0 and bmRequestType & 0x80:
            reply = self._standard_in(handle, bmRequestType & 0x1F, bRequest, wValue, wIndex)
            size = min(len(reply), len(data) * data.itemsize)
            memoryview(data).cast("B")[:size] = reply[:size]
            return size
        if bmRequestType == 0x00 and bRequest == _SET_CONFIGURATION:
            self.set_configuration(handle, wValue & 0xFF)
            return 0
        raise usb.core.USBError("Pipe error (request not supported)", None, errno.EPIPE)

    def _standard_in(self, handle: _Handle, recipient: int, request: int, value: int, index: int) -> bytes:
        dev = handle.device
        if request == _GET_STATUS:
            return b"\x00\x00"
        if request == _GET_CONFIGURATION and recipient == 0:
            return bytes([handle.configuration])
        if request == _GET_DESCRIPTOR and recipient == 0:
            kind, number = value >> 8, value & 0xFF
            if kind == _DT_DEVICE:
                return dev.descriptor.pack()
            if kind == _DT_CONFIG and number == 0:
                return dev.configuration.pack()
            if kind == _DT_STRING:
                if number == 0:
                    return bytes([4, _DT_STRING]) + struct.pack("<H", LANGID_EN_US)
                text = dev.string(number)
                if text is not None and index == LANGID_EN_US:
                    encoded = text.encode("utf-16-le")[:252]
                    return bytes([len(encoded) + 2, _DT_STRING]) + encoded
        raise usb.core.USBError("Pipe error (request stalled)", None, errno.EPIPE)

    # -- bulk transfers over the unit's socket
    def _bulk_endpoint(self, handle: _Handle, ep: int, intf: int, direction: int) -> None:
        if intf not in handle.claimed:
            raise usb.core.USBError(f"interface {intf} is not claimed", None, errno.EINVAL)
        endpoints = self._interface(handle, intf, check_present=False).endpoints  # the socket tells
        if not any(e.bEndpointAddress == ep and e.bmAttributes & 0x03 == 0x02 for e in endpoints) or (
            ep & 0x80 != direction
        ):
            raise usb.core.USBError(
                f"endpoint {ep:#04x} is not a bulk {'IN' if direction else 'OUT'}", None, errno.EINVAL
            )

    def _connection(self, handle: _Handle) -> socket.socket:
        with handle.connect_lock:  # a reader and a writer thread may both come first
            if handle.sock is not None:
                return handle.sock
            handle.sock = self._connect(handle)
            return handle.sock

    @staticmethod
    def _connect(handle: _Handle) -> socket.socket:
        path = handle.device.bulk_socket
        if not handle.open or path is None:
            raise _usb_error(errno.ENODEV, "No such device (the unit offers no USB bulk link)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise _usb_error(errno.ENODEV, f"No such device ({exc.strerror})") from exc
        sock.setblocking(False)
        return sock

    def _gone(self, handle: _Handle, why: str) -> usb.core.USBError:
        handle.disconnect()
        return _usb_error(errno.ENODEV, f"No such device ({why})")

    def bulk_write(self, dev_handle: _Handle, ep: int, intf: int, data: array.array[int], timeout: int) -> int:
        self._bulk_endpoint(dev_handle, ep, intf, usb.util.ENDPOINT_OUT)
        payload = memoryview(data).cast("B")
        frame = memoryview(_HEADER.pack(len(payload)) + payload)
        deadline = _deadline(timeout)
        with dev_handle.write_lock:
            sock = self._connection(dev_handle)
            sent = 0
            while sent < len(frame):
                try:
                    sent += sock.send(frame[sent:])
                    continue
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise self._gone(dev_handle, str(exc)) from exc
                _, writable, _ = select.select([], [sock], [], _remaining(deadline))
                if not writable:
                    if sent:  # half a frame is on the wire: the stream can no longer be framed
                        raise self._gone(dev_handle, "bulk OUT timed out mid-transfer")
                    raise _usb_error(errno.ETIMEDOUT, "Operation timed out")
        return len(payload)

    def bulk_read(self, dev_handle: _Handle, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
        self._bulk_endpoint(dev_handle, ep, intf, usb.util.ENDPOINT_IN)
        room = len(buff) * buff.itemsize
        with dev_handle.read_lock:
            transfer = dev_handle.pending_in or self._receive(dev_handle, _deadline(timeout))
            dev_handle.pending_in = b""
            if len(transfer) > room:
                if room % MAX_PACKET:  # a packet would not fit: libusb reports an overflow
                    raise usb.core.USBError("Overflow", None, errno.EOVERFLOW)
                transfer, dev_handle.pending_in = transfer[:room], transfer[room:]
            memoryview(buff).cast("B")[: len(transfer)] = transfer
            return len(transfer)

    def _receive(self, handle: _Handle, deadline: float | None) -> bytes:
        """One whole IN transfer from the socket; a partial one stays buffered across a timeout."""
        sock = self._connection(handle)
        rx = handle.rx
        while True:
            if len(rx) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(rx)
                if len(rx) >= _HEADER.size + length:
                    transfer = bytes(rx[_HEADER.size : _HEADER.size + length])
                    del rx[: _HEADER.size + length]
                    return transfer
            readable, _, _ = select.select([sock], [], [], _remaining(deadline))
            if not readable:
                raise _usb_error(errno.ETIMEDOUT, "Operation timed out")
            try:
                chunk = sock.recv(_RECV_CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._gone(handle, str(exc)) from exc
            if not chunk:
                raise self._gone(handle, "the unit closed its bulk endpoints")
            rx += chunk


def get_backend(sim_dir: str | os.PathLike[str]) -> SimUsbBackend:
    """The backend of the simulator whose state directory is ``sim_dir`` (FileNotFoundError if none)."""
    path = Path(sim_dir)
    if not path.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no simulator state directory", str(path))
    return SimUsbBackend(path)
