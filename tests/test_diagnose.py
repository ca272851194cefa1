"""support-diagnose on a simulated unit: each simulator fault leads to its own verdict, and the diagnosis changes
nothing on the unit (INFO, key status, slots, calibration blob read before and after are the same).

Several provisioned units in one simulator for the module (a small bundle flashed, keys injected, a calibration
stored): the faults that can be taken off again (camera, link) use the first unit and take them off; each fault
that cannot (keys zeroised, a partition corrupted, a slot failed, another firmware flashed) takes a unit of its
own, so the tests pass in any order.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from diagnosebench import Provisioned, provisioned_units
from helpers import demo_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioning.diagnose_steps import DIAGNOSE_STEPS, FirmwareSlots, VerdictStep
from provisioning.steps import REQUIRED, Step, StepOutcome, UnitJob, step_class

pytestmark = pytest.mark.slow(seconds=60)  # six provisioned units, one per damaging fault: about 60 s

UNITS = 6
"""The module's units: one shared, and one for each test that damages its unit for good."""


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Provisioned]]:
    with provisioned_units(tmp_path_factory.mktemp("diagnose"), UNITS) as provisioned:
        yield provisioned


@pytest.fixture(scope="module")
def spare(units: list[Provisioned]) -> Iterator[Provisioned]:
    return iter(units[1:])


@pytest.fixture
def provisioned(units: list[Provisioned], monkeypatch: pytest.MonkeyPatch) -> Provisioned:
    """The shared unit: a test puts back whatever it changes."""
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(units[0].config_dir))  # the bundle's release key is trusted there
    return units[0]


@pytest.fixture
def fresh(spare: Iterator[Provisioned], monkeypatch: pytest.MonkeyPatch) -> Provisioned:
    """A unit of the test's own, healthy and never diagnosed, for a fault that stays."""
    unit = next(spare, None)
    assert unit is not None, f"more damaging tests than UNITS - 1 = {UNITS - 1}"
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(unit.config_dir))
    return unit


def diagnose(unit: Provisioned) -> dict[str, StepOutcome]:
    """Every read-only step in the recipe's order on the unit, then the verdict: the outcomes by step name."""
    resources = unit.resources()
    job = UnitJob(unit.serial, resources, run_id=0)
    field_check = step_class("field-check")  # B's (provisioning/onsite_steps.py)
    order: list[type[Step]] = [*DIAGNOSE_STEPS[:4], field_check, *DIAGNOSE_STEPS[4:], VerdictStep]
    for cls in order:
        defaults = {s.name: s.default for s in cls.settings if s.default is not REQUIRED}
        step = cls(defaults, resources)
        job.earlier[cls.name] = step.run(job)
    return job.earlier


def judged(unit: Provisioned) -> tuple[str, dict[str, StepOutcome]]:
    before = unit.snapshot()
    outcomes = diagnose(unit)
    assert unit.snapshot() == before, "the diagnosis changed the unit"
    return outcomes["verdict"].data["action"], outcomes


def test_a_healthy_provisioned_unit_needs_nothing(provisioned: Provisioned) -> None:
    action, outcomes = judged(provisioned)
    verdict = outcomes["verdict"].data
    assert (action, verdict["verdict"]) == ("none", "healthy"), {k: o.as_dict() for k, o in outcomes.items()}
    assert all(o.ok for o in outcomes.values()), {k: o.detail for k, o in outcomes.items() if not o.ok}
    slots = outcomes["firmware-slots"].data
    assert slots["running_version"] == slots["expected_version"] == "2.0.0" and slots["mismatched"] == []
    assert slots["source"] == "ledger"  # the flash step's image hashes
    job = UnitJob(provisioned.serial, provisioned.resources(), run_id=0)
    given = FirmwareSlots({"bundle": str(provisioned.bundle)}, provisioned.resources()).run(job).data
    assert (given["source"], given["mismatched"], given["problems"]) == ("bundle", [], 0)
    assert outcomes["key-status"].data["problem"] == "" and outcomes["key-status"].data["recorded"]
    assert "key" not in str(outcomes["key-status"].data.get("kcv")).lower()


