"""The sandbox's payment methods, called through the handler registry over an in-memory database."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_rows import GROCER, NOODLES, add_unit, china, face_pay, handle, seeded_session
from sqlalchemy import select
from sqlalchemy.orm import Session

from enrollment.gateway import Code, Method, SubCode
from enrollment.sandbox.models_trade import FaceSession
from enrollment.sandbox.registry import HANDLERS, INSPECTIONS, Call, Refused
from enrollment.sandbox.seed import SUPPLIER_ID

NOW = china("2026-11-30 09:30")
UNIT = "NF1-0001"
AT_STORE = {"serial": UNIT, "merchant_id": NOODLES, "store_id": "S0001"}


@pytest.fixture
def db() -> Iterator[Session]:
    session = seeded_session()
    add_unit(session, UNIT, activated=NOW - dt.timedelta(days=1))
    yield session
    session.close()


def refused(session: Session, method: Method, biz: dict[str, Any], now: dt.datetime = NOW) -> str:
    """The sub_code ``method`` refuses ``biz`` with."""
    with pytest.raises(Refused) as caught:
        handle(session, method, biz, now)
    return caught.value.sub_code


def open_session(db: Session, now: dt.datetime = NOW, **where: str) -> str:
    biz = {"out_request_no": f"open-{now:%H%M%S}", **AT_STORE, **where}
    return str(handle(db, Method.FACE_SESSION_INITIALIZE, biz, now)["session_id"])


def ftoken(db: Session, now: dt.datetime = NOW, face_id: str = "sandbox-buyer-1") -> str:
    session_id = open_session(db, now)
    biz = {"out_request_no": f"verify-{now:%H%M%S}", "session_id": session_id, "serial": UNIT, "face_id": face_id}
    return str(handle(db, Method.FACE_SESSION_VERIFY, biz, now)["ftoken"])


def pay_biz(auth_code: str, number: str = "order-1", amount: str = "0.01", **where: str) -> dict[str, Any]:
    return {
        "out_trade_no": number,
        "scene": "face",
        "auth_code": auth_code,
        "total_amount": amount,
        "subject": "Noodles",
        **AT_STORE,
        **where,
    }


def test_pay_query_refund_and_refund_query(db: Session) -> None:
    paid = face_pay(db, UNIT, NOW, number="order-1")
    assert paid == {
        "out_trade_no": "order-1",
        "trade_no": "2026113022000000000001",
        "buyer_logon_id": "138****0001",
        "total_amount": "0.01",
        "gmt_payment": "2026-11-30 09:30:00",
        "trade_status": "TRADE_SUCCESS",
    }
    by_number = handle(db, Method.TRADE_QUERY, {"out_trade_no": "order-1"}, NOW)
    assert by_number == handle(db, Method.TRADE_QUERY, {"trade_no": paid["trade_no"]}, NOW)
    assert by_number["trade_status"] == "TRADE_SUCCESS" and by_number["refunded_amount"] == "0.00"
    refund = {"out_request_no": "refund-1", "out_trade_no": "order-1", "refund_amount": "0.01"}
    assert handle(db, Method.TRADE_REFUND, {**refund, "refund_reason": "face-pay check"}, NOW) == {
        "out_request_no": "refund-1",
        "trade_no": paid["trade_no"],
        "out_trade_no": "order-1",
        "refund_amount": "0.01",
        "refunded_total": "0.01",
        "gmt_refund": "2026-11-30 09:30:00",
    }
    after = handle(db, Method.TRADE_QUERY, {"out_trade_no": "order-1"}, NOW)
    assert after["trade_status"] == "TRADE_CLOSED" and after["refunded_amount"] == "0.01"
    asked = {"out_request_no": "refund-1", "trade_no": paid["trade_no"]}
    assert handle(db, Method.TRADE_REFUND_QUERY, asked, NOW) == {
        "out_request_no": "refund-1",
        "trade_no": paid["trade_no"],
        "refund_amount": "0.01",
        "refund_status": "REFUND_SUCCESS",
    }


def test_trade_numbers_are_the_china_date_and_a_sequence(db: Session) -> None:
    late = china("2026-11-30 23:59")  # 15:59 UTC: still the 30th in China
    numbers = [face_pay(db, UNIT, late + dt.timedelta(minutes=m))["trade_no"] for m in range(2)]
    assert numbers == ["2026113022000000000001", "2026120122000000000002"]


def test_a_refund_number_is_used_once_across_the_apps_trades(db: Session) -> None:
    face_pay(db, UNIT, NOW, number="order-1")
    face_pay(db, UNIT, NOW, number="order-2")
    refund = {"out_request_no": "r1", "refund_amount": "0.01"}
    handle(db, Method.TRADE_REFUND, {**refund, "out_trade_no": "order-1"}, NOW)
    assert refused(db, Method.TRADE_REFUND, {**refund, "out_trade_no": "order-2"}) == SubCode.DUPLICATE_REQUEST_NO


def test_refunds_never_exceed_what_was_paid(db: Session) -> None:
    face_pay(db, UNIT, NOW, number="order-1", amount="1.00")
    refund = {"out_trade_no": "order-1"}
    assert handle(db, Method.TRADE_REFUND, {**refund, "out_request_no": "r1", "refund_amount": "0.60"}, NOW)
    assert refused(db, Method.TRADE_REFUND, {**refund, "out_request_no": "r2", "refund_amount": "0.41"}) == (
        "REFUND_AMOUNT_EXCEEDED"
    )
    last = handle(db, Method.TRADE_REFUND, {**refund, "out_request_no": "r3", "refund_amount": "0.40"}, NOW)
    assert last["refunded_total"] == "1.00"
    assert refused(db, Method.TRADE_REFUND, {**refund, "out_request_no": "r4", "refund_amount": "0.01"}) == (
        "REFUND_AMOUNT_EXCEEDED"
    )
    assert refused(db, Method.TRADE_REFUND_QUERY, {**refund, "out_request_no": "r2"}) == "REFUND_NOT_EXIST"


def test_a_repeated_refund_number_refunds_once(db: Session) -> None:
    face_pay(db, UNIT, NOW, number="order-1", amount="1.00")
    refund = {"out_request_no": "r1", "out_trade_no": "order-1", "refund_amount": "0.30"}
    first = handle(db, Method.TRADE_REFUND, refund, NOW)
    again = handle(db, Method.TRADE_REFUND, refund, NOW + dt.timedelta(minutes=1))
    assert again == first and again["refunded_total"] == "0.30"
    with pytest.raises(Refused) as caught:
        handle(db, Method.TRADE_REFUND, {**refund, "refund_amount": "0.20"}, NOW)
    assert caught.value.sub_code == SubCode.DUPLICATE_REQUEST_NO


def test_a_face_token_pays_once(db: Session) -> None:
    token = ftoken(db)
    handle(db, Method.TRADE_PAY, pay_biz(token), NOW)
    assert refused(db, Method.TRADE_PAY, pay_biz(token, number="order-2")) == "AUTH_CODE_INVALID"


@pytest.mark.parametrize(
    ("after", "code"), [(dt.timedelta(minutes=4, seconds=59), None), (dt.timedelta(minutes=5), "AUTH_CODE_INVALID")]
)
def test_a_face_token_lasts_five_minutes(db: Session, after: dt.timedelta, code: str | None) -> None:
    token = ftoken(db)
    if code is None:
        assert handle(db, Method.TRADE_PAY, pay_biz(token), NOW + after)["trade_status"] == "TRADE_SUCCESS"
    else:
        assert refused(db, Method.TRADE_PAY, pay_biz(token), NOW + after) == code


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ({"serial": "NF1-0002"}, "DEVICE_NOT_IN_INVENTORY"),
        ({"store_id": "S0002"}, "DEVICE_NOT_AT_STORE"),
        ({"merchant_id": GROCER}, "DEVICE_NOT_AT_STORE"),
        ({"merchant_id": "2088000000000999"}, "MERCHANT_NOT_FOUND"),
        ({"store_id": "S0404"}, "STORE_NOT_FOUND"),
    ],
)
def test_a_face_token_pays_only_on_its_unit_at_its_store(db: Session, where: dict[str, str], code: str) -> None:
    token = ftoken(db)
    assert refused(db, Method.TRADE_PAY, pay_biz(token, **where)) == code
    assert handle(db, Method.TRADE_PAY, pay_biz(token), NOW)["trade_status"] == "TRADE_SUCCESS"


def test_a_token_of_an_unbound_unit_pays_only_where_its_session_opened(db: Session) -> None:
    add_unit(db, "NF1-0002", merchant=None)
    session_id = open_session(db, serial="NF1-0002", store_id="S0002")
    verify = {"out_request_no": "v1", "session_id": session_id, "serial": "NF1-0002", "face_id": "sandbox-buyer-1"}
    token = handle(db, Method.FACE_SESSION_VERIFY, verify, NOW)["ftoken"]
    assert refused(db, Method.TRADE_PAY, pay_biz(token, serial="NF1-0002")) == "AUTH_CODE_INVALID"  # S0001
    assert handle(db, Method.TRADE_PAY, pay_biz(token, serial="NF1-0002", store_id="S0002"), NOW)["trade_no"]


@pytest.mark.parametrize(
    ("serial", "where", "code"),
    [
        ("NEVER-REGISTERED", {}, "DEVICE_NOT_IN_INVENTORY"),
        ("THEIRS", {}, "DEVICE_NOT_IN_INVENTORY"),
        (UNIT, {"store_id": "S0002"}, "DEVICE_NOT_AT_STORE"),
        (UNIT, {"merchant_id": GROCER}, "DEVICE_NOT_AT_STORE"),
    ],
)
def test_a_session_needs_the_callers_unit_at_its_bound_store(
    db: Session, serial: str, where: dict[str, str], code: str
) -> None:
    add_unit(db, "THEIRS", supplier="2088000000000999")
    biz = {"out_request_no": "o1", **AT_STORE, "serial": serial, **where}
    assert refused(db, Method.FACE_SESSION_INITIALIZE, biz) == code


def test_an_unbound_unit_opens_a_session_at_any_store(db: Session) -> None:
    add_unit(db, "LOOSE", merchant=None)
    for merchant_id, store_id in ((NOODLES, "S0002"), (GROCER, "S0001")):
        assert open_session(db, serial="LOOSE", merchant_id=merchant_id, store_id=store_id).startswith("fs")


def test_pay_refuses_a_unit_bound_elsewhere_since_its_session_opened(db: Session) -> None:
    add_unit(db, "LOOSE", merchant=None)
    session_id = open_session(db, serial="LOOSE", store_id="S0002")
    verify = {"out_request_no": "v1", "session_id": session_id, "serial": "LOOSE", "face_id": "sandbox-buyer-1"}
    token = handle(db, Method.FACE_SESSION_VERIFY, verify, NOW)["ftoken"]
    handle(
        db,
        Method.DEVICE_BIND,
        {
            "out_request_no": "b1",
            "serial": "LOOSE",
            "supplier_id": SUPPLIER_ID,
            "merchant_id": NOODLES,
            "store_id": "S0001",
        },
        NOW,
    )
    paying = pay_biz(token, serial="LOOSE", store_id="S0002")
    assert refused(db, Method.TRADE_PAY, paying) == "DEVICE_NOT_AT_STORE"


def test_an_unknown_face_token_is_refused(db: Session) -> None:
    assert refused(db, Method.TRADE_PAY, pay_biz("ftk" + "A" * 32)) == "AUTH_CODE_INVALID"


def test_the_face_token_is_not_kept(db: Session) -> None:
    token = ftoken(db)
    rows = db.scalars(select(FaceSession)).all()
    assert rows and all(token not in repr(vars(row)) for row in rows)


def test_a_session_issues_one_token_on_its_unit_for_a_known_face(db: Session) -> None:
    session_id = open_session(db)
    verify = {"out_request_no": "v1", "session_id": session_id, "serial": UNIT, "face_id": "sandbox-buyer-1"}
    assert refused(db, Method.FACE_SESSION_VERIFY, {**verify, "face_id": "stranger"}) == "FACE_NOT_RECOGNISED"
    assert refused(db, Method.FACE_SESSION_VERIFY, {**verify, "serial": "NF1-0002"}) == "SESSION_INVALID"
    assert refused(db, Method.FACE_SESSION_VERIFY, {**verify, "session_id": "fs0"}) == "SESSION_INVALID"
    late = NOW + dt.timedelta(minutes=5)
    assert refused(db, Method.FACE_SESSION_VERIFY, verify, late) == "SESSION_INVALID"
    assert handle(db, Method.FACE_SESSION_VERIFY, verify, NOW)["expires"] == "2026-11-30 09:35:00"
    assert refused(db, Method.FACE_SESSION_VERIFY, {**verify, "out_request_no": "v2"}) == "SESSION_INVALID"


@pytest.mark.parametrize(
    ("where", "code"), [({"merchant_id": "nobody"}, "MERCHANT_NOT_FOUND"), ({"store_id": "S9"}, "STORE_NOT_FOUND")]
)
def test_a_session_opens_only_at_a_known_store(db: Session, where: dict[str, str], code: str) -> None:
    assert refused(db, Method.FACE_SESSION_INITIALIZE, {"out_request_no": "o1", **AT_STORE, **where}) == code


def test_trades_are_the_callers_own(db: Session) -> None:
    paid = face_pay(db, UNIT, NOW, number="order-1")
    other_app = Call(db, "2026000000000002", SUPPLIER_ID, Method.TRADE_QUERY, {"trade_no": paid["trade_no"]}, NOW)
    with pytest.raises(Refused) as caught:
        HANDLERS[Method.TRADE_QUERY](other_app)
    assert caught.value.sub_code == "TRADE_NOT_EXIST"
    face_pay(db, UNIT, NOW, number="order-2")
    assert refused(db, Method.TRADE_QUERY, {"trade_no": paid["trade_no"], "out_trade_no": "order-2"}) == (
        "TRADE_NOT_EXIST"
    )
    assert refused(db, Method.TRADE_QUERY, {}) == SubCode.MISSING_PARAMETER


@pytest.mark.parametrize(
    "change",
    [
        {"scene": "bar_code"},
        {"total_amount": "0.00"},
        {"total_amount": "0.001"},
        {"total_amount": 1},
        {"subject": "two\nlines"},
        {"auth_code": "ftk token"},
        {"tip": "1.00"},
    ],
    ids=str,
)
def test_every_payment_field_is_checked(db: Session, change: dict[str, Any]) -> None:
    assert refused(db, Method.TRADE_PAY, {**pay_biz(ftoken(db)), **change}) == SubCode.INVALID_PARAMETER


def test_the_trades_view(db: Session) -> None:
    face_pay(db, UNIT, NOW, number="order-1", amount="2.50")
    handle(db, Method.TRADE_REFUND, {"out_request_no": "r", "out_trade_no": "order-1", "refund_amount": "1.00"}, NOW)
    assert INSPECTIONS["trades"](db) == [
        {
            "trade_no": "2026113022000000000001",
            "out_trade_no": "order-1",
            "serial": UNIT,
            "merchant_id": NOODLES,
            "amount": "2.50",
            "status": "TRADE_SUCCESS",
            "refunded": True,
            "refunded_amount": "1.00",
            "created": "2026-11-30 09:30:00",
        }
    ]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["0.01", UNIT, NOODLES, "S0001"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["out_request_no", "out_trade_no", "trade_no", "serial", "merchant_id", "store_id", "session_id", "face_id"]
FIELDS += ["scene", "auth_code", "total_amount", "subject", "refund_amount", "refund_reason", "program", "x"]
PAYMENT_METHODS = [m for m in Method if m.value.startswith(("face.", "trade.", "iot.subsidy."))]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(PAYMENT_METHODS), biz=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8))
def test_hostile_business_content_is_refused_cleanly(db: Session, method: Method, biz: dict[str, Any]) -> None:
    try:
        handle(db, method, biz, NOW)
    except Refused as exc:
        assert exc.code in {Code.MISSING_PARAMETER, Code.INVALID_PARAMETER, Code.BUSINESS_FAILED}
        assert re.fullmatch(r"[A-Z_]+|isv\.[a-z-]+", exc.sub_code)
