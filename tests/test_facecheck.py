"""The face-pay check's procedure: its stages and each way it fails, on a simulated unit against the sandbox.

One simulator and one sandbox serve the module.  The station's analyser and the unit's face-pay app are fakes
with scripted answers, so each stage's logic is tested on its own; the fake unit gets real face tokens from the
sandbox (the station's own app may open face sessions for its inventory), so pay, query and refund are the
platform's own.  What the platform ended up holding is read from its ``/sandbox/trades`` view.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from facebench import INSTALLER, OPERATOR, FaceBench
from facefakes import FakeUnitApp, RecordingPresenter, Reply, ScriptedAnalyser, analysis

from camera.faceoffline import read_folder_calibration, read_frame_sets
from camera.faces import Decision
from camera.observations import FaceObservation
from enrollment.client import PlatformClient
from enrollment.config import Merchant
from enrollment.errors import PlatformRefused, PlatformUnavailable
from enrollment.gateway import Method
from enrollment.sandbox.server import Faults, Sandbox
from provisioning import facepay_check
from provisioning.facepay_check import UNIT_REFUSALS, run_facepay_check, station_decision
from provisioning.facepay_errors import (
    AttackNotSeen,
    EarlierTradeUnsettled,
    FacePayCheckCrashed,
    NoTestMerchant,
    PaymentPending,
    StationAcceptedAttack,
    StationRefusedFace,
    TradeDisagrees,
    UnitAcceptedAttack,
    UnitDidNotJudgeAttack,
    UnitRefusedFace,
    UnknownPresentation,
)
from provisioning.facepay_steps import FACEPAY_STEP, STAGES, FacePayCheckResult, Presenter
from provisioning.operators import NotLoggedIn, OperatorSession, RolesRequired
from provisioning.outbox import Outbox
from provisioning.registration import resume_calls
from terminal.errors import UnitGone
from terminal.events import Message, Observed, Recorder, StepFinished

pytestmark = pytest.mark.slow(seconds=40)  # whole face-pay checks against the sandbox: about 40 s

NOODLE_BAR = Merchant("2088000000000001", "S0001")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceBench]:
    with FaceBench.open(tmp_path_factory.mktemp("facecheck"), calibrated=True) as made:
        yield made


def check(
    bench: FaceBench,
    analyser: ScriptedAnalyser,
    unit: FakeUnitApp | None = None,
    presentation: str = "live",
    presenter: Presenter | None = None,
    listener: Recorder | None = None,
    outbox: Outbox | None = None,
    frame_sets: int = 1,
    save_frames: Path | None = None,
) -> FacePayCheckResult:
    """A check with the scripted station analyser, the fake unit app (a token unless told to refuse) and a
    recording presenter."""
    return bench.check(
        presentation,
        listener,
        presenter=presenter or RecordingPresenter(),
        outbox=outbox,
        analyser=analyser,
        unit_app=unit or FakeUnitApp(bench.client, bench.serial),
        frame_sets=frame_sets,
        save_frames=save_frames,
    )


@pytest.fixture(autouse=True)
def _no_faults(bench: FaceBench) -> Iterator[None]:
    """Each test starts with a healthy platform and nothing waiting in the outbox."""
    yield
    bench.sandbox.faults = Faults()
    for call in bench.outbox.pending():
        bench.outbox.abandon(call.request_no)


def names(result: FacePayCheckResult) -> list[str]:
    return [stage.name for stage in result.stages]


# --- the station's decision -----------------------------------------------------------------------


def test_the_station_decides_by_majority_and_a_second_face_in_any_frame_set_decides_alone() -> None:
    live, attack = analysis(Decision.LIVE), analysis(Decision.ATTACK, 0.2)
    assert station_decision([live, live, attack]).decision == Decision.LIVE
    assert station_decision([live, attack, attack]).decision == Decision.ATTACK
    assert station_decision([live, analysis(Decision.NO_FACE), analysis(Decision.NO_FACE)]).decision == "no-face"
    assert station_decision([live, live, analysis(Decision.SEVERAL_FACES)]).decision == Decision.SEVERAL_FACES
    low = analysis(Decision.LIVE, 0.6)
    assert station_decision([live, low, live]) is low  # the weakest live frame set stands for the decision


# --- a live face ------------------------------------------------------------------------------------


def test_a_live_face_passes_every_stage_pays_and_refunds_and_the_ledger_keeps_no_token(bench: FaceBench) -> None:
    events, presenter, unit = Recorder(), RecordingPresenter(), FakeUnitApp(bench.client, bench.serial)
    tokens: list[str] = []
    original = unit.test_transaction

    def remembered(merchant_id: str, store_id: str, *, timeout: float) -> Reply:
        reply = original(merchant_id, store_id, timeout=timeout)
        tokens.append(reply.ftoken or "")
        return reply

    unit.test_transaction = remembered  # type: ignore[method-assign]
    analyser = ScriptedAnalyser(Decision.LIVE)
    result = check(bench, analyser, unit, presenter=presenter, listener=events, frame_sets=3)

    assert result.passed, result.as_dict()
    assert names(result) == list(STAGES) and all(stage.ok for stage in result.stages)
    assert result.trade_no and result.refunded and result.error is None
    [trade] = [t for t in bench.trades() if t["trade_no"] == result.trade_no]
    assert trade["amount"] == "0.01" and trade["refunded_amount"] == "0.01"
    assert presenter.calls == [("present", "live"), ("release", bench.serial)]
    [calibration] = analyser.calibrations  # the unit's own, as stored
    assert calibration.serial == bench.serial

    observed = [e.data for e in events.of(Observed, bench.serial)]
    assert len(observed) == 3 and all(isinstance(o, FaceObservation) for o in observed)
    assert observed[0].ir is not None and observed[0].rgb is not None and observed[0].depth_mm is not None
    [finished] = events.of(StepFinished, bench.serial)
    assert finished.result is result and finished.step == FACEPAY_STEP

    answer = result.as_dict()
    assert answer["result"] == "pass" and answer["trade_no"] == result.trade_no and answer["refunded"] is True
    assert [s["name"] for s in answer["stages"]] == list(STAGES)
    assert {"name", "ok", "seconds", "detail"} == set(answer["stages"][0])
    [token] = tokens
    assert token not in repr(answer)

    [operation] = [op for op in bench.station.ledger.operations(bench.serial) if op.kind == FACEPAY_STEP][-1:]
    assert operation.status == "succeeded" and operation.result is not None
    assert operation.result["result"] == "pass" and operation.result["trade_no"] == result.trade_no
    assert operation.operator == INSTALLER.operator
    trail = repr([entry.details for entry in bench.station.ledger.audit_entries()])
    assert token not in trail and token not in repr(operation.result)


def test_no_face_fails_at_detect_and_neither_asks_the_unit_nor_pays(bench: FaceBench) -> None:
    unit, before = FakeUnitApp(bench.client, bench.serial), len(bench.trades())
    result = check(bench, ScriptedAnalyser(Decision.NO_FACE), unit)
    assert not result.passed and names(result) == ["capture", "detect"] and not result.stages[1].ok
    assert isinstance(result.error, StationRefusedFace) and unit.asked == 0
    assert len(bench.trades()) == before and result.as_dict()["result"] == "fail"


def test_a_second_face_in_one_frame_set_fails_the_check(bench: FaceBench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial)
    result = check(bench, ScriptedAnalyser(Decision.LIVE, Decision.SEVERAL_FACES, Decision.LIVE), unit, frame_sets=3)
    assert not result.passed and names(result) == ["capture", "detect"]
    assert result.extra["station"]["decision"] == "several-faces" and unit.asked == 0


def test_a_live_face_the_station_judges_an_attack_fails_at_liveness(bench: FaceBench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial)
    result = check(bench, ScriptedAnalyser(Decision.ATTACK), unit)
    assert names(result) == ["capture", "detect", "liveness"] and not result.stages[-1].ok
    assert isinstance(result.error, StationRefusedFace) and unit.asked == 0


def test_a_unit_refusing_a_live_face_fails_at_the_unit_without_a_trade(bench: FaceBench) -> None:
    before = len(bench.trades())
    result = check(bench, ScriptedAnalyser(Decision.LIVE), FakeUnitApp(bench.client, bench.serial, "not-live"))
    assert names(result) == ["capture", "detect", "liveness", "unit"] and not result.stages[-1].ok
    assert isinstance(result.error, UnitRefusedFace) and "not a live face" in result.stages[-1].detail
    assert len(bench.trades()) == before


# --- attacks ----------------------------------------------------------------------------------------


def test_an_attack_refused_by_the_station_and_the_unit_passes_without_a_trade(bench: FaceBench) -> None:
    """Each kind of attack end to end: test_cli_facecheck."""
    attack = "photo"
    presenter, before = RecordingPresenter(), len(bench.trades())
    unit = FakeUnitApp(bench.client, bench.serial, "not-live")
    result = check(bench, ScriptedAnalyser(Decision.ATTACK), unit, attack, presenter)
    assert result.passed, result.as_dict()
    assert names(result) == ["capture", "detect", "liveness", "unit"] and all(s.ok for s in result.stages)
    assert result.trade_no is None and not result.refunded and unit.asked == 1
    assert presenter.calls[0] == ("present", attack) and len(bench.trades()) == before


def test_an_attack_the_station_lets_through_fails_but_the_unit_is_still_asked(bench: FaceBench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial, "not-live")
    result = check(bench, ScriptedAnalyser(Decision.LIVE), unit, "photo")
    assert not result.passed and isinstance(result.error, StationAcceptedAttack)
    assert names(result) == ["capture", "detect", "liveness", "unit"] and result.stages[-1].ok and unit.asked == 1


def test_an_attack_the_unit_gives_a_token_for_fails_and_the_token_is_never_paid(bench: FaceBench) -> None:
    before = len(bench.trades())
    result = check(bench, ScriptedAnalyser(Decision.ATTACK), None, "mask")
    assert not result.passed and isinstance(result.error, UnitAcceptedAttack)
    assert names(result)[-1] == "unit" and result.trade_no is None and len(bench.trades()) == before


def test_an_attack_the_station_sees_no_face_in_fails_and_the_unit_is_still_asked(bench: FaceBench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial, "no-face")
    result = check(bench, ScriptedAnalyser(Decision.NO_FACE), unit, "screen")
    assert not result.passed and isinstance(result.error, AttackNotSeen)
    assert names(result) == ["capture", "detect", "unit"] and unit.asked == 1


def test_the_unit_refusing_an_attack_only_for_want_of_the_platform_does_not_count() -> None:
    assert "no-platform" not in UNIT_REFUSALS and "platform" not in UNIT_REFUSALS
    assert "not-live" in UNIT_REFUSALS


@pytest.mark.parametrize("reason", ["no-platform", "not-recognised"])
def test_an_attack_the_unit_did_not_judge_gets_an_attacks_remedy_not_a_live_faces(
    bench: FaceBench, reason: str
) -> None:
    """Review finding 7: it was told to "present one live face"."""
    unit = FakeUnitApp(bench.client, bench.serial, refuse=reason)
    result = check(bench, ScriptedAnalyser(Decision.ATTACK, score=0.1), unit, presentation="photo")
    assert not result.passed and names(result)[-1] == "unit" and isinstance(result.error, UnitDidNotJudgeAttack)
    assert "live face" not in (result.error.remedy_text or "") and "printed photo" in result.stages[-1].detail


# --- the platform -----------------------------------------------------------------------------------


def test_a_platform_refusal_of_the_payment_fails_the_pay_stage_and_nothing_is_paid(bench: FaceBench) -> None:
    """The unit's token is for the noodle bar; the station pays at the grocer: the platform refuses it."""
    before = len(bench.trades())
    refused = run_facepay_check(
        bench.station,
        bench.outbox,
        bench.serial,
        RecordingPresenter(),
        merchant=Merchant("2088000000000002", "S0001"),
        session=INSTALLER,
        analyser=ScriptedAnalyser(Decision.LIVE),
        unit_app=_unit_for(bench, NOODLE_BAR),
    )
    assert not refused.passed and names(refused)[-1] == "pay" and refused.trade_no is None
    assert isinstance(refused.error, PlatformRefused) and refused.error.sub_code == "AUTH_CODE_INVALID"
    assert refused.stages[-1].detail == str(refused.error) and len(bench.trades()) == before


