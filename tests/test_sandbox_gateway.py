"""The sandbox's gateway over HTTPS: signed requests served, every bad one refused with its code and no effect."""

from __future__ import annotations

import datetime as dt
import itertools
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sandbox_station import SUPPLIER_ID, Station, sandbox_fixture, station_fixture  # noqa: F401 - fixtures
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from enrollment.gateway import Code, Method, SubCode
from enrollment.sandbox.models import Device
from enrollment.sandbox.registry import HANDLERS, Call
from enrollment.sandbox.server import Sandbox

NOODLES, GROCER = "2088000000000001", "2088000000000002"
SERIALS = (f"GW{n:05d}" for n in itertools.count())


def registration(*serials: str, number: str | None = None) -> dict[str, Any]:
    return {
        "out_request_no": number or f"R-{serials[0]}",
        "supplier_id": SUPPLIER_ID,
        "devices": [{"serial": s, "model": "DF2"} for s in serials],
    }


def register(station: Station, *serials: str, number: str | None = None) -> dict[str, Any]:
    return station.call(Method.INVENTORY_REGISTER, registration(*serials, number=number))


def bind(station: Station, serial: str, merchant: str = NOODLES, store: str = "S0001", **extra: Any) -> dict[str, Any]:
    biz = {
        "out_request_no": f"B-{serial}-{merchant}-{store}",
        "serial": serial,
        "supplier_id": SUPPLIER_ID,
        "merchant_id": merchant,
        "store_id": store,
        **extra,
    }
    return station.call(Method.DEVICE_BIND, biz)


def activate(station: Station, serial: str) -> dict[str, Any]:
    return station.call(Method.DEVICE_ACTIVATE, {"out_request_no": f"A-{serial}", "serial": serial})


def refused(reply: dict[str, Any], code: Code, sub_code: str) -> bool:
    return (reply["code"], reply["sub_code"]) == (code.value, sub_code) and bool(reply["sub_msg"])


def test_a_unit_is_registered_bound_and_activated_and_the_views_show_it(station: Station) -> None:
    serial, other = next(SERIALS), next(SERIALS)
    reply = register(station, serial, other)
    assert reply["code"] == "10000" and reply["msg"] == "Success"
    assert reply["results"] == [{"serial": serial, "status": "registered"}, {"serial": other, "status": "registered"}]
    bound = bind(station, serial, GROCER, "S0001")
    assert bound["code"] == "10000" and (bound["serial"], bound["merchant_id"], bound["store_id"]) == (
        serial,
        GROCER,
        "S0001",
    )
    dt.datetime.strptime(bound["bound"], "%Y-%m-%d %H:%M:%S")
    activated = activate(station, serial)
    assert activated["code"] == "10000" and activated["serial"] == serial
    assert station.device(serial) == {
        "serial": serial,
        "model": "DF2",
        "inventory_owner": SUPPLIER_ID,
        "merchant_id": GROCER,
        "store_id": "S0001",
        "activated": True,
        "activated_at": activated["activated"],
        "subsidy_program": None,
    }
    assert station.device(other) is not None and station.device(other)["merchant_id"] is None  # type: ignore[index]


def test_a_step_repeated_with_a_new_number_answers_as_the_first_time(station: Station) -> None:
    serial = next(SERIALS)
    register(station, serial)
    again = register(station, serial, number=f"again-{serial}")
    assert again["results"] == [{"serial": serial, "status": "already-registered"}]
    first = bind(station, serial)
    second = station.call(
        Method.DEVICE_BIND,
        {
            "out_request_no": f"re-{serial}",
            "serial": serial,
            "supplier_id": SUPPLIER_ID,
            "merchant_id": NOODLES,
            "store_id": "S0001",
        },
    )
    assert second["bound"] == first["bound"]
    activated = activate(station, serial)
    repeat = station.call(Method.DEVICE_ACTIVATE, {"out_request_no": f"re-{serial}", "serial": serial})
    assert repeat["activated"] == activated["activated"]


