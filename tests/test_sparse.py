"""Android sparse images: strict parsing, raw <-> sparse round trips, re-sparsing, bounded memory."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.errors import MalformedSparseImage, MaxDownloadTooSmall
from firmware.resparse import resparse
from firmware.sparse import (
    CHUNK_HEADER,
    FILE_HEADER,
    SPARSE_MAGIC,
    ChunkType,
    SparseHeader,
    expand,
    parse_header,
    scan,
)
from firmware.sparse_write import write_sparse

RAW, FILL, SKIP, CRC = ChunkType.RAW, ChunkType.FILL, ChunkType.DONT_CARE, ChunkType.CRC32


def chunk(kind: int, blocks: int, payload: bytes = b"", total: int | None = None, chs: int = 12) -> bytes:
    size = chs + len(payload) if total is None else total
    return CHUNK_HEADER.pack(kind, 0, blocks, size) + bytes(chs - 12) + payload


def image(
    chunks: list[bytes],
    *,
    bs: int = 8,
    total_blocks: int,
    total_chunks: int | None = None,
    magic: int = SPARSE_MAGIC,
    major: int = 1,
    fhs: int = 28,
    chs: int = 12,
) -> bytes:
    count = len(chunks) if total_chunks is None else total_chunks
    header = FILE_HEADER.pack(magic, major, 0, fhs, chs, bs, total_blocks, count, 0)
    return header + bytes(max(0, fhs - 28)) + b"".join(chunks)


def expand_bytes(data: bytes, initial: bytes = b"") -> bytes:
    dest = io.BytesIO(initial)
    expand(io.BytesIO(data), dest)
    return dest.getvalue()


def to_sparse(raw: bytes, block_size: int = 8, *, dont_care_zeros: bool = False) -> bytes:
    out = io.BytesIO()
    write_sparse(io.BytesIO(raw), out, block_size, dont_care_zeros=dont_care_zeros)
    return out.getvalue()


class OneWay(io.RawIOBase):
    """A stream that cannot seek, like a socket or a hashing tee."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._data.read(min(len(buffer), 3))  # short reads on purpose
        buffer[: len(data)] = data
        return len(data)


# --- reading -----------------------------------------------------------------------------------------


def test_reader_expands_every_chunk_type_and_keeps_dont_care_regions() -> None:
    data = image(
        [
            chunk(RAW, 2, b"A" * 16),
            chunk(FILL, 1, b"\x01\x02\x03\x04"),
            chunk(CRC, 0, b"\0\0\0\0"),
            chunk(SKIP, 2),
            chunk(RAW, 1, b"B" * 8),
        ],
        total_blocks=6,
    )
    result = expand_bytes(data, b"\xee" * 48)
    assert result == b"A" * 16 + b"\x01\x02\x03\x04" * 2 + b"\xee" * 16 + b"B" * 8
    header, chunks = scan(io.BytesIO(data))
    assert header.expanded_size == 48
    assert [c.type for c in chunks] == [RAW, FILL, CRC, SKIP, RAW]
    assert [c.start_block for c in chunks] == [0, 2, 3, 3, 5]


def test_expand_extends_a_fresh_file_over_a_trailing_dont_care(tmp_path: Path) -> None:
    data = image([chunk(RAW, 1, b"C" * 8), chunk(SKIP, 1000)], total_blocks=1001)
    target = tmp_path / "part.img"
    with target.open("wb") as dest:
        expand(io.BytesIO(data), dest)
    assert target.stat().st_size == 1001 * 8
    assert target.read_bytes()[:8] == b"C" * 8


def test_expand_never_shortens_a_larger_partition() -> None:
    data = image([chunk(RAW, 1, b"D" * 8)], total_blocks=1)
    assert expand_bytes(data, b"\xee" * 32) == b"D" * 8 + b"\xee" * 24


def test_longer_headers_are_skipped_like_libsparse() -> None:
    data = image([chunk(RAW, 1, b"E" * 8, chs=16)], total_blocks=1, fhs=32, chs=16)
    assert expand_bytes(data) == b"E" * 8


def test_the_reader_streams_from_a_stream_that_cannot_seek() -> None:
    data = image([chunk(RAW, 3, bytes(range(24))), chunk(SKIP, 1), chunk(RAW, 1, b"F" * 8)], total_blocks=5)
    header, chunks = scan(OneWay(data))  # type: ignore[arg-type]
    assert header.total_blocks == 5 and len(chunks) == 3


