"""Train the shipped liveness classifier on simulator renders: ``camera/models/liveness.onnx`` + ``liveness.json``.

    .venv/bin/python tools/train_liveness.py [--per-presentation 500] [--workers 2] [--out camera/models]

Renders live faces, photos, screens and masks with ``simulator.face`` (the TRAIN identities, LIGHT_TRAIN
lighting, TRAIN_BANDS distances, TRAIN_UNITS drawn camera modules), measures ``camera.liveness.
liveness_features`` in each face's IR box (the truth box moved by up to BOX_JITTER and scaled, as a detector's
box mapped from RGB is), and trains a small network with numpy alone (standardised MODEL_FEATURES -> HIDDEN tanh
units -> sigmoid; full-batch Adam from a fixed seed, float64).  The last VALIDATION_SHARE of the training
identities is held aside to choose the threshold (the live score quantile that gives VALIDATION_BPCER), and the
output's bias is moved so that it becomes THRESHOLD; the held-out identities, lighting and distances are the
bench's alone (bench/bench_liveness.py) and never seen here.

Reproducible: every presentation draws from its own generator seeded by (seed, split, kind, index), so the
workers' order does not matter, and the network trains from a seed.  Same machine, same library versions: the
same bytes (``--check`` rebuilds and compares; a test reruns a reduced run).  See docs/liveness.md for across
machines.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from camera.faces import ATTACKS, LIVE, PRESENTATIONS, Face  # noqa: E402
from camera.liveness import FEATURES, META_FEATURES, META_THRESHOLD, MODEL_DIR, liveness_features  # noqa: E402

Floats = npt.NDArray[np.float64]
SEED = 20261130
MODEL_FEATURES = tuple(name for name in FEATURES if name not in ("distance_mm", "ir_level", "ir_ambient"))
"""The classifier's inputs: every feature but the raw distance and IR level (they say where the face is and how
the exposure is, not what it is; ir_reflectance carries the IR level normalised by the distance)."""
HIDDEN = 16
ITERATIONS = 4000
LEARNING_RATE = 0.01
L2 = 1e-4
VALIDATION_SHARE = 0.25
VALIDATION_BPCER = 0.02
THRESHOLD = 0.5  # the shipped threshold (camera.faceconfig.LivenessConfig's default): the output is shifted to it
BOX_JITTER = 0.1
MODEL_ID = "df2"
TRAIN_UNITS, HELD_OUT_UNITS = 4, 3
# Distances in interleaved 5 cm bands: the bench's are between the training ones, over the same 0.35-0.8 m.
TRAIN_BANDS = ((0.35, 0.40), (0.45, 0.50), (0.55, 0.60), (0.65, 0.70), (0.75, 0.80))
HELD_OUT_BANDS = ((0.40, 0.45), (0.50, 0.55), (0.60, 0.65), (0.70, 0.75))
REDUCED = {"per_presentation": 2, "iterations": 200}  # the test's quick run of the same code path
ONNX_OPSET, ONNX_IR_VERSION = 17, 8
LIVENESS = ("ir", "depth")  # the streams liveness uses


@dataclass(frozen=True)
class Split:
    """Which scenes a data set draws: identities, lighting range name, distance bands, camera units."""

    name: str  # "train" or "held-out": also seeds the camera units and every presentation
    identities: tuple[int, ...]
    light: str  # "train" or "held-out": simulator.face.scene.LIGHT_TRAIN or LIGHT_HELD_OUT
    bands: tuple[tuple[float, float], ...]
    units: int


def training_split() -> Split:
    from simulator.face.heads import TRAIN_IDENTITIES

    return Split("train", tuple(TRAIN_IDENTITIES), "train", TRAIN_BANDS, TRAIN_UNITS)


def held_out_split() -> Split:
    from simulator.face.heads import HELD_OUT_IDENTITIES

    return Split("held-out", tuple(HELD_OUT_IDENTITIES), "held-out", HELD_OUT_BANDS, HELD_OUT_UNITS)


def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator of its own for ``keys``: the same draws whatever else ran before."""
    digest = hashlib.sha256(":".join(str(k) for k in (seed, *keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def camera_truths(split: Split, seed: int) -> list[Any]:
    """The split's camera modules: units of MODEL_ID drawn within its spread (no unit shared between splits)."""
    from simulator.camera.truth import draw_truth
    from terminal.models import model_by_id

    model = model_by_id(MODEL_ID)
    return [draw_truth(model, _rng(seed, split.name, "unit", unit)) for unit in range(split.units)]


def jittered(box: tuple[float, float, float, float], rng: np.random.Generator, share: float) -> tuple[float, ...]:
    """``box`` moved by up to ``share`` of its size each way and scaled by 1 - 2 ``share`` to 1 + ``share`` (the
    default detector's boxes are about a tenth tighter than the truth's outline of the face)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + rng.uniform(-share, share) * w, (y0 + y1) / 2 + rng.uniform(-share, share) * h
    scale = 1.0 + rng.uniform(-2 * share, share)
    return cx - w * scale / 2, cy - h * scale / 2, cx + w * scale / 2, cy + h * scale / 2


@dataclass(frozen=True)
class Presentation:
    """One rendered presentation: the module, the scene, its frames and where the face truly is."""

    truth: Any  # simulator.camera.truth.CameraTruth
    scene: Any  # simulator.face.scene.FaceScene
    frames: dict[str, Any]
    found: Any  # simulator.face.render.FaceTruth
    rng: np.random.Generator  # the presentation's generator, for what is drawn after the render


def draw_presentation(
    split: Split, seed: int, presentation: str, index: int, truth: Any = None, streams: tuple[str, ...] = LIVENESS
) -> Presentation:
    """Presentation ``index`` of kind ``presentation`` of ``split``: a unit (or ``truth``), a distance band, a
    scene, rendered in ``streams`` (liveness needs no RGB, which is most of a render's time)."""
    from simulator.camera.render import Capture
    from simulator.face.render import face_truth, render_face
    from simulator.face.scene import random_face_scene

    rng = _rng(seed, split.name, presentation, index)
    unit = _truths(split, seed)[int(rng.integers(split.units))]
    truth = unit if truth is None else truth
    scene = random_face_scene(rng, presentation, split.identities, distance_m=split.bands, light=split.light)
    frames = render_face(truth, scene, Capture(streams=streams, depth_range_mm=_depth_range()), rng)
    return Presentation(truth, scene, frames, face_truth(truth, scene), rng)


def _depth_range() -> tuple[int, int]:
    from terminal.models import model_by_id

    return model_by_id(MODEL_ID).camera.depth_range_mm


def truth_box_features(drawn: Presentation) -> list[float]:
    """FEATURES of the presentation's face at its IR truth box, moved and scaled by up to BOX_JITTER."""
    box = jittered(drawn.found.ir_box, drawn.rng, BOX_JITTER)
    face = Face((box[0], box[1], box[2], box[3]), 1.0, tuple(drawn.found.ir_landmarks))
    features = liveness_features(drawn.frames["ir"], drawn.frames["depth"], face, drawn.truth.ir)
    return [features[name] for name in FEATURES]


def render_presentation(split: Split, seed: int, presentation: str, index: int) -> dict[str, Any]:
    """One presentation of ``split`` as a training row: what it is, who, how far, its features."""
    drawn = draw_presentation(split, seed, presentation, index)
    return {
        "presentation": presentation,
        "identity": drawn.scene.identity,
        "distance_m": drawn.scene.distance_m,
        "features": truth_box_features(drawn),
    }


_TRUTHS: dict[tuple[str, int], list[Any]] = {}


def _truths(split: Split, seed: int) -> list[Any]:
    key = (split.name, seed)
    if key not in _TRUTHS:  # per process: a worker draws its units once
        _TRUTHS[key] = camera_truths(split, seed)
    return _TRUTHS[key]


def _render_task(task: tuple[Split, int, str, int]) -> dict[str, Any]:
    return render_presentation(*task)


def render_set(split: Split, per_presentation: int, seed: int, workers: int) -> list[dict[str, Any]]:
    """``per_presentation`` presentations of each kind (live, photo, screen, mask), in a fixed order."""
    tasks = [(split, seed, p, i) for p in PRESENTATIONS for i in range(per_presentation)]
    if workers <= 1:
        return [_render_task(task) for task in tasks]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(_render_task, tasks, chunksize=8)


def matrix(rows: Sequence[dict[str, Any]], names: Sequence[str] = MODEL_FEATURES) -> Floats:
    columns = [FEATURES.index(name) for name in names]
    return np.array([[row["features"][c] for c in columns] for row in rows], np.float64)


@dataclass(frozen=True)
class Network:
    """Standardisation, one tanh layer and a sigmoid output: all the classifier is."""

    mean: Floats
    std: Floats
    w1: Floats
    b1: Floats
    w2: Floats
    b2: Floats

    def scores(self, x: Floats) -> Floats:
        hidden = np.tanh(((x - self.mean) / self.std) @ self.w1 + self.b1)
        result: Floats = 1.0 / (1.0 + np.exp(-(hidden @ self.w2 + self.b2)))
        return result.reshape(-1)


def train_network(x: Floats, live: npt.NDArray[np.bool_], seed: int, iterations: int = ITERATIONS) -> Network:
    """Full-batch Adam on the weighted cross-entropy (live and attack weigh the same in total) plus L2."""
    rng = _rng(seed, "weights")
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = (x - mean) / std
    y = live.astype(np.float64)
    weight = np.where(live, 0.5 / max(1, int(live.sum())), 0.5 / max(1, int((~live).sum())))
    params = [
        rng.normal(0.0, 1.0 / math.sqrt(x.shape[1]), (x.shape[1], HIDDEN)),
        np.zeros(HIDDEN),
        rng.normal(0.0, 1.0 / math.sqrt(HIDDEN), (HIDDEN, 1)),
        np.zeros(1),
    ]
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, iterations + 1):
        w1, b1, w2, b2 = params
        hidden = np.tanh(z @ w1 + b1)
        p = 1.0 / (1.0 + np.exp(-(hidden @ w2 + b2).reshape(-1)))
        error = (p - y) * weight  # d loss / d logit
        g_w2 = hidden.T @ error[:, None] + L2 * w2
        g_b2 = np.array([error.sum()])
        back = (error[:, None] @ w2.T) * (1.0 - hidden**2)
        g_w1 = z.T @ back + L2 * w1
        g_b1 = back.sum(axis=0)
        for i, grad in enumerate((g_w1, g_b1, g_w2, g_b2)):
            moments[i] = beta1 * moments[i] + (1 - beta1) * grad
            squares[i] = beta2 * squares[i] + (1 - beta2) * grad * grad
            corrected = moments[i] / (1 - beta1**step)
            params[i] = params[i] - LEARNING_RATE * corrected / (np.sqrt(squares[i] / (1 - beta2**step)) + eps)
    return Network(mean, std, *params)


def to_onnx(network: Network, inputs: Sequence[str], threshold: float) -> bytes:
    """``network`` as an ONNX model (float32; Sub, Div, Gemm, Tanh, Gemm, Sigmoid) naming its inputs and threshold."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: Floats) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["standard"]),
        helper.make_node("Gemm", ["standard", "w1", "b1"], ["layer1"]),
        helper.make_node("Tanh", ["layer1"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["live"]),
    ]
    graph = helper.make_graph(
        nodes,
        "naiad-liveness",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(inputs)])],
        [helper.make_tensor_value_info("live", TensorProto.FLOAT, ["N", 1])],
        [
            const("mean", network.mean),
            const("std", network.std),
            const("w1", network.w1),
            const("b1", network.b1),
            const("w2", network.w2),
            const("b2", network.b2),
        ],
    )
    model = helper.make_model(
        graph, producer_name="naiad tools/train_liveness.py", opset_imports=[helper.make_opsetid("", ONNX_OPSET)]
    )
    model.ir_version = ONNX_IR_VERSION
    helper.set_model_props(model, {META_FEATURES: ",".join(inputs), META_THRESHOLD: repr(threshold)})
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def error_rates(scores: Floats, presentations: Sequence[str], threshold: float) -> dict[str, float]:
    """ISO/IEC 30107-3 at ``threshold``: APCER per attack (attacks called live) and BPCER (live refused)."""
    kinds = np.array(presentations)
    rates = {f"apcer_{a}": float(np.mean(scores[kinds == a] >= threshold)) for a in ATTACKS if np.any(kinds == a)}
    if np.any(kinds == LIVE):
        rates["bpcer"] = float(np.mean(scores[kinds == LIVE] < threshold))
    return rates


def fit(rows: Sequence[dict[str, Any]], seed: int, iterations: int) -> tuple[Network, float, dict[str, Any]]:
    """Train on the first identities, choose the threshold on the last VALIDATION_SHARE of them."""
    identities = sorted({row["identity"] for row in rows})
    aside = set(identities[len(identities) - max(1, round(len(identities) * VALIDATION_SHARE)) :])
    train = [row for row in rows if row["identity"] not in aside]
    check = [row for row in rows if row["identity"] in aside] or train
    network = train_network(matrix(train), np.array([row["presentation"] == LIVE for row in train]), seed, iterations)
    scores = network.scores(matrix(check))
    live_scores = np.sort(scores[[row["presentation"] == LIVE for row in check]])
    chosen = float(np.clip(np.quantile(live_scores, VALIDATION_BPCER), 0.01, 0.99)) if len(live_scores) else 0.5
    # Move the output's bias so that the chosen score becomes THRESHOLD: the configuration's default then fits.
    network = dataclasses.replace(network, b2=network.b2 - math.log(chosen / (1.0 - chosen)))
    threshold = THRESHOLD
    record = {
        "train_identities": sorted(set(identities) - aside),
        "validation_identities": sorted(aside),
        "validation_score_chosen": chosen,
        "validation": error_rates(network.scores(matrix(check)), [row["presentation"] for row in check], threshold),
    }
    return network, threshold, record


def build(per_presentation: int, seed: int, workers: int, iterations: int = ITERATIONS) -> tuple[bytes, dict[str, Any]]:
    """Render, measure, train, export: the model's bytes and its training record."""
    rows = render_set(training_split(), per_presentation, seed, workers)
    network, threshold, record = fit(rows, seed, iterations)
    model = to_onnx(network, MODEL_FEATURES, threshold)
    features = matrix(rows, FEATURES)
    live = np.array([row["presentation"] == LIVE for row in rows])
    probe = [next(row for row in rows if row["presentation"] == kind) for kind in PRESENTATIONS]
    record.update(
        probe={  # one row of each kind and its score: what another machine's run is compared with
            "features": [row["features"] for row in probe],
            "scores": [float(v) for v in network.scores(matrix(probe))],
        },
        features=list(MODEL_FEATURES),
        threshold=threshold,
        seed=seed,
        per_presentation=per_presentation,
        iterations=iterations,
        hidden=HIDDEN,
        distance_bands_m=[list(b) for b in TRAIN_BANDS],
        light="LIGHT_TRAIN",
        camera_units=TRAIN_UNITS,
        box_jitter=BOX_JITTER,
        features_sha256=hashlib.sha256(features.tobytes()).hexdigest(),
        onnx_sha256=hashlib.sha256(model).hexdigest(),
        live_ranges={
            name: [float(features[live, i].min()), float(features[live, i].max())] for i, name in enumerate(FEATURES)
        },
    )
    return model, record


def reduced_run(seed: int = SEED) -> tuple[bytes, dict[str, Any]]:
    """The test's quick run: the same code path, REDUCED's few presentations and iterations, one process."""
    return build(REDUCED["per_presentation"], seed, 1, REDUCED["iterations"])


def environment() -> dict[str, str]:
    """What the bytes depend on besides the code: the machine and the numeric libraries' versions."""
    import cv2
    import onnx

    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onnx": onnx.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-presentation", type=int, default=500, help="presentations of each kind")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the model in --out")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, record = build(args.per_presentation, args.seed, args.workers)
    reduced_model, reduced_record = reduced_run(args.seed)
    record["reduced_run"] = {
        **REDUCED,
        "onnx_sha256": hashlib.sha256(reduced_model).hexdigest(),
        "features_sha256": reduced_record["features_sha256"],
        "probe": reduced_record["probe"],
    }
    record["environment"] = environment()
    seconds = time.perf_counter() - start
    onnx_path, json_path = args.out / "liveness.onnx", args.out / "liveness.json"
    if args.check:
        same = onnx_path.read_bytes() == model
        print(f"{'same bytes as' if same else 'DIFFERS from'} {onnx_path} ({seconds:.0f} s)")
        return 0 if same else 1
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path.write_bytes(model)
    json_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    rates = ", ".join(f"{k} {v:.3%}" for k, v in record["validation"].items())
    print(f"wrote {onnx_path} ({len(model)} bytes) and {json_path} in {seconds:.0f} s")
    print(f"threshold {record['threshold']}; validation (training identities held aside): {rates}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
