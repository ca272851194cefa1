"""ManagementClient against a hostile unit: malformed replies, forged fragments, endless traffic, a wrong serial.

``HostileUnit`` is an in-memory Transport whose far end answers each request as a unit would, then lets a
test (or hypothesis) rewrite the answer.  It runs on the virtual clock of test_device_endpoint, so the
client's deadlines cost no wall time and are checked in virtual seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import test_device_endpoint
from hostile_unit import DELETE, LOG_TEXT, SERIAL, SLOT, Answer, HostileEnd, forging, genuine, reply_wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_device_endpoint import Clock, LoopbackTransport

import terminal.client as client_module
from terminal import framing
from terminal.client import ManagementClient
from terminal.errors import (
    MalformedReply,
    NaiadError,
    ObjectTooLarge,
    RemoteError,
    TransferTooSlow,
    TransportTimeout,
    WrongUnit,
)
from terminal.framing import FLAG_ERROR, FLAG_REPLY, Frame, encode_frame
from terminal.protocol import OBJECT_LOGS, OBJECT_LOOPBACK, MessageType, Payload, encode_payload

TIMEOUT = 2.0  # virtual seconds: a request's whole budget
clock = test_device_endpoint.clock  # the fixture: the client on a virtual clock


class HostileUnit(LoopbackTransport):
    """The host end of a link to a ``HostileEnd``.

    ``stream`` (when set, until the next request) is called on every read and its bytes delivered, as a
    unit that never stops talking; the virtual clock moves 10 ms a read then."""

    def __init__(self, clock: Clock, answer: Answer) -> None:
        self.far = HostileEnd(answer)
        super().__init__(self.far, clock)
        self.path = "hostile:test"
        self.stream: Callable[[], bytes] | None = None
        self._born = clock.now

    def write(self, data: bytes) -> None:
        self.stream = None
        super().write(data)

    def read(self, size: int, timeout: float) -> bytes:
        assert self.clock.now - self._born < 3600, "the client is still waiting an hour later"
        if self.stream is not None:
            self.clock.now += min(timeout, 0.01)
            return self.stream()
        return super().read(size, timeout)


# -- malformed replies are typed errors naming unit, request and field -------------------------------------
@pytest.mark.parametrize(
    "fields",
    [{"max_frame": "big"}, {"max_frame": math.nan}, {"max_frame": [4096]}, {"max_frame": True}, {"serial": b"DF2"}],
    ids=["text", "nan", "list", "bool", "bytes serial"],
)
def test_malformed_hello_is_a_typed_error(clock: Clock, fields: Payload) -> None:
    client = ManagementClient(HostileUnit(clock, forging(MessageType.HELLO, **fields)), timeout=TIMEOUT)
    with pytest.raises(MalformedReply) as caught:
        client.open()
    (field,) = fields
    assert caught.value.params["field"] == field
    assert caught.value.params["request"] == "hello"
    assert "hostile:test" in str(caught.value) and caught.value.remedy_text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"slots": "a"}, "slots"),
        ({"slots": {"a": {**SLOT, "version": 2}}}, "slots.a.version"),
        ({"slots": {"a": "1.2.0"}}, "slots.a"),
        ({"secure_element": ["empty"]}, "secure_element"),
        ({"model": b"df2"}, "model"),
        ({"hardware_revision": None}, "hardware_revision"),
        ({"security_version": -1}, "security_version"),
        ({"boot_count": math.inf}, "boot_count"),
        ({"serial": DELETE}, "serial"),
    ],
)
def test_malformed_info_is_a_typed_error_naming_the_unit(clock: Clock, fields: Payload, field: str) -> None:
    with ManagementClient(HostileUnit(clock, forging(MessageType.INFO, **fields)), timeout=TIMEOUT) as client:
        with pytest.raises(MalformedReply) as caught:
            client.info()
        assert client.time() > 0  # the channel is fine afterwards
    assert caught.value.params == {
        "path": "hostile:test",
        "serial": SERIAL,
        "request": "info",
        "field": field,
        "expected": caught.value.params["expected"],
    }
    assert SERIAL in str(caught.value)


def test_info_holds_only_json_safe_values(clock: Clock) -> None:
    """Fields the protocol does not define are kept for people to see, but never as bytes or NaN."""
    extra = {"uptime": math.nan, "blob": b"\x00\xff", "nested": {"x": [math.inf, b"\x01"]}}
    with ManagementClient(HostileUnit(clock, forging(MessageType.INFO, **extra)), timeout=TIMEOUT) as client:
        info = client.info()
    json.dumps(info, allow_nan=False)
    assert (info["uptime"], info["blob"], info["nested"]) == (None, "00ff", {"x": [None, "01"]})


@pytest.mark.parametrize(
    ("type_", "call", "fields"),
    [
        (MessageType.TIME, lambda c: c.time(), {"utc": math.nan}),
        (MessageType.TIME, lambda c: c.time(), {"utc": "now"}),
        (MessageType.BOOT_HISTORY, lambda c: c.boot_history(), {"boots": {"at": 1}}),
        (MessageType.BOOT_HISTORY, lambda c: c.boot_history(), {"boots": [{"at": b"", "mode": "run", "boot": 1}]}),
        (MessageType.OBJECT_READ, lambda c: c.logs(), {"total": "many"}),
        (MessageType.OBJECT_READ, lambda c: c.logs(), {"sha256": b"short"}),
        (MessageType.OBJECT_WRITE, lambda c: c.write_object("diag/loopback", b"x"), {"complete": "yes"}),
    ],
)
def test_every_request_type_checks_its_reply(
    clock: Clock, type_: int, call: Callable[[ManagementClient], Any], fields: Payload
) -> None:
    unit = HostileUnit(clock, forging(type_, **fields))
    with ManagementClient(unit, timeout=TIMEOUT) as client, pytest.raises(MalformedReply):
        call(client)


def test_malformed_error_reply_is_a_typed_error(clock: Clock) -> None:
    def refuse(request: Frame, payload: Payload) -> bytes:
        if request.type == MessageType.HELLO:
            return reply_wire(request, genuine(request, payload))
        return reply_wire(request, {"code": ["unknown-type"]}, flags=FLAG_REPLY | FLAG_ERROR)

    with ManagementClient(HostileUnit(clock, refuse), timeout=TIMEOUT) as client, pytest.raises(MalformedReply):
        client.info()


# -- one deadline per request -------------------------------------------------------------------------------
def test_endless_first_fragment_cannot_extend_the_deadline(clock: Clock) -> None:
    """A unit that keeps re-sending fragment 0 of 2 is given up on when the request's budget is spent."""
    unit = HostileUnit(clock, forging(MessageType.INFO))

    def first_fragment_only(request: Frame, payload: Payload) -> bytes:
        if request.type == MessageType.HELLO:
            return reply_wire(request, genuine(request, payload))
        piece = Frame(request.seq, request.type, b"\xa1", FLAG_REPLY, fragment=0, fragments=2)
        unit.stream = lambda: encode_frame(piece)
        return b""

    unit.far.answer = first_fragment_only
    client = ManagementClient(unit, timeout=TIMEOUT, max_frame=framing.MIN_FRAME)
    client.open()
    start = clock.now
    with pytest.raises(TransportTimeout):
        client.info()
    assert clock.now - start <= TIMEOUT + 0.01  # virtual seconds: one 10 ms read past the budget at most


