"""The station's platform client against a real HTTPS gateway of the test's own (tests/platform_gateway.py):
signing, TLS trust, which failures are retried and how, and every reply the station must not believe."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3.connection
from hypothesis import given, settings
from hypothesis import strategies as st
from platform_gateway import (
    Gateway,
    drop,
    flood,
    hang,
    public_pem,
    raw,
    refusal,
    rsa_key,
    serving,
    slow_headers,
    status,
    success,
    throwaway_ca,
    trickle,
)

from enrollment import client as client_module
from enrollment.client import NO_REPLY_IN_TIME, PlatformClient
from enrollment.client import _refusal as refusal_of
from enrollment.errors import (
    PlatformNotTrusted,
    PlatformRefused,
    PlatformReplyInvalid,
    PlatformSignatureInvalid,
    PlatformUnavailable,
)
from enrollment.gateway import MAX_BODY, Code, Method, load_public_key, rsa_signer, sign_string, verify
from enrollment.replies import check_success, checked_fields

STATION_KEY = rsa_key()
STRANGER_KEY = rsa_key()
PAY = {
    "out_trade_no": "b" * 32,
    "scene": "face",
    "auth_code": "",
    "total_amount": "0.01",
    "subject": "check",
    "merchant_id": "2088000000000001",
    "store_id": "S0001",
    "serial": "DF2A00001",
}
BIND = {
    "out_request_no": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "serial": "DF2A00001",
    "supplier_id": "2088000000000100",
    "merchant_id": "2088000000000001",
    "store_id": "S0001",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serving(tmp_path_factory.mktemp("gateway")) as running:
        yield running


@pytest.fixture
def fresh(gateway: Gateway) -> Iterator[Gateway]:
    gateway.reset()
    yield gateway
    gateway.reset()


class Clock:
    """A clock that moves a minute on every reading: each attempt's timestamp differs."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=1)
        return self.now


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(gateway: Gateway, sleeps: list[float], **options: Any) -> PlatformClient:
    config = gateway.config(**options.pop("config", {}))
    return PlatformClient(config, rsa_signer(STATION_KEY), clock=Clock(), sleep=sleeps.append, **options)


def test_a_call_is_signed_by_the_station_and_its_checked_reply_returned(fresh: Gateway, sleeps: list[float]) -> None:
    with client(fresh, sleeps) as platform:
        reply = platform.call(Method.DEVICE_BIND, BIND)
    assert reply["code"] == Code.SUCCESS and reply["serial"] == "DF2A00001" and reply["bound"]
    (params,) = fresh.requests
    assert params["method"] == "iot.device.bind" and params["app_id"] == "2026000000000001"
    assert json.loads(params["biz_content"]) == BIND
    station_public = load_public_key(public_pem(STATION_KEY))
    assert verify(station_public, sign_string(params), params["sign"]) and sleeps == []


