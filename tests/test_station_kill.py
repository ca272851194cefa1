"""The station killed with SIGKILL at 20 moments of a bulk run of 8 units, restarted each time, then run to its end.

The recipe is ``distributor-bulk`` without its camera steps (tests/stationcheck.py's ``quick-bulk``: flash, inject,
register-inventory, label): 8 calibrations of 16 views at once took about 100 s on this machine's 2 cores, and a
kill during them starts every unit's calibration again, so 20 kills over the full recipe cannot fit the suite's
time budget.  The camera steps are repeatable steps like flash, whose resume after a kill this test does cover.

The station runs two units at a time (``--workers 2``), so a kill cuts one or two units, and the kills spread over
the whole run: kill i waits for a step row of this station's own (the ledger's step rows say what runs), of the
steps in the recipe's order in turn -- a flash write, a key injection, an inventory registration, a label -- then
a seeded random delay (short for the once-steps, so the kill lands inside them), then SIGKILL to the station's
process group; every fifth kill comes at a random moment from the station's start instead (start-up, claims,
resumption).  Every unit must end provisioned exactly once (tests/stationcheck.py says what that means: one
succeeded run, one recorded injection and the key the unit holds, no ID burnt that a unit holds, no attempt left
running, one inventory registration on the platform's own view), and ``naiad ledger verify`` must pass.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from stationcheck import (
    QUICK_BULK_NAME,
    Progress,
    StationProcess,
    progress,
    provisioned_once_problems,
    resumed_steps,
    verify_problems,
    write_quick_bulk,
)

pytestmark = pytest.mark.slow(seconds=75)  # 20 SIGKILLs over a bulk run of 8 units: about 75 s

UNITS = 8
KILLS = 20
SEED = 11
WORKERS = 2
"""Units at a time: the run then lasts long enough for 20 kills spread over it, each cutting one or two units."""
FIRMWARE_MIB = 16
BANDWIDTH_MBPS = 6.0
"""The simulated links' cap (10^6 bytes/s): each flash write then takes at least 2.8 s however fast the machine, so
the batch still has work left for all 20 kills when the station restarts quickly (uncapped, a fast run once ended
before kill 13)."""
RECIPE = QUICK_BULK_NAME
TARGETS = ("flash", "inject", "register-inventory", "label", None)
"""What kill i waits for, in turn: a step running on some unit (None: a moment after the station's start)."""
GRACE_S = 3.0
"""How long after this station's first step row a kill waits for its own step before any running step will do."""
GIVE_UP_S = 30.0
"""A kill whose moment does not come within this time after the station's start fires anyway."""
POLL_S = 0.05
DEADLINE_S = 420.0


@dataclass(frozen=True)
class Kill:
    step: str | None
    delay: float
    """Seconds from the step seen running to the SIGKILL (for ``step`` None: from the station's start)."""


def plan(seed: int) -> list[Kill]:
    """The kills: targets in the recipe's order in turn, each with a seeded random delay."""
    rng = random.Random(seed)
    delays = {"flash": (0.05, 0.8), "inject": (0.0, 0.05), "register-inventory": (0.0, 0.02), "label": (0.0, 0.02)}
    kills = []
    for i in range(KILLS):
        step = TARGETS[i % len(TARGETS)]
        low, high = delays[step] if step is not None else (0.3, 4.0)
        kills.append(Kill(step, rng.uniform(low, high)))
    return kills


def moment(now: Progress, kill: Kill, alive: float, working: float | None) -> bool:
    """Whether ``kill`` fires now, the station ``alive`` seconds after its start and ``working`` seconds after its
    first step row (None: none yet)."""
    if kill.step is None:
        return alive >= kill.delay
    if now.running[kill.step] > 0 or alive > GIVE_UP_S:
        return True
    return working is not None and working > GRACE_S and sum(now.running.values()) > 0


@pytest.mark.timeout(600)
def test_twenty_kills_during_a_bulk_run_leave_every_unit_provisioned_exactly_once(tmp_path: Path) -> None:
    from console.demo_world import DemoWorld

    with DemoWorld(tmp_path / "world", UNITS, firmware_mib=FIRMWARE_MIB, bandwidth_mbps=BANDWIDTH_MBPS) as world:
        env = world.env()
        serials = world.serials
        recipe = write_quick_bulk(tmp_path / "quick-bulk.toml", world.bundle_path, world.bdk_label)
        args = ["provision", "--recipe", str(recipe), "--all", "--json", "--workers", str(WORKERS)]
        started = time.monotonic()
        landed: list[tuple[Kill, dict[str, int]]] = []
        stations: list[StationProcess] = []
        try:
            with world.ledger("watch") as ledger:
                for n, kill in enumerate(plan(SEED)):
                    station = StationProcess.start(args, env, tmp_path / "logs", f"run-{n:02d}")
                    stations.append(station)
                    born, working, now = dt.datetime.now(dt.UTC), None, Progress()
                    while station.running():
                        alive = time.monotonic() - station.started
                        assert time.monotonic() - started < DEADLINE_S, f"kill {n} never fired:\n{station.tail()}"
                        now = progress(ledger, serials, RECIPE, born)
                        if working is None and now.running:
                            working = time.monotonic()
                        if moment(now, kill, alive, None if working is None else time.monotonic() - working):
                            break
                        time.sleep(POLL_S)
                    if kill.step is not None:
                        time.sleep(kill.delay)
                    if not station.running():  # it finished first: the batch is done, the kills are over
                        assert station.wait(10) == 0, station.tail()
                        pytest.fail(
                            f"the batch ended before kill {n} of {KILLS}: give the units more work\n{station.tail()}"
                        )
                    station.kill()
                    landed.append((kill, dict(now.running)))
                last = StationProcess.start(args, env, tmp_path / "logs", "final")
                stations.append(last)
                status = last.wait(DEADLINE_S - (time.monotonic() - started) + 60)
                assert status == 0, last.tail()
                result = last.json()
                problems = provisioned_once_problems(
                    ledger,
                    serials,
                    RECIPE,
                    sim_dir=world.sim_dir,
                    platform_devices=world.platform_view("devices"),
                    supplier_id=world.supplier_id,
                )
                resumed = resumed_steps(ledger, serials, RECIPE)
        finally:  # a failed assertion leaves no station behind
            for station in stations:
                if station.running():
                    station.kill()
        assert problems == []
        assert verify_problems(env) == []
        # The last run found every unit's run done or finished it; none failed.
        assert {u["result"] for u in result["units"]} <= {"succeeded", "already-done"}
        # The kills cut flash writes, key injections and registrations: the ledger shows attempts left running
        # that a restarted station closed (interrupted and run again, or settled as done).
        assert {"flash", "inject", "register-inventory"} <= set(resumed), (resumed, landed)
        print(f"\n{KILLS} kills in {time.monotonic() - started:.0f} s; attempts resumed per step: {dict(resumed)}")
        for kill, running in landed:
            print(f"  waiting for {kill.step}, then {kill.delay:.2f} s: killed while running {running}")
