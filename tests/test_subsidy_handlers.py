"""iot.subsidy.enroll and iot.subsidy.query through the handler registry, over trades paid by face."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_rows import GROCER, NOODLES, add_unit, china, face_pay, handle, seeded_session
from sqlalchemy.orm import Session

from enrollment.gateway import Method, SubCode
from enrollment.sandbox.models import App
from enrollment.sandbox.models_trade import Trade
from enrollment.sandbox.registry import Refused
from enrollment.sandbox.seed import APP_ID, SUPPLIER_ID

ACTIVATED = china("2026-01-10 10:00")
NOW = china("2026-03-15 12:00")
"""In month 3 of the window [01-10 10:00, 06-10 10:00)."""


@pytest.fixture
def db() -> Iterator[Session]:
    session = seeded_session()
    add_unit(session, "U1", activated=ACTIVATED)
    add_unit(session, "U2", activated=ACTIVATED, store="S0002")
    add_unit(session, "IDLE")  # bound, never activated
    add_unit(session, "LOOSE", merchant=None)  # in inventory only
    add_unit(session, "ELSEWHERE", activated=ACTIVATED, supplier="2088000000000999")
    yield session
    session.close()


def enroll(db: Session, serial: str, program: str | None = None, number: str = "e1") -> dict[str, Any]:
    biz = {"out_request_no": number, "serial": serial} | ({"program": program} if program else {})
    return handle(db, Method.SUBSIDY_ENROLL, biz, NOW)


def refusal(db: Session, method: Method, biz: dict[str, Any]) -> str:
    with pytest.raises(Refused) as caught:
        handle(db, method, biz, NOW)
    return caught.value.sub_code


def test_enroll_defaults_to_the_newest_program_and_the_window_runs_from_activation(db: Session) -> None:
    assert enroll(db, "U1") == {
        "out_request_no": "e1",
        "serial": "U1",
        "program": "2020",
        "enrolled": "2026-03-15 12:00:00",
        "window_start": "2026-01-10 10:00:00",
        "window_end": "2026-06-10 10:00:00",
    }


def test_enrolling_again_keeps_the_first_enrollment(db: Session) -> None:
    first = enroll(db, "U1", "2019")
    assert enroll(db, "U1", "2019", number="e2") == {**first, "out_request_no": "e2"}
    assert enroll(db, "U1", number="e3")["program"] == "2019"  # no program named: the unit's own
    assert refusal(db, Method.SUBSIDY_ENROLL, {"out_request_no": "e4", "serial": "U1", "program": "2020"}) == (
        "ALREADY_ENROLLED"
    )


@pytest.mark.parametrize(
    ("serial", "program", "code"),
    [
        ("IDLE", None, "DEVICE_NOT_ACTIVATED"),
        ("LOOSE", None, "DEVICE_NOT_ACTIVATED"),
        ("NOPE", None, "DEVICE_NOT_FOUND"),
        ("ELSEWHERE", None, "DEVICE_NOT_FOUND"),
        ("U1", "2018", "PROGRAM_NOT_FOUND"),
        ("U1", "2019 ", SubCode.INVALID_PARAMETER),
    ],
)
def test_enroll_refusals(db: Session, serial: str, program: str | None, code: str) -> None:
    biz = {"out_request_no": "e1", "serial": serial} | ({"program": program} if program else {})
    assert refusal(db, Method.SUBSIDY_ENROLL, biz) == code


def test_a_unit_not_enrolled_shows_nothing_earned(db: Session) -> None:
    face_pay(db, "U1", china("2026-02-01 12:00"))
    assert handle(db, Method.SUBSIDY_QUERY, {"serial": "U1"}, NOW) == {
        "units": [
            {
                "serial": "U1",
                "merchant_id": NOODLES,
                "store_id": "S0001",
                "program": None,
                "activated": "2026-01-10 10:00:00",
                "window_end": None,
                "months": [],
                "users": 0,
                "earned": "0.00",
                "cap_left": "0.00",
                "months_left": 0,
            }
        ],
        "earned": "0.00",
    }


def test_status_counts_one_user_per_day_and_leaves_out_refunds(db: Session) -> None:
    enroll(db, "U1", "2019")
    face_pay(db, "U1", china("2026-01-11 09:00"))  # before enrolling, inside the window: counted
    face_pay(db, "U1", china("2026-01-11 21:00"))  # same buyer, same day
    face_pay(db, "U1", china("2026-01-11 21:01"), face_id="buyer-2")  # a second buyer that day
    face_pay(db, "U1", china("2026-02-10 10:00"))  # month 2
    refunded = face_pay(db, "U1", china("2026-03-11 10:00"))  # month 3, wholly refunded
    refund = {"out_request_no": "r1", "trade_no": refunded["trade_no"], "refund_amount": "0.01"}
    handle(db, Method.TRADE_REFUND, refund, NOW)
    unit = handle(db, Method.SUBSIDY_QUERY, {"serial": "U1"}, NOW)["units"][0]
    assert [(m["index"], m["start"], m["end"], m["users"], m["earned"]) for m in unit["months"]] == [
        (1, "2026-01-10 10:00:00", "2026-02-10 10:00:00", 2, "1.40"),
        (2, "2026-02-10 10:00:00", "2026-03-10 10:00:00", 1, "0.70"),
        (3, "2026-03-10 10:00:00", "2026-04-10 10:00:00", 0, "0.00"),
        (4, "2026-04-10 10:00:00", "2026-05-10 10:00:00", 0, "0.00"),
        (5, "2026-05-10 10:00:00", "2026-06-10 10:00:00", 0, "0.00"),
    ]
    assert (unit["program"], unit["window_end"]) == ("2019", "2026-06-10 10:00:00")
    assert (unit["users"], unit["earned"], unit["cap_left"], unit["months_left"]) == (3, "2.10", "1197.90", 3)


def test_status_counts_only_trades_at_the_bound_store_by_the_units_supplier(db: Session) -> None:
    db.add(
        App(app_id="2026000000000009", name="Another distributor", supplier_id="2088000000000999", created=ACTIVATED)
    )
    db.add(
        App(app_id="2026000000000003", name="Same distributor, second app", supplier_id=SUPPLIER_ID, created=ACTIVATED)
    )
    paid = china("2026-01-11 09:00")
    for number, (app_id, merchant_id, store_id) in enumerate(
        [
            (APP_ID, NOODLES, "S0002"),  # another store of the unit's merchant
            (APP_ID, GROCER, "S0001"),  # another merchant
            ("2026000000000009", NOODLES, "S0001"),  # another supplier's app
            ("2026000000000003", NOODLES, "S0001"),  # the unit's supplier: counted
        ]
    ):
        db.add(
            Trade(
                trade_no=f"t{number}",
                app_id=app_id,
                out_trade_no=f"o{number}",
                serial="U1",
                merchant_id=merchant_id,
                store_id=store_id,
                buyer_id=f"b{number}",
                subject="Noodles",
                amount_fen=1,
                refunded_fen=0,
                created=paid.astimezone(dt.UTC),
            )
        )
    db.commit()
    enroll(db, "U1")
    unit = handle(db, Method.SUBSIDY_QUERY, {"serial": "U1"}, NOW)["units"][0]
    assert (unit["users"], unit["earned"]) == (1, "0.70")


def test_trades_of_a_unit_before_it_was_bound_do_not_count(db: Session) -> None:
    face_pay(db, "LOOSE", china("2026-01-10 09:00"), store="S0002")  # the face-pay check, before binding
    face_pay(db, "LOOSE", china("2026-01-10 09:30"), face_id="buyer-2")  # at the store it is bound to later
    bind = {"out_request_no": "b1", "serial": "LOOSE", "supplier_id": SUPPLIER_ID, "merchant_id": NOODLES}
    handle(db, Method.DEVICE_BIND, {**bind, "store_id": "S0001"}, china("2026-01-10 09:40"))
    handle(db, Method.DEVICE_ACTIVATE, {"out_request_no": "a1", "serial": "LOOSE"}, china("2026-01-10 10:00"))
    enroll(db, "LOOSE")
    assert handle(db, Method.SUBSIDY_QUERY, {"serial": "LOOSE"}, NOW)["units"][0]["users"] == 0


def test_status_per_merchant_counts_a_buyer_on_each_unit(db: Session) -> None:
    enroll(db, "U1", number="e1")
    enroll(db, "U2", number="e2")
    face_pay(db, "U1", china("2026-01-11 09:00"))
    face_pay(db, "U2", china("2026-01-11 09:05"), store="S0002")
    status = handle(db, Method.SUBSIDY_QUERY, {"merchant_id": NOODLES}, NOW)
    assert [(u["serial"], u["users"], u["earned"]) for u in status["units"]] == [
        ("IDLE", 0, "0.00"),
        ("U1", 1, "0.70"),
        ("U2", 1, "0.70"),
    ]
    assert status["earned"] == "1.40"
    assert handle(db, Method.SUBSIDY_QUERY, {"merchant_id": GROCER}, NOW) == {"units": [], "earned": "0.00"}


@pytest.mark.parametrize(
    ("biz", "code"),
    [
        ({}, SubCode.MISSING_PARAMETER),
        ({"serial": "U1", "merchant_id": NOODLES}, SubCode.INVALID_PARAMETER),
        ({"serial": "NOPE"}, "DEVICE_NOT_FOUND"),
        ({"serial": "ELSEWHERE"}, "DEVICE_NOT_FOUND"),
        ({"serial": "LOOSE"}, "DEVICE_NOT_BOUND"),
        ({"merchant_id": "2088000000000999"}, "MERCHANT_NOT_FOUND"),
        ({"serial": "U1", "program": "2019"}, SubCode.INVALID_PARAMETER),
    ],
)
def test_query_refusals(db: Session, biz: dict[str, Any], code: str) -> None:
    assert refusal(db, Method.SUBSIDY_QUERY, biz) == code


def test_months_left_follow_the_sandbox_clock(db: Session) -> None:
    enroll(db, "U1")
    later = [handle(db, Method.SUBSIDY_QUERY, {"serial": "U1"}, NOW + dt.timedelta(days=d)) for d in (0, 30, 90)]
    assert [s["units"][0]["months_left"] for s in later] == [3, 2, 0]