def _unit_for(bench: FaceBench, merchant: Merchant) -> FakeUnitApp:
    """A unit app whose token is for ``merchant``'s store, whatever store the station pays at."""

    class Elsewhere(FakeUnitApp):
        def test_transaction(self, merchant_id: str, store_id: str, *, timeout: float) -> Reply:
            return super().test_transaction(merchant.merchant_id, merchant.store_id, timeout=timeout)

    return Elsewhere(bench.client, bench.serial)


class Weather(PlatformClient):
    """The real client; the sandbox's faults change when a method is first sent (``weather[method]``, once)."""

    sandbox: Sandbox
    weather: dict[Method, Faults]

    def call(self, method: Method, biz: Any) -> dict[str, Any]:
        if method in self.weather:
            self.sandbox.faults = self.weather.pop(method)
        return super().call(method, biz)


def weathered(bench: FaceBench, analyser: ScriptedAnalyser, weather: dict[Method, Faults]) -> FacePayCheckResult:
    """A live check whose platform calls meet ``weather``."""
    client = Weather(bench.config, bench.signer, attempts=2, sleep=lambda seconds: None)
    client.sandbox, client.weather = bench.sandbox, weather
    with client:
        return check(bench, analyser, outbox=Outbox(bench.station.ledger, client))


def unrefunded(bench: FaceBench) -> list[str]:
    return [t["trade_no"] for t in bench.trades() if t["refunded_amount"] != t["amount"]]


