"""Split an image larger than a unit's max-download-size into sparse pieces (``fastboot -S``).

Each piece is a complete sparse image covering the whole image length: the blocks it carries, and
DONT_CARE for everything else.  Flashing the pieces in order writes the same bytes as flashing the
original.  Planning reads chunk headers only (RAW data is skipped), and a piece streams its data from
the source when it is sent, so memory holds the chunk list, never the image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from i18n import _

from .errors import MalformedSparseImage, MaxDownloadTooSmall
from .sparse import (
    CHUNK_HEADER,
    CHUNK_HEADER_SIZE,
    FILE_HEADER_SIZE,
    PIECE,
    Chunk,
    ChunkType,
    SparseHeader,
    SparseReader,
    is_sparse,
)
from .sparse_write import DEFAULT_BLOCK_SIZE, iter_raw_chunks

LOG = logging.getLogger(__name__)

_FILL_COST = CHUNK_HEADER_SIZE + 4
_GAP_COST = CHUNK_HEADER_SIZE


@dataclass(frozen=True)
class SparsePiece:
    """One sparse image of a split: ``size`` bytes, carrying blocks ``start_block`` to ``end_block``."""

    index: int
    count: int
    size: int
    start_block: int
    end_block: int
    block_size: int
    total_blocks: int
    source: BinaryIO
    source_base: int
    source_is_raw: bool
    entries: tuple[Chunk, ...]

    def _chunk_count(self) -> int:
        count = 0
        position = 0
        for entry in self.entries:
            count += 1 + (entry.start_block > position)
            position = entry.start_block + entry.blocks
        return count + (position < self.total_blocks)

    def iter_bytes(self) -> Iterator[bytes]:
        """The piece as bytes, in pieces of at most 1 MiB plus a header, read from the source now."""
        bs = self.block_size
        header = SparseHeader(bs, self.total_blocks, self._chunk_count())
        yield header.pack()
        position = 0
        for entry in self.entries:
            if entry.start_block > position:
                yield _dont_care(entry.start_block - position)
            size = CHUNK_HEADER_SIZE + entry.payload_size(bs)
            yield CHUNK_HEADER.pack(entry.type, 0, entry.blocks, size)
            if entry.type is ChunkType.FILL:
                yield entry.fill
            else:
                yield from self._raw_payload(entry)
            position = entry.start_block + entry.blocks
        if position < self.total_blocks:
            yield _dont_care(self.total_blocks - position)

    def write_to(self, out: BinaryIO) -> None:
        for data in self.iter_bytes():
            out.write(data)

    def _raw_payload(self, entry: Chunk) -> Iterator[bytes]:
        left = entry.blocks * self.block_size
        self.source.seek(self.source_base + entry.data_offset)
        while left:
            data = self.source.read(min(left, PIECE))
            if not data:
                if not self.source_is_raw:
                    raise MalformedSparseImage(detail=_("the image ended inside a RAW chunk while it was sent"))
                data = bytes(min(left, PIECE))  # the zero padding of a partial last block
            left -= len(data)
            yield data


def _dont_care(blocks: int) -> bytes:
    return CHUNK_HEADER.pack(ChunkType.DONT_CARE, 0, blocks, CHUNK_HEADER_SIZE)


def _plan(chunks: Iterator[Chunk], block_size: int, max_size: int) -> list[list[Chunk]]:
    """Greedily fill pieces of at most ``max_size`` bytes with the FILL and (split) RAW chunks."""
    reserve = FILE_HEADER_SIZE + _GAP_COST  # the header and a trailing DONT_CARE
    pieces: list[list[Chunk]] = []
    current: list[Chunk] = []
    cost = reserve
    position = 0  # end block of the last entry of the current piece
    for chunk in chunks:
        if chunk.type in (ChunkType.DONT_CARE, ChunkType.CRC32):
            continue  # gaps become DONT_CARE in every piece; CRCs would be wrong in a piece
        done = 0
        while done < chunk.blocks:
            start = chunk.start_block + done
            gap = _GAP_COST if start > position else 0
            if chunk.type is ChunkType.FILL:
                take = chunk.blocks if cost + gap + _FILL_COST <= max_size else 0
                entry = Chunk(ChunkType.FILL, start, take, fill=chunk.fill)
                used = _FILL_COST
            else:
                room = max_size - cost - gap - CHUNK_HEADER_SIZE
                take = min(chunk.blocks - done, max(0, room // block_size))
                entry = Chunk(ChunkType.RAW, start, take, data_offset=chunk.data_offset + done * block_size)
                used = CHUNK_HEADER_SIZE + take * block_size
            if take == 0:
                if not current:
                    raise MaxDownloadTooSmall(max_size=max_size, block_size=block_size)
                pieces.append(current)
                current, cost, position = [], reserve, 0
                continue
            current.append(entry)
            cost += gap + used
            position = start + take
            done += take
    if current or not pieces:
        pieces.append(current)
    return pieces


def _piece_size(entries: list[Chunk], block_size: int, total_blocks: int) -> int:
    size = FILE_HEADER_SIZE
    position = 0
    for entry in entries:
        size += (_GAP_COST if entry.start_block > position else 0) + CHUNK_HEADER_SIZE
        size += entry.payload_size(block_size)
        position = entry.start_block + entry.blocks
    return size + (_GAP_COST if position < total_blocks else 0)


def resparse(
    source: BinaryIO,
    max_size: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[SparsePiece]:
    """Split the seekable ``source`` (a sparse or a raw image) into pieces of at most ``max_size`` bytes.

    A raw source is first classified into RAW and FILL chunks of ``block_size`` (a partial last block
    is padded with zeros).  The whole source is validated before the first piece is yielded.  Pieces
    read the source when iterated, so send them one after the other.
    """
    base = source.tell()
    source_is_raw = not is_sparse(source.read(4))
    source.seek(base)
    if source_is_raw:
        if max_size < FILE_HEADER_SIZE + 3 * CHUNK_HEADER_SIZE + block_size:
            raise MaxDownloadTooSmall(max_size=max_size, block_size=block_size)
        chunks = [chunk for chunk, _data in iter_raw_chunks(source, block_size)]
        total_blocks = chunks[-1].start_block + chunks[-1].blocks if chunks else 0
    else:
        reader = SparseReader(source)
        block_size = reader.header.block_size
        if max_size < FILE_HEADER_SIZE + 3 * CHUNK_HEADER_SIZE + block_size:
            raise MaxDownloadTooSmall(max_size=max_size, block_size=block_size)
        chunks = list(reader.chunks())
        total_blocks = reader.header.total_blocks
    plan = _plan(iter(chunks), block_size, max_size)
    del chunks
    LOG.debug(
        "resparse: %d blocks of %d bytes into %d pieces of <= %d bytes", total_blocks, block_size, len(plan), max_size
    )
    for index, entries in enumerate(plan):
        yield SparsePiece(
            index=index,
            count=len(plan),
            size=_piece_size(entries, block_size, total_blocks),
            start_block=entries[0].start_block if entries else 0,
            end_block=entries[-1].start_block + entries[-1].blocks if entries else 0,
            block_size=block_size,
            total_blocks=total_blocks,
            source=source,
            source_base=base,
            source_is_raw=source_is_raw,
            entries=tuple(entries),
        )
