"""The face-pay check's procedure: its stages and each way it fails, on a simulated unit against the sandbox.

One simulator and one sandbox serve the module.  The station's analyser and the unit's face-pay app are fakes
with scripted answers, so each stage's logic is tested on its own; the fake unit gets real face tokens from the
sandbox (the station's own app may open face sessions for its inventory), so pay, query and refund are the
platform's own.  What the platform ended up holding is read from its ``/sandbox/trades`` view.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from facefakes import FakeUnitApp, RecordingPresenter, Reply, ScriptedAnalyser, analysis

from camera.faces import Decision
from camera.observations import FaceObservation
from console.composition import Wiring
from enrollment.client import PlatformClient
from enrollment.config import Merchant, PlatformConfig
from enrollment.errors import PlatformRefused, PlatformUnavailable
from enrollment.gateway import Method, Signer, rsa_signer
from enrollment.sandbox.server import Faults, Sandbox
from provisioning.facepay_check import UNIT_REFUSALS, run_facepay_check, station_decision
from provisioning.facepay_errors import (
    AttackNotSeen,
    NoTestMerchant,
    StationAcceptedAttack,
    StationRefusedFace,
    TradeDisagrees,
    UnitAcceptedAttack,
    UnitRefusedFace,
    UnknownPresentation,
)
from provisioning.facepay_steps import FACEPAY_STEP, STAGES, FacePayCheckResult, Presenter
from provisioning.ledger import Ledger
from provisioning.operators import NotLoggedIn, OperatorSession, RolesRequired
from provisioning.outbox import Outbox
from provisioning.registration import UnitToRegister, register_inventory, resume_calls
from provisioning.station import Station
from simulator import launcher
from terminal.camera import CameraCalibration, Extrinsics, Intrinsics
from terminal.camera_unit import CameraUnit
from terminal.errors import UnitGone
from terminal.events import Observed, Recorder, StepFinished

NOODLE_BAR = Merchant("2088000000000001", "S0001")
INSTALLER = OperatorSession("ina", "installer")
OPERATOR = OperatorSession("otto", "operator")


@dataclass
class Bench:
    sandbox: Sandbox
    config: PlatformConfig
    client: PlatformClient
    signer: Signer
    ca_file: Path
    sim_dir: Path
    station: Station
    outbox: Outbox
    serial: str

    def trades(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.sandbox.base_url}/sandbox/trades", verify=str(self.ca_file), timeout=10)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return [t for t in found if t["serial"] == self.serial]

    def check(
        self,
        analyser: ScriptedAnalyser,
        unit: FakeUnitApp | None = None,
        presentation: str = "live",
        presenter: Presenter | None = None,
        listener: Recorder | None = None,
        outbox: Outbox | None = None,
        session: OperatorSession | None = INSTALLER,
        frame_sets: int = 1,
    ) -> FacePayCheckResult:
        return run_facepay_check(
            self.station,
            outbox or self.outbox,
            self.serial,
            presenter or RecordingPresenter(),
            listener,
            merchant=self.config.test_merchant,
            session=session,
            presentation=presentation,
            analyser=analyser,
            unit_app=unit or FakeUnitApp(self.client, self.serial),
            frame_sets=frame_sets,
        )


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    where = tmp_path_factory.mktemp("facecheck")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sim_dir = where / "sim"
    launcher.start_detached(sim_dir, 1)
    try:
        with Sandbox.start(where / "sandbox.sqlite") as sandbox:
            config = sandbox.station_config()
            sandbox.set_app_key(config.app_id, public.decode())
            ca_file = where / "ca.pem"
            ca_file.write_text(sandbox.ca_certificate, encoding="utf-8")
            client = PlatformClient(config, rsa_signer(key), attempts=2, sleep=lambda seconds: None)
            ledger = Ledger.open(f"sqlite:///{where / 'ledger.sqlite'}", station="bench-1")
            for session in (INSTALLER, OPERATOR):
                ledger.register_operator(session.operator, session.role)
            station = Station(Wiring(sim_dir).discovery(), ledger=ledger)
            [device] = station.devices()
            _store_truth(sim_dir, station, device.serial)
            outbox = Outbox(ledger, client)
            [registered] = register_inventory(
                outbox, config.supplier_id, [UnitToRegister(device.serial, device.model)], session=OPERATOR
            )
            assert registered.ok
            yield Bench(sandbox, config, client, rsa_signer(key), ca_file, sim_dir, station, outbox, device.serial)
            station.close()
            client.close()
    finally:
        launcher.stop(sim_dir)


def _store_truth(sim_dir: Path, station: Station, serial: str) -> None:
    """The unit's own ground truth as its stored calibration (what the station's analyser is made with)."""
    from simulator.control import SimControl

    truth = SimControl(sim_dir).call("truth", serial=serial)
    blob = CameraCalibration(
        serial,
        station.find(serial).model,
        Intrinsics.from_dict(truth["ir"]),
        Intrinsics.from_dict(truth["rgb"]),
        Extrinsics.from_dict(truth["rgb_from_ir"]),
        time.time(),
    )
    with station.connect(serial) as client:
        CameraUnit(client).write_calibration(blob.encode())


@pytest.fixture(autouse=True)
def _no_faults(bench: Bench) -> Iterator[None]:
    yield
    bench.sandbox.faults = Faults()


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


def test_a_live_face_passes_every_stage_pays_and_refunds_and_the_ledger_keeps_no_token(bench: Bench) -> None:
    events, presenter, unit = Recorder(), RecordingPresenter(), FakeUnitApp(bench.client, bench.serial)
    tokens: list[str] = []
    original = unit.test_transaction

    def remembered(merchant_id: str, store_id: str, *, timeout: float) -> Reply:
        reply = original(merchant_id, store_id, timeout=timeout)
        tokens.append(reply.ftoken or "")
        return reply

    unit.test_transaction = remembered  # type: ignore[method-assign]
    analyser = ScriptedAnalyser(Decision.LIVE)
    result = bench.check(analyser, unit, presenter=presenter, listener=events, frame_sets=3)

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


def test_no_face_fails_at_detect_and_neither_asks_the_unit_nor_pays(bench: Bench) -> None:
    unit, before = FakeUnitApp(bench.client, bench.serial), len(bench.trades())
    result = bench.check(ScriptedAnalyser(Decision.NO_FACE), unit)
    assert not result.passed and names(result) == ["capture", "detect"] and not result.stages[1].ok
    assert isinstance(result.error, StationRefusedFace) and unit.asked == 0
    assert len(bench.trades()) == before and result.as_dict()["result"] == "fail"


def test_a_second_face_in_one_frame_set_fails_the_check(bench: Bench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial)
    result = bench.check(ScriptedAnalyser(Decision.LIVE, Decision.SEVERAL_FACES, Decision.LIVE), unit, frame_sets=3)
    assert not result.passed and names(result) == ["capture", "detect"]
    assert result.extra["station"]["decision"] == "several-faces" and unit.asked == 0


def test_a_live_face_the_station_judges_an_attack_fails_at_liveness(bench: Bench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial)
    result = bench.check(ScriptedAnalyser(Decision.ATTACK), unit)
    assert names(result) == ["capture", "detect", "liveness"] and not result.stages[-1].ok
    assert isinstance(result.error, StationRefusedFace) and unit.asked == 0


def test_a_unit_refusing_a_live_face_fails_at_the_unit_without_a_trade(bench: Bench) -> None:
    before = len(bench.trades())
    result = bench.check(ScriptedAnalyser(Decision.LIVE), FakeUnitApp(bench.client, bench.serial, "not-live"))
    assert names(result) == ["capture", "detect", "liveness", "unit"] and not result.stages[-1].ok
    assert isinstance(result.error, UnitRefusedFace) and "not a live face" in result.stages[-1].detail
    assert len(bench.trades()) == before


# --- attacks ----------------------------------------------------------------------------------------


def test_an_attack_refused_by_the_station_and_the_unit_passes_without_a_trade(bench: Bench) -> None:
    """Each kind of attack end to end: test_cli_facecheck."""
    attack = "photo"
    presenter, before = RecordingPresenter(), len(bench.trades())
    unit = FakeUnitApp(bench.client, bench.serial, "not-live")
    result = bench.check(ScriptedAnalyser(Decision.ATTACK), unit, attack, presenter)
    assert result.passed, result.as_dict()
    assert names(result) == ["capture", "detect", "liveness", "unit"] and all(s.ok for s in result.stages)
    assert result.trade_no is None and not result.refunded and unit.asked == 1
    assert presenter.calls[0] == ("present", attack) and len(bench.trades()) == before


def test_an_attack_the_station_lets_through_fails_but_the_unit_is_still_asked(bench: Bench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial, "not-live")
    result = bench.check(ScriptedAnalyser(Decision.LIVE), unit, "photo")
    assert not result.passed and isinstance(result.error, StationAcceptedAttack)
    assert names(result) == ["capture", "detect", "liveness", "unit"] and result.stages[-1].ok and unit.asked == 1


def test_an_attack_the_unit_gives_a_token_for_fails_and_the_token_is_never_paid(bench: Bench) -> None:
    before = len(bench.trades())
    result = bench.check(ScriptedAnalyser(Decision.ATTACK), None, "mask")
    assert not result.passed and isinstance(result.error, UnitAcceptedAttack)
    assert names(result)[-1] == "unit" and result.trade_no is None and len(bench.trades()) == before


def test_an_attack_the_station_sees_no_face_in_fails_and_the_unit_is_still_asked(bench: Bench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial, "no-face")
    result = bench.check(ScriptedAnalyser(Decision.NO_FACE), unit, "screen")
    assert not result.passed and isinstance(result.error, AttackNotSeen)
    assert names(result) == ["capture", "detect", "unit"] and unit.asked == 1


def test_the_unit_refusing_an_attack_only_for_want_of_the_platform_does_not_count() -> None:
    assert "no-platform" not in UNIT_REFUSALS and "platform" not in UNIT_REFUSALS
    assert "not-live" in UNIT_REFUSALS


# --- the platform -----------------------------------------------------------------------------------


def test_a_platform_refusal_of_the_payment_fails_the_pay_stage_and_nothing_is_paid(bench: Bench) -> None:
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


def _unit_for(bench: Bench, merchant: Merchant) -> FakeUnitApp:
    """A unit app whose token is for ``merchant``'s store, whatever store the station pays at."""

    class Elsewhere(FakeUnitApp):
        def test_transaction(self, merchant_id: str, store_id: str, *, timeout: float) -> Reply:
            return super().test_transaction(merchant.merchant_id, merchant.store_id, timeout=timeout)

    return Elsewhere(bench.client, bench.serial)


