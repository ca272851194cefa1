"""Calibrating from a folder: well on folders made elsewhere, and a clear typed error for each bad one."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from charuco_render import IR, RGB, RGB_FROM_IR, poses, write_set
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camera.errors import (
    BoardNotFound,
    CalibrationFailed,
    CameraError,
    CorruptImage,
    CoverageTooLow,
    DuplicateImages,
    NoImagePairs,
    NotAFolder,
    TooFewViews,
    UnmatchedImages,
)
from camera.offline import calibrate_folder, read_image
from terminal.camera import Board, Extrinsics, Intrinsics
from terminal.events import Message, PhaseStarted, Recorder
from terminal.models import CameraLimits

BOARD = Board()
# Another module entirely: a legacy-pattern 4x4 board with an even number of rows, other resolutions, no tint.
OTHER_BOARD = Board("DICT_4X4_50", 7, 6, 0.03, 0.022, legacy_pattern=True)
OTHER_IR = Intrinsics(480, 360, 400.0, 400.5, 238.0, 182.0, (0.04, -0.03, 0.0, 0.0, 0.0))
OTHER_RGB = Intrinsics(640, 480, 520.0, 519.0, 323.0, 236.0, (-0.05, 0.02, 0.0, 0.0, 0.0))
OTHER_MOTION = Extrinsics(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), (0.04, 0.0, 0.001))
VIEWS = 14


@pytest.fixture(scope="module")
def good_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_set(tmp_path_factory.mktemp("good"), BOARD, poses(BOARD, IR, VIEWS, seed=7))


@pytest.fixture
def folder(good_set: Path, tmp_path: Path) -> Path:
    """A copy of the good set the test may spoil."""
    return Path(shutil.copytree(good_set, tmp_path / "set"))


def test_a_folder_calibrates_and_blank_pairs_are_named_not_fatal(folder: Path) -> None:
    cv2.imwrite(str(folder / "ir_90.png"), np.full((IR.height, IR.width), 90, np.uint8))
    cv2.imwrite(str(folder / "rgb_90.png"), np.full((RGB.height, RGB.width, 3), 90, np.uint8))
    (folder / "depth_00.png").write_bytes(b"ignored")
    recorder = Recorder()
    calibration = calibrate_folder(folder, BOARD, recorder)
    assert calibration.views_used == VIEWS and calibration.coverage is not None
    assert calibration.ir.intrinsics.fx == pytest.approx(IR.fx, rel=0.003)
    assert calibration.rgb.intrinsics.cy == pytest.approx(RGB.cy, abs=1.5)
    assert np.linalg.norm(np.subtract(calibration.stereo.rgb_from_ir.t_m, RGB_FROM_IR.t_m)) < 0.0005
    skipped = [m for m in recorder.of(Message) if m.item == "90"]
    assert len(skipped) == 1 and "no board" in skipped[0].text
    assert [p.phase for p in recorder.of(PhaseStarted)] == ["detect", "select", "solve"]
    assert all(e.unit == folder.name and e.step == "calibrate" for e in recorder.events)


def test_another_module_legacy_board_and_colour_sixteen_bit_ir(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path,
        OTHER_BOARD,
        poses(OTHER_BOARD, OTHER_IR, VIEWS, seed=11),
        ir=OTHER_IR,
        rgb=OTHER_RGB,
        rgb_from_ir=OTHER_MOTION,
        colour_ir=True,
    )
    deep = cv2.imread(str(folder / "ir_00.png"), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 64
    cv2.imwrite(str(folder / "ir_00.png"), deep)
    calibration = calibrate_folder(folder, OTHER_BOARD)
    assert calibration.ir.intrinsics.width == 480 and calibration.rgb.intrinsics.height == 480
    assert calibration.ir.intrinsics.fx == pytest.approx(OTHER_IR.fx, rel=0.003)
    assert np.linalg.norm(np.subtract(calibration.stereo.rgb_from_ir.t_m, OTHER_MOTION.t_m)) < 0.0005
    with pytest.raises(BoardNotFound, match="legacy_pattern set to true"):
        calibrate_folder(folder, Board("DICT_4X4_50", 7, 6, 0.03, 0.022))


def test_a_board_file_of_another_dictionary_names_the_markers_seen(folder: Path) -> None:
    for path in folder.glob("*_0[3-9].png"):
        path.unlink()
    with pytest.raises(
        BoardNotFound, match=r"markers of a DICT_5X5_\* dictionary were seen, but none of .*DICT_4X4_50"
    ) as caught:
        calibrate_folder(folder, Board("DICT_4X4_50"))
    assert caught.value.remedy_text


def test_a_board_file_of_another_size_says_so(folder: Path) -> None:
    for path in folder.glob("*_0[3-9].png"):
        path.unlink()
    with pytest.raises(BoardNotFound, match="another size"):
        calibrate_folder(folder, Board(squares_x=5, squares_y=4))


def test_images_without_any_board_say_no_markers(tmp_path: Path) -> None:
    for name in ("ir_00.png", "rgb_00.png"):
        cv2.imwrite(str(tmp_path / name), np.full((200, 300), 128, np.uint8))
    with pytest.raises(BoardNotFound, match="no ArUco markers"):
        calibrate_folder(tmp_path, BOARD)


def test_unmatched_images_are_named(folder: Path) -> None:
    (folder / "rgb_04.png").unlink()
    (folder / "ir_12.png").rename(folder / "ir_99.png")
    with pytest.raises(UnmatchedImages) as caught:
        calibrate_folder(folder, BOARD)
    assert str(caught.value).endswith("ir_04.png, ir_99.png, rgb_12.png")


def test_a_corrupt_png_is_named(folder: Path) -> None:
    data = (folder / "rgb_00.png").read_bytes()
    (folder / "rgb_00.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptImage, match=r"rgb_00\.png"):
        calibrate_folder(folder, BOARD)


@pytest.mark.parametrize("name", ["ir_02.png", "ir_00.png"])  # the odd one, not the first of the others
def test_an_image_of_another_size_is_named(folder: Path, name: str) -> None:
    cv2.imwrite(str(folder / name), np.zeros((1, 1), np.uint8))
    with pytest.raises(CorruptImage, match=rf"{name}.*1x1, most IR images are 640x400 .*: {name}\)"):
        calibrate_folder(folder, BOARD)


def test_too_few_views_says_how_many(folder: Path) -> None:
    for path in folder.glob("*_0[5-9].png"):
        path.unlink()
    for path in folder.glob("*_1?.png"):
        path.unlink()
    with pytest.raises(TooFewViews) as caught:
        calibrate_folder(folder, BOARD)
    assert caught.value.params == {"found": 5, "needed": 12}


def test_poor_coverage_and_broken_limits_are_errors(good_set: Path) -> None:
    with pytest.raises(CoverageTooLow) as caught:
        calibrate_folder(good_set, BOARD, limits=CameraLimits(min_coverage=1.0))
    assert "(0." in (caught.value.remedy_text or "")
    with pytest.raises(CalibrationFailed, match="IR reprojection RMS"):
        calibrate_folder(good_set, BOARD, limits=CameraLimits(calibration_rms_px=0.01))


def test_a_huge_png_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "ir_00.png"
    ihdr = (40000).to_bytes(4, "big") + (30000).to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + bytes(4))
    with pytest.raises(CorruptImage, match="40000x30000"):
        read_image(path)


def test_no_pairs_at_all(tmp_path: Path) -> None:
    with pytest.raises(NoImagePairs):
        calibrate_folder(tmp_path, BOARD)


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_bytes(b"")])
def test_a_missing_folder_or_a_file_is_not_a_folder(tmp_path: Path, make: object) -> None:
    target = tmp_path / "set"
    make(target)  # type: ignore[operator]
    with pytest.raises(NotAFolder, match="does not exist or is not a folder"):
        calibrate_folder(target, BOARD)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), png_head=st.booleans())
def test_any_bytes_either_read_as_an_image_or_are_a_corrupt_image(tmp_path: Path, data: bytes, png_head: bool) -> None:
    path = tmp_path / "ir_00.png"
    path.write_bytes((b"\x89PNG\r\n\x1a\n" if png_head else b"") + data)
    try:
        image = read_image(path)
    except CameraError as exc:
        assert isinstance(exc, CorruptImage)
    else:
        assert image.dtype == np.uint8 and image.ndim == 2


def test_pairs_left_out_are_counted_by_kind_in_the_error_and_its_json(folder: Path) -> None:
    for n in range(10):
        cv2.imwrite(str(folder / f"ir_{n:02d}.png"), np.full((IR.height, IR.width), 128, np.uint8))
    with pytest.raises(TooFewViews) as caught:
        calibrate_folder(folder, BOARD)
    assert str(caught.value).endswith("(pairs left out: 10 without the board (pairs 00, 01, 02, 03, 04, …))")
    skipped = caught.value.as_dict()["skipped"]
    assert len(skipped) == 10 and skipped[0] == {"pair": "00", "kind": "no-board", "reason": "no board in the IR image"}


def test_pairs_dropped_by_the_solve_are_named(folder: Path) -> None:
    (folder / "rgb_05.png").rename(folder / "swap.png")
    (folder / "rgb_06.png").rename(folder / "rgb_05.png")
    (folder / "swap.png").rename(folder / "rgb_06.png")
    recorder = Recorder()
    calibration = calibrate_folder(folder, BOARD, recorder, limits=CameraLimits(min_views=10))
    assert calibration.views_used == VIEWS - 2 and calibration.stereo.rms_px < 0.3
    dropped = [m.item for m in recorder.of(Message) if "fit far worse" in m.text]
    assert dropped == ["05", "06"]


def test_a_board_only_the_ir_images_miss_is_diagnosed_on_them(folder: Path) -> None:
    for path in folder.glob("*_0[3-9].png"):
        path.unlink()
    for path in folder.glob("*_1?.png"):
        path.unlink()
    for path in folder.glob("ir_*.png"):
        cv2.imwrite(str(path), np.full((IR.height, IR.width), 128, np.uint8))
    with pytest.raises(BoardNotFound, match=r"the IR images show none \(RGB images show it in 3 pairs\): no ArUco"):
        calibrate_folder(folder, BOARD)


@pytest.mark.parametrize("other", ["IR_04.png", "ir_4.png", "ir_004.png"])
def test_two_images_of_one_camera_and_number_are_named(folder: Path, other: str) -> None:
    shutil.copy(folder / "ir_04.png", folder / other)
    with pytest.raises(DuplicateImages) as caught:
        calibrate_folder(folder, BOARD)
    assert str(caught.value).endswith(", ".join(sorted([other, "ir_04.png"])))


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: p.symlink_to(p.parent / "gone.png")])
def test_a_name_that_is_no_readable_file_is_named(folder: Path, make: object) -> None:
    (folder / "ir_07.png").unlink()
    make(folder / "ir_07.png")  # type: ignore[operator]
    with pytest.raises(CorruptImage, match=r"ir_07\.png cannot be used: it is not a readable file"):
        calibrate_folder(folder, BOARD)


def test_an_image_of_another_format_named_png_is_refused(folder: Path) -> None:
    image = cv2.imread(str(folder / "ir_03.png"), cv2.IMREAD_GRAYSCALE)
    (folder / "ir_03.png").write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    with pytest.raises(CorruptImage, match=r"ir_03\.png cannot be used: it is not a PNG image"):
        calibrate_folder(folder, BOARD)
