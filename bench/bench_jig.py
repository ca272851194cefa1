"""Jig calibration benchmark: capture-to-result time of a full calibration of one simulated unit.

    .venv/bin/python bench/bench_jig.py [--model df2] [--rounds 3]

Starts a simulator with one unit of ``--model`` in a temporary directory, a SQLite ledger with an operator, and
runs :func:`provisioning.calibration.calibrate_units` in full mode on the simulator's jig, ``--rounds`` times (each
round calibrates the unit again and writes a new blob).  For each round it prints the whole time (from the first
jig pose to the recorded result) and where it went, from the step's events: board views (poses, captures,
detection and view selection), the solve, the depth-quality walls, and writing, reading back and recording the
blob; then the accuracy against the simulator's truth.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from console.composition import Wiring  # noqa: E402
from provisioning.calibration import calibrate_units  # noqa: E402
from provisioning.ledger import Ledger  # noqa: E402
from provisioning.operators import OperatorSession  # noqa: E402
from provisioning.station import Station  # noqa: E402
from simulator import launcher  # noqa: E402
from simulator.control import SimControl  # noqa: E402
from terminal.events import Listener, Message, Observed, PhaseStarted, Progressed, StepFinished  # noqa: E402

OPERATOR = OperatorSession("otto", "operator")
GROUPS = {
    "prepare": "views",
    "views": "views",
    "coverage": "views",
    "solve": "solve",
    "depth": "depth",
    "write": "write+verify+record",
    "verify": "write+verify+record",
    "record": "write+verify+record",
}


class PhaseClock(Listener):
    """Seconds spent in each group of phases, from the events' arrival times; counts the views captured."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.views = 0
        self._phase: str | None = None
        self._since = 0.0

    def _switch(self, phase: str | None) -> None:
        now = time.perf_counter()
        if self._phase is not None:
            group = GROUPS.get(self._phase, self._phase)
            self.spent[group] = self.spent.get(group, 0.0) + now - self._since
        self._phase, self._since = phase, now

    def phase_started(self, event: PhaseStarted) -> None:
        self._switch(event.phase)

    def progressed(self, event: Progressed) -> None:
        pass

    def message(self, event: Message) -> None:
        pass

    def observed(self, event: Observed) -> None:
        self.views += event.kind == "view" and event.data.stream == "ir"  # a pose shows an IR and an RGB view

    def finished(self, event: StepFinished) -> None:
        self._switch(None)


def accuracy(solved: dict[str, Any], truth: dict[str, Any]) -> dict[str, float]:
    """The issue's accuracy figures: focal error %, principal point error px, t error mm, R error degrees."""
    import numpy as np

    figures = {}
    for name in ("ir", "rgb"):
        k, tk = np.array(solved[name]["K"]), np.array(truth[name]["K"])
        figures[f"{name} f %"] = float(100 * max(abs(k[0, 0] / tk[0, 0] - 1), abs(k[1, 1] / tk[1, 1] - 1)))
        figures[f"{name} pp px"] = float(max(abs(k[0, 2] - tk[0, 2]), abs(k[1, 2] - tk[1, 2])))
        figures[f"{name} RMS px"] = float(solved[name]["rms_px"])
    motion, true_motion = solved["rgb_from_ir"], truth["rgb_from_ir"]
    figures["t mm"] = float(1000 * np.abs(np.array(motion["t_m"]) - np.array(true_motion["t_m"])).max())
    relative = np.array(motion["R"]).T @ np.array(true_motion["R"])
    figures["R deg"] = float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0))))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="df2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="naiad-bench-jig-") as tmp:
        sim_dir = Path(tmp) / "sim"
        launcher.start_detached(sim_dir, 1, [args.model])
        try:
            run(sim_dir, Path(tmp) / "ledger.sqlite", args.model, args.rounds)
        finally:
            launcher.stop(sim_dir)


def run(sim_dir: Path, ledger_path: Path, model: str, rounds: int) -> None:
    wiring = Wiring(sim_dir)
    ledger = Ledger.open(f"sqlite:///{ledger_path}", station="bench-1")
    ledger.register_operator(OPERATOR.operator, OPERATOR.role)
    with Station(wiring.discovery(), ledger=ledger) as station:
        [serial] = [d.serial for d in station.devices() if d.serial]
        truth = SimControl(sim_dir).call("truth", serial=serial)
        jig = wiring.jig()
        totals: list[float] = []
        print(f"Full jig calibration of one simulated {model} unit ({serial}), {rounds} rounds")
        print(f"{'round':>5} {'total s':>8} {'views':>6} {'views s':>8} {'solve s':>8} {'depth s':>8} {'write s':>8}")
        last: dict[str, Any] = {}
        for round_ in range(1, rounds + 1):
            clock = PhaseClock()
            started = time.perf_counter()
            [result] = calibrate_units(station, jig, [serial], clock, session=OPERATOR)
            total = time.perf_counter() - started
            if not result.ok:
                raise SystemExit(f"calibration failed: {result.as_dict()}")
            totals.append(total)
            spent = [clock.spent.get(group, 0.0) for group in ("views", "solve", "depth", "write+verify+record")]
            print(f"{round_:>5} {total:>8.2f} {clock.views:>6} " + " ".join(f"{s:>8.2f}" for s in spent))
            last = result.calibration or {}
        print(f"median capture-to-result: {statistics.median(totals):.2f} s")
        print(
            "accuracy of the last round against the simulator's truth (limits: f 0.3 %, pp 1.5 px, t 0.5 mm, "
            "R 0.1 deg, RMS 0.3 px):"
        )
        for name, value in accuracy(last, truth).items():
            print(f"  {name:>12}: {value:.4f}")
        print(f"  {'views used':>12}: {last.get('views_used')}")
        per_view(station, jig, serial)


def per_view(station: Station, jig: Any, serial: str, poses: int = 10) -> None:
    """Where a view's time goes: the pose and the capture (the simulator renders, the link moves the PNGs), the
    decoding, and the detection of the board in both images (which the step overlaps with the next capture)."""
    from camera.detect import detect
    from camera.frames import decode_frame_set
    from terminal.camera import Board
    from terminal.camera_unit import CameraUnit

    spent = {"pose + capture": 0.0, "decode": 0.0, "detect IR + RGB": 0.0}
    with station.connect(serial) as client:
        camera = CameraUnit(client)
        camera.projector(False)
        for index in range(poses):
            started = time.perf_counter()
            jig.present_board(serial, index)
            frame_set = camera.capture(("ir", "rgb"))
            captured = time.perf_counter()
            frames = decode_frame_set(frame_set)
            decoded = time.perf_counter()
            assert frames.ir is not None and frames.rgb is not None
            detect(frames.ir, Board())
            detect(frames.rgb, Board())
            spent["pose + capture"] += captured - started
            spent["decode"] += decoded - captured
            spent["detect IR + RGB"] += time.perf_counter() - decoded
        jig.release(serial)
    print(f"per view, mean of {poses} poses, one after the other:")
    for name, seconds in spent.items():
        print(f"  {name:>16}: {1000 * seconds / poses:.0f} ms")


if __name__ == "__main__":
    main()
