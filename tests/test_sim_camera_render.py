"""The simulator's camera renderer against plain OpenCV: the geometry a calibration must recover, and the depth."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from simulator.camera.calibration_set import write_set
from simulator.camera.jig import JIG_POSES, default_scene, jig_poses
from simulator.camera.render import Capture, EmptyScene, WallScene, expected_plane_rms_mm, render, sigma_z_mm
from simulator.camera.truth import DRIFT, CameraTruth, draw_truth, load_or_draw
from terminal.camera import Board, Extrinsics, Intrinsics
from terminal.models import model_by_id

DF2 = model_by_id("df2")
FROG = model_by_id("frog-pro")


def _detector(board: Board) -> tuple[cv2.aruco.CharucoBoard, cv2.aruco.CharucoDetector]:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
    cv_board = cv2.aruco.CharucoBoard(
        (board.squares_x, board.squares_y), board.square_length_m, board.marker_length_m, dictionary
    )
    return cv_board, cv2.aruco.CharucoDetector(cv_board)


def _truth(seed: int = 5, model: object = DF2) -> CameraTruth:
    return draw_truth(model, np.random.default_rng(seed))  # type: ignore[arg-type]


def _k(camera: Intrinsics) -> np.ndarray:
    return np.array(camera.K)


def test_plain_opencv_calibrates_a_written_set_to_the_truth(tmp_path: Path) -> None:
    """The renderer's accuracy test: OpenCV on the set finds the unit's truth within the issue's limits."""
    out = write_set(tmp_path / "set", views=15, seed=11, model="df2")
    truth = CameraTruth.from_dict(json.loads((out / "truth.json").read_text()))
    cv_board, detector = _detector(Board.read(out / "board.json"))
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"ir": [], "rgb": []}
    for view in range(15):
        for stream in ("ir", "rgb"):
            image = cv2.imread(str(out / f"{stream}_{view:02d}.png"), cv2.IMREAD_UNCHANGED)
            corners, ids, _, _ = detector.detectBoard(image)
            assert ids is not None and len(ids) >= 12, (stream, view)
            found[stream].append((corners, ids))
    solved = {}
    for stream, camera in (("ir", truth.ir), ("rgb", truth.rgb)):
        points = [cv_board.matchImagePoints(c, i) for c, i in found[stream]]
        rms, k, dist, _, _ = cv2.calibrateCamera(
            [o for o, _ in points], [p for _, p in points], (camera.width, camera.height), None, None
        )
        assert rms <= 0.3
        assert abs(k[0, 0] / camera.fx - 1) < 0.003 and abs(k[1, 1] / camera.fy - 1) < 0.003
        assert math.hypot(k[0, 2] - camera.cx, k[1, 2] - camera.cy) < 1.5
        solved[stream] = (k, dist)
    objects, ir_points, rgb_points = [], [], []
    for (ir_c, ir_i), (rgb_c, rgb_i) in zip(found["ir"], found["rgb"], strict=True):
        common = np.intersect1d(ir_i.ravel(), rgb_i.ravel())
        if len(common) < 6:
            continue
        pick_ir = [int(np.where(ir_i.ravel() == c)[0][0]) for c in common]
        pick_rgb = [int(np.where(rgb_i.ravel() == c)[0][0]) for c in common]
        objects.append(cv_board.getChessboardCorners()[common].astype(np.float32))
        ir_points.append(ir_c[pick_ir].astype(np.float32))
        rgb_points.append(rgb_c[pick_rgb].astype(np.float32))
    result = cv2.stereoCalibrate(
        objects, ir_points, rgb_points, *solved["ir"], *solved["rgb"], (truth.ir.width, truth.ir.height),
        flags=cv2.CALIB_FIX_INTRINSIC,
    )  # fmt: skip
    rms, rotation, t = result[0], result[5], result[6]
    assert rms <= 0.3
    assert np.abs(t.ravel() - np.array(truth.rgb_from_ir.t_m)).max() * 1000 < 0.5
    relative = rotation @ np.array(truth.rgb_from_ir.R).T
    angle = math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(relative) - 1) / 2))))
    assert angle < 0.1


