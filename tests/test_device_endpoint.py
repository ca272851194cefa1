"""DeviceEndpoint and ManagementClient together, in process: reply cache, fragments, negotiation, hostility.

The client talks to the endpoint through ``LoopbackTransport``, an in-memory Transport that can drop or
damage bytes with a seeded random and runs on a virtual clock, so retransmission timers cost no wall time
and every run of a noisy-link test sees the same noise.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import terminal.client as client_module
from terminal import framing
from terminal.client import ManagementClient
from terminal.device import DeviceEndpoint, RequestRejected, frame_for
from terminal.errors import FrameError, RemoteError, TransportTimeout
from terminal.framing import Frame, FrameDecoder, encode_frame
from terminal.protocol import OBJECT_LOOPBACK, ErrorCode, MessageType, Payload, decode_payload, encode_payload
from terminal.transports import Transport

COUNT = 0x01F0  # a test-only request: answers how many times it has executed
BLOB = 0x01F1  # a test-only request: answers {"blob": <size> bytes}


class Clock:
    """Virtual monotonic time; the transport advances it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FakeUnit:
    """The device-side handler: a counter, a blob of any size, a loopback object and refusals."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.loopback = bytearray()
        self.stored: bytes | None = None

    def handle(self, type_: int, payload: Payload) -> Payload:
        self.calls[type_] += 1
        if type_ == MessageType.HELLO:
            return {"serial": "DF2TEST0001", "model": "df2", "mode": "run"}
        if type_ == COUNT:
            return {"count": self.calls[COUNT], "echo": payload.get("echo")}
        if type_ == BLOB:
            size = int(payload["size"])
            return {"blob": bytes(i % 251 for i in range(size))}
        if type_ == MessageType.OBJECT_WRITE:
            return self._write(payload)
        if type_ == MessageType.OBJECT_READ:
            return self._read(payload)
        raise RequestRejected(ErrorCode.UNKNOWN_TYPE, f"0x{type_:04x}")

    def _write(self, payload: Payload) -> Payload:
        if payload["name"] != OBJECT_LOOPBACK:
            raise RequestRejected(ErrorCode.READ_ONLY, str(payload["name"]))
        if payload["offset"] == 0:
            self.loopback = bytearray()
        if payload["offset"] != len(self.loopback):
            raise RequestRejected(ErrorCode.BAD_REQUEST, "unexpected offset")
        self.loopback += payload["data"]
        complete = len(self.loopback) == payload["total"]
        if complete:
            if hashlib.sha256(self.loopback).digest() != payload["sha256"]:
                raise RequestRejected(ErrorCode.INTEGRITY, "SHA-256 mismatch")
            self.stored = bytes(self.loopback)
        return {"received": len(self.loopback), "complete": complete}

    def _read(self, payload: Payload) -> Payload:
        if payload["name"] != OBJECT_LOOPBACK or self.stored is None:
            raise RequestRejected(ErrorCode.NOT_FOUND, str(payload["name"]))
        offset, length = int(payload["offset"]), int(payload["length"])
        data = self.stored
        return {
            "name": OBJECT_LOOPBACK,
            "offset": offset,
            "total": len(data),
            "sha256": hashlib.sha256(data).digest(),
            "data": data[offset : offset + length],
        }


def _damage(data: bytes, rng: random.Random, ber: float, drop: float) -> bytes:
    """``data`` with each bit flipped with probability ``ber`` and each byte lost with probability ``drop``."""
    if ber <= 0 and drop <= 0:
        return data
    out = bytearray()
    for byte in data:
        if drop and rng.random() < drop:
            continue
        if ber:
            for bit in range(8):
                if rng.random() < ber:
                    byte ^= 1 << bit
        out.append(byte)
    return bytes(out)


class LoopbackTransport(Transport):
    """The host end of an in-memory link whose far end is a DeviceEndpoint.

    ``reply_filter(answer, n)`` may rewrite the n-th answer (0-based) before it is delivered.
    """

    def __init__(
        self,
        endpoint: DeviceEndpoint,
        clock: Clock,
        *,
        seed: int = 0,
        ber: float = 0.0,
        drop: float = 0.0,
        latency: float = 0.0,
        reply_filter: Callable[[bytes, int], bytes] | None = None,
    ) -> None:
        self.path = "loopback:test"
        self.endpoint = endpoint
        self.clock = clock
        self.rng = random.Random(seed)
        self.ber, self.drop, self.latency = ber, drop, latency
        self.reply_filter = reply_filter
        self.writes: list[tuple[float, bytes]] = []
        self.answers = 0
        self._pending: list[tuple[float, bytes]] = []
        self._inbox = bytearray()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock.now, data))
        answer = self.endpoint.receive(_damage(data, self.rng, self.ber, self.drop))
        if answer:
            if self.reply_filter is not None:
                answer = self.reply_filter(answer, self.answers)
            self.answers += 1
            if answer:  # a lost answer is nothing on its way, not an empty delivery that ends a read
                self._pending.append((self.clock.now + self.latency, _damage(answer, self.rng, self.ber, self.drop)))

    def read(self, size: int, timeout: float) -> bytes:
        self._deliver()
        if not self._inbox and self._pending:
            due = min(t for t, _ in self._pending)
            if due <= self.clock.now + timeout:
                self.clock.now = max(self.clock.now, due)
                self._deliver()
        if not self._inbox:
            self.clock.now += timeout
            return b""
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    def _deliver(self) -> None:
        due = [item for item in self._pending if item[0] <= self.clock.now]
        self._pending = [item for item in self._pending if item[0] > self.clock.now]
        for _, data in due:
            self._inbox += data


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The client's clock, made virtual so waiting for a lost reply costs no wall time."""
    virtual = Clock()
    monkeypatch.setattr(client_module, "time", SimpleNamespace(monotonic=virtual.monotonic))
    return virtual


