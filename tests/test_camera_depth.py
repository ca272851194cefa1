"""Depth quality (the RealSense DQT's figures) on synthetic flat walls, and depth in false colour."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camera.colour import false_colour
from camera.depth import (
    UnusableFrame,
    UnusableSetting,
    depth_failures,
    fit_plane,
    measure_depth,
    pixel_rays,
)
from camera.errors import CameraError
from simulator.camera.render import Capture, WallScene, render, sigma_z_mm
from simulator.camera.truth import draw_truth
from terminal.camera import Intrinsics
from terminal.models import CameraLimits, load_models

IR = Intrinsics(640, 400, 460.0, 461.0, 322.0, 197.0, (-0.1, 0.05, 0.0005, -0.0003, 0.0))
BASELINE_MM = 40.0
SIGMA_D = 0.08  # px, df2's disparity noise


def sigma_z(z_mm: float) -> float:
    """The structured-light noise model: sigma_z = Z^2 sigma_d / (f b)."""
    return z_mm**2 * SIGMA_D / (IR.fx * BASELINE_MM)


def wall(
    distance_mm: float,
    *,
    tilt_deg: float = 0.0,
    noise: bool = True,
    dropouts: float = 0.0,
    seed: int = 0,
) -> npt.NDArray[np.uint16]:
    """A flat wall ``distance_mm`` away along the optical axis, tilted about the y axis, in 16-bit mm."""
    rng = np.random.default_rng(seed)
    rays = pixel_rays(IR)
    t = np.radians(tilt_deg)
    normal = np.array([np.sin(t), 0.0, np.cos(t)])
    z = distance_mm * normal[2] / (rays[..., 0] * normal[0] + rays[..., 1] * normal[1] + normal[2])
    if noise:
        z = z + rng.normal(size=z.shape) * sigma_z(distance_mm) * (z / distance_mm) ** 2
    depth: npt.NDArray[np.uint16] = np.round(z).astype(np.uint16)
    depth[rng.random(z.shape) < dropouts] = 0
    return depth


@pytest.mark.parametrize("distance_mm", [500.0, 800.0])
def test_plane_rms_of_a_flat_wall_is_the_noise_the_camera_has(distance_mm: float) -> None:
    quality = measure_depth(wall(distance_mm, dropouts=0.02), IR, BASELINE_MM, distance_mm / 1000)
    assert quality.plane_rms_mm == pytest.approx(sigma_z(distance_mm), rel=0.1)
    assert quality.plane_rms_pct == pytest.approx(100 * sigma_z(distance_mm) / distance_mm, rel=0.1)
    # Disparity noise is what sigma_z comes from: the subpixel RMS gives it back.
    assert quality.subpixel_rms_px == pytest.approx(SIGMA_D, rel=0.1)
    assert quality.fill_rate == pytest.approx(0.98, abs=0.005)
    assert quality.z_median_mm == pytest.approx(distance_mm, abs=1)
    assert abs(quality.z_error_mm or 0) < 0.2


def test_a_tilted_noiseless_wall_is_a_plane_and_its_distance_is_read_on_the_optical_axis() -> None:
    quality = measure_depth(wall(600.0, tilt_deg=25.0, noise=False), IR, BASELINE_MM, 0.6)
    assert quality.plane_rms_mm is not None and quality.plane_rms_mm < 0.35  # the 1 mm quantisation only
    assert quality.z_error_mm == pytest.approx(0.0, abs=0.3)


def test_z_accuracy_is_the_signed_median_error_against_ground_truth() -> None:
    depth = wall(500.0, noise=False)
    far = measure_depth(depth, IR, BASELINE_MM, 0.495)  # the wall reads 5 mm further than the truth
    assert far.z_error_mm == pytest.approx(5.0, abs=0.1)
    assert far.z_error_pct == pytest.approx(100 * 5 / 495, rel=0.02)
    near = measure_depth(depth, IR, BASELINE_MM, 0.505)
    assert near.z_error_mm == pytest.approx(-5.0, abs=0.1)
    assert measure_depth(depth, IR, BASELINE_MM).z_error_mm is None


def test_outliers_at_both_ends_of_z_do_not_count() -> None:
    depth = wall(500.0, noise=False)
    spikes = np.random.default_rng(3).random(depth.shape) < 0.002  # under the 0.5 % the DQT drops at each end
    depth[spikes] = 3000
    quality = measure_depth(depth, IR, BASELINE_MM, 0.5)
    assert quality.plane_rms_mm is not None and quality.plane_rms_mm < 0.5


def test_fill_rate_counts_the_roi_only_and_range_makes_depth_invalid() -> None:
    depth = wall(500.0, noise=False)
    depth[:, :20] = 0  # outside the 80 % ROI
    quality = measure_depth(depth, IR, BASELINE_MM, 0.5)
    assert quality.fill_rate == 1.0 and quality.roi == (64, 40, 576, 360)
    assert measure_depth(depth, IR, BASELINE_MM, 0.5, range_mm=(600, 1200)).fill_rate == 0.0


def test_the_limits_pass_a_good_wall_and_say_why_a_bad_one_fails() -> None:
    limits = CameraLimits()
    good = measure_depth(wall(500.0, dropouts=0.01), IR, BASELINE_MM, 0.5)
    assert depth_failures(good, limits) == []
    holey = measure_depth(wall(500.0, dropouts=0.2), IR, BASELINE_MM, 0.5)
    assert [f for f in depth_failures(holey, limits) if "Fill rate" in f]
    biased = measure_depth(wall(500.0), IR, BASELINE_MM, 0.49)
    assert [f for f in depth_failures(biased, limits) if "Z accuracy" in f]


def test_all_zero_depth_fails_with_its_reasons_rather_than_raising() -> None:
    quality = measure_depth(np.zeros((400, 640), np.uint16), IR, BASELINE_MM, 0.5)
    assert quality.fill_rate == 0.0 and quality.plane_rms_mm is None and quality.z_error_mm is None
    failures = depth_failures(quality, CameraLimits())
    assert len(failures) == 2
    assert quality.as_dict()["plane_rms_mm"] is None


def test_saturated_depth_fails_against_ground_truth() -> None:
    quality = measure_depth(np.full((400, 640), 65535, np.uint16), IR, BASELINE_MM, 0.5)
    assert depth_failures(quality, CameraLimits())


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((400, 640), np.float32),
        np.zeros((400, 640, 3), np.uint16),
        np.zeros((200, 320), np.uint16),
        np.zeros((400,), np.uint16),
        [[0, 1], [2, 3]],
    ],
)
def test_a_frame_of_the_wrong_kind_is_a_typed_error(frame: object) -> None:
    with pytest.raises(UnusableFrame) as caught:
        measure_depth(frame, IR, BASELINE_MM)  # type: ignore[arg-type]
    assert isinstance(caught.value, CameraError) and "depth" in str(caught.value)


@pytest.mark.parametrize(
    ("baseline", "distance", "fraction"),
    [(0.0, 0.5, 0.8), (float("nan"), 0.5, 0.8), (40.0, -1.0, 0.8), (40.0, float("inf"), 0.8), (40.0, 0.5, 0.0)],
)
def test_unusable_settings_are_a_typed_error(baseline: float, distance: float, fraction: float) -> None:
    with pytest.raises(UnusableSetting):
        measure_depth(wall(500.0), IR, baseline, distance, roi_fraction=fraction)


SMALL = Intrinsics(16, 12, 20.0, 20.0, 8.0, 6.0)


@settings(max_examples=60, deadline=None)
@given(
    depth=hnp.arrays(np.uint16, (12, 16)),
    distance=st.none() | st.floats(0.01, 99.0),
    fraction=st.floats(0.05, 1.0),
)
def test_any_depth_frame_gives_figures_or_none_never_an_exception(
    depth: npt.NDArray[np.uint16], distance: float | None, fraction: float
) -> None:
    quality = measure_depth(depth, SMALL, BASELINE_MM, distance, roi_fraction=fraction)
    assert 0.0 <= quality.fill_rate <= 1.0
    for value in quality.as_dict().values():
        assert value is None or isinstance(value, list) or np.isfinite(value)
    depth_failures(quality, CameraLimits())


def test_a_line_of_points_is_not_a_plane() -> None:
    line = np.column_stack([np.arange(10.0), np.zeros(10), np.full(10, 500.0)])
    assert fit_plane(line) is None


def test_false_colour_is_black_without_depth_and_runs_from_near_to_far() -> None:
    depth = np.array([[0, 250, 700, 1200, 60000]], np.uint16)
    picture = false_colour(depth, (250, 1200))
    assert picture.shape == (1, 5, 3) and picture.dtype == np.uint8
    assert not picture[0, 0].any()
    near, far = picture[0, 1].astype(int), picture[0, 3].astype(int)
    assert near[2] > near[0] and far[0] > far[2]  # near is red, far is blue (BGR)
    assert (picture[0, 4] == picture[0, 3]).all()  # beyond the range: clamped to the far end


def test_false_colour_refuses_what_is_not_depth() -> None:
    with pytest.raises(UnusableFrame):
        false_colour(np.zeros((4, 4), np.uint8), (250, 1200))
    with pytest.raises(UnusableSetting):
        false_colour(np.zeros((4, 4), np.uint16), (1200, 250))


@pytest.mark.parametrize("distance_m", [0.5, 0.8])
def test_the_simulators_wall_gives_back_its_configured_noise(distance_m: float) -> None:
    """Issue 8's accuracy figure: a flat wall at 0.5 m, plane-fit RMS within 10 % of sigma_z = Z^2 sigma_d / (f b)."""
    model = load_models()["df2"]
    truth = draw_truth(model, np.random.default_rng(11))
    capture = Capture(streams=("depth",), depth_range_mm=model.camera.depth_range_mm)
    depth = render(truth, WallScene(distance_m), capture, np.random.default_rng(2))["depth"]
    quality = measure_depth(depth, truth.ir, truth.projector_baseline_mm, distance_m)
    assert quality.plane_rms_mm == pytest.approx(sigma_z_mm(truth, distance_m * 1000), rel=0.1)
    assert quality.subpixel_rms_px == pytest.approx(truth.disparity_sigma_px, rel=0.1)
    assert abs(quality.z_error_pct or 0) < 0.1
    assert depth_failures(quality, model.camera.limits) == []


def test_subpixel_rms_is_judged_against_the_model_limit() -> None:
    """R3-7: the subpixel RMS was reported and never judged."""
    quality = measure_depth(wall(500.0), IR, BASELINE_MM, 0.5)
    assert quality.subpixel_rms_px is not None
    assert depth_failures(quality, CameraLimits()) == []
    strict = CameraLimits(max_subpixel_rms_px=quality.subpixel_rms_px / 2)
    assert [f for f in depth_failures(quality, strict) if "Subpixel RMS" in f]
