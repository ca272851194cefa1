"""A virtual terminal's flash: partition files, A/B slot metadata and the boot decision.

Layout inside a unit directory (the simulator's contract)::

    partitions/<name>_<slot>.img   slotted partitions (sparse files of the model table's sizes)
    partitions/<name>.img          the others
    slots.json                     active slot, per-slot boot counters, rollback index (owned here)

Boot logic as on Android A/B: a newly activated slot is unsuccessful with DEFAULT_TRIES tries; every
failed boot uses one; at none left the slot is unbootable and the other slot becomes active.  A boot
fails when the slot's boot image (see BOOT_MAGIC) is missing, corrupt or for another model, or when a
fault forced it, or when the image's ``security_version`` is below the unit's rollback index
(anti-rollback; a successful boot of a higher security version raises the index).  Metadata is
replaced atomically and fsynced, so a power cut at any point leaves a
store that still boots the slot that booted before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.models import TerminalModel

from .image_map import ImageMap
from .sparse_image import Cancelled, Extent, WriteCancelled, is_sparse, write_sparse
from .sparse_image import SparseImageError as SparseImageError  # re-exported: callers catch it from here
from .sparse_image import _sparse_chunks as _sparse_chunks  # re-exported: the tests fuzz it here
from .sparse_image import copy_range as _copy_range
from .state import replace_atomically

LOG = logging.getLogger(__name__)

DEFAULT_TRIES = 3
SLOTS_FILE = "slots.json"
PARTITIONS_DIR = "partitions"
BOOT_PARTITION = "boot"
BOOT_MAGIC = b"NAIADBOOT"
BOOT_HEADER_SIZE = 4096
_BOOT_FIXED = struct.Struct(">9sBHQ32s")  # magic, format version, metadata length, payload length, sha256
_IO_CHUNK = 1 << 20


class SlotStoreError(NaiadError):
    message = N_("The simulated unit's flash at {path} is unusable: {detail}")
    remedy = N_("Delete the unit's state directory and start the simulator again to recreate it.")


class UnknownPartition(SlotStoreError):
    message = N_("The unit has no partition {partition}")
    remedy = N_("Run 'naiad fastboot SERIAL getvar all' to list the unit's partitions.")


class InvalidSlot(SlotStoreError):
    message = N_("The unit has no slot {slot}")
    remedy = N_("Use one of the unit's slots (a or b on A/B units).")


class ImageTooLarge(SlotStoreError):
    message = N_("The image ({size} bytes) is larger than partition {partition} ({limit} bytes)")
    remedy = N_("Check that the image is meant for this model and partition.")


class RangeOutOfBounds(SlotStoreError):
    message = N_("Bytes {offset}..{end} are outside partition {partition} ({limit} bytes)")
    remedy = N_("Ask for a range within the partition.")


class InvalidImage(SlotStoreError):
    message = N_("The image for {partition} is damaged: {detail}")
    remedy = N_("Download the image again; a sparse image must be complete and consistent.")


class WriteInterrupted(SlotStoreError):
    message = N_("The write of {partition} was interrupted: {detail}")
    remedy = N_("Power the unit on and flash the partition again.")


class NoBootableSlot(SlotStoreError):
    message = N_("Neither slot of unit {path} boots")
    remedy = N_("Flash a valid boot image to a slot in bootloader mode and make it active.")


@dataclass(frozen=True)
class PartitionRef:
    """One partition instance: ``boot`` in slot ``b`` is ``boot_b``."""

    name: str
    slot: str
    path: Path
    size: int

    @property
    def full_name(self) -> str:
        return f"{self.name}_{self.slot}" if self.slot else self.name


@dataclass(frozen=True)
class BootHeader:
    version: str
    model: str
    payload_length: int
    payload_sha256: bytes
    metadata: dict[str, Any]


@dataclass(frozen=True)
class WrittenImage:
    """Where a flashed image landed: the partition and the byte ranges written in it."""

    ref: PartitionRef
    size: int
    extents: list[Extent]


@dataclass(frozen=True)
class BootResult:
    slot: str
    version: str
    fell_back: bool
    failed_attempts: int


@dataclass
class SlotState:
    successful: bool = False
    unbootable: bool = False
    tries_remaining: int = DEFAULT_TRIES
    boots: int = 0
    failed_boots: int = 0
    forced_failures: int = 0


def build_boot_image(version: str, model: str, payload: bytes, **metadata: Any) -> bytes:
    """A boot image the simulated bootloader accepts: 4 KiB header, then ``payload``."""
    meta = json.dumps({"version": version, "model": model, **metadata}, sort_keys=True).encode()
    if _BOOT_FIXED.size + len(meta) > BOOT_HEADER_SIZE:
        raise ValueError("boot image metadata does not fit the 4 KiB header")
    fixed = _BOOT_FIXED.pack(BOOT_MAGIC, 1, len(meta), len(payload), hashlib.sha256(payload).digest())
    return (fixed + meta).ljust(BOOT_HEADER_SIZE, b"\0") + payload


def security_version(header: BootHeader) -> int:
    """The image's anti-rollback security version (0 when the header carries none)."""
    value = header.metadata.get("security_version", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"security_version {value!r} is not a count")
    return value


