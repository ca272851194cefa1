"""Write a verified bundle into one slot of a unit over fastboot: resumable, and proven by the unit's hashes.

The unit itself proves what it holds.  Before a partition is written, the unit hashes the target range
(``oem sha256``) and a partition that already holds its image is skipped: that is what lets an
interrupted flash resume.  After writing, the same hashes must match or the flash stops with
:class:`PartitionVerifyFailed`.  Raw images are compared over ``[0, size)``; sparse images over their
data-bearing ranges only (RAW and FILL chunks, adjacent ones coalesced), since DONT_CARE regions keep
whatever the partition held.  An image larger than the unit's max-download-size is re-sparsed into
pieces.  Images stream out of the bundle; nothing here holds a whole image in memory.

Choosing the slot, switching to it and rebooting belong to the caller (``provisioning.flashing``);
this module never writes the slot it is not told to, and refuses what A/B flashing cannot make safe.
"""

from __future__ import annotations

import enum
import hashlib
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from i18n import N_
from terminal.events import ItemProgressCallback, ProgressCallback
from terminal.fastboot import FastbootClient
from terminal.models import TerminalModel

from .bundle import Bundle
from .errors import CompatibilityError, FirmwareError
from .manifest import SPARSE, PartitionImage
from .resparse import SparsePiece, resparse
from .sparse import PIECE, ChunkType, SparseReader

LOG = logging.getLogger(__name__)

PROBE_SIZE = 64 * 1024
"""Bytes at the start of an image asked for first: a mismatch there rules out a match cheaply."""


# --- errors ------------------------------------------------------------------------------------------


class FlashError(FirmwareError):
    message = N_("Flashing {partition} failed: {detail}")


class PartitionVerifyFailed(FlashError):
    message = N_("Partition {partition} does not hold its image after writing ({size} bytes at offset {offset} differ)")
    remedy = N_(
        "The unit still boots its old slot. Run the flash again; if this partition fails again, "
        "the unit's storage may be failing: send it for repair."
    )


class SingleSlotModel(CompatibilityError):
    message = N_("Model {model} has no A/B slots; Naiad only flashes units that keep a slot to fall back on")
    remedy = N_("Flash this model with its vendor's recovery tool.")


class UnslottedPartition(CompatibilityError):
    message = N_("The bundle writes {partition}, which {model} keeps only once; a failed write could not be undone")
    remedy = N_("Use a bundle that holds slotted partitions only (boot, system, vendor ...).")


class ActiveSlotTarget(FlashError):
    message = N_("Refusing to write slot {slot}: the unit boots from it")
    remedy = N_("Flash the inactive slot; the unit switches to it only after every partition is verified.")


# --- the plan: what each partition must hold -----------------------------------------------------------


@dataclass(frozen=True)
class HashRange:
    """``size`` bytes at ``offset`` of a partition must hash to ``sha256`` (hex)."""

    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class PartitionPlan:
    """One image of the bundle and the ranges that prove a partition holds it."""

    image: PartitionImage
    ranges: tuple[HashRange, ...]
    probe: HashRange | None
    """The first bytes of the first range, asked first; None when that is the whole first range."""

    @property
    def name(self) -> str:
        return self.image.name


class _RangeBuilder:
    """Coalesces consecutive data-bearing extents into hashed ranges, and hashes the probe prefix."""

    def __init__(self) -> None:
        self.ranges: list[HashRange] = []
        self.probe: HashRange | None = None
        self._start = self._end = 0
        self._hash: hashlib._Hash | None = None
        self._probe_hash = hashlib.sha256()

    def extend(self, offset: int, data: bytes | memoryview) -> None:
        if self._hash is None or offset != self._end:
            self.close()
            self._start = self._end = offset
            self._hash = hashlib.sha256()
        if not self.ranges and self._end - self._start < PROBE_SIZE:
            self._probe_hash.update(data[: PROBE_SIZE - (self._end - self._start)])
        self._hash.update(data)
        self._end += len(data)

    def close(self) -> None:
        if self._hash is None:
            return
        size = self._end - self._start
        if not self.ranges and size > PROBE_SIZE:
            self.probe = HashRange(self._start, PROBE_SIZE, self._probe_hash.hexdigest())
        self.ranges.append(HashRange(self._start, size, self._hash.hexdigest()))
        self._hash = None


