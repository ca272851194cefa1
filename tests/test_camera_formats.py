"""The camera's shared formats: the board file, the calibration blob, and the model table's camera rows."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.camera import (
    MAGIC,
    MAX_INTEGER,
    Board,
    BoardFileError,
    CalibrationBlobError,
    CameraCalibration,
    Extrinsics,
    Intrinsics,
    blob_checksum,
)
from terminal.models import CameraLimits, ModelTableError, load_models, read_table

GOOD_BOARD = {
    "type": "charuco",
    "dictionary": "DICT_5X5_100",
    "squares_x": 11,
    "squares_y": 8,
    "square_length_m": 0.024,
    "marker_length_m": 0.018,
}


def calibration() -> CameraCalibration:
    c, s = math.cos(0.01), math.sin(0.01)
    return CameraCalibration(
        serial="DF2ABCD1234",
        model="df2",
        ir=Intrinsics(640, 400, 461.2, 460.8, 321.5, 198.2, (-0.05, 0.03, 0.0005, -0.0002, 0.0)),
        rgb=Intrinsics(1280, 720, 1001.0, 999.5, 641.0, 359.0, (0.01, -0.02, 0.0, 0.0, 0.0)),
        rgb_from_ir=Extrinsics(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)), (-0.025, 0.0002, 0.0001)),
        created=1_796_000_000.0,
        figures={"ir_rms_px": 0.12, "views_used": 24},
    )


def test_board_file_as_design_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "board.json"
    path.write_text(json.dumps(GOOD_BOARD))
    board = Board.read(path)
    assert board == Board()
    assert board.corners == 70
    assert Board.from_dict(board.to_dict()) == board


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"type": "chessboard"}, "charuco"),
        ({"dictionary": "DICT_9X9_1"}, "dictionary"),
        ({"squares_x": 1}, "squares_x"),
        ({"squares_y": 8.5}, "squares_y"),
        ({"square_length_m": -0.024}, "square_length_m"),
        ({"marker_length_m": 0.03}, "smaller"),
        ({"colour": "red"}, "colour"),
        ({"legacy_pattern": "yes"}, "legacy_pattern"),
    ],
)
def test_a_wrong_board_file_is_refused_with_its_reason(change: dict[str, object], words: str) -> None:
    with pytest.raises(BoardFileError, match=words):
        Board.from_dict({**GOOD_BOARD, **change}, "board.json")


def test_a_board_file_that_is_not_json_or_is_missing_says_so(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BoardFileError, match="not JSON"):
        Board.read(tmp_path / "bad.json")
    with pytest.raises(BoardFileError, match="cannot be read"):
        Board.read(tmp_path / "absent.json")
    missing = dict(GOOD_BOARD)
    del missing["marker_length_m"]
    with pytest.raises(BoardFileError, match="marker_length_m"):
        Board.from_dict(missing)


def test_a_blob_reads_back_as_written() -> None:
    blob = calibration().encode()
    assert blob.startswith(MAGIC)
    assert CameraCalibration.decode(blob) == calibration()
    assert calibration().checksum == calibration().checksum  # canonical CBOR: the same calibration, one checksum


def test_a_damaged_blob_is_refused() -> None:
    blob = bytearray(calibration().encode())
    blob[-3] ^= 0x01
    with pytest.raises(CalibrationBlobError, match="checksum"):
        CameraCalibration.decode(bytes(blob))
    with pytest.raises(CalibrationBlobError, match="magic"):
        CameraCalibration.decode(b"XCAL" + bytes(blob[4:]))
    with pytest.raises(CalibrationBlobError, match="version"):
        CameraCalibration.decode(MAGIC + b"\x09" + bytes(blob[5:]))


def _blob_of(body: object) -> bytes:
    data = cbor2.dumps(body, canonical=True)  # canonical: the checks under test are what refuses it
    return MAGIC + b"\x01" + hashlib.sha256(data).digest() + data


@pytest.mark.parametrize(
    ("part", "value", "words"),
    [
        ("ir", {"width": 640, "height": 400, "K": [[1, 0, 1], [0, 1, 1]], "dist": [0, 0, 0, 0, 0]}, "three rows"),
        (
            "ir",
            {"width": 640, "height": 400, "K": [[-1, 0, 1], [0, 1, 1], [0, 0, 1]], "dist": [0] * 5},
            "focal lengths",
        ),
        ("ir", {"width": 0, "height": 400, "K": [[1, 0, 1], [0, 1, 1], [0, 0, 1]], "dist": [0] * 5}, "size"),
        ("rgb_from_ir", {"R": [[2, 0, 0], [0, 1, 0], [0, 0, 1]], "t_m": [0, 0, 0]}, "rotation"),
        ("rgb_from_ir", {"R": [[1, 0, 0], [0, 1, 0], [0, 0, -1]], "t_m": [0, 0, 0]}, "rotation"),
        ("figures", {"rms": float("nan")}, "finite"),
        ("serial", 12, "text"),
    ],
)
def test_a_well_sealed_blob_of_the_wrong_shape_is_refused(part: str, value: object, words: str) -> None:
    body = calibration().body()
    body[part] = value
    with pytest.raises(CalibrationBlobError, match=words):
        CameraCalibration.decode(_blob_of(body))


BIGNUM = cbor2.CBORTag(2, (10**400).to_bytes(167, "big"))
CAMERA = {"width": 640, "height": 400, "K": [[500.0, 0.0, 320.0], [0.0, 500.0, 200.0], [0.0, 0.0, 1.0]]}


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("created",), BIGNUM, "beyond"),  # math.isfinite would raise OverflowError on it
        (("figures",), {"views_used": BIGNUM}, "beyond"),
        (("created",), 10**30, "beyond"),
        (("figures",), {"views_used": MAX_INTEGER + 1}, "beyond"),
        (("ir", "dist"), [1e300] * 14, "dist"),
        (("ir", "dist"), [0.0, 0.0, 0.0, 0.0, -101.0], "dist"),
        (
            ("ir",),
            {**CAMERA, "K": [[1e-300, 0.0, 320.0], [0.0, 500.0, 200.0], [0.0, 0.0, 1.0]], "dist": [0.0] * 5},
            "focal",
        ),
        (
            ("ir",),
            {**CAMERA, "K": [[500.0, 0.0, 320.0], [0.0, 64001.0, 200.0], [0.0, 0.0, 1.0]], "dist": [0.0] * 5},
            "focal",
        ),
        (
            ("ir",),
            {**CAMERA, "K": [[500.0, 0.0, -1e300], [0.0, 500.0, 200.0], [0.0, 0.0, 1.0]], "dist": [0.0] * 5},
            "principal",
        ),
        (
            ("ir",),
            {**CAMERA, "K": [[500.0, 0.0, 320.0], [0.0, 500.0, 401.0], [0.0, 0.0, 1.0]], "dist": [0.0] * 5},
            "principal",
        ),
        (("rgb_from_ir", "t_m"), [1e300, 0.0, 0.0], "t_m"),
        (("rgb_from_ir", "t_m"), [0.0, 0.0, 1.01], "t_m"),
        (("extra",), "password=hunter2", "keys"),
        (("ir", "extra"), 1, "keys"),
        (("rgb_from_ir", "s"), 1.0, "keys"),
        (("serial",), "", "empty"),
        (("model",), "", "empty"),
        (("figures",), {1: 2.0}, "name"),
    ],
)
def test_a_blob_of_absurd_or_unknown_values_is_refused(path: tuple[str, ...], value: object, words: str) -> None:
    body = calibration().body()
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(CalibrationBlobError, match=words):
        CameraCalibration.decode(_blob_of(body))


def test_a_decoded_calibration_has_its_blobs_checksum() -> None:
    whole = CameraCalibration(**{**calibration().__dict__, "created": 1_796_000_000, "figures": {"views_used": 24}})
    blob = whole.encode()
    decoded = CameraCalibration.decode(blob)
    assert decoded.checksum == blob_checksum(blob) and decoded.encode() == blob
    assert isinstance(decoded.created, int) and isinstance(decoded.figures["views_used"], int)


def test_a_blob_in_another_encoding_of_the_same_calibration_is_refused() -> None:
    body = calibration().body()
    data = cbor2.dumps(body)  # cbor2's default key order, not the canonical one
    assert data != cbor2.dumps(body, canonical=True)
    with pytest.raises(CalibrationBlobError, match="canonical"):
        CameraCalibration.decode(MAGIC + b"\x01" + hashlib.sha256(data).digest() + data)
    data = cbor2.dumps(body, canonical=True) + b"\x00garbage"  # trailing bytes after the body
    with pytest.raises(CalibrationBlobError, match="canonical"):
        CameraCalibration.decode(MAGIC + b"\x01" + hashlib.sha256(data).digest() + data)
    merged = {**body, "figures": {"1": 5.0}}
    assert CameraCalibration.decode(_blob_of(merged)).figures == {"1": 5.0}  # text names are fine


@given(st.binary(max_size=300))
def test_any_bytes_are_refused_as_a_blob_error(data: bytes) -> None:
    sealed = MAGIC + b"\x01" + hashlib.sha256(data).digest() + data  # past the checksum: the CBOR and shape checks
    for blob in (data, MAGIC + b"\x01" + data, sealed):
        with pytest.raises(CalibrationBlobError):
            CameraCalibration.decode(blob)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_changed_byte_of_a_blob_is_refused(position: int, flip: int) -> None:
    blob = bytearray(calibration().encode())
    blob[position % len(blob)] ^= flip
    with pytest.raises(CalibrationBlobError):
        CameraCalibration.decode(bytes(blob))


def test_every_packaged_model_has_a_camera_with_limits() -> None:
    for model in load_models().values():
        camera = model.camera
        assert camera.rgb_focal_length_px > 0
        assert len(camera.limits.depth_distances_m) >= 2  # depth quality at two or more distances
    assert load_models()["frog-pro"].camera.limits.depth_distances_m == (0.5, 0.8, 1.2)
    assert load_models()["df2"].camera.limits == CameraLimits(depth_distances_m=(0.5, 0.8))


def test_a_user_table_with_a_wrong_limit_is_refused(tmp_path: Path) -> None:
    packaged = (Path(__file__).parent.parent / "terminal" / "models.toml").read_text()
    for bad in ('min_fill_rate = "high"\n', "loudness = 3\n"):
        path = tmp_path / "models.toml"
        path.write_text(packaged.replace("depth_distances_m = [0.5, 0.8]\n", "depth_distances_m = [0.5, 0.8]\n" + bad))
        with pytest.raises(ModelTableError):
            read_table(path)


def test_pixel_limits_scale_with_each_models_resolution() -> None:
    """R3-7: the 1280x800 frog-pro had the 640x400 df2's pixel limits."""
    df2, frog = (load_models()[name].camera for name in ("df2", "frog-pro"))
    ir_scale = frog.focal_length_px / df2.focal_length_px
    rgb_scale = frog.rgb_focal_length_px / df2.rgb_focal_length_px
    assert frog.limits.field_reprojection_px == pytest.approx(df2.limits.field_reprojection_px * ir_scale)
    assert frog.limits.field_misalignment_px == pytest.approx(df2.limits.field_misalignment_px * rgb_scale)
    assert frog.limits.field_rgb_blur_px > df2.limits.field_rgb_blur_px
    assert frog.limits.extra_poses > 0 and frog.limits.max_subpixel_rms_px > 0


def test_a_user_table_with_one_depth_distance_is_refused(tmp_path: Path) -> None:
    """R3-15: depth quality needs two or more distances."""
    packaged = (Path(__file__).parent.parent / "terminal" / "models.toml").read_text()
    path = tmp_path / "models.toml"
    path.write_text(packaged.replace("depth_distances_m = [0.5, 0.8]\n", "depth_distances_m = [0.5]\n"))
    with pytest.raises(ModelTableError):
        read_table(path)
