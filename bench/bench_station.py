"""Station benchmark: units per hour of ``distributor-bulk``, the share of time per step, and ``installer-onsite``'s
wall time for one unit with a 64 MiB update.

    .venv/bin/python bench/bench_station.py [--units 8,16] [--firmware-mib 64] [--bandwidth-mbps 40] [--views 40]

For each ``--units`` count, a fresh demo world (console/demo_world.py: the simulator with that many units, every
link capped at ``--bandwidth-mbps`` 10^6 bytes/s by the simulator's fault, the sandbox platform, a software key
store after a demo ceremony, the operator's account, a signed bundle of ``--firmware-mib`` MiB, the units in the
inventory), then ``naiad provision --recipe distributor-bulk --all --json`` as a process of its own, as an
operator runs it: full calibration (``--views`` poses), depth quality, inventory registration, label.

- units per hour: units provisioned / the command's wall time (start-up and batch report included) x 3600;
- share per step: each step's seconds (from the step outcomes) summed over the units, over all steps' seconds;
  steps of different units overlap, so the shares say where the units wait, not where the CPU goes;
- peak memory of the station process: its ``ru_maxrss`` from ``wait4``.

Then ``installer-onsite`` on one unit of a world of one: the unit is first provisioned (``distributor-bulk`` with a
small bundle), then a 64 MiB bundle of a newer version is the site's update; the simulator presents the face for
the face-pay check, so no person's action is in the time (goal: under 3 minutes).

The 1-minute load average is sampled every 5 s during each run (mean and highest printed).  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):  # run as a script from anywhere; the station harness lives with the tests
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from stationcheck import NAIAD  # noqa: E402

from console.demo_world import DemoWorld  # noqa: E402

ONSITE_GOAL_S = 180.0
STEP_ORDER = ("flash", "inject", "calibrate", "depth-quality", "register-inventory", "label")


@dataclass
class Timed:
    """One ``naiad`` run: its wall time, peak RSS, exit status and ``--json`` document."""

    seconds: float
    max_rss_mib: float
    status: int
    document: dict[str, Any]
    load: tuple[float, float]
    """1-minute load average: mean and highest, sampled every 5 s while it ran."""


def timed_naiad(args: Sequence[str], env: Mapping[str, str], out: Path) -> Timed:
    """Run ``naiad ARGS`` to its end as its own process; its peak RSS from ``wait4``'s resource usage."""
    import json

    samples = [os.getloadavg()[0]]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with out.open("wb") as stdout, (out.with_suffix(".err")).open("wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen([*NAIAD, *args], env={**os.environ, **env}, cwd=ROOT, stdout=stdout, stderr=stderr)
        _, wait_status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    text = out.read_text(encoding="utf-8", errors="replace").strip()
    document: dict[str, Any] = {}
    for candidate in (text, *reversed(text.splitlines())):  # the whole output, else its last JSON line
        try:
            found = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(found, dict):
            document = found
            break
    if process.returncode != 0 or not document.get("units"):
        sys.stderr.write(f"naiad {' '.join(args[:3])}: exit {process.returncode}\n{text[-2000:]}\n")
        sys.stderr.write(out.with_suffix(".err").read_text(encoding="utf-8", errors="replace")[-3000:])
    return Timed(
        seconds, usage.ru_maxrss / 1024, process.returncode, document, (sum(samples) / len(samples), max(samples))
    )


def step_shares(units: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Step name -> (seconds summed over the units, share of all steps' seconds)."""
    totals: dict[str, float] = defaultdict(float)
    for unit in units:
        for step in unit["steps"]:
            totals[step["name"]] += float(step["seconds"])
    whole = sum(totals.values()) or 1.0
    return {name: (seconds, seconds / whole) for name, seconds in totals.items()}


def bulk(units: int, args: argparse.Namespace, where: Path) -> tuple[Timed, int]:
    with DemoWorld(
        where / f"bulk-{units}",
        units,
        firmware_mib=args.firmware_mib,
        bandwidth_mbps=args.bandwidth_mbps,
        calibration_views=args.views,
    ) as world:
        command = ["provision", "--recipe", "distributor-bulk", "--all", "--json", *world.set_args("distributor-bulk")]
        run = timed_naiad(command, world.env(), where / f"bulk-{units}.out")
    done = sum(1 for u in run.document.get("units", []) if u.get("result") == "succeeded")
    return run, done


def onsite(args: argparse.Namespace, where: Path) -> Timed:
    world = DemoWorld(where / "onsite", 1, firmware_mib=1, bandwidth_mbps=args.bandwidth_mbps, calibration_views=16)
    with world:
        env = world.env()
        command = ["provision", "--recipe", "distributor-bulk", "--all", "--json", *world.set_args("distributor-bulk")]
        first = timed_naiad(command, env, where / "onsite-bulk.out")
        if first.status != 0:
            raise SystemExit("distributor-bulk failed before the on-site run; see above")
        update = world.update_bundle(args.firmware_mib)
        merchant = world.platform.test_merchant if world.platform is not None else None
        command = ["provision", "--recipe", "installer-onsite", "--all", "--json"]
        command += ["--set", f"firmware-update.bundle={update}"]
        if merchant is not None:
            command += ["--merchant", merchant.merchant_id, "--store", merchant.store_id]
        return timed_naiad(command, world.env("installer"), where / "onsite.out")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="8,16", help="unit counts to run distributor-bulk on (default 8,16)")
    parser.add_argument("--firmware-mib", type=int, default=64, help="firmware bundle size, MiB (default 64)")
    parser.add_argument("--bandwidth-mbps", type=float, default=40.0, help="link cap, 10^6 B/s (default 40)")
    parser.add_argument("--views", type=int, default=40, help="calibration poses (default 40: full calibration)")
    parser.add_argument("--skip-onsite", action="store_true", help="measure distributor-bulk only")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.units.split(",") if n]
    print(
        f"distributor-bulk: {args.firmware_mib} MiB firmware, links capped at {args.bandwidth_mbps:g} MB/s, "
        f"{args.views} calibration views; {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="naiad-bench-station-") as folder:
        where = Path(folder)
        for units in counts:
            run, done = bulk(units, args, where)
            rate = done / run.seconds * 3600 if run.seconds else 0.0
            print(
                f"\n{units} units: {done} provisioned in {run.seconds:.1f} s = {rate:.1f} units/hour "
                f"(exit {run.status}); station peak RSS {run.max_rss_mib:.0f} MiB; "
                f"load average {run.load[0]:.1f} (mean), {run.load[1]:.1f} (highest) while it ran"
            )
            shares = step_shares(run.document.get("units", []))
            print(f"  {'step':20s} {'s (sum)':>9s} {'s/unit':>8s} {'share':>7s}")
            for name in sorted(shares, key=lambda n: STEP_ORDER.index(n) if n in STEP_ORDER else len(STEP_ORDER)):
                seconds, share = shares[name]
                print(f"  {name:20s} {seconds:9.1f} {seconds / units:8.1f} {100 * share:6.1f}%")
        if not args.skip_onsite:
            run = onsite(args, where)
            units = run.document.get("units", [])
            result = units[0]["result"] if units else "none"
            verdict = "within" if run.seconds < ONSITE_GOAL_S else "OVER"
            print(
                f"\ninstaller-onsite, one unit, {args.firmware_mib} MiB update: {run.seconds:.1f} s ({result}; "
                f"{verdict} the {ONSITE_GOAL_S:.0f} s goal); station peak RSS {run.max_rss_mib:.0f} MiB; "
                f"load average {run.load[0]:.1f} (mean), {run.load[1]:.1f} (highest) while it ran"
            )
            for name, (seconds, _share) in step_shares(units).items():
                print(f"  {name:20s} {seconds:7.1f} s")
    print(f"\nload average now: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