def plan_partition(bundle: Bundle, image: PartitionImage) -> PartitionPlan:
    """The ranges that prove a partition holds ``image``: streamed from the bundle, never held whole."""
    if image.type != SPARSE:
        with bundle.open_image(image.name, check_hash=False) as stream:
            head = stream.read(PROBE_SIZE)
        probe = HashRange(0, len(head), hashlib.sha256(head).hexdigest()) if image.size > PROBE_SIZE else None
        ranges = (HashRange(0, image.size, image.sha256),) if image.size else ()
        return PartitionPlan(image, ranges, probe)
    builder = _RangeBuilder()
    with bundle.open_image(image.name, check_hash=True) as stream:
        reader = SparseReader(stream)
        block_size = reader.header.block_size
        for chunk in reader.chunks():
            offset = chunk.start_block * block_size
            if chunk.type is ChunkType.RAW:
                for data in reader.payload():
                    builder.extend(offset, data)
                    offset += len(data)
            elif chunk.type is ChunkType.FILL:
                left = chunk.blocks * block_size
                piece = chunk.fill * (min(left, PIECE) // 4)
                while left:
                    step = min(left, len(piece))
                    builder.extend(offset, memoryview(piece)[:step])
                    offset += step
                    left -= step
            elif chunk.type is ChunkType.DONT_CARE:
                builder.close()
    builder.close()
    return PartitionPlan(image, tuple(builder.ranges), builder.probe)


def plan_bundle(bundle: Bundle) -> tuple[PartitionPlan, ...]:
    """A plan for every image of ``bundle``, in flashing order (once per bundle, shared by all units)."""
    plans = tuple(plan_partition(bundle, image) for image in bundle.partitions)
    LOG.info(
        "%s: %d partitions planned, %d ranges to verify", bundle.path, len(plans), sum(len(p.ranges) for p in plans)
    )
    return plans


def check_ab_flashable(bundle: Bundle, model: TerminalModel) -> None:
    """Refuse a model without A/B slots, and a bundle that would write a partition kept only once."""
    if model.slot_scheme != "ab":
        raise SingleSlotModel(model=model.id)
    for image in bundle.partitions:
        partition = model.partition(image.name)
        if partition is not None and not partition.slotted:
            raise UnslottedPartition(partition=image.name, model=model.id)


# --- talking to the unit -------------------------------------------------------------------------------


def slot_partition(partition: str, slot: str) -> str:
    """The fastboot name of ``partition`` in ``slot``: ``system`` in ``b`` is ``system_b``."""
    return f"{partition}_{slot}" if slot else partition


def _first_mismatch(client: FastbootClient, name: str, ranges: Sequence[HashRange]) -> HashRange | None:
    for expected in ranges:
        if client.oem_sha256(name, expected.offset, expected.size) != expected.sha256:
            return expected
    return None


def partition_holds(client: FastbootClient, plan: PartitionPlan, slot: str) -> bool:
    """True when the unit's ``plan`` partition in ``slot`` already holds the image (the probe first)."""
    name = slot_partition(plan.name, slot)
    if plan.probe is not None and _first_mismatch(client, name, (plan.probe,)) is not None:
        return False
    return _first_mismatch(client, name, plan.ranges) is None


def slot_holds(client: FastbootClient, plans: Sequence[PartitionPlan], slot: str) -> bool:
    """True when every partition of ``slot`` holds its image; stops at the first that does not."""
    return all(partition_holds(client, plan, slot) for plan in plans)


def verify_partition(client: FastbootClient, plan: PartitionPlan, slot: str) -> None:
    """Raise :class:`PartitionVerifyFailed` unless every range of the partition hashes as planned."""
    name = slot_partition(plan.name, slot)
    bad = _first_mismatch(client, name, plan.ranges)
    if bad is not None:
        raise PartitionVerifyFailed(partition=name, offset=bad.offset, size=bad.size)


class PieceReader(io.RawIOBase):
    """A re-sparsed piece as a forward-only binary stream whose size the client can ask by seeking."""

    def __init__(self, piece: SparsePiece) -> None:
        super().__init__()
        self.piece = piece
        self.name = f"<sparse piece {piece.index + 1}/{piece.count}>"
        self._parts: Iterator[bytes] | None = None  # made on the first read: a piece reads its source late
        self._buffer = memoryview(b"")
        self._position = 0
        self._at = 0  # where a seek pointed; reading requires it to be where the stream is

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self.piece.size}[whence]
        self._at = min(max(0, base + offset), self.piece.size)
        return self._at

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._at != self._position:
            raise io.UnsupportedOperation("a sparse piece streams forward only")
        if self._parts is None:
            self._parts = self.piece.iter_bytes()
        while not self._buffer:
            part = next(self._parts, None)
            if part is None:
                return 0
            self._buffer = memoryview(part)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self._position += n
        self._at = self._position
        return n