def test_a_flat_wall_at_half_a_metre_has_the_configured_depth_noise_and_few_holes() -> None:
    truth = _truth()
    frames = render(truth, WallScene(0.5), Capture(streams=("depth",)), np.random.default_rng(1))
    depth = frames["depth"].astype(np.float64)
    h, w = depth.shape
    roi = depth[h // 10 : -h // 10, w // 10 : -w // 10]
    valid = roi > 0
    fill = valid.mean()
    assert 0.95 < fill < 0.999  # dropouts exist, the fill rate stays high
    v, u = np.nonzero(valid)
    design = np.column_stack([u, v, np.ones(len(u))])
    z = roi[valid]
    residual = z - design @ np.linalg.lstsq(design, z, rcond=None)[0]
    expected = float(sigma_z_mm(truth, float(np.median(z))))
    assert abs(residual.std() / expected - 1) < 0.10
    assert abs(np.median(z) - 500) < 1  # the optical axis meets the wall at 0.5 m; no tilt


def test_depth_noise_grows_with_the_square_of_the_distance() -> None:
    truth = _truth()
    stds = []
    for distance in (0.4, 0.8):
        depth = render(truth, WallScene(distance), Capture(streams=("depth",)), np.random.default_rng(2))["depth"]
        centre = depth[150:250, 250:390].astype(np.float64)
        stds.append(centre[centre > 0].std())
    assert 3.0 < stds[1] / stds[0] < 5.0  # 4x, less the quantisation that matters at 0.4 m


def test_a_frog_pro_wall_near_by_dithers_the_millimetre_quantisation() -> None:
    """sigma_z is 0.19 mm at 0.4 m: a frontal wall at a whole millimetre must not read one value everywhere."""
    from camera.depth import measure_depth

    truth = _truth(model=FROG)
    capture = Capture(streams=("depth",), depth_range_mm=FROG.camera.depth_range_mm)
    depth = render(truth, WallScene(0.4), capture, np.random.default_rng(3))["depth"]
    centre = depth[300:500, 500:780]
    assert np.unique(centre[centre > 0]).size >= 2
    quality = measure_depth(depth, truth.ir, truth.projector_baseline_mm, 0.4)
    assert quality.plane_rms_mm == pytest.approx(expected_plane_rms_mm(truth, 400.0), rel=0.1)
    assert abs(quality.z_error_mm or 0) < 0.2


def test_each_capture_draws_fresh_sensor_noise() -> None:
    """Two captures of the same dark room share no noise pattern (not even a shifted one)."""
    truth = _truth()

    def noise(seed: int) -> np.ndarray:
        frame = render(truth, EmptyScene(), Capture(streams=("ir",)), np.random.default_rng(seed))["ir"]
        grey = frame.astype(np.float32)
        return grey - cv2.GaussianBlur(grey, (0, 0), 3)

    first, second = noise(1), noise(2)
    assert 1.0 < first.std() < 1.5  # SENSOR_NOISE_DN, rounded
    _, response = cv2.phaseCorrelate(first, second)
    assert response < 0.05
    assert np.array_equal(noise(1), first)  # the seed still decides the frame


def test_depth_outside_the_range_and_without_projector_is_zero() -> None:
    truth = _truth()
    near = render(
        truth, WallScene(0.1), Capture(streams=("depth",), depth_range_mm=(250, 1200)), np.random.default_rng()
    )
    assert not near["depth"].any()
    off = render(truth, WallScene(0.5), Capture(streams=("depth",), projector=False), np.random.default_rng())
    assert not off["depth"].any()
    empty = render(truth, EmptyScene(), Capture(), np.random.default_rng())
    assert not empty["depth"].any() and empty["ir"].mean() < 60


def test_speckle_shows_dots_and_the_defocus_blurs_rgb() -> None:
    truth = _truth()
    scene = default_scene(truth, DF2, Board())
    flood = render(truth, scene, Capture(streams=("ir", "rgb")), np.random.default_rng(3))
    speckle = render(truth, scene, Capture(streams=("ir",), speckle=True), np.random.default_rng(3))["ir"]
    blurred = render(truth, scene, Capture(streams=("rgb",), rgb_defocus=True), np.random.default_rng(3))["rgb"]

    def detail(image: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.GaussianBlur(image, (0, 0), 0.8), cv2.CV_64F).var())

    paper = cv2.erode((flood["ir"] > 150).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0

    def fine(image: np.ndarray) -> float:
        grey = image.astype(np.float32)
        return float((grey - cv2.GaussianBlur(grey, (0, 0), 3))[paper].std())

    assert fine(speckle) > 2.5 * fine(flood["ir"])  # dots, not a smooth flood
    assert detail(blurred) < 0.2 * detail(flood["rgb"])


@pytest.mark.parametrize("model", [DF2, FROG], ids=["df2", "frog-pro"])
def test_the_default_scene_is_a_board_opencv_finds_in_ir_and_rgb(model: object) -> None:
    truth = _truth(model=model)
    frames = render(
        truth, default_scene(truth, model, Board()), Capture(streams=("ir", "rgb")), np.random.default_rng()
    )  # type: ignore[arg-type]
    _, detector = _detector(Board())
    for stream in ("ir", "rgb"):
        _, ids, _, _ = detector.detectBoard(frames[stream])
        assert ids is not None and len(ids) >= 50, stream


def test_jig_poses_keep_most_of_the_board_in_view_and_spread_tilts_and_places() -> None:
    truth = _truth()
    board = Board()
    poses = jig_poses(truth, DF2, board, np.random.default_rng(4))
    assert len(poses) == JIG_POSES
    cv_board, _ = _detector(board)
    corners = cv_board.getChessboardCorners().astype(np.float64)
    centres, tilts = [], []
    for pose in poses:
        for camera, rotation, t in ((truth.ir, np.eye(3), np.zeros(3)), (truth.rgb, *_rt(truth.rgb_from_ir))):
            r_board, _ = cv2.Rodrigues(np.array(pose.rvec))
            rvec, _ = cv2.Rodrigues(rotation @ r_board)
            tvec = rotation @ np.array(pose.tvec_m) + t
            image, _ = cv2.projectPoints(corners, rvec, tvec, _k(camera), np.array(camera.dist))
            inside = (image[:, 0, 0] > 5) & (image[:, 0, 0] < camera.width - 5)
            inside &= (image[:, 0, 1] > 5) & (image[:, 0, 1] < camera.height - 5)
            assert inside.mean() > 0.45
            if camera is truth.ir:
                centres.append(image[:, 0].mean(axis=0) / (camera.width, camera.height))
        tilts.append(math.degrees(np.linalg.norm(pose.rvec[:2])))
    centres_ = np.array(centres)
    assert centres_[:, 0].min() < 0.35 and centres_[:, 0].max() > 0.65
    assert centres_[:, 1].min() < 0.35 and centres_[:, 1].max() > 0.65
    assert max(tilts[:15]) >= 30 and min(tilts) < 10
    assert poses == jig_poses(truth, DF2, board, np.random.default_rng(4))  # deterministic


def _rt(motion: Extrinsics) -> tuple[np.ndarray, np.ndarray]:
    return np.array(motion.R), np.array(motion.t_m)


def test_each_unit_keeps_its_own_truth_within_the_model_spread(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = load_or_draw(tmp_path / "a", "DF2AAAA", DF2)
    assert (tmp_path / "a" / "camera.json").exists()
    assert load_or_draw(tmp_path / "a", "DF2AAAA", DF2) == first
    assert load_or_draw(tmp_path / "b", "DF2BBBB", DF2) != first
    spread = DF2.camera.spread
    for seed in range(20):
        truth = _truth(seed)
        assert abs(truth.ir.fx / DF2.camera.focal_length_px - 1) <= spread.focal_pct / 100
        assert abs(truth.rgb.cx - (truth.rgb.width - 1) / 2) <= spread.principal_px
        assert spread.k1[0] <= truth.ir.dist[0] <= spread.k1[1]
        offset = np.array(truth.rgb_from_ir.t_m) * 1000 - DF2.camera.rgb_from_ir_t_mm
        assert np.abs(offset).max() <= spread.translation_mm
        assert CameraTruth.from_dict(truth.to_dict()) == truth


def test_a_drifted_module_moves_by_the_documented_offsets() -> None:
    truth = _truth()
    drifted = truth.drifted()
    assert (drifted.ir.cx - truth.ir.cx, drifted.ir.cy - truth.ir.cy) == pytest.approx(DRIFT.ir_principal_px)
    relative = np.array(drifted.rgb_from_ir.R) @ np.array(truth.rgb_from_ir.R).T
    angle = math.degrees(math.acos((np.trace(relative) - 1) / 2))
    assert angle == pytest.approx(DRIFT.rotation_deg)
    moved = (np.array(drifted.rgb_from_ir.t_m) - np.array(truth.rgb_from_ir.t_m)) * 1000
    assert moved == pytest.approx(DRIFT.translation_mm)
    assert drifted.rgb == truth.rgb


def test_the_ray_cache_keeps_within_its_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.camera import optics

    small = Intrinsics(64, 40, 50.0, 50.0, 31.5, 19.5, (-0.1, 0.02, 0.0, 0.0, 0.0))
    other = dataclasses.replace(small, fx=51.0)
    monkeypatch.setattr(optics, "CACHE_BYTES", 64 * 40 * 2 * 4 + 1)  # room for one camera's rays
    monkeypatch.setattr(optics, "_cache", type(optics._cache)())
    first = optics.rays(small)
    assert optics.rays(small) is first  # cached
    optics.rays(other)
    assert optics.rays(small) is not first  # evicted for the other camera, computed again
    assert np.array_equal(optics.rays(small), first)


def test_a_units_truth_drawn_by_two_threads_at_once_is_one_truth(tmp_path: Path) -> None:
    """The station's jig and the unit's own capture may both draw a fresh unit's truth: neither may fail."""
    from concurrent.futures import ThreadPoolExecutor

    from simulator.camera.truth import load_or_draw
    from terminal.models import model_by_id

    for attempt in range(20):
        unit = tmp_path / f"u{attempt}"
        unit.mkdir()
        with ThreadPoolExecutor(4) as pool:
            truths = list(pool.map(load_or_draw, [unit] * 4, ["DF2RACE0001"] * 4, [model_by_id("df2")] * 4))
        assert all(t == truths[0] for t in truths)
        assert not [p.name for p in unit.iterdir() if p.name.endswith(".tmp")]