def make_client(transport: Transport, **options: Any) -> ManagementClient:
    """A client with a fixed session and sequence number, so a seeded noisy link replays identically."""
    client = ManagementClient(transport, **options)
    client.session = 0x5EED
    client._seq = 100
    return client


@pytest.fixture
def unit() -> FakeUnit:
    return FakeUnit()


@pytest.fixture
def connect(unit: FakeUnit, clock: Clock) -> Iterator[Callable[..., tuple[ManagementClient, LoopbackTransport]]]:
    """``connect(max_frame=..., limit=..., **link)``: an open client over a LoopbackTransport to ``unit``."""
    opened: list[ManagementClient] = []

    def make(
        *, max_frame: int = 4096, limit: int = framing.MAX_FRAME, timeout: float = 30.0, **link: Any
    ) -> tuple[ManagementClient, LoopbackTransport]:
        endpoint = DeviceEndpoint(unit.handle, max_frame_limit=limit)
        transport = LoopbackTransport(endpoint, clock, **link)
        client = make_client(transport, max_frame=max_frame, timeout=timeout)
        client.open()
        opened.append(client)
        return client, transport

    yield make
    for client in opened:
        client.close()


def replies(wire: bytes) -> list[Frame]:
    return list(FrameDecoder().feed(wire))


def reply_payload(wire: bytes) -> tuple[int, Payload]:
    """The flags and payload of the one whole reply in ``wire``."""
    frames = replies(wire)
    assert frames and all(f.is_reply for f in frames)
    return frames[0].flags, decode_payload(b"".join(f.piece for f in frames))


def hello_frame(seq: int, session: int, max_frame: int = 1024) -> bytes:
    return encode_frame(frame_for(seq, MessageType.HELLO, {"session": session, "max_frame": max_frame}))


