"""The enrollment flows' own logic against a scripted outbox: batching, per-unit results, step order, resuming
from what the outbox holds as done, refusals in words a person can act on, the events a view draws, and who
may run each flow (and is named as the writer).

The seam is the outbox (record calls, scripted replies); tests/test_registration_sandbox.py runs the same flows
through the real outbox and client against a running sandbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest

from enrollment.config import Merchant
from enrollment.errors import PlatformRefused, PlatformUnavailable
from enrollment.gateway import Method
from provisioning.ledger import PlatformCallRecord
from provisioning.operators import NotLoggedIn, OperatorSession, RolesRequired
from provisioning.outbox import Outbox, ResumeReport
from provisioning.registration import (
    ROLES_BIND,
    ROLES_INVENTORY,
    ROLES_OUTBOX,
    ROLES_SUBSIDY,
    STEP_ACTIVATE,
    STEP_BIND,
    STEP_INVENTORY,
    STEP_SUBSIDY,
    EnrollmentStepResult,
    MerchantNotFound,
    UnitNotOnPlatform,
    UnitOwnedElsewhere,
    UnitRefused,
    UnitToRegister,
    abandon_call,
    bring_live,
    register_inventory,
    resume_calls,
    subsidy_status,
)
from terminal.events import Message, PhaseStarted, Recorder, StepFinished

SUPPLIER = "2088000000000100"
STORE = Merchant("2088000000000001", "S0001")
OTHER_STORE = Merchant("2088000000000001", "S0002")
Answer = Callable[[Method, dict[str, Any]], dict[str, Any]]
OLGA = OperatorSession("olga", "operator")


def refused(method: Method, sub_code: str) -> PlatformRefused:
    return PlatformRefused(method=str(method), code="40004", sub_code=sub_code, sub_msg="refused")


def unavailable(method: Method) -> PlatformUnavailable:
    return PlatformUnavailable(method=str(method), attempts=5, detail="HTTP 503")


def platform(method: Method, biz: dict[str, Any]) -> dict[str, Any]:
    """What the platform answers to each call when all goes well."""
    if method is Method.INVENTORY_REGISTER:
        return {"results": [{"serial": d["serial"], "status": "registered"} for d in biz["devices"]]}
    if method is Method.DEVICE_BIND:
        return {**biz, "bound": "2026-11-30 16:00:00"}
    if method is Method.DEVICE_ACTIVATE:
        return {"serial": biz["serial"], "activated": "2026-11-30 16:00:01"}
    if method is Method.SUBSIDY_ENROLL:
        return {"serial": biz["serial"], "program": biz.get("program", "2020"), "window_end": "2027-04-30 16:00:01"}
    raise AssertionError(method)


class ScriptedOutbox(Outbox):
    """The outbox with the ledger and the network replaced by ``answer``: records each call, keeps the done ones."""

    def __init__(self, answer: Answer = platform) -> None:  # no ledger, no client
        self.answer = answer
        self.calls: list[tuple[Method, dict[str, Any], str | None]] = []
        self.settled: dict[tuple[Method, str], PlatformCallRecord] = {}
        self.operators: list[str] = []
        self.resumed: list[Method | None] = []
        self.earlier = ResumeReport(0, 0, 0)

    def as_operator(self, name: str) -> ScriptedOutbox:
        self.operators.append(name)
        return self

    def resume(self, method: Method | None = None, serial: str | None = None) -> ResumeReport:
        self.resumed.append(method)
        return self.earlier

    def abandon(self, request_no: str) -> PlatformCallRecord:
        now = dt.datetime.now(dt.UTC)
        return PlatformCallRecord(
            request_no, Method.DEVICE_BIND, "S1", {}, "abandoned", 1, now, now, None, None, "s", None
        )

    def call(self, method: Method, biz: Mapping[str, Any], *, serial: str | None = None) -> dict[str, Any]:
        self.calls.append((method, dict(biz), serial))
        reply = self.answer(method, dict(biz))
        if serial is not None:
            now = dt.datetime.now(dt.UTC)
            number = f"R{len(self.calls)}"
            record = PlatformCallRecord(number, method, serial, dict(biz), "done", 1, now, now, reply, None, "s", None)
            self.settled[(method, serial)] = record
        return reply

    def done(self, method: Method, serial: str) -> PlatformCallRecord | None:
        return self.settled.get((method, serial))

    def pending(self, method: Method | None = None, serial: str | None = None) -> list[PlatformCallRecord]:
        return []

    def read(self, method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((method, dict(biz), None))
        return self.answer(method, dict(biz))

    def methods(self) -> list[Method]:
        return [method for method, _biz, _serial in self.calls]


def failing(script: dict[tuple[Method, int], Exception]) -> Answer:
    """An answer that raises ``script[(method, n)]`` at the n-th call of a method (1-based), else succeeds."""
    counts: dict[Method, int] = {}

    def answer(method: Method, biz: dict[str, Any]) -> dict[str, Any]:
        counts[method] = counts.get(method, 0) + 1
        problem = script.get((method, counts[method]))
        if problem is not None:
            raise problem
        return platform(method, biz)

    return answer


# --- inventory ----------------------------------------------------------------------------------------


def test_inventory_goes_in_batches_of_at_most_100_with_a_result_and_a_bar_per_unit() -> None:
    units = [UnitToRegister(f"DF2A{n:05d}", "df2") for n in range(250)]
    outbox, events = ScriptedOutbox(), Recorder()
    results = register_inventory(outbox, SUPPLIER, [*units, units[7]], events, session=OLGA)
    assert [len(biz["devices"]) for _m, biz, _s in outbox.calls] == [100, 100, 50]
    assert all(biz["supplier_id"] == SUPPLIER for _m, biz, _s in outbox.calls)
    assert outbox.calls[0][1]["devices"][0] == {"serial": "DF2A00000", "model": "df2"}
    assert [r.serial for r in results] == [u.serial for u in units]  # the repeated serial once, order kept
    assert all(r.ok and r.status == "registered" and r.step == STEP_INVENTORY for r in results)
    last = units[-1].serial
    assert [e.phase for e in events.of(PhaseStarted, last)] == ["wait", "register"]
    finished = events.of(StepFinished, last)
    assert len(finished) == 1 and finished[0].result is results[-1]
    assert len(events.of(StepFinished)) == 250


def test_inventory_already_registered_is_ok_and_refusals_say_why_per_unit() -> None:
    def answer(method: Method, biz: dict[str, Any]) -> dict[str, Any]:
        return {
            "results": [
                {"serial": "DF2A00001", "status": "already-registered"},
                {"serial": "DF2A00002", "status": "refused", "sub_code": "DEVICE_OWNED_ELSEWHERE", "sub_msg": "x"},
                {"serial": "DF2A00003", "status": "refused", "sub_code": "MODEL_UNKNOWN", "sub_msg": "no such model"},
            ]
        }

    units = [UnitToRegister(f"DF2A0000{n}", "df2") for n in (1, 2, 3)]
    first, elsewhere, unknown = register_inventory(ScriptedOutbox(answer), SUPPLIER, units, session=OLGA)
    assert first.ok and first.status == "already-registered" and first.error is None
    assert not elsewhere.ok and elsewhere.status == "refused" and isinstance(elsewhere.error, UnitOwnedElsewhere)
    assert "DF2A00002" in str(elsewhere.error) and elsewhere.error.remedy_text
    assert isinstance(unknown.error, UnitRefused) and "MODEL_UNKNOWN no such model" in str(unknown.error)
    assert elsewhere.as_dict()["error"]["error"] == "UnitOwnedElsewhere"


def test_a_batch_the_platform_did_not_answer_is_pending_and_the_next_batches_go_on() -> None:
    answer = failing({(Method.INVENTORY_REGISTER, 1): unavailable(Method.INVENTORY_REGISTER)})
    units = [UnitToRegister(f"DF2A{n:05d}", "df2") for n in range(3)]
    results = register_inventory(ScriptedOutbox(answer), SUPPLIER, units, batch_size=2, session=OLGA)
    assert [(r.ok, r.status) for r in results] == [(False, "pending"), (False, "pending"), (True, "registered")]
    assert isinstance(results[0].error, PlatformUnavailable) and results[0].error.remedy_text
    with pytest.raises(ValueError):
        register_inventory(ScriptedOutbox(), SUPPLIER, units, batch_size=101, session=OLGA)


# --- bind, activate, enrol ----------------------------------------------------------------------------


def test_bring_live_binds_activates_and_enrols_in_order_with_a_phase_and_a_result_per_step() -> None:
    outbox, events = ScriptedOutbox(), Recorder()
    results = bring_live(outbox, SUPPLIER, "DF2A00001", STORE, events, program="2019", session=OLGA)
    assert outbox.methods() == [Method.DEVICE_BIND, Method.DEVICE_ACTIVATE, Method.SUBSIDY_ENROLL]
    assert outbox.calls[0] == (
        Method.DEVICE_BIND,
        {"serial": "DF2A00001", "supplier_id": SUPPLIER, "merchant_id": STORE.merchant_id, "store_id": "S0001"},
        "DF2A00001",
    )
    assert outbox.calls[2][1] == {"serial": "DF2A00001", "program": "2019"}
    assert [(r.step, r.ok, r.status) for r in results] == [
        (STEP_BIND, True, "done"),
        (STEP_ACTIVATE, True, "done"),
        (STEP_SUBSIDY, True, "done"),
    ]
    assert [r.detail for r in results] == ["2088000000000001/S0001", "2026-11-30 16:00:01", "2019"]
    assert [e.phase for e in events.of(PhaseStarted, "DF2A00001")] == [STEP_BIND, STEP_ACTIVATE, STEP_SUBSIDY]
    assert [e.result for e in events.of(StepFinished, "DF2A00001")] == results
    assert (
        bring_live(ScriptedOutbox(), SUPPLIER, "DF2A00002", STORE, session=OLGA)[2].detail == "2020"
    )  # the platform's default


def test_a_run_cut_short_resumes_without_sending_a_done_step_again() -> None:
    answer = failing({(Method.DEVICE_ACTIVATE, 1): unavailable(Method.DEVICE_ACTIVATE)})
    outbox = ScriptedOutbox(answer)
    first = bring_live(outbox, SUPPLIER, "DF2A00001", STORE, session=OLGA)
    assert [(r.step, r.status) for r in first] == [(STEP_BIND, "done"), (STEP_ACTIVATE, "pending")]
    assert outbox.methods() == [Method.DEVICE_BIND, Method.DEVICE_ACTIVATE]  # nothing after the first failure
    outbox.calls.clear()
    again = bring_live(outbox, SUPPLIER, "DF2A00001", STORE, session=OLGA)
    assert outbox.methods() == [Method.DEVICE_ACTIVATE, Method.SUBSIDY_ENROLL]
    assert [(r.step, r.ok, r.status) for r in again] == [
        (STEP_BIND, True, "already-done"),
        (STEP_ACTIVATE, True, "done"),
        (STEP_SUBSIDY, True, "done"),
    ]
    assert again[0].detail == "2088000000000001/S0001"


def test_a_bind_done_for_another_store_is_sent_again() -> None:
    """(A pending call with other content is the outbox's to refuse: tests/test_registration_sandbox.py.)"""
    outbox = ScriptedOutbox()
    bring_live(outbox, SUPPLIER, "DF2A00001", OTHER_STORE, session=OLGA)
    outbox.calls.clear()
    results = bring_live(outbox, SUPPLIER, "DF2A00001", STORE, session=OLGA)
    assert outbox.methods()[0] is Method.DEVICE_BIND and results[0].status == "done"


def test_a_refusal_stops_the_run_with_an_error_that_says_what_to_do() -> None:
    answer = failing({(Method.DEVICE_BIND, 1): refused(Method.DEVICE_BIND, "MERCHANT_NOT_FOUND")})
    outbox = ScriptedOutbox(answer)
    results = bring_live(outbox, SUPPLIER, "DF2A00001", STORE, session=OLGA)
    assert outbox.methods() == [Method.DEVICE_BIND]
    (bind,) = results
    assert not bind.ok and bind.status == "refused" and isinstance(bind.error, MerchantNotFound)
    assert "2088000000000001" in str(bind.error)
    assert bind.error.remedy_text and "QR" in bind.error.remedy_text
    assert isinstance(bind.error.__cause__, PlatformRefused)
    assert bind.as_dict()["error"]["error"] == "MerchantNotFound"
    other = failing({(Method.DEVICE_BIND, 1): refused(Method.DEVICE_BIND, "SOMETHING_NEW")})
    (unknown,) = bring_live(ScriptedOutbox(other), SUPPLIER, "DF2A00001", STORE, session=OLGA)
    assert isinstance(unknown.error, PlatformRefused)  # no words of ours: the platform's own, with its code
    assert unknown.status == "refused"


def test_a_refusal_of_the_sending_not_of_the_request_leaves_the_step_pending() -> None:
    """The outbox keeps such a call pending (the station's key, the platform's own trouble): so says the result."""
    for code, sub_code in (("20001", "isv.invalid-signature"), ("40004", "isp.unknown-error")):
        problem = PlatformRefused(method="iot.device.bind", code=code, sub_code=sub_code, sub_msg="x")
        (bind,) = bring_live(
            ScriptedOutbox(failing({(Method.DEVICE_BIND, 1): problem})), SUPPLIER, "A1", STORE, session=OLGA
        )
        assert (bind.ok, bind.status, bind.error) == (False, "pending", problem), code


# --- roles ----------------------------------------------------------------------------------------------

FLOWS: dict[str, tuple[tuple[str, ...], Callable[[ScriptedOutbox, OperatorSession | None], object]]] = {
    "inventory": (
        ROLES_INVENTORY,
        lambda o, s: register_inventory(o, SUPPLIER, [UnitToRegister("A1", "df2")], session=s),
    ),
    "bind": (ROLES_BIND, lambda o, s: bring_live(o, SUPPLIER, "A1", STORE, session=s)),
    "subsidy": (ROLES_SUBSIDY, lambda o, s: subsidy_status(o, serial="A1", session=s)),
    "resume": (ROLES_OUTBOX, lambda o, s: resume_calls(o, session=s)),
    "abandon": (ROLES_OUTBOX, lambda o, s: abandon_call(o, "R1", session=s)),
}


@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("role", ["admin", "operator", "installer", "support", "custodian"])
def test_each_flow_runs_for_its_roles_only_and_writes_as_the_operator(flow: str, role: str) -> None:
    roles, run = FLOWS[flow]
    outbox = ScriptedOutbox(
        lambda m, biz: {"units": [UNIT], "earned": "0.00"} if m is Method.SUBSIDY_QUERY else platform(m, biz)
    )
    if role not in roles:
        with pytest.raises(RolesRequired) as refused:
            run(outbox, OperatorSession("pat", role))
        assert "pat" in str(refused.value) and role in str(refused.value)
        with pytest.raises(NotLoggedIn):
            run(outbox, None)
        assert outbox.calls == [] and outbox.resumed == []  # refused before anything was sent
        return
    run(outbox, OperatorSession("pat", role))
    assert outbox.operators == ([] if flow == "subsidy" else ["pat"])  # a read writes nothing


def test_the_bench_and_the_installer_bind_but_only_the_bench_registers_inventory() -> None:
    assert set(ROLES_INVENTORY) == {"operator", "admin"}
    assert set(ROLES_BIND) == set(ROLES_OUTBOX) == {"installer", "operator", "admin"}
    assert set(ROLES_SUBSIDY) == {*ROLES_BIND, "support"}


def test_inventory_first_sends_again_the_inventory_calls_an_earlier_run_left_pending() -> None:
    outbox, events = ScriptedOutbox(), Recorder()
    outbox.earlier = ResumeReport(done=2, refused=0, pending=1)
    register_inventory(outbox, SUPPLIER, [UnitToRegister("A1", "df2")], events, session=OLGA)
    assert outbox.resumed == [Method.INVENTORY_REGISTER]
    (told,) = events.of(Message, "")
    assert told.text == "Earlier inventory calls sent again: 2 done, 0 refused, 1 still waiting."
    quiet = Recorder()
    register_inventory(ScriptedOutbox(), SUPPLIER, [UnitToRegister("A1", "df2")], quiet, session=OLGA)
    assert quiet.of(Message) == []  # nothing was pending: nothing to tell


# --- subsidy status -----------------------------------------------------------------------------------


UNIT: dict[str, Any] = {
    "serial": "DF2A00001",
    "merchant_id": "2088000000000001",
    "store_id": "S0001",
    "program": "2019",
    "activated": "2026-01-05 10:00:00",
    "window_end": "2026-06-05 10:00:00",
    "months": [
        {"index": 1, "start": "2026-01-05 10:00:00", "end": "2026-02-05 10:00:00", "users": 600, "earned": "400.00"},
        {"index": 2, "start": "2026-02-05 10:00:00", "end": "2026-03-05 10:00:00", "users": 3, "earned": "2.10"},
    ],
    "users": 603,
    "earned": "402.10",
    "cap_left": "797.90",
    "months_left": 3,
}


def test_subsidy_status_reads_money_as_decimal_and_refusals_as_typed_errors() -> None:
    outbox = ScriptedOutbox(lambda m, biz: {"units": [UNIT], "earned": "402.10"})
    (unit,) = subsidy_status(outbox, merchant_id="2088000000000001", session=OLGA)
    assert outbox.calls == [(Method.SUBSIDY_QUERY, {"merchant_id": "2088000000000001"}, None)]
    assert unit.earned == Decimal("402.10") and unit.cap_left == Decimal("797.90") and unit.months_left == 3
    assert [m.earned for m in unit.months] == [Decimal("400.00"), Decimal("2.10")]
    assert sum(m.earned for m in unit.months) == unit.earned  # exact: no float crept in
    assert unit.as_dict()["months"][1] == UNIT["months"][1]
    assert unit.as_dict()["cap_left"] == "797.90"

    def unknown(method: Method, biz: dict[str, Any]) -> dict[str, Any]:
        raise refused(method, "DEVICE_NOT_FOUND")

    with pytest.raises(UnitNotOnPlatform) as missing:
        subsidy_status(ScriptedOutbox(unknown), serial="DF2A00009", session=OLGA)
    assert "DF2A00009" in str(missing.value)
    with pytest.raises(ValueError):
        subsidy_status(ScriptedOutbox(), serial="DF2A00001", merchant_id="2088000000000001", session=OLGA)


def test_a_step_result_is_a_step_result_for_every_view() -> None:
    result = EnrollmentStepResult("DF2A00001", STEP_BIND, True, "done", "M/S", 0.1234)
    assert result.as_dict() == {
        "serial": "DF2A00001",
        "step": STEP_BIND,
        "ok": True,
        "status": "done",
        "detail": "M/S",
        "seconds": 0.123,
        "error": None,
    }
    assert result.status_text == "done"