def test_a_platform_out_of_reach_fails_the_pay_stage_and_nothing_is_paid(bench: Bench) -> None:
    unit = FakeUnitApp(bench.client, bench.serial)
    before = len(bench.trades())

    analyser = ScriptedAnalyser(Decision.LIVE)
    original = unit.test_transaction

    def then_cut(merchant_id: str, store_id: str, *, timeout: float) -> Reply:
        reply = original(merchant_id, store_id, timeout=timeout)
        bench.sandbox.faults = Faults(error_rate=1.0)  # every request from now on: HTTP 503
        return reply

    unit.test_transaction = then_cut  # type: ignore[method-assign]
    result = bench.check(analyser, unit)
    assert not result.passed and names(result)[-1] == "pay" and isinstance(result.error, PlatformUnavailable)
    bench.sandbox.faults = Faults()
    assert len(bench.trades()) == before
    # the payment waits in the outbox; its token has been used by nobody, so it is dropped, not sent later
    for call in bench.outbox.pending(Method.TRADE_PAY, bench.serial):
        bench.outbox.abandon(call.request_no)


class RefundCut(PlatformClient):
    """The real client; the platform goes out of reach when the refund is sent."""

    sandbox: Sandbox

    def call(self, method: Method, biz: Any) -> dict[str, Any]:
        if method == Method.TRADE_REFUND:
            self.sandbox.faults = Faults(error_rate=1.0)
        return super().call(method, biz)


