"""support-diagnose on a simulated unit: each simulator fault leads to its own verdict, and the diagnosis changes
nothing on the unit (INFO, key status, slots, calibration blob read before and after are the same).

One provisioned unit for the module (a small bundle flashed, keys injected, a calibration stored); each test puts
its fault on it and takes it off again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from camerabench import truth_blob
from conftest import SimHandle
from helpers import demo_tool
from keybench import KeyBench, software_store

from provisioning.calibration import calibrate_units
from provisioning.diagnose_steps import DIAGNOSE_STEPS, FirmwareSlots, VerdictStep
from provisioning.flashing import flash_units
from provisioning.operators import OperatorSession
from provisioning.steps import REQUIRED, Resources, Step, StepOutcome, UnitJob, all_steps
from simulator import launcher
from terminal.camera import blob_checksum
from terminal.camera_unit import CameraUnit
from terminal.secure_element import SecureElement

SUPPORT = OperatorSession("sue", "support")


@dataclass
class Provisioned:
    sim: SimHandle
    bench: KeyBench
    serial: str
    bundle: Path
    config_dir: Path


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    root = tmp_path_factory.mktemp("diagnose")
    config = root / "config"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAIAD_CONFIG_DIR", str(config))
        patch.setenv("NAIAD_DATA_DIR", str(root / "data"))
        patch.setenv("NAIAD_LANG", "en")
        state = root / "sim"
        launcher.start_detached(state, 1, ["df2"], {})
        sim = SimHandle(state)
        try:
            bench = KeyBench.open(state, f"sqlite:///{root / 'ledger.db'}", software_store(root))
            [serial] = sim.serials()
            bench.ledger.register_operator(SUPPORT.operator, SUPPORT.role)
            bundle = Path(demo_tool().make_demo_bundle(root / "bundle.zip", version="2.0.0").path)
            [flashed] = flash_units(bench.station, bundle, [serial])
            assert flashed.ok, flashed.as_dict()
            bench.authorise([serial])
            injected = bench.inject([serial])
            assert injected.as_dict()["results"][0]["ok"], injected.as_dict()
            blob = truth_blob(serial, sim.call("truth", serial=serial)).encode()
            with bench.station.connect(serial) as client:
                CameraUnit(client).write_calibration(blob)
            bench.ledger.record_calibration(serial, blob_checksum(blob), {})
            yield Provisioned(sim, bench, serial, bundle, config)
            bench.close()
        finally:
            launcher.stop(state)


@pytest.fixture
def provisioned(unit: Provisioned, monkeypatch: pytest.MonkeyPatch) -> Provisioned:
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(unit.config_dir))  # the bundle's release key is trusted there
    return unit


def snapshot(unit: Provisioned) -> dict[str, Any]:
    """What a diagnosis must not change: INFO, the key status, the slots' hashes and the calibration blob."""
    from terminal.diagnostics import read_slot_hashes

    with unit.bench.station.connect(unit.serial) as client:
        return {
            "info": client.info(),
            "keys": SecureElement(client).status(),
            "hashes": read_slot_hashes(client),
            "calibration": CameraUnit(client).read_calibration(),
        }


class FieldCheck(Step):
    """B's ``field-check`` until its branch lands: the same field check, as a step outcome."""

    name = "field-check"
    label = "field check"
    read_only = True

    def run(self, job: UnitJob) -> StepOutcome:
        [result] = calibrate_units(job.station, job.resources.jig or _no_jig(), [job.serial], mode="check",
                                   session=SUPPORT)  # fmt: skip
        data = {"verdict": result.verdict, "passed": result.ok, "findings": list(result.findings)}
        return StepOutcome("field-check", result.error is None, result.seconds, "", data, result.error)


def _no_jig() -> Any:
    from provisioning.camera_steps import NoJig

    return NoJig()


def diagnose(unit: Provisioned) -> dict[str, StepOutcome]:
    """Every read-only step in the recipe's order on the unit, then the verdict: the outcomes by step name."""
    resources = Resources(station=unit.bench.station, session=SUPPORT)
    job = UnitJob(unit.serial, resources, run_id=0)
    field_check = all_steps().get("field-check", FieldCheck)
    settings: dict[type[Step], dict[str, Any]] = {FirmwareSlots: {"bundle": str(unit.bundle)}}
    order: list[type[Step]] = [*DIAGNOSE_STEPS[:4], field_check, *DIAGNOSE_STEPS[4:], VerdictStep]
    for cls in order:
        defaults = {s.name: s.default for s in cls.settings if s.default is not REQUIRED}
        step = cls({**defaults, **settings.get(cls, {})}, resources)
        job.earlier[cls.name] = step.run(job)
    return job.earlier