def test_transient_failures_are_retried_each_attempt_signed_afresh(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.script += [status(503), drop, status(502), success()]
    with client(fresh, sleeps) as platform:
        assert platform.call(Method.DEVICE_BIND, BIND)["serial"] == "DF2A00001"
    assert len(fresh.requests) == 4 and len(sleeps) == 3
    timestamps = [p["timestamp"] for p in fresh.requests]
    assert len(set(timestamps)) == 4  # a new timestamp, so a retry much later is no replay
    station_public = load_public_key(public_pem(STATION_KEY))
    assert all(verify(station_public, sign_string(p), p["sign"]) for p in fresh.requests)
    assert {p["biz_content"] for p in fresh.requests} == {fresh.requests[0]["biz_content"]}  # same request number


def test_backoff_grows_with_jitter_and_stays_under_its_ceiling(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = status(503)
    options = {"attempts": 6, "backoff_seconds": 1.0, "max_backoff_seconds": 4.0}
    with client(fresh, sleeps, **options) as platform, pytest.raises(PlatformUnavailable) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert len(fresh.requests) == 6 and len(sleeps) == 5
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(ceiling / 2 <= slept <= ceiling for slept, ceiling in zip(sleeps, ceilings, strict=True))
    assert raised.value.params["attempts"] == 6 and "sign" not in json.dumps(raised.value.params)


@pytest.mark.parametrize(("retry_after", "slept"), [("3", 3.0), ("600", 4.0), ("soon", None)])
def test_rate_limits_are_retried_after_the_wait_the_platform_asks_for(
    fresh: Gateway, sleeps: list[float], retry_after: str, slept: float | None
) -> None:
    fresh.script.append(status(429, {"Retry-After": retry_after}))
    with client(fresh, sleeps, backoff_seconds=0.1, max_backoff_seconds=4.0) as platform:
        platform.call(Method.DEVICE_BIND, BIND)
    (wait,) = sleeps
    if slept is None:  # not understood: the ordinary backoff
        assert 0.05 <= wait <= 0.1
    else:
        assert wait == slept  # honoured, up to max_backoff_seconds


def test_a_retry_after_date_is_honoured(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.script.append(status(429, {"Retry-After": "Mon, 30 Nov 2026 08:02:03 GMT"}))
    with client(fresh, sleeps, max_backoff_seconds=10.0) as platform:  # the clock reads 08:02:00 then
        platform.call(Method.DEVICE_BIND, BIND)
    assert sleeps == [3.0]


def test_the_platform_saying_it_is_unavailable_is_retried(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.script.append(refusal(Code.UNAVAILABLE, "isp.unknown-error", "try later"))
    with client(fresh, sleeps) as platform:
        platform.call(Method.DEVICE_BIND, BIND)
    assert len(fresh.requests) == 2 and len(sleeps) == 1


@pytest.mark.parametrize(
    ("code", "sub_code"),
    [
        (Code.BUSINESS_FAILED, "DEVICE_NOT_IN_INVENTORY"),
        (Code.UNAUTHORISED, "isv.invalid-signature"),
        (Code.INVALID_PARAMETER, "isv.duplicate-request-no"),
    ],
)
def test_a_refusal_is_final_and_typed(fresh: Gateway, sleeps: list[float], code: str, sub_code: str) -> None:
    fresh.default = refusal(code, sub_code, "refused\nfor a reason")
    with client(fresh, sleeps) as platform, pytest.raises(PlatformRefused) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert (raised.value.code, raised.value.sub_code) == (code, sub_code)
    assert raised.value.params["sub_msg"] == "refused for a reason"  # control characters never reach a screen
    assert len(fresh.requests) == 1 and sleeps == []


def test_a_reply_signed_with_another_key_is_refused_and_not_retried(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = success(signer=rsa_signer(STRANGER_KEY))
    with client(fresh, sleeps) as platform, pytest.raises(PlatformSignatureInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert isinstance(raised.value, PlatformReplyInvalid) and len(fresh.requests) == 1 and sleeps == []
    assert set(raised.value.params) == {"method", "field", "detail"}  # names, never the signature itself


def test_a_refusal_with_a_bad_signature_is_not_believed(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = refusal(Code.BUSINESS_FAILED, "DEVICE_BOUND_ELSEWHERE", "no", rsa_signer(STRANGER_KEY))
    with client(fresh, sleeps) as platform, pytest.raises(PlatformSignatureInvalid):
        platform.call(Method.DEVICE_BIND, BIND)


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"serial": "DF2A00002"}, "serial"),
        ({"out_request_no": "1" * 32}, "out_request_no"),
        ({"store_id": "S0002"}, "store_id"),
        ({"bound": "yesterday"}, "bound"),
        ({"bound": None}, "bound"),
        ({"serial": 7}, "serial"),
    ],
)
def test_a_reply_that_does_not_answer_the_request_is_refused(
    fresh: Gateway, sleeps: list[float], changed: dict[str, Any], field: str
) -> None:
    fresh.default = success(lambda biz: {**biz, "bound": "2026-11-30 16:00:00", **changed})
    with client(fresh, sleeps) as platform, pytest.raises(PlatformReplyInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert not isinstance(raised.value, PlatformSignatureInvalid)
    assert raised.value.params["field"] == field and len(fresh.requests) == 1 and sleeps == []


def test_inventory_results_must_name_exactly_the_units_asked_for(fresh: Gateway, sleeps: list[float]) -> None:
    asked = {"out_request_no": "a" * 32, "supplier_id": "2088000000000100"}
    asked["devices"] = [
        {"serial": "DF2A00001", "model": "dragonfly-2"},
        {"serial": "DF2A00002", "model": "dragonfly-2"},
    ]  # type: ignore[assignment]

    def results(*serials: str) -> Any:
        return success(lambda biz: {"out_request_no": biz["out_request_no"], "results": [
            {"serial": s, "status": "registered"} for s in serials
        ]})  # fmt: skip

    with client(fresh, sleeps) as platform:
        fresh.default = results("DF2A00002", "DF2A00001")
        assert len(platform.call(Method.INVENTORY_REGISTER, asked)["results"]) == 2
        for wrong in (("DF2A00001",), ("DF2A00001", "DF2A00001"), ("DF2A00001", "DF2A00002", "DF2A00003")):
            fresh.default = results(*wrong)
            with pytest.raises(PlatformReplyInvalid) as raised:
                platform.call(Method.INVENTORY_REGISTER, asked)
            assert raised.value.params["field"] == "results"


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>gateway error</html>", b'{"iot_device_bind_response":{"code":"10000"}}', b"\xff\xfe", b"[]"],
)
def test_garbage_is_refused_and_not_retried(fresh: Gateway, sleeps: list[float], body: bytes) -> None:
    fresh.default = raw(body)
    with client(fresh, sleeps) as platform, pytest.raises(PlatformReplyInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["field"] == "body" and len(fresh.requests) == 1 and sleeps == []


def test_an_unexpected_http_status_is_refused_and_not_retried(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = status(404)
    with client(fresh, sleeps) as platform, pytest.raises(PlatformReplyInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["field"] == "HTTP 404" and sleeps == []


def test_a_reply_announced_larger_than_the_limit_is_refused_unread(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = lambda handler, params: handler.send(200, b"{}", {"Content-Length": str(MAX_BODY + 1)})
    with client(fresh, sleeps) as platform, pytest.raises(PlatformReplyInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["field"] == "body" and sleeps == []


def test_an_endless_reply_is_cut_off_past_the_limit(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = flood
    with client(fresh, sleeps) as platform, pytest.raises(PlatformReplyInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["field"] == "body"
    fresh.release.wait(0.5)
    assert int(fresh.requests[0].get("flooded", 0)) < 16 * MAX_BODY  # the client hung up, it did not read 64 MiB


@pytest.mark.parametrize("answer", [hang, trickle])
def test_a_platform_that_does_not_answer_in_time_is_unavailable(
    fresh: Gateway, sleeps: list[float], answer: Any
) -> None:
    fresh.default = answer
    options = {"config": {"timeout_seconds": 0.2}, "attempts": 2}
    with client(fresh, sleeps, **options) as platform, pytest.raises(PlatformUnavailable) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["detail"] == NO_REPLY_IN_TIME and len(fresh.requests) == 2 and len(sleeps) == 1


def test_headers_trickling_in_are_cut_off_at_the_attempts_deadline(fresh: Gateway, sleeps: list[float]) -> None:
    """Every header byte comes well within the read timeout: only a deadline over the whole attempt ends it."""
    fresh.default = slow_headers
    options = {"config": {"timeout_seconds": 0.2}, "attempts": 1}
    with client(fresh, sleeps, **options) as platform, pytest.raises(PlatformUnavailable) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["detail"] == NO_REPLY_IN_TIME
    for _ in range(100):  # the server notices at its next byte
        if "hung_up" in fresh.requests[0]:
            break
        time.sleep(0.05)
    assert fresh.requests[0].get("hung_up") == "yes"  # the client hung up; the server did not give up first


def test_a_deadline_passing_while_connecting_still_cuts_the_headers_off(
    fresh: Gateway, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting outlasts the deadline (a slow resolver, many addresses): the timer finds no socket yet, so
    the attempt must be cut once connected, not left to a header trickle (review round 2, finding 2)."""
    connect = urllib3.connection.HTTPConnection._new_conn

    def slow_connect(self: Any) -> Any:
        sock = connect(self)
        deadline = client_module._ATTEMPT.deadline
        for _ in range(200):  # until the deadline has passed, still connecting
            if deadline.expired:
                break
            time.sleep(0.01)
        return sock

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "_new_conn", slow_connect)
    fresh.default = slow_headers
    options = {"config": {"timeout_seconds": 0.1}, "attempts": 1}
    with client(fresh, sleeps, **options) as platform, pytest.raises(PlatformUnavailable) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["detail"] == NO_REPLY_IN_TIME
    assert fresh.requests == []  # cut once connected: nothing sent, no 10 s of headers waited for


def test_a_connection_cut_by_a_deadline_is_not_used_again(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.script.append(trickle)
    with client(fresh, sleeps, config={"timeout_seconds": 0.2}, attempts=5) as platform:  # 5: a loaded machine
        assert platform.call(Method.DEVICE_BIND, BIND)["serial"] == BIND["serial"]  # the retry on a fresh one
        assert platform.call(Method.DEVICE_BIND, BIND)["serial"] == BIND["serial"]  # the pool is still sound
    assert len(fresh.requests) >= 3 and len(sleeps) >= 1


def test_the_environment_adds_no_proxy_and_no_cookie_is_kept(
    fresh: Gateway, sleeps: list[float], unused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{unused_port}")  # nothing listens: a call through it fails
    fresh.default = success(headers={"Set-Cookie": "session=tracking; Path=/"})
    with client(fresh, sleeps, attempts=1) as platform:
        platform.call(Method.DEVICE_BIND, BIND)
        platform.call(Method.DEVICE_BIND, BIND)
    assert [request["cookie"] for request in fresh.requests] == ["", ""]


def test_a_platform_that_is_not_there_is_unavailable(fresh: Gateway, sleeps: list[float], unused_port: int) -> None:
    nowhere = {"url": f"https://127.0.0.1:{unused_port}/gateway"}
    with client(fresh, sleeps, config=nowhere, attempts=3) as platform, pytest.raises(PlatformUnavailable) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["attempts"] == 3 and len(sleeps) == 2


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_server_the_configured_ca_did_not_certify_is_refused_at_once(
    fresh: Gateway, sleeps: list[float], tmp_path: Path
) -> None:
    other_ca, _cert, _key = throwaway_ca(tmp_path)
    for ca in (other_ca, None):  # another CA; the system's trust store, which never heard of the test CA
        with client(fresh, sleeps, config={"ca_certificate": ca}) as platform, pytest.raises(PlatformNotTrusted):
            platform.call(Method.DEVICE_BIND, BIND)
    assert fresh.requests == [] and sleeps == []


def test_the_configured_ca_is_not_widened_by_the_environment(
    fresh: Gateway, sleeps: list[float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_ca, _cert, _key = throwaway_ca(tmp_path)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(fresh.ca_certificate)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with client(fresh, sleeps, config={"ca_certificate": other_ca}) as platform, pytest.raises(PlatformNotTrusted):
        platform.call(Method.DEVICE_BIND, BIND)


def test_connections_are_pooled_across_calls(fresh: Gateway, sleeps: list[float]) -> None:
    ports: set[int] = set()
    seen = success()

    def remember(handler: Any, params: dict[str, str]) -> None:
        ports.add(handler.client_address[1])
        seen(handler, params)

    fresh.default = remember
    with client(fresh, sleeps) as platform:
        for _ in range(5):
            platform.call(Method.DEVICE_BIND, BIND)
    assert len(ports) == 1  # one TLS connection, kept alive


def test_nothing_secret_is_logged_or_put_in_an_error(
    fresh: Gateway, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    ftoken = base64.b64encode(b"face token of the buyer").decode()
    pay = {**PAY, "auth_code": ftoken}
    fresh.script += [status(503), drop]
    fresh.default = refusal(Code.BUSINESS_FAILED, "AUTH_CODE_INVALID", "the face token was used")
    caplog.set_level(logging.DEBUG)
    with client(fresh, sleeps) as platform, pytest.raises(PlatformRefused) as raised:
        platform.call(Method.TRADE_PAY, pay)
    signatures = [p["sign"] for p in fresh.requests]
    shown = caplog.text + json.dumps(raised.value.params) + str(raised.value)
    assert ftoken not in shown and not any(s in shown or s[:40] in shown for s in signatures)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(["0.01", "2026-11-30 16:00:00"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(list(Method)), fields=st.dictionaries(st.text(max_size=16), JSON, max_size=8))
def test_any_success_reply_is_believed_or_refused_as_invalid(method: Method, fields: dict[str, Any]) -> None:
    try:
        check_success(method, BIND, {"code": "10000", "msg": "Success", **fields})
    except PlatformReplyInvalid as invalid:
        assert isinstance(invalid.params["field"], str)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["serial", "out_request_no", "merchant_id", "store_id", "bound"]), value=JSON)
def test_a_bind_reply_with_any_field_changed_is_refused_unless_still_right(name: str, value: Any) -> None:
    good = {"code": "10000", "msg": "Success", **{k: BIND[k] for k in BIND if k != "supplier_id"}}
    good["bound"] = "2026-11-30 16:00:00"
    try:
        check_success(Method.DEVICE_BIND, BIND, {**good, name: value})
    except PlatformReplyInvalid as invalid:
        assert invalid.params["field"] == name
    else:
        assert value == good[name] or (name == "bound" and isinstance(value, str))


@settings(max_examples=60, deadline=None)
@given(reply=st.dictionaries(st.sampled_from(["code", "sub_code", "sub_msg", "msg"]), JSON))
def test_any_error_reply_is_a_refusal_or_invalid(reply: dict[str, Any]) -> None:
    found = refusal_of(Method.DEVICE_BIND, reply)
    assert isinstance(found, PlatformRefused | PlatformReplyInvalid)
    if isinstance(found, PlatformRefused):
        assert found.sub_msg.isprintable() and len(found.sub_msg) <= 256


def test_a_refusal_echoing_another_request_number_is_not_believed(fresh: Gateway, sleeps: list[float]) -> None:
    """A replayed signed refusal of another call must not settle this one (review client 11)."""
    own, other = {"out_request_no": BIND["out_request_no"]}, {"out_request_no": "a" * 32}
    fresh.script += [
        refusal("40004", "DEVICE_NOT_BOUND", "x", echo=other),
        refusal("40004", "DEVICE_NOT_BOUND", "x", echo=own),
    ]
    with client(fresh, sleeps) as platform:
        with pytest.raises(PlatformReplyInvalid) as raised:
            platform.call(Method.DEVICE_BIND, BIND)
        assert raised.value.params["field"] == "out_request_no" and len(fresh.requests) == 1  # not retried
        with pytest.raises(PlatformRefused):  # its own number echoed
            platform.call(Method.DEVICE_BIND, BIND)


@pytest.mark.parametrize("code", ["40001", "40002", "40004"])
def test_a_refusal_of_a_write_request_echoing_no_number_is_not_believed(
    fresh: Gateway, sleeps: list[float], code: str
) -> None:
    """The platform echoes the number on every refusal of a request that carried one: an echo-less refusal of
    the request (a replayed one, say) must not settle a pending call (review round 2, finding 4)."""
    fresh.default = refusal(code, "DEVICE_NOT_BOUND", "x", echo={})
    with client(fresh, sleeps) as platform, pytest.raises(PlatformReplyInvalid) as raised:
        platform.call(Method.DEVICE_BIND, BIND)
    assert raised.value.params["field"] == "out_request_no" and len(fresh.requests) == 1


def test_a_refusal_of_the_station_need_not_echo_the_number(fresh: Gateway, sleeps: list[float]) -> None:
    fresh.default = refusal(Code.UNAUTHORISED, "isv.invalid-signature", "x", echo={})
    with client(fresh, sleeps) as platform, pytest.raises(PlatformRefused):
        platform.call(Method.DEVICE_BIND, BIND)


@pytest.mark.parametrize("text", ["\x9b2J", "138\u202e10", "a\u200bb", "\x1b[2J", "", "x" * 65])
def test_text_shown_to_people_must_be_printable(text: str) -> None:
    """No C1 control (the CSI escape), bidi override or zero-width character reaches a terminal (review client 10)."""
    pay = {"code": "10000", "msg": "Success", "trade_no": "2026113022001", "gmt_payment": "2026-11-30 16:00:00"}
    pay |= {k: PAY[k] for k in ("out_trade_no", "total_amount")} | {"trade_status": "TRADE_SUCCESS"}
    check_success(Method.TRADE_PAY, PAY, pay | {"buyer_logon_id": "138******01"})
    with pytest.raises(PlatformReplyInvalid) as raised:
        check_success(Method.TRADE_PAY, PAY, pay | {"buyer_logon_id": text})
    assert raised.value.params["field"] == "buyer_logon_id"
    inventory = {"out_request_no": "c" * 32, "devices": [{"serial": "DF2A00001", "model": "F2"}]}
    result = {"serial": "DF2A00001", "status": "refused", "sub_code": "DEVICE_OWNED_ELSEWHERE", "sub_msg": text}
    with pytest.raises(PlatformReplyInvalid) as raised:
        check_success(Method.INVENTORY_REGISTER, inventory, {"out_request_no": "c" * 32, "results": [result]})
    assert raised.value.params["field"] == "results[0].sub_msg"


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=70))
def test_any_masked_account_believed_is_printable(text: str) -> None:
    pay = {"code": "10000", "msg": "Success", "trade_no": "2026113022001", "gmt_payment": "2026-11-30 16:00:00"}
    pay |= {k: PAY[k] for k in ("out_trade_no", "total_amount")} | {"trade_status": "TRADE_SUCCESS"}
    try:
        check_success(Method.TRADE_PAY, PAY, pay | {"buyer_logon_id": text})
    except PlatformReplyInvalid:
        return
    assert text.isprintable() and 1 <= len(text) <= 64


def test_only_checked_fields_are_kept_nested_ones_included() -> None:
    """Unknown keys inside results[i], units[i] and months[i] are dropped, not stored (review client 5)."""
    result = {"serial": "DF2A00001", "status": "registered", "device_key": "k", "sub_code": "X"}
    inventory = {"code": "10000", "msg": "Success", "out_request_no": "c" * 32, "results": [result], "extra": 1}
    assert checked_fields(Method.INVENTORY_REGISTER, inventory) == {
        "code": "10000",
        "msg": "Success",
        "out_request_no": "c" * 32,
        "results": [{"serial": "DF2A00001", "status": "registered", "sub_code": "X"}],
    }
    month = {"index": 1, "start": "2026-11-30 00:00:00", "end": "2026-12-30 00:00:00", "users": 3, "earned": "1.00"}
    unit: dict[str, Any] = {"serial": "DF2A00001", "merchant_id": "2088000000000001", "store_id": "S0001"}
    unit |= {"program": "2020"}
    unit |= {"activated": None, "window_end": None, "users": 3, "earned": "1.00", "cap_left": "9.00"}
    unit |= {"months_left": 4, "months": [month | {"pin": "1234"}], "secret": "s"}
    kept = checked_fields(Method.SUBSIDY_QUERY, {"code": "10000", "units": [unit], "earned": "1.00"})
    assert kept["units"] == [{k: v for k, v in unit.items() if k != "secret"} | {"months": [month]}]


def test_a_plain_http_platform_is_refused(fresh: Gateway) -> None:
    with pytest.raises(ValueError):
        PlatformClient(fresh.config(url=fresh.url.replace("https:", "http:")), rsa_signer(STATION_KEY))


def test_a_refusal_of_the_station_itself_says_what_to_check() -> None:
    unauthorised = refusal_of(
        Method.DEVICE_BIND, {"code": "20001", "sub_code": "isv.invalid-signature", "sub_msg": "x"}
    )
    business = refusal_of(Method.DEVICE_BIND, {"code": "40004", "sub_code": "DEVICE_NOT_BOUND", "sub_msg": "x"})
    assert unauthorised.remedy_text is not None and "keygen" in unauthorised.remedy_text
    assert business.remedy_text == PlatformRefused.remedy
