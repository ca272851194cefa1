"""The distributor's steps (provisioning/bulk_steps.py) on simulated units, each through its ``run``, and the
paths of the steps that must never repeat: done before, and settled after a cut at the worst moment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from camerabench import INSTALLER, CameraBench
from conftest import SimHandle
from facebench import OPERATOR as PLATFORM_OPERATOR
from facebench import FaceBench
from helpers import demo_tool
from keybench import BDK, BDK_LABEL, COMPONENTS, OPERATOR, KeyBench, software_store

from enrollment.gateway import Method
from enrollment.sandbox.server import Faults
from firmware.errors import UnknownSigningKey
from keys import dukpt
from keys.kcv import shown
from provisioning.bulk_steps import (
    CalibrateStep,
    DepthQualityStep,
    FlashStep,
    InjectStep,
    MissingResource,
    RegisterInventoryStep,
)
from provisioning.camera_steps import JigNotConfigured, NoJig, TooFewDistances
from provisioning.injection import BdkNotRegistered, InjectionUnsettled
from provisioning.ledger.audit import clean_json
from provisioning.operators import OperatorSession, RoleRequired, RolesRequired
from provisioning.registration import InventoryCallWaiting
from provisioning.steps import Resources, Step, StepOutcome, UnitJob, all_steps
from terminal.errors import RequestTimeout
from terminal.secure_element import SecureElement

MiB = 1 << 20


def job(resources: Resources, serial: str) -> UnitJob:
    return UnitJob(serial, resources, run_id=1)


def as_json(outcome: StepOutcome) -> str:
    """What the pipeline records of an outcome; it must load back as JSON."""
    text = json.dumps(outcome.as_dict())
    assert json.loads(text)["name"] == outcome.step
    clean_json(outcome.data, "data")  # what the ledger takes of a step: no name that looks like a secret's
    return text


def test_the_distributors_steps_are_registered_with_the_contracts_names_and_settings() -> None:
    steps = all_steps()
    wanted = {
        "flash": ["bundle"],
        "inject": ["bdk"],
        "calibrate": ["views"],
        "depth-quality": ["distances"],
        "register-inventory": [],
    }
    for name, settings in wanted.items():
        cls: type[Step] = steps[name]
        assert [s.name for s in cls.settings] == settings
    assert not steps["inject"].repeatable and not steps["register-inventory"].repeatable
    assert steps["calibrate"].settings[0].default == 40 and steps["calibrate"].settings[0].minimum == 12


# --- flash ----------------------------------------------------------------------------------------


def test_flash_runs_one_unit_with_the_bundle_verified_once_and_names_its_hashes(
    sim_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim: SimHandle = sim_factory(terminals=1, models=["df2"])
    [serial] = sim.serials()
    made = demo_tool().make_demo_bundle(tmp_path / "b" / "2.1.0.zip", version="2.1.0", system_size=MiB)
    from console.composition import Wiring

    with Wiring(sim.state_dir).station() as station:
        resources = Resources(station=station, session=OPERATOR)
        from firmware.bundle import Bundle
        from firmware.signing import TrustStore
        from provisioning.diagnose_checks import content_sha256

        opened: list[str] = []
        real_open = Bundle.open_image
        with monkeypatch.context() as patch:
            patch.setattr(
                Bundle, "open_image", lambda self, name, **kw: opened.append(name) or real_open(self, name, **kw)
            )
            step = FlashStep({"bundle": str(made.path)}, resources)
        # per image: verify's one pass (the content hash made on the way) and the flash plan's; no third read
        assert sorted(opened) == ["boot", "boot", "system", "system"], opened
        with Bundle.open(made.path, TrustStore()) as unverified:  # the streaming computation, apart from verify
            assert step.images == {name: content_sha256(unverified, name) for name in ("boot", "system")}
        try:
            outcome = step.run(job(resources, serial))
        finally:
            step.close()
        assert outcome.ok, outcome.as_dict()
        assert outcome.data["version"] == "2.1.0" and outcome.data["slot"] in ("a", "b")
        assert set(outcome.data["images"]) == {"boot", "system"}
        import hashlib

        assert outcome.data["bundle_sha256"] == hashlib.sha256(made.path.read_bytes()).hexdigest()
        info = station.info(serial)
        assert info["slots"][info["active_slot"]]["version"] == "2.1.0"
        as_json(outcome)

        untrusted = demo_tool().make_demo_bundle(
            tmp_path / "u" / "9.zip", version="9.0.0", system_size=MiB, trust=False, key_dir=tmp_path / "other-key"
        )
        with pytest.raises(UnknownSigningKey):  # refused in the constructor: no unit touched
            FlashStep({"bundle": str(untrusted.path)}, resources)


# --- inject ---------------------------------------------------------------------------------------


KEY_UNITS = 6
"""Units of the module's key bench: each injection test takes one of its own."""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimHandle, KeyBench, list[str]]]:
    """One simulator of fresh units and one key bench for the module's injection tests."""
    from simulator import launcher

    where = tmp_path_factory.mktemp("keys")
    launcher.start_detached(where / "sim", KEY_UNITS, ["df2"])
    try:
        sim = SimHandle(where / "sim")
        bench = KeyBench.open(sim.state_dir, f"sqlite:///{where / 'ledger.sqlite'}", software_store(where))
        serials = sim.serials()
        bench.authorise(serials)
        yield sim, bench, serials
        bench.close()
    finally:
        launcher.stop(where / "sim")


