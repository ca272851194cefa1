"""Host side of a unit's diagnostic objects: the content hashes of its slots, and the link's loopback.

``diag/slot-hashes`` (run mode, read only) is JSON ``{slot: {partition: {"sha256": hex, "bytes": n} | null}}``:
what each slot's partitions hold, hashed by the unit from its flash over the extents of the image last flashed
there (null: nothing recorded).  A unit's reply is untrusted: its size is bounded before it is read, and its
shape is checked here (slot and partition names, 64 lower-case hex digits, a byte count); anything else is a
:class:`~terminal.errors.MalformedReply` naming the field, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from .client import ManagementClient
from .errors import MalformedReply, TransferError
from .protocol import OBJECT_LOOPBACK, OBJECT_SLOT_HASHES

MAX_SLOT_HASHES = 64 * 1024  # JSON bytes: a few slots of a dozen partitions take under 4 KiB
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")
_SLOT = re.compile(r"[a-z0-9]{1,4}\Z")
_HEX = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class PartitionHash:
    sha256: str  # lower-case hex
    bytes: int


SlotHashes = dict[str, dict[str, PartitionHash | None]]


def _malformed(client: ManagementClient, field: str, expected: str) -> MalformedReply:
    return MalformedReply(
        path=client.transport.path, serial=client.unit_name, request=OBJECT_SLOT_HASHES, field=field, expected=expected
    )


def parse_slot_hashes(client: ManagementClient, data: bytes) -> SlotHashes:
    """The checked content of a ``diag/slot-hashes`` object; MalformedReply for anything off its shape."""
    try:
        document: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed(client, "-", "JSON") from None
    if not isinstance(document, dict):
        raise _malformed(client, "-", "{slot: {partition: ...}}")
    hashes: SlotHashes = {}
    for slot, partitions in document.items():
        if not isinstance(slot, str) or not _SLOT.match(slot):
            raise _malformed(client, repr(slot)[:40], "a slot name (a, b ...)")
        if not isinstance(partitions, dict):
            raise _malformed(client, slot, "{partition: ...}")
        hashes[slot] = {}
        for name, found in partitions.items():
            where = f"{slot}.{name}"[:60]
            if not isinstance(name, str) or not _NAME.match(name):
                raise _malformed(client, where, "a partition name")
            if found is None:
                hashes[slot][name] = None
                continue
            if not isinstance(found, dict):
                raise _malformed(client, where, "{sha256, bytes}|null")
            digest, size = found.get("sha256"), found.get("bytes")
            if not isinstance(digest, str) or not _HEX.match(digest):
                raise _malformed(client, f"{where}.sha256", "64 lower-case hex digits")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise _malformed(client, f"{where}.bytes", "uint")
            hashes[slot][name] = PartitionHash(digest, size)
    return hashes


def read_slot_hashes(client: ManagementClient) -> SlotHashes:
    """What each slot's partitions hold, as the unit hashes it now (no reboot: run mode)."""
    return parse_slot_hashes(client, client.read_object(OBJECT_SLOT_HASHES, limit=MAX_SLOT_HASHES))


@dataclass(frozen=True)
class LoopbackResult:
    """One loopback round: bytes written and read back, whether they came back whole, the client's
    retransmissions and the damaged frames it dropped meanwhile, and the throughput of both directions together.

    A damaged frame is the mark of a noisy cable (a clean pty or USB link never damages one); a retransmission may
    also be a busy unit or host, so it counts only in numbers."""

    bytes: int
    intact: bool
    retransmissions: int
    damaged_frames: int
    seconds: float

    @property
    def throughput(self) -> float:
        """Bytes per second, both directions counted."""
        return 2 * self.bytes / self.seconds if self.seconds > 0 else 0.0


def loopback(client: ManagementClient, size: int) -> LoopbackResult:
    """Write ``size`` random bytes to ``diag/loopback`` and read them back (scratch, forgotten at the next boot)."""
    data = os.urandom(size)
    before, damaged = client.retransmissions, client.frame_errors
    started = time.monotonic()
    client.write_object(OBJECT_LOOPBACK, data)
    try:
        back = client.read_object(OBJECT_LOOPBACK, limit=size)
    except TransferError:
        back = b""
    seconds = time.monotonic() - started
    return LoopbackResult(size, back == data, client.retransmissions - before, client.frame_errors - damaged, seconds)
