"""Helpers several test modules share (tests/ is on sys.path, as for pg.py)."""

from __future__ import annotations

import functools
import importlib.util
import json
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import create_engine, text

from terminal.discovery import Device
from terminal.events import Event, Recorder
from terminal.models import model_by_id

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def demo_tool() -> ModuleType:
    """tools/make_demo_bundle.py, which is a script rather than a package module."""
    name = "naiad_tools_make_demo_bundle"
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "make_demo_bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


class Tap(Recorder):
    """Records every event and hands it to ``hook`` as it comes, on the step's worker thread."""

    def __init__(self, hook: Callable[[Event], None]) -> None:
        super().__init__()
        self.hook = hook

    def _add(self, event: Event) -> None:
        super()._add(event)
        self.hook(event)


def sparse_image(blk: int, chunks: list[tuple[str, bytes, int]]) -> bytes:
    """An Android sparse image from (kind, data, blocks): "raw" data, a "fill" word, a "skip", else a CRC chunk."""
    body, total = b"", 0
    for kind, data, blocks in chunks:
        if kind == "raw":
            body += struct.pack("<HHII", 0xCAC1, 0, len(data) // blk, 12 + len(data)) + data
            total += len(data) // blk
        elif kind == "fill":
            body += struct.pack("<HHII", 0xCAC2, 0, blocks, 16) + data
            total += blocks
        elif kind == "skip":
            body += struct.pack("<HHII", 0xCAC3, 0, blocks, 12)
            total += blocks
        else:
            body += struct.pack("<HHII", 0xCAC4, 0, 0, 16) + b"\0\0\0\0"
    return struct.pack("<IHHHHIIII", 0xED26FF3A, 1, 0, 28, 12, blk, total, len(chunks), 0) + body


def write_bootloader_bus(
    sim_dir: Path,
    serial: str = "DF2A00001",
    *,
    address: int = 9,
    tcp_port: int | None = None,
    bulk_socket: str | Path | None = None,
) -> dict[str, object]:
    """A simulator ``bus.json`` listing one Dragonfly 2 in bootloader mode at port ``1-1.3``; its entry."""
    model = model_by_id("df2")
    entry = {
        "bus": 1,
        "address": address,
        "port_path": "1-1.3",
        "port_numbers": [1, 3],
        "vid": model.bootloader_usb.vid,
        "pid": model.bootloader_usb.pid,
        "serial": serial,
        "manufacturer": model.vendor,
        "product": model.name,
        "mode": "bootloader",
        "tty": None,
        "fastboot_tcp_port": tcp_port,
        "bulk_socket": None if bulk_socket is None else str(bulk_socket),
    }
    (sim_dir / "bus.json").write_text(json.dumps({"version": 1, "devices": [entry]}), encoding="utf-8")
    return entry


def execute_sql(url: str, statement: str) -> None:
    """Run one SQL statement on the database at ``url`` behind the ledger's back (to tamper with it)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


# -- the console's bench ----------------------------------------------------------------------------


DF2 = model_by_id("df2")


def device(serial: str, port: int, *, model: Any = DF2, mode: str = "run", address: int | None = None) -> Device:
    """A unit as discovery reports it, at USB port 1-1.PORT (run mode on a pty, bootloader on fastboot TCP)."""
    usb = model.run_usb if mode == "run" else model.bootloader_usb
    return Device(
        serial=serial,
        model=model.id,
        model_name=model.name,
        mode=mode,
        path=f"1-1.{port}",
        port=f"/dev/pts/{port}" if mode == "run" else None,
        vid=usb.vid,
        pid=usb.pid,
        bus=1,
        address=address if address is not None else port,
        fastboot=None if mode == "run" else f"tcp:127.0.0.1:{40000 + port}",
    )


class IdleDiscovery:
    """A bus on which nothing happens: the tests add and remove units themselves, on the GUI thread."""

    def watch(self, stop: threading.Event, interval: float = 0.25) -> Iterator[Any]:
        while not stop.wait(interval):
            yield from ()
        return