GOOD = [chunk(RAW, 1, b"G" * 8), chunk(FILL, 2, b"\x05\x06\x07\x08")]

MALFORMED = {
    "bad magic": image(GOOD, total_blocks=3, magic=0xDEADBEEF),
    "major version 2": image(GOOD, total_blocks=3, major=2),
    "file header too small": image(GOOD, total_blocks=3, fhs=24),
    "chunk header too small": image(GOOD, total_blocks=3, chs=8),
    "block size 0": image(GOOD, total_blocks=3, bs=0),
    "block size not a multiple of 4": image(GOOD, total_blocks=3, bs=6),
    "truncated file header": image(GOOD, total_blocks=3)[:20],
    "truncated chunk header": image(GOOD, total_blocks=3)[:34],
    "truncated RAW payload": image(GOOD, total_blocks=3)[:44],
    "fewer chunks than declared": image(GOOD, total_blocks=3, total_chunks=3),
    "more chunks than declared": image(GOOD, total_blocks=1, total_chunks=1),
    "chunks past the total blocks": image(GOOD, total_blocks=2),
    "chunks short of the total blocks": image(GOOD, total_blocks=4),
    "RAW size disagrees with its blocks": image([chunk(RAW, 2, b"H" * 8)], total_blocks=2),
    "RAW of zero blocks": image([chunk(RAW, 0)], total_blocks=0),
    "FILL without a 4-byte value": image([chunk(FILL, 1, b"\x01\x02")], total_blocks=1),
    "FILL of zero blocks": image([chunk(FILL, 0, b"\0\0\0\0")], total_blocks=0),
    "DONT_CARE with a payload": image([chunk(SKIP, 1, b"\0\0\0\0")], total_blocks=1),
    "CRC32 covering blocks": image([chunk(CRC, 1, b"\0\0\0\0")], total_blocks=1),
    "unknown chunk type": image([chunk(0xCAC9, 1)], total_blocks=1),
    "data after the last chunk": image(GOOD, total_blocks=3) + b"x",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_images_are_refused_before_any_write(case: str) -> None:
    data = MALFORMED[case]
    with pytest.raises(MalformedSparseImage):
        scan(io.BytesIO(data))
    with pytest.raises(MalformedSparseImage):
        scan(OneWay(data))  # type: ignore[arg-type]


def test_parse_header_reports_the_expanded_size() -> None:
    header = parse_header(SparseHeader(4096, 10, 1).pack())
    assert (header.block_size, header.total_blocks, header.expanded_size) == (4096, 10, 40960)


# --- writing -----------------------------------------------------------------------------------------

blocks_strategy = st.lists(
    st.one_of(
        st.just(b"z"),
        st.binary(min_size=4, max_size=4).map(lambda p: b"f" + p),
        st.just(b"r"),
    ),
    max_size=40,
)


def build_raw(kinds: list[bytes], block_size: int, tail: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    for kind in kinds:
        if kind == b"z":
            out += bytes(block_size)
        elif kind[:1] == b"f":
            out += kind[1:] * (block_size // 4)
        else:
            out += rng.randbytes(block_size)
    out += rng.randbytes(tail)
    return bytes(out)


@settings(max_examples=150, deadline=None)
@given(
    kinds=blocks_strategy,
    block_size=st.sampled_from([4, 8, 64, 4096]),
    tail=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    dont_care=st.booleans(),
)
def test_raw_to_sparse_to_raw_round_trip(
    kinds: list[bytes], block_size: int, tail: int, seed: int, dont_care: bool
) -> None:
    raw = build_raw(kinds, block_size, tail, seed)
    sparse = to_sparse(raw, block_size, dont_care_zeros=dont_care)
    padded = raw + bytes(-len(raw) % block_size)
    header, chunks = scan(io.BytesIO(sparse))
    assert header.expanded_size == len(padded)
    assert expand_bytes(sparse, bytes(len(padded))) == padded
    if not dont_care:
        assert expand_bytes(sparse, b"\xee" * len(padded)) == padded
        assert SKIP not in {c.type for c in chunks}


def test_writer_finds_fill_and_zero_blocks() -> None:
    raw = bytes(4096 * 3) + b"\xab\xcd\xef\x01" * 1024 + os.urandom(4096)
    sparse = to_sparse(raw, 4096)
    _header, chunks = scan(io.BytesIO(sparse))
    assert [(c.type, c.blocks) for c in chunks] == [(FILL, 3), (FILL, 1), (RAW, 1)]
    assert len(sparse) < 4096 + 200
    assert [c.type for c in scan(io.BytesIO(to_sparse(raw, 4096, dont_care_zeros=True)))[1]] == [SKIP, FILL, RAW]


@pytest.mark.skipif(shutil.which("simg2img") is None, reason="android-sdk-libsparse-utils not installed")
def test_aosp_simg2img_reads_what_we_write(tmp_path: Path) -> None:
    raw = bytes(8192) + os.urandom(3 * 4096) + b"\x11\x22\x33\x44" * 2048 + os.urandom(100)
    (tmp_path / "a.simg").write_bytes(to_sparse(raw, 4096))
    subprocess.run(["simg2img", str(tmp_path / "a.simg"), str(tmp_path / "a.raw")], check=True)
    assert (tmp_path / "a.raw").read_bytes() == raw + bytes(-len(raw) % 4096)


@pytest.mark.skipif(shutil.which("img2simg") is None, reason="android-sdk-libsparse-utils not installed")
def test_we_read_what_aosp_img2simg_writes(tmp_path: Path) -> None:
    raw = os.urandom(5 * 4096) + bytes(40960) + b"\x99" * 8192
    (tmp_path / "b.raw").write_bytes(raw)
    subprocess.run(["img2simg", str(tmp_path / "b.raw"), str(tmp_path / "b.simg")], check=True)
    assert expand_bytes((tmp_path / "b.simg").read_bytes()) == raw


# --- re-sparsing -------------------------------------------------------------------------------------

chunk_strategy = st.lists(
    st.tuples(st.sampled_from([RAW, FILL, SKIP, CRC]), st.integers(1, 12), st.binary(min_size=4, max_size=4)),
    max_size=25,
)


def build_sparse(spec: list[tuple[ChunkType, int, bytes]], bs: int, seed: int) -> bytes:
    rng = random.Random(seed)
    parts = []
    blocks = 0
    for kind, n, value in spec:
        if kind is RAW:
            parts.append(chunk(RAW, n, rng.randbytes(n * bs)))
        elif kind is FILL:
            parts.append(chunk(FILL, n, value))
        elif kind is SKIP:
            parts.append(chunk(SKIP, n))
        else:
            parts.append(chunk(CRC, 0, value))
            n = 0
        blocks += n
    return image(parts, bs=bs, total_blocks=blocks)


def apply_pieces(pieces: list[bytes], initial: bytes) -> bytes:
    dest = io.BytesIO(initial)
    for piece in pieces:
        expand(io.BytesIO(piece), dest)
    return dest.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=chunk_strategy, bs=st.sampled_from([4, 16, 64]), seed=st.integers(0, 2**16), extra=st.integers(0, 400))
def test_resparse_pieces_fit_and_reproduce_the_image(
    spec: list[tuple[ChunkType, int, bytes]], bs: int, seed: int, extra: int
) -> None:
    sparse = build_sparse(spec, bs, seed)
    total = parse_header(sparse).expanded_size
    max_size = 28 + 36 + bs + extra
    pieces = []
    for piece in resparse(io.BytesIO(sparse), max_size):
        data = b"".join(piece.iter_bytes())
        assert len(data) == piece.size <= max_size
        assert parse_header(data).expanded_size == total
        pieces.append(data)
    garbage = random.Random(seed).randbytes(total)
    assert apply_pieces(pieces, garbage) == expand_bytes(sparse, garbage)


@settings(max_examples=60, deadline=None)
@given(kinds=blocks_strategy, tail=st.integers(0, 7), seed=st.integers(0, 2**16), extra=st.integers(0, 300))
def test_resparse_of_a_raw_image_reproduces_it(kinds: list[bytes], tail: int, seed: int, extra: int) -> None:
    raw = build_raw(kinds, 16, tail, seed)
    pieces = [b"".join(p.iter_bytes()) for p in resparse(io.BytesIO(raw), 28 + 36 + 16 + extra, block_size=16)]
    assert all(len(p) <= 28 + 36 + 16 + extra for p in pieces)
    padded = raw + bytes(-len(raw) % 16)
    assert apply_pieces(pieces, b"\xee" * len(padded)) == padded


def test_resparse_splits_a_large_raw_chunk_across_pieces() -> None:
    sparse = image([chunk(RAW, 100, os.urandom(400))], bs=4, total_blocks=100)
    pieces = list(resparse(io.BytesIO(sparse), 28 + 36 + 40))
    assert len(pieces) == 10 and {p.count for p in pieces} == {10}
    # the first piece needs no leading DONT_CARE, so it carries 3 more blocks (12 bytes) than the rest
    assert [(p.start_block, p.end_block) for p in pieces[:2]] == [(0, 13), (13, 23)]
    assert pieces[-1].end_block == 100 and max(p.size for p in pieces) == 104


def test_resparse_refuses_a_download_limit_below_one_block() -> None:
    sparse = image([chunk(RAW, 1, b"I" * 64)], bs=64, total_blocks=1)
    with pytest.raises(MaxDownloadTooSmall):
        list(resparse(io.BytesIO(sparse), 100))


def test_resparse_refuses_a_malformed_source_before_the_first_piece() -> None:
    with pytest.raises(MalformedSparseImage):
        next(resparse(io.BytesIO(MALFORMED["chunks past the total blocks"]), 4096))


@pytest.mark.skipif(shutil.which("simg2img") is None, reason="android-sdk-libsparse-utils not installed")
def test_aosp_simg2img_applies_our_pieces_in_order(tmp_path: Path) -> None:
    raw = os.urandom(20 * 4096) + bytes(8192) + os.urandom(4096)
    names = []
    for piece in resparse(io.BytesIO(raw), 5 * 4096):
        path = tmp_path / f"piece{piece.index}.simg"
        with path.open("wb") as out:
            piece.write_to(out)
        names.append(str(path))
    assert len(names) > 4
    subprocess.run(["simg2img", *names, str(tmp_path / "out.raw")], check=True)
    assert (tmp_path / "out.raw").read_bytes() == raw


# --- robustness --------------------------------------------------------------------------------------

VALID = image(
    [chunk(RAW, 2, bytes(range(16))), chunk(FILL, 3, b"\x01\x00\x00\x00"), chunk(SKIP, 2), chunk(CRC, 0, b"abcd")],
    total_blocks=7,
)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, len(VALID)),
)
def test_corrupted_images_give_a_typed_error_and_nothing_else(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for at, value in edits:
        data[at] = value
    corrupt = bytes(data[:cut])
    try:
        header, _chunks = scan(io.BytesIO(corrupt))
    except MalformedSparseImage:
        return
    if header.expanded_size <= 1 << 16:  # what scan accepts, expand and resparse handle whole
        expanded = expand_bytes(corrupt)
        assert len(expanded) <= header.expanded_size
        pieces = [b"".join(piece.iter_bytes()) for piece in resparse(io.BytesIO(corrupt), 1 << 16)]
        assert all(len(piece) <= 1 << 16 for piece in pieces)


# --- memory ------------------------------------------------------------------------------------------


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while data := fh.read(1 << 20):
            digest.update(data)
    return digest.hexdigest()


def test_a_512_mib_image_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 512 << 20
    raw_path = tmp_path / "big.raw"
    with raw_path.open("wb") as fh:
        fh.truncate(size)  # a sparse file: mostly zeros, no disk used
        for offset in (0, 100 << 20, 300 << 20):
            fh.seek(offset)
            fh.write(os.urandom(8 << 20))
        fh.seek(size - 4096)
        fh.write(b"\x5a" * 4096)
    sparse_path = tmp_path / "big.simg"
    expanded_path = tmp_path / "big.out"
    tracemalloc.start()
    try:
        with raw_path.open("rb") as raw, sparse_path.open("wb") as out:
            header = write_sparse(raw, out, dont_care_zeros=True)
        with sparse_path.open("rb") as src, expanded_path.open("wb") as dest:
            expand(src, dest)
        piece_sizes = []
        with sparse_path.open("rb") as src:
            for piece in resparse(src, 5 << 20):
                digest = hashlib.sha256()
                for data in piece.iter_bytes():
                    digest.update(data)
                piece_sizes.append(piece.size)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.expanded_size == size
    assert sparse_path.stat().st_size < (25 << 20)
    assert len(piece_sizes) >= 5 and max(piece_sizes) <= 5 << 20
    assert peak < 16 << 20, f"peak {peak} bytes"
    assert _sha256_of(expanded_path) == _sha256_of(raw_path)
