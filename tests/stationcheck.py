"""The station's reliability harness: ``naiad provision`` as a process of its own (killed with its whole process
group), a watch on the ledger's step rows to choose kill moments, and the exactly-once checks.

Used by tests/test_station_kill.py, tests/test_station_scaleout.py and bench/bench_station.py.  The checks
return a list of problems (empty: all good), so an assertion shows every one at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from enrollment.gateway import Method
from provisioning.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
NAIAD = (sys.executable, "-m", "console.cli")


@dataclass
class StationProcess:
    """One ``naiad`` process in a session (process group) of its own, its output in files."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    started: float
    _files: tuple[IO[bytes], IO[bytes]]

    @classmethod
    def start(cls, args: Sequence[str], env: Mapping[str, str], logs: Path, name: str) -> StationProcess:
        logs.mkdir(parents=True, exist_ok=True)
        out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
        out, err = out_path.open("wb"), err_path.open("wb")
        popen = subprocess.Popen(
            [*NAIAD, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            cwd=ROOT,
            start_new_session=True,
        )
        return cls(popen, out_path, err_path, time.monotonic(), (out, err))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group (the station and anything it started), then reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)
        self._close()

    def wait(self, timeout: float) -> int:
        """The exit status; a station still running after ``timeout`` seconds is killed and the test fails."""
        try:
            status = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the station did not finish within {timeout:.0f} s:\n{self.tail()}") from None
        self._close()
        return status

    def _close(self) -> None:
        for handle in self._files:
            handle.close()

    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, chars: int = 3000) -> str:
        err = self.err_path.read_text(encoding="utf-8", errors="replace")
        return f"stdout: {self.stdout()[-chars:]}\nstderr: {err[-chars:]}"

    def json(self) -> dict[str, Any]:
        """The document ``--json`` printed (the last line that parses as one JSON object)."""
        text = self.stdout().strip()
        with contextlib.suppress(ValueError):
            value = json.loads(text)
            if isinstance(value, dict):
                return value
        for line in reversed(text.splitlines()):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
        raise AssertionError(f"no JSON document in the station's output:\n{self.tail()}")


QUICK_BULK = """\
# distributor-bulk without its camera steps (calibrate, depth-quality): the reliability tests' recipe
name = "quick-bulk"
description = "Flash, key, register in the platform's inventory and label each unit"
read_only = false

[[step]]
name = "flash"
bundle = "{bundle}"

[[step]]
name = "inject"
bdk = "{bdk}"

[[step]]
name = "register-inventory"

[[step]]
name = "label"
formats = ["png"]
"""
QUICK_BULK_NAME = "quick-bulk"
QUICK_BULK_STEPS = ("flash", "inject", "register-inventory", "label")


def write_quick_bulk(path: Path, bundle: Path, bdk: str) -> Path:
    """:data:`QUICK_BULK` for ``bundle`` and the BDK labelled ``bdk``, written to ``path``."""
    path.write_text(QUICK_BULK.format(bundle=bundle, bdk=bdk), encoding="utf-8")
    return path


