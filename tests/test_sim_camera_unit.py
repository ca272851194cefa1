"""The simulated unit's camera as the station meets it: CAMERA_* requests, frame objects, the calibration store,
the faults, the control commands and ``naiad sim render-calibration-set``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from console.cli import cli
from simulator.camera.truth import CameraTruth
from simulator.control import SimulatorCommandFailed
from simulator.link import Faults, InvalidFault
from simulator.state import UnitStore
from simulator.unit import VirtualTerminal
from terminal.camera import MAX_BLOB, Board, CameraCalibration, Intrinsics
from terminal.device import RequestRejected
from terminal.models import model_by_id
from terminal.protocol import OBJECT_CALIBRATION, OBJECT_LOOPBACK, ErrorCode, MessageType, frame_object


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[VirtualTerminal]:
    store = UnitStore.create(tmp_path / "units", model_by_id("df2"))
    terminal = VirtualTerminal(store, 0, Faults(), lambda: None, tmp_path)
    yield terminal
    terminal.shutdown()


def _capture(unit: VirtualTerminal, streams: list[str], **extra: Any) -> dict[str, Any]:
    return unit.handle(MessageType.CAMERA_CAPTURE, {"streams": streams, **extra})


def _read(unit: VirtualTerminal, name: str) -> bytes:
    """A whole object by OBJECT_READ, in small chunks as a slow link moves it."""
    data, offset = b"", 0
    while True:
        reply = unit.handle(MessageType.OBJECT_READ, {"name": name, "offset": offset, "length": 200_000})
        data += reply["data"]
        offset += len(reply["data"])
        if offset >= reply["total"]:
            assert hashlib.sha256(data).digest() == reply["sha256"]
            return data


def _write(unit: VirtualTerminal, name: str, data: bytes) -> dict[str, Any]:
    payload = {"name": name, "offset": 0, "total": len(data), "sha256": hashlib.sha256(data).digest(), "data": data}
    return unit.handle(MessageType.OBJECT_WRITE, payload)


def _frames(unit: VirtualTerminal, streams: list[str], **extra: Any) -> dict[str, np.ndarray]:
    reply = _capture(unit, streams, **extra)
    return {
        s: cv2.imdecode(np.frombuffer(_read(unit, frame_object(s)), np.uint8), cv2.IMREAD_UNCHANGED)
        for s in reply["frames"]
    }


def test_capture_keeps_each_frame_as_a_png_object_its_descriptor_names(unit: VirtualTerminal) -> None:
    with pytest.raises(RequestRejected) as before:
        unit.handle(MessageType.OBJECT_READ, {"name": "camera/ir", "offset": 0, "length": 1000})
    assert before.value.code == ErrorCode.NOT_FOUND
    reply = _capture(unit, ["ir", "rgb", "depth"])
    caps = unit.handle(MessageType.CAMERA_CAPABILITIES, {})
    assert caps["ir"] == {"width": 640, "height": 400} and caps["depth"]["range_mm"] == [250, 1200]
    expected = {
        "ir": (400, 640, 1, 8, np.uint8),
        "rgb": (720, 1280, 3, 8, np.uint8),
        "depth": (400, 640, 1, 16, np.uint16),
    }
    for stream, (height, width, channels, bits, dtype) in expected.items():
        frame = reply["frames"][stream]
        png = _read(unit, frame["object"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert hashlib.sha256(png).digest() == frame["sha256"] and len(png) == frame["bytes"] <= caps["max_frame_bytes"]
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.dtype == dtype and image.shape[:2] == (height, width)
        assert (frame["width"], frame["height"], frame["channels"], frame["bits"]) == (width, height, channels, bits)
    unit.handle(MessageType.TIME, {"utc": 2_000_000_000.0})
    second = _capture(unit, ["ir"])
    assert second["frame_set"] == reply["frame_set"] + 1
    assert abs(second["timestamp"] - 2_000_000_000.0) < 60  # stamped by the unit's clock
    with pytest.raises(RequestRejected):  # a new capture replaces the frames of the last one
        unit.handle(MessageType.OBJECT_READ, {"name": "camera/rgb", "offset": 0, "length": 1000})


BAD_REQUESTS = [
    (MessageType.CAMERA_CAPTURE, {}),
    (MessageType.CAMERA_CAPTURE, {"streams": []}),
    (MessageType.CAMERA_CAPTURE, {"streams": ["ir", "ir"]}),
    (MessageType.CAMERA_CAPTURE, {"streams": ["thermal"]}),
    (MessageType.CAMERA_CAPTURE, {"streams": "ir"}),
    (MessageType.CAMERA_CAPTURE, {"streams": ["ir"], "speckle": 1}),
    (MessageType.CAMERA_CAPTURE, {"streams": ["ir"], "colour": True}),
    (MessageType.CAMERA_EXPOSURE, {"ir_us": 49}),
    (MessageType.CAMERA_EXPOSURE, {"rgb_us": 50001}),
    (MessageType.CAMERA_EXPOSURE, {"ir_us": True}),
    (MessageType.CAMERA_EXPOSURE, {"ir_us": 1000.5}),
    (MessageType.CAMERA_EXPOSURE, {"gain": 2}),
    (MessageType.CAMERA_PROJECTOR, {"on": "yes"}),
    (MessageType.CAMERA_CAPABILITIES, {"x": 1}),
]


@pytest.mark.parametrize(("type_", "payload"), BAD_REQUESTS)
def test_bad_camera_requests_are_bad_requests_and_change_nothing(
    unit: VirtualTerminal, type_: int, payload: dict[str, Any]
) -> None:
    with pytest.raises(RequestRejected) as rejected:
        unit.handle(type_, payload)
    assert rejected.value.code == ErrorCode.BAD_REQUEST
    assert unit.handle(MessageType.CAMERA_EXPOSURE, {}) == {"ir_us": 2000, "rgb_us": 8000}
    assert unit.handle(MessageType.CAMERA_PROJECTOR, {}) == {"on": True}


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.booleans(), st.floats(), st.text(), st.none())))
def test_hostile_exposure_and_projector_requests_are_answered_or_refused(payload: dict[str, Any]) -> None:
    camera_unit = _bare_unit()
    for type_ in (MessageType.CAMERA_EXPOSURE, MessageType.CAMERA_PROJECTOR):
        try:
            reply = camera_unit.handle(type_, payload)
        except RequestRejected as exc:
            assert exc.code == ErrorCode.BAD_REQUEST
        else:
            assert set(reply) in ({"ir_us", "rgb_us"}, {"on"})


_BARE: list[VirtualTerminal] = []


def _bare_unit() -> VirtualTerminal:
    """One unit for every hypothesis example (its camera state is reset by a boot)."""
    if not _BARE:
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="naiad-cam-"))
        _BARE.append(
            VirtualTerminal(
                UnitStore.create(directory / "units", model_by_id("df2")), 0, Faults(), lambda: None, directory
            )
        )
    _BARE[0].camera.boot()
    return _BARE[0]


def _blob(unit: VirtualTerminal, serial: str | None = None) -> bytes:
    truth = unit.camera.truth
    return CameraCalibration(
        serial or unit.serial, "df2", truth.ir, truth.rgb, truth.rgb_from_ir, 1.0e9, {"views_used": 20}
    ).encode()


def test_the_unit_keeps_only_a_valid_calibration_of_its_own(unit: VirtualTerminal) -> None:
    with pytest.raises(RequestRejected) as none:
        unit.handle(MessageType.OBJECT_READ, {"name": OBJECT_CALIBRATION, "offset": 0, "length": 4096})
    assert none.value.code == ErrorCode.NOT_FOUND
    good = _blob(unit)
    assert _write(unit, OBJECT_CALIBRATION, good)["complete"]
    assert _read(unit, OBJECT_CALIBRATION) == good
    assert hashlib.sha256(good).hexdigest()[:12] in unit.store.read_log().decode()
    damaged = bytearray(_blob(unit))
    damaged[-3] ^= 0x40
    for blob, code in ((_blob(unit, "DF2OTHER1"), ErrorCode.BAD_REQUEST), (bytes(damaged), ErrorCode.INTEGRITY)):
        with pytest.raises(RequestRejected) as refused:
            _write(unit, OBJECT_CALIBRATION, blob)
        assert refused.value.code == code
        assert _read(unit, OBJECT_CALIBRATION) == good  # the stored one stays
    unit.power_on("run")
    assert _read(unit, OBJECT_CALIBRATION) == good  # kept across a reboot, like flash
    unit.shutdown()


def test_a_calibration_of_another_model_or_other_image_sizes_is_refused(unit: VirtualTerminal) -> None:
    truth, frog = unit.camera.truth, model_by_id("frog-pro").camera
    other = Intrinsics(*frog.ir_resolution, 900.0, 900.0, 640.0, 400.0)
    wrong_model = CameraCalibration(unit.serial, "frog-pro", truth.ir, truth.rgb, truth.rgb_from_ir, 1e9, {})
    wrong_size = CameraCalibration(unit.serial, "df2", other, truth.rgb, truth.rgb_from_ir, 1e9, {})
    for calibration in (wrong_model, wrong_size):
        with pytest.raises(RequestRejected) as refused:
            _write(unit, OBJECT_CALIBRATION, calibration.encode())
        assert refused.value.code == ErrorCode.BAD_REQUEST
    assert unit.camera.read_calibration() is None


def test_a_calibration_write_larger_than_any_blob_is_refused_at_its_first_chunk(unit: VirtualTerminal) -> None:
    payload = {"offset": 0, "total": MAX_BLOB + 1, "sha256": bytes(32), "data": b"x"}
    with pytest.raises(RequestRejected) as refused:
        unit.handle(MessageType.OBJECT_WRITE, {"name": OBJECT_CALIBRATION, **payload})
    assert refused.value.code == ErrorCode.BAD_REQUEST
    loopback = unit.handle(MessageType.OBJECT_WRITE, {"name": OBJECT_LOOPBACK, **payload})
    assert loopback == {"received": 1, "complete": False}  # other objects may be larger


def test_a_failed_capture_does_not_count_as_a_frame_set(unit: VirtualTerminal, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.camera import service

    first = _capture(unit, ["ir"])["frame_set"]

    def broken(image: np.ndarray) -> bytes:
        raise RequestRejected(ErrorCode.INTERNAL, "PNG encoding failed")

    monkeypatch.setattr(service, "encode_png", broken)
    with pytest.raises(RequestRejected):
        _capture(unit, ["ir"])
    monkeypatch.undo()
    assert _capture(unit, ["ir"])["frame_set"] == first + 1


def test_a_reboot_during_a_capture_leaves_no_frames(unit: VirtualTerminal, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.camera import service
    from simulator.camera.render import render as real

    rendering, release = threading.Event(), threading.Event()

    def slow(*args: Any) -> dict[str, np.ndarray]:
        rendering.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(service, "render", slow)
    capture = threading.Thread(target=_capture, args=(unit, ["ir"]))
    capture.start()
    assert rendering.wait(10)
    boot = threading.Thread(target=unit.camera.boot)
    boot.start()
    boot.join(0.3)  # without the lock the boot is over here, before the capture stores its frame
    release.set()
    capture.join(10)
    boot.join(10)
    assert frame_object("ir") not in unit._objects


def test_faults_change_the_frames_as_documented(unit: VirtualTerminal) -> None:
    _, detector = _charuco()
    good = _frames(unit, ["ir", "rgb", "depth"])
    unit.faults.update(dead_projector=True)
    assert unit.handle(MessageType.CAMERA_PROJECTOR, {}) == {"on": True}
    dead = _frames(unit, ["ir", "depth"], speckle=True)
    assert not dead["depth"].any() and good["depth"].any()
    assert _fine(dead["ir"]) < 2 * _fine(good["ir"])  # no dots: as smooth as the flood-lit image
    unit.faults.update(dead_projector=False, rgb_defocus=True)
    blurred = _frames(unit, ["rgb"])["rgb"]
    assert _fine(blurred) < 0.5 * _fine(good["rgb"])
    unit.faults.update(rgb_defocus=False, camera_drift=True)
    drifted = _frames(unit, ["ir", "depth"])
    before, after = (dict(zip(*_corners(detector, f["ir"]), strict=True)) for f in (good, drifted))
    shift = np.mean([after[i] - before[i] for i in before.keys() & after.keys()], axis=0)
    assert np.allclose(shift, (4.0, -3.0), atol=1.0)  # the IR principal point moved
    both = (good["depth"] > 0) & (drifted["depth"] > 0)
    ratio = np.median(drifted["depth"][both].astype(float) / good["depth"][both])
    assert 1.01 < ratio < 1.03  # the projector moved: depth reads about 2 % long
    unit.handle(MessageType.CAMERA_PROJECTOR, {"on": False})
    assert not _frames(unit, ["depth"])["depth"].any()


def _charuco() -> tuple[cv2.aruco.CharucoBoard, cv2.aruco.CharucoDetector]:
    board = cv2.aruco.CharucoBoard((11, 8), 0.024, 0.018, cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100))
    return board, cv2.aruco.CharucoDetector(board)


def _corners(detector: cv2.aruco.CharucoDetector, image: np.ndarray) -> tuple[list[int], np.ndarray]:
    corners, ids, _, _ = detector.detectBoard(image)
    return [int(i) for i in ids.ravel()], corners.reshape(-1, 2)


def _fine(image: np.ndarray) -> float:
    grey = image.astype(np.float32)
    return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2)).mean())


def test_faults_are_validated_like_the_others() -> None:
    for name in ("camera_drift", "dead_projector", "rgb_defocus"):
        with pytest.raises(InvalidFault):
            Faults().update(**{name: 1})
        assert Faults(**{name: True}).as_dict()[name] is True


def test_scene_and_truth_control_commands_and_fault_flags(sim: Any) -> None:
    serial = sim.serials()[0]
    truth = CameraTruth.from_dict(sim.call("truth", serial=serial))
    wall = sim.call("scene", serial=serial, scene={"kind": "wall", "distance_m": 0.5, "tilt_deg": [10, 0]})
    assert wall == {"kind": "wall", "distance_m": 0.5, "tilt_deg": [10.0, 0.0]}
    posed = sim.call("scene", serial=serial, scene={"kind": "board", "jig_pose": 3})
    assert posed == sim.call("scene", serial=serial, scene={"kind": "board", "jig_pose": 3})
    assert posed["tvec_m"][2] > 0.1 and Board.from_dict(posed["board"]) == Board()
    aimed = sim.call("scene", serial=serial, scene={"kind": "board", "aim": [0.1, 0.9]})
    assert aimed["kind"] == "board"
    with pytest.raises(SimulatorCommandFailed, match="distance_m"):
        sim.call("scene", serial=serial, scene={"kind": "wall", "distance_m": -1})
    with pytest.raises(SimulatorCommandFailed, match="jig_pose"):
        sim.call("scene", serial=serial, scene={"kind": "board", "jig_pose": 40})
    result = CliRunner().invoke(cli, ["sim", "faults", "--serial", serial, "--camera-drift", "--dead-projector"])
    assert result.exit_code == 0, result.output
    faults = sim.terminal(serial)["faults"]
    assert faults["camera_drift"] and faults["dead_projector"] and not faults["rgb_defocus"]
    assert CameraTruth.from_dict(sim.call("truth", serial=serial)) == truth.drifted()


def test_render_calibration_set_writes_the_documented_files(tmp_path: Path) -> None:
    out = tmp_path / "set"
    out.mkdir()
    (out / "ir_07.png").write_bytes(b"stale")  # a frame of an older, longer set
    result = CliRunner().invoke(
        cli, ["sim", "render-calibration-set", "--out", str(out), "--views", "2", "--seed", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"out": str(out), "views": 2, "seed": 4, "model": "df2"}
    names = {p.name for p in out.iterdir()}
    assert names == {f"{s}_{i:02d}.png" for s in ("ir", "rgb", "depth") for i in range(2)} | {
        "board.json",
        "truth.json",
    }
    assert Board.read(out / "board.json") == Board()
    truth = json.loads((out / "truth.json").read_text())
    assert Intrinsics.from_dict(truth["ir"]).width == 640 and truth["model"] == "df2" and len(truth["poses"]) == 2
    assert set(truth["poses"][0]) == {"rvec", "tvec_m"} and truth["projector_baseline_mm"] == 40.0
    assert cv2.imread(str(out / "depth_01.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(out / "rgb_00.png"), cv2.IMREAD_UNCHANGED).shape == (720, 1280, 3)
    again = tmp_path / "again"
    CliRunner().invoke(cli, ["sim", "render-calibration-set", "--out", str(again), "--views", "2", "--seed", "4"])
    assert (again / "ir_01.png").read_bytes() == (out / "ir_01.png").read_bytes()  # the seed decides everything
    bad = CliRunner().invoke(cli, ["sim", "render-calibration-set", "--out", str(tmp_path / "x"), "--model", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output and "frog-pro" in bad.output  # the models there are
    assert not (tmp_path / "x").exists()


def test_render_calibration_set_counts_views_not_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from console import cli_sim

    screen = io.StringIO()
    monkeypatch.setattr(cli_sim, "err", lambda: Console(file=screen, force_terminal=True, width=100))
    with cli_sim.view_bar(True, "Rendering views") as progress:
        progress(1, 20)
    shown = screen.getvalue()
    assert "1/20" in shown and "/s" not in shown  # a count of views, no transfer speed


def test_an_unknown_scene_kind_is_refused_before_anything_changes(unit: VirtualTerminal) -> None:
    from simulator.camera.jig import SceneError

    before = unit.camera.scene()
    for scene in (
        {"kind": "hologram"},  # "face" is a kind since the face scenes (tests/test_sim_faces.py)
        {"kind": "board"},
        {"kind": "board", "aim": [2, 0]},
        [1],
        {"kind": "none", "board": {}},
    ):
        with pytest.raises(SceneError):
            unit.camera.set_scene(scene)
    assert unit.camera.scene() == before
    assert dataclasses.asdict(unit.camera.truth.ir) == dataclasses.asdict(unit.camera.physical().ir)


def test_a_scene_with_a_field_its_kind_does_not_take_is_refused(
    unit: VirtualTerminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.camera import jig

    before = unit.camera.scene()
    for scene in (
        {"kind": "wall", "distance_m": 0.5, "tilt": [10, 0]},  # tilt_deg misspelt: not a frontal wall
        {"kind": "default", "distance_m": 0.5},
        {"kind": "none", "aim": [0.5, 0.5]},
        {"kind": "board", "jig_pose": 1, "aim": [0.5, 0.5]},  # two poses: which one?
        {"kind": "board", "jig_pose": 1, "rvec": [0, 0, 0], "tvec_m": [0, 0, 0.5]},
    ):
        with pytest.raises(jig.SceneError):
            unit.camera.set_scene(scene)
    assert unit.camera.scene() == before
    monkeypatch.setattr(jig, "JIG_POSES", 12)
    with pytest.raises(jig.SceneError, match="from 0 to 11"):
        unit.camera.set_scene({"kind": "board", "jig_pose": 12})


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
_SCENE_KEYS = st.sampled_from(["kind", "rvec", "tvec_m", "jig_pose", "aim", "distance_m", "tilt_deg", "board"])


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        _JSON,
        st.dictionaries(_SCENE_KEYS, _JSON, max_size=4).map(lambda d: {"kind": "board", **d}),
        st.dictionaries(_SCENE_KEYS, _JSON, max_size=3).map(lambda d: {**d, "kind": "wall"}),
    )
)
def test_any_scene_the_control_channel_sends_is_staged_or_refused_cleanly(data: Any) -> None:
    from simulator.camera.jig import SceneError, scene_from_dict
    from simulator.camera.render import BoardScene, EmptyScene, WallScene

    model = model_by_id("df2")
    truth = _bare_unit().camera.truth
    try:
        scene = scene_from_dict(data, truth, model, "DF2HYPO")
    except SceneError:
        return
    assert isinstance(scene, BoardScene | WallScene | EmptyScene)