@pytest.mark.parametrize(
    ("faults", "action", "verdict", "shown"),
    [
        ({"camera_drift": True}, "re-calibrate", "calibration-drift", ("field-check", "verdict", "recalibrate")),
        ({"dead_projector": True}, "rma", "dead-projector", ("camera-self-test", "projector_ok", False)),
        ({"rgb_defocus": True}, "rma", "camera-module", ("camera-self-test", "rgb_ok", False)),
        ({"ber": 1e-5}, "replace-cable", "noisy-link", ("link-check", "intact", True)),
        ({"drop": 1e-4}, "replace-cable", "noisy-link", ("link-check", "intact", True)),
    ],
)
def test_each_camera_or_link_fault_gets_its_own_verdict(
    provisioned: Provisioned, faults: dict[str, Any], action: str, verdict: str, shown: tuple[str, str, Any]
) -> None:
    serial = provisioned.serial
    provisioned.sim.call("faults", serial=serial, **faults)
    try:
        got, outcomes = judged(provisioned)
    finally:
        provisioned.sim.call(
            "faults", serial=serial, camera_drift=False, dead_projector=False, rgb_defocus=False, ber=0.0, drop=0.0
        )
    assert (got, outcomes["verdict"].data["verdict"]) == (action, verdict), {
        k: (o.ok, o.detail, o.data.get("findings")) for k, o in outcomes.items()
    }
    step, field, value = shown
    assert outcomes[step].data[field] == value, outcomes[step].data
    assert outcomes["verdict"].data["reasons"]
    if (
        "ber" in faults or "drop" in faults
    ):  # the retransmissions recover the data; the damaged frames give the cable away
        assert outcomes["link-check"].data["damaged_frames"] > 0


def test_zeroised_keys_are_re_injected_and_the_tamper_is_quoted(fresh: Provisioned) -> None:
    fresh.sim.call("zeroise", serial=fresh.serial)
    action, outcomes = judged(fresh)
    assert action == "re-inject", outcomes["verdict"].data
    assert outcomes["verdict"].data["rule"] == "keys-tampered"
    assert outcomes["key-status"].data["problem"] == "missing"
    assert outcomes["logs"].data["tamper"]
    reasons = outcomes["verdict"].data["reasons"]
    assert any("no payment key" in r for r in reasons) and any("tamper" in r for r in reasons), reasons


def test_a_keyless_unit_the_ledger_knows_as_provisioned_is_re_injected_without_an_injection_record(
    fresh: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A support desk whose ledger has no injection for the unit (keyed elsewhere) still sees the keys missing."""
    fresh.sim.call("zeroise", serial=fresh.serial)
    monkeypatch.setattr(type(fresh.bench.ledger), "injections", lambda self, serial=None: [])
    action, outcomes = judged(fresh)
    assert outcomes["key-status"].data["problem"] == "missing", outcomes["key-status"].data
    assert action == "re-inject", outcomes["verdict"].data


def test_a_corrupted_partition_is_re_flashed(fresh: Provisioned) -> None:
    fresh.sim.call("corrupt_partition", serial=fresh.serial, partition="system")
    action, outcomes = judged(fresh)
    assert action == "re-flash", outcomes["verdict"].data
    assert outcomes["firmware-slots"].data["mismatched"] == ["system"]


def test_a_slot_that_fails_to_boot_is_re_flashed(fresh: Provisioned) -> None:
    """On a unit of its own: the failed slot falls back to the factory firmware; nothing else is wrong."""
    sim, serial = fresh.sim, fresh.serial
    active = sim.terminal(serial)["active_slot"]
    sim.call("fail_boots", serial=serial, slot=active, count=3)
    sim.call("reboot", serial=serial)
    fresh.bench.station.wait_for(serial, "run", 30)
    action, outcomes = judged(fresh)
    assert action == "re-flash", outcomes["verdict"].data
    slots = outcomes["firmware-slots"].data
    assert active in slots["unbootable"] and slots["running_version"] != "2.0.0"
    assert outcomes["boot-history"].data["last_fell_back"]
    assert outcomes["key-status"].data["problem"] == "", outcomes["key-status"].data  # only the slot is at fault


def test_a_unit_updated_after_its_recipe_run_is_judged_on_its_newest_flash(fresh: Provisioned) -> None:
    """'naiad flash' (no recipe step) of 2.1.0 after the recipe's 2.0.0: the newest flash is the expected one."""
    from provisioning.flashing import flash_units

    newer = demo_tool().make_demo_bundle(fresh.root / "update" / "2.1.0.zip", version="2.1.0")
    [flashed] = flash_units(fresh.bench.station, newer.path, [fresh.serial])
    assert flashed.ok, flashed
    action, outcomes = judged(fresh)
    slots = outcomes["firmware-slots"].data
    assert (action, slots["problems"]) == ("none", 0), slots["findings"]
    assert (slots["expected_version"], slots["source"]) == ("2.1.0", "ledger-version")


@pytest.mark.parametrize(
    "scene",
    [{"kind": "none"}, {"kind": "wall", "distance_m": 0.6}, {"kind": "face", "identity": 1, "distance_m": 0.5}],
    ids=["nothing", "wall", "face"],
)
def test_a_healthy_unit_facing_no_board_is_never_sent_back(provisioned: Provisioned, scene: dict[str, Any]) -> None:
    """The self-test judges only what the scene can show: without the board it is inconclusive, never RMA."""
    provisioned.sim.call("scene", serial=provisioned.serial, scene=scene)
    try:
        action, outcomes = judged(provisioned)
    finally:
        provisioned.sim.call("scene", serial=provisioned.serial, scene={"kind": "default"})
    camera = outcomes["camera-self-test"].data
    assert action != "rma" and outcomes["verdict"].data["verdict"] == "inconclusive", (camera, outcomes["verdict"])
    assert (
        camera["judged"] is False
        and camera["board_ir"] == 0
        and False not in (camera["projector_ok"], camera["ir_ok"], camera["rgb_ok"])
    ), camera
    assert any("No calibration board in view" in r for r in outcomes["verdict"].data["reasons"])


@contextmanager
def stalled(pid: int, after: float, stall: float) -> Iterator[None]:
    """The simulator process stopped (SIGSTOP) for ``stall`` seconds, ``after`` seconds into the block: a busy
    host or unit, not a cable."""

    def stop() -> None:
        time.sleep(after)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(stall)
        finally:
            os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=stop)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def link_then_verdict(unit: Provisioned) -> tuple[StepOutcome, dict[str, Any]]:
    from provisioning.diagnose_steps import LinkCheck

    resources = unit.resources()
    job = UnitJob(unit.serial, resources, run_id=0)
    job.earlier["link-check"] = LinkCheck({}, resources).run(job)
    return job.earlier["link-check"], VerdictStep({}, resources).run(job).data