@pytest.fixture
def keys(keyed: tuple[SimHandle, KeyBench, list[str]]) -> tuple[KeyBench, str]:
    """The key bench and a unit no other test of the module touched."""
    _sim, bench, fresh = keyed
    return bench, fresh.pop()


def key_resources(bench: KeyBench, **changes: Any) -> Resources:
    return Resources(
        **{"station": bench.station, "session": OPERATOR, "store": bench.store, "roots": bench.roots, **changes}
    )


def unit_keys(bench: KeyBench, serial: str) -> Any:
    with bench.station.connect(serial) as client:
        return SecureElement(client).status()


def no_key_material(text: str, initial_key_ids: list[bytes]) -> None:
    """Neither the BDK, its components nor any unit's Initial Key appear in ``text`` (hex, either case)."""
    secrets = [BDK, *COMPONENTS, *(dukpt.initial_key(BDK, i) for i in initial_key_ids)]
    for secret in secrets:
        assert secret.hex() not in text.lower()


def test_inject_runs_once_and_is_then_found_done_from_the_ledger(keys: tuple[KeyBench, str]) -> None:
    bench, serial = keys
    resources = key_resources(bench)
    step = InjectStep({"bdk": BDK_LABEL}, resources)
    unit = job(resources, serial)
    assert step.done_before(unit) is None and step.settle(unit) is None
    outcome = step.run(unit)
    assert outcome.ok and not outcome.already_done, outcome.as_dict()
    [record] = bench.ledger.injections(serial)
    assert outcome.data["initial_key_id"] == record.initial_key_id.hex().upper()
    assert outcome.data["kcv"] == shown(record.kcv) and outcome.data["certificate_serial"] == record.certificate_serial

    again = step.done_before(unit)
    assert again is not None and again.already_done and again.ok and again.data == outcome.data
    settled = step.settle(unit)  # a crash after the record: settled as done, nothing sent
    assert settled is not None and settled.already_done and settled.data == outcome.data
    assert len(bench.ledger.allocations(serial)) == 1 and len(unit_keys(bench, serial).keys) == 1
    no_key_material(as_json(outcome) + as_json(again), [record.initial_key_id])


def test_inject_refuses_the_batch_without_a_store_roots_a_known_bdk_or_the_operator_role(
    keys: tuple[KeyBench, str],
) -> None:
    bench, serial = keys
    for missing in ("store", "roots"):
        with pytest.raises(MissingResource) as refused:
            InjectStep({"bdk": BDK_LABEL}, key_resources(bench, **{missing: None if missing == "store" else ()}))
        assert "inject" in str(refused.value) and refused.value.remedy_text
    with pytest.raises(BdkNotRegistered):
        InjectStep({"bdk": "bdk-unknown"}, key_resources(bench))
    with pytest.raises(RoleRequired):
        InjectStep({"bdk": BDK_LABEL}, key_resources(bench, session=OperatorSession("ina", "installer")))
    assert bench.ledger.allocations(serial) == [] and unit_keys(bench, serial).keys == []


def lose_the_commit_and_the_status(monkeypatch: pytest.MonkeyPatch, serial: str) -> None:
    """The worst moment: the unit commits the key, its reply is lost and its status cannot be read, so the
    station stops with the Initial Key ID allocated and never recorded (as a crash right after the commit)."""
    commit = SecureElement.commit_key

    def lost(self: SecureElement, *args: Any) -> Any:
        commit(self, *args)
        raise RequestTimeout(serial=serial, path="-", request="se_key_commit")

    def unreadable(self: SecureElement) -> Any:
        raise RequestTimeout(serial=serial, path="-", request="se_key_status")

    monkeypatch.setattr(SecureElement, "commit_key", lost)
    monkeypatch.setattr(SecureElement, "status", unreadable)


