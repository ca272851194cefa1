"""Liveness features on synthetic depth and IR (a head's relief, a flat photo, a dark screen), the ONNX model's
loading and the combined decision, and the training script's reproduction of the shipped model."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from camera.depth import UnusableFrame, pixel_rays
from camera.faceconfig import FaceConfig
from camera.faces import Face
from camera.liveness import (
    FEATURES,
    SHIPPED_MODEL,
    LivenessModel,
    LivenessModelError,
    assess_liveness,
    hard_failures,
    liveness_features,
)
from terminal.camera import Intrinsics

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import train_liveness

IR = Intrinsics(640, 400, 460.0, 460.0, 320.0, 200.0, (-0.08, 0.03, 0.0, 0.0, 0.0))
HALF_WIDTH_MM, HALF_HEIGHT_MM = 75.0, 100.0
# Landmarks in face coordinates (s, t in -1..1 across the box): eyes, nose tip, mouth corners.
MARKS = ((-0.38, -0.2), (0.38, -0.2), (0.0, 0.15), (-0.32, 0.52), (0.32, 0.52))


def relief_mm(s: npt.NDArray[np.float64], t: npt.NDArray[np.float64], depth: float) -> npt.NDArray[np.float64]:
    """How far behind its nose-tip plane a head-like surface is (``depth`` 1 = a live face's proportions): an
    ellipsoid 80 mm deep at its rim, a nose 25 mm proud of the eyes, eye sockets."""
    back = 80.0 * (0.75 * s**2 + 0.35 * t**2)
    nose = -25.0 * np.exp(-(s**2 / 0.03 + (t - 0.05) ** 2 / 0.09))
    sockets = sum(8.0 * np.exp(-((s - x) ** 2 + (t - y) ** 2) / 0.02) for x, y in MARKS[:2])
    return depth * (back + nose + sockets + 25.0)


def scene(
    z_mm: float = 500.0,
    *,
    depth: float = 1.0,
    albedo: float = 0.55,
    texture: float = 0.0,
    ambient: float = 0.0,
    seed: int = 0,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint16], Face]:
    """(IR, depth, the face's IR box) of a face at ``z_mm``: ``depth`` 0 is a flat photo of it.  The IR is a
    flood (``albedo`` x cos(incidence) x (0.5 m / range)^2) plus ``ambient`` x ``albedo``, in df2's DN."""
    rng = np.random.default_rng(seed)
    rays = pixel_rays(IR)
    s, t = rays[..., 0] * z_mm / HALF_WIDTH_MM, rays[..., 1] * z_mm / HALF_HEIGHT_MM
    inside = s**2 + t**2 <= 1.0
    z = z_mm + relief_mm(s, t, depth)
    points = np.dstack([rays * z[..., None], z])
    normals = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    ranges = np.linalg.norm(points, axis=2)
    cos = np.abs(np.sum(normals * points, axis=2)) / (np.linalg.norm(normals, axis=2) * ranges)
    noise = z**2 * 0.08 / (460.0 * 40.0)
    depth_mm = np.where(inside, np.rint(z + rng.normal(size=z.shape) * noise), 0).astype(np.uint16)
    pattern = 1.0 + texture * np.sign(np.sin(s * 40) * np.sin(t * 37))
    level = 215.0 / 0.88 * albedo * pattern * (cos * (500.0 / ranges) ** 2 + ambient)
    ir = np.clip(np.where(inside, level, 3.0) + rng.normal(size=z.shape) * 1.2, 0, 255).astype(np.uint8)
    fx, fy = IR.fx / z_mm, IR.fy / z_mm
    box = (
        IR.cx - HALF_WIDTH_MM * fx,
        IR.cy - HALF_HEIGHT_MM * fy,
        IR.cx + HALF_WIDTH_MM * fx,
        IR.cy + HALF_HEIGHT_MM * fy,
    )
    marks = tuple((IR.cx + u * HALF_WIDTH_MM * fx, IR.cy + v * HALF_HEIGHT_MM * fy) for u, v in MARKS)
    return ir, depth_mm, Face(box, 0.9, marks)


def shifted(face: Face, dx: float, dy: float, scale: float = 1.0) -> Face:
    cx, cy = face.centre[0] + dx * face.width, face.centre[1] + dy * face.height
    w, h = face.width * scale / 2, face.height * scale / 2
    return Face((cx - w, cy - h, cx + w, cy + h), face.score, face.landmarks)


@pytest.fixture(scope="module")
def head() -> dict[str, float]:
    ir, depth, face = scene()
    return liveness_features(ir, depth, face, IR)


def test_features_are_every_name_in_order(head: dict[str, float]) -> None:
    assert tuple(head) == FEATURES
    assert all(math.isfinite(v) for v in head.values())


def test_a_head_has_relief_nose_and_curvature(head: dict[str, float]) -> None:
    assert head["depth_fill"] > 0.95
    assert head["distance_mm"] == pytest.approx(500 + 25 + 20, abs=30)
    assert head["plane_rms_mm"] > 5.0
    assert 40.0 < head["depth_span_mm"] < 110.0
    assert 15.0 < head["nose_eye_mm"] < 40.0
    assert head["nose_plane_mm"] > 10.0
    assert head["curvature_min"] > 2.0 and head["curvature_mean"] > head["curvature_min"]
    assert head["relief_rms_mm"] > 2.0
    assert head["ir_reflectance"] == pytest.approx(0.55 * 215 / 0.88 / 255, rel=0.1)
    assert abs(head["ir_ambient"]) < 0.05
    assert hard_failures(head) == []


def test_a_flat_photo_is_refused_by_the_geometry(head: dict[str, float]) -> None:
    ir, depth, face = scene(depth=0.0, albedo=0.8, texture=0.3)
    photo = liveness_features(ir, depth, face, IR)
    assert photo["plane_rms_mm"] < 1.0
    assert abs(photo["nose_eye_mm"]) < 2.0
    assert abs(photo["curvature_mean"]) < 1.0
    assert photo["ir_contrast"] > 2 * head["ir_contrast"]
    assert any("nearly flat" in line for line in hard_failures(photo))


def test_a_hollow_face_is_refused_by_its_nose() -> None:
    """A face pressed inside out (a hollow mask seen from behind): relief, but the nose farther than the eyes."""
    hollow = liveness_features(*scene(z_mm=600.0, depth=-1.0), IR)
    assert hollow["nose_eye_mm"] < -15 and hollow["plane_rms_mm"] > 5
    assert any("The nose is -" in line for line in hard_failures(hollow))


def test_a_dark_screen_is_refused_by_the_ir(head: dict[str, float]) -> None:
    ir, depth, face = scene(depth=0.0, albedo=0.04)
    screen = liveness_features(ir, depth, face, IR)
    assert screen["ir_reflectance"] < 0.1
    assert any("dark in infrared" in line for line in hard_failures(screen))


def test_ir_reflectance_does_not_depend_on_the_distance() -> None:
    near, far = (liveness_features(*scene(z_mm), IR) for z_mm in (380.0, 760.0))
    assert near["ir_level"] > 3 * far["ir_level"]
    assert near["ir_reflectance"] == pytest.approx(far["ir_reflectance"], rel=0.1)


def test_sunlight_is_told_from_the_flood(head: dict[str, float]) -> None:
    """Ambient IR brightens the face evenly; the flood fit gives it its own share and keeps the reflectance."""
    sunny = liveness_features(*scene(ambient=0.3), IR)
    assert sunny["ir_level"] > 1.3 * head["ir_level"]
    assert sunny["ir_reflectance"] == pytest.approx(head["ir_reflectance"], rel=0.1)
    assert sunny["ir_ambient"] == pytest.approx(0.3, abs=0.08)
    assert sunny["ir_contrast"] == pytest.approx(head["ir_contrast"], rel=0.3)


@pytest.mark.parametrize(
    ("dx", "dy", "scale"), [(0.1, 0.0, 1.0), (-0.1, 0.1, 1.0), (0.0, -0.1, 1.1), (0.05, 0.05, 0.9)]
)
def test_a_box_off_by_a_tenth_measures_the_same_face(
    head: dict[str, float], dx: float, dy: float, scale: float
) -> None:
    ir, depth, face = scene()
    moved = liveness_features(ir, depth, shifted(face, dx, dy, scale), IR)
    assert hard_failures(moved) == []
    for name in ("plane_rms_mm", "depth_span_mm", "nose_eye_mm", "ir_reflectance"):
        assert moved[name] == pytest.approx(head[name], rel=0.35), name


def test_no_depth_on_the_face_is_refused() -> None:
    ir, depth, face = scene()
    features = liveness_features(ir, np.zeros_like(depth), face, IR)
    assert features["depth_fill"] == 0.0 and features["plane_rms_mm"] == 0.0
    assert any("too little depth" in line for line in hard_failures(features))


def test_a_box_outside_the_image_measures_nothing() -> None:
    ir, depth, _face = scene()
    features = liveness_features(ir, depth, Face((-300.0, -300.0, -200.0, -180.0), 0.9), IR)
    assert set(features.values()) == {0.0}


def test_frames_of_the_wrong_layout_are_refused() -> None:
    ir, depth, face = scene()
    with pytest.raises(UnusableFrame):
        liveness_features(ir, depth.astype(np.float32), face, IR)  # type: ignore[arg-type]
    with pytest.raises(UnusableFrame):
        liveness_features(ir[:200], depth, face, IR)


def constant_model(tmp_path: Path, score: float, threshold: float = 0.5) -> LivenessModel:
    """A real ONNX model of the training script's shape whose score is ``score`` whatever it sees."""
    n = len(train_liveness.MODEL_FEATURES)
    hidden = train_liveness.HIDDEN
    network = train_liveness.Network(
        np.zeros(n), np.ones(n), np.zeros((n, hidden)), np.zeros(hidden), np.zeros((hidden, 1)),
        np.array([math.log(score / (1 - score))]),
    )  # fmt: skip
    path = tmp_path / f"constant-{score}.onnx"
    path.write_bytes(train_liveness.to_onnx(network, train_liveness.MODEL_FEATURES, threshold))
    return LivenessModel.load(path)


def test_the_decision_needs_the_hard_checks_and_the_classifier(tmp_path: Path) -> None:
    ir, depth, face = scene()
    trusting, doubting = constant_model(tmp_path, 0.9), constant_model(tmp_path, 0.2)
    live = assess_liveness(ir, depth, face, IR, trusting)
    assert live.live and live.score == pytest.approx(0.9, abs=1e-5) and live.threshold == 0.5
    assert live.failures == () and set(FEATURES) <= set(live.checks)
    unsure = assess_liveness(ir, depth, face, IR, doubting)
    assert not unsure.live and unsure.score == pytest.approx(0.2, abs=1e-5)
    assert "classifier" in unsure.failures[0]
    assert assess_liveness(ir, depth, face, IR, doubting, threshold=0.1).live  # the configured threshold wins
    photo = assess_liveness(*scene(depth=0.0, albedo=0.8), IR, trusting)
    assert not photo.live and photo.score == 0.0 and photo.checks["model_score"] == pytest.approx(0.9, abs=1e-5)


def test_a_model_that_cannot_serve_is_refused_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(LivenessModelError, match="cannot be read"):
        LivenessModel.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(LivenessModelError, match="not an ONNX model"):
        LivenessModel.load(tmp_path / "junk.onnx")
    network = train_liveness.Network(
        np.zeros(2), np.ones(2), np.zeros((2, 4)), np.zeros(4), np.zeros((4, 1)), np.zeros(1)
    )
    (tmp_path / "alien.onnx").write_bytes(train_liveness.to_onnx(network, ("colour", "height"), 0.5))
    with pytest.raises(LivenessModelError, match="does not name liveness features"):
        LivenessModel.load(tmp_path / "alien.onnx")
    (tmp_path / "sure.onnx").write_bytes(train_liveness.to_onnx(network, ("depth_fill", "ir_level"), 1.5))
    with pytest.raises(LivenessModelError, match="threshold"):
        LivenessModel.load(tmp_path / "sure.onnx")


RECORD = SHIPPED_MODEL.with_suffix(".json")


def test_the_shipped_model_is_the_one_its_record_describes() -> None:
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    model = LivenessModel.load()
    assert hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest() == record["onnx_sha256"]
    assert list(model.inputs) == record["features"] and model.threshold == record["threshold"]
    assert FaceConfig().liveness.threshold is None  # by default the model's own threshold decides
    scores = [model.score(dict(zip(FEATURES, row, strict=True))) for row in record["probe"]["features"]]
    assert np.allclose(scores, record["probe"]["scores"], atol=1e-5)  # float32 ONNX against float64 numpy


def test_the_training_script_reproduces_its_recorded_run() -> None:
    """The reduced run (the same code path as the full one, fewer renders and steps) against its record: the
    same bytes on the machine and libraries that made the record; within a stated tolerance on others."""
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    expected = record["reduced_run"]
    model, reduced = train_liveness.reduced_run(record["seed"])
    if train_liveness.environment() == record["environment"]:
        assert reduced["features_sha256"] == expected["features_sha256"]
        assert hashlib.sha256(model).hexdigest() == expected["onnx_sha256"]
    else:  # docs/liveness.md: other CPUs and library builds round differently
        assert np.allclose(reduced["probe"]["features"], expected["probe"]["features"], rtol=1e-3, atol=0.05)
        assert np.allclose(reduced["probe"]["scores"], expected["probe"]["scores"], atol=0.02)


def test_the_bench_counts_failures_to_acquire_apart_for_attacks_and_live_faces_alike() -> None:
    """ISO/IEC 30107-3: a presentation not acquired (no face, poor quality) is reported apart for every kind and
    left out of APCER and BPCER alike; an attack the station does not find is not a correct rejection."""
    from bench.bench_liveness import station_rates

    decided = {
        "photo": ["no-face", "attack"],
        "screen": ["attack", "attack"],
        "mask": ["poor-quality", "poor-quality", "live", "attack"],
        "live": ["poor-quality", "live", "live", "attack"],
    }
    rows = [{"presentation": kind, "decision": d, "station_features": None} for kind, ds in decided.items() for d in ds]
    unused = LivenessModel(None, FEATURES, train_liveness.THRESHOLD, Path("-"))  # every row stopped before it
    rates, processed = station_rates(rows, unused)
    assert processed == {"live": 3, "photo": 1, "screen": 2, "mask": 2}
    assert rates["mask"] == 0.5 and rates["photo"] == 0.0 and rates["screen"] == 0.0
    assert rates["bpcer"] == pytest.approx(1 / 3)
    assert rates["not_acquired_mask"] == 0.5 and rates["not_acquired_photo"] == 0.5
    assert rates["not_acquired_live"] == 0.25 and rates["not_acquired_screen"] == 0.0


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_feature_that_is_not_a_finite_number_is_refused(name: str, bad: float) -> None:
    """Every comparison with NaN is false: a range check alone, and then ``score < threshold``, let it through."""
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    features = dict(zip(FEATURES, record["probe"]["features"][0], strict=True))  # the record's live row
    assert not hard_failures(features)
    failures = hard_failures({**features, name: bad})
    assert failures and any(name in failure for failure in failures)


def test_a_classifier_score_that_is_nan_is_not_live(tmp_path: Path) -> None:
    ir, depth, face = scene()
    model = constant_model(tmp_path, 0.9)
    model.score = lambda features: math.nan  # type: ignore[method-assign]
    result = assess_liveness(ir, depth, face, IR, model)
    assert not result.live and result.failures


def test_a_nan_feature_is_refused_and_the_result_is_valid_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ir, depth, face = scene()
    features = liveness_features(ir, depth, face, IR)
    monkeypatch.setattr("camera.liveness.liveness_features", lambda *args: {**features, "ir_specular": math.nan})
    result = assess_liveness(ir, depth, face, IR, constant_model(tmp_path, 0.9))
    assert not result.live and result.score == 0.0 and "ir_specular" in " ".join(result.failures)
    assert "ir_specular" not in result.checks
    json.dumps(result.as_dict(), allow_nan=False)
