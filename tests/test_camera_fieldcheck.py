"""The field check on OpenCV-made captures: a good unit passes; drift, a dead projector and a defocused RGB
camera each get their own verdict; hostile frames get a typed error or a failing verdict, never a traceback."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from camera_scenes import BASELINE_MM, BOARD, SIGMA_D, Capture, Unit, capture
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camera.depth import UnusableFrame, pixel_rays
from camera.fieldcheck import FieldCheck, FieldVerdict, field_check, wall_check
from terminal.camera import CameraCalibration, Intrinsics
from terminal.models import CameraLimits

LIMITS = CameraLimits()
GOOD = Unit()


@pytest.fixture(scope="module")
def good() -> Capture:
    return capture(GOOD)


def check(frames: Capture, *, speckle: bool = True) -> FieldCheck:
    """The field check of ``frames`` with the good unit's calibration (what every unit here stores)."""
    return field_check(
        frames.ir,
        frames.rgb,
        frames.depth,
        GOOD.calibration(),
        BOARD,
        LIMITS,
        ir_speckle=frames.speckle if speckle else None,
    )


def test_a_good_unit_passes_with_small_figures(good: Capture) -> None:
    result = check(good)
    assert result.verdict is FieldVerdict.OK and result.passed
    assert result.reprojection_rms_px is not None and result.reprojection_rms_px < 0.4
    assert result.misalignment_px is not None and result.misalignment_px < 0.5
    assert result.depth_bias_pct is not None and abs(result.depth_bias_pct) < 0.2
    assert result.board_distance_m == pytest.approx(0.49, abs=0.02)
    assert result.fill_rate == 1.0 and result.findings == []
    assert "no recalibration is needed" in result.advice
    assert json.loads(json.dumps(result.as_dict()))["verdict"] == "ok"


def test_a_drifted_unit_fails_and_is_told_to_recalibrate() -> None:
    result = check(capture(GOOD.drifted()))
    assert result.verdict is FieldVerdict.RECALIBRATE and not result.passed
    assert result.misalignment_px is not None and result.misalignment_px > LIMITS.field_misalignment_px
    assert any("IR and RGB disagree" in line for line in result.findings)
    assert "recalibrate" in result.advice


def test_a_dead_projector_is_its_own_diagnosis() -> None:
    frames = capture(GOOD, dead_projector=True)
    result = check(frames)
    assert result.verdict is FieldVerdict.PROJECTOR and result.fill_rate == 0.0
    assert result.speckle_dots == 0.0
    assert any("no projector dots" in line for line in result.findings)
    assert "Recalibrating does not help" in result.advice
    # Without a speckle capture it still knows the depth is missing.
    blind = check(frames, speckle=False)
    assert blind.verdict is FieldVerdict.PROJECTOR and blind.speckle_dots is None


def test_depth_missing_although_dots_are_seen_says_so(good: Capture) -> None:
    frames = replace(good, depth=np.zeros_like(good.depth))
    result = check(frames)
    assert result.verdict is FieldVerdict.PROJECTOR
    assert any("although the projector's dots are seen" in line for line in result.findings)


@pytest.mark.parametrize("sigma", [1.8, 3.0])
def test_a_defocused_rgb_camera_is_its_own_diagnosis(sigma: float) -> None:
    result = check(capture(GOOD, rgb_blur=sigma))
    assert result.verdict is FieldVerdict.RGB_FOCUS and not result.passed
    assert result.ir_blur_px is not None and result.ir_blur_px < 1.0
    assert "out of focus" in result.advice


def test_a_slightly_soft_rgb_image_is_not_called_defocused() -> None:
    result = check(capture(GOOD, rgb_blur=1.0))
    assert result.verdict is FieldVerdict.OK
    assert result.rgb_blur_px is not None and result.rgb_blur_px < 1.8


def test_depth_that_reads_too_far_is_drift(good: Capture) -> None:
    far = replace(good, depth=np.round(good.depth * 1.02).astype(np.uint16))
    result = check(far)
    assert result.verdict is FieldVerdict.RECALIBRATE
    assert result.depth_bias_pct == pytest.approx(2.0, abs=0.2)


def test_a_figure_near_its_limit_passes_but_plans_a_recalibration(good: Capture) -> None:
    near = replace(good, depth=np.round(good.depth * 1.008).astype(np.uint16))
    result = check(near)
    assert result.verdict is FieldVerdict.OK and result.passed
    assert any("close to the limit" in line for line in result.findings)
    assert "next service visit" in result.advice