def test_the_merchants_view_lists_the_seeded_stores_with_their_qr_text(station: Station) -> None:
    merchants = {m["merchant_id"]: m for m in station.view("merchants")}
    assert [s["store_id"] for s in merchants[NOODLES]["stores"]] == ["S0001", "S0002"]
    assert merchants[GROCER]["stores"][0]["qr_text"] == (
        f"https://platform.example/bind?merchant_id={GROCER}&store_id=S0001"
    )


def test_business_refusals_name_their_case_and_change_nothing(station: Station, sandbox: Sandbox) -> None:
    serial, unknown = next(SERIALS), next(SERIALS)
    register(station, serial)
    assert refused(bind(station, unknown), Code.BUSINESS_FAILED, "DEVICE_NOT_IN_INVENTORY")
    assert refused(bind(station, serial, "2088999999999999"), Code.BUSINESS_FAILED, "MERCHANT_NOT_FOUND")
    assert refused(bind(station, serial, GROCER, "S0002"), Code.BUSINESS_FAILED, "STORE_NOT_FOUND")
    assert refused(activate(station, serial), Code.BUSINESS_FAILED, "DEVICE_NOT_BOUND")
    assert station.device(serial)["merchant_id"] is None  # type: ignore[index]
    bind(station, serial)
    assert refused(bind(station, serial, GROCER), Code.BUSINESS_FAILED, "DEVICE_BOUND_ELSEWHERE")
    assert station.device(serial)["merchant_id"] == NOODLES  # type: ignore[index]
    foreign = dict(
        out_request_no=f"F-{serial}", supplier_id="2088000000000999", devices=[{"serial": serial, "model": "DF2"}]
    )
    assert refused(station.call(Method.INVENTORY_REGISTER, foreign), Code.FORBIDDEN, "SUPPLIER_NOT_PERMITTED")


def test_a_refusal_echoes_the_request_number_it_answers(station: Station) -> None:
    serial = next(SERIALS)
    reply = bind(station, serial)  # not in the inventory
    assert (reply["sub_code"], reply["out_request_no"]) == ("DEVICE_NOT_IN_INVENTORY", f"B-{serial}-{NOODLES}-S0001")
    unsigned = station.resign(station.params(Method.INVENTORY_REGISTER, registration(serial, number="echo-1")))
    unsigned["sign"] = unsigned["sign"][::-1]
    reply = station.reply(station.post(unsigned), Method.INVENTORY_REGISTER)
    assert (reply["sub_code"], reply["out_request_no"]) == (SubCode.INVALID_SIGNATURE, "echo-1")
    unknown = station.call(Method.SUBSIDY_QUERY, {"serial": serial})  # a read method has no number to echo
    assert unknown["sub_code"] == "DEVICE_NOT_FOUND" and "out_request_no" not in unknown


def test_a_unit_in_another_suppliers_inventory_is_refused_in_the_batch(station: Station, sandbox: Sandbox) -> None:
    owned, mine = next(SERIALS), next(SERIALS)
    engine = create_engine(f"sqlite:///{sandbox._database.engine.url.database}")
    with Session(engine) as session, session.begin():
        session.add(
            Device(serial=owned, model="DF2", supplier_id="2088000000000999", registered=dt.datetime.now(dt.UTC))
        )
    engine.dispose()
    reply = register(station, owned, mine)
    assert reply["code"] == "10000"
    assert reply["results"][0]["status"] == "refused" and reply["results"][0]["sub_code"] == "DEVICE_OWNED_ELSEWHERE"
    assert reply["results"][1] == {"serial": mine, "status": "registered"}
    assert station.device(owned)["inventory_owner"] == "2088000000000999"  # type: ignore[index]


