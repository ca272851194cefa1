"""The outbox: platform calls written to the ledger first, then sent, then settled; resumed after a crash or an
outage with the same request number; audited, sealed, and holding no face token once settled (on SQLite; one
test on PostgreSQL where a server can be started)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import execute_sql
from platform_gateway import Gateway, serving, success
from test_platform_client import BIND, PAY, STATION_KEY, STRANGER_KEY

from enrollment.client import PlatformClient
from enrollment.errors import PlatformRefused, PlatformReplyInvalid, PlatformSignatureInvalid, PlatformUnavailable
from enrollment.gateway import REQUEST_NUMBER, Code, Method, rsa_signer
from provisioning.ledger import ChainProblem, InvalidLedgerInput, Ledger, SecretRefused
from provisioning.outbox import Outbox, ResumeReport

SERIAL = BIND["serial"]
ASK = {k: v for k, v in BIND.items() if k != "out_request_no"}  # what a flow asks for: the outbox numbers it


class Platform:
    """A scripted stand-in for PlatformClient that keeps what a real platform keeps: the first answer per number.

    ``script`` holds what happens to the next sendings: "ok", "refuse", "down" (never arrives), "lost" (done,
    the answer lost on the way), "garbled" (an answer that cannot be used), or a callable run first."""

    def __init__(self) -> None:
        self.script: list[str | Callable[[], None]] = []
        self.sent: list[dict[str, Any]] = []
        self.done: dict[str, dict[str, Any]] = {}  # request number -> the first answer

    def call(self, method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        self.sent.append(dict(biz))
        step = self.script.pop(0) if self.script else "ok"
        if callable(step):
            step()
            step = "ok"
        if step == "down":
            raise PlatformUnavailable(method=str(method), attempts=5, detail="the connection failed")
        if step == "refuse":
            raise PlatformRefused(method=str(method), code="40004", sub_code="DEVICE_NOT_BOUND", sub_msg="not bound")
        if step == "garbled":
            raise PlatformReplyInvalid(method=str(method), field="body", detail="not the gateway's reply format")
        number = biz[REQUEST_NUMBER[method]]
        answer = self.done.setdefault(number, {"code": "10000", "msg": "Success", **biz, "extra": {"session_key": "x"}})
        if step == "lost":
            raise PlatformUnavailable(method=str(method), attempts=5, detail="no reply in time")
        return answer


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger.open(url, station="bench-1") as opened:
        opened.register_operator("ivan", "installer")
        yield opened.as_operator("ivan")


@pytest.fixture
def platform() -> Platform:
    return Platform()


@pytest.fixture
def outbox(ledger: Ledger, platform: Platform) -> Outbox:
    return Outbox(ledger, platform)  # type: ignore[arg-type]  # a stand-in with the same call()


def test_a_call_is_written_before_it_is_sent_then_marked_done(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    def written_first() -> None:
        (pending,) = ledger.pending_platform_calls()
        assert pending.attempts == 1 and pending.biz["serial"] == SERIAL and pending.operator == "ivan"

    platform.script.append(written_first)
    reply = outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    (sent,) = platform.sent
    number = sent["out_request_no"]
    assert uuid.UUID(hex=number).version == 4 and number == uuid.UUID(hex=number).hex
    assert reply["out_request_no"] == number and ledger.pending_platform_calls() == []
    record = ledger.platform_call(number)
    assert record is not None and (record.state, record.method, record.serial) == ("done", "iot.device.bind", SERIAL)
    assert record.biz == sent and record.reply is not None and record.reply["serial"] == SERIAL
    assert outbox.done(Method.DEVICE_BIND, SERIAL) == record and outbox.done(Method.DEVICE_ACTIVATE, SERIAL) is None
    entries = ledger.audit_entries(subject=f"device:{SERIAL}")
    assert [e.action for e in entries] == ["platform.call.queued", "platform.call.done"]
    assert all("platform_calls:1" in e.seals for e in entries) and entries[1].details["attempts"] == 1
    assert ledger.verify().ok


def test_a_refused_call_is_marked_refused_and_the_refusal_raised(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    platform.script.append("refuse")
    with pytest.raises(PlatformRefused):
        outbox.call(Method.DEVICE_ACTIVATE, {"serial": SERIAL}, serial=SERIAL)
    record = ledger.find_platform_call(Method.DEVICE_ACTIVATE, SERIAL)
    assert record is not None and record.state == "refused" and record.reply is None
    assert record.error == "40004 DEVICE_NOT_BOUND: not bound"
    assert ledger.audit_entries(subject=f"device:{SERIAL}")[-1].action == "platform.call.refused"
    assert outbox.pending() == [] and outbox.done(Method.DEVICE_ACTIVATE, SERIAL) is None and ledger.verify().ok


@pytest.mark.parametrize("failure", ["down", "lost", "garbled"])
def test_a_call_without_a_usable_answer_stays_pending_and_resume_sends_the_same_number(
    ledger: Ledger, platform: Platform, outbox: Outbox, failure: str
) -> None:
    platform.script.append(failure)
    with pytest.raises(PlatformUnavailable if failure != "garbled" else PlatformReplyInvalid):
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    (pending,) = outbox.pending()
    assert pending.state == "pending" and pending.attempts == 1
    assert outbox.resume() == ResumeReport(done=1, refused=0, pending=0)
    first, again = platform.sent
    assert first == again  # the same request number and content: the platform does it once
    assert len(platform.done) == 1 and outbox.pending() == []
    record = outbox.done(Method.DEVICE_BIND, SERIAL)
    assert record is not None and record.attempts == 2 and ledger.verify().ok


def test_a_call_written_but_never_sent_is_sent_after_a_restart(tmp_path: Path, platform: Platform) -> None:
    """The station died between writing the call and sending it: the next start's resume sends it."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url, station="bench-1") as before_the_crash:
        before_the_crash.add_platform_call(Method.DEVICE_BIND, "c" * 32, {**ASK, "out_request_no": "c" * 32}, SERIAL)
    with Ledger.open(url, station="bench-1") as restarted:
        outbox = Outbox(restarted, platform)  # type: ignore[arg-type]
        assert [c.request_no for c in outbox.pending()] == ["c" * 32]
        assert outbox.resume() == ResumeReport(1, 0, 0)
        assert platform.sent == [{**ASK, "out_request_no": "c" * 32}] and outbox.pending() == []


