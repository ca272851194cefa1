"""Simulator camera benchmark: what one capture costs, and how well plain OpenCV recovers a unit from its renders.

    .venv/bin/python bench/bench_sim_camera.py [--model frog-pro] [--reps 7] [--views 20] [--seed 0]

Prints, for the model's default scene (the board held up for a field check):

- the first capture of a unit (its per-pixel rays are computed then) and the median of ``--reps`` captures
  of ir + rgb + depth, render and PNG encoding apart (target: render + encode well under 1 s for frog-pro);
- plain OpenCV (CharucoDetector, calibrateCamera, stereoCalibrate with the intrinsics fixed) on ``--views``
  views of ``write_set``: errors against the truth next to the issue's limits (fx, fy 0.3 %, principal point
  1.5 px, IR-to-RGB t 0.5 mm and R 0.1 degree, RMS 0.3 px).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from simulator.camera.calibration_set import write_set  # noqa: E402
from simulator.camera.jig import default_scene  # noqa: E402
from simulator.camera.render import Capture, render  # noqa: E402
from simulator.camera.service import encode_png  # noqa: E402
from simulator.camera.truth import CameraTruth, draw_truth  # noqa: E402
from terminal.camera import Board  # noqa: E402
from terminal.models import model_by_id  # noqa: E402


def capture_times(model_id: str, reps: int) -> None:
    model = model_by_id(model_id)
    rng = np.random.default_rng(1)
    truth = draw_truth(model, rng)
    scene = default_scene(truth, model, Board())
    capture = Capture(depth_range_mm=model.camera.depth_range_mm)

    def once() -> tuple[float, float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        frames = render(truth, scene, capture, rng, model.camera.speckle_dots)
        rendered = time.perf_counter()
        for image in frames.values():
            encode_png(image)
        return rendered - start, time.perf_counter() - rendered, time.process_time() - cpu

    first = once()
    runs = [once() for _ in range(reps)]
    render_s = statistics.median(r for r, _, _ in runs)
    encode_s = statistics.median(e for _, e, _ in runs)
    cpu_s = statistics.median(c for _, _, c in runs)
    (iw, ih), (rw, rh) = model.camera.ir_resolution, model.camera.rgb_resolution
    print(f"{model_id} (IR {iw}x{ih}, RGB {rw}x{rh}), ir + rgb + depth capture of the default scene:")
    print(f"  first capture (rays computed): render {first[0]:.3f} s, encode {first[1]:.3f} s")
    print(f"  median of {reps}: render {render_s:.3f} s + encode {encode_s:.3f} s = {render_s + encode_s:.3f} s wall")
    print(f"  CPU time (all threads) {cpu_s:.3f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def opencv_accuracy(model_id: str, views: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        out = write_set(Path(directory), views, seed, model_id)
        truth = CameraTruth.from_dict(json.loads((out / "truth.json").read_text()))
        board = Board.read(out / "board.json")
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
        cv_board: Any = cv2.aruco.CharucoBoard(
            (board.squares_x, board.squares_y), board.square_length_m, board.marker_length_m, dictionary
        )
        detector: Any = cv2.aruco.CharucoDetector(cv_board)
        found = {
            stream: [detector.detectBoard(cv2.imread(str(out / f"{stream}_{i:02d}.png")))[:2] for i in range(views)]
            for stream in ("ir", "rgb")
        }
    print(f"plain OpenCV on {views} views of a {model_id} set (seed {seed}):")
    solved = {}
    for stream, camera in (("ir", truth.ir), ("rgb", truth.rgb)):
        points = [cv_board.matchImagePoints(c, i) for c, i in found[stream] if i is not None and len(i) >= 6]
        rms, k, dist, _, _ = cv2.calibrateCamera(
            [o for o, _ in points], [p for _, p in points], (camera.width, camera.height), None, None
        )
        solved[stream] = (k, dist)
        print(
            f"  {stream}: {len(points)} views, RMS {rms:.3f} px, fx {100 * (k[0, 0] / camera.fx - 1):+.3f} %, "
            f"fy {100 * (k[1, 1] / camera.fy - 1):+.3f} %, "
            f"cx {k[0, 2] - camera.cx:+.2f} px, cy {k[1, 2] - camera.cy:+.2f} px"
        )
    objects, ir_points, rgb_points = [], [], []
    for (ir_c, ir_i), (rgb_c, rgb_i) in zip(found["ir"], found["rgb"], strict=True):
        if ir_i is None or rgb_i is None:
            continue
        common = np.intersect1d(ir_i.ravel(), rgb_i.ravel())
        if len(common) < 6:
            continue
        objects.append(np.asarray(cv_board.getChessboardCorners())[common].astype(np.float32))
        ir_points.append(np.array([ir_c[np.where(ir_i.ravel() == c)[0][0]] for c in common], np.float32))
        rgb_points.append(np.array([rgb_c[np.where(rgb_i.ravel() == c)[0][0]] for c in common], np.float32))
    size = (truth.ir.width, truth.ir.height)
    result = cv2.stereoCalibrate(
        objects, ir_points, rgb_points, *solved["ir"], *solved["rgb"], size, flags=cv2.CALIB_FIX_INTRINSIC
    )
    rotation, t = result[5], result[6].ravel()
    relative = rotation @ np.array(truth.rgb_from_ir.R).T
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(relative) - 1) / 2))))
    t_error = np.abs(t - np.array(truth.rgb_from_ir.t_m)).max() * 1000
    print(f"  rgb_from_ir: {len(objects)} pairs, RMS {result[0]:.3f} px, t {t_error:.3f} mm, R {angle:.4f} deg")
    print("  limits: fx, fy 0.3 %; cx, cy 1.5 px; t 0.5 mm; R 0.1 deg; RMS 0.3 px")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="frog-pro")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    capture_times(args.model, args.reps)
    opencv_accuracy(args.model, args.views, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