def judged(unit: Provisioned) -> tuple[str, dict[str, StepOutcome]]:
    before = snapshot(unit)
    outcomes = diagnose(unit)
    assert snapshot(unit) == before, "the diagnosis changed the unit"
    return outcomes["verdict"].data["action"], outcomes


def test_a_healthy_provisioned_unit_needs_nothing(provisioned: Provisioned) -> None:
    action, outcomes = judged(provisioned)
    verdict = outcomes["verdict"].data
    assert (action, verdict["verdict"]) == ("none", "healthy"), {k: o.as_dict() for k, o in outcomes.items()}
    assert all(o.ok for o in outcomes.values()), {k: o.detail for k, o in outcomes.items() if not o.ok}
    slots = outcomes["firmware-slots"].data
    assert slots["running_version"] == slots["expected_version"] == "2.0.0" and slots["mismatched"] == []
    assert outcomes["key-status"].data["problem"] == "" and outcomes["key-status"].data["recorded"]
    assert "key" not in str(outcomes["key-status"].data.get("kcv")).lower()


@pytest.mark.parametrize(
    ("faults", "action", "verdict"),
    [
        ({"camera_drift": True}, "re-calibrate", "calibration-drift"),
        ({"dead_projector": True}, "rma", "dead-projector"),
        ({"ber": 2e-4}, "replace-cable", "noisy-link"),
    ],
)
def test_each_camera_or_link_fault_gets_its_own_verdict(
    provisioned: Provisioned, faults: dict[str, Any], action: str, verdict: str
) -> None:
    serial = provisioned.serial
    provisioned.sim.call("faults", serial=serial, **faults)
    try:
        got, outcomes = judged(provisioned)
    finally:
        provisioned.sim.call("faults", serial=serial, camera_drift=False, dead_projector=False, ber=0.0)
    assert (got, outcomes["verdict"].data["verdict"]) == (action, verdict), {
        k: (o.ok, o.detail, o.data.get("findings")) for k, o in outcomes.items()
    }
    assert outcomes["verdict"].data["reasons"]


def test_zeroised_keys_are_re_injected(provisioned: Provisioned) -> None:
    """The keys cannot come back: runs after the tests that need them, before the firmware faults (which the
    rules judge before the keys)."""
    provisioned.sim.call("zeroise", serial=provisioned.serial)
    action, outcomes = judged(provisioned)
    assert action == "re-inject", outcomes["verdict"].data
    assert outcomes["key-status"].data["problem"] == "missing"
    assert outcomes["logs"].data["tamper"]
    assert any("no payment key" in r for r in outcomes["verdict"].data["reasons"])


def test_a_corrupted_partition_is_re_flashed(provisioned: Provisioned) -> None:
    provisioned.sim.call("corrupt_partition", serial=provisioned.serial, partition="system")
    action, outcomes = judged(provisioned)
    assert action == "re-flash", outcomes["verdict"].data
    assert outcomes["firmware-slots"].data["mismatched"] == ["system"]


def test_a_slot_that_fails_to_boot_is_re_flashed(provisioned: Provisioned) -> None:
    """Runs after the corrupted partition (same unit): the failed slot falls back to the factory firmware."""
    sim, serial = provisioned.sim, provisioned.serial
    active = sim.terminal(serial)["active_slot"]
    sim.call("fail_boots", serial=serial, slot=active, count=3)
    sim.call("reboot", serial=serial)
    provisioned.bench.station.wait_for(serial, "run", 30)
    action, outcomes = judged(provisioned)
    assert action == "re-flash", outcomes["verdict"].data
    slots = outcomes["firmware-slots"].data
    assert active in slots["unbootable"] and slots["running_version"] != "2.0.0"
    assert outcomes["boot-history"].data["last_fell_back"]


def test_a_refused_bundle_refuses_the_step_before_any_unit(provisioned: Provisioned, tmp_path: Path) -> None:
    from terminal.errors import NaiadError

    junk = tmp_path / "junk.zip"
    junk.write_bytes(os.urandom(64))
    resources = Resources(station=provisioned.bench.station, session=SUPPORT)
    with pytest.raises(NaiadError):
        FirmwareSlots({"bundle": str(junk)}, resources)