def test_a_platform_out_of_reach_fails_the_pay_stage_and_the_payment_waits_in_the_outbox(bench: FaceBench) -> None:
    before = len(bench.trades())
    result = weathered(bench, ScriptedAnalyser(Decision.LIVE), {Method.TRADE_PAY: Faults(error_rate=1.0)})
    assert not result.passed and names(result)[-1] == "pay" and isinstance(result.error, PaymentPending)
    assert len(bench.trades()) == before and result.trade_no is None
    [waiting] = bench.outbox.pending(Method.TRADE_PAY, bench.serial)  # nobody knows yet whether it was made
    assert result.as_dict()["payment_pending"] == waiting.biz["out_trade_no"]
    assert waiting.biz["out_trade_no"] in result.stages[-1].detail and "may take it" in result.stages[-1].detail


def test_a_payment_left_pending_is_made_and_refunded_by_the_next_check_before_it_pays(bench: FaceBench) -> None:
    """Review finding 2: the next check used to stop on the waiting call; 'register resume' then paid it and
    nobody refunded it."""
    first = weathered(bench, ScriptedAnalyser(Decision.LIVE), {Method.TRADE_PAY: Faults(error_rate=1.0)})
    assert isinstance(first.error, PaymentPending)
    bench.sandbox.faults = Faults()
    second = check(bench, ScriptedAnalyser(Decision.LIVE))
    assert second.passed, second.as_dict()
    [earlier] = second.as_dict()["settled"]  # the first check's payment, made now by its own number
    assert earlier != second.trade_no and unrefunded(bench) == [] and bench.outbox.pending() == []


