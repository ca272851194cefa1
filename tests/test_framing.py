"""The frame codec: round trip, resynchronisation after garbage, every single-bit error detected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal import framing
from terminal.errors import FrameError
from terminal.framing import Frame, FrameDecoder, Reassembler, cobs_decode, cobs_encode, encode_frame, split_frames

frames = st.builds(
    Frame,
    seq=st.integers(0, 0xFFFF),
    type=st.integers(0, 0xFFFF),
    piece=st.binary(max_size=600),
    flags=st.integers(0, 3),
)


@given(st.binary(max_size=2000))
def test_cobs_round_trip_and_no_zero(data: bytes) -> None:
    stuffed = cobs_encode(data)
    assert 0 not in stuffed
    assert cobs_decode(stuffed) == data


@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    assert list(FrameDecoder().feed(encode_frame(frame))) == [frame]


@given(frames, frames, st.binary(max_size=300))
def test_resynchronises_after_garbage(first: Frame, second: Frame, garbage: bytes) -> None:
    decoder = FrameDecoder()
    got = list(decoder.feed(encode_frame(first) + garbage + encode_frame(second)))
    # garbage may not invent frames (CRC-32) and never costs the frames around it
    assert got == [first, second]


@given(frames, st.integers(1, 64))
def test_byte_by_byte_feeding(frame: Frame, step: int) -> None:
    wire = encode_frame(frame)
    decoder = FrameDecoder()
    got = [f for i in range(0, len(wire), step) for f in decoder.feed(wire[i : i + step])]
    assert got == [frame]


@settings(max_examples=40)
@given(frames)
def test_every_single_bit_error_is_detected(frame: Frame) -> None:
    wire = encode_frame(frame)
    for bit in range(8, (len(wire) - 1) * 8):  # every bit between the two delimiters
        damaged = bytearray(wire)
        damaged[bit // 8] ^= 1 << (bit % 8)
        decoder = FrameDecoder()
        assert list(decoder.feed(bytes(damaged))) == [], f"bit {bit} went unnoticed"
        assert decoder.errors >= 1


def test_oversized_frame_is_dropped_and_the_next_one_survives() -> None:
    decoder = FrameDecoder(max_frame=128)
    big = encode_frame(Frame(1, 2, b"x" * 1000))
    small = Frame(2, 2, b"ok")
    assert list(decoder.feed(big + encode_frame(small))) == [small]
    assert decoder.errors == 1


@given(st.binary(max_size=5000), st.integers(framing.MIN_FRAME, 1024))
def test_fragments_reassemble_in_any_order(payload: bytes, max_frame: int) -> None:
    pieces = split_frames(7, 0x0101, payload, max_frame, framing.FLAG_REPLY)
    assert all(len(framing.encode_frame(p)) <= max_frame + max_frame // 254 + 4 for p in pieces)
    reassembler = Reassembler()
    results = [reassembler.add(p) for p in reversed(pieces)]
    assert results[-1] == payload
    assert all(r is None for r in results[:-1])


def test_bad_stuffing_and_short_frames_raise_frame_error() -> None:
    with pytest.raises(FrameError):
        cobs_decode(b"\x05ab")
    with pytest.raises(FrameError):
        framing.decode_body(b"\x01\x00")