def test_frame_shrinking_stays_within_the_request_deadline(clock: Clock) -> None:
    """Partial replies shrink the frames; the HELLO that does it spends the request's budget, not a new one."""
    unit = HostileUnit(clock, forging(MessageType.INFO))

    def partial_reply_and_silent_hello(request: Frame, payload: Payload) -> bytes:
        if request.type == MessageType.HELLO:
            return b""
        return encode_frame(Frame(request.seq, request.type, b"\xa1", FLAG_REPLY, fragment=0, fragments=2))

    client = ManagementClient(unit, timeout=TIMEOUT, max_frame=4096)
    client.open()
    unit.far.answer = partial_reply_and_silent_hello
    start = clock.now
    with pytest.raises(TransportTimeout):
        client.info()
    sent = [r.type for r in unit.far.requests]
    assert MessageType.HELLO in sent[sent.index(MessageType.INFO) :]  # it did try to shrink the frames
    assert clock.now - start <= TIMEOUT + 1e-6


# -- identity --------------------------------------------------------------------------------------------------
def test_a_unit_naming_another_serial_is_refused_before_any_request(clock: Clock) -> None:
    unit = HostileUnit(clock, forging(MessageType.INFO))
    client = ManagementClient(unit, timeout=TIMEOUT, expected_serial="DF2EXPECTED1")
    with pytest.raises(WrongUnit) as caught:
        client.open()
    assert caught.value.params == {"path": "hostile:test", "expected": "DF2EXPECTED1", "found": SERIAL}
    assert [r.type for r in unit.far.requests] == [MessageType.HELLO]
    assert caught.value.remedy_text


def test_the_expected_unit_is_accepted(clock: Clock) -> None:
    with ManagementClient(HostileUnit(clock, forging(0)), timeout=TIMEOUT, expected_serial=SERIAL) as client:
        assert client.info()["serial"] == SERIAL