def test_a_refund_left_pending_is_sent_by_the_next_check_before_it_pays(bench: FaceBench) -> None:
    """Review finding 3: the next check used to pay, then fail to queue its own refund behind the waiting one."""
    first = weathered(bench, ScriptedAnalyser(Decision.LIVE), {Method.TRADE_REFUND: Faults(error_rate=1.0)})
    assert first.trade_no is not None and not first.refunded
    bench.sandbox.faults = Faults()
    second = check(bench, ScriptedAnalyser(Decision.LIVE))
    assert second.passed and second.refunded, second.as_dict()
    assert unrefunded(bench) == [] and bench.outbox.pending() == []


def test_while_earlier_money_cannot_be_settled_no_new_payment_is_made(bench: FaceBench) -> None:
    weathered(bench, ScriptedAnalyser(Decision.LIVE), {Method.TRADE_REFUND: Faults(error_rate=1.0)})
    [waiting] = bench.outbox.pending(Method.TRADE_REFUND, bench.serial)
    before, unit = len(bench.trades()), FakeUnitApp(bench.client, bench.serial)
    bench.sandbox.faults = Faults(error_rate=1.0)
    presenter = RecordingPresenter()
    result = check(bench, ScriptedAnalyser(Decision.LIVE), unit, presenter=presenter)
    assert not result.passed and names(result) == ["capture"] and isinstance(result.error, EarlierTradeUnsettled)
    assert waiting.biz["trade_no"] in result.stages[0].detail and unit.asked == 0 and presenter.calls == []
    assert len(bench.trades()) == before


