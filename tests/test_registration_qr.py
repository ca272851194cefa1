"""The store's binding QR text: both forms read, anything else refused as MerchantQrInvalid (never another error)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrollment.config import ID, Merchant
from enrollment.errors import EnrollmentError
from enrollment.merchant_qr import MAX_TEXT, MerchantQrInvalid, merchant_qr_text, parse_merchant_qr

NOODLE_BAR = Merchant("2088000000000001", "S0001")


def test_the_printed_text_reads_back_as_its_merchant_and_store() -> None:
    text = merchant_qr_text(NOODLE_BAR)
    assert text == "https://platform.example/bind?merchant_id=2088000000000001&store_id=S0001"
    assert parse_merchant_qr(text) == NOODLE_BAR
    assert parse_merchant_qr(merchant_qr_text(NOODLE_BAR, host="127.0.0.1:8443")) == NOODLE_BAR


@pytest.mark.parametrize(
    "text",
    [
        "https://platform.example/bind?store_id=S0001&merchant_id=2088000000000001",
        "HTTPS://PLATFORM.EXAMPLE/bind?merchant_id=2088000000000001&store_id=S0001",
        "https://pay.example.cn:443/bind?merchant_id=2088000000000001&store_id=S0001\r\n",
        '{"merchant_id": "2088000000000001", "store_id": "S0001"}',
        '  {"store_id":"S0001","merchant_id":"2088000000000001"}\n',
    ],
)
def test_both_forms_are_read_in_any_field_order_with_a_scanners_line_end(text: str) -> None:
    assert parse_merchant_qr(text) == NOODLE_BAR


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2088000000000001/S0001",
        "http://platform.example/bind?merchant_id=2088000000000001&store_id=S0001",
        "https:///bind?merchant_id=2088000000000001&store_id=S0001",
        "https://user:pw@platform.example/bind?merchant_id=2088000000000001&store_id=S0001",
        "https://platform.example:99999/bind?merchant_id=2088000000000001&store_id=S0001",
        "https://platform.example/unbind?merchant_id=2088000000000001&store_id=S0001",
        "https://platform.example/bind/?merchant_id=2088000000000001&store_id=S0001",
        "https://[::1/bind?merchant_id=2088000000000001&store_id=S0001",
        "https://exa\u2100mple/bind?merchant_id=2088000000000001&store_id=S0001",
        "https://platform.example/bind?merchant_id=2088000000000001&store_id=S0001#x",
        "https://platform.example/bind?merchant_id=2088000000000001",
        "https://platform.example/bind?merchant_id=2088000000000001&store_id=S0001&program=2020",
        "https://platform.example/bind?merchant_id=2088000000000001&merchant_id=2&store_id=S0001",
        "https://platform.example/bind?merchant_id=2088000000000001&store_id",
        "https://platform.example/bind?merchant_id=2088000000000001&store_id=",
        "https://platform.example/bind?merchant_id=%32088&store_id=S0001",
        "https://platform.example/bind?merchant_id=2088 0001&store_id=S0001",
        "https://platform.example/bind?merchant_id=2088000000000001&store_id=S0001\x00",
        "https://platform.example/bind?merchant_id=2088000000000001&store_id=S\u00e90001",
        "https://platform.example/bind?merchant_id=" + "1" * 65 + "&store_id=S0001",
        '{"merchant_id": "2088000000000001"}',
        '{"merchant_id": "2088000000000001", "store_id": "S0001", "x": 1}',
        '{"merchant_id": "2088000000000001", "store_id": "S0001", "store_id": "S0002"}',
        '{"merchant_id": 2088000000000001, "store_id": "S0001"}',
        '{"merchant_id": "2088000000000001", "store_id": ["S0001"]}',
        '{"merchant_id": "../etc", "store_id": "S0001"}',
        '["2088000000000001", "S0001"]',
        '{"merchant_id": "2088000000000001", "store_id": "S0001"',
        "{" * 400,
        "https://platform.example/bind?merchant_id=2088000000000001&store_id=S0001" + " " * MAX_TEXT,
    ],
)
def test_anything_but_exactly_a_merchant_and_a_store_is_refused(text: str) -> None:
    with pytest.raises(MerchantQrInvalid) as refused:
        parse_merchant_qr(text)
    assert refused.value.remedy_text and "QR" in refused.value.remedy_text


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=600),
        st.builds(
            lambda host, m, s, tail: f"https://{host}/bind?merchant_id={m}&store_id={s}{tail}",
            st.one_of(st.just("h.example"), st.text(alphabet="[]:@.%\u2100\uff0f1a", max_size=12)),
            st.text(max_size=70),
            st.text(max_size=70),
            st.text(max_size=20),
        ),
        st.builds(
            json.dumps,
            st.dictionaries(
                st.sampled_from(["merchant_id", "store_id", "x"]),
                st.one_of(st.text(max_size=70), st.integers(), st.none(), st.lists(st.text(max_size=3))),
            ),
        ),
    )
)
def test_hostile_text_gives_a_valid_merchant_or_merchant_qr_invalid(text: str) -> None:
    try:
        merchant = parse_merchant_qr(text)
    except MerchantQrInvalid as refused:
        assert isinstance(refused, EnrollmentError)
        return
    assert ID.fullmatch(merchant.merchant_id) and ID.fullmatch(merchant.store_id)
    assert parse_merchant_qr(merchant_qr_text(merchant)) == merchant


@settings(max_examples=50, deadline=None)
@given(st.from_regex(ID, fullmatch=True), st.from_regex(ID, fullmatch=True))
def test_every_valid_merchant_and_store_round_trips(merchant_id: str, store_id: str) -> None:
    merchant = Merchant(merchant_id, store_id)
    assert parse_merchant_qr(merchant_qr_text(merchant)) == merchant
    assert parse_merchant_qr(json.dumps({"merchant_id": merchant_id, "store_id": store_id})) == merchant