# -- property: whatever the unit sends, a valid result or a NaiadError, within the deadline -----------------
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
MUTATIONS = [
    "genuine",
    "replace",
    "delete",
    "payload",
    "error",
    "not cbor",
    "fragments",
    "endless",
    "seq",
    "type",
    "garbage",
    "silence",
]
MAX_ANSWERS = 30  # then the unit falls silent, so every scenario ends


def hostile_answer(data: st.DataObject, unit: HostileUnit) -> Answer:
    answered = [0]

    def answer(request: Frame, payload: Payload) -> bytes:
        answered[0] += 1
        if answered[0] > MAX_ANSWERS:
            return b""
        reply = genuine(request, payload)
        how = data.draw(st.sampled_from(MUTATIONS), label="mutation")
        if how == "genuine":
            return reply_wire(request, reply)
        if how == "replace" and reply:
            reply[data.draw(st.sampled_from(sorted(reply)), label="field")] = data.draw(plain, label="value")
            return reply_wire(request, reply)
        if how == "delete" and reply:
            del reply[data.draw(st.sampled_from(sorted(reply)), label="field")]
            return reply_wire(request, reply)
        if how == "payload":
            return reply_wire(request, data.draw(st.dictionaries(st.text(max_size=10), plain, max_size=5)))
        if how == "error":
            error = {"code": data.draw(plain, label="code"), "detail": data.draw(plain, label="detail")}
            return reply_wire(request, error, flags=FLAG_REPLY | FLAG_ERROR)
        if how == "not cbor":
            return reply_wire(request, data.draw(st.binary(max_size=60), label="piece"))
        if how == "fragments":
            return forged_fragments(data, request, encode_payload(reply))
        if how == "endless":
            count = data.draw(st.integers(2, 0xFFFF), label="fragments")
            frame = Frame(request.seq, request.type, b"\xa5" * 40, FLAG_REPLY, fragment=0, fragments=count)
            unit.stream = lambda: encode_frame(frame)
            return b""
        if how == "seq":
            shifted = Frame(
                (request.seq + data.draw(st.integers(1, 0xFFFF))) & 0xFFFF, request.type, b"", request.flags
            )
            return reply_wire(shifted, reply)
        if how == "type":
            return reply_wire(Frame(request.seq, request.type ^ 0x0001, b"", request.flags), reply)
        if how == "garbage":
            return data.draw(st.binary(max_size=200), label="garbage")
        return b""

    return answer


def forged_fragments(data: st.DataObject, request: Frame, payload: bytes) -> bytes:
    """The reply cut into fragments, some lost, repeated or reordered, its count possibly a lie."""
    size = data.draw(st.integers(1, 64), label="piece size")
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    count = data.draw(st.sampled_from([len(pieces), len(pieces) + 1, 0xFFFF]), label="count")
    order = data.draw(st.lists(st.integers(0, len(pieces) - 1), max_size=2 * len(pieces)), label="order")
    return b"".join(
        encode_frame(Frame(request.seq, request.type, pieces[i], FLAG_REPLY, fragment=i, fragments=count))
        for i in order
    )


OPERATIONS: dict[str, Callable[[ManagementClient], Any]] = {
    "info": lambda c: c.info(),
    "time": lambda c: c.time(),
    "set time": lambda c: c.time(1_700_000_000.0),
    "boot history": lambda c: c.boot_history(),
    "logs": lambda c: c.logs(),
    "write": lambda c: c.write_object("diag/loopback", bytes(300)),
    "reboot": lambda c: c.reboot("run"),
    "hello": lambda c: c.hello(),
}


def check_result(name: str, result: Any) -> None:
    """A result that reached the caller has the documented types and goes into JSON as it is."""
    json.dumps(result, allow_nan=False, default=lambda value: pytest.fail(f"{name} returned {value!r}"))
    if name == "info":
        assert isinstance(result["serial"], str) and isinstance(result["slots"], dict)
        assert all(isinstance(slot, dict) for slot in result["slots"].values())
    elif name in ("time", "set time"):
        assert math.isfinite(result)
    elif name == "logs":
        assert result == LOG_TEXT.decode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.lists(st.sampled_from(sorted(OPERATIONS)), min_size=1, max_size=5))
def test_any_reply_gives_a_valid_result_or_a_naiad_error_within_the_deadline(
    data: st.DataObject, operations: list[str]
) -> None:
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch:  # per example: a function-scoped fixture would span them all
        patch.setattr(client_module, "time", SimpleNamespace(monotonic=clock.monotonic))
        run_scenario(data, clock, operations)


