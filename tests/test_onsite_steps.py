"""The installer's steps (provisioning/onsite_steps.py) on a simulated unit with platform access against the
sandbox, each through its ``run``; the platform steps' done-before and settle paths, cut at the worst moment (the
platform did the call and its reply was lost)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from facebench import INSTALLER, FaceBench
from facefakes import ScriptedAnalyser
from helpers import demo_tool

from camera.faces import Decision
from console.composition import Wiring
from enrollment.config import Merchant
from enrollment.errors import PlatformUnavailable
from enrollment.gateway import Method
from enrollment.sandbox.server import Faults
from provisioning import facepay_check
from provisioning.bulk_steps import MissingResource
from provisioning.ledger.audit import clean_json
from provisioning.onsite_steps import (
    ActivateStep,
    BindStep,
    FacePayCheckStep,
    FieldCheckStep,
    FirmwareUpdateStep,
    SubsidyEnrollStep,
)
from provisioning.operators import NotLoggedIn
from provisioning.registration import StepCallUnanswered
from provisioning.steps import Resources, StepOutcome, UnitJob, all_steps
from terminal.camera import blob_checksum
from terminal.camera_unit import CameraUnit
from terminal.errors import NaiadError

MiB = 1 << 20
LIVE = (Method.DEVICE_BIND, Method.DEVICE_ACTIVATE, Method.SUBSIDY_ENROLL)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceBench]:
    with FaceBench.open(tmp_path_factory.mktemp("onsite"), calibrated=True) as made:
        yield made


def resources(bench: FaceBench, **changes: Any) -> Resources:
    base = {
        "station": bench.station,
        "session": INSTALLER,
        "outbox": bench.outbox,
        "supplier_id": bench.config.supplier_id,
        "merchant": bench.config.test_merchant,
        "presenter": Wiring(bench.sim_dir).presenter(),
    }
    return Resources(**{**base, **changes})


def job(res: Resources, serial: str) -> UnitJob:
    return UnitJob(serial, res, run_id=1)


def as_json(outcome: StepOutcome) -> str:
    text = json.dumps(outcome.as_dict())
    assert json.loads(text)["name"] == outcome.step
    clean_json(outcome.data, "data")  # what the ledger takes of a step: no name that looks like a secret's
    return text


def test_the_installers_steps_are_registered_with_the_contracts_names_and_settings() -> None:
    steps = all_steps()
    wanted = {
        "firmware-update": ["bundle", "downgrade"],
        "field-check": ["wall", "distance"],
        "face-pay-check": ["presentation", "frame_sets"],
        "bind": [],
        "activate": [],
        "subsidy-enroll": ["program"],
    }
    for name, settings in wanted.items():
        assert [s.name for s in steps[name].settings] == settings
    assert steps["field-check"].read_only
    assert [steps[n].repeatable for n in ("bind", "activate", "subsidy-enroll")] == [False, False, False]


def test_firmware_update_flashes_an_older_unit_and_leaves_a_current_one_alone(bench: FaceBench, tmp_path: Path) -> None:
    made = demo_tool().make_demo_bundle(tmp_path / "b" / "2.0.0.zip", version="2.0.0", system_size=MiB)
    res = resources(bench)
    step = FirmwareUpdateStep({"bundle": str(made.path)}, res)
    try:
        first = step.run(job(res, bench.serial))
        assert first.ok, first.as_dict()
        assert first.data["before"] == "1.0.0" and first.data["after"] == "2.0.0" and first.data["updated"]
        assert first.data["images"] and first.data["bundle_sha256"]
        second = step.run(job(res, bench.serial))
        assert second.ok and second.data == {"before": "2.0.0", "after": "2.0.0", "updated": False}
        assert [o.kind for o in bench.station.ledger.operations(bench.serial)].count("flash") == 1
        as_json(first)
    finally:
        step.close()


def test_firmware_update_never_downgrades_unless_told(bench: FaceBench, tmp_path: Path) -> None:
    """An installer carrying an older bundle leaves a unit running newer firmware alone (same security version:
    the bundle's rollback check would let the downgrade through)."""
    newer = demo_tool().make_demo_bundle(tmp_path / "b" / "2.10.0.zip", version="2.10.0", system_size=MiB)
    older = demo_tool().make_demo_bundle(tmp_path / "b" / "2.9.0.zip", version="2.9.0", system_size=MiB)
    res = resources(bench)
    before = [o.kind for o in bench.station.ledger.operations(bench.serial)].count("flash")
    flashes = lambda: [o.kind for o in bench.station.ledger.operations(bench.serial)].count("flash") - before  # noqa: E731
    for path, settings in ((newer.path, {}), (older.path, {}), (older.path, {"downgrade": True})):
        step = FirmwareUpdateStep({"bundle": str(path), "downgrade": False, **settings}, res)
        try:
            done = step.run(job(res, bench.serial))
        finally:
            step.close()
        assert done.ok, done.as_dict()
        as_json(done)
        if path == newer.path:
            assert done.data["after"] == "2.10.0" and done.data["updated"] and flashes() == 1
        elif not settings:  # 2.10.0 is newer than 2.9.0 (compared as numbers, not as text)
            assert done.data == {"before": "2.10.0", "after": "2.10.0", "updated": False, "newer": True}
            assert "newer than the bundle" in done.detail and flashes() == 1
        else:
            assert (done.data["before"], done.data["after"], done.data["updated"]) == ("2.10.0", "2.9.0", True)
            assert flashes() == 2


def test_field_check_passes_a_unit_holding_its_own_calibration_and_changes_nothing(bench: FaceBench) -> None:
    with bench.station.connect(bench.serial) as client:
        stored = CameraUnit(client).read_calibration()
    assert stored is not None  # the bench stored the unit's truth: record it as a full calibration would
    bench.station.ledger.record_calibration(bench.serial, blob_checksum(stored), {})
    res = resources(bench)
    outcome = FieldCheckStep({"wall": False, "distance": 0}, res).run(job(res, bench.serial))
    assert outcome.ok, outcome.as_dict()
    assert outcome.data["verdict"] == "ok" and outcome.data["passed"] is True and outcome.data["findings"] == []
    assert outcome.data["checksum"] == blob_checksum(stored)
    with bench.station.connect(bench.serial) as client:
        assert CameraUnit(client).read_calibration() == stored  # read only: the unit keeps what it had
    as_json(outcome)


def test_face_pay_check_pays_refunds_and_keeps_no_face_token(bench: FaceBench, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens: list[str] = []
    real = facepay_check.default_unit_app

    class Remembering:
        def __init__(self, client: Any) -> None:
            self.app = real(client)

        def test_transaction(self, merchant_id: str, store_id: str, *, timeout: float) -> Any:
            reply = self.app.test_transaction(merchant_id, store_id, timeout=timeout)
            if reply.ftoken:
                tokens.append(reply.ftoken)
            return reply

    monkeypatch.setattr(facepay_check, "default_unit_app", Remembering)
    monkeypatch.setattr(FacePayCheckStep, "analyser_factory", staticmethod(lambda: ScriptedAnalyser(Decision.LIVE)))
    res = resources(bench)
    outcome = FacePayCheckStep({"presentation": "live", "frame_sets": 1}, res).run(job(res, bench.serial))
    assert outcome.ok and outcome.data["passed"], outcome.as_dict()
    assert outcome.data["refunded"] and outcome.data["trade_no"]
    assert list(outcome.data["stages"]) == [
        "capture",
        "detect",
        "liveness",
        "unit",
        "pay",
        "query",
        "refund",
        "refund-query",
    ]
    assert all(seconds >= 0 for seconds in outcome.data["stages"].values())
    [trade] = [t for t in bench.trades() if t["trade_no"] == outcome.data["trade_no"]]
    assert trade["refunded_amount"] == trade["amount"]
    text = as_json(outcome)
    assert tokens and all(token not in text for token in tokens)


def test_face_pay_check_refuses_the_batch_without_an_outbox_a_merchant_or_a_presenter(bench: FaceBench) -> None:
    for missing, shown in (("outbox", "--platform-config"), ("merchant", "--merchant"), ("presenter", "console")):
        with pytest.raises(MissingResource) as refused:
            FacePayCheckStep({"presentation": "live", "frame_sets": 1}, resources(bench, **{missing: None}))
        assert "face-pay-check" in str(refused.value)
        assert refused.value.remedy_text is not None and shown in refused.value.remedy_text


def test_bind_activate_and_enrol_run_once_each_and_are_then_found_done(bench: FaceBench) -> None:
    res = resources(bench)
    unit = job(res, bench.serial)
    merchant = bench.config.test_merchant
    bind = BindStep({}, res)
    assert bind.done_before(unit) is None
    bound = bind.run(unit)
    assert bound.ok and bound.data["status"] == "done", bound.as_dict()
    assert (bound.data["merchant_id"], bound.data["store_id"]) == (merchant.merchant_id, merchant.store_id)
    found = bind.done_before(unit)
    assert found is not None and found.already_done and found.data["request_no"] == bound.data["request_no"]
    elsewhere = BindStep({}, resources(bench, merchant=Merchant(merchant.merchant_id, "S-OTHER")))
    assert elsewhere.done_before(unit) is None  # done for another store is not done for this one

    activate = ActivateStep({}, res)
    activated = activate.run(unit)
    assert activated.ok and activated.data["status"] == "done", activated.as_dict()
    assert activate.done_before(unit) is not None

    enrol = SubsidyEnrollStep({"program": ""}, res)
    enrolled = enrol.run(unit)
    assert enrolled.ok and enrolled.data["program"], enrolled.as_dict()
    done = enrol.done_before(unit)
    assert done is not None and done.data["program"] == enrolled.data["program"]
    other = SubsidyEnrollStep({"program": "NOT-" + enrolled.data["program"]}, res)
    assert other.done_before(unit) is None
    for outcome in (bound, activated, enrolled):
        as_json(outcome)


def test_a_call_whose_reply_was_lost_is_settled_by_sending_it_again_with_its_own_number(bench: FaceBench) -> None:
    res = resources(bench)
    unit = job(res, bench.serial)
    bind = BindStep({}, res)
    if bind.done_before(unit) is None:
        assert bind.run(unit).ok
    activate = ActivateStep({}, res)
    bench.sandbox.faults = Faults(drop_rate=1.0)  # the platform does each call; its reply never comes back
    try:
        with pytest.raises(PlatformUnavailable):  # the station wrote and sent the call, then was cut off
            bench.outbox.call(Method.DEVICE_ACTIVATE, {"serial": bench.serial}, serial=bench.serial)
        [waiting] = bench.outbox.pending(Method.DEVICE_ACTIVATE, bench.serial)
        assert activate.done_before(unit) is None  # a pending call is never taken as done
        with pytest.raises(StepCallUnanswered) as unanswered:
            activate.settle(unit)
        assert waiting.request_no in str(unanswered.value)
    finally:
        bench.sandbox.faults = Faults()
    settled = activate.settle(unit)
    assert settled is not None and settled.ok and settled.already_done and settled.data["activated"]
    assert settled.data["request_no"] == waiting.request_no
    assert bench.outbox.pending(Method.DEVICE_ACTIVATE, bench.serial) == []


def test_the_platform_steps_refuse_the_batch_without_what_they_need(bench: FaceBench) -> None:
    with pytest.raises(MissingResource):
        BindStep({}, resources(bench, merchant=None))
    with pytest.raises(MissingResource):
        BindStep({}, resources(bench, supplier_id=None))
    for step in (BindStep, ActivateStep):
        with pytest.raises(MissingResource):
            step({}, resources(bench, outbox=None))
    with pytest.raises(MissingResource):
        SubsidyEnrollStep({"program": ""}, resources(bench, outbox=None))
    ActivateStep({}, resources(bench, merchant=None, supplier_id=None))  # activation needs neither


def test_the_built_in_installer_recipe_runs_end_to_end_on_one_unit_and_then_counts_as_done(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """installer-onsite through the pipeline, on a unit of its own (a fresh bench): every step of this module and
    D's report; run again, the unit is already done and no platform call is made twice."""
    from provisioning.pipeline import run_recipe
    from provisioning.recipes import load_recipe

    where = tmp_path_factory.mktemp("recipe")
    made = demo_tool().make_demo_bundle(where / "b" / "2.0.0.zip", version="2.0.0", system_size=MiB)
    monkeypatch.setattr(FacePayCheckStep, "analyser_factory", staticmethod(lambda: ScriptedAnalyser(Decision.LIVE)))
    with FaceBench.open(where, calibrated=True) as fresh:
        with fresh.station.connect(fresh.serial) as client:
            stored = CameraUnit(client).read_calibration()
        assert stored is not None
        fresh.station.ledger.record_calibration(fresh.serial, blob_checksum(stored), {})
        recipe = load_recipe("installer-onsite", {"firmware-update.bundle": str(made.path)})
        res = resources(fresh, reports_dir=where / "reports")
        batch = run_recipe(recipe, [fresh.serial], res)
        [unit] = batch.units
        assert unit.result == "succeeded", unit.as_dict()
        steps = {outcome.step: outcome for outcome in unit.steps}
        assert list(steps) == [s.name for s in recipe.steps]
        assert steps["firmware-update"].data["after"] == "2.0.0" and steps["bind"].data["status"] == "done"
        assert steps["face-pay-check"].data["refunded"] and steps["subsidy-enroll"].data["program"]

        def calls() -> list[str]:  # every platform call written about the unit, in the audit trail
            entries = fresh.station.ledger.audit_entries(f"device:{fresh.serial}")
            return [e.details["method"] for e in entries if e.action == "platform.call.queued"]

        made_calls = calls()
        assert sorted(made_calls) == sorted(
            [m.value for m in LIVE] + [Method.TRADE_PAY.value, Method.TRADE_REFUND.value]
        )
        again = run_recipe(recipe, [fresh.serial], res)
        assert again.units[0].result == "already-done"
        assert calls() == made_calls  # nothing sent twice
        json.dumps(batch.as_dict())


def test_firmware_update_and_field_check_refuse_a_batch_they_cannot_do(bench: FaceBench, tmp_path: Path) -> None:
    with pytest.raises(NaiadError) as missing:  # no unit touched: the bundle is opened in the constructor
        FirmwareUpdateStep({"bundle": str(tmp_path / "nothing.zip")}, resources(bench))
    assert missing.value.remedy_text
    with pytest.raises(NotLoggedIn):
        FieldCheckStep({"wall": True, "distance": 0.6}, resources(bench, session=None))