class LateSending(PlatformClient):
    """The real client; the first payment times out here but reaches the platform after the station's next
    call has been answered (a slow platform: the sending is still on its way)."""

    held: list[Any] | None = None  # the first payment, until it lands

    def call(self, method: Method, biz: Any) -> dict[str, Any]:
        if method == Method.TRADE_PAY and self.held is None:
            self.held = [biz]
            raise PlatformUnavailable(method=str(method), attempts=1, detail="no reply in time")
        reply = super().call(method, biz)
        while self.held:
            super().call(Method.TRADE_PAY, self.held.pop())
        return reply


def test_a_payment_still_on_its_way_is_never_dropped_and_is_refunded(bench: FaceBench) -> None:
    """Review finding 1: a "no such trade" query used to drop the waiting payment, which then landed unrefunded."""
    late = LateSending(bench.config, bench.signer, attempts=1, sleep=lambda seconds: None)
    with late:
        result = check(bench, ScriptedAnalyser(Decision.LIVE), outbox=Outbox(bench.station.ledger, late))
    assert result.passed and result.trade_no is not None, result.as_dict()
    assert unrefunded(bench) == [] and bench.outbox.pending() == []


class QueryCrashes(Outbox):
    """An outbox whose trade query fails with an error nobody planned for (a bug, a driver error)."""

    def read(self, method: Method, biz: Any) -> dict[str, Any]:
        if method == Method.TRADE_QUERY:
            raise KeyError("total_amount")
        return super().read(method, biz)


def test_an_unexpected_error_after_the_payment_still_refunds_it_and_keeps_its_number(bench: FaceBench) -> None:
    """Review finding 4: the refund was skipped, the trade number lost and the remedy promised a refund."""
    result = check(bench, ScriptedAnalyser(Decision.LIVE), outbox=QueryCrashes(bench.station.ledger, bench.client))
    assert not result.passed and isinstance(result.error, FacePayCheckCrashed)
    assert [(s.name, s.ok) for s in result.stages][-4:] == [
        ("pay", True),
        ("query", False),
        ("refund", True),
        ("refund-query", True),
    ]
    assert result.trade_no is not None and result.refunded and unrefunded(bench) == []
    [operation] = [op for op in bench.station.ledger.operations(bench.serial) if op.kind == FACEPAY_STEP][-1:]
    assert operation.result is not None and operation.result["trade_no"] == result.trade_no