def run_scenario(data: st.DataObject, clock: Clock, operations: list[str]) -> None:
    unit = HostileUnit(clock, lambda request, payload: b"")
    unit.far.answer = hostile_answer(data, unit)
    client = ManagementClient(unit, timeout=TIMEOUT, max_frame=data.draw(st.sampled_from([64, 256, 4096])))
    for name, method in (("request", client.request), ("hello", client.hello)):
        setattr(client, name, within_deadline(clock, method))
    try:
        client.open()
    except NaiadError:
        return
    for name in operations:
        try:
            result = OPERATIONS[name](client)
        except NaiadError:
            continue
        check_result(name, result)


def within_deadline(clock: Clock, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` checked to return or raise within one request budget (virtual seconds)."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock.now
        try:
            return method(*args, **kwargs)
        finally:
            assert clock.now - start <= TIMEOUT + 0.011

    return timed


def test_remote_error_keeps_its_code(clock: Clock) -> None:
    def refuse(request: Frame, payload: Payload) -> bytes:
        if request.type == MessageType.HELLO:
            return reply_wire(request, genuine(request, payload))
        return reply_wire(request, {"code": "busy", "detail": "later"}, flags=FLAG_REPLY | FLAG_ERROR)

    with ManagementClient(HostileUnit(clock, refuse), timeout=TIMEOUT) as client, pytest.raises(RemoteError) as caught:
        client.info()
    assert (caught.value.params["code"], caught.value.params["detail"]) == ("busy", "later")


# -- an object read is bounded as a whole, not only chunk by chunk ---------------------------------------------
def serving(body: bytes, step: int, total: int | None = None) -> Answer:
    """A unit answering every OBJECT_READ validly with at most ``step`` bytes of ``body`` (``total``: its size)."""
    digest = hashlib.sha256(body).digest()

    def answer(request: Frame, payload: Payload) -> bytes:
        if request.type != MessageType.OBJECT_READ:
            return reply_wire(request, genuine(request, payload))
        offset, length = payload["offset"], min(payload["length"], step)
        chunk = {"offset": offset, "total": len(body) if total is None else total, "sha256": digest}
        return reply_wire(request, {**chunk, "name": payload["name"], "data": body[offset : offset + length]})

    return answer


@pytest.mark.parametrize(
    ("name", "limit"),
    [(OBJECT_LOGS, client_module.OBJECT_LIMITS[OBJECT_LOGS]), ("core/dump", client_module.MAX_OBJECT)],
)
def test_an_object_larger_than_the_station_reads_is_refused_up_front(clock: Clock, name: str, limit: int) -> None:
    unit = HostileUnit(clock, serving(LOG_TEXT, 64, total=limit + 1))
    out = io.BytesIO()
    with ManagementClient(unit, timeout=TIMEOUT) as client, pytest.raises(ObjectTooLarge) as caught:
        client.read_object_into(name, out)
    assert caught.value.params == {"serial": SERIAL, "name": name, "size": limit + 1, "limit": limit}
    assert out.getvalue() == b"" and [r.type for r in unit.far.requests].count(MessageType.OBJECT_READ) == 1
    assert caught.value.remedy_text


def test_a_unit_trickling_valid_chunks_is_given_up_on(clock: Clock) -> None:
    """One byte a chunk towards a 256 KiB total: every request is prompt, the transfer would take hours."""
    body = bytes(256 * 1024)
    unit = HostileUnit(clock, serving(body, 1))
    unit.latency = 0.05  # virtual seconds a round trip: 3.6 hours for the whole object
    with ManagementClient(unit, timeout=TIMEOUT) as client:
        start = clock.now
        with pytest.raises(TransferTooSlow) as caught:
            client.logs()
    received = caught.value.params["received"]
    allowed = client_module.TRANSFER_FLOOR + received / client_module.MIN_TRANSFER_RATE
    assert allowed <= clock.now - start <= allowed + TIMEOUT  # virtual seconds: about a minute
    assert 0 < received < len(body) and caught.value.params["serial"] == SERIAL
    assert isinstance(caught.value, client_module.TransferError)


def test_a_large_object_may_take_longer_than_the_floor(clock: Clock) -> None:
    """A slow link is not a trickle: 4 MiB at a second a 64 KB chunk takes 65 s, past the floor, and completes."""
    body = bytes(range(256)) * (16 * 1024)
    unit = HostileUnit(clock, serving(body, 1 << 20))
    unit.latency = 1.0
    with ManagementClient(unit, timeout=TIMEOUT, max_frame=4096) as client:
        start = clock.now
        assert client.read_object(OBJECT_LOOPBACK) == body
    assert clock.now - start > client_module.TRANSFER_FLOOR
