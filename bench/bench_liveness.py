"""Liveness benchmark: APCER and BPCER (ISO/IEC 30107-3) on a held-out simulator set, and the station's time.

    .venv/bin/python bench/bench_liveness.py [--per-presentation 500] [--station 500] [--workers 2] [--repeat 50]
                                             [--model FILE] [--save FILE | --measured FILE] [--no-timing]
                                             [--nominal]

Held-out set: ``--per-presentation`` live faces and as many photos, screens and masks, drawn by
``tools/train_liveness.py``'s code with its held-out split: HELD_OUT identities, LIGHT_HELD_OUT lighting,
distances in the HELD_OUT_BANDS (between the training bands) and camera units no training render used.  Judged
with the shipped model (or ``--model``) at its threshold:

- **PAD subsystem**, every presentation: ``camera.liveness``'s hard checks and classifier on the face's IR truth
  box moved by up to a tenth and scaled 0.8-1.1 (as the training rows were made);
- **station**, the first ``--station`` of each kind, rendered again with RGB: ``camera.faceanalysis.FaceAnalyser``
  on the whole frame set (detection on RGB with the default detector, quality, the box mapped to IR through
  depth, liveness) with the unit's calibration (``--nominal``: the model's nominal one, as a station without a
  stored calibration has).  Counted as ISO/IEC 30107-3 counts: a presentation of any kind the station does not
  find, finds several faces in, or finds of poor quality is a failure to acquire (a non-response), reported
  apart per kind and left out of APCER and BPCER alike.

APCER (per attack): share of that attack's processed presentations called live.  BPCER: share of processed
live presentations called attacks.  The set is measured first (features, and the station's decision up to the
classifier) and scored after; ``--save`` keeps the measurements and ``--measured`` scores kept ones.  Time:
``FaceAnalyser.analyse`` on 640x480 IR, RGB and depth of a live face at 0.5 m, pinned to one core (onnxruntime
and OpenCV on one thread), median and p95 of ``--repeat`` runs after one, wall and CPU.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tools"):
    if str(folder) not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, str(folder))

from train_liveness import (  # noqa: E402
    MODEL_ID,
    THRESHOLD,
    Presentation,
    _rng,
    draw_presentation,
    held_out_split,
    truth_box_features,
)

from camera.faceanalysis import FaceAnalyser  # noqa: E402
from camera.faceconfig import FaceConfig  # noqa: E402
from camera.facegeometry import nominal_calibration  # noqa: E402
from camera.faces import ATTACKS, LIVE, PRESENTATIONS, Decision  # noqa: E402
from camera.frames import Frames  # noqa: E402
from camera.liveness import FEATURES, LivenessModel, hard_failures  # noqa: E402
from terminal.camera import CameraCalibration  # noqa: E402

SEED = 30107  # the bench's own: no presentation is one of the training script's
ACQUIRE_FAILURES = (Decision.NO_FACE, Decision.POOR_QUALITY, Decision.SEVERAL_FACES)

_DETECTOR: dict[str, Any] = {}


class _Recorder(LivenessModel):
    """Stands in for the classifier while the held-out set is measured: keeps the features it is shown, so the
    station's decision with the model is made afterwards from them exactly as assess_liveness makes it."""

    def __init__(self) -> None:
        super().__init__(None, FEATURES, THRESHOLD, Path("-"))
        self.seen: dict[str, float] | None = None

    def score(self, features: Mapping[str, float]) -> float:
        self.seen = {name: features[name] for name in FEATURES}
        return 1.0


def _calibration(drawn: Presentation, nominal: bool) -> CameraCalibration:
    """What the station knows of the unit: its exact truth, as a fresh calibration gives, or (``nominal``) the
    model's nominal module, as a station without a stored calibration uses."""
    if nominal:
        from terminal.models import model_by_id

        return nominal_calibration("BENCH", MODEL_ID, model_by_id(MODEL_ID).camera)
    t = drawn.truth
    return CameraCalibration("BENCH", MODEL_ID, t.ir, t.rgb, t.rgb_from_ir, 0.0)


