"""The packaged app (build.spec, ``make package``) runs: its own simulator, devices, the console, the whole demo.

Skipped unless NAIAD_PACKAGED names the built folder (``make package-check`` sets it to dist/naiad).  Every
command runs the packaged programs, never the source tree, so a module or data file the bundle lacks shows
as a failure here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from console import __version__

PACKAGED = os.environ.get("NAIAD_PACKAGED", "")
pytestmark = pytest.mark.skipif(not PACKAGED, reason="set NAIAD_PACKAGED to the built folder (make package-check)")


def program(name: str = "naiad") -> str:
    path = Path(PACKAGED).resolve() / (name + (".exe" if os.name == "nt" else ""))
    assert path.is_file(), f"{path} is missing: build it with `make package`"
    return str(path)


def run(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the packaged ``naiad`` with ``args``; the environment is the test's (its own data directories)."""
    return subprocess.run(
        [program(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two simulated terminals started by the packaged ``naiad sim start`` (so the simulator runs from the bundle)."""
    state = tmp_path_factory.mktemp("packaged-sim")
    started = run("sim", "start", "--terminals", "2", "--state", str(state), "--detach", "--json", timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr + _log(state)
    try:
        yield state
    finally:
        stopped = run("sim", "stop", "--state", str(state), timeout=30)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def _log(state: Path) -> str:
    log = state / "sim.log"
    return log.read_text(errors="replace") if log.exists() else ""


def test_version_answers_in_both_languages() -> None:
    assert run("--version").stdout.strip() == f"naiad, version {__version__}"
    assert run("--lang", "zh_CN", "--version").stdout.strip() == f"naiad 版本 {__version__}"  # the bundled catalog


def test_devices_lists_the_simulated_units(sim_dir: Path) -> None:
    status = run("sim", "status", "--state", str(sim_dir), "--json")
    assert status.returncode == 0, status.stderr
    serials = {t["serial"] for t in json.loads(status.stdout)["terminals"]}
    assert len(serials) == 2

    listed = run("--sim", str(sim_dir), "devices", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    devices = json.loads(listed.stdout)["devices"]
    assert {d["serial"] for d in devices} == serials
    assert {d["model"] for d in devices} == {"df2", "frog-pro"}  # from the bundled model table
    assert all(d["mode"] == "run" and d["port"] for d in devices)


@pytest.mark.parametrize("name", ["naiad", "naiad-console"])
def test_console_opens_offscreen_and_closes_on_interrupt(sim_dir: Path, name: str) -> None:
    """Both programs open the console (Qt's offscreen platform from the bundle) and end cleanly on Ctrl+C."""
    args = [program(name), *(["console"] if name == "naiad" else []), "--sim", str(sim_dir)]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as console:
        try:
            console.wait(timeout=8)  # still running after 8 s: it got past every import and opened its window
        except subprocess.TimeoutExpired:
            console.send_signal(signal.SIGINT)  # the console closes its window on SIGINT and exits with 0
            output, _ = console.communicate(timeout=30)
        else:
            output, _ = console.communicate()
            pytest.fail(f"{name} console ended by itself with status {console.returncode}:\n{output}")
    assert console.returncode == 0, output
    assert not any(word in output for word in ("Traceback", "ImportError", "ModuleNotFoundError")), output


@pytest.mark.timeout(900)
def test_the_demo_runs_from_the_bundle(tmp_path: Path) -> None:
    """One unit through both recipes: the sandbox platform (uvicorn), the key ceremony, flashing, calibration
    (OpenCV), the face-pay check (onnxruntime, CenterFace, the liveness model, the photographs that texture the
    simulated face), the ledger's migrations (Alembic) and the reports (Jinja2, reportlab, segno)."""
    demo = run("demo", "--units", "1", "--calibration-views", "12", "--json", timeout=840, TMPDIR=str(tmp_path))
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    result = json.loads(demo.stdout)
    assert result["ok"] is True
    assert not result["report_errors"]
    (unit,) = result["units"]
    steps = {step["name"]: step["ok"] for recipe in unit["recipes"] for step in recipe["steps"]}
    assert steps["face-pay-check"] is True and all(steps.values()), steps
    reports = Path(result["reports"]) / unit["serial"]
    assert {p.suffix for p in reports.iterdir()} >= {".html", ".pdf", ".json", ".csv"}
