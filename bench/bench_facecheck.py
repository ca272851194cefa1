"""Face-pay check benchmark: the whole check of a simulated unit against the sandbox on loopback.

    .venv/bin/python bench/bench_facecheck.py [--runs 5] [--frame-sets 3]

Starts a simulator (a calibrated Dragonfly 2 with the sandbox's terminal credential) and a sandbox (HTTPS on 127.0.0.1)
in a temporary directory, and a station against them (tests/facebench.py): the simulator's scene presents the
face, the station captures and judges ``--frame-sets`` frame sets (its detector and liveness model), the unit's
own face-pay app returns a face token, and the station pays 0.01, queries the trade, refunds it and queries the
refund through its outbox.  It prints each stage's median seconds and the whole check's median and worst over
``--runs`` live checks (target: at most 5 s), then one check of each attack.  The simulator runs in its own
process; the sandbox and the station share this one.  The load average is printed.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):  # run as a script from anywhere; the face-pay bench lives with the tests
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from facebench import FaceBench  # noqa: E402

from camera.faces import ATTACKS  # noqa: E402
from provisioning.facepay_steps import STAGES, FacePayCheckResult  # noqa: E402

TARGET_S = 5.0


def _stages(results: Sequence[FacePayCheckResult]) -> dict[str, float]:
    """Each stage's median seconds over the checks that reached it."""
    medians = {}
    for name in STAGES:
        times = [s.seconds for r in results for s in r.stages if s.name == name]
        if times:
            medians[name] = statistics.median(times)
    return medians


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="live checks to time (default 5)")
    parser.add_argument("--frame-sets", type=int, default=3, help="frame sets the station judges (default 3)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="naiad-facecheck-") as where,
        FaceBench.open(Path(where), calibrated=True) as bench,
    ):
        bench.check(frame_sets=args.frame_sets)  # warm: the models loaded, the connections pooled
        results = [bench.check(frame_sets=args.frame_sets) for _ in range(args.runs)]
        passed = sum(r.passed for r in results)
        print(f"face-pay check of {bench.serial} against the sandbox on loopback, {args.frame_sets} frame sets")
        print(f"  live checks passed: {passed} of {len(results)}")
        for name, seconds in _stages(results).items():
            print(f"  {name:13s} {1000 * seconds:8.0f} ms (median)")
        totals = [r.total_seconds for r in results]
        print(
            f"  whole check   {statistics.median(totals):8.2f} s median, {max(totals):.2f} s worst "
            f"(target <= {TARGET_S:g} s)"
        )
        for attack in ATTACKS:
            refused = bench.check(attack, frame_sets=args.frame_sets)
            verdict = "refused (pass)" if refused.passed else f"NOT refused: {refused.error}"
            print(f"  attack {attack:6s} {refused.total_seconds:6.2f} s  {verdict}")
        trades = bench.trades()
        refunded = sum(t["refunded_amount"] == t["amount"] for t in trades)
        print(f"  trades at the sandbox: {len(trades)}, refunded in full: {refunded}")
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