def test_a_refund_that_fails_fails_the_check_names_the_trade_and_waits_in_the_outbox(bench: Bench) -> None:
    cut = RefundCut(bench.config, bench.signer, attempts=2, sleep=lambda seconds: None)
    cut.sandbox = bench.sandbox
    with cut:
        result = bench.check(ScriptedAnalyser(Decision.LIVE), outbox=Outbox(bench.station.ledger, cut))
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


def test_a_query_that_disagrees_fails_the_check_and_the_payment_is_still_refunded(bench: Bench) -> None:
    odd = QueryDisagrees(bench.config, bench.signer, attempts=2, sleep=lambda seconds: None)
    with odd:
        result = bench.check(ScriptedAnalyser(Decision.LIVE), outbox=Outbox(bench.station.ledger, odd))
    assert not result.passed and isinstance(result.error, TradeDisagrees)
    assert [s.ok for s in result.stages][-4:] == [True, False, True, True] and result.refunded


# --- the unit ---------------------------------------------------------------------------------------


def test_a_unit_unplugged_during_capture_fails_the_capture_stage_and_the_presenter_is_released(
    bench: Bench,
) -> None:
    from simulator.control import SimControl

    control = SimControl(bench.sim_dir)
    presenter = RecordingPresenter(lambda serial: control.call("faults", serial=serial, unplug_after_bytes=30_000))
    unit = FakeUnitApp(bench.client, bench.serial)
    try:
        result = bench.check(ScriptedAnalyser(Decision.LIVE), unit, presenter=presenter)
    finally:
        control.call("faults", serial=bench.serial, unplug_after_bytes=None)
        control.call("replug", serial=bench.serial)
    assert not result.passed and names(result) == ["capture"] and isinstance(result.error, UnitGone)
    assert result.stages[0].detail and unit.asked == 0 and presenter.calls[-1] == ("release", bench.serial)
    bench.station.wait_for(bench.serial, "run")


# --- refused before the unit is touched --------------------------------------------------------------


def test_careless_calls_are_refused_before_the_unit_is_touched(bench: Bench) -> None:
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
