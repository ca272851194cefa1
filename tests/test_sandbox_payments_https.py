"""End to end over HTTPS against a running sandbox: the face-pay check's calls and a unit's subsidy status.

Requests are signed and replies checked with the gateway codec only (tests/sandbox_station.py), not the client.
"""

from __future__ import annotations

import sqlite3

from sandbox_rows import NOODLES
from sandbox_station import SUPPLIER_ID, Station, sandbox_fixture, station_fixture  # noqa: F401 - fixtures

from enrollment.gateway import Method
from enrollment.sandbox.seed import BUYER_FACE_ID
from enrollment.sandbox.server import Sandbox

SERIAL = "NF1-E2E-0001"
AT_STORE = {"serial": SERIAL, "merchant_id": NOODLES, "store_id": "S0001"}
REGISTER = {"out_request_no": "reg-1", "supplier_id": SUPPLIER_ID, "devices": [{"serial": SERIAL, "model": "NF-1"}]}


def face_token(station: Station, number: str) -> str:
    assert station.call(Method.INVENTORY_REGISTER, REGISTER)["code"] == "10000"  # a repeat answers the same
    opened = station.call(Method.FACE_SESSION_INITIALIZE, {"out_request_no": f"open-{number}", **AT_STORE})
    assert opened["code"] == "10000"
    verify = {"out_request_no": f"verify-{number}", "session_id": opened["session_id"], "serial": SERIAL}
    verified = station.call(Method.FACE_SESSION_VERIFY, {**verify, "face_id": BUYER_FACE_ID})
    return str(verified["ftoken"])


def test_pay_query_refund_over_https_refunds_once(station: Station) -> None:
    pay = {"out_trade_no": "check-1", "scene": "face", "auth_code": face_token(station, "1"), "total_amount": "0.01"}
    paid = station.call(Method.TRADE_PAY, {**pay, "subject": "Face-pay check", **AT_STORE})
    assert (paid["code"], paid["trade_status"], paid["buyer_logon_id"]) == ("10000", "TRADE_SUCCESS", "138****0001")
    queried = station.call(Method.TRADE_QUERY, {"out_trade_no": "check-1"})
    assert (queried["trade_no"], queried["trade_status"]) == (paid["trade_no"], "TRADE_SUCCESS")
    refund = {"out_request_no": "check-1-refund", "trade_no": paid["trade_no"], "refund_amount": "0.01"}
    first = station.call(Method.TRADE_REFUND, refund)
    assert (first["code"], first["refunded_total"]) == ("10000", "0.01")
    assert station.call(Method.TRADE_REFUND, refund) == first  # the same number: the first answer, no second refund
    asked = station.call(Method.TRADE_REFUND_QUERY, {"out_request_no": "check-1-refund", "out_trade_no": "check-1"})
    assert (asked["refund_status"], asked["refund_amount"]) == ("REFUND_SUCCESS", "0.01")
    closed = station.call(Method.TRADE_QUERY, {"trade_no": paid["trade_no"]})
    assert (closed["trade_status"], closed["refunded_amount"]) == ("TRADE_CLOSED", "0.01")
    again = station.call(Method.TRADE_REFUND, {**refund, "out_request_no": "check-1-refund-2"})
    assert (again["code"], again["sub_code"]) == ("40004", "REFUND_AMOUNT_EXCEEDED")
    [trade] = [t for t in station.view("trades") if t["out_trade_no"] == "check-1"]
    assert (trade["amount"], trade["status"], trade["refunded"], trade["refunded_amount"]) == (
        "0.01",
        "TRADE_CLOSED",
        True,
        "0.01",
    )