def test_a_key_the_unit_stored_before_the_cut_is_adopted_by_settle_not_injected_again(
    keys: tuple[KeyBench, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, serial = keys
    resources = key_resources(bench)
    step = InjectStep({"bdk": BDK_LABEL}, resources)
    unit = job(resources, serial)
    with monkeypatch.context() as cut:
        lose_the_commit_and_the_status(cut, serial)
        assert not step.run(unit).ok
    [allocation] = bench.ledger.allocations(serial)
    assert allocation.state == "allocated" and bench.ledger.injections(serial) == []

    settled = step.settle(unit)
    assert settled is not None and settled.ok and settled.already_done
    [slot] = unit_keys(bench, serial).keys
    [record] = bench.ledger.injections(serial)
    assert slot.initial_key_id == record.initial_key_id == allocation.initial_key_id
    assert settled.data["initial_key_id"] == allocation.initial_key_id.hex().upper()
    assert settled.data["kcv"] == shown(slot.kcv)
    assert [a.state for a in bench.ledger.allocations(serial)] == ["injected"]
    no_key_material(as_json(settled), [allocation.initial_key_id])


def test_running_inject_again_after_a_lost_commit_adopts_the_key_instead_of_injecting_another(
    keys: tuple[KeyBench, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed run (CommitUnconfirmed) is run again by the pipeline: the step looks at the unit first."""
    bench, serial = keys
    resources = key_resources(bench)
    step = InjectStep({"bdk": BDK_LABEL}, resources)
    unit = job(resources, serial)
    with monkeypatch.context() as cut:
        lose_the_commit_and_the_status(cut, serial)
        assert not step.run(unit).ok
    again = step.run(unit)
    assert again.ok and again.already_done, again.as_dict()
    [allocation] = bench.ledger.allocations(serial)  # no second Initial Key ID was issued
    assert allocation.state == "injected" and again.data["initial_key_id"] == allocation.initial_key_id.hex().upper()


def test_an_id_allocated_before_the_cut_that_the_unit_does_not_hold_is_burnt_and_the_step_runs_again(
    keys: tuple[KeyBench, str],
) -> None:
    bench, serial = keys
    resources = key_resources(bench)
    step = InjectStep({"bdk": BDK_LABEL}, resources)
    unit = job(resources, serial)
    cut = bench.ledger.as_operator(OPERATOR.operator).allocate_initial_key_id(BDK_LABEL, serial)  # then kill -9
    assert step.settle(unit) is None
    [burnt] = bench.ledger.allocations(serial)
    assert burnt.initial_key_id == cut and burnt.state == "failed"
    outcome = step.run(unit)
    assert outcome.ok and outcome.data["initial_key_id"] != cut.hex().upper()  # never reused


def test_a_unit_that_cannot_be_read_after_the_cut_keeps_the_run_resumable(
    keyed: tuple[SimHandle, KeyBench, list[str]], keys: tuple[KeyBench, str]
) -> None:
    sim = keyed[0]
    bench, serial = keys
    resources = key_resources(bench)
    step = InjectStep({"bdk": BDK_LABEL}, resources)
    unit = job(resources, serial)
    cut = bench.ledger.as_operator(OPERATOR.operator).allocate_initial_key_id(BDK_LABEL, serial)
    sim.call("unplug", serial=serial)
    with pytest.raises(InjectionUnsettled) as unsettled:
        step.settle(unit)
    assert cut.hex().upper() in str(unsettled.value) and unsettled.value.remedy_text
    [still] = bench.ledger.allocations(serial)
    assert still.state == "allocated"  # nothing decided without the unit's word
    sim.call("replug", serial=serial)
    bench.station.wait_for(serial, "run")
    assert step.settle(unit) is None and bench.ledger.allocations(serial)[0].state == "failed"


# --- calibrate, depth-quality ---------------------------------------------------------------------


@pytest.fixture
def cams(sim: SimHandle, tmp_path: Path) -> Iterator[CameraBench]:
    with CameraBench.open(sim.state_dir, f"sqlite:///{tmp_path / 'ledger.sqlite'}") as bench:
        yield bench


def test_calibrate_runs_a_shorter_jig_sequence_and_records_the_calibration(sim: SimHandle, cams: CameraBench) -> None:
    [serial] = sim.serials()
    operator = OperatorSession("otto", "operator")
    resources = Resources(station=cams.station, session=operator, jig=cams.jig)
    step = CalibrateStep({"views": 12}, resources)
    outcome = step.run(job(resources, serial))
    assert outcome.ok, outcome.as_dict()
    [record] = cams.ledger.calibrations(serial)
    assert outcome.data["checksum"] == record.checksum
    assert outcome.data["figures"]["ir_rms_px"] > 0 and len(outcome.data["depth"]) >= 2
    as_json(outcome)
    with pytest.raises(MissingResource) as refused:
        CalibrateStep({"views": 12}, Resources(station=cams.station, session=operator))
    assert "jig" in str(refused.value)


def test_depth_quality_measures_at_the_distances_asked_and_refuses_a_batch_it_cannot_do(
    sim: SimHandle, cams: CameraBench
) -> None:
    [serial] = sim.serials()
    resources = Resources(station=cams.station, session=INSTALLER, jig=cams.jig)
    outcome = DepthQualityStep({"distances": [0.5, 0.7]}, resources).run(job(resources, serial))
    assert outcome.ok, outcome.as_dict()
    assert [run["distance_m"] for run in outcome.data["depth"]] == [0.5, 0.7]
    assert "fill_rate.0.5m" in outcome.data["figures"]
    as_json(outcome)
    with pytest.raises(TooFewDistances):
        DepthQualityStep({"distances": [0.5]}, resources)
    with pytest.raises(JigNotConfigured):
        DepthQualityStep({"distances": []}, Resources(station=cams.station, session=INSTALLER, jig=NoJig()))
    with pytest.raises(MissingResource):
        DepthQualityStep({"distances": []}, Resources(station=cams.station, session=INSTALLER))


# --- register-inventory ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceBench]:
    with FaceBench.open(tmp_path_factory.mktemp("inventory")) as made:
        yield made


def platform_resources(bench: FaceBench, **changes: Any) -> Resources:
    base = {
        "station": bench.station,
        "session": PLATFORM_OPERATOR,
        "outbox": bench.outbox,
        "supplier_id": bench.config.supplier_id,
    }
    return Resources(**{**base, **changes})


def test_register_inventory_registers_once_and_finds_its_own_call_done(platform: FaceBench) -> None:
    serial = "DF2A07001"  # a unit of this distributor, seen by the station, not yet at the platform
    platform.station.ledger.device_seen(serial, "df2")
    resources = platform_resources(platform)
    step = RegisterInventoryStep({}, resources)
    unit = job(resources, serial)
    assert step.done_before(unit) is None and step.settle(unit) is None
    outcome = step.run(unit)
    assert outcome.ok and outcome.data["status"] == "registered", outcome.as_dict()
    call = platform.station.ledger.platform_call(outcome.data["request_no"])
    assert call is not None and call.serial == serial and call.state == "done"
    again = step.done_before(unit)
    assert again is not None and again.already_done and again.data["request_no"] == outcome.data["request_no"]
    as_json(outcome)


def test_a_registration_whose_reply_was_lost_is_settled_by_sending_its_call_again(platform: FaceBench) -> None:
    serial = "DF2A07002"
    platform.station.ledger.device_seen(serial, "df2")
    resources = platform_resources(platform)
    step = RegisterInventoryStep({}, resources)
    unit = job(resources, serial)
    platform.sandbox.faults = Faults(drop_rate=1.0)  # the platform registers it, and the reply never comes
    try:
        cut = step.run(unit)
        assert not cut.ok and cut.data["status"] == "pending"
        [waiting] = platform.outbox.pending(Method.INVENTORY_REGISTER, serial)
        with pytest.raises(InventoryCallWaiting):  # still no answer: it cannot be known yet
            step.settle(unit)
    finally:
        platform.sandbox.faults = Faults()
    settled = step.settle(unit)
    assert settled is not None and settled.ok and settled.already_done
    assert settled.data["request_no"] == waiting.request_no  # the same call, answered once
    assert platform.outbox.pending(Method.INVENTORY_REGISTER, serial) == []


def test_register_inventory_refuses_the_batch_without_an_outbox_a_supplier_or_the_role(platform: FaceBench) -> None:
    for missing in ("outbox", "supplier_id"):
        with pytest.raises(MissingResource) as refused:
            RegisterInventoryStep({}, platform_resources(platform, **{missing: None}))
        assert refused.value.remedy_text and "--platform-config" in refused.value.remedy_text
    with pytest.raises(RolesRequired):
        RegisterInventoryStep({}, platform_resources(platform, session=OperatorSession("ina", "installer")))
