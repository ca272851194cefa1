"""The station killed with SIGKILL at 20 moments of a bulk run of 8 units, restarted each time, then run to its end.

Each kill is planned before the run from a seeded random generator: after at least N steps of the batch have
succeeded (N spread over the whole run), wait until a chosen step is running on some unit (flash, key injection,
calibration, inventory registration, or whatever runs: the ledger's step rows say), then a random delay, then
SIGKILL to the station's process group.  Every unit must end provisioned exactly once (tests/stationcheck.py says
what that means: one succeeded run, one recorded injection and the key the unit holds, no ID burnt that a unit
holds, one inventory registration on the platform's own view), and ``naiad ledger verify`` must pass.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from stationcheck import Progress, StationProcess, progress, provisioned_once_problems, verify_problems

UNITS = 8
KILLS = 20
SEED = 11
RECIPE = "distributor-bulk"
STEPS = ("flash", "inject", "calibrate", "depth-quality", "register-inventory", "label")
TARGETS = ("flash", "inject", "register-inventory", "calibrate", None)
"""What a kill waits for: a step running on some unit (None: any moment)."""
GIVE_UP_S = 20.0
"""A kill whose step does not show within this time after its threshold fires anyway."""
POLL_S = 0.02
DEADLINE_S = 420.0


@dataclass(frozen=True)
class Kill:
    after: int
    """Succeeded step rows of the batch before this kill may fire."""
    step: str | None
    delay: float
    """Seconds from the moment seen to the SIGKILL."""


def plan(seed: int, total_steps: int) -> list[Kill]:
    """The kills: thresholds spread over the run, targets cycling through the steps (those that must not repeat
    among them), each with a random delay."""
    rng = random.Random(seed)
    thresholds = sorted(rng.randrange(0, max(1, total_steps - 2)) for _ in range(KILLS))
    kills = []
    for i, after in enumerate(thresholds):
        step = TARGETS[i % len(TARGETS)]
        # A OnceStep is short (a few round trips): kill within it; a long step anywhere in its length.
        delay = rng.uniform(0.0, 0.05) if step in ("inject", "register-inventory") else rng.uniform(0.0, 1.5)
        kills.append(Kill(after, step, delay))
    return kills


def moment(now: Progress, kill: Kill, waited: float) -> bool:
    """Whether ``kill`` fires now: its threshold passed, and its step runs on some unit (or no unit has it left
    to do, or it did not show for :data:`GIVE_UP_S`)."""
    if now.succeeded < kill.after:
        return False
    step = kill.step
    return step is None or now.running[step] > 0 or now.done[step] >= UNITS or waited > GIVE_UP_S


@pytest.mark.timeout(600)
def test_twenty_kills_during_a_bulk_run_leave_every_unit_provisioned_exactly_once(tmp_path: Path) -> None:
    from console.demo_world import DemoWorld

    with DemoWorld(tmp_path / "world", UNITS, firmware_mib=2, calibration_views=16) as world:
        env = world.env()
        serials = world.serials
        args = ["provision", "--recipe", RECIPE, "--all", "--json", *world.set_args(RECIPE)]
        started = time.monotonic()
        landed: list[tuple[Kill, dict[str, int]]] = []
        with world.ledger("watch") as ledger:
            for n, kill in enumerate(plan(SEED, UNITS * len(STEPS))):
                station = StationProcess.start(args, env, tmp_path / "logs", f"run-{n:02d}")
                since, now = time.monotonic(), Progress()
                while station.running():
                    assert time.monotonic() - started < DEADLINE_S, f"kill {n} never fired:\n{station.tail()}"
                    now = progress(ledger, serials, RECIPE)
                    if moment(now, kill, time.monotonic() - since):
                        break
                    time.sleep(POLL_S)
                time.sleep(kill.delay)
                if not station.running():  # it finished first: the batch is done, the kills are over
                    assert station.wait(10) == 0, station.tail()
                    pytest.fail(f"the batch ended before kill {n} of {KILLS}: plan more steps per kill")
                station.kill()
                landed.append((kill, dict(now.running)))
            last = StationProcess.start(args, env, tmp_path / "logs", "final")
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
        assert problems == []
        assert verify_problems(env) == []
        # The last run found every unit's run done or finished it; none failed.
        assert {u["result"] for u in result["units"]} <= {"succeeded", "already-done"}
        hit = {step for _, running in landed for step, units in running.items() if units}
        assert {"flash", "inject", "register-inventory"} <= hit, landed
