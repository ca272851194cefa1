"""Field check benchmark: the analysis alone, and capture to verdict on a simulated unit.

    .venv/bin/python bench/bench_fieldcheck.py [--models df2,frog-pro] [--repeat 10] [--no-unit]

Analysis: ``camera.fieldcheck.field_check`` on frames the simulator's renderer makes of the default field scene
(the board held up about 0.45 m away; flood IR, RGB, depth and a speckle IR), and ``camera.depth.measure_depth``
on a frontal 0.5 m wall (numpy: flat Z plus the module's sigma_z), per model; median and p95 of ``--repeat``
runs after one warm-up (which fills the per-camera ray cache; its time is shown too).

Capture to verdict: a simulator in a temporary directory with one unit of the first model; a calibration made
from the unit's truth is written to it over the wire; then per run: CAMERA_CAPTURE of ir+rgb+depth and of a
speckle IR, the frames read back (OBJECT_READ) and decoded, the stored calibration read and decoded, and the
field check.  Then each camera fault (``camera_drift``, ``dead_projector``, ``rgb_defocus``) once, with the
verdict it gets.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from camera.depth import measure_depth  # noqa: E402
from camera.fieldcheck import FieldCheck, field_check  # noqa: E402
from simulator.camera.jig import default_scene  # noqa: E402
from simulator.camera.render import Capture, render, sigma_z_mm  # noqa: E402
from simulator.camera.truth import draw_truth  # noqa: E402
from terminal.camera import Board, CameraCalibration, Extrinsics, Intrinsics  # noqa: E402
from terminal.models import TerminalModel, load_models  # noqa: E402

BOARD = Board()


def timed(action: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """(first run's seconds, the next ``repeat`` runs' seconds, the last result)."""
    start = time.perf_counter()
    result = action()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return first, times, result


def row(name: str, first: float, times: list[float], note: str = "") -> None:
    p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
    print(f"{name:<34} {first * 1000:8.1f} {statistics.median(times) * 1000:8.1f} {p95 * 1000:8.1f}  {note}")


def analysis(model: TerminalModel, repeat: int) -> None:
    truth = draw_truth(model, np.random.default_rng(1))
    stored = CameraCalibration("BENCH", model.id, truth.ir, truth.rgb, truth.rgb_from_ir, 0.0)
    scene = default_scene(truth, model, BOARD)
    rng = np.random.default_rng(2)
    cam = model.camera
    frames = render(truth, scene, Capture(depth_range_mm=cam.depth_range_mm), rng, cam.speckle_dots)
    speckle = render(truth, scene, Capture(streams=("ir",), speckle=True), rng, cam.speckle_dots)["ir"]
    (w, h), (rw, rh) = cam.ir_resolution, cam.rgb_resolution
    print(f"\n{model.id}: IR {w}x{h}, RGB {rw}x{rh}; {repeat} runs, ms")
    print(f"{'':<34} {'first':>8} {'median':>8} {'p95':>8}")

    def check() -> FieldCheck:
        return field_check(frames["ir"], frames["rgb"], frames["depth"], stored, BOARD, cam.limits, ir_speckle=speckle)

    first, times, result = timed(check, repeat)
    row("field check (board view)", first, times, f"verdict {result.verdict}")
    wall = np.full((h, w), 500.0) + rng.normal(size=(h, w)) * sigma_z_mm(truth, 500.0)
    depth = np.round(wall).astype(np.uint16)
    first, times, quality = timed(lambda: measure_depth(depth, truth.ir, truth.projector_baseline_mm, 0.5), repeat)
    expected = float(sigma_z_mm(truth, 500.0))
    row("depth quality (0.5 m wall)", first, times, f"plane RMS {quality.plane_rms_mm:.3f} mm, sigma_z {expected:.3f}")


def unit_run(model: TerminalModel, repeat: int) -> None:
    from camera.frames import decode_frame_set
    from simulator import launcher
    from simulator.control import SimControl
    from terminal.camera_unit import CameraUnit
    from terminal.client import ManagementClient

    with tempfile.TemporaryDirectory(prefix="bench-fieldcheck-") as directory:
        state = Path(directory) / "sim"
        launcher.start_detached(state, 1, [model.id])
        control = SimControl(state)
        try:
            terminal = control.call("status")["terminals"][0]
            serial = terminal["serial"]
            truth = control.call("truth", serial=serial)
            stored = CameraCalibration(
                serial,
                model.id,
                Intrinsics.from_dict(truth["ir"]),
                Intrinsics.from_dict(truth["rgb"]),
                Extrinsics.from_dict(truth["rgb_from_ir"]),
                time.time(),
            )
            with ManagementClient(f"serial:{terminal['pty']}", timeout=30.0) as client:
                camera = CameraUnit(client)
                camera.write_calibration(stored.encode())
                camera.projector(True)
                stages: dict[str, list[float]] = {}

                def once() -> FieldCheck:
                    marks = [time.perf_counter()]
                    flood = camera.capture(("ir", "rgb", "depth"))
                    speckle = camera.capture(("ir",), speckle=True)
                    marks.append(time.perf_counter())
                    frames, dots = decode_frame_set(flood), decode_frame_set(speckle)
                    blob = camera.read_calibration()
                    calibration = CameraCalibration.decode(blob or b"")
                    marks.append(time.perf_counter())
                    assert frames.ir is not None and frames.rgb is not None and frames.depth is not None
                    result = field_check(
                        frames.ir, frames.rgb, frames.depth, calibration, BOARD, model.camera.limits, ir_speckle=dots.ir
                    )
                    marks.append(time.perf_counter())
                    names = ("capture + read frames", "decode + read calibration", "analysis")
                    for name, (a, b) in zip(names, itertools.pairwise(marks), strict=True):
                        stages.setdefault(name, []).append(b - a)
                    stages.setdefault("capture to verdict", []).append(marks[-1] - marks[0])
                    return result

                _first, _times, result = timed(once, repeat)
                print(f"\ncapture to verdict, one simulated {model.id} over its pty; {repeat} runs after one, ms")
                print(f"{'':<34} {'first':>8} {'median':>8} {'p95':>8}")
                for name, values in stages.items():
                    row(
                        name, values[0], values[1:], f"verdict {result.verdict}" if name == "capture to verdict" else ""
                    )
                print("\nfaults (one run each): verdict, misalignment px, depth bias %, fill rate, RGB blur px")
                for fault in ("camera_drift", "dead_projector", "rgb_defocus"):
                    control.call("faults", serial=serial, **{fault: True})
                    result = once()
                    control.call("faults", serial=serial, **{fault: False})
                    print(
                        f"  {fault:<16} {result.verdict:<12} {_fmt(result.misalignment_px)} "
                        f"{_fmt(result.depth_bias_pct)} {_fmt(result.fill_rate)} {_fmt(result.rgb_blur_px)}"
                    )
        finally:
            launcher.stop(state)


def _fmt(value: float | None) -> str:
    return f"{value:8.3f}" if value is not None else f"{'-':>8}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default="df2,frog-pro", help="comma-separated model ids")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-unit", action="store_true", help="skip the simulated unit")
    args = parser.parse_args(argv)
    models = load_models()
    chosen = [models[name] for name in args.models.split(",")]
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for model in chosen:
        analysis(model, args.repeat)
    if not args.no_unit:
        unit_run(chosen[0], args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
