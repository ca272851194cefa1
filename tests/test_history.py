"""A unit's history from the ledger: everything about that unit, nothing about another, no face token or key."""

from __future__ import annotations

import json
from pathlib import Path

from keybench import BDK_LABEL, OPERATOR, prepare_ledger

from provisioning.history import unit_history
from provisioning.ledger import Ledger

UNIT, OTHER = "DF2A00001", "DF2A00002"
TOKEN = "ftoken-0123456789abcdef"


def provisioned_ledger(path: Path) -> Ledger:
    """A ledger where UNIT was flashed, keyed, calibrated, checked and bound, and OTHER was flashed."""
    ledger = Ledger.open(f"sqlite:///{path}", station="bench-1")
    prepare_ledger(ledger)
    root, otto = ledger.as_operator("root"), ledger.as_operator(OPERATOR.operator)
    root.inventory_add([UNIT, OTHER], "PO-1")
    for serial in (UNIT, OTHER):
        ledger.device_seen(serial, "df2", "1-1.3")
        with otto.operation(serial, "flash") as op:
            op.result = {"version": "2.0.0", "slot": "b"}
    key_id = otto.allocate_initial_key_id(BDK_LABEL, UNIT)
    otto.record_injection(UNIT, key_id, bytes.fromhex("A1B2C3D4E5"), "7f01")
    otto.record_calibration(UNIT, "ab" * 32, {"rms_px": 0.21})
    otto.record_camera_check(UNIT, "field-check", False, {"misalignment_px": 3.2}, "recalibrate", calibration="ab" * 32)
    otto.add_platform_call("bind", "REQ-1", {"serial": UNIT, "ftoken": TOKEN, "merchant_id": "M1"}, UNIT)
    otto.settle_platform_call("REQ-1", "done", reply={"status": "bound", "ftoken": TOKEN})
    return ledger


def test_a_unit_s_history_holds_what_was_done_to_it_and_nothing_else(tmp_path: Path) -> None:
    with provisioned_ledger(tmp_path / "ledger.db") as ledger:
        history = unit_history(ledger, UNIT)
        other = unit_history(ledger, OTHER)
    assert history.known and history.device is not None and history.device.model == "df2"
    assert [(o["kind"], o["status"]) for o in history.operations] == [("flash", "succeeded")]
    [injection] = history.injections
    assert injection["kcv"] == "A1B2C3" and injection["bdk_label"] == BDK_LABEL  # keys.kcv.shown, as the reports
    assert [c["checksum"] for c in history.calibrations] == ["ab" * 32]
    assert [(c["kind"], c["verdict"]) for c in history.camera_checks] == [("field-check", "recalibrate")]
    [call] = history.platform_calls
    assert call["method"] == "bind" and call["state"] == "done" and call["biz"]["merchant_id"] == "M1"
    text = json.dumps(history.as_dict())
    assert TOKEN not in text and "ftoken" not in text  # the face token is left out, wherever it was
    assert "A1B2C3" in text and OTHER not in text
    actions = {a["action"] for a in history.audit}
    assert {"keys.injected", "camera.calibrated", "camera.checked", "platform.call.done"} <= actions
    kinds = [e.kind for e in history.timeline()]
    assert {"operation", "injection", "calibration", "camera-check", "platform-call", "audit"} <= set(kinds)
    brief = [(e.kind, e.what) for e in history.timeline(brief=True)]
    assert ("audit", "device.seen") in brief and ("audit", "keys.injected") not in brief  # its own row says it
    assert any(kind == "injection" and what.endswith("KCV A1B2C3") for kind, what in brief), brief
    times = [e.at for e in history.timeline() if e.at is not None]
    assert times == sorted(times)
    assert other.injections == [] and other.calibrations == [] and len(other.operations) == 1


def test_history_times_are_china_time_with_the_offset_like_the_reports() -> None:
    import datetime as dt

    from provisioning.history import china_time

    at = dt.datetime(2026, 11, 30, 14, 18, 8)  # the ledger's naive UTC
    assert china_time(at) == "2026-11-30 22:18:08 UTC+08:00"
    assert china_time(at.replace(tzinfo=dt.UTC)) == china_time(at) and china_time(None) is None


def test_an_unknown_unit_has_an_empty_history(tmp_path: Path) -> None:
    with provisioned_ledger(tmp_path / "ledger.db") as ledger:
        history = unit_history(ledger, "DF2Z99999")
    assert not history.known and history.timeline() == []
    assert history.as_dict()["device"] is None