def measure(task: tuple[int, str, int, bool, bool]) -> dict[str, Any]:
    """One held-out presentation rendered and measured: its features at the truth box (+-10 %), and the
    station's decision up to the classifier with the features FaceAnalyser measured (None when it stopped
    before: no face, several, poor quality, or a hard check refused it)."""
    seed, presentation, index, station, nominal = task
    drawn = draw_presentation(held_out_split(), seed, presentation, index)
    row: dict[str, Any] = {
        "presentation": presentation,
        "identity": drawn.scene.identity,
        "distance_m": drawn.scene.distance_m,
        "features": truth_box_features(drawn),
    }
    if station:  # the same scene again, now with RGB to detect the face in
        drawn = draw_presentation(held_out_split(), seed, presentation, index, streams=("ir", "rgb", "depth"))
        recorder = _Recorder()
        analyser = FaceAnalyser(FaceConfig(), _calibration(drawn, nominal), _DETECTOR.get("detector"), recorder)
        frames = Frames(drawn.frames.get("ir"), drawn.frames.get("rgb"), drawn.frames.get("depth"))
        analysis = analyser.analyse(frames)
        _DETECTOR["detector"] = analyser.detector
        row["decision"] = str(analysis.decision)
        seen = recorder.seen if analysis.liveness is not None else None
        row["station_features"] = None if seen is None else [seen[name] for name in FEATURES]
    return row


def held_out(per_presentation: int, station: int, workers: int, nominal: bool = False) -> list[dict[str, Any]]:
    """The held-out set measured: the first ``station`` presentations of each kind along the station's path too
    (with the unit's exact calibration, or ``nominal``'s)."""
    import multiprocessing

    tasks = [(SEED, p, i, i < station, nominal) for p in PRESENTATIONS for i in range(per_presentation)]
    if workers <= 1:
        return [measure(task) for task in tasks]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(measure, tasks, chunksize=8)


def _features(values: Sequence[float]) -> dict[str, float]:
    return dict(zip(FEATURES, values, strict=True))


def pad_rates(rows: Sequence[dict[str, Any]], model: LivenessModel) -> dict[str, float]:
    """APCER per attack and BPCER of the PAD subsystem (hard checks, then the classifier at its threshold)."""
    live = []
    for row in rows:
        features = _features(row["features"])
        live.append(not hard_failures(features) and model.score(features) >= model.threshold)
    kinds = [row["presentation"] for row in rows]
    rates = {a: _share([ok for ok, kind in zip(live, kinds, strict=True) if kind == a]) for a in ATTACKS}
    rates["bpcer"] = _share([not ok for ok, kind in zip(live, kinds, strict=True) if kind == LIVE])
    return rates


def station_decision(row: dict[str, Any], model: LivenessModel) -> str:
    """The station's decision on ``row`` with ``model``: the recorded one, unless it measured liveness features;
    then live when no hard check fails and the classifier's score reaches the threshold (as assess_liveness)."""
    if row["station_features"] is None:
        return str(row["decision"])
    features = _features(row["station_features"])
    live = not hard_failures(features) and model.score(features) >= model.threshold
    return str(Decision.LIVE if live else Decision.ATTACK)


def station_rates(rows: Sequence[dict[str, Any]], model: LivenessModel) -> tuple[dict[str, float], dict[str, int]]:
    """APCER per attack and BPCER over the processed presentations (ISO/IEC 30107-3), each kind's failures to
    acquire apart (``not_acquired_<kind>``: no face, several, poor quality), and each kind's processed count."""
    decided = [(r["presentation"], station_decision(r, model)) for r in rows]
    processed = {p: [d for kind, d in decided if kind == p and d not in ACQUIRE_FAILURES] for p in PRESENTATIONS}
    rates = {a: _share([d == Decision.LIVE for d in processed[a]]) for a in ATTACKS}
    rates["bpcer"] = _share([d != Decision.LIVE for d in processed[LIVE]])
    for p in PRESENTATIONS:
        rates[f"not_acquired_{p}"] = _share([d in ACQUIRE_FAILURES for kind, d in decided if kind == p])
    return rates, {p: len(done) for p, done in processed.items()}


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def print_rates(title: str, rates: dict[str, float], counts: dict[str, int]) -> None:
    print(f"\n{title}")
    for attack in ATTACKS:
        print(f"  APCER {attack:<7} {rates[attack]:7.2%}  ({counts[attack]} presentations; target <= 1 %)")
    print(f"  BPCER         {rates['bpcer']:7.2%}  ({counts[LIVE]} presentations; target <= 5 %)")
    for kind in PRESENTATIONS:
        if f"not_acquired_{kind}" in rates:
            share = rates[f"not_acquired_{kind}"]
            print(f"  not acquired {kind:<6} {share:7.2%}  (no face / several / poor quality; not in the rates above)")


