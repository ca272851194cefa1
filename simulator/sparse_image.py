"""The simulated bootloader's writer of images: raw copies and a streaming Android sparse reader.

A sparse image is checked in full (structure, sizes) before the first byte is written, so a refused
image leaves the partition untouched.  Writing reports the byte ranges it wrote (the fault injector
damages bytes inside them) and stops between pieces when ``cancelled()`` turns true: a power cut
mid-write leaves a partly written partition, never a write after the cut.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

LOG = logging.getLogger(__name__)

SPARSE_MAGIC = 0xED26FF3A
_SPARSE_HEADER = struct.Struct("<IHHHHIIII")
_CHUNK_HEADER = struct.Struct("<HHII")
CHUNK_RAW, CHUNK_FILL, CHUNK_DONT_CARE, CHUNK_CRC32 = 0xCAC1, 0xCAC2, 0xCAC3, 0xCAC4
IO_CHUNK = 1 << 20
COPY_PIECE = 16 << 20  # one kernel copy between two checks of ``cancelled``

Cancelled = Callable[[], bool]
Extent = tuple[int, int]  # (offset, length) written in the partition


class SparseImageError(ValueError):
    """The sparse image is malformed (its text becomes the FAIL reason)."""


class WriteCancelled(Exception):
    """The unit lost power (or its link) while writing; the partition holds part of the image."""


def _never() -> bool:
    return False


def copy_range(
    src: int, src_offset: int, dst: int, dst_offset: int, length: int, cancelled: Cancelled = _never
) -> None:
    """Copy file bytes in the kernel when it can (copy_file_range), else through a buffer."""
    while length:
        if cancelled():
            raise WriteCancelled(f"{length} bytes left unwritten")
        try:
            n = os.copy_file_range(src, dst, min(length, COPY_PIECE), src_offset, dst_offset)
        except (AttributeError, OSError):
            n = 0
        if n <= 0:
            block = os.pread(src, min(length, IO_CHUNK), src_offset)
            if not block:
                raise SparseImageError(f"image ends {length} bytes early")
            n = os.pwrite(dst, block, dst_offset)
        src_offset += n
        dst_offset += n
        length -= n


def is_sparse(fh: BinaryIO) -> bool:
    head = os.pread(fh.fileno(), 4, 0)
    return len(head) == 4 and struct.unpack("<I", head)[0] == SPARSE_MAGIC


class _Chunk(NamedTuple):
    kind: int
    out: int
    length: int
    source: int
    fill: bytes


def _sparse_chunks(fd: int) -> tuple[int, list[_Chunk]]:
    """The expanded size and the chunks that write something (RAW at a source offset, FILL with a word)."""
    file_size = os.fstat(fd).st_size
    head = os.pread(fd, _SPARSE_HEADER.size, 0)
    if len(head) < _SPARSE_HEADER.size:
        raise SparseImageError("short sparse header")
    magic, major, _minor, file_hdr, chunk_hdr, blk_sz, total_blks, total_chunks, _crc = _SPARSE_HEADER.unpack(head)
    if magic != SPARSE_MAGIC or major != 1 or file_hdr < _SPARSE_HEADER.size or chunk_hdr < _CHUNK_HEADER.size:
        raise SparseImageError("unsupported sparse header")
    if blk_sz == 0 or blk_sz % 4:
        raise SparseImageError(f"block size {blk_sz}")
    chunks: list[_Chunk] = []
    pos, out = file_hdr, 0
    for index in range(total_chunks):
        raw = os.pread(fd, _CHUNK_HEADER.size, pos)
        if len(raw) < _CHUNK_HEADER.size:
            raise SparseImageError(f"truncated at chunk {index}")
        kind, _reserved, blocks, total = _CHUNK_HEADER.unpack(raw)
        data_len, length = total - chunk_hdr, blocks * blk_sz
        expected = {CHUNK_RAW: length, CHUNK_FILL: 4, CHUNK_DONT_CARE: 0, CHUNK_CRC32: 4}.get(kind)
        if expected is None or data_len != expected:
            raise SparseImageError(f"chunk {index}: type {kind:#x}, {total} bytes")
        if pos + total > file_size:
            raise SparseImageError(f"truncated in chunk {index}")
        if kind == CHUNK_FILL:
            chunks.append(_Chunk(kind, out, length, 0, os.pread(fd, 4, pos + chunk_hdr)))
        elif kind == CHUNK_RAW:
            chunks.append(_Chunk(kind, out, length, pos + chunk_hdr, b""))
        if kind != CHUNK_CRC32:
            out += length
        pos += total
    if out != total_blks * blk_sz:
        raise SparseImageError(f"chunks cover {out} bytes, header says {total_blks * blk_sz}")
    return out, chunks


def write_sparse(
    src: BinaryIO, dst: BinaryIO, limit: int, too_large: Callable[[int], Exception], cancelled: Cancelled = _never
) -> tuple[int, list[Extent]]:
    """Expand sparse ``src`` into ``dst``: RAW copied, FILL filled, DONT_CARE seeked over.

    Returns the expanded size and the ranges written; raises before writing when the image is
    malformed or too large."""
    size, chunks = _sparse_chunks(src.fileno())
    if size > limit:
        raise too_large(size)
    extents: list[Extent] = []
    for chunk in chunks:
        if not chunk.length:
            continue
        extents.append((chunk.out, chunk.length))
        if chunk.kind == CHUNK_RAW:
            copy_range(src.fileno(), chunk.source, dst.fileno(), chunk.out, chunk.length, cancelled)
            continue
        block = chunk.fill * (min(chunk.length, IO_CHUNK) // 4)
        end = chunk.out + chunk.length
        for offset in range(chunk.out, end, len(block)):
            if cancelled():
                raise WriteCancelled(f"{end - offset} bytes of a fill left unwritten")
            os.pwrite(dst.fileno(), block[: end - offset], offset)
    return size, extents
