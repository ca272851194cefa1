"""Android sparse images: the format, a strict streaming reader and expansion to a raw image.

The format (AOSP ``libsparse``): a 28-byte file header, then chunks, each a 12-byte header and a
payload.  RAW chunks carry blocks of data, FILL chunks one 32-bit value repeated, DONT_CARE chunks
nothing (the target keeps what it had), CRC32 chunks a checksum.  All integers are little-endian.
The reader never holds more than one piece of a payload in memory, whatever the image size, and
refuses anything inconsistent with :class:`MalformedSparseImage` before the data reaches a target.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from i18n import N_, _
from terminal.events import ProgressCallback

from .errors import MalformedSparseImage

LOG = logging.getLogger(__name__)

SPARSE_MAGIC = 0xED26FF3A
MAJOR_VERSION = 1
FILE_HEADER = struct.Struct("<IHHHHIIII")
CHUNK_HEADER = struct.Struct("<HHII")
FILE_HEADER_SIZE = FILE_HEADER.size  # 28
CHUNK_HEADER_SIZE = CHUNK_HEADER.size  # 12
PIECE = 1 << 20
"""Bytes moved per read or write: the bound on the memory a stream operation uses."""


class ChunkType(enum.IntEnum):
    RAW = 0xCAC1
    FILL = 0xCAC2
    DONT_CARE = 0xCAC3
    CRC32 = 0xCAC4


@dataclass(frozen=True)
class SparseHeader:
    block_size: int
    total_blocks: int
    total_chunks: int
    image_checksum: int = 0
    major_version: int = MAJOR_VERSION
    minor_version: int = 0
    file_header_size: int = FILE_HEADER_SIZE
    chunk_header_size: int = CHUNK_HEADER_SIZE

    @property
    def expanded_size(self) -> int:
        """Bytes of the raw image this sparse image stands for."""
        return self.block_size * self.total_blocks

    def pack(self) -> bytes:
        return FILE_HEADER.pack(
            SPARSE_MAGIC,
            self.major_version,
            self.minor_version,
            FILE_HEADER_SIZE,
            CHUNK_HEADER_SIZE,
            self.block_size,
            self.total_blocks,
            self.total_chunks,
            self.image_checksum,
        )


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk: where it lands in the raw image and, for RAW, where its payload sits in the source."""

    type: ChunkType
    start_block: int
    blocks: int
    data_offset: int = 0
    """Offset of the payload in the source stream (RAW); for raw sources, of the first block."""
    fill: bytes = b""
    """The 4-byte pattern of a FILL chunk."""
    crc: int | None = None

    def payload_size(self, block_size: int) -> int:
        """Bytes after the chunk header in a sparse file."""
        if self.type is ChunkType.RAW:
            return self.blocks * block_size
        return 4 if self.type in (ChunkType.FILL, ChunkType.CRC32) else 0