def naiad(args: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one short ``naiad`` command to its end."""
    return subprocess.run(
        [*NAIAD, *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Progress:
    """What the ledger's step rows of a recipe's runs show at one moment."""

    succeeded: int = 0
    """Step rows ``succeeded`` so far (a resumed step that is redone adds a row of its own)."""
    running: Counter[str] = field(default_factory=Counter)
    """Step name -> units where the latest row of that step is ``running``."""
    done: Counter[str] = field(default_factory=Counter)
    """Step name -> units where the latest row of that step is ``succeeded``."""


def progress(ledger: Ledger, serials: Iterable[str], recipe: str, since: dt.datetime | None = None) -> Progress:
    """The step rows of ``recipe`` over ``serials``: how many succeeded, which are running now.  With ``since``,
    a row still ``running`` counts only when it started since then (a killed station's rows stay ``running``
    until a later run of the unit closes them)."""
    seen = Progress()
    for serial in serials:
        latest: dict[str, str] = {}
        for step in ledger.unit_steps(serial):
            if step.recipe != recipe:
                continue
            stale = since is not None and step.status == "running" and step.started < since
            latest[step.name] = "stale" if stale else step.status
            if step.status == "succeeded":
                seen.succeeded += 1
        seen.running.update(name for name, status in latest.items() if status == "running")
        seen.done.update(name for name, status in latest.items() if status == "succeeded")
    return seen


# -- exactly once --------------------------------------------------------------------------------------------------


def resumed_steps(ledger: Ledger, serials: Iterable[str], recipe: str) -> Counter[str]:
    """Step name -> attempts a killed station left ``running`` that a later run closed: marked interrupted (and
    run again), or settled as done (a once-step that had finished before the kill)."""
    found: Counter[str] = Counter()
    for serial in serials:
        for step in ledger.unit_steps(serial):
            interrupted = step.status == "failed" and (step.error or {}).get("error") == "StepInterrupted"
            if step.recipe == recipe and (interrupted or step.already_done):
                found[step.name] += 1
    return found


def held_key_ids(sim_dir: Path, serial: str) -> list[str]:
    """The Initial Key IDs (hex, upper case) the simulated unit's secure element holds: the unit's own truth,
    read from its state directory (the simulator persists it like flash memory)."""
    path = sim_dir / "units" / serial / "secure_element.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [str(slot["initial_key_id"]).upper() for slot in data.get("keys", [])]


def succeeded_runs(ledger: Ledger, recipe: str) -> dict[str, list[Any]]:
    """Serial -> the unit's succeeded runs of ``recipe``."""
    found: dict[str, list[Any]] = {}
    for run in ledger.unit_runs():
        if run.recipe == recipe and run.status == "succeeded":
            found.setdefault(run.serial, []).append(run)
    return found


def provisioned_once_problems(
    ledger: Ledger,
    serials: Sequence[str],
    recipe: str,
    *,
    sim_dir: Path,
    platform_devices: Sequence[Mapping[str, Any]],
    supplier_id: str,
    registers: bool = True,
) -> list[str]:
    """Every way ``serials`` are not each provisioned exactly once by ``recipe``; empty when they are.

    - one succeeded run of the recipe per unit (none of another unit);
    - exactly one recorded injection per unit, no Initial Key ID on two units or recorded twice, the ID the unit
      holds is the one recorded for it (same KCV), nothing left ``allocated`` (unconfirmed), and an ID burnt
      (``failed``) only when no unit holds it;
    - the platform (its own ``/sandbox/devices`` view) lists each unit once, registered to our supplier, and the
      ledger queued and settled exactly one inventory registration per unit;
    - the ledger's reconciliation of the units is clean."""
    problems: list[str] = []
    wanted = set(serials)
    runs = succeeded_runs(ledger, recipe)
    for serial in serials:
        count = len(runs.get(serial, []))
        if count != 1:
            problems.append(f"{serial}: {count} succeeded runs of {recipe}")
    problems += [f"{serial}: a succeeded run but not one of ours" for serial in set(runs) - wanted]
    for serial in serials:
        left = [f"{s.name} (run {s.run_id})" for s in ledger.unit_steps(serial) if s.status == "running"]
        problems += [f"{serial}: step {name} left running" for name in left]

    injections = ledger.injections()
    per_unit = Counter(i.serial for i in injections)
    per_id = Counter(i.initial_key_id.hex().upper() for i in injections)
    problems += [f"{s}: {per_unit[s]} recorded injections" for s in serials if per_unit[s] != 1]
    problems += [f"Initial Key ID {k} recorded {n} times" for k, n in per_id.items() if n > 1]
    recorded = {i.serial: (i.initial_key_id.hex().upper(), i.kcv.hex().upper()) for i in injections}
    held = {serial: held_key_ids(sim_dir, serial) for serial in serials}
    holders: dict[str, list[str]] = {}
    for serial, ids in held.items():
        for key_id in ids:
            holders.setdefault(key_id, []).append(serial)
    problems += [f"Initial Key ID {k} held by {sorted(v)}" for k, v in holders.items() if len(v) > 1]
    for serial in serials:
        if serial in recorded and held[serial] != [recorded[serial][0]]:
            problems.append(f"{serial}: holds {held[serial]}, the ledger recorded {recorded[serial][0]}")
    for allocation in ledger.allocations():
        key_id = allocation.initial_key_id.hex().upper()
        if allocation.state == "allocated":
            problems.append(f"{allocation.serial}: Initial Key ID {key_id} left allocated (unconfirmed)")
        elif allocation.state == "failed" and key_id in holders:
            problems.append(f"Initial Key ID {key_id} burnt but held by {holders[key_id]}")
        elif allocation.state == "injected" and recorded.get(allocation.serial, ("",))[0] != key_id:
            problems.append(f"{allocation.serial}: Initial Key ID {key_id} injected but not the one recorded")

    if registers:
        listed = Counter(str(d["serial"]) for d in platform_devices)
        owners = {str(d["serial"]): d.get("inventory_owner") for d in platform_devices}
        for serial in serials:
            if listed[serial] != 1:
                problems.append(f"{serial}: listed {listed[serial]} times by the platform")
            elif owners[serial] != supplier_id:
                problems.append(f"{serial}: the platform has it registered to {owners[serial]!r}")
            entries = ledger.audit_entries(subject=f"device:{serial}")
            for action in ("platform.call.queued", "platform.call.done"):
                count = sum(
                    1 for e in entries if e.action == action and e.details.get("method") == Method.INVENTORY_REGISTER
                )
                if count != 1:
                    problems.append(f"{serial}: {count} inventory registrations {action.rsplit('.', 1)[1]}")

    reconciliation = ledger.reconcile(list(serials))
    if not reconciliation.ok or reconciliation.not_injected:
        problems.append(f"reconciliation: {reconciliation.verdict()}")
    return problems


def verify_problems(env: Mapping[str, str]) -> list[str]:
    """``naiad ledger verify`` over the world's ledger, as an operator would run it."""
    done = naiad(["ledger", "verify"], env)
    return [] if done.returncode == 0 else [f"naiad ledger verify: {done.returncode}: {done.stdout}{done.stderr}"]