def test_no_board_in_view_is_no_target(good: Capture) -> None:
    blank = replace(good, ir=np.full_like(good.ir, 120))
    result = check(blank)
    assert result.verdict is FieldVerdict.NO_TARGET and not result.passed
    assert result.reprojection_rms_px is None and "Hold the calibration board" in result.advice


def test_saturated_depth_is_no_depth_not_a_bias(good: Capture) -> None:
    result = check(replace(good, depth=np.full_like(good.depth, 65535)))
    assert result.verdict is FieldVerdict.PROJECTOR and result.depth_bias_pct is None


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("ir", np.zeros((400, 640), np.float32)),
        ("ir", np.zeros((200, 320), np.uint8)),
        ("rgb", np.zeros((450, 800), np.uint8)),
        ("rgb", np.zeros((450, 800, 4), np.uint8)),
        ("depth", np.zeros((400, 640), np.int32)),
        ("depth", np.zeros((400, 641), np.uint16)),
        ("speckle", np.zeros((400, 640, 3), np.uint8)),
        ("speckle", "not an image"),
    ],
)
def test_frames_of_the_wrong_kind_are_a_typed_error(good: Capture, name: str, frame: object) -> None:
    frames = {"ir": good.ir, "rgb": good.rgb, "depth": good.depth, "speckle": good.speckle, name: frame}
    with pytest.raises(UnusableFrame):
        field_check(
            frames["ir"],  # type: ignore[arg-type]
            frames["rgb"],  # type: ignore[arg-type]
            frames["depth"],  # type: ignore[arg-type]
            GOOD.calibration(),
            BOARD,
            LIMITS,
            ir_speckle=frames["speckle"],  # type: ignore[arg-type]
        )


TINY = CameraCalibration(
    "DF2TEST0001",
    "df2",
    Intrinsics(40, 30, 40.0, 40.0, 20.0, 15.0),
    Intrinsics(48, 27, 50.0, 50.0, 24.0, 13.5),
    GOOD.rgb_from_ir,
    0.0,
)


@settings(max_examples=25, deadline=None)
@given(
    ir=hnp.arrays(np.uint8, (30, 40)),
    rgb=hnp.arrays(np.uint8, (27, 48, 3)),
    depth=hnp.arrays(np.uint16, (30, 40)),
    speckle=st.none() | hnp.arrays(np.uint8, (30, 40)),
)
def test_any_frames_of_the_right_kind_give_a_verdict(
    ir: npt.NDArray[np.uint8],
    rgb: npt.NDArray[np.uint8],
    depth: npt.NDArray[np.uint16],
    speckle: npt.NDArray[np.uint8] | None,
) -> None:
    result = field_check(ir, rgb, depth, TINY, BOARD, LIMITS, ir_speckle=speckle)
    assert result.verdict in FieldVerdict and result.advice
    json.dumps(result.as_dict())


def flat_wall(distance_mm: float, seed: int = 0) -> npt.NDArray[np.uint16]:
    rays = pixel_rays(GOOD.ir)
    z = np.full(rays.shape[:2], distance_mm)
    noise = np.random.default_rng(seed).normal(size=z.shape) * distance_mm**2 * SIGMA_D / (GOOD.ir.fx * BASELINE_MM)
    return np.round(z + noise).astype(np.uint16)


def test_a_flat_wall_passes_the_wall_check() -> None:
    result = wall_check(flat_wall(500.0), GOOD.ir, BASELINE_MM, LIMITS, 0.5)
    assert result.verdict is FieldVerdict.OK and result.depth is not None
    assert result.depth.plane_rms_mm == pytest.approx(500.0**2 * SIGMA_D / (GOOD.ir.fx * BASELINE_MM), rel=0.1)
    assert result.reprojection_rms_px is None and result.misalignment_px is None


def test_a_wall_that_reads_off_its_taped_distance_is_drift() -> None:
    result = wall_check(flat_wall(500.0), GOOD.ir, BASELINE_MM, LIMITS, 0.49)
    assert result.verdict is FieldVerdict.RECALIBRATE
    assert result.depth_bias_pct == pytest.approx(100 * 10 / 490, rel=0.05)
    assert len(result.findings) == 1  # said once, not also as the depth quality's Z accuracy


def test_a_wall_without_depth_is_the_projector() -> None:
    result = wall_check(np.zeros((400, 640), np.uint16), GOOD.ir, BASELINE_MM, LIMITS, 0.5)
    assert result.verdict is FieldVerdict.PROJECTOR and result.fill_rate == 0.0
    assert len(result.findings) == 2