def timing(repeat: int, model_path: Path | None) -> None:
    """FaceAnalyser.analyse on one 640x480 frame set (a held-out identity, frontal at 0.5 m in office light),
    pinned to one core: wall time, and this process's CPU time (what the machine's other load does not inflate)."""
    from simulator.camera.render import Capture
    from simulator.camera.truth import draw_truth
    from simulator.face.render import render_face
    from simulator.face.scene import FaceScene
    from terminal.models import model_by_id

    model = model_by_id(MODEL_ID)
    camera = dataclasses.replace(model.camera, ir_resolution=(640, 480), rgb_resolution=(640, 480))
    camera = dataclasses.replace(camera, rgb_focal_length_px=camera.focal_length_px)
    truth = draw_truth(dataclasses.replace(model, camera=camera), _rng(SEED, "timing"))
    scene = FaceScene(LIVE, held_out_split().identities[0], 0.5)
    rendered = render_face(truth, scene, Capture(depth_range_mm=camera.depth_range_mm), _rng(SEED, "timing", 1))
    frames = Frames(rendered["ir"], rendered["rgb"], rendered["depth"])
    calibration = CameraCalibration("BENCH", MODEL_ID, truth.ir, truth.rgb, truth.rgb_from_ir, 0.0)
    analyser = FaceAnalyser(FaceConfig(), calibration, None, LivenessModel.load(model_path))
    cv2.setNumThreads(1)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    first_start = time.perf_counter()
    result = analyser.analyse(frames)
    first = time.perf_counter() - first_start
    parts: dict[str, list[float]] = {}
    totals, cpu = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = analyser.analyse(frames)
        totals.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        for name, seconds in result.seconds.items():
            parts.setdefault(name, []).append(seconds)
    print(f"\nstation time per 640x480 frame set, one core, {repeat} runs after one ({first * 1000:.0f} ms), ms")
    score = result.liveness.score if result.liveness else 0.0
    print(f"  decision {result.decision} (liveness score {score:.2f}); {result.detail}")
    for name, times in [*parts.items(), ("total", totals), ("total CPU", cpu)]:
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        print(f"  {name:<10} median {statistics.median(times) * 1000:6.1f}  p95 {p95 * 1000:6.1f}")
    print(
        f"  target: detection + liveness <= 30 ms; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-presentation", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--station", type=int, default=500, help="presentations of each kind also judged end to end")
    parser.add_argument("--model", type=Path, help="a liveness model other than the shipped one")
    parser.add_argument("--save", type=Path, help="keep the measured held-out set in this JSON file")
    parser.add_argument("--measured", type=Path, help="score a set kept by --save instead of rendering one")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument(
        "--nominal", action="store_true", help="station rows with the model's nominal calibration, not the unit's"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.measured:
        rows = json.loads(args.measured.read_text(encoding="utf-8"))
    else:
        rows = held_out(args.per_presentation, args.station, args.workers, args.nominal)
    if args.save:
        args.save.write_text(json.dumps(rows), encoding="utf-8")
    seconds = time.perf_counter() - start
    model = LivenessModel.load(args.model)
    counts = {p: sum(r["presentation"] == p for r in rows) for p in PRESENTATIONS}
    split = held_out_split()
    print(f"held-out set: identities {list(split.identities)}, LIGHT_HELD_OUT, distance bands {list(split.bands)},")
    print(f"{split.units} camera units; {len(rows)} presentations, rendered and measured in {seconds:.0f} s")
    print_rates(f"PAD subsystem (truth box +-10 %), threshold {model.threshold}", pad_rates(rows, model), counts)
    station = [row for row in rows if "decision" in row]
    if station:
        title = "station (FaceAnalyser: detection on RGB, quality, mapping, liveness), processed presentations"
        print_rates(title, *station_rates(station, model))
    if not args.no_timing:
        timing(args.repeat, args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
