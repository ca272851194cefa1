"""The ``naiad`` command line against a running simulator, as a user or a script drives it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import i18n
from console.cli import cli


def naiad(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NAIAD_LANG": "en", **env}, catch_exceptions=False)


def test_sim_start_then_devices_lists_three_distinct_terminals(tmp_path: Path) -> None:
    state = tmp_path / "s"
    started = naiad("sim", "start", "--terminals", "3", "--state", str(state), "--detach")
    try:
        assert started.exit_code == 0, started.output
        listed = naiad("devices", "--json", NAIAD_SIM=str(state))
        assert listed.exit_code == 0, listed.output
        devices = json.loads(listed.output)["devices"]
        assert len(devices) == 3
        assert len({d["serial"] for d in devices}) == 3
        assert all({"serial", "model", "mode", "port", "path"} <= d.keys() for d in devices)
        assert all(d["mode"] == "run" and d["port"].startswith("/dev/") for d in devices)
        status = json.loads(naiad("sim", "status", "--state", str(state), "--json").output)
        assert {t["serial"] for t in status["terminals"]} == {d["serial"] for d in devices}
        assert all("fastboot_tcp_port" in t and "pty" in t for t in status["terminals"])
    finally:
        assert naiad("sim", "stop", "--state", str(state)).exit_code == 0
    # the state survives: the same serials come back, each having booted once more
    restarted = naiad("sim", "start", "--terminals", "3", "--state", str(state), "--detach", "--json")
    try:
        again = json.loads(restarted.output)["terminals"]
        assert {t["serial"] for t in again} == {d["serial"] for d in devices}
        assert all(t["boot_count"] == 2 for t in again)
    finally:
        naiad("sim", "stop", "--state", str(state))


def test_info_reboot_and_logs_are_recorded_in_the_ledger(sim: Any, tmp_path: Path) -> None:
    serial = sim.serials()[0]
    info = json.loads(naiad("info", serial, "--json").output)
    assert info["serial"] == serial and info["active_slot"] == "a"

    to_bootloader = naiad("reboot", serial, "--mode", "bootloader", "--json")
    assert to_bootloader.exit_code == 0, to_bootloader.output
    assert json.loads(to_bootloader.output)["device"]["mode"] == "bootloader"
    assert sim.terminal(serial)["fastboot_tcp_port"]
    back = naiad("reboot", serial, "--mode", "run")
    assert back.exit_code == 0, back.output
    assert "back in run mode" in back.output

    logs = naiad("logs", serial)
    assert "into bootloader mode" in logs.output and "boot #3 into run mode" in logs.output

    database = sqlite3.connect(tmp_path / "data" / "ledger.sqlite")
    kinds = database.execute("select kind, status from operations").fetchall()
    assert kinds == [("reboot", "succeeded"), ("reboot", "succeeded")]
    verified = naiad("ledger", "verify", "--json")
    assert json.loads(verified.output)["ok"] is True


def test_a_tampered_audit_trail_fails_verification(sim: Any, tmp_path: Path) -> None:
    naiad("devices")
    database = tmp_path / "data" / "ledger.sqlite"
    with sqlite3.connect(database) as db:
        db.execute('update audit_log set details = \'{"model": "forged"}\' where id = 1')
    result = naiad("ledger", "verify")
    assert result.exit_code == 1
    assert "broken at entry 1" in result.output


def test_an_unknown_unit_is_a_translated_error_with_a_remedy(sim: Any) -> None:
    english = naiad("info", "NOPE")
    assert english.exit_code == 1
    assert "No attached unit with serial NOPE" in english.output
    assert "naiad devices" in english.output
    chinese = naiad("--lang", "zh_CN", "info", "NOPE")
    assert chinese.exit_code == 1
    assert "NOPE" in chinese.output and "No attached unit" not in chinese.output
    as_json = json.loads(naiad("info", "NOPE", "--json").output)
    assert as_json["error"] == "DeviceNotFound" and as_json["remedy"]


def test_doctor_reports_each_check(sim: Any) -> None:
    result = naiad("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(result.output)["checks"]}
    assert checks["USB backend"]["status"] == "ok"
    assert checks["Ledger"]["status"] == "ok"
    assert checks["USB permissions"]["detail"] == "1 units readable"
    assert all(c["status"] == "ok" or c["remedy"] for c in checks.values())


def test_sim_commands_need_a_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAIAD_SIM", raising=False)
    result = CliRunner().invoke(cli, ["sim", "status"], env={"NAIAD_SIM": None})
    assert result.exit_code == 2 and "--state" in result.output


def test_devices_watch_reports_unplug_and_replug(sim: Any) -> None:
    import threading

    from console.composition import Wiring

    serial = sim.serials()[0]
    stop = threading.Event()
    events = []
    station = Wiring.resolve().station()
    for event in station.discovery.watch(stop):
        events.append((event.kind, event.device.serial))
        if len(events) == 1:
            sim.call("unplug", serial=serial)
        elif len(events) == 2:
            sim.call("replug", serial=serial)
        else:
            stop.set()
    assert events == [("added", serial), ("removed", serial), ("added", serial)]


def test_fastboot_reaches_a_unit_in_bootloader_by_its_serial(sim: Any) -> None:
    serial = sim.serials()[0]
    assert naiad("reboot", serial, "--mode", "bootloader").exit_code == 0
    slot = naiad("fastboot", serial, "--json", "getvar", "current-slot")
    assert slot.exit_code == 0, slot.output
    assert json.loads(slot.output) == {"current-slot": "a"}
    digest = naiad("fastboot", serial, "oem", "sha256", "boot_a", "0", "4096")
    assert digest.exit_code == 0, digest.output
    assert "sha256" in digest.output
    assert naiad("fastboot", serial, "reboot").exit_code == 0
    from console.composition import Wiring

    with Wiring.resolve().station() as station:
        assert station.wait_for(serial, "run").mode == "run"


def test_help_follows_the_language_option() -> None:
    chinese = naiad("--lang", "zh_CN", "--help")
    assert chinese.exit_code == 0
    assert "Naiad brings face-payment terminals" not in chinese.output
    assert (
        i18n.translate("Naiad brings face-payment terminals from the shelf to taking payments.", "zh_CN")
        in chinese.output
    )
