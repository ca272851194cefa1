"""Liveness benchmark: APCER and BPCER (ISO/IEC 30107-3) on a held-out simulator set, and the station's time.

    .venv/bin/python bench/bench_liveness.py [--per-presentation 500] [--workers 2] [--repeat 50] [--no-detector]

Held-out set: ``--per-presentation`` live faces and as many photos, screens and masks, drawn by
``tools/train_liveness.py``'s code with its held-out split: HELD_OUT identities, LIGHT_HELD_OUT lighting,
distances in the HELD_OUT_BANDS (between the training bands) and camera units no training render used.  Each is
judged twice with the shipped model at its shipped threshold:

- **PAD subsystem**: ``camera.liveness.assess_liveness`` on the face's IR truth box moved and scaled by up to a
  tenth (as the training rows were made);
- **station**: ``camera.faceanalysis.FaceAnalyser`` on the whole frame set (detection on RGB with the default
  detector, quality, the box mapped to IR through depth, liveness).  A live face the station does not find or
  finds of poor quality is counted apart (failure to acquire), not in BPCER; an attack so treated is refused.

APCER (per attack): share of that attack's presentations called live.  BPCER: share of live presentations
called attacks.  Time: ``FaceAnalyser.analyse`` on 640x480 IR, RGB and depth of a live face at 0.5 m, pinned
to one core (onnxruntime and OpenCV on one thread), median and p95 of ``--repeat`` runs after one warm-up.
Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tools"):
    if str(folder) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(folder))

from train_liveness import (  # noqa: E402
    MODEL_ID,
    Presentation,
    _rng,
    draw_presentation,
    held_out_split,
    truth_box_features,
)

from camera.faceanalysis import FaceAnalyser  # noqa: E402
from camera.faceconfig import FaceConfig  # noqa: E402
from camera.faces import ATTACKS, LIVE, PRESENTATIONS, Decision  # noqa: E402
from camera.frames import Frames  # noqa: E402
from camera.liveness import FEATURES, LivenessModel, hard_failures  # noqa: E402
from terminal.camera import CameraCalibration  # noqa: E402

SEED = 30107  # the bench's own: no presentation is one of the training script's
ACQUIRE_FAILURES = (Decision.NO_FACE, Decision.POOR_QUALITY, Decision.SEVERAL_FACES)

_ANALYSER: dict[str, Any] = {}


def _calibration(drawn: Presentation) -> CameraCalibration:
    """What the station knows of the unit: its calibration (here its exact truth, as a fresh calibration gives)."""
    t = drawn.truth
    return CameraCalibration("BENCH", MODEL_ID, t.ir, t.rgb, t.rgb_from_ir, 0.0)


def judge(task: tuple[int, str, int, bool]) -> dict[str, Any]:
    """One held-out presentation: the PAD subsystem's score and failures, and the station's decision."""
    seed, presentation, index, detector = task
    drawn = draw_presentation(held_out_split(), seed, presentation, index)
    model = _ANALYSER.setdefault("model", LivenessModel.load())
    values = truth_box_features(drawn)
    features = dict(zip(FEATURES, values, strict=True))
    result: dict[str, Any] = {
        "presentation": presentation,
        "score": model.score(features),
        "hard": hard_failures(features),
        "distance_m": drawn.scene.distance_m,
    }
    if detector:
        config = FaceConfig()
        analyser = FaceAnalyser(config, _calibration(drawn), _ANALYSER.get("detector"), model)
        frames = Frames(drawn.frames.get("ir"), drawn.frames.get("rgb"), drawn.frames.get("depth"))
        analysis = analyser.analyse(frames)
        _ANALYSER["detector"] = analyser.detector
        result["decision"] = str(analysis.decision)
    return result


def held_out(per_presentation: int, workers: int, detector: bool) -> list[dict[str, Any]]:
    import multiprocessing

    tasks = [(SEED, p, i, detector) for p in PRESENTATIONS for i in range(per_presentation)]
    if workers <= 1:
        return [judge(task) for task in tasks]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(judge, tasks, chunksize=8)


def pad_rates(rows: Sequence[dict[str, Any]], threshold: float) -> dict[str, float]:
    """APCER per attack and BPCER of the PAD subsystem (hard checks, then the classifier at ``threshold``)."""
    live = {id(r): not r["hard"] and r["score"] >= threshold for r in rows}
    rates = {a: _share([live[id(r)] for r in rows if r["presentation"] == a]) for a in ATTACKS}
    rates["bpcer"] = _share([not live[id(r)] for r in rows if r["presentation"] == LIVE])
    return rates


def station_rates(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """APCER per attack (decided live), BPCER (live decided an attack) and live failures to acquire."""
    rates = {a: _share([r["decision"] == Decision.LIVE for r in rows if r["presentation"] == a]) for a in ATTACKS}
    live = [r for r in rows if r["presentation"] == LIVE]
    acquired = [r for r in live if r["decision"] not in ACQUIRE_FAILURES]
    rates["bpcer"] = _share([r["decision"] == Decision.ATTACK for r in acquired])
    rates["failure_to_acquire"] = _share([r["decision"] in ACQUIRE_FAILURES for r in live])
    return rates


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def print_rates(title: str, rates: dict[str, float], counts: dict[str, int]) -> None:
    print(f"\n{title}")
    for attack in ATTACKS:
        print(f"  APCER {attack:<7} {rates[attack]:7.2%}  ({counts[attack]} presentations; target <= 1 %)")
    print(f"  BPCER         {rates['bpcer']:7.2%}  ({counts[LIVE]} presentations; target <= 5 %)")
    if "failure_to_acquire" in rates:
        print(f"  live faces not acquired (no face / poor quality / several): {rates['failure_to_acquire']:.2%}")


def timing(repeat: int) -> None:
    """FaceAnalyser.analyse on one 640x480 frame set, one core."""
    from simulator.camera.truth import draw_truth
    from terminal.models import model_by_id

    model = model_by_id(MODEL_ID)
    camera = dataclasses.replace(model.camera, ir_resolution=(640, 480), rgb_resolution=(640, 480))
    camera = dataclasses.replace(camera, rgb_focal_length_px=camera.focal_length_px)
    truth = draw_truth(dataclasses.replace(model, camera=camera), _rng(SEED, "timing"))
    drawn = draw_presentation(held_out_split(), SEED, LIVE, 0, truth)
    frames = Frames(drawn.frames["ir"], drawn.frames["rgb"], drawn.frames["depth"])
    analyser = FaceAnalyser(FaceConfig(), _calibration(drawn), None, LivenessModel.load())
    cv2.setNumThreads(1)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    first_start = time.perf_counter()
    result = analyser.analyse(frames)
    first = time.perf_counter() - first_start
    parts: dict[str, list[float]] = {}
    totals = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = analyser.analyse(frames)
        totals.append(time.perf_counter() - start)
        for name, seconds in result.seconds.items():
            parts.setdefault(name, []).append(seconds)
    print(f"\nstation time per 640x480 frame set, one core, {repeat} runs after one ({first * 1000:.0f} ms), ms")
    print(f"  decision {result.decision} (liveness score {result.liveness.score if result.liveness else 0:.2f})")
    for name, times in [*parts.items(), ("total", totals)]:
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        print(f"  {name:<10} median {statistics.median(times) * 1000:6.1f}  p95 {p95 * 1000:6.1f}")
    print("  target: detection + liveness <= 30 ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-presentation", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-detector", action="store_true", help="the PAD subsystem alone (faster)")
    args = parser.parse_args(argv)
    model = LivenessModel.load()
    start = time.perf_counter()
    rows = held_out(args.per_presentation, args.workers, not args.no_detector)
    seconds = time.perf_counter() - start
    counts = {p: sum(r["presentation"] == p for r in rows) for p in PRESENTATIONS}
    split = held_out_split()
    print(f"held-out set: identities {list(split.identities)}, LIGHT_HELD_OUT, distance bands {list(split.bands)},")
    print(f"{split.units} camera units; {len(rows)} presentations rendered and judged in {seconds:.0f} s")
    pad = pad_rates(rows, model.threshold)
    print_rates(f"PAD subsystem (truth box +-10 %), threshold {model.threshold}", pad, counts)
    if not args.no_detector:
        print_rates("station (FaceAnalyser: detection, quality, mapping, liveness)", station_rates(rows), counts)
    timing(args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