# -- reply cache ----------------------------------------------------------------------------------------
def test_retransmitted_frame_executes_once_and_gets_the_same_reply(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    request = encode_frame(frame_for(7, COUNT, {"echo": "a"}))
    first = endpoint.receive(request)
    again = endpoint.receive(request)
    assert first == again
    assert reply_payload(first) == (framing.FLAG_REPLY, {"count": 1, "echo": "a"})
    assert unit.calls[COUNT] == 1
    assert endpoint.executions["0x01f0"] == 1


def test_same_seq_with_another_payload_executes_again(unit: FakeUnit) -> None:
    """After the 16-bit sequence number wraps, a new request reuses an old number; it must run."""
    endpoint = DeviceEndpoint(unit.handle)
    endpoint.receive(encode_frame(frame_for(7, COUNT, {"echo": "before wrap"})))
    answer = endpoint.receive(encode_frame(frame_for(7, COUNT, {"echo": "after wrap"})))
    assert reply_payload(answer)[1] == {"count": 2, "echo": "after wrap"}
    # the same seq and payload under another type is another request too (the fingerprint is seeded with it)
    other = endpoint.receive(encode_frame(frame_for(7, BLOB, {"echo": "after wrap", "size": 1})))
    assert reply_payload(other)[1] == {"blob": b"\x00"}


def test_client_sequence_wrap_executes_the_new_request(connect: Any, unit: FakeUnit) -> None:
    client, _ = connect()
    client._seq = 0xFFFE
    assert client.request(COUNT, {"echo": 1})["count"] == 1  # seq 0xFFFF
    assert client.request(COUNT, {"echo": 2})["count"] == 2  # seq 0: wrapped
    client._seq = 0xFFFE  # 65536 requests later the same numbers come round again
    assert client.request(COUNT, {"echo": 3}) == {"count": 3, "echo": 3}
    assert unit.calls[COUNT] == 3


def test_lost_reply_is_answered_from_the_cache(connect: Any, unit: FakeUnit) -> None:
    lost = {1}  # answer 0 is the hello reply; lose the first answer to the request

    def lose(answer: bytes, n: int) -> bytes:
        return b"" if n in lost else answer

    client, transport = connect(reply_filter=lose)
    assert client.request(COUNT, {"echo": "x"}) == {"count": 1, "echo": "x"}
    assert client.retransmissions == 1
    assert len(transport.writes) == 3  # hello, the request, its retransmission
    assert unit.calls[COUNT] == 1


def test_hello_with_the_same_session_keeps_the_cache_a_new_session_clears_it(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    request = encode_frame(frame_for(9, COUNT, {}))
    endpoint.receive(hello_frame(1, session=111))
    endpoint.receive(request)
    endpoint.receive(hello_frame(2, session=111))  # e.g. a frame-size renegotiation
    assert reply_payload(endpoint.receive(request))[1]["count"] == 1  # from the cache
    endpoint.receive(hello_frame(3, session=222))  # another host, or the station restarted
    assert reply_payload(endpoint.receive(request))[1]["count"] == 2  # executed afresh
    assert endpoint.session == 222


def test_cache_keeps_the_latest_replies_only(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle, cache_size=4)
    requests = [encode_frame(frame_for(seq, COUNT, {})) for seq in range(5)]
    for request in requests:
        endpoint.receive(request)
    assert reply_payload(endpoint.receive(requests[4]))[1]["count"] == 5  # still cached
    assert reply_payload(endpoint.receive(requests[0]))[1]["count"] == 6  # evicted, so executed again


def test_error_replies_are_cached_too(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    request = encode_frame(frame_for(3, 0x01FE, {}))
    first = endpoint.receive(request)
    assert endpoint.receive(request) == first
    assert unit.calls[0x01FE] == 1


# -- fragments and frame size ------------------------------------------------------------------------------
def test_large_reply_comes_in_fragments_and_reassembles(connect: Any) -> None:
    client, transport = connect(max_frame=256)
    reply = client.request(BLOB, {"size": 20_000})
    assert reply["blob"] == bytes(i % 251 for i in range(20_000))
    frames = replies(transport.endpoint.receive(encode_frame(frame_for(client._seq, BLOB, {"size": 20_000}))))
    assert len(frames) == -(-len(encode_payload(reply)) // (256 - framing.OVERHEAD))
    assert [f.fragment for f in frames] == list(range(len(frames)))
    assert {f.fragments for f in frames} == {len(frames)}


def test_fragments_are_kept_across_a_retransmission(connect: Any, unit: FakeUnit) -> None:
    def lose_third_fragment(answer: bytes, n: int) -> bytes:
        if n != 1:
            return answer
        pieces = answer.split(b"\x00\x00")  # back-to-back frames: ...<0><0>...
        del pieces[2]
        return b"\x00\x00".join(pieces)

    client, _ = connect(max_frame=256, reply_filter=lose_third_fragment)
    assert len(client.request(BLOB, {"size": 5_000})["blob"]) == 5_000
    assert client.retransmissions == 1
    assert unit.calls[BLOB] == 1


@pytest.mark.parametrize(
    ("wanted", "limit", "granted"),
    [
        (10, framing.MAX_FRAME, framing.MIN_FRAME),
        (64, framing.MAX_FRAME, 64),
        (1000, framing.MAX_FRAME, 1000),
        (1_000_000, framing.MAX_FRAME, framing.MAX_FRAME),
        (4096, 512, 512),
    ],
)
def test_frame_size_is_negotiated_at_hello(connect: Any, wanted: int, limit: int, granted: int) -> None:
    client, transport = connect(max_frame=wanted, limit=limit)
    assert client.identity["max_frame"] == granted
    assert client.max_frame == transport.endpoint.max_frame == granted
    assert len(client.request(BLOB, {"size": 3 * granted})["blob"]) == 3 * granted
    # every frame the unit sent since hello fits the granted size
    answer = transport.endpoint.receive(encode_frame(frame_for(client._seq, BLOB, {"size": 3 * granted})))
    bodies = [framing.cobs_decode(s) for s in answer.split(b"\x00") if s]
    assert len(bodies) > 1 and max(len(b) for b in bodies) <= granted


def test_before_hello_replies_use_the_default_frame_size(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    answer = endpoint.receive(encode_frame(frame_for(1, BLOB, {"size": 1000})))
    bodies = [framing.cobs_decode(s) for s in answer.split(b"\x00") if s]
    assert len(bodies) == 5 and max(len(b) for b in bodies) == framing.DEFAULT_FRAME


# -- errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_", "payload", "code"),
    [
        (0x01FE, {}, "unknown-type"),
        (MessageType.OBJECT_READ, {"name": "nothing", "offset": 0, "length": 10}, "not-found"),
        (MessageType.OBJECT_WRITE, {"name": "logs"}, "read-only"),
        (BLOB, {}, "bad-request"),  # the handler's KeyError
        (BLOB, {"size": "many"}, "bad-request"),  # the handler's ValueError
    ],
)
def test_error_reply_becomes_remote_error_with_the_code(connect: Any, type_: int, payload: Payload, code: str) -> None:
    client, _ = connect()
    with pytest.raises(RemoteError) as caught:
        client.request(type_, payload)
    assert caught.value.params["code"] == code
    assert client.request(COUNT)["count"] == 1  # the channel is fine afterwards


def test_integrity_error_on_a_corrupted_object(connect: Any, unit: FakeUnit) -> None:
    client, _ = connect(max_frame=1024)
    data = bytes(range(256)) * 40
    client.write_object(OBJECT_LOOPBACK, data)
    assert client.read_object(OBJECT_LOOPBACK) == data
    with pytest.raises(RemoteError) as caught:
        client.request(
            MessageType.OBJECT_WRITE,
            {
                "name": OBJECT_LOOPBACK,
                "offset": 0,
                "total": 3,
                "sha256": hashlib.sha256(b"abd").digest(),
                "data": b"abc",
            },
        )
    assert caught.value.params["code"] == "integrity"


# -- hostile payloads -------------------------------------------------------------------------------------
def _nested(depth: int) -> bytes:
    """A map whose value is ``depth`` - 1 nested one-element arrays around an integer at ``depth``."""
    return b"\xa1\x61a" + b"\x81" * (depth - 1) + b"\x01"


HOSTILE = {
    "array": cbor2.dumps([1, 2]),
    "integer": cbor2.dumps(5),
    "text": cbor2.dumps("hello"),
    "datetime tag 0": cbor2.dumps({"a": cbor2.CBORTag(0, "2020-01-01T00:00:00Z")}),
    "epoch tag 1": cbor2.dumps({"a": cbor2.CBORTag(1, 1_600_000_000)}),
    "regex tag 35": cbor2.dumps({"a": cbor2.CBORTag(35, "(a+)+$")}),
    "broken regex tag 35": cbor2.dumps({"a": cbor2.CBORTag(35, "(")}),
    "mime tag 36": cbor2.dumps({"a": cbor2.CBORTag(36, "Content-Type: text/plain\n\nhi")}),
    "set tag 258": cbor2.dumps({"a": cbor2.CBORTag(258, [1, 2])}),
    "decimal tag 4": cbor2.dumps({"a": cbor2.CBORTag(4, [-2, 27315])}),
    "unknown tag": cbor2.dumps({"a": cbor2.CBORTag(9999, 1)}),
    "self reference": bytes.fromhex("a16161d81c81d81d00"),  # shareable(tag 28) list holding itself (tag 29)
    "undefined": bytes.fromhex("a16161f7"),
    "simple value": bytes.fromhex("a16161f0"),
    "integer key": cbor2.dumps({1: 2}),
    "nested key map": bytes.fromhex("a1a16161016162"),
    "nested 17 deep": _nested(17),
    "nested 40000 deep": _nested(40_000),
    "indefinite 40000 deep": b"\xa1\x61a" + b"\x9f" * 40_000,
    "truncated": cbor2.dumps({"a": b"x" * 100})[:50],
    "huge length": bytes.fromhex("a161615bffffffffffffffff"),
    "empty": b"",
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("type_", [COUNT, MessageType.HELLO])
def test_hostile_payload_gets_bad_request_and_the_endpoint_lives_on(unit: FakeUnit, data: bytes, type_: int) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    endpoint.receive(hello_frame(1, session=1))
    answer = endpoint.receive(encode_frame(Frame(2, type_, data)))
    flags, payload = reply_payload(answer)
    assert flags == framing.FLAG_REPLY | framing.FLAG_ERROR
    assert payload["code"] == "bad-request"
    assert unit.calls[COUNT] == 0
    assert reply_payload(endpoint.receive(encode_frame(frame_for(3, COUNT, {}))))[1]["count"] == 1


def test_nesting_up_to_the_limit_is_accepted(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    flags, _ = reply_payload(endpoint.receive(encode_frame(Frame(1, COUNT, _nested(16)))))
    assert flags == framing.FLAG_REPLY


def test_hello_with_an_infinite_frame_size_is_refused(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    answer = endpoint.receive(encode_frame(frame_for(1, MessageType.HELLO, {"session": 1, "max_frame": float("inf")})))
    assert reply_payload(answer)[1]["code"] == "bad-request"


def test_reply_too_large_for_the_fragment_count_is_refused(unit: FakeUnit) -> None:
    endpoint = DeviceEndpoint(unit.handle)
    endpoint.receive(hello_frame(1, session=5, max_frame=framing.MIN_FRAME))
    room = framing.MIN_FRAME - framing.OVERHEAD
    answer = endpoint.receive(encode_frame(frame_for(2, BLOB, {"size": framing.MAX_FRAGMENTS * room + 1})))
    flags, payload = reply_payload(answer)
    assert flags & framing.FLAG_ERROR and payload["code"] == "bad-request"


@pytest.mark.parametrize("reply", [cbor2.dumps([1]), cbor2.dumps({"a": cbor2.CBORTag(1, 0)}), b"\xff"])
def test_hostile_reply_raises_frame_error_on_the_station(connect: Any, reply: bytes) -> None:
    def forge(answer: bytes, n: int) -> bytes:
        if n == 0:
            return answer
        frame = replies(answer)[0]
        return encode_frame(Frame(frame.seq, frame.type, reply, frame.flags))

    client, _ = connect(reply_filter=forge)
    with pytest.raises(FrameError):
        client.request(COUNT)


# -- fuzz ------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=6))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    unit = FakeUnit()
    endpoint = DeviceEndpoint(unit.handle)
    for chunk in chunks:
        assert isinstance(endpoint.receive(chunk), bytes)
    # and the stream resynchronises: the next delimited request is answered
    answer = endpoint.receive(encode_frame(frame_for(1, COUNT, {})))
    assert reply_payload(answer)[1]["count"] == unit.calls[COUNT] >= 1


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 0xFFFF),
    st.sampled_from([*MessageType, COUNT, BLOB, 0x0200, 0xFFFF]),
    st.integers(0, 255),
    st.binary(max_size=300),
)
def test_well_framed_random_payloads_never_raise(seq: int, type_: int, flags: int, piece: bytes) -> None:
    endpoint = DeviceEndpoint(FakeUnit().handle)
    answer = endpoint.receive(encode_frame(Frame(seq, type_, piece, flags)))
    if flags & framing.FLAG_REPLY:
        assert answer == b""  # a unit ignores replies
    else:
        assert all(f.seq == seq and f.is_reply for f in replies(answer))


# -- retransmission timer and a noisy link -----------------------------------------------------------------
def test_retransmission_timer_learns_the_round_trip(connect: Any) -> None:
    lost = 31  # answer 0 is the hello reply, 1..30 the requests that teach the timer; lose the next one

    def lose(answer: bytes, n: int) -> bytes:
        return b"" if n == lost else answer

    client, transport = connect(latency=0.1, reply_filter=lose)
    for _ in range(30):
        client.request(COUNT)
    assert client.retransmissions == 0
    client.request(COUNT)
    (sent, _), (resent, _) = transport.writes[-2:]
    assert client.retransmissions == 1
    assert resent - sent == pytest.approx(0.2, rel=0.05)  # two smoothed round trips once the deviation settles


def test_silent_unit_times_out_with_growing_intervals(connect: Any) -> None:
    client, transport = connect(max_frame=64, timeout=5.0)  # 64: nothing left to shrink
    transport.drop = 1.0
    sent_before = len(transport.writes)
    with pytest.raises(TransportTimeout):
        client.request(COUNT)
    times = [t for t, _ in transport.writes[sent_before:]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 3
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps))  # backs off
    assert max(gaps) <= client_module.MAX_RTO + 1e-9
    assert times[-1] - times[0] <= 5.0 + 1e-9


def test_noisy_link_shrinks_frames_and_still_moves_objects_intact(connect: Any, unit: FakeUnit) -> None:
    client, transport = connect(max_frame=4096, seed=7, ber=1e-4, drop=2e-5, timeout=120.0)
    data = random.Random(1).randbytes(48 * 1024)
    chunks: list[int] = []
    client.write_object(OBJECT_LOOPBACK, data, progress=lambda done, total: chunks.append(done))
    assert unit.stored == data
    assert client.read_object(OBJECT_LOOPBACK) == data
    assert client.retransmissions > 0
    assert framing.MIN_FRAME <= client.max_frame < 4096
    assert transport.endpoint.max_frame == client.max_frame
    # every chunk executed exactly once despite the retransmissions
    assert unit.calls[MessageType.OBJECT_WRITE] == len(chunks)


def test_clean_link_keeps_its_frame_size(connect: Any) -> None:
    client, _ = connect(max_frame=4096)
    client.write_object(OBJECT_LOOPBACK, bytes(100_000))
    assert client.read_object(OBJECT_LOOPBACK) == bytes(100_000)
    assert (client.max_frame, client.retransmissions) == (4096, 0)


def test_timer_catches_up_when_the_round_trip_grows(connect: Any) -> None:
    client, transport = connect(latency=0.005)
    for _ in range(10):
        client.request(COUNT)
    transport.latency = 0.2  # a busy hub, a slower path: the round trip grows forty-fold
    for _ in range(5):
        client.request(COUNT)
    before = client.retransmissions
    for _ in range(5):
        client.request(COUNT)
    assert client.retransmissions == before  # the timer has caught up
    assert client.max_frame == 4096  # and a slow link was not mistaken for a noisy one


# -- the specification's worked example ------------------------------------------------------------------
def _hex_dumps(text: str) -> list[bytes]:
    """The ``0000  00 02 ...`` dumps of a Markdown page, one bytes object per dump."""
    dumps: list[bytearray] = []
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-f]{4})  ((?:[0-9a-f]{2} ?)+)", line.strip())
        if match is None:
            continue
        if match.group(1) == "0000":
            dumps.append(bytearray())
        dumps[-1] += bytes.fromhex(match.group(2))
    return [bytes(d) for d in dumps]


def test_worked_example_in_the_specification_matches_the_code() -> None:
    request = encode_frame(
        frame_for(1, MessageType.HELLO, {"protocol": 1, "session": 0x12345678, "max_frame": 4096, "host": "naiad"})
    )
    endpoint = DeviceEndpoint(lambda type_, payload: {"serial": "DF20A1B2C3D", "model": "df2", "mode": "run"})
    reply = endpoint.receive(request)
    spec = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert _hex_dumps(spec) == [request, reply]
    assert f"CRC-32 `0x{zlib.crc32(framing.cobs_decode(request[1:-1])[:-4]):08X}`" in spec