def test_a_live_units_face_payment_shows_in_its_subsidy_status(station: Station) -> None:
    assert station.call(Method.INVENTORY_REGISTER, REGISTER)["code"] == "10000"
    bind = {"out_request_no": "bind-1", "supplier_id": SUPPLIER_ID, **AT_STORE}
    assert station.call(Method.DEVICE_BIND, bind)["code"] == "10000"
    assert station.call(Method.DEVICE_ACTIVATE, {"out_request_no": "act-1", "serial": SERIAL})["code"] == "10000"
    enrolled = station.call(Method.SUBSIDY_ENROLL, {"out_request_no": "enr-1", "serial": SERIAL, "program": "2019"})
    assert enrolled["program"] == "2019"
    pay = {"out_trade_no": "sale-1", "scene": "face", "auth_code": face_token(station, "2"), "total_amount": "12.00"}
    assert station.call(Method.TRADE_PAY, {**pay, "subject": "Noodles", **AT_STORE})["code"] == "10000"
    status = station.call(Method.SUBSIDY_QUERY, {"serial": SERIAL})
    [unit] = status["units"]
    assert (unit["program"], unit["users"], unit["earned"], unit["cap_left"], unit["months_left"]) == (
        "2019",
        1,
        "0.70",
        "1199.30",
        5,
    )
    assert unit["months"][0]["users"] == 1 and status["earned"] == "0.70"
    [device] = [d for d in station.view("devices") if d["serial"] == SERIAL]
    assert device["subsidy_program"] == "2019"


def test_a_repeated_verify_answers_a_fresh_token_and_the_earlier_one_stops(station: Station, sandbox: Sandbox) -> None:
    opened = station.call(Method.FACE_SESSION_INITIALIZE, {"out_request_no": "open-kept", **AT_STORE})
    verify = {"out_request_no": "verify-kept", "session_id": opened["session_id"], "serial": SERIAL}
    verify["face_id"] = BUYER_FACE_ID
    first = station.call(Method.FACE_SESSION_VERIFY, verify)
    again = station.call(Method.FACE_SESSION_VERIFY, verify)  # the first reply lost: the same answer, a fresh token
    assert again["code"] == "10000" and again["ftoken"] != first["ftoken"]
    assert {**again, "ftoken": ""} == {**first, "ftoken": ""}
    pay = {"scene": "face", "total_amount": "0.01", "subject": "Noodles", **AT_STORE}
    old = station.call(Method.TRADE_PAY, {**pay, "out_trade_no": "kept-1", "auth_code": first["ftoken"]})
    assert old["sub_code"] == "AUTH_CODE_INVALID"
    paid = station.call(Method.TRADE_PAY, {**pay, "out_trade_no": "kept-2", "auth_code": again["ftoken"]})
    assert paid["code"] == "10000"
    late = station.call(Method.FACE_SESSION_VERIFY, verify)  # the token paid: no fresh one
    assert (late["code"], late["sub_code"], late["out_request_no"]) == ("40004", "SESSION_INVALID", "verify-kept")
    with sqlite3.connect(str(sandbox._database.engine.url.database)) as db:
        assert not any(first["ftoken"] in line or again["ftoken"] in line for line in db.iterdump())


def test_a_refund_retried_naming_its_trade_the_other_way_is_the_same_refund(station: Station) -> None:
    pay = {"out_trade_no": "check-2", "scene": "face", "auth_code": face_token(station, "3"), "total_amount": "0.05"}
    paid = station.call(Method.TRADE_PAY, {**pay, "subject": "Face-pay check", **AT_STORE})
    refund = {"out_request_no": "check-2-refund", "out_trade_no": "check-2", "refund_amount": "0.02"}
    first = station.call(Method.TRADE_REFUND, refund)
    by_trade_no = {"out_request_no": "check-2-refund", "trade_no": paid["trade_no"], "refund_amount": "0.02"}
    again = station.call(Method.TRADE_REFUND, by_trade_no)
    assert again == first and again["refunded_total"] == "0.02"
    other = station.call(Method.TRADE_REFUND, {**by_trade_no, "refund_amount": "0.01"})
    assert (other["code"], other["sub_code"], other["out_request_no"]) == (
        "40002",
        "isv.duplicate-request-no",
        "check-2-refund",
    )
