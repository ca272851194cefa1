"""``naiad demo --json`` end to end as a subprocess, as a script would run it: every field of its JSON checked,
every step of every recipe ok, nothing but the JSON on standard output, and nothing left running after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from console.demo_world import BDK_ID, DemoWorld

pytestmark = pytest.mark.slow(seconds=25)  # the whole demo on one unit: about 25 s

BULK = ["flash", "inject", "calibrate", "depth-quality", "register-inventory", "label"]
ONSITE = ["firmware-update", "field-check", "face-pay-check", "bind", "activate", "subsidy-enroll", "report"]
DEADLINE = 600


def demo_processes() -> set[int]:
    """Simulators and sandboxes of a demo still running (their command line names the demo's directory)."""
    found = set()
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("naiad-demo-" in part for part in process.info["cmdline"] or ()):
            found.add(process.info["pid"])
    return found


def check_step(step: dict[str, Any], recipe: str) -> None:
    assert isinstance(step["name"], str)
    assert step["ok"] is True, (recipe, step)
    assert isinstance(step["seconds"], int | float) and step["seconds"] >= 0
    assert isinstance(step["detail"], str)


@pytest.mark.timeout(DEADLINE)
def test_demo_json(tmp_path: Path) -> None:
    before = demo_processes()
    env = {**os.environ, "NAIAD_LANG": "en", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "demo", "--units", "1", "--calibration-views", "12", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    result = json.loads(done.stdout)  # standard output is the JSON and nothing else

    reports = Path(result["reports"])
    assert reports.is_dir() and reports.is_relative_to(tmp_path)
    assert result["ok"] is True
    [unit] = result["units"]
    assert isinstance(unit["serial"], str) and unit["serial"].startswith("DF2")
    assert unit["initial_key_id"].upper().startswith(BDK_ID.hex().upper())
    assert len(bytes.fromhex(unit["kcv"])) >= 3
    assert [r["name"] for r in unit["recipes"]] == ["distributor-bulk", "installer-onsite"]
    for recipe, names in zip(unit["recipes"], (BULK, ONSITE), strict=True):
        assert recipe["result"] == "succeeded", recipe
        assert [s["name"] for s in recipe["steps"]] == names
        for step in recipe["steps"]:
            check_step(step, recipe["name"])
    inject = next(s for s in unit["recipes"][0]["steps"] if s["name"] == "inject")
    assert inject["data"]["initial_key_id"] == unit["initial_key_id"] and inject["data"]["kcv"] == unit["kcv"]

    files = [p for p in reports.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".html", ".pdf", ".json", ".csv", ".png"}, files
    assert {p.name for p in reports.parent.iterdir()} == {"reports", "demo.log"}  # without --keep: reports and log
    assert demo_processes() <= before  # the simulator and the sandbox are gone


def test_world_cleans_up_when_setup_fails(tmp_path: Path) -> None:
    """A world whose set-up fails half way (a ledger it cannot open) stops the simulator it started and gives
    the process its directories back."""
    from simulator.control import SimControl
    from terminal.errors import NaiadError

    data_dir = os.environ.get("NAIAD_DATA_DIR")
    world = DemoWorld(tmp_path / "world", 1, ledger_url=f"sqlite:///{tmp_path / 'missing' / 'dir' / 'ledger.sqlite'}")
    with pytest.raises(NaiadError), world:
        pass
    assert not SimControl(tmp_path / "world" / "sim").running()
    assert os.environ.get("NAIAD_DATA_DIR") == data_dir
