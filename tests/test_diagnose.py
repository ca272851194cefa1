"""support-diagnose on a simulated unit: each simulator fault leads to its own verdict, and the diagnosis changes
nothing on the unit (INFO, key status, slots, calibration blob read before and after are the same).

One provisioned unit for the module (a small bundle flashed, keys injected, a calibration stored); each test puts
its fault on it and takes it off again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from diagnosebench import Provisioned, provisioned_unit
from hypothesis import given
from hypothesis import strategies as st

from provisioning.diagnose_steps import DIAGNOSE_STEPS, FirmwareSlots, VerdictStep
from provisioning.steps import REQUIRED, Step, StepOutcome, UnitJob, step_class


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    with provisioned_unit(tmp_path_factory.mktemp("diagnose")) as provisioned:
        yield provisioned


@pytest.fixture
def provisioned(unit: Provisioned, monkeypatch: pytest.MonkeyPatch) -> Provisioned:
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(unit.config_dir))  # the bundle's release key is trusted there
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
        ({"ber": 1.5e-6}, "replace-cable", "noisy-link", ("link-check", "intact", True)),
        ({"drop": 1.5e-5}, "replace-cable", "noisy-link", ("link-check", "intact", True)),
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
