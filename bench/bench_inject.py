"""Key injection benchmark: time per unit with SoftHSM2 and with the software key store, and units per minute
with every unit in parallel.

    .venv/bin/python bench/bench_inject.py [--units 8] [--rounds 3]

For each store, in its own temporary directory (a unit pins the first provisioning CA that certifies it, and
each store holds its own CA): a simulator with ``--units`` terminals, a SQLite ledger with an operator and the
inventory, a fresh BDK generated in the store (SoftHSM2: a throwaway token, made as bench_keystore.py makes it;
software: a store file) and registered in the ledger.  Then, for ``--rounds`` rounds, the whole injection of
:func:`provisioning.injection.inject_units` (attestation, identity, certificate, key session, TR-31 block, KCV
check, commit, ledger record), after one warm-up run that makes the provisioning CA:

- one worker: each unit's own time (from its worker's start to its result), median and p95 over every unit
  and round;
- ``--units`` workers: the run's wall time, as units per minute (median round).

Every round keys the same units again (a re-injection replaces the unit's key set).  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench_keystore import softhsm_store, software_store  # noqa: E402

from console.composition import Wiring  # noqa: E402
from keys.ca import ProvisioningCA  # noqa: E402
from keys.store import KeyStore  # noqa: E402
from provisioning.injection import InjectionRun, inject_units  # noqa: E402
from provisioning.ledger import Ledger  # noqa: E402
from provisioning.operators import OperatorSession  # noqa: E402
from provisioning.station import Station  # noqa: E402
from simulator import launcher  # noqa: E402

OPERATOR = OperatorSession("otto", "operator")
CUSTODIANS = ("cara", "carl")
BDK_LABEL = "bench-bdk"
BDK_ID = bytes.fromhex("B0000001")
STORES: tuple[tuple[str, Callable[[Path], KeyStore | None]], ...] = (
    ("SoftHSM2", softhsm_store),
    ("software", software_store),
)


class Bench:
    """The station over the simulator, its ledger, the units and the manufacturer roots."""

    def __init__(self, sim_dir: Path, ledger_url: str) -> None:
        wiring = Wiring(sim_dir)
        self.station = Station(wiring.discovery(), ledger=Ledger.open(ledger_url, station="bench-1"))
        self.roots = wiring.manufacturer_roots()
        self.serials = [d.serial for d in self.station.devices() if d.serial and d.mode == "run"]
        ledger = self.station.ledger
        for name, role in (("root", "admin"), (OPERATOR.operator, OPERATOR.role)):
            ledger.register_operator(name, role)
        ledger.as_operator("root").inventory_add(self.serials, "bench")

    def load_bdk(self, store: KeyStore, label: str, bdk_id: bytes) -> None:
        """A fresh BDK in ``store``, registered in the ledger as generated, and the store's provisioning CA."""
        kcv = store.generate_bdk(label)
        ProvisioningCA.ensure(store)
        self.station.ledger.as_operator(OPERATOR.operator).register_bdk(label, bdk_id, kcv, "generated", CUSTODIANS)

    def inject(self, store: KeyStore, label: str, workers: int) -> InjectionRun:
        run = inject_units(self.station, store, OPERATOR, label, self.roots, self.serials, max_workers=workers)
        failed = [r.as_dict() for r in run.results if not r.ok]
        if failed:
            raise SystemExit(f"injection failed: {failed}")
        return run


def _measure(bench: Bench, store: KeyStore, rounds: int) -> tuple[list[float], list[float]]:
    """(each unit's seconds with one worker, each round's wall seconds with a worker per unit)."""
    bench.inject(store, BDK_LABEL, 1)  # warm-up: the provisioning CA's key and certificate are made once
    one_by_one: list[float] = []
    walls: list[float] = []
    for _ in range(rounds):
        one_by_one += [r.seconds for r in bench.inject(store, BDK_LABEL, 1).results]
        started = time.perf_counter()
        bench.inject(store, BDK_LABEL, len(bench.serials))
        walls.append(time.perf_counter() - started)
    return one_by_one, walls


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]


def _store_row(name: str, opener: Callable[[Path], KeyStore | None], args: argparse.Namespace) -> str:
    """One store's figures, on its own simulator and ledger: a unit pins the first provisioning CA it meets."""
    with tempfile.TemporaryDirectory(prefix="naiad-bench-inject-") as directory:
        tmp = Path(directory)
        (tmp / "store").mkdir()
        store = opener(tmp / "store")
        if store is None:
            return f"{name:<10} skipped: not installed"
        launcher.start_detached(tmp / "sim", args.units)
        try:
            bench = Bench(tmp / "sim", f"sqlite:///{tmp / 'ledger.sqlite'}")
            try:
                with store:
                    bench.load_bdk(store, BDK_LABEL, BDK_ID)
                    one_by_one, walls = _measure(bench, store, args.rounds)
            finally:
                bench.station.close()
        finally:
            launcher.stop(tmp / "sim")
    wall, units = statistics.median(walls), len(bench.serials)
    return (
        f"{name:<10} {statistics.median(one_by_one) * 1e3:8.0f} {_p95(one_by_one) * 1e3:8.0f} "
        f"{len(one_by_one):5d} {wall:12.2f} {units / wall * 60:10.0f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [_store_row(name, opener, args) for name, opener in STORES]
    print(f"Key injection, {args.units} simulated units, {args.rounds} rounds: one worker, then all in parallel")
    print(f"{'store':<10} {'p50 ms':>8} {'p95 ms':>8} {'n':>5} {'wall s':>12} {'units/min':>10}")
    print("\n".join(rows))
    print(f"load average after measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