def test_the_same_request_number_twice_makes_one_record_and_other_content_is_refused(station: Station) -> None:
    serial, other = next(SERIALS), next(SERIALS)
    first = register(station, serial, number=f"idem-{serial}")
    repeat = register(station, serial, number=f"idem-{serial}")
    assert repeat == first and repeat["results"] == [{"serial": serial, "status": "registered"}]
    assert [d["serial"] for d in station.view("devices")].count(serial) == 1
    changed = register(station, other, number=f"idem-{serial}")
    assert refused(changed, Code.INVALID_PARAMETER, SubCode.DUPLICATE_REQUEST_NO)
    assert station.device(other) is None


def test_a_refusal_is_not_stored_so_the_number_can_be_used_again(station: Station) -> None:
    serial = next(SERIALS)
    register(station, serial)
    biz = {"out_request_no": f"late-{serial}", "serial": serial}
    assert refused(station.call(Method.DEVICE_ACTIVATE, biz), Code.BUSINESS_FAILED, "DEVICE_NOT_BOUND")
    bind(station, serial)
    assert station.call(Method.DEVICE_ACTIVATE, biz)["code"] == "10000"


OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _mangled(station: Station, serial: str, case: str) -> Any:
    """The form of a register request for ``serial``, broken as ``case`` says."""
    biz = {"out_request_no": f"M-{serial}", "supplier_id": SUPPLIER_ID, "devices": [{"serial": serial, "model": "DF2"}]}
    method = Method.INVENTORY_REGISTER
    if case == "other key":
        return station.params(method, biz, key=OTHER_KEY)
    if case == "unknown app":
        return station.params(method, biz, app_id="2026000000000009")
    if case == "old":
        return station.params(method, biz, at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6))
    if case == "future":
        return station.params(method, biz, at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6))
    if case == "unknown biz field":
        return station.params(method, {**biz, "note": "x"})
    if case == "unknown item field":
        return station.params(method, {**biz, "devices": [{"serial": serial, "model": "DF2", "x": 1}]})
    if case == "bad serial":
        return station.params(method, {**biz, "devices": [{"serial": serial + " ", "model": "DF2"}]})
    if case == "no devices":
        return station.params(method, {**biz, "devices": []})
    if case == "unknown method":
        return station.params("iot.device.explode", biz)
    params = station.params(method, biz)
    if case == "unsigned":
        del params["sign"]
    elif case == "biz changed":
        params["biz_content"] = params["biz_content"].replace("DF2", "DF3")
    elif case == "sign not base64":
        params["sign"] = "!!"
    elif case in ("no app", "no timestamp", "no biz"):
        del params[{"no app": "app_id", "no timestamp": "timestamp", "no biz": "biz_content"}[case]]
    else:  # a well-signed request with a bad parameter
        params = station.resign({**params, **RESIGNED[case]})
    return params