def test_a_payment_whose_answer_is_lost_is_found_by_its_query_and_refunded(bench: FaceBench) -> None:
    lost = {Method.TRADE_PAY: Faults(drop_rate=1.0), Method.TRADE_QUERY: Faults()}  # done, its reply dropped
    result = weathered(bench, ScriptedAnalyser(Decision.LIVE), lost)
    assert result.passed, result.as_dict()
    assert "answer was lost" in result.stages[names(result).index("pay")].detail
    [trade] = [t for t in bench.trades() if t["trade_no"] == result.trade_no]
    assert trade["refunded_amount"] == "0.01" and bench.outbox.pending(Method.TRADE_PAY, bench.serial) == []


def test_a_payment_not_found_by_its_query_is_not_dropped(bench: FaceBench) -> None:
    """It replaces the test that pinned the unsafe drop (review finding 1): "no such trade" now may be "not yet"."""
    before = len(bench.trades())
    result = weathered(
        bench, ScriptedAnalyser(Decision.LIVE), {Method.TRADE_PAY: Faults(error_rate=1.0), Method.TRADE_QUERY: Faults()}
    )
    assert not result.passed and isinstance(result.error, PaymentPending) and result.trade_no is None
    assert len(bench.outbox.pending(Method.TRADE_PAY, bench.serial)) == 1 and len(bench.trades()) == before


def test_a_refund_that_fails_fails_the_check_names_the_trade_and_waits_in_the_outbox(bench: FaceBench) -> None:
    result = weathered(bench, ScriptedAnalyser(Decision.LIVE), {Method.TRADE_REFUND: Faults(error_rate=1.0)})
    assert not result.passed and names(result) == ["capture", "detect", "liveness", "unit", "pay", "query", "refund"]
    assert result.trade_no is not None and not result.refunded and isinstance(result.error, PlatformUnavailable)
    [trade] = [t for t in bench.trades() if t["trade_no"] == result.trade_no]
    assert trade["refunded_amount"] == "0.00"
    bench.sandbox.faults = Faults()
    report = resume_calls(bench.outbox, session=OPERATOR, method=Method.TRADE_REFUND)
    assert report.done == 1
    [trade] = [t for t in bench.trades() if t["trade_no"] == result.trade_no]
    assert trade["refunded_amount"] == "0.01"


class QueryDisagrees(PlatformClient):
    """The real client, but the trade's query answers another amount."""

    def call(self, method: Method, biz: Any) -> dict[str, Any]:
        reply = super().call(method, biz)
        return {**reply, "total_amount": "1.00"} if method == Method.TRADE_QUERY else reply


def test_a_query_that_disagrees_fails_the_check_and_the_payment_is_still_refunded(bench: FaceBench) -> None:
    odd = QueryDisagrees(bench.config, bench.signer, attempts=2, sleep=lambda seconds: None)
    with odd:
        result = check(bench, ScriptedAnalyser(Decision.LIVE), outbox=Outbox(bench.station.ledger, odd))
    assert not result.passed and isinstance(result.error, TradeDisagrees)
    assert [s.ok for s in result.stages][-4:] == [True, False, True, True] and result.refunded


# --- the station's models -----------------------------------------------------------------------------


