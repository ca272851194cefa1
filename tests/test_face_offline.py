"""Frame-set folders: saved and read back bit for bit; careless paths, mismatched sets and hostile files refused
with typed errors, and nothing changed when saving fails."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camera.faceoffline import (
    BadFolderCalibration,
    BadFrameFile,
    BadFrameSetName,
    DuplicateFrameFiles,
    FrameSetExists,
    IncompleteFrameSets,
    NoFrameSets,
    NotAFrameFolder,
    TooLargeFrameFolder,
    UnsavableFrames,
    read_folder_calibration,
    read_frame_sets,
    save_folder_calibration,
    save_frame_set,
)
from camera.frames import Frames
from terminal.camera import CameraCalibration, Extrinsics, Intrinsics


def frames(seed: int = 0, ir_size: tuple[int, int] = (64, 48), rgb_size: tuple[int, int] = (80, 60)) -> Frames:
    rng = np.random.default_rng(seed)
    (iw, ih), (rw, rh) = ir_size, rgb_size
    return Frames(
        ir=rng.integers(0, 256, (ih, iw), np.uint8),
        rgb=rng.integers(0, 256, (rh, rw, 3), np.uint8),
        depth=rng.integers(0, 65536, (ih, iw), np.uint16),
    )


def same(a: Frames, b: Frames) -> bool:
    return all(np.array_equal(getattr(a, s), getattr(b, s)) for s in ("ir", "rgb", "depth"))


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())} if directory.exists() else {}


def test_frame_sets_round_trip_bit_for_bit(tmp_path: Path) -> None:
    folder = tmp_path / "sets"
    written = save_frame_set(folder, "set_01", frames(1))
    save_frame_set(folder, "set_00", frames(0))
    (folder / "notes.txt").write_text("ignored")
    assert [p.name for p in written] == ["set_01_ir.png", "set_01_rgb.png", "set_01_depth.png"]
    sets = read_frame_sets(folder)
    assert [name for name, _frames in sets] == ["set_00", "set_01"]
    assert same(sets[0][1], frames(0)) and same(sets[1][1], frames(1))
    # The RGB file is an ordinary colour PNG: BGR in memory, RGB in the file.
    rgb = cv2.imread(str(folder / "set_00_rgb.png"))
    assert rgb is not None and np.array_equal(rgb, frames(0).rgb)


def test_the_calibration_blob_round_trips_and_is_optional(tmp_path: Path) -> None:
    assert read_folder_calibration(tmp_path) is None
    camera = Intrinsics(64, 48, 60.0, 60.0, 32.0, 24.0)
    calibration = CameraCalibration(
        "DF2TEST0001", "df2", camera, camera, Extrinsics(((1, 0, 0), (0, 1, 0), (0, 0, 1)), (0.02, 0, 0)), 0.0
    )
    save_folder_calibration(tmp_path, calibration)
    save_folder_calibration(tmp_path, calibration)  # the same blob again: fine
    assert read_folder_calibration(tmp_path) == calibration
    other = CameraCalibration("DF2TEST0002", "df2", camera, camera, calibration.rgb_from_ir, 0.0)
    with pytest.raises(FrameSetExists):
        save_folder_calibration(tmp_path, other)
    assert read_folder_calibration(tmp_path) == calibration


@pytest.mark.parametrize("blob", [b"", b"NCAL\x01" + b"\x00" * 40, b"x" * 70000])
def test_a_bad_calibration_blob_is_refused(tmp_path: Path, blob: bytes) -> None:
    (tmp_path / "calibration.bin").write_bytes(blob)
    with pytest.raises(BadFolderCalibration) as caught:
        read_folder_calibration(tmp_path)
    assert "calibration.bin" in str(caught.value)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 65, "name with space", "ir\x00"])
def test_a_careless_name_saves_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadFrameSetName):
        save_frame_set(tmp_path / "sets", name, frames())
    assert not (tmp_path / "sets").exists() and listing(tmp_path) == {}


@pytest.mark.parametrize(
    "bad",
    [
        Frames(ir=frames().ir, rgb=frames().rgb),  # no depth
        Frames(ir=frames().ir, rgb=frames().rgb, depth=frames(ir_size=(32, 24)).depth),  # depth not on the IR grid
        Frames(ir=frames().rgb, rgb=frames().rgb, depth=frames().depth),  # colour IR
        Frames(ir=frames().ir, rgb=frames().ir, depth=frames().depth),  # grey RGB
        Frames(ir=frames().ir, rgb=frames().rgb, depth=frames().depth.astype(np.float32)),  # type: ignore[arg-type]
    ],
)
def test_frames_of_the_wrong_layout_save_nothing(tmp_path: Path, bad: Frames) -> None:
    with pytest.raises(UnsavableFrames):
        save_frame_set(tmp_path / "sets", "a", bad)
    assert not (tmp_path / "sets").exists()


def test_an_existing_set_is_never_overwritten(tmp_path: Path) -> None:
    save_frame_set(tmp_path, "a", frames(0))
    before = listing(tmp_path)
    (tmp_path / "b_RGB.png").write_bytes(b"someone else's")
    with pytest.raises(FrameSetExists):
        save_frame_set(tmp_path, "a", frames(1))
    with pytest.raises(FrameSetExists):
        save_frame_set(tmp_path, "b", frames(1))  # b_RGB.png is b's RGB file whatever its case
    assert listing(tmp_path) == {**before, "b_RGB.png": b"someone else's"}


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sets").write_text("a file")
    with pytest.raises(NotAFrameFolder):
        save_frame_set(tmp_path / "sets", "a", frames())
    with pytest.raises(NotAFrameFolder):
        read_frame_sets(tmp_path / "sets")
    with pytest.raises(NotAFrameFolder):
        read_frame_sets(tmp_path / "missing")
    assert (tmp_path / "sets").read_text() == "a file"


def test_a_failed_write_removes_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    original = Path.open

    def failing_open(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "x" in mode:
            opened.append(self.name)
            if len(opened) == 3:
                raise OSError(28, "No space left on device")
        return original(self, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(BadFrameFile, match="No space left"):
        save_frame_set(tmp_path / "new", "a", frames())
    assert opened == ["a_ir.png", "a_rgb.png", "a_depth.png"]
    assert not (tmp_path / "new").exists()


def test_an_empty_folder_has_no_frame_sets(tmp_path: Path) -> None:
    (tmp_path / "ir_00.png").write_bytes(b"a calibration pair, not a frame set")
    with pytest.raises(NoFrameSets):
        read_frame_sets(tmp_path)


def test_sets_missing_a_stream_are_named(tmp_path: Path) -> None:
    save_frame_set(tmp_path, "a", frames())
    save_frame_set(tmp_path, "b", frames())
    (tmp_path / "a_depth.png").unlink()
    (tmp_path / "b_ir.png").unlink()
    (tmp_path / "b_rgb.png").unlink()
    with pytest.raises(IncompleteFrameSets, match=r"a \(no depth\); b \(no ir, rgb\)"):
        read_frame_sets(tmp_path)


def test_two_files_of_one_stream_are_duplicates(tmp_path: Path) -> None:
    save_frame_set(tmp_path, "a", frames())
    (tmp_path / "a_IR.png").write_bytes((tmp_path / "a_ir.png").read_bytes())
    with pytest.raises(DuplicateFrameFiles, match=r"a_IR\.png, a_ir\.png"):
        read_frame_sets(tmp_path)


def swap(directory: Path, name: str, image: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", image)
    assert ok
    (directory / name).write_bytes(png.tobytes())


@pytest.mark.parametrize(
    ("file", "image", "detail"),
    [
        ("a_rgb.png", np.zeros((60, 80), np.uint8), "pixel format"),  # grey where colour belongs
        ("a_depth.png", np.zeros((48, 64), np.uint8), "pixel format"),  # 8-bit depth
        ("a_ir.png", np.zeros((48, 64), np.uint16), "pixel format"),  # 16-bit IR
        ("a_depth.png", np.zeros((24, 32), np.uint16), "it is 32x24, its IR image 64x48"),
        ("a_ir.png", np.zeros((10, 5000), np.uint8), "it is 5000x10 pixels"),
    ],
)
def test_a_frame_of_the_wrong_kind_is_named(tmp_path: Path, file: str, image: np.ndarray, detail: str) -> None:
    save_frame_set(tmp_path, "a", frames())
    swap(tmp_path, file, image)
    with pytest.raises(BadFrameFile, match=detail) as caught:
        list(read_frame_sets(tmp_path))  # sizes when the folder is read, pixel formats when a set is used
    assert file in str(caught.value)


def test_a_folder_named_like_a_frame_is_not_a_frame(tmp_path: Path) -> None:
    save_frame_set(tmp_path, "a", frames())
    (tmp_path / "a_ir.png").unlink()
    (tmp_path / "a_ir.png").mkdir()
    with pytest.raises(BadFrameFile, match="not a readable file"):
        read_frame_sets(tmp_path)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), keep=st.integers(0, 120), stream=st.sampled_from(["ir", "rgb", "depth"]))
def test_any_bytes_in_a_frame_file_read_or_are_refused(tmp_path: Path, data: bytes, keep: int, stream: str) -> None:
    folder = tmp_path / f"{stream}-{keep}-{data.hex()[:16]}"
    if not folder.exists():
        save_frame_set(folder, "a", frames(ir_size=(8, 6), rgb_size=(8, 6)))
    # A real file's head (a PNG header) with hostile bytes after it, or hostile bytes alone.
    path = folder / f"a_{stream}.png"
    head = path.read_bytes()[:keep] if keep <= 60 else b""
    path.write_bytes(head + data)
    try:
        sets = read_frame_sets(folder)
        assert len(sets) == 1 and sets[0][0] == "a"  # decoded here, when the set is used
    except BadFrameFile as exc:  # a hostile IR header may instead make the depth file's size disagree with it
        assert path.name in str(exc) or (stream == "ir" and "its IR image" in str(exc))


@pytest.mark.parametrize("name", ["calibration.bin", "a_ir.png", "a_depth.png"])
def test_a_fifo_in_the_folder_is_refused_without_blocking(tmp_path: Path, name: str) -> None:
    """Opening a named pipe blocks until a writer comes: the folder's files are opened without blocking and
    must be regular files."""
    save_frame_set(tmp_path, "a", frames())
    (tmp_path / name).unlink(missing_ok=True)
    os.mkfifo(tmp_path / name)
    with pytest.raises((BadFolderCalibration, BadFrameFile), match="not a readable file") as caught:
        read_folder_calibration(tmp_path) if name == "calibration.bin" else read_frame_sets(tmp_path)
    assert name in str(caught.value)


def test_sets_are_decoded_one_at_a_time_when_used(tmp_path: Path) -> None:
    """A folder's sets are not all held in memory: a set's pixels are decoded when it is used, so one that
    does not decode is found then, after the sets before it were used."""
    save_frame_set(tmp_path, "a", frames(0))
    save_frame_set(tmp_path, "b", frames(1))
    path = tmp_path / "b_rgb.png"
    path.write_bytes(path.read_bytes()[:40] + b"\x00" * 200)  # its header intact, its pixels not
    sets = read_frame_sets(tmp_path)
    assert len(sets) == 2 and sets.names == ["a", "b"]
    assert same(sets[0][1], frames(0))
    with pytest.raises(BadFrameFile, match=r"b_rgb\.png"):
        sets[1]


def test_a_folder_of_too_many_sets_or_pixels_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        save_frame_set(tmp_path, name, frames())
    monkeypatch.setattr("camera.faceoffline.MAX_SETS", 2)
    with pytest.raises(TooLargeFrameFolder, match="3 frame sets"):
        read_frame_sets(tmp_path)
    monkeypatch.setattr("camera.faceoffline.MAX_SETS", 3)
    monkeypatch.setattr("camera.faceoffline.MAX_PIXELS", 3 * (64 * 48 * 2 + 80 * 60) - 1)
    with pytest.raises(TooLargeFrameFolder):
        read_frame_sets(tmp_path)
    monkeypatch.setattr("camera.faceoffline.MAX_PIXELS", 3 * (64 * 48 * 2 + 80 * 60))
    assert len(read_frame_sets(tmp_path)) == 3
