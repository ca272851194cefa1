"""The device side against a hostile host: forged cache hits, bad protocol versions, endless fragments.

Follows test_device_endpoint (its fake unit and helpers); each test fails against an endpoint that keys
its reply cache by CRC-32, converts HELLO's protocol with int() or keeps every fragment it is sent.
"""

from __future__ import annotations

import tracemalloc
import zlib
from typing import Any

import pytest
import test_device_endpoint
from test_device_endpoint import COUNT, Clock, FakeUnit, hello_frame, reply_payload

import terminal.device as device_module
from terminal import framing
from terminal.device import DeviceEndpoint, frame_for
from terminal.framing import Frame, encode_frame
from terminal.protocol import MessageType, decode_payload, encode_payload

unit = test_device_endpoint.unit  # the fixture: a fresh fake unit


def crc_twin(data: bytes, at: int, seed: int) -> bytes:
    """``data`` with bits of its 8 bytes from ``at`` flipped so that its seeded CRC-32 stays the same.

    The CRC of a fixed-length message is affine in its bits, so 64 free bits leave at least 32 ways to
    flip some without changing 32 bits of CRC: find one by Gaussian elimination over GF(2)."""
    base = zlib.crc32(data, seed)
    basis: dict[int, tuple[int, int]] = {}  # pivot bit -> (CRC change, bits flipped)
    for bit in range(64):
        flipped = bytearray(data)
        flipped[at + bit // 8] ^= 1 << (bit % 8)
        change, combination = zlib.crc32(flipped, seed) ^ base, 1 << bit
        while change:
            top = change.bit_length() - 1
            if top not in basis:
                basis[top] = (change, combination)
                break
            change ^= basis[top][0]
            combination ^= basis[top][1]
        else:
            twin = bytearray(data)
            for j in range(64):
                if combination >> j & 1:
                    twin[at + j // 8] ^= 1 << (j % 8)
            return bytes(twin)
    raise AssertionError("no twin")


def test_a_request_forged_to_the_same_crc_is_executed_not_answered_from_the_cache(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    original = encode_payload({"echo": bytes(8)})
    forged = crc_twin(original, len(original) - 8, COUNT)
    assert forged != original and zlib.crc32(forged, COUNT) == zlib.crc32(original, COUNT)
    endpoint.receive(encode_frame(Frame(7, COUNT, original)))
    answer = endpoint.receive(encode_frame(Frame(7, COUNT, forged)))
    assert reply_payload(answer)[1] == {"count": 2, "echo": decode_payload(forged)["echo"]}


@pytest.mark.parametrize("protocol", [1.9, 1.0, "1", True, 2, 0, None, [1], 2**64])
def test_hello_takes_only_the_integer_protocol_version(unit: FakeUnit, protocol: Any) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    endpoint.receive(hello_frame(1, session=7, max_frame=512))
    answer = endpoint.receive(encode_frame(frame_for(2, MessageType.HELLO, {"protocol": protocol, "session": 8})))
    flags, payload = reply_payload(answer)
    assert flags & framing.FLAG_ERROR and payload["code"] == "bad-request"
    assert (endpoint.session, endpoint.max_frame) == (7, 512)  # refused: nothing changed
    accepted = endpoint.receive(encode_frame(frame_for(3, MessageType.HELLO, {"protocol": 1, "session": 8})))
    assert reply_payload(accepted)[1]["protocol"] == 1 and endpoint.session == 8


@pytest.mark.parametrize(
    ("piece", "fragments", "bound"),
    [(framing.MAX_FRAME - framing.OVERHEAD, 120, device_module.MAX_REQUEST), (0, 30_000, 0)],
    ids=["120 fragments of 64 KiB", "30,000 empty fragments"],
)
def test_fragments_of_a_request_that_never_completes_cannot_eat_memory(
    unit: FakeUnit, piece: int, fragments: int, bound: int
) -> None:
    """A host that sends fragment after fragment of a message it never finishes: the unit's memory stays bounded."""
    endpoint = DeviceEndpoint(unit.handle)
    endpoint.receive(hello_frame(1, session=1, max_frame=framing.MAX_FRAME))
    filler = b"\x55" * piece  # no zero bytes: quick to unstuff
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(fragments):
            frame = Frame(2, COUNT, filler, fragment=i, fragments=framing.MAX_FRAGMENTS)
            assert endpoint.receive(encode_frame(frame)) == b""
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < bound + 256 * 1024  # unbounded, they held 7.9 MB and 2.3 MB
    assert reply_payload(endpoint.receive(encode_frame(frame_for(3, COUNT, {}))))[1]["count"] == 1  # still serving


def test_a_stale_unfinished_request_is_dropped() -> None:
    clock = Clock()
    unit = FakeUnit()
    endpoint = DeviceEndpoint(unit.handle, clock=clock.monotonic)
    data = encode_payload({"echo": "x" * 100})
    first, second = Frame(5, COUNT, data[:50], 0, 0, 2), Frame(5, COUNT, data[50:], 0, 1, 2)
    assert endpoint.receive(encode_frame(first)) == b""
    clock.now += device_module.STALE_REQUEST + 1  # its host gave up long ago
    assert endpoint.receive(encode_frame(second)) == b""  # not joined to the stale first half
    assert reply_payload(endpoint.receive(encode_frame(first)))[1]["echo"] == "x" * 100  # a fresh copy completes it
