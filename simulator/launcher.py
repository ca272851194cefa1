"""Start, stop and query a simulator process from the station side (``naiad sim ...``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.models import RUN

from .control import SimControl, SimulatorNotRunning

START_TIMEOUT = 30.0


class SimulatorStartFailed(NaiadError):
    message = N_("The simulator in {state} did not come up: {detail}")
    remedy = N_("Read {state}/sim.log for the cause.")


class SimulatorAlreadyRunning(SimulatorStartFailed):
    message = N_("A simulator is already running in {state}")
    remedy = N_("Use it, stop it first with 'naiad sim stop --state {state}', or choose another state directory.")


def start_detached(
    state_dir: str | Path,
    terminals: int,
    models: list[str] | None = None,
    faults: dict[str, float] | None = None,
    timeout: float = START_TIMEOUT,
) -> dict[str, Any]:
    """Start a simulator in the background; return its status once every terminal answers.

    The simulator powers its units on (each run-mode unit's link already serving its pty) before it
    opens the control channel, so the first status that lists a pty for every run-mode unit means they
    all answer: no management session (the host's client) is needed to find out.
    """
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    control = SimControl(state)
    if control.running():
        raise SimulatorAlreadyRunning(state=str(state))
    (state / "sim.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "simulator", "--state", str(state), "--terminals", str(terminals)]
    for model in models or []:
        argv += ["--model", model]
    for name, value in (faults or {}).items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    with (state / "sim.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SimulatorStartFailed(
                state=str(state), detail=_("it exited with status {status}", status=process.returncode)
            )
        try:
            status: dict[str, Any] = control.call("status")
        except SimulatorNotRunning:
            time.sleep(0.05)
            continue
        pending = [t for t in status["terminals"] if t["mode"] == RUN and not t["pty"]]
        if not pending:
            return status
        time.sleep(0.05)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    raise SimulatorStartFailed(
        state=str(state), detail=_("its terminals were not ready within {seconds} s", seconds=timeout)
    )


def status(state_dir: str | Path) -> dict[str, Any]:
    result: dict[str, Any] = SimControl(state_dir).call("status")
    return result


def stop(state_dir: str | Path, timeout: float = 15.0) -> None:
    """Stop the simulator gracefully; kill it if it does not go."""
    control = SimControl(state_dir)
    pid = int(control.call("status")["pid"])
    control.call("stop")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
