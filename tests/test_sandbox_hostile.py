"""Hostile input at the sandbox's gateway: whatever the form or business content, a signed reply, never a 500."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_station import Station, sandbox_fixture, station_fixture  # noqa: F401 - fixtures

from enrollment.gateway import COMMON_PARAMETERS, MAX_BODY, Code, Method, SubCode

CODES = {code.value for code in Code}
METHODS = [Method.INVENTORY_REGISTER, Method.DEVICE_BIND, Method.DEVICE_ACTIVATE]
FIELDS = ["out_request_no", "supplier_id", "devices", "serial", "model", "merchant_id", "store_id", "x"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
IDS = st.sampled_from(["2088000000000100", "2088000000000001", "S0001", "GW1", "", " ", "a" * 65]) | st.text(max_size=8)
BIZ = st.dictionaries(st.sampled_from(FIELDS), IDS | JSON, max_size=6)


def signed_reply(station: Station, method: str, data: Any, **options: Any) -> dict[str, Any]:
    response = station.post(data, **options)
    assert response.status_code == 200
    reply = station.reply(response, method)  # raises unless it is signed by the platform
    assert reply["code"] in CODES
    return reply


@settings(max_examples=40, deadline=None)
@given(method=st.sampled_from(METHODS), biz=BIZ)
def test_any_business_content_gets_a_signed_answer(station: Station, method: Method, biz: dict[str, Any]) -> None:
    reply = signed_reply(station, method, station.params(method, biz))
    assert reply["code"] != Code.UNAVAILABLE  # a handler never failed unexpectedly


@settings(max_examples=40, deadline=None)
@given(form=st.dictionaries(st.sampled_from([*COMMON_PARAMETERS, "sign"]) | st.text(max_size=8), st.text(max_size=40)))
def test_any_form_gets_a_signed_refusal(station: Station, form: dict[str, str]) -> None:
    reply = signed_reply(station, form.get("method", ""), form)
    assert reply["code"] != Code.SUCCESS


@settings(max_examples=25, deadline=None)
@given(
    body=st.binary(max_size=200), content_type=st.sampled_from(["application/x-www-form-urlencoded", "text/plain", ""])
)
def test_any_body_gets_a_signed_refusal(station: Station, body: bytes, content_type: str) -> None:
    reply = signed_reply(station, "", body, headers={"Content-Type": content_type})
    assert reply["code"] in (Code.INVALID_PARAMETER, Code.MISSING_PARAMETER)


def test_a_body_over_the_limit_is_refused_signed(station: Station) -> None:
    reply = signed_reply(station, "", b"a=" + b"x" * MAX_BODY)
    assert reply["code"] == Code.INVALID_PARAMETER and "1 MiB" in reply["sub_msg"]


def test_a_huge_batch_and_deep_nesting_are_refused(station: Station) -> None:
    method = Method.INVENTORY_REGISTER
    batch = {
        "out_request_no": "big",
        "supplier_id": "2088000000000100",
        "devices": [{"serial": "A", "model": "B"}] * 101,
    }
    assert signed_reply(station, method, station.params(method, batch))["code"] == Code.INVALID_PARAMETER
    deep = station.resign({**station.params(method, {}), "biz_content": "[" * 100_000 + "]" * 100_000})
    reply = signed_reply(station, method, deep)
    assert (reply["code"], reply["sub_code"]) == (Code.INVALID_PARAMETER, SubCode.INVALID_BIZ_CONTENT)
