"""Calibration's parts on OpenCV-made views with a known camera: detection, view selection, the solve, limits."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from charuco_render import IR, RGB, RGB_FROM_IR, Pose, poses, render, rgb_pose

from camera.calibrate import Calibration, calibrate_camera, calibrate_views
from camera.detect import Detection, detect, match_points
from camera.errors import Skip, TooFewViews
from camera.views import PairSelector, ViewSelector, min_corners
from terminal.camera import Board, BoardFileError, CameraCalibration
from terminal.models import CameraLimits

BOARD = Board()


@pytest.fixture(scope="module")
def pairs() -> list[tuple[Detection, Detection]]:
    views = poses(BOARD, IR, 14, seed=3)
    return [
        (
            detect(render(BOARD, IR, p, seed=i), BOARD),
            detect(render(BOARD, RGB, rgb_pose(p, RGB_FROM_IR), colour=True), BOARD),
        )
        for i, p in enumerate(views)
    ]


@pytest.fixture(scope="module")
def calibration(pairs: list[tuple[Detection, Detection]]) -> Calibration:
    return calibrate_views(pairs, BOARD, (IR.width, IR.height), (RGB.width, RGB.height))


def test_detect_finds_the_corners_where_the_camera_puts_them() -> None:
    pose = poses(BOARD, IR, 1, seed=5)[0]
    detection = detect(render(BOARD, IR, pose), BOARD)
    objects, points = match_points(detection, BOARD)
    projected, _ = cv2.projectPoints(
        objects.astype(np.float64), np.array(pose.rvec), np.array(pose.tvec_m), np.array(IR.K), np.array(IR.dist)
    )
    errors = np.linalg.norm(projected.reshape(-1, 2) - points, axis=1)
    assert detection.count >= 50 and detection.image_size == (IR.width, IR.height)
    assert float(np.sqrt(np.mean(errors**2))) < 0.2
    assert detection.ids.dtype == np.int32 and detection.corners.shape == (detection.count, 2)


def test_detect_takes_colour_and_sixteen_bit_images_alike() -> None:
    pose = poses(BOARD, IR, 1, seed=5)[0]
    image = render(BOARD, IR, pose)
    plain = detect(image, BOARD)
    colour = detect(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), BOARD)
    deep = detect(image.astype(np.uint16) * 4, BOARD)  # a 10-bit sensor in a 16-bit PNG
    assert plain.count == colour.count == deep.count
    np.testing.assert_allclose(plain.corners, colour.corners, atol=1e-3)


def test_no_board_gives_no_corners_and_no_sharpness() -> None:
    detection = detect(np.full((300, 400), 128, np.uint8), BOARD)
    assert detection.count == 0 and detection.sharpness == 0.0
    assert match_points(detection, BOARD)[0].shape == (0, 3)


def test_sharpness_falls_with_blur_as_an_edge_width_would() -> None:
    pose = poses(BOARD, IR, 1, seed=5)[0]
    sharp = detect(render(BOARD, IR, pose), BOARD).sharpness
    blurred = detect(render(BOARD, IR, pose, blur_sigma=1.2), BOARD).sharpness
    assert sharp > 0.4
    assert blurred == pytest.approx(1 / (1.2 * np.sqrt(2 * np.pi)), rel=0.25)


def test_selector_drops_blurred_sparse_and_repeated_views(pairs: list[tuple[Detection, Detection]]) -> None:
    selector = ViewSelector(BOARD, (IR.width, IR.height))
    good = pairs[0][0]
    assert selector.offer(good).accepted
    again = selector.offer(Detection(good.ids, good.corners + 1.5, good.image_size, good.sharpness))
    assert not again.accepted and again.reason and "redundant" in again.reason
    blurred = selector.offer(Detection(good.ids, good.corners + 100, good.image_size, 0.1))
    assert not blurred.accepted and blurred.reason and "blurred" in blurred.reason
    few = min_corners(BOARD) - 1
    sparse = selector.offer(Detection(good.ids[:few], good.corners[:few] + 100, good.image_size, 0.5))
    assert not sparse.accepted and sparse.reason and "too few" in sparse.reason
    assert len(selector.accepted) == 1
    assert selector.offer(pairs[1][0]).accepted
    tilted = good.corners.copy()
    tilted[: good.count // 4] += 20  # the same place, but one side of the board nearer: a new tilt, kept
    assert selector.offer(Detection(good.ids, tilted, good.image_size, good.sharpness)).accepted


def test_coverage_and_holes_point_at_the_empty_image() -> None:
    selector = ViewSelector(BOARD, (800, 600), grid=(4, 3))
    corners = np.array([[x, y] for x in np.linspace(10, 390, 10) for y in np.linspace(10, 590, 10)], np.float32)
    selector.keep(Detection(np.arange(100, dtype=np.int32), corners, (800, 600), 0.5))
    grid = selector.coverage_grid()
    assert grid.shape == (3, 4) and grid[:, :2].all() and not grid[:, 2:].any()
    assert selector.coverage() == pytest.approx(0.5)
    holes = selector.holes()
    assert len(holes) == 6 and all(x > 0.5 for x, _ in holes)
    assert holes[0][0] == pytest.approx(0.875)  # the farthest column from what is covered comes first


def test_pair_selector_keeps_pairs_only_when_both_cameras_are_usable(
    pairs: list[tuple[Detection, Detection]],
) -> None:
    selector = PairSelector(BOARD, (IR.width, IR.height), (RGB.width, RGB.height))
    ir, rgb = pairs[0]
    verdict = selector.offer(ir, Detection(rgb.ids, rgb.corners, rgb.image_size, 0.05))
    assert not verdict.accepted and verdict.reason and verdict.reason.startswith("RGB")
    assert selector.ir.accepted == [] and selector.offer(ir, rgb).accepted
    assert len(selector.accepted) == 1 and selector.coverage() > 0


def test_views_give_both_cameras_and_their_motion(calibration: Calibration) -> None:
    for result, truth in ((calibration.ir, IR), (calibration.rgb, RGB)):
        k = result.intrinsics
        assert k.fx == pytest.approx(truth.fx, rel=0.003) and k.fy == pytest.approx(truth.fy, rel=0.003)
        assert abs(k.cx - truth.cx) < 1.5 and abs(k.cy - truth.cy) < 1.5
        assert result.rms_px < 0.3 and len(result.per_view_rms) == result.views_used == 14
        assert set(result.std) == {"fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3"}
    motion = calibration.stereo.rgb_from_ir
    t_error = np.linalg.norm(np.subtract(motion.t_m, RGB_FROM_IR.t_m))
    r_error = np.linalg.norm(cv2.Rodrigues(np.array(motion.R) @ np.array(RGB_FROM_IR.R).T)[0])
    assert t_error < 0.0005 and np.degrees(r_error) < 0.1
    assert calibration.views_used == 14


def test_as_json_has_exactly_the_issue_shape(calibration: Calibration) -> None:
    data = json.loads(json.dumps(calibration.as_json()))
    assert set(data) == {"ir", "rgb", "rgb_from_ir", "views_used"}
    assert set(data["ir"]) == set(data["rgb"]) == {"K", "dist", "rms_px", "std"}
    assert set(data["rgb_from_ir"]) == {"R", "t_m", "rms_px"}
    assert np.array(data["ir"]["K"]).shape == (3, 3) and len(data["rgb_from_ir"]["t_m"]) == 3


def test_failures_name_every_limit_broken(calibration: Calibration) -> None:
    assert calibration.failures(CameraLimits()) == []
    strict = CameraLimits(
        calibration_rms_px=0.01, stereo_rms_px=0.01, min_views=40, focal_std_pct=0.001, principal_std_px=0.001
    )
    failures = calibration.failures(strict)
    assert len(failures) == 2 * 3 + 2
    assert any("IR-to-RGB" in f for f in failures) and any("40" in f for f in failures)


def test_blob_carries_the_result_and_its_figures(calibration: Calibration) -> None:
    blob = calibration.to_blob("FRP0001", "frog-pro", 1.5e9)
    back = CameraCalibration.decode(blob.encode())
    assert back.ir == calibration.ir.intrinsics and back.rgb_from_ir == calibration.stereo.rgb_from_ir
    assert back.figures["views_used"] == 14 and back.figures["ir_std_fx"] == calibration.ir.std["fx"]
    assert {"ir_rms_px", "rgb_rms_px", "stereo_rms_px", "rgb_std_cy"} <= set(back.figures)


def test_a_misread_view_is_dropped_before_the_final_solve(pairs: list[tuple[Detection, Detection]]) -> None:
    points = [match_points(ir, BOARD) for ir, _ in pairs]
    objects, image = points[0]
    points[0] = (objects, image + np.random.default_rng(0).normal(0, 4, image.shape).astype(np.float32))
    result = calibrate_camera(points, (IR.width, IR.height))
    assert result.views_used == len(points) - 1 and result.rms_px < 0.3


def _shifted(detection: Detection, pixels: float) -> Detection:
    """The detection as if the board had moved ``pixels`` sideways between the top and bottom of the frame."""
    corners = detection.corners.copy()
    corners[:, 0] += pixels * corners[:, 1] / detection.image_size[1]
    return replace(detection, corners=corners)


def test_a_bad_pair_is_dropped_from_all_three_solves_and_named(pairs: list[tuple[Detection, Detection]]) -> None:
    spoiled = list(pairs)
    spoiled[3] = (_shifted(pairs[3][0], 9.0), pairs[3][1])  # the board moved while the IR frame was read
    spoiled[6], spoiled[7] = (pairs[6][0], pairs[7][1]), (pairs[7][0], pairs[6][1])  # two RGB files swapped
    calibration = calibrate_views(spoiled, BOARD, (IR.width, IR.height), (RGB.width, RGB.height))
    assert [(index, kind) for index, kind, _why in calibration.dropped] == [
        (3, "outlier"),
        (6, "outlier"),
        (7, "outlier"),
    ]
    assert "IR-RGB" in calibration.dropped[1][2]
    used = (calibration.ir.views_used, calibration.rgb.views_used, calibration.stereo.views_used)
    assert calibration.views_used == 11 and used == (11, 11, 11)
    assert calibration.stereo.rms_px < 0.3 and calibration.failures(CameraLimits(min_views=8)) == []
    t_error = np.linalg.norm(np.subtract(calibration.stereo.rgb_from_ir.t_m, RGB_FROM_IR.t_m))
    assert t_error < 0.0005


def test_pair_selector_needs_corners_both_cameras_saw(pairs: list[tuple[Detection, Detection]]) -> None:
    ir, rgb = pairs[0]
    half = ir.count // 2
    top = replace(ir, ids=ir.ids[:half], corners=ir.corners[:half])
    others = ~np.isin(rgb.ids, top.ids)
    bottom = replace(rgb, ids=rgb.ids[others], corners=rgb.corners[others])
    selector = PairSelector(BOARD, (IR.width, IR.height), (RGB.width, RGB.height))
    verdict = selector.offer(top, bottom)
    assert not verdict.accepted and verdict.kind == "not-common" and selector.accepted == []


def test_blur_is_judged_against_the_size_of_the_squares(pairs: list[tuple[Detection, Detection]]) -> None:
    good = pairs[0][0]
    selector = ViewSelector(BOARD, (IR.width, IR.height))
    small = selector.judge(replace(good, sharpness=0.2, spacing_px=30.0))
    assert not small.accepted and small.kind == "blurred"
    assert selector.judge(replace(good, sharpness=0.2, spacing_px=150.0)).accepted  # sigma 2 px on 150 px squares


def test_views_without_tilt_are_refused_as_untilted() -> None:
    frontal = [Pose((0.0, 0.0, p.rvec[2]), p.tvec_m) for p in poses(BOARD, IR, 5, seed=4)]
    views = [
        (detect(render(BOARD, IR, p), BOARD), detect(render(BOARD, RGB, rgb_pose(p, RGB_FROM_IR)), BOARD))
        for p in frontal
    ]
    calibration = calibrate_views(views, BOARD, (IR.width, IR.height), (RGB.width, RGB.height))
    assert len(calibration.untilted()) == 4 and "tilted" in calibration.untilted()[0]
    assert set(calibration.untilted()) <= set(calibration.failures(CameraLimits(min_views=3)))


def test_a_board_needing_more_markers_than_its_dictionary_has_is_refused() -> None:
    with pytest.raises(BoardFileError, match="needs 50 markers and DICT_APRILTAG_16h5 has only 30"):
        Board.from_dict({**Board().to_dict(), "dictionary": "DICT_APRILTAG_16h5", "squares_x": 10, "squares_y": 10})
    assert Board.from_dict({**Board().to_dict(), "dictionary": "DICT_4X4_50"}).dictionary == "DICT_4X4_50"


def test_a_failure_counts_the_pairs_left_out_by_kind() -> None:
    skipped = [Skip(f"{n:02d}", "blurred", "blurred") for n in range(15)] + [Skip("20", "too-few", "few")]
    error = TooFewViews(found=5, needed=12, skipped=skipped)
    text = str(error)
    assert text.startswith("Only 5 usable views")
    assert "15 blurred (pairs 00, 01, 02, 03, 04, …); 1 with too few corners (pairs 20)" in text
    assert error.as_dict()["skipped"][0] == {"pair": "00", "kind": "blurred", "reason": "blurred"}
    assert str(TooFewViews(found=5, needed=12)) == "Only 5 usable views of the board; a calibration needs at least 12"
