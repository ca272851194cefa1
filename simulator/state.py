"""A virtual terminal's persistent state: a directory that survives restarts, like flash memory."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from terminal.models import TerminalModel

BOOT_HISTORY_KEPT = 50
LOG_KEPT_BYTES = 4 * 1024 * 1024
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1 and the Unicode line breaks


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (a newline as ``\\x0a``): one log event stays one line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def replace_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` so a reader (or a power cut) sees the old file or the new one, never half.

    ``private``: the file holds a secret and is made owner-only (0600) before a byte is written."""
    # one temporary name per process and thread: two threads replacing the same file never share one
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    if private:
        os.fchmod(fd, 0o600)  # a temporary file a power cut left behind keeps its old mode otherwise
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)  # the rename itself survives a power cut
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_json_atomically(path: Path, data: Any) -> None:
    replace_atomically(path, json.dumps(data, indent=1, sort_keys=True).encode())


@dataclass
class UnitState:
    serial: str
    model: str
    hardware_revision: str
    boot_count: int = 0
    clock_offset: float = 0.0
    created: float = field(default_factory=time.time)
    boots: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def new_serial(model: TerminalModel) -> str:
        return f"{model.serial_prefix}{secrets.token_hex(4).upper()}"


class UnitStore:
    """``DIR/units/<serial>/``: unit.json, partitions/, slots.json, logs/, the secure element's files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "unit.json"
        self.log_path = directory / "logs" / "system.log"

    @property
    def state_dir(self) -> Path:
        """The simulator's state directory: ``DIR`` of ``DIR/units/<serial>``."""
        return self.directory.parent.parent

    @classmethod
    def create(cls, units_dir: Path, model: TerminalModel) -> UnitStore:
        state = UnitState(UnitState.new_serial(model), model.id, model.hardware_revisions[-1])
        store = cls(units_dir / state.serial)
        (store.directory / "logs").mkdir(parents=True)
        store.save(state)
        return store

    def load(self) -> UnitState:
        return UnitState(**json.loads(self.path.read_text(encoding="utf-8")))

    def save(self, state: UnitState) -> None:
        state.boots = state.boots[-BOOT_HISTORY_KEPT:]
        write_json_atomically(self.path, asdict(state))

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {one_line(message)}\n")  # text from a request cannot forge a line
        if self.log_path.stat().st_size > 2 * LOG_KEPT_BYTES:
            tail = self.log_path.read_bytes()[-LOG_KEPT_BYTES:]
            self.log_path.write_bytes(tail[tail.find(b"\n") + 1 :])

    def read_log(self) -> bytes:
        return self.log_path.read_bytes() if self.log_path.exists() else b""


def existing_units(units_dir: Path) -> list[UnitStore]:
    """The units of a state directory, oldest first, so ports and paths stay stable across restarts."""
    if not units_dir.is_dir():
        return []
    stores = [UnitStore(d) for d in units_dir.iterdir() if (d / "unit.json").exists()]
    return sorted(stores, key=lambda s: (s.load().created, s.directory.name))