RESIGNED = {
    "format": {"format": "XML"},
    "charset": {"charset": "gbk"},
    "sign_type": {"sign_type": "RSA"},
    "version": {"version": "2.0"},
    "timestamp text": {"timestamp": "yesterday"},
    "biz not json": {"biz_content": "{"},
    "biz a list": {"biz_content": "[]"},
    "biz twice a key": {"biz_content": '{"out_request_no":"a","out_request_no":"b"}'},
    "extra parameter": {"notify_url": "https://example.com"},
}
CASES = {
    "unsigned": (Code.MISSING_PARAMETER, SubCode.MISSING_SIGNATURE),
    "other key": (Code.UNAUTHORISED, SubCode.INVALID_SIGNATURE),
    "biz changed": (Code.UNAUTHORISED, SubCode.INVALID_SIGNATURE),
    "sign not base64": (Code.UNAUTHORISED, SubCode.INVALID_SIGNATURE),
    "unknown app": (Code.UNAUTHORISED, SubCode.INVALID_APP_ID),
    "old": (Code.UNAUTHORISED, SubCode.INVALID_TIMESTAMP),
    "future": (Code.UNAUTHORISED, SubCode.INVALID_TIMESTAMP),
    "timestamp text": (Code.INVALID_PARAMETER, SubCode.INVALID_TIMESTAMP),
    "format": (Code.INVALID_PARAMETER, SubCode.INVALID_FORMAT),
    "charset": (Code.INVALID_PARAMETER, SubCode.INVALID_CHARSET),
    "sign_type": (Code.INVALID_PARAMETER, SubCode.INVALID_SIGN_TYPE),
    "version": (Code.INVALID_PARAMETER, SubCode.INVALID_VERSION),
    "biz not json": (Code.INVALID_PARAMETER, SubCode.INVALID_BIZ_CONTENT),
    "biz a list": (Code.INVALID_PARAMETER, SubCode.INVALID_BIZ_CONTENT),
    "biz twice a key": (Code.INVALID_PARAMETER, SubCode.INVALID_BIZ_CONTENT),
    "extra parameter": (Code.INVALID_PARAMETER, SubCode.INVALID_PARAMETER),
    "unknown biz field": (Code.INVALID_PARAMETER, SubCode.INVALID_PARAMETER),
    "unknown item field": (Code.INVALID_PARAMETER, SubCode.INVALID_PARAMETER),
    "bad serial": (Code.INVALID_PARAMETER, SubCode.INVALID_PARAMETER),
    "no devices": (Code.INVALID_PARAMETER, SubCode.INVALID_PARAMETER),
    "no app": (Code.MISSING_PARAMETER, SubCode.MISSING_APP_ID),
    "no timestamp": (Code.MISSING_PARAMETER, SubCode.MISSING_TIMESTAMP),
    "no biz": (Code.MISSING_PARAMETER, SubCode.MISSING_BIZ_CONTENT),
    "unknown method": (Code.INVALID_PARAMETER, SubCode.INVALID_METHOD),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_request_is_refused_with_its_code_signed_and_changes_nothing(station: Station, case: str) -> None:
    serial = next(SERIALS)
    response = station.post(_mangled(station, serial, case))
    assert response.status_code == 200
    reply = station.reply(response, Method.INVENTORY_REGISTER)  # error_response when the method is unknown
    code, sub_code = CASES[case]
    assert refused(reply, code, sub_code), reply
    assert station.device(serial) is None


def test_a_handler_that_fails_answers_unknown_error_and_its_work_is_rolled_back(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = next(SERIALS)

    def half_done(call: Call) -> dict[str, Any]:
        call.session.add(Device(serial=serial, model="DF2", supplier_id=SUPPLIER_ID, registered=call.now))
        call.session.flush()
        raise RuntimeError("a bug in the middle of the work")

    monkeypatch.setitem(HANDLERS, Method.DEVICE_ACTIVATE, half_done)
    reply = station.call(Method.DEVICE_ACTIVATE, {"out_request_no": f"bug-{serial}", "serial": serial})
    assert refused(reply, Code.UNAVAILABLE, SubCode.UNKNOWN_ERROR) and "bug" not in reply["sub_msg"]
    assert station.device(serial) is None


def test_concurrent_writes_queue_and_all_succeed(station: Station) -> None:
    serials = [next(SERIALS) for _ in range(24)]
    forms = [station.params(Method.INVENTORY_REGISTER, registration(serial)) for serial in serials]
    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(lambda form: station.reply(station.post(form), Method.INVENTORY_REGISTER), forms))
    assert all(r["code"] == "10000" and r["results"][0]["status"] == "registered" for r in replies)
    assert {d["serial"] for d in station.view("devices")} >= set(serials)


def test_replies_are_not_held_back_by_nagle(station: Station, sandbox: Sandbox) -> None:
    """uvicorn writes a reply's head and body apart: without TCP_NODELAY the body waits for a delayed ACK (40 ms)."""
    station.view("merchants")  # a kept-alive connection the server still holds
    sockets = [c.transport.get_extra_info("socket") for c in sandbox._server.server_state.connections]
    assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