def write_partition(
    client: FastbootClient,
    bundle: Bundle,
    plan: PartitionPlan,
    slot: str,
    progress: ProgressCallback | None = None,
) -> None:
    """Send the image of ``plan`` to its partition in ``slot``, re-sparsed when the unit's buffer is smaller."""
    name = slot_partition(plan.name, slot)
    limit = client.max_download_size
    with bundle.open_image(plan.name, check_hash=False) as source:
        if limit is None or plan.image.size <= limit:
            client.flash(name, source, progress)
            return
        stream: BinaryIO = source
        pieces = [PieceReader(piece) for piece in resparse(stream, limit)]
        LOG.info("%s: %s in %d pieces of at most %d bytes", client.target, name, len(pieces), limit)
        client.flash(name, pieces, progress)  # type: ignore[arg-type]


# --- one slot ------------------------------------------------------------------------------------------


class FlashStep(enum.StrEnum):
    CHECK = "check"  # asking whether the partition already holds its image
    SKIPPED = "skipped"  # it does: nothing to write
    WRITE = "write"
    VERIFY = "verify"  # after writing
    VERIFIED = "verified"  # the partition was written and holds its image


StepCallback = Callable[[FlashStep, str], None]
"""Called with (step, partition) as each partition goes through check, write and verify."""


@dataclass(frozen=True)
class SlotReport:
    slot: str
    written: tuple[str, ...]
    skipped: tuple[str, ...]


def flash_slot(
    client: FastbootClient,
    bundle: Bundle,
    plans: Sequence[PartitionPlan],
    slot: str,
    *,
    active_slot: str | None = None,
    on_step: StepCallback | None = None,
    progress: ItemProgressCallback | None = None,
) -> SlotReport:
    """Write every partition of ``plans`` into ``slot``, skipping those that already hold their image.

    Each written partition is verified by the unit's hashes before the next one starts.  ``slot`` must
    not be ``active_slot`` (the one the unit boots): that slot is what a failed flash falls back to.
    ``progress`` gets (partition, bytes sent, bytes to send) while a partition is written.
    """
    if not slot or slot == active_slot:
        raise ActiveSlotTarget(slot=slot or "-")
    written: list[str] = []
    skipped: list[str] = []
    for plan in plans:
        if on_step is not None:
            on_step(FlashStep.CHECK, plan.name)
        if partition_holds(client, plan, slot):
            skipped.append(plan.name)
            LOG.info("%s: %s already holds its image", client.target, slot_partition(plan.name, slot))
            if on_step is not None:
                on_step(FlashStep.SKIPPED, plan.name)
            continue
        if on_step is not None:
            on_step(FlashStep.WRITE, plan.name)
        report = None if progress is None else (lambda done, total, p=plan.name: progress(p, done, total))
        write_partition(client, bundle, plan, slot, report)
        if on_step is not None:
            on_step(FlashStep.VERIFY, plan.name)
        verify_partition(client, plan, slot)
        written.append(plan.name)
        if on_step is not None:
            on_step(FlashStep.VERIFIED, plan.name)
        LOG.info("%s: %s written and verified", client.target, slot_partition(plan.name, slot))
    return SlotReport(slot, tuple(written), tuple(skipped))