def is_sparse(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts with the sparse magic."""
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] == SPARSE_MAGIC


def parse_header(data: bytes) -> SparseHeader:
    """Decode and validate a file header (the first 28 bytes)."""
    if len(data) < FILE_HEADER_SIZE:
        raise MalformedSparseImage(detail=_("the file header ends after {size} bytes", size=len(data)))
    magic, major, minor, fhs, chs, bs, total_blocks, total_chunks, checksum = FILE_HEADER.unpack_from(data)
    if magic != SPARSE_MAGIC:
        raise MalformedSparseImage(
            detail=_("it does not start with the sparse magic number (found {magic})", magic=format(magic, "#010x"))
        )
    if major != MAJOR_VERSION:
        raise MalformedSparseImage(detail=_("major version {version} is not supported", version=major))
    if fhs < FILE_HEADER_SIZE:
        raise MalformedSparseImage(
            detail=_("the file header size {size} is below {minimum}", size=fhs, minimum=FILE_HEADER_SIZE)
        )
    if chs < CHUNK_HEADER_SIZE:
        raise MalformedSparseImage(
            detail=_("the chunk header size {size} is below {minimum}", size=chs, minimum=CHUNK_HEADER_SIZE)
        )
    if bs == 0 or bs % 4:
        raise MalformedSparseImage(detail=_("the block size {size} is not a positive multiple of 4", size=bs))
    return SparseHeader(bs, total_blocks, total_chunks, checksum, major, minor, fhs, chs)


# The parts of an image named when it ends too early (msgids, so the reader pays for no translation).
_FILE_HEADER = N_("the file header")
_CHUNK_HEADER = N_("the header of chunk {index}")
_CHUNK_DATA = N_("the data of chunk {index}")
_FILL_VALUE = N_("the fill value of chunk {index}")
_CRC32_VALUE = N_("the CRC32 value of chunk {index}")


class SparseReader:
    """Reads a sparse image from a stream, one chunk at a time, validating as it goes.

    Iterate :meth:`chunks`; for a RAW chunk, :meth:`payload` streams its data.  A payload left
    unread is skipped (seeking when the stream can).  The block and chunk totals of the header are
    checked against the chunks, and bytes after the last chunk are refused.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._offset = 0
        self._seekable = _seekable(stream)
        self.base = stream.tell() if self._seekable else 0
        """Position of the sparse header in the stream; payload offsets are relative to it."""
        self._end: int | None = None
        self._index = 0  # the chunk being read, named in errors
        self.header = parse_header(self._read_exact(FILE_HEADER_SIZE, _FILE_HEADER))
        self._skip(self.header.file_header_size - FILE_HEADER_SIZE, _FILE_HEADER)
        self._pending = 0  # unread payload bytes of the current chunk
        self._current: Chunk | None = None

    @property
    def offset(self) -> int:
        """Bytes consumed from the stream so far."""
        return self._offset

    def chunks(self) -> Iterator[Chunk]:
        header = self.header
        block = 0
        for index in range(header.total_chunks):
            self._finish_payload()
            self._index = index
            raw = self._read_exact(CHUNK_HEADER_SIZE, _CHUNK_HEADER)
            kind, _reserved, blocks, total_size = CHUNK_HEADER.unpack(raw)
            self._skip(header.chunk_header_size - CHUNK_HEADER_SIZE, _CHUNK_HEADER)
            chunk = self._decode_chunk(index, kind, blocks, total_size, block)
            block += chunk.blocks
            if block > header.total_blocks:
                raise MalformedSparseImage(
                    detail=_(
                        "chunk {index} ends at block {block}, past the {total} blocks of the image",
                        index=index,
                        block=block,
                        total=header.total_blocks,
                    )
                )
            self._current = chunk
            yield chunk
        self._finish_payload()
        if block != header.total_blocks:
            raise MalformedSparseImage(
                detail=_(
                    "the chunks cover {blocks} blocks; the header declares {total}",
                    blocks=block,
                    total=header.total_blocks,
                )
            )
        if self._stream.read(1):
            raise MalformedSparseImage(
                detail=_("unexpected data after the last chunk, at byte {offset}", offset=self._offset)
            )

    def payload(self, size: int = PIECE) -> Iterator[bytes]:
        """The unread payload of the current RAW chunk, in pieces of at most ``size`` bytes."""
        while self._pending:
            data = self._read_exact(min(size, self._pending), _CHUNK_DATA)
            self._pending -= len(data)
            yield data

    def _decode_chunk(self, index: int, kind: int, blocks: int, total_size: int, block: int) -> Chunk:
        header = self.header
        payload = total_size - header.chunk_header_size
        if kind == ChunkType.RAW:
            if payload != blocks * header.block_size or blocks == 0:
                raise self._bad_size(index, "RAW", blocks, total_size)
            chunk = Chunk(ChunkType.RAW, block, blocks, data_offset=self._offset)
            self._pending = payload
            return chunk
        if kind == ChunkType.FILL:
            if payload != 4 or blocks == 0:
                raise self._bad_size(index, "FILL", blocks, total_size)
            return Chunk(ChunkType.FILL, block, blocks, fill=self._read_exact(4, _FILL_VALUE))
        if kind == ChunkType.DONT_CARE:
            if payload != 0 or blocks == 0:
                raise self._bad_size(index, "DONT_CARE", blocks, total_size)
            return Chunk(ChunkType.DONT_CARE, block, blocks)
        if kind == ChunkType.CRC32:
            if payload != 4 or blocks != 0:
                raise self._bad_size(index, "CRC32", blocks, total_size)
            (crc,) = struct.unpack("<I", self._read_exact(4, _CRC32_VALUE))
            return Chunk(ChunkType.CRC32, block, 0, crc=crc)
        raise MalformedSparseImage(
            detail=_("chunk {index} has the unknown type {kind}", index=index, kind=format(kind, "#06x"))
        )

    @staticmethod
    def _bad_size(index: int, name: str, blocks: int, total_size: int) -> MalformedSparseImage:
        return MalformedSparseImage(
            detail=_(
                "chunk {index} ({kind}) of {blocks} blocks has an inconsistent size of {size} bytes",
                index=index,
                kind=name,
                blocks=blocks,
                size=total_size,
            )
        )

    def _finish_payload(self) -> None:
        if self._pending:
            self._skip(self._pending, _CHUNK_DATA)
            self._pending = 0

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._stream.read(size)
        if len(data) != size:
            # A stream may return short reads before its end; keep reading until it really ends.
            parts = [data]
            got = len(data)
            while data and got < size:
                data = self._stream.read(size - got)
                parts.append(data)
                got += len(data)
            if got != size:
                raise self._truncated(what, self._offset + got)
            data = b"".join(parts)
        self._offset += size
        return data

    def _truncated(self, what: str, offset: int) -> MalformedSparseImage:
        """``what`` is one of the part msgids above; it may name the chunk being read."""
        part = _(what, index=self._index)
        return MalformedSparseImage(detail=_("it ends inside {part}, at byte {offset}", part=part, offset=offset))

    def _skip(self, size: int, what: str) -> None:
        if size <= 0:
            return
        if self._seekable:
            if self._end is None:
                self._end = self._stream.seek(0, 2) - self.base
            if self._offset + size > self._end:
                raise self._truncated(what, self._end)
            self._offset += size
            self._stream.seek(self.base + self._offset)
            return
        while size:
            step = min(size, PIECE)
            self._read_exact(step, what)
            size -= step


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def scan(stream: BinaryIO) -> tuple[SparseHeader, list[Chunk]]:
    """Validate a whole sparse image without keeping its data: the header and every chunk."""
    reader = SparseReader(stream)
    return reader.header, list(reader.chunks())


def write_fill(dest: BinaryIO, pattern: bytes, size: int) -> None:
    """Write ``size`` bytes of the repeated 4-byte ``pattern`` in bounded pieces."""
    piece = pattern * (min(size, PIECE) // 4)
    while size:
        step = min(size, len(piece))
        dest.write(piece[:step] if step != len(piece) else piece)
        size -= step


def expand(source: BinaryIO, dest: BinaryIO, progress: ProgressCallback | None = None) -> SparseHeader:
    """Write the raw image of the sparse ``source`` into the seekable ``dest``, starting at its offset 0.

    DONT_CARE regions are seeked over, so ``dest`` keeps what it held there (a fresh file stays
    sparse on disk).  ``dest`` is extended to the full image length but never shortened.
    """
    reader = SparseReader(source)
    header = reader.header
    total = header.expanded_size
    bs = header.block_size
    for chunk in reader.chunks():
        position = chunk.start_block * bs
        if chunk.type is ChunkType.RAW:
            dest.seek(position)
            for data in reader.payload():
                dest.write(data)
        elif chunk.type is ChunkType.FILL:
            dest.seek(position)
            write_fill(dest, chunk.fill, chunk.blocks * bs)
        if progress is not None and chunk.blocks:
            progress((chunk.start_block + chunk.blocks) * bs, total)
    if dest.seek(0, 2) < total:
        dest.truncate(total)
    return header