def test_a_stalled_unit_is_not_blamed_on_the_cable(provisioned: Provisioned) -> None:
    pid = provisioned.sim.call("status")["pid"]
    with stalled(pid, 0.03, 1.2):
        link, verdict = link_then_verdict(provisioned)
    assert link.data["damaged_frames"] == 0, link.data
    assert verdict["action"] != "replace-cable", (link.data, verdict)


def test_retransmissions_alone_are_no_cable_fault_and_a_damaged_round_is_repeated(
    provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioning import diagnose_steps
    from provisioning.diagnose_steps import rule_fields
    from provisioning.verdicts import judge, load_rules
    from terminal.diagnostics import LoopbackResult

    busy = {"link-check": outcome("link-check", intact=True, damaged_frames=0, retransmissions=60)}
    assert judge(load_rules(rule_fields()), busy).action == "none"
    rounds = iter([LoopbackResult(1024, False, 9, 3, 1.0), LoopbackResult(1024, True, 0, 0, 1.0)])
    monkeypatch.setattr(diagnose_steps, "loopback", lambda client, size: next(rounds))
    link, verdict = link_then_verdict(provisioned)
    assert (link.data["rounds"], link.data["intact"], link.data["damaged_frames"]) == (2, True, 0), link.data
    assert verdict["action"] == "none", verdict
    rounds = iter([LoopbackResult(1024, True, 9, 3, 1.0), LoopbackResult(1024, True, 7, 2, 1.0)])
    link, verdict = link_then_verdict(provisioned)
    assert (link.data["rounds"], link.data["damaged_frames"], verdict["action"]) == (2, 2, "replace-cable")


@pytest.mark.parametrize("code", ["not-found", "unknown-type"])
def test_firmware_without_a_diagnostic_object_is_inconclusive_not_a_fault(
    provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    from provisioning import diagnose_steps
    from terminal.errors import RemoteError

    def unsupported(client: Any, *args: Any) -> Any:
        raise RemoteError(request="OBJECT_READ", code=code, detail="diag/x")

    monkeypatch.setattr(diagnose_steps, "read_slot_hashes", unsupported)
    monkeypatch.setattr(diagnose_steps, "loopback", unsupported)
    action, outcomes = judged(provisioned)
    assert outcomes["verdict"].data["verdict"] == "inconclusive" and action == "none", outcomes["verdict"].data
    for name in ("firmware-slots", "link-check"):
        assert not outcomes[name].ok and outcomes[name].data["supported"] is False
        assert "does not support this check" in outcomes[name].data["findings"][0]


def test_a_capture_missing_a_stream_is_a_typed_error_and_the_projector_is_put_back(
    provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from provisioning import diagnose_steps
    from provisioning.diagnose_steps import CameraSelfTest
    from terminal.camera_unit import CameraUnit
    from terminal.errors import MalformedReply

    real = diagnose_steps.decode_frame_set
    monkeypatch.setattr(diagnose_steps, "decode_frame_set", lambda data: replace(real(data), rgb=None))
    with provisioned.bench.station.connect(provisioned.serial) as client:
        was_on = CameraUnit(client).projector()
    resources = provisioned.resources()
    done = CameraSelfTest({}, resources).run(UnitJob(provisioned.serial, resources, run_id=0))
    assert not done.ok and isinstance(done.error, MalformedReply) and "rgb" in str(done.error), done.as_dict()
    monkeypatch.setattr(CameraUnit, "capture", lambda self, *a, **k: (_ for _ in ()).throw(MalformedReply(
        path="-", serial=provisioned.serial, request="camera-capture", field="-", expected="-")))  # fmt: skip
    failed = CameraSelfTest({}, resources).run(UnitJob(provisioned.serial, resources, run_id=0))
    assert not failed.ok and failed.data["findings"] == []  # the error is the detail, said once
    with provisioned.bench.station.connect(provisioned.serial) as client:
        assert CameraUnit(client).projector() == was_on


def test_the_logs_kept_are_cut_to_a_bounded_length(provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    from provisioning.diagnose_steps import LOG_LINE_CHARS, Logs
    from terminal.client import ManagementClient

    monkeypatch.setattr(ManagementClient, "logs", lambda self: "boot ok\n" + "error " + "x" * 100_000 + "\n")
    resources = provisioned.resources()
    done = Logs({}, resources).run(UnitJob(provisioned.serial, resources, run_id=0))
    assert done.ok and done.data["alarms"] == 1
    assert all(len(line) <= LOG_LINE_CHARS for line in (*done.data["tail"], *done.data["alarm_lines"]))
    assert len(json.dumps(done.data)) < 4 * LOG_LINE_CHARS * 2


def test_a_refused_bundle_refuses_the_step_before_any_unit(provisioned: Provisioned, tmp_path: Path) -> None:
    from terminal.errors import NaiadError

    junk = tmp_path / "junk.zip"
    junk.write_bytes(os.urandom(64))
    with pytest.raises(NaiadError):
        FirmwareSlots({"bundle": str(junk)}, provisioned.resources())


# --- the rules file and the unit's slot hashes, without a unit ------------------------------------------------

KNOWN = {"link-check": frozenset({"intact"}), "key-status": frozenset({"problem", "findings"})}


def outcome(step: str, ok: bool = True, **data: Any) -> StepOutcome:
    return StepOutcome(step, ok, data=data)


def test_the_first_matching_rule_wins_and_quotes_the_steps_findings() -> None:
    from provisioning.verdicts import judge, parse_rules

    rules = parse_rules(
        """
[[rule]]
name = "cable"
verdict = "noisy-link"
action = "replace-cable"
any = ["link-check.intact == false", "link-check.ok == false"]

[[rule]]
name = "keys"
verdict = "keys-missing"
action = "re-inject"
all = ["key-status.problem in ['missing']"]

[[rule]]
name = "fine"
verdict = "healthy"
action = "none"
""",
        "test.toml",
        KNOWN,
    )
    missing = outcome("key-status", problem="missing", findings=["no key on the unit"])
    assert judge(rules, {"link-check": outcome("link-check", intact=True), "key-status": missing}).as_data() == {
        **judge(rules, {"key-status": missing}).as_data(),
        "verdict": "keys-missing",
        "action": "re-inject",
        "reasons": ["no key on the unit"],
        "rule": "keys",
    }
    noisy = {"link-check": outcome("link-check", intact=False), "key-status": missing}
    assert judge(rules, noisy).action == "replace-cable"  # before the keys: its rule comes first
    assert judge(rules, {}).action == "none"  # a step not run proves nothing


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ('any = ["nosuch.x == 1"]', "no step nosuch"),
        ('any = ["link-check.colour == 1"]', "no field colour"),
        ('any = ["link-check.intact = true"]', "not STEP.FIELD OP VALUE"),
        ('any = ["link-check.intact in true"]', "needs a list"),
        ('any = ["link-check.intact == maybe"]', "not a TOML value"),
        ('any = "link-check.intact == true"', "must be a list"),
        ('colour = "red"', "unknown key colour"),
    ],
)
def test_a_bad_rule_is_refused_with_its_line(rule: str, reason: str) -> None:
    from provisioning.verdicts import VerdictRulesError, parse_rules

    good = '[[rule]]\nname = "fine"\nverdict = "healthy"\naction = "none"\n\n'
    text = f'# rules\n\n{good}[[rule]]\nname = "x"\nverdict = "healthy"\naction = "none"\n{rule}\n'
    with pytest.raises(VerdictRulesError) as caught:
        parse_rules(text, "rules.toml", KNOWN)
    assert "rules.toml" in str(caught.value) and "line 8" in str(caught.value), str(caught.value)
    assert reason in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("field", "value"), [("action", "reboot"), ("verdict", "sunny")])
def test_an_unknown_action_or_verdict_is_refused(field: str, value: str) -> None:
    from provisioning.verdicts import VerdictRulesError, parse_rules

    rule = {"name": '"x"', "verdict": '"healthy"', "action": '"none"', field: f'"{value}"'}
    text = "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in rule.items())
    with pytest.raises(VerdictRulesError, match=value):
        parse_rules(text, "rules.toml", KNOWN)


def test_the_built_in_rules_load_and_name_every_action() -> None:
    from provisioning.diagnose_steps import rule_fields
    from provisioning.verdicts import ACTIONS, load_rules

    rules = load_rules(rule_fields())
    assert {r.action for r in rules} == set(ACTIONS)
    assert rules[-1].all == rules[-1].any == ()  # the last one catches everything: a healthy unit


def _client() -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(transport=SimpleNamespace(path="sim:test"), unit_name="DF2T00001")


@pytest.mark.parametrize(
    "reply",
    [
        b"\xff\xfe",
        b"[]",
        b'{"a": []}',
        b'{"a": {"boot": {"sha256": "00", "bytes": 1}}}',
        b'{"a": {"boot": {"sha256": "' + b"A" * 64 + b'", "bytes": 1}}}',
        b'{"a": {"boot": {"sha256": "' + b"a" * 64 + b'", "bytes": -1}}}',
        b'{"a": {"boot": {"sha256": "' + b"a" * 64 + b'", "bytes": true}}}',
        b'{"../x": {}}',
        b'{"a": {"Boot Image": null}}',
        b"[" * 100000,
    ],
)
def test_a_lying_unit_s_slot_hashes_are_a_typed_error(reply: bytes) -> None:
    from terminal.diagnostics import parse_slot_hashes
    from terminal.errors import MalformedReply

    with pytest.raises(MalformedReply) as caught:
        parse_slot_hashes(_client(), reply)
    assert "DF2T00001" in str(caught.value)


def test_slot_hashes_in_their_shape_are_read() -> None:
    from terminal.diagnostics import PartitionHash, parse_slot_hashes

    digest = "ab" * 32
    reply = f'{{"a": {{"boot": {{"sha256": "{digest}", "bytes": 4096}}, "system": null}}, "b": {{}}}}'.encode()
    assert parse_slot_hashes(_client(), reply) == {"a": {"boot": PartitionHash(digest, 4096), "system": None}, "b": {}}


@settings(suppress_health_check=[HealthCheck.too_slow])  # a loaded 2-core machine draws slowly: not the code's
@given(st.binary(max_size=512) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
).map(lambda value: json.dumps(value).encode()))  # fmt: skip
def test_whatever_a_unit_sends_as_slot_hashes_is_read_or_refused_typed(reply: bytes) -> None:
    from terminal.diagnostics import parse_slot_hashes
    from terminal.errors import MalformedReply

    try:
        hashes = parse_slot_hashes(_client(), reply)
    except MalformedReply:
        return
    assert all(isinstance(parts, dict) for parts in hashes.values())


def test_the_image_map_keeps_the_pieces_of_one_image_and_forgets_an_older_one(tmp_path: Path) -> None:
    from simulator.image_map import ImageMap

    images = ImageMap(tmp_path)
    images.record("system_b", [(0, 4096), (8192, 4096)])
    images.record("system_b", [(16384, 100)], new=False)  # the next piece of a re-sparsed image
    assert images.extents("system_b") == [(0, 4096), (8192, 4096), (16384, 100)]
    images.record("system_b", [(20480, 512)])  # a new image, though it starts beyond the old one's end
    assert images.extents("system_b") == [(20480, 512)]
    images.forget("system_b")
    assert images.extents("system_b") is None and images.extents("boot_a") is None
    (tmp_path / "images.json").write_text("{torn", encoding="utf-8")
    assert ImageMap(tmp_path).extents("system_b") is None  # a torn record claims nothing