def test_the_models_load_before_the_face_is_presented_and_outside_the_stages(
    bench: FaceBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 6: loading them was counted as capture time, after the face was presented."""
    order: list[str] = []

    def loading() -> ScriptedAnalyser:
        order.append("load")
        return ScriptedAnalyser(Decision.LIVE)

    monkeypatch.setattr(facepay_check, "default_analyser", loading)
    presenter = RecordingPresenter(lambda serial: order.append("present"))
    result = run_facepay_check(
        bench.station,
        bench.outbox,
        bench.serial,
        presenter,
        merchant=bench.config.test_merchant,
        session=INSTALLER,
        unit_app=FakeUnitApp(bench.client, bench.serial),
        frame_sets=1,
    )
    assert result.passed and order == ["load", "present"] and "models_seconds" in result.as_dict()


def test_the_console_loads_the_models_once_per_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from console.facepay_run import LoadedOnce

    loads: list[int] = []

    def loading() -> ScriptedAnalyser:
        loads.append(1)
        return ScriptedAnalyser()

    monkeypatch.setattr(facepay_check, "default_analyser", loading)
    once = LoadedOnce()
    assert once.get() is once.get() and loads == [1]


# --- saved frames -----------------------------------------------------------------------------------


def test_frames_are_saved_in_a_folder_of_their_own_beside_another_units_calibration(
    bench: FaceBench, tmp_path: Path
) -> None:
    """Review finding 5: a folder holding another calibration failed a healthy unit's check at capture."""
    (tmp_path / "calibration.bin").write_bytes(b"another unit's calibration")
    result = check(bench, ScriptedAnalyser(Decision.LIVE), frame_sets=2, save_frames=tmp_path)
    assert result.passed, result.as_dict()
    saved = Path(result.as_dict()["saved_frames"])
    assert saved.parent == tmp_path and (tmp_path / "calibration.bin").read_bytes() == b"another unit's calibration"
    assert read_folder_calibration(saved) is not None and len(read_frame_sets(saved)) == 2


def test_frames_that_cannot_be_saved_are_a_warning_not_a_failed_check(bench: FaceBench, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    listener = Recorder()
    result = check(bench, ScriptedAnalyser(Decision.LIVE), listener=listener, save_frames=tmp_path / "file")
    assert result.passed and "saved_frames" not in result.as_dict(), result.as_dict()
    assert any(isinstance(e, Message) and "frames are not saved" in e.text for e in listener.events)


# --- the unit ---------------------------------------------------------------------------------------


def test_a_unit_unplugged_during_capture_fails_the_capture_stage_and_the_presenter_is_released(
    bench: FaceBench,
) -> None:
    from simulator.control import SimControl

    control = SimControl(bench.sim_dir)
    presenter = RecordingPresenter(lambda serial: control.call("faults", serial=serial, unplug_after_bytes=30_000))
    unit = FakeUnitApp(bench.client, bench.serial)
    try:
        result = check(bench, ScriptedAnalyser(Decision.LIVE), unit, presenter=presenter)
    finally:
        control.call("faults", serial=bench.serial, unplug_after_bytes=None)
        control.call("replug", serial=bench.serial)
    assert not result.passed and names(result) == ["capture"] and isinstance(result.error, UnitGone)
    assert result.stages[0].detail and unit.asked == 0 and presenter.calls[-1] == ("release", bench.serial)
    bench.station.wait_for(bench.serial, "run")


# --- refused before the unit is touched --------------------------------------------------------------


def test_careless_calls_are_refused_before_the_unit_is_touched(bench: FaceBench) -> None:
    presenter = RecordingPresenter()

    def run(**changes: Any) -> FacePayCheckResult:
        options: dict[str, Any] = {"merchant": NOODLE_BAR, "session": INSTALLER, **changes}
        return run_facepay_check(bench.station, bench.outbox, bench.serial, presenter, **options)

    with pytest.raises(NotLoggedIn):
        run(session=None)
    with pytest.raises(RolesRequired):
        run(session=OperatorSession("key", "custodian"))
    with pytest.raises(UnknownPresentation):
        run(presentation="hologram")
    with pytest.raises(NoTestMerchant):
        run(merchant=None)
    assert presenter.calls == []


def test_on_the_real_bus_a_person_is_asked_to_present_the_face_or_the_attack() -> None:
    from console.composition import Wiring

    asked: list[str] = []
    presenter = Wiring(None).presenter(asked.append)
    presenter.present("DF2A00001")
    presenter.present("DF2A00001", "screen")
    presenter.release("DF2A00001")
    assert len(asked) == 2 and all("DF2A00001" in text for text in asked)
    assert "live face" in asked[0] and "screen showing a face" in asked[1]
