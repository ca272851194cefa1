"""Merchant platform benchmark: the station enrolling units at the sandbox platform on loopback.

    .venv/bin/python bench/bench_platform.py [--single 200] [--units 100] [--workers 4] [--backoff 0.25]

Starts a sandbox (:class:`enrollment.sandbox.server.Sandbox`, HTTPS on 127.0.0.1) in a temporary directory and a
station against it, the real one end to end (tests/platformbench.py): its RSA key in a software key store (every
request signed there), the platform client, the outbox in a SQLite ledger and the flows.  It prints:

- inventory registrations per second: ``--single`` units registered one per call, then the same number in
  calls of 100 (the platform's batch limit), one call at a time;
- the time for a batch of ``--units`` units: their inventory registration (calls of 100), then bind, activate and
  subsidy enrollment of each unit, ``--workers`` units at once;
- the same batch through issue 9's fault knobs (30 % HTTP 503, 20 % of replies dropped after commit, 2 s latency
  spikes on 3 % of requests, seeded), with the client's retries (``--backoff`` base, at most 4 s) and the
  outbox sending again what is still pending; the client's retries are counted.

The sandbox and the station share this process (the sandbox serves from a thread), as in the tests, so both
compete for the same cores; the load average is printed.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):  # run as a script from anywhere; the station bench lives with the tests
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from platformbench import FAULTS, OPERATOR, PlatformBench, Rounds, units  # noqa: E402

from enrollment.sandbox.server import Faults, Sandbox  # noqa: E402
from provisioning.registration import register_inventory  # noqa: E402


class _Retries(logging.Handler):
    """Counts the client's retries (it logs each one) by what failed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO and "attempt" in record.getMessage():
            self.count += 1


def _registrations(bench: PlatformBench, prefix: str, count: int, batch_size: int) -> tuple[float, float]:
    """Units registered per second, and CPU milliseconds per call (station and sandbox: this one process)."""
    batch = units(prefix, count)
    started, cpu = time.perf_counter(), time.process_time()
    results = register_inventory(bench.outbox, bench.config.supplier_id, batch, session=OPERATOR, batch_size=batch_size)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not all(r.ok for r in results):
        raise SystemExit(f"registration failed: {next(r for r in results if not r.ok).error}")
    return count / seconds, 1000 * cpu / -(-count // batch_size)


def _batch(bench: PlatformBench, prefix: str, count: int, workers: int) -> Rounds:
    return bench.enroll(units(prefix, count), workers=workers)


def _show(title: str, rounds: Rounds, count: int, retries: int | None = None) -> None:
    total = rounds.inventory_seconds + rounds.live_seconds
    calls = 3 * count + -(-count // 100)
    print(f"{title}:")
    print(f"  inventory registration   {rounds.inventory_seconds:7.2f} s   (rounds: {rounds.inventory})")
    print(
        f"  bind+activate+enroll     {rounds.live_seconds:7.2f} s   (rounds: {rounds.live}; "
        f"{3 * count / rounds.live_seconds:.1f} calls/s)"
    )
    print(f"  whole batch              {total:7.2f} s   ({calls} calls, {count / total * 60:.0f} units/min)")
    if retries is not None:
        print(f"  client retries           {retries:7d}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--single", type=int, default=200, help="units for the registrations-per-second figure")
    parser.add_argument("--units", type=int, default=100, help="units in the batch")
    parser.add_argument("--workers", type=int, default=4, help="units brought live at once")
    parser.add_argument("--backoff", type=float, default=0.25, help="the client's first backoff, seconds")
    args = parser.parse_args(argv)
    retries = _Retries()
    logging.getLogger("enrollment.client").addHandler(retries)
    logging.getLogger("enrollment.client").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="naiad-bench-platform-") as folder:
        station = Path(folder, "station")
        station.mkdir()
        with Sandbox.start(Path(folder, "platform.db")) as sandbox:
            bench = PlatformBench(sandbox, station, backoff_seconds=args.backoff, max_backoff_seconds=4.0)
            try:
                one, one_cpu = _registrations(bench, "ONE", args.single, 1)
                hundred, hundred_cpu = _registrations(bench, "HUN", args.single, 100)
                print(f"Inventory registrations per second (loopback, one call at a time, {args.single} units):")
                print(f"  one unit per call        {one:7.1f} /s   (CPU per call: {one_cpu:.0f} ms)")
                print(f"  100 units per call       {hundred:7.1f} /s   (CPU per call: {hundred_cpu:.0f} ms)")
                clean = _batch(bench, "CLN", args.units, args.workers)
                _show(f"Batch of {args.units} units, {args.workers} at once, no faults", clean, args.units)
                sandbox.faults = FAULTS
                retries.count = 0
                faulty = _batch(bench, "FLT", args.units, args.workers)
                sandbox.faults = Faults()
                _show("The same batch through the fault knobs", faulty, args.units, retries.count)
            finally:
                bench.close()
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