def parse_boot_header(header: bytes) -> BootHeader:
    """Decode the first 4 KiB of a boot partition; ValueError when it is not a Naiad boot image."""
    if len(header) < BOOT_HEADER_SIZE:
        raise ValueError("short boot header")
    magic, fmt, meta_len, payload_len, digest = _BOOT_FIXED.unpack_from(header)
    if magic != BOOT_MAGIC or fmt != 1 or _BOOT_FIXED.size + meta_len > BOOT_HEADER_SIZE:
        raise ValueError("not a Naiad boot image")
    try:
        meta = json.loads(header[_BOOT_FIXED.size : _BOOT_FIXED.size + meta_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad boot metadata: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), str) or not isinstance(meta.get("model"), str):
        raise ValueError("boot metadata lacks version or model")
    return BootHeader(meta["version"], meta["model"], payload_len, digest, meta)


class SlotStore:
    """The flash of one simulated unit; thread-safe (one store object per unit, shared by its servers)."""

    def __init__(self, unit_dir: Path, model: TerminalModel) -> None:
        self.unit_dir = Path(unit_dir)
        self.model = model
        self._lock = threading.RLock()
        self._state = self._load()
        self.images = ImageMap(self.unit_dir)

    # -- creation and persistence -------------------------------------------------------------

    @classmethod
    def create(
        cls, unit_dir: str | os.PathLike[str], model: TerminalModel, factory_version: str = "1.0.0"
    ) -> SlotStore:
        """Blank partitions of the table's sizes, a factory boot image in the first slot, slot a active."""
        unit = Path(unit_dir)
        if (unit / SLOTS_FILE).exists():
            raise SlotStoreError(path=str(unit), detail=_("it exists already"))
        if model.partition(BOOT_PARTITION) is None:
            raise SlotStoreError(path=str(unit), detail=_("model {model} has no boot partition", model=model.id))
        parts = unit / PARTITIONS_DIR
        parts.mkdir(parents=True, exist_ok=True)
        for part in model.partitions:
            for slot in model.slots if part.slotted else ("",):
                path = parts / (f"{part.name}_{slot}.img" if slot else f"{part.name}.img")
                with path.open("wb") as fh:
                    fh.truncate(part.size)
        first = model.slots[0]
        boot = parts / (f"{BOOT_PARTITION}_{first}.img" if first else f"{BOOT_PARTITION}.img")
        image = build_boot_image(factory_version, model.id, f"naiad factory kernel {model.id}".encode() * 64)
        with boot.open("r+b") as fh:
            fh.write(image)
            fh.flush()
            os.fsync(fh.fileno())
        ImageMap(unit).record(f"{BOOT_PARTITION}_{first}" if first else BOOT_PARTITION, [(0, len(image))])
        slots = {s: SlotState(successful=(s == first)) for s in model.slots}
        document = {
            "version": 1,
            "active": first,
            "previous": None,
            "rollback_index": 0,
            "slots": {s: asdict(v) for s, v in slots.items()},
        }
        replace_atomically(unit / SLOTS_FILE, json.dumps(document, indent=2).encode())
        LOG.info("created flash for %s (%s) in %s", model.id, factory_version, unit)
        return cls(unit, model)

    @classmethod
    def open_or_create(
        cls, unit_dir: str | os.PathLike[str], model: TerminalModel, factory_version: str = "1.0.0"
    ) -> SlotStore:
        unit = Path(unit_dir)
        if (unit / SLOTS_FILE).exists():
            return cls(unit, model)
        return cls.create(unit, model, factory_version)

    def _load(self) -> dict[str, Any]:
        path = self.unit_dir / SLOTS_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            slots = {name: SlotState(**document["slots"][name]) for name in self.model.slots}
            active = document["active"]
            rollback = document.get("rollback_index", 0)  # stores made before anti-rollback have none
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SlotStoreError(path=str(path), detail=_("it could not be read: {reason}", reason=exc)) from exc
        if active not in slots:
            raise SlotStoreError(
                path=str(path), detail=_("its active slot {slot} is not one of the unit's slots", slot=repr(active))
            )
        if not isinstance(rollback, int) or isinstance(rollback, bool) or rollback < 0:
            raise SlotStoreError(
                path=str(path), detail=_("its rollback index {index} is not a count", index=repr(rollback))
            )
        return {"active": active, "previous": document.get("previous"), "rollback_index": rollback, "slots": slots}

    def _save(self) -> None:
        document = {
            "version": 1,
            "active": self._state["active"],
            "previous": self._state["previous"],
            "rollback_index": self._state["rollback_index"],
            "slots": {name: asdict(s) for name, s in self._state["slots"].items()},
        }
        replace_atomically(self.unit_dir / SLOTS_FILE, json.dumps(document, indent=2).encode())

    # -- slots --------------------------------------------------------------------------------

    @property
    def slots(self) -> tuple[str, ...]:
        return self.model.slots

    @property
    def current_slot(self) -> str:
        with self._lock:
            return str(self._state["active"])

    @property
    def rollback_index(self) -> int:
        """The persisted anti-rollback index: the highest security version that booted successfully."""
        with self._lock:
            return int(self._state["rollback_index"])

    def slot_state(self, slot: str) -> SlotState:
        with self._lock:
            state = self._state["slots"].get(self._check_slot(slot))
            return SlotState(**asdict(state))

    def _check_slot(self, slot: str) -> str:
        slot = slot.removeprefix("_")
        if self.model.slot_scheme != "ab" or slot not in self.model.slots:
            raise InvalidSlot(slot=slot)
        return slot

    def set_active(self, slot: str) -> None:
        """Make ``slot`` the one to boot next, with fresh tries; the old one is kept as the fall-back."""
        with self._lock:
            slot = self._check_slot(slot)
            previous = self._state["active"]
            self._state["slots"][slot] = SlotState(
                boots=self._state["slots"][slot].boots,
                failed_boots=self._state["slots"][slot].failed_boots,
                forced_failures=self._state["slots"][slot].forced_failures,
            )
            self._state["active"] = slot
            if previous != slot:
                self._state["previous"] = previous
            self._save()
            LOG.info("%s: slot %s active", self.unit_dir.name, slot)

    def fail_next_boots(self, slot: str, count: int) -> None:
        """Fault hook: the next ``count`` boots of ``slot`` fail whatever its image."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self._lock:
            slot = self._check_slot(slot) if self.model.slot_scheme == "ab" else self.model.slots[0]
            self._state["slots"][slot].forced_failures = count
            self._save()

    def slot_version(self, slot: str) -> str | None:
        """The firmware version in ``slot``'s boot image, None when the image is not valid."""
        header = self._valid_boot_header(slot)
        return header.version if header else None

    def _valid_boot_header(self, slot: str) -> BootHeader | None:
        ref = self.resolve(f"{BOOT_PARTITION}_{slot}" if slot else BOOT_PARTITION)
        try:
            with ref.path.open("rb") as fh:
                header = parse_boot_header(fh.read(BOOT_HEADER_SIZE))
                if header.model != self.model.id or BOOT_HEADER_SIZE + header.payload_length > ref.size:
                    return None
                digest = hashlib.sha256()
                remaining = header.payload_length
                while remaining:
                    block = fh.read(min(_IO_CHUNK, remaining))
                    if not block:
                        return None
                    digest.update(block)
                    remaining -= len(block)
        except (OSError, ValueError):
            return None
        return header if digest.digest() == header.payload_sha256 else None

    def boot(self) -> BootResult:
        """Power on: boot the active slot, retrying and falling back as an A/B bootloader does.

        Every failed attempt is persisted before the next, as on a device that resets after each.
        Raises NoBootableSlot when no slot boots (the unit stays in its bootloader)."""
        with self._lock:
            state = self._state
            fell_back = False
            failures = 0
            for _ in range(len(self.slots) * (DEFAULT_TRIES + 2) + 1):
                slot = state["active"]
                meta: SlotState = state["slots"][slot]
                if meta.unbootable:
                    other = next((s for s in self.slots if s != slot and not state["slots"][s].unbootable), None)
                    if other is None:
                        break
                    LOG.warning("%s: slot %s unbootable, falling back to %s", self.unit_dir.name, slot, other)
                    state["active"], state["previous"] = other, slot
                    fell_back = True
                    self._save()
                    continue
                header = None if meta.forced_failures else self._valid_boot_header(slot)
                level = self._rollback_check(slot, header)
                if header is not None and level is not None:
                    meta.successful, meta.tries_remaining = True, DEFAULT_TRIES
                    meta.boots += 1
                    if level > state["rollback_index"]:
                        LOG.info("%s: rollback index %d -> %d", self.unit_dir.name, state["rollback_index"], level)
                        state["rollback_index"] = level
                    self._save()
                    LOG.info("%s: booted slot %s (%s)", self.unit_dir.name, slot or "-", header.version)
                    return BootResult(slot, header.version, fell_back, failures)
                failures += 1
                meta.forced_failures = max(0, meta.forced_failures - 1)
                meta.failed_boots += 1
                meta.successful = False
                meta.tries_remaining -= 1
                if meta.tries_remaining <= 0 or self.model.slot_scheme != "ab":
                    meta.unbootable, meta.tries_remaining = True, 0
                self._save()
                LOG.warning(
                    "%s: boot of slot %s failed (%d tries left)", self.unit_dir.name, slot or "-", meta.tries_remaining
                )
            raise NoBootableSlot(path=str(self.unit_dir))

    def _rollback_check(self, slot: str, header: BootHeader | None) -> int | None:
        """The image's security version when it may boot; None when it is missing, bad or rolled back."""
        if header is None:
            return None
        try:
            level = security_version(header)
        except ValueError as exc:
            LOG.warning("%s: slot %s: %s", self.unit_dir.name, slot or "-", exc)
            return None
        if level < self._state["rollback_index"]:
            LOG.warning(
                "%s: slot %s refused: security version %d is below the rollback index %d",
                self.unit_dir.name,
                slot or "-",
                level,
                self._state["rollback_index"],
            )
            return None
        return level

    def status(self) -> dict[str, Any]:
        """Active slot and per-slot state with the firmware version, for status screens and getvar."""
        with self._lock:
            return {
                "active": self._state["active"],
                "previous": self._state["previous"],
                "security_version": self._state["rollback_index"],
                "slots": {
                    name: {**asdict(meta), "version": self.slot_version(name)}
                    for name, meta in self._state["slots"].items()
                },
            }

    # -- partitions ----------------------------------------------------------------------------

    def partitions(self) -> list[PartitionRef]:
        """Every partition instance (``boot_a``, ``boot_b``, ``calib`` ...)."""
        refs = []
        for part in self.model.partitions:
            for slot in self.slots if part.slotted else ("",):
                refs.append(self._ref(part.name, slot, part.size))
        return refs

    def _ref(self, name: str, slot: str, size: int) -> PartitionRef:
        file = f"{name}_{slot}.img" if slot else f"{name}.img"
        return PartitionRef(name, slot, self.unit_dir / PARTITIONS_DIR / file, size)

    def resolve(self, name: str) -> PartitionRef:
        """``boot`` (the active slot's), ``boot_b``, or an unslotted ``calib``."""
        part = self.model.partition(name)
        if part is not None:
            return self._ref(part.name, self.current_slot if part.slotted and self.slots[0] else "", part.size)
        base, sep, slot = name.rpartition("_")
        part = self.model.partition(base) if sep else None
        if part is not None and part.slotted and slot in self.slots and slot:
            return self._ref(part.name, slot, part.size)
        raise UnknownPartition(partition=name)

    def has_slot(self, name: str) -> bool:
        part = self.model.partition(name)
        if part is None:
            raise UnknownPartition(partition=name)
        return part.slotted and self.model.slot_scheme == "ab"

    def write_image(self, name: str, image: BinaryIO) -> PartitionRef:
        """Write a raw or Android sparse image (an open file, read by position) to partition ``name``."""
        return self.flash_image(name, image).ref

    def flash_image(
        self, name: str, image: BinaryIO, cancelled: Cancelled | None = None, *, new_image: bool = True
    ) -> WrittenImage:
        """Write a raw or Android sparse image to partition ``name``; where it landed.  ``new_image``: the first
        (or only) piece of an image, else the next piece of the one being flashed there (``simulator.image_map``).

        Sizes and the sparse structure are checked before the first byte is written, so a refused
        image leaves the partition as it was; sparse DONT_CARE regions keep their old content.
        ``cancelled()`` is polled between pieces: when it turns true (power cut) writing stops at
        once with WriteInterrupted, the partition partly written."""
        ref = self.resolve(name)
        src = image
        stop = cancelled or (lambda: False)
        with self._lock, ref.path.open("r+b") as dst:
            try:
                if is_sparse(src):
                    size, extents = write_sparse(
                        src,
                        dst,
                        ref.size,
                        lambda size: ImageTooLarge(size=size, partition=ref.full_name, limit=ref.size),
                        stop,
                    )
                else:
                    size = os.fstat(src.fileno()).st_size
                    if size > ref.size:
                        raise ImageTooLarge(size=size, partition=ref.full_name, limit=ref.size)
                    _copy_range(src.fileno(), 0, dst.fileno(), 0, size, stop)
                    extents = [(0, size)] if size else []
            except SparseImageError as exc:
                raise InvalidImage(partition=ref.full_name, detail=str(exc)) from exc
            except WriteCancelled as exc:
                LOG.warning("%s: write of %s interrupted: %s", self.unit_dir.name, ref.full_name, exc)
                raise WriteInterrupted(partition=ref.full_name, detail=str(exc)) from exc
            dst.flush()
            os.fsync(dst.fileno())
            self.images.record(ref.full_name, extents, new=new_image)
        LOG.info("%s: wrote %s", self.unit_dir.name, ref.full_name)
        return WrittenImage(ref, size, extents)

    def corrupt(self, name: str, extents: list[Extent], rng: random.Random, count: int = 8) -> list[int]:
        """Fault injector: damage ``count`` bytes at random offsets inside ``extents`` of a partition.

        Every chosen byte is XORed with a non-zero value, so it really changes.  Returns the offsets."""
        ref = self.resolve(name)
        total = sum(length for _, length in extents)
        if total <= 0:
            return []
        for offset, length in extents:
            self._check_range(ref, offset, length)
        offsets = []
        for _pick in range(count):
            pick = rng.randrange(total)
            for offset, length in extents:
                if pick < length:
                    offsets.append(offset + pick)
                    break
                pick -= length
        with self._lock, ref.path.open("r+b") as fh:
            for offset in sorted(set(offsets)):
                old = os.pread(fh.fileno(), 1, offset) or b"\0"
                os.pwrite(fh.fileno(), bytes([old[0] ^ rng.randrange(1, 256)]), offset)
            fh.flush()
            os.fsync(fh.fileno())
        LOG.warning("%s: fault: corrupted %d bytes of %s", self.unit_dir.name, len(set(offsets)), ref.full_name)
        return sorted(set(offsets))

    def write(self, name: str, data: bytes, offset: int = 0) -> None:
        """Write bytes at ``offset`` of a partition (factory content, tests, the fault injector)."""
        ref = self.resolve(name)
        if offset < 0 or offset + len(data) > ref.size:
            raise ImageTooLarge(size=offset + len(data), partition=ref.full_name, limit=ref.size)
        with self._lock, ref.path.open("r+b") as fh:
            fh.seek(offset)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def read(self, name: str, offset: int, size: int) -> bytes:
        ref = self.resolve(name)
        self._check_range(ref, offset, size)
        with ref.path.open("rb") as fh:
            fh.seek(offset)
            return fh.read(size)

    def erase(self, name: str) -> PartitionRef:
        """Reset a partition to zeros (deallocating the file's blocks)."""
        ref = self.resolve(name)
        with self._lock, ref.path.open("r+b") as fh:
            fh.truncate(0)
            fh.truncate(ref.size)
            fh.flush()
            os.fsync(fh.fileno())
            self.images.forget(ref.full_name)
        return ref

    def content_sha256(self, name: str) -> tuple[str, int] | None:
        """Hex SHA-256 and byte count of the last image flashed to a partition instance, over its data-bearing
        extents in offset order (``simulator.image_map``); None when no image was flashed there."""
        ref = self.resolve(name)
        extents = self.images.extents(ref.full_name)
        if extents is None:
            return None
        digest, total = hashlib.sha256(), 0
        with self._lock, ref.path.open("rb") as fh:
            for offset, length in sorted(extents):
                self._check_range(ref, offset, length)
                fh.seek(offset)
                remaining = length
                while remaining:
                    block = fh.read(min(_IO_CHUNK, remaining)) or bytes(min(_IO_CHUNK, remaining))
                    digest.update(block)
                    remaining -= len(block)
                total += length
        return digest.hexdigest(), total

    def slot_hashes(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        """Every slot's partitions and the content hash of what was flashed there (None: nothing recorded)."""
        hashes: dict[str, dict[str, dict[str, Any] | None]] = {}
        for ref in self.partitions():
            if not ref.slot:
                continue
            found = self.content_sha256(ref.full_name)
            hashes.setdefault(ref.slot, {})[ref.name] = (
                None if found is None else {"sha256": found[0], "bytes": found[1]}
            )
        return hashes

    def corrupt_image(self, name: str, rng: random.Random, count: int = 8) -> list[int]:
        """Fault: damage bytes of the image last flashed to a partition instance (bit rot after a good flash)."""
        ref = self.resolve(name)
        extents = self.images.extents(ref.full_name)
        if not extents:
            raise InvalidImage(partition=ref.full_name, detail=_("no image was flashed there"))
        return self.corrupt(ref.full_name, extents, rng, count)

    def sha256(self, name: str, offset: int = 0, size: int | None = None) -> str:
        """Hex SHA-256 of ``size`` bytes at ``offset`` of a partition (the whole partition by default)."""
        ref = self.resolve(name)
        size = ref.size - offset if size is None else size
        self._check_range(ref, offset, size)
        digest = hashlib.sha256()
        with ref.path.open("rb") as fh:
            fh.seek(offset)
            remaining = size
            while remaining:
                block = fh.read(min(_IO_CHUNK, remaining))
                if not block:  # a short file reads as the zeros it stands for
                    block = bytes(min(_IO_CHUNK, remaining))
                digest.update(block)
                remaining -= len(block)
        return digest.hexdigest()

    @staticmethod
    def _check_range(ref: PartitionRef, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > ref.size:
            raise RangeOutOfBounds(offset=offset, end=offset + size, partition=ref.full_name, limit=ref.size)
