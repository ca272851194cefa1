"""Turn a raw image into an Android sparse image, streaming, finding fill and all-zero blocks.

A block whose bytes repeat one 32-bit value becomes a FILL chunk (zeros included, so the sparse
image reproduces the raw one exactly); with ``dont_care_zeros`` zero blocks become DONT_CARE instead,
for targets where the old content of empty space does not matter.  A trailing partial block is
padded with zeros, as ``img2simg`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from i18n import _
from terminal.events import ProgressCallback

from .errors import MalformedSparseImage
from .sparse import (
    CHUNK_HEADER,
    CHUNK_HEADER_SIZE,
    FILE_HEADER_SIZE,
    PIECE,
    Chunk,
    ChunkType,
    SparseHeader,
)

LOG = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 4096
ZERO = b"\0\0\0\0"


def _check_block_size(block_size: int) -> None:
    if block_size <= 0 or block_size % 4:
        raise MalformedSparseImage(detail=_("the block size {size} is not a positive multiple of 4", size=block_size))


@dataclass
class _Run:
    type: ChunkType
    start_block: int
    data_offset: int
    fill: bytes = b""
    blocks: int = 0
    data: list[bytes] = field(default_factory=list)

    def chunk(self) -> Chunk:
        return Chunk(self.type, self.start_block, self.blocks, data_offset=self.data_offset, fill=self.fill)


def _read_full(stream: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def iter_raw_chunks(
    raw: BinaryIO,
    block_size: int = DEFAULT_BLOCK_SIZE,
    *,
    dont_care_zeros: bool = False,
    max_raw_bytes: int = PIECE,
) -> Iterator[tuple[Chunk, bytes]]:
    """Classify the blocks of ``raw`` into chunks; yields each chunk with its RAW payload (else b"").

    RAW chunks are capped at ``max_raw_bytes`` so that at most that much data is held at once.
    ``data_offset`` is the offset of the chunk's first block in ``raw`` (from where reading began).
    """
    _check_block_size(block_size)
    max_raw_blocks = max(1, max_raw_bytes // block_size)
    words = block_size // 4
    read_size = block_size * max(1, PIECE // block_size)
    run: _Run | None = None
    block = 0
    while True:
        buf = _read_full(raw, read_size)
        if not buf:
            break
        if len(buf) % block_size:
            buf += bytes(block_size - len(buf) % block_size)
        count = len(buf) // block_size
        pattern = buf[:4]
        if buf == pattern * (words * count):
            spans: list[tuple[bytes | None, int, int]] = [(pattern, 0, count)]
        else:
            spans = []
            for i in range(count):
                blk = buf[i * block_size : (i + 1) * block_size]
                head = blk[:4]
                kind = head if blk == head * words else None
                if spans and spans[-1][0] == kind:
                    spans[-1] = (kind, spans[-1][1], spans[-1][2] + 1)
                else:
                    spans.append((kind, i, 1))
        for kind, first, n in spans:
            if kind is None:
                ctype, fill = ChunkType.RAW, b""
            elif kind == ZERO and dont_care_zeros:
                ctype, fill = ChunkType.DONT_CARE, b""
            else:
                ctype, fill = ChunkType.FILL, kind
            at = block + first
            if run is not None and (
                run.type is not ctype or run.fill != fill or (ctype is ChunkType.RAW and run.blocks >= max_raw_blocks)
            ):
                yield run.chunk(), b"".join(run.data)
                run = None
            if ctype is ChunkType.RAW:
                taken = 0
                while taken < n:
                    if run is None:
                        run = _Run(ctype, at + taken, (at + taken) * block_size)
                    step = min(n - taken, max_raw_blocks - run.blocks)
                    start = (first + taken) * block_size
                    run.data.append(buf[start : start + step * block_size])
                    run.blocks += step
                    taken += step
                    if run.blocks >= max_raw_blocks and taken < n:
                        yield run.chunk(), b"".join(run.data)
                        run = None
            else:
                if run is None:
                    run = _Run(ctype, at, at * block_size, fill)
                run.blocks += n
        block += count
    if run is not None:
        yield run.chunk(), b"".join(run.data)


def write_sparse(
    raw: BinaryIO,
    out: BinaryIO,
    block_size: int = DEFAULT_BLOCK_SIZE,
    *,
    dont_care_zeros: bool = False,
    progress: ProgressCallback | None = None,
    total: int = 0,
) -> SparseHeader:
    """Write the sparse form of ``raw`` to the seekable ``out``; returns the header written.

    The header is written last (its chunk count is known only then), so ``out`` must be seekable.
    ``total`` is only for progress reports (the raw size, when known).
    """
    _check_block_size(block_size)
    base = out.tell()
    out.write(bytes(FILE_HEADER_SIZE))
    chunks = 0
    blocks = 0
    for chunk, data in iter_raw_chunks(raw, block_size, dont_care_zeros=dont_care_zeros):
        size = CHUNK_HEADER_SIZE + chunk.payload_size(block_size)
        out.write(CHUNK_HEADER.pack(chunk.type, 0, chunk.blocks, size))
        if chunk.type is ChunkType.RAW:
            out.write(data)
        elif chunk.type is ChunkType.FILL:
            out.write(chunk.fill)
        chunks += 1
        blocks = chunk.start_block + chunk.blocks
        if progress is not None:
            progress(min(blocks * block_size, total) if total else blocks * block_size, total)
    header = SparseHeader(block_size, blocks, chunks)
    end = out.tell()
    out.seek(base)
    out.write(header.pack())
    out.seek(end)
    LOG.debug("sparse image: %d blocks of %d bytes in %d chunks", blocks, block_size, chunks)
    return header