def test_a_new_call_for_a_unit_sends_its_pending_one_instead(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    platform.script.append("lost")
    with pytest.raises(PlatformUnavailable):
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)  # the installer tries again
    assert platform.sent[0] == platform.sent[1] and len(platform.done) == 1
    assert outbox.pending() == [] and len(ledger.audit_entries(subject=f"device:{SERIAL}")) == 2  # queued, done
    outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)  # nothing pending: a new call, a new number
    assert len(platform.done) == 2


def test_resume_goes_oldest_first_and_stops_while_the_platform_is_down(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    for n in range(4):
        serial = f"DF2A0000{n}"
        ledger.add_platform_call(
            Method.DEVICE_ACTIVATE, f"{n}" * 32, {"serial": serial, "out_request_no": f"{n}" * 32}, serial
        )
    platform.script += ["ok", "refuse", "down"]
    assert outbox.resume() == ResumeReport(done=1, refused=1, pending=2)
    assert [b["serial"] for b in platform.sent] == ["DF2A00000", "DF2A00001", "DF2A00002"]  # not the last one
    assert [c.serial for c in outbox.pending()] == ["DF2A00002", "DF2A00003"]
    assert outbox.resume() == ResumeReport(done=2, refused=0, pending=0)


def test_a_settled_call_keeps_no_face_token(ledger: Ledger, platform: Platform, outbox: Outbox) -> None:
    pay = {k: v for k, v in PAY.items() if k != "out_trade_no"} | {"auth_code": "ftoken-0123456789"}
    platform.script.append("down")
    with pytest.raises(PlatformUnavailable):
        outbox.call(Method.TRADE_PAY, pay, serial=SERIAL)
    (pending,) = outbox.pending()
    assert pending.biz["auth_code"] == "ftoken-0123456789"  # needed to send it again
    outbox.resume()
    record = ledger.platform_call(pending.request_no)
    assert record is not None and record.state == "done" and record.biz["out_trade_no"] == pending.request_no
    assert record.biz["auth_code"] == "" and record.reply is not None and "extra" not in record.reply  # unread
    everything = str(ledger.audit_entries()) + str(ledger.platform_call(pending.request_no))
    assert "ftoken-0123456789" not in everything and ledger.verify().ok


def test_an_unknown_nested_reply_field_named_like_a_secret_is_dropped_not_wedging_the_call(
    ledger: Ledger, platform: Platform, outbox: Outbox
) -> None:
    """Only the checked fields of a reply are kept, nested ones too: a ``device_key`` inside a result made
    settling refuse the reply as a secret after the platform did the work (review client 5)."""

    def answer(method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        platform.sent.append(dict(biz))
        result = {"serial": SERIAL, "status": "registered", "device_key": "k"}
        return {"code": "10000", "msg": "Success", "out_request_no": biz["out_request_no"], "results": [result]}

    platform.call = answer  # type: ignore[method-assign]
    outbox.call(Method.INVENTORY_REGISTER, {"supplier_id": "2088000000000100", "devices": [{"serial": SERIAL}]})
    record = ledger.platform_call(platform.sent[0]["out_request_no"])
    assert record is not None and record.state == "done" and outbox.pending() == []
    assert record.reply is not None and record.reply["results"] == [{"serial": SERIAL, "status": "registered"}]


def test_the_face_token_a_verified_session_returns_is_not_kept(ledger: Ledger) -> None:
    number = "f" * 32
    biz = {"out_request_no": number, "session_id": "s" * 16, "serial": SERIAL, "face_id": "sandbox-buyer-1"}
    ledger.add_platform_call(Method.FACE_SESSION_VERIFY, number, biz, SERIAL)
    reply = {"code": "10000", "out_request_no": number, "ftoken": "t" * 32, "expires": "2026-11-30 16:05:00"}
    settled = ledger.settle_platform_call(number, "done", reply=reply)
    assert settled.reply == {**reply, "ftoken": ""} and "t" * 32 not in str(ledger.audit_entries())


def test_settling_twice_writes_nothing_more(ledger: Ledger) -> None:
    ledger.add_platform_call(Method.DEVICE_ACTIVATE, "d" * 32, {"serial": SERIAL, "out_request_no": "d" * 32}, SERIAL)
    done = ledger.settle_platform_call("d" * 32, "done", reply={"code": "10000"})
    entries = len(ledger.audit_entries())
    assert ledger.settle_platform_call("d" * 32, "refused", error="40004 LATE: another station") == done
    assert ledger.platform_call_attempted("d" * 32).attempts == 0 and len(ledger.audit_entries()) == entries


def test_bad_input_is_refused_and_nothing_written(ledger: Ledger) -> None:
    before = len(ledger.audit_entries())
    good = {"serial": SERIAL, "out_request_no": "e" * 32}
    for method, number, biz, serial in [
        ("Iot.Bind", "e" * 32, good, SERIAL),
        (Method.DEVICE_BIND, "e/1", good, SERIAL),
        (Method.DEVICE_BIND, "e" * 32, ["not", "an", "object"], SERIAL),
        (Method.DEVICE_BIND, "e" * 32, good, "bad serial"),
    ]:
        with pytest.raises(InvalidLedgerInput):
            ledger.add_platform_call(method, number, biz, serial)  # type: ignore[arg-type]
    with pytest.raises(SecretRefused):
        ledger.add_platform_call(Method.DEVICE_BIND, "e" * 32, {**good, "private_key": "..."}, SERIAL)
    ledger.add_platform_call(Method.DEVICE_BIND, "e" * 32, good, SERIAL)
    with pytest.raises(InvalidLedgerInput):
        ledger.add_platform_call(Method.DEVICE_BIND, "e" * 32, good, SERIAL)  # a number names one call
    with pytest.raises(InvalidLedgerInput):
        ledger.settle_platform_call("e" * 32, "pending")
    assert len(ledger.audit_entries()) == before + 1 and len(ledger.pending_platform_calls()) == 1


def test_a_tampered_call_is_found_and_counting_attempts_is_not_tampering(
    ledger: Ledger, outbox: Outbox, platform: Platform, url: str
) -> None:
    platform.script.append("down")
    with pytest.raises(PlatformUnavailable):
        outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
    ledger.platform_call_attempted(outbox.pending()[0].request_no)
    assert ledger.verify().ok
    execute_sql(url, "UPDATE platform_calls SET state = 'done'")
    report = ledger.verify()
    assert (report.ok, report.problem, report.table, report.row) == (
        False,
        ChainProblem.ROW_EDITED,
        "platform_calls",
        "1",
    )


def test_read_methods_go_straight_to_the_platform(ledger: Ledger, outbox: Outbox, platform: Platform) -> None:
    platform.call = lambda method, biz: {"code": "10000", "units": [], "earned": "0.00"}  # type: ignore[method-assign]
    assert outbox.read(Method.SUBSIDY_QUERY, {"serial": SERIAL})["earned"] == "0.00"
    assert ledger.pending_platform_calls() == [] and ledger.find_platform_call(Method.SUBSIDY_QUERY, SERIAL) is None
    with pytest.raises(ValueError):
        outbox.call(Method.SUBSIDY_QUERY, {"serial": SERIAL}, serial=SERIAL)
    with pytest.raises(ValueError):
        outbox.read(Method.DEVICE_BIND, ASK)


@pytest.mark.postgresql
def test_the_outbox_on_a_line_shared_postgresql_ledger(postgres_url: str, platform: Platform) -> None:
    with Ledger.open(postgres_url, station="line-1") as one, Ledger.open(postgres_url, station="line-2") as two:
        platform.script.append("lost")
        with pytest.raises(PlatformUnavailable):
            Outbox(one, platform).call(Method.DEVICE_BIND, ASK, serial=SERIAL)  # type: ignore[arg-type]
        assert Outbox(two, platform).resume() == ResumeReport(0, 0, 0)  # type: ignore[arg-type]  # line-1's own
        assert Outbox(one, platform).resume() == ResumeReport(1, 0, 0)  # type: ignore[arg-type]  # same number
        assert len(platform.done) == 1 and platform.sent[0] == platform.sent[1]
        record = Outbox(two, platform).done(Method.DEVICE_BIND, SERIAL)  # type: ignore[arg-type]  # any station's
        assert record is not None and record.station == "line-1" and record.created.utcoffset() is not None
        assert one.verify().ok
        execute_sql(postgres_url, "UPDATE platform_calls SET reply = NULL")
        assert (two.verify().problem, two.verify().table) == (ChainProblem.ROW_EDITED, "platform_calls")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with serving(tmp_path_factory.mktemp("gateway")) as running:
        yield running


def test_a_reply_with_a_bad_platform_signature_is_rejected_and_its_call_not_marked_done(
    gateway: Gateway, tmp_path: Path
) -> None:
    gateway.reset()
    gateway.default = success(signer=rsa_signer(STRANGER_KEY))
    client = PlatformClient(gateway.config(), rsa_signer(STATION_KEY), sleep=lambda seconds: None)
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1") as ledger, client:
        outbox = Outbox(ledger, client)
        with pytest.raises(PlatformSignatureInvalid):
            outbox.call(Method.DEVICE_BIND, ASK, serial=SERIAL)
        assert outbox.done(Method.DEVICE_BIND, SERIAL) is None and len(outbox.pending()) == 1
        gateway.default = success()  # the platform's own key again: the same call goes through
        assert outbox.resume() == ResumeReport(1, 0, 0)
        assert outbox.done(Method.DEVICE_BIND, SERIAL) is not None
    assert {p["biz_content"] for p in gateway.requests} == {gateway.requests[0]["biz_content"]}
    assert gateway.requests[0]["biz_content"].count('"out_request_no"') == 1 and Code.SUCCESS
    gateway.reset()
