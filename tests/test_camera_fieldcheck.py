"""The field check on the simulator's frames (simulator.camera.render): a good unit passes; a drifted one, a
dead projector and a defocused RGB camera each get their own verdict; hostile frames get a typed error or a
failing verdict, never a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camera.depth import UnusableFrame
from camera.fieldcheck import FieldCheck, FieldVerdict, field_check, wall_check
from simulator.camera.jig import default_scene
from simulator.camera.render import Capture, render, sigma_z_mm
from simulator.camera.truth import CameraTruth, draw_truth
from terminal.camera import Board, CameraCalibration, Intrinsics
from terminal.models import load_models

MODEL = load_models()["df2"]
LIMITS = MODEL.camera.limits
BOARD = Board()
TRUTH = draw_truth(MODEL, np.random.default_rng(8))
STORED = CameraCalibration("DF2TEST0001", "df2", TRUTH.ir, TRUTH.rgb, TRUTH.rgb_from_ir, 0.0)


@dataclass(frozen=True)
class Frames:
    ir: npt.NDArray[np.uint8]
    rgb: npt.NDArray[np.uint8]
    depth: npt.NDArray[np.uint16]
    speckle: npt.NDArray[np.uint8]


def capture(physical: CameraTruth = TRUTH, *, projector: bool = True, rgb_defocus: bool = False) -> Frames:
    """What the unit's camera captures of the board held up for a field check, as the simulator's unit does:
    flood IR, RGB and depth, then an IR capture with speckle; the depth engine knows the stored baseline."""
    scene = default_scene(physical, MODEL, BOARD)
    rng = np.random.default_rng(1)
    common = {"projector": projector, "rgb_defocus": rgb_defocus}
    frames = render(
        physical,
        scene,
        Capture(
            depth_scale=TRUTH.projector_baseline_mm / physical.projector_baseline_mm,
            depth_range_mm=MODEL.camera.depth_range_mm,
            **common,  # type: ignore[arg-type]
        ),
        rng,
        MODEL.camera.speckle_dots,
    )
    speckle = render(physical, scene, Capture(streams=("ir",), speckle=True, **common), rng, MODEL.camera.speckle_dots)  # type: ignore[arg-type]
    return Frames(frames["ir"], frames["rgb"], frames["depth"], speckle["ir"])


@pytest.fixture(scope="module")
def good() -> Frames:
    return capture()


def check(frames: Frames, *, speckle: bool = True) -> FieldCheck:
    """The field check of ``frames`` against the calibration the unit stored before anything happened to it."""
    return field_check(
        frames.ir, frames.rgb, frames.depth, STORED, BOARD, LIMITS, ir_speckle=frames.speckle if speckle else None
    )


def blur(image: npt.NDArray[np.uint8], sigma: float) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.uint8)


def test_a_good_unit_passes_with_small_figures(good: Frames) -> None:
    result = check(good)
    assert result.verdict is FieldVerdict.OK and result.passed
    assert result.reprojection_rms_px is not None and result.reprojection_rms_px < 0.3
    assert result.misalignment_px is not None and result.misalignment_px < 0.5
    assert result.depth_bias_pct is not None and abs(result.depth_bias_pct) < 0.2
    assert result.fill_rate is not None and result.fill_rate > LIMITS.min_fill_rate
    assert result.findings == [] and "no recalibration is needed" in result.advice
    assert json.loads(json.dumps(result.as_dict()))["verdict"] == "ok"


def test_a_drifted_unit_fails_and_is_told_to_recalibrate() -> None:
    result = check(capture(TRUTH.drifted()))
    assert result.verdict is FieldVerdict.RECALIBRATE and not result.passed
    assert result.misalignment_px is not None and result.misalignment_px > LIMITS.field_misalignment_px
    assert result.depth_bias_pct is not None and result.depth_bias_pct > LIMITS.field_depth_bias_pct
    assert any("IR and RGB disagree" in line for line in result.findings)
    assert "recalibrate" in result.advice


def test_a_dead_projector_is_its_own_diagnosis() -> None:
    frames = capture(projector=False)
    result = check(frames)
    assert result.verdict is FieldVerdict.PROJECTOR and result.fill_rate == 0.0
    assert result.speckle_dots == 0.0
    assert any("no projector dots" in line for line in result.findings)
    assert "Recalibrating does not help" in result.advice
    blind = check(frames, speckle=False)  # without a speckle capture it still knows the depth is missing
    assert blind.verdict is FieldVerdict.PROJECTOR and blind.speckle_dots is None


def test_depth_missing_although_dots_are_seen_says_so(good: Frames) -> None:
    result = check(replace(good, depth=np.zeros_like(good.depth)))
    assert result.verdict is FieldVerdict.PROJECTOR
    assert any("although the projector's dots are seen" in line for line in result.findings)


def test_a_defocused_rgb_camera_is_its_own_diagnosis() -> None:
    result = check(capture(rgb_defocus=True))
    assert result.verdict is FieldVerdict.RGB_FOCUS and not result.passed
    assert result.ir_blur_px is not None and result.ir_blur_px < 1.2
    assert "out of focus" in result.advice


def test_an_rgb_image_the_board_is_lost_in_is_the_rgb_focus(good: Frames) -> None:
    result = check(replace(good, rgb=blur(good.rgb, 6.0)))
    assert result.verdict is FieldVerdict.RGB_FOCUS
    assert any("not found in the RGB image" in line for line in result.findings)


def test_a_slightly_soft_rgb_image_is_not_called_defocused(good: Frames) -> None:
    result = check(replace(good, rgb=blur(good.rgb, 0.8)))
    assert result.verdict is FieldVerdict.OK
    assert result.rgb_blur_px is not None and result.rgb_blur_px < 1.8


def test_depth_that_reads_too_far_is_drift(good: Frames) -> None:
    result = check(replace(good, depth=np.round(good.depth * 1.02).astype(np.uint16)))
    assert result.verdict is FieldVerdict.RECALIBRATE
    assert result.depth_bias_pct == pytest.approx(2.0, abs=0.2)


def test_a_figure_near_its_limit_passes_but_plans_a_recalibration(good: Frames) -> None:
    result = check(replace(good, depth=np.round(good.depth * 1.0085).astype(np.uint16)))
    assert result.verdict is FieldVerdict.OK and result.passed, result.depth_bias_pct
    assert any("close to the limit" in line for line in result.findings)
    assert "next service visit" in result.advice


def test_no_board_in_view_is_no_target(good: Frames) -> None:
    result = check(replace(good, ir=np.full_like(good.ir, 120)))
    assert result.verdict is FieldVerdict.NO_TARGET and not result.passed
    assert result.reprojection_rms_px is None and "Hold the calibration board" in result.advice


def test_saturated_depth_is_no_depth_not_a_bias(good: Frames) -> None:
    result = check(replace(good, depth=np.full_like(good.depth, 65535)))
    assert result.verdict is FieldVerdict.PROJECTOR and result.depth_bias_pct is None


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("ir", np.zeros((400, 640), np.float32)),
        ("ir", np.zeros((200, 320), np.uint8)),
        ("rgb", np.zeros((720, 1280), np.uint8)),
        ("rgb", np.zeros((720, 1280, 4), np.uint8)),
        ("depth", np.zeros((400, 640), np.int32)),
        ("depth", np.zeros((400, 641), np.uint16)),
        ("speckle", np.zeros((400, 640, 3), np.uint8)),
        ("speckle", "not an image"),
    ],
)
def test_frames_of_the_wrong_kind_are_a_typed_error(good: Frames, name: str, frame: object) -> None:
    frames = {"ir": good.ir, "rgb": good.rgb, "depth": good.depth, "speckle": good.speckle, name: frame}
    with pytest.raises(UnusableFrame):
        field_check(
            frames["ir"],  # type: ignore[arg-type]
            frames["rgb"],  # type: ignore[arg-type]
            frames["depth"],  # type: ignore[arg-type]
            STORED,
            BOARD,
            LIMITS,
            ir_speckle=frames["speckle"],  # type: ignore[arg-type]
        )


TINY = CameraCalibration(
    "DF2TEST0001",
    "df2",
    Intrinsics(40, 30, 40.0, 40.0, 20.0, 15.0),
    Intrinsics(48, 27, 50.0, 50.0, 24.0, 13.5),
    TRUTH.rgb_from_ir,
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
    """A frontal wall filling the view, with the module's depth noise (numpy: the wall check's own input)."""
    z = np.full((TRUTH.ir.height, TRUTH.ir.width), distance_mm)
    noise = np.random.default_rng(seed).normal(size=z.shape) * sigma_z_mm(TRUTH, distance_mm)
    depth: npt.NDArray[np.uint16] = np.round(z + noise).astype(np.uint16)
    return depth


def test_a_flat_wall_passes_the_wall_check() -> None:
    result = wall_check(flat_wall(500.0), TRUTH.ir, TRUTH.projector_baseline_mm, LIMITS, 0.5)
    assert result.verdict is FieldVerdict.OK and result.depth is not None
    assert result.depth.plane_rms_mm == pytest.approx(sigma_z_mm(TRUTH, 500.0), rel=0.1)
    assert result.reprojection_rms_px is None and result.misalignment_px is None


def test_a_wall_that_reads_off_its_taped_distance_is_drift() -> None:
    result = wall_check(flat_wall(500.0), TRUTH.ir, TRUTH.projector_baseline_mm, LIMITS, 0.49)
    assert result.verdict is FieldVerdict.RECALIBRATE
    assert result.depth_bias_pct == pytest.approx(100 * 10 / 490, rel=0.05)
    assert len(result.findings) == 1  # said once, not also as the depth quality's Z accuracy


def test_a_wall_without_depth_is_the_projector() -> None:
    result = wall_check(np.zeros((400, 640), np.uint16), TRUTH.ir, TRUTH.projector_baseline_mm, LIMITS, 0.5)
    assert result.verdict is FieldVerdict.PROJECTOR and result.fill_rate == 0.0
    assert len(result.findings) == 2


@pytest.mark.parametrize("keep", [0.9, 0.6])
def test_depth_below_the_fill_limit_fails_the_check(good: Frames, keep: float) -> None:
    """R3-1: 60 % or 88 % filled against a 95 % limit used to pass with only a note."""
    depth = good.depth.copy()
    depth[np.random.default_rng(0).random(depth.shape) > keep] = 0
    result = check(replace(good, depth=depth))
    assert result.verdict is FieldVerdict.DEPTH and not result.passed
    assert result.fill_rate is not None and result.fill_rate < LIMITS.min_fill_rate
    assert "replace the camera module" in result.advice


def test_the_projector_share_of_the_fill_limit_is_model_data(good: Frames) -> None:
    depth = good.depth.copy()
    depth[np.random.default_rng(0).random(depth.shape) > 0.6] = 0
    strict = replace(LIMITS, field_projector_fill=0.9)
    result = field_check(good.ir, good.rgb, depth, STORED, BOARD, strict, ir_speckle=good.speckle)
    assert result.verdict is FieldVerdict.PROJECTOR


def test_the_rgb_blur_limit_is_model_data(good: Frames) -> None:
    soft = replace(good, rgb=blur(good.rgb, 0.8))
    strict = replace(LIMITS, field_rgb_blur_px=0.5)
    result = field_check(soft.ir, soft.rgb, soft.depth, STORED, BOARD, strict, ir_speckle=soft.speckle)
    assert not result.passed and any("blurred" in line for line in result.findings)


def test_a_dead_projector_and_a_defocused_rgb_are_both_found() -> None:
    """R3-2: the verdict names the first fault, the findings and verdicts list both."""
    result = check(capture(projector=False, rgb_defocus=True))
    assert result.verdict is FieldVerdict.PROJECTOR
    assert result.verdicts == ["projector", "rgb-focus"]
    assert any("no projector dots" in line for line in result.findings)
    assert any("RGB image is blurred" in line for line in result.findings)


def test_a_calibration_of_another_unit_is_foreign(good: Frames) -> None:
    """R2-5: a blob made for another unit or model is not judged as if it were this unit's."""

    def run(serial: str, model: str) -> FieldCheck:
        return field_check(
            good.ir, good.rgb, good.depth, STORED, BOARD, LIMITS, ir_speckle=good.speckle, serial=serial, model=model
        )

    assert run(STORED.serial, "df2").verdict is FieldVerdict.OK
    other = run("DF2OTHER0002", "frog-pro")
    assert other.verdict is FieldVerdict.FOREIGN and not other.passed
    assert len(other.findings) == 2 and "DF2TEST0001" in other.findings[0]


def test_a_calibration_for_other_image_sizes_is_foreign(good: Frames) -> None:
    small = np.zeros((200, 320), np.uint8)
    result = field_check(small, good.rgb, good.depth, STORED, BOARD, LIMITS, serial=STORED.serial, model="df2")
    assert result.verdict is FieldVerdict.FOREIGN
    assert any("320x200" in line for line in result.findings)
