"""The outbox's pending calls: found and written in one transaction, never answered in place of a call asking
something else, settled ``refused`` only by a refusal of the request itself, the station's own, and abandoned
by an operator (review of issue 9: client findings 2, 3, 4, 7; flows finding 6)."""

# ruff: noqa: F811  # the fixtures of test_outbox, imported, are the tests' parameters
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from test_outbox import ASK, SERIAL, Platform, ledger, outbox, platform, url  # noqa: F401  # its fixtures

from enrollment.errors import PlatformRefused, PlatformReplyInvalid, PlatformUnavailable
from enrollment.gateway import Method
from provisioning.ledger import Ledger, PlatformCallNotPending, UnknownPlatformCall
from provisioning.outbox import Outbox, PendingCallDiffers, PlatformCallSecretGone, ResumeReport

PAY = {"scene": "face", "auth_code": "ftoken-first-0001", "total_amount": "0.01", "subject": "noodles"}


def refusal(code: str, sub_code: str) -> PlatformRefused:
    return PlatformRefused(method="iot.device.bind", code=code, sub_code=sub_code, sub_msg="no")


def refuse(code: str, sub_code: str) -> Callable[[], None]:
    def step() -> None:
        raise refusal(code, sub_code)

    return step


def test_a_pending_call_asking_something_else_is_neither_sent_nor_replaced(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    platform.script.append("lost")  # the 0.01 payment is done, its reply lost
    with pytest.raises(PlatformUnavailable):
        outbox.call(Method.TRADE_PAY, PAY, serial=SERIAL)
    (pending,) = outbox.pending()
    bigger = PAY | {"auth_code": "ftoken-second-0002", "total_amount": "100.00"}
    with pytest.raises(PendingCallDiffers) as raised:
        outbox.call(Method.TRADE_PAY, bigger, serial=SERIAL)
    assert raised.value.params == {"method": "trade.pay", "serial": SERIAL, "request_no": pending.request_no}
    assert pending.request_no in (raised.value.remedy_text or "")
    assert len(platform.sent) == 1 and outbox.pending() == [pending]  # nothing sent, nothing written
    assert "ftoken-second-0002" not in str(ledger.audit_entries()) + str(raised.value.params)


def test_a_pending_call_asking_the_same_as_json_is_sent_again(platform: Platform, outbox: Outbox) -> None:
    inventory = {"supplier_id": "2088000000000100", "devices": ({"serial": SERIAL, "model": "F2"},)}
    platform.script.append("down")
    with pytest.raises(PlatformUnavailable):
        outbox.call(Method.INVENTORY_REGISTER, inventory, serial=SERIAL)
    as_list = inventory | {"devices": [{"model": "F2", "serial": SERIAL}]}  # a list, the keys in another order
    assert (
        outbox.call(Method.INVENTORY_REGISTER, as_list, serial=SERIAL)["out_request_no"]
        == platform.sent[0]["out_request_no"]
    )
    assert platform.sent[0] == platform.sent[1] and outbox.pending() == []


def test_threads_calling_for_one_unit_at_once_write_one_call(ledger: Ledger, platform: Platform) -> None:
    answer, callers = platform.call, 6
    out = threading.Barrier(callers)

    def held(method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        out.wait(timeout=10)  # no sending is answered before every caller has looked for a pending call
        return answer(method, biz)

    platform.call = held  # type: ignore[method-assign]
    outbox = Outbox(ledger, platform)  # type: ignore[arg-type]
    threads = [
        threading.Thread(target=outbox.call, args=(Method.DEVICE_BIND, ASK), kwargs={"serial": SERIAL})
        for _ in range(callers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(platform.sent) == callers
    numbers = {biz["out_request_no"] for biz in platform.sent}
    assert len(numbers) == 1 and len(platform.done) == 1
    assert [e.action for e in ledger.audit_entries(subject=f"device:{SERIAL}")] == [
        "platform.call.queued",
        "platform.call.done",
    ]


@pytest.mark.parametrize(
    ("code", "sub_code"),
    [
        ("20001", "isv.invalid-timestamp"),  # the station's clock drifted: says nothing of the first sending
        ("20001", "isv.invalid-signature"),  # a key rotated
        ("40006", "isv.insufficient-permissions"),
        ("40002", "isv.duplicate-request-no"),
        ("40004", "isp.unknown-error"),
        ("20000", "isp.rate-limited"),
        ("50000", "SOMETHING_NEW"),
    ],
)
def test_a_refusal_of_the_sending_leaves_the_call_pending(
    ledger: Ledger, platform: Platform, outbox: Outbox, code: str, sub_code: str
) -> None:
    platform.script += ["lost", refuse(code, sub_code)]  # done at the platform, then refused on resending
    with pytest.raises(PlatformUnavailable):
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    assert outbox.resume() == ResumeReport(done=0, refused=0, pending=1)
    (pending,) = outbox.pending()
    assert pending.error is None and ledger.audit_entries()[-1].action == "platform.call.queued"
    with pytest.raises(PlatformRefused):
        platform.script.append(refuse(code, sub_code))
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    assert outbox.pending() == [ledger.platform_call(pending.request_no)]
    assert outbox.resume() == ResumeReport(done=1, refused=0, pending=0)  # the platform's first answer at last
    assert len(platform.done) == 1


@pytest.mark.parametrize(
    ("code", "sub_code"),
    [("40004", "DEVICE_NOT_BOUND"), ("40001", "isv.missing-parameter"), ("40002", "isv.invalid-parameter")],
)
def test_a_refusal_of_the_request_settles_it_refused(
    ledger: Ledger, platform: Platform, outbox: Outbox, code: str, sub_code: str
) -> None:
    platform.script.append(refuse(code, sub_code))
    with pytest.raises(PlatformRefused):
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    record = ledger.find_platform_call(Method.DEVICE_BIND, SERIAL, state="refused")
    assert record is not None and record.error == f"{code} {sub_code}: no" and outbox.pending() == []


def test_resume_stops_at_a_refusal_of_the_station(ledger: Ledger, platform: Platform, outbox: Outbox) -> None:
    for n in range(3):
        serial = f"DF2A0000{n}"
        ledger.add_platform_call(Method.DEVICE_ACTIVATE, f"{n}" * 32, {"serial": serial, "out_request_no": f"{n}" * 32})
    platform.script += [refuse("40002", "isv.duplicate-request-no"), refuse("20001", "isv.invalid-signature")]
    assert outbox.resume() == ResumeReport(done=0, refused=0, pending=3)
    assert [b["serial"] for b in platform.sent] == ["DF2A00000", "DF2A00001"]  # the third would meet the same


def test_resume_does_not_send_a_call_settled_meanwhile(ledger: Ledger, platform: Platform, outbox: Outbox) -> None:
    for n in range(2):
        serial = f"DF2A0000{n}"
        biz = {"serial": serial, "out_request_no": f"{n}" * 32}
        ledger.add_platform_call(Method.DEVICE_ACTIVATE, f"{n}" * 32, biz, serial)

    # while the first goes out, another thread of the station settles the second
    def settled_elsewhere() -> None:
        ledger.settle_platform_call("1" * 32, "refused", error="40004 DEVICE_NOT_BOUND: no")

    platform.script.append(settled_elsewhere)
    assert outbox.resume() == ResumeReport(done=1, refused=1, pending=0)
    assert [b["serial"] for b in platform.sent] == ["DF2A00000"]


def test_resume_sends_the_calls_asked_for(ledger: Ledger, platform: Platform, outbox: Outbox) -> None:
    for n, method in enumerate([Method.DEVICE_BIND, Method.DEVICE_ACTIVATE, Method.DEVICE_ACTIVATE]):
        serial = f"DF2A0000{n % 2}"
        ledger.add_platform_call(method, f"{n}" * 32, {"serial": serial, "out_request_no": f"{n}" * 32}, serial)
    assert outbox.resume(Method.DEVICE_ACTIVATE, "DF2A00000") == ResumeReport(1, 0, 0)
    assert [c.request_no for c in outbox.pending()] == ["0" * 32, "1" * 32]
    assert outbox.resume(serial="DF2A00001") == ResumeReport(1, 0, 0)
    assert [c.request_no for c in outbox.pending(Method.DEVICE_BIND)] == ["0" * 32]


def test_an_abandoned_call_is_never_sent_again(ledger: Ledger, platform: Platform, outbox: Outbox) -> None:
    platform.script.append("garbled")  # a reply that can never be used: the platform replays it for the number
    with pytest.raises(PlatformReplyInvalid):
        outbox.call(Method.TRADE_PAY, PAY, serial=SERIAL)
    (pending,) = outbox.pending()
    abandoned = outbox.as_operator("olga").abandon(pending.request_no)
    assert (abandoned.state, abandoned.biz["auth_code"], abandoned.biz["total_amount"]) == ("abandoned", "", "0.01")
    entry = ledger.audit_entries(subject=f"device:{SERIAL}")[-1]
    assert (entry.action, entry.operator, entry.details["request_no"]) == (
        "platform.call.abandoned",
        "olga",
        pending.request_no,
    )
    assert outbox.pending() == [] and outbox.resume() == ResumeReport(0, 0, 0) and len(platform.sent) == 1
    outbox.call(Method.TRADE_PAY, PAY | {"auth_code": "ftoken-second-0002"}, serial=SERIAL)  # a new call at last
    assert len({b["out_trade_no"] for b in platform.sent}) == 2
    late = "40004 LATE: refused"
    assert ledger.settle_platform_call(pending.request_no, "refused", error=late) == abandoned  # kept as is
    assert ledger.settle_platform_call(pending.request_no, "done", reply={}).state == "done"  # the platform did it
    assert "ftoken-first-0001" not in str(ledger.audit_entries()) and ledger.verify().ok


def test_only_a_pending_call_can_be_abandoned(ledger: Ledger, outbox: Outbox) -> None:
    outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    done = outbox.done(Method.DEVICE_BIND, SERIAL)
    assert done is not None
    entries = len(ledger.audit_entries())
    with pytest.raises(PlatformCallNotPending) as raised:
        outbox.abandon(done.request_no)
    assert raised.value.params == {"request_no": done.request_no, "state": "done", "station": "bench-1"}
    with pytest.raises(UnknownPlatformCall):
        outbox.abandon("9" * 32)
    assert len(ledger.audit_entries()) == entries


def test_another_stations_pending_calls_are_its_own(url: str, ledger: Ledger, platform: Platform) -> None:
    platform.script.append("lost")
    with pytest.raises(PlatformUnavailable):
        Outbox(ledger, platform).call(Method.TRADE_PAY, PAY, serial=SERIAL)  # type: ignore[arg-type]
    (pending,) = ledger.pending_platform_calls()
    with Ledger.open(url, station="bench-2") as other:
        elsewhere = Outbox(other, platform)  # type: ignore[arg-type]
        assert elsewhere.pending() == [] and elsewhere.resume() == ResumeReport(0, 0, 0)
        assert other.find_platform_call(Method.TRADE_PAY, SERIAL, state="pending") is None
        with pytest.raises(PlatformCallNotPending):
            elsewhere.abandon(pending.request_no)
        elsewhere.call(Method.TRADE_PAY, PAY, serial=SERIAL)  # its own call, not bench-1's pending one
    assert platform.sent[1]["out_trade_no"] != pending.request_no and ledger.pending_platform_calls() == [pending]


def test_a_call_abandoned_while_being_sent_is_done_when_the_platform_did_it(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    """The operator abandons it mid-sending, the platform answers 10000: the work is on record, and the next run
    does not do it again (review round 2, finding 5)."""

    def abandon() -> None:
        outbox.abandon(platform.sent[-1]["out_request_no"])

    platform.script.append(abandon)
    outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    found = outbox.done(Method.DEVICE_BIND, SERIAL)
    assert found is not None and found.request_no == platform.sent[0]["out_request_no"]
    done = [e for e in ledger.audit_entries() if e.action == "platform.call.done"]
    assert len(done) == 1 and done[0].details["abandoned"] is True


def test_a_call_abandoned_while_being_sent_stays_abandoned_when_refused(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    def abandon_then_refuse() -> None:
        outbox.abandon(platform.sent[-1]["out_request_no"])
        raise refusal("40004", "DEVICE_NOT_IN_INVENTORY")

    platform.script.append(abandon_then_refuse)
    with pytest.raises(PlatformRefused):
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    record = ledger.platform_call(platform.sent[0]["out_request_no"])
    assert record is not None and record.state == "abandoned"


def test_a_verify_done_by_another_sending_is_not_handed_back_with_a_blank_token(
    ledger: Ledger, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent verify with the same content settled it first: its token is not kept, so this caller gets
    a typed error, not a success with ``ftoken == ""`` (review round 2, finding 7)."""
    number = "f" * 32
    ask = {"session_id": "s" * 16, "serial": SERIAL, "face_id": "sandbox-buyer-1"}
    stale = ledger.add_platform_call(Method.FACE_SESSION_VERIFY, number, {**ask, "out_request_no": number}, SERIAL)
    reply = {"code": "10000", "out_request_no": number, "ftoken": "t" * 32, "expires": "2026-11-30 16:05:00"}
    ledger.settle_platform_call(number, "done", reply=reply)
    monkeypatch.setattr(ledger, "queue_platform_call", lambda *args: (stale, False))  # found pending, then settled
    with pytest.raises(PlatformCallSecretGone) as raised:
        outbox.call(Method.FACE_SESSION_VERIFY, ask, serial=SERIAL)
    assert raised.value.params == {"method": "face.session.verify", "request_no": number}
