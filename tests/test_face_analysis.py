"""FaceAnalyser: each decision (no face, several faces, poor quality, attack, live) from one frame set, with a
detector that finds what the test says (the real detector has its own tests) and real quality and liveness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_liveness import IR, constant_model, scene

from camera.depth import UnusableFrame
from camera.faceanalysis import FaceAnalyser
from camera.faceconfig import FaceConfig, LivenessConfig, QualityLimits
from camera.faces import Decision, Face
from camera.frames import Frames
from simulator.camera.render import Capture
from simulator.camera.truth import draw_truth, serial_rng
from simulator.face.render import render_face
from simulator.face.scene import FaceScene, Light
from terminal.camera import CameraCalibration, Extrinsics
from terminal.models import model_by_id

# The RGB camera is the IR camera here (same lens, no offset): the face box is the same in both images.
CALIBRATION = CameraCalibration(
    "DF2TEST", "df2", IR, IR, Extrinsics(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), (0.0, 0.0, 0.0)), 0.0
)
DF2 = model_by_id("df2")
LENIENT = QualityLimits(min_face_px=20.0, min_brightness=1.0, max_brightness=254.0, max_clipped=1.0, min_sharpness=0.0)


class Finder:
    """A detector that finds ``faces`` in whatever it is shown."""

    def __init__(self, faces: list[Face]) -> None:
        self.faces = faces
        self.seen: list[tuple[int, ...]] = []

    def detect(self, image: np.ndarray) -> list[Face]:
        self.seen.append(image.shape)
        return list(self.faces)


def frames_of(**kwargs: Any) -> tuple[Frames, Face]:
    ir, depth, face = scene(**kwargs)
    return Frames(ir=ir, rgb=cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR), depth=depth), face


def analyser(tmp_path: Path, faces: list[Face], score: float = 0.9, quality: QualityLimits = LENIENT) -> FaceAnalyser:
    config = FaceConfig(quality=quality)
    return FaceAnalyser(config, CALIBRATION, Finder(faces), constant_model(tmp_path, score))  # type: ignore[arg-type]


def test_a_live_face_is_live_with_its_times_and_ir_box(tmp_path: Path) -> None:
    frames, face = frames_of()
    result = analyser(tmp_path, [face]).analyse(frames)
    assert result.decision is Decision.LIVE, result.detail
    assert result.face_rgb == face and result.faces == (face,)
    assert result.face_ir is not None and np.allclose(result.face_ir.box, face.box, atol=1.0)
    assert result.quality is not None and result.quality.ok
    assert result.liveness is not None and result.liveness.live
    assert set(result.seconds) == {"detect", "quality", "liveness"}
    assert "live face" in result.detail and "0.90" in result.detail
    assert result.as_dict()["decision"] == "live"


def test_a_photo_is_an_attack_saying_why(tmp_path: Path) -> None:
    frames, face = frames_of(depth=0.0, albedo=0.8, texture=0.3)
    result = analyser(tmp_path, [face]).analyse(frames)
    assert result.decision is Decision.ATTACK
    assert result.liveness is not None and result.liveness.score == 0.0
    assert result.detail.startswith("Not a live face") and "nearly flat" in result.detail


def test_the_classifier_alone_can_refuse(tmp_path: Path) -> None:
    frames, face = frames_of()
    result = analyser(tmp_path, [face], score=0.1).analyse(frames)
    assert result.decision is Decision.ATTACK and "classifier" in result.detail


def test_no_face(tmp_path: Path) -> None:
    frames, _face = frames_of()
    result = analyser(tmp_path, []).analyse(frames)
    assert result.decision is Decision.NO_FACE and result.faces == () and result.liveness is None
    assert "detect" in result.seconds and result.detail == "No face is in view"


def test_several_faces_are_refused_before_any_judgement(tmp_path: Path) -> None:
    frames, face = frames_of()
    other = Face((20.0, 20.0, 90.0, 110.0), 0.7)
    result = analyser(tmp_path, [face, other]).analyse(frames)
    assert result.decision is Decision.SEVERAL_FACES and result.faces == (face, other)
    assert result.quality is None and result.liveness is None and "2 faces" in result.detail


def test_a_face_too_small_is_poor_quality(tmp_path: Path) -> None:
    frames, face = frames_of()
    strict = QualityLimits(min_face_px=1000.0, min_sharpness=0.0, min_brightness=1.0, max_clipped=1.0)
    result = analyser(tmp_path, [face], quality=strict).analyse(frames)
    assert result.decision is Decision.POOR_QUALITY and result.liveness is None
    assert result.quality is not None and not result.quality.ok
    assert result.detail.startswith("The face cannot be judged")


def test_without_depth_or_ir_it_is_not_live(tmp_path: Path) -> None:
    frames, face = frames_of()
    result = analyser(tmp_path, [face]).analyse(Frames(ir=frames.ir, rgb=frames.rgb))
    assert result.decision is Decision.ATTACK and "no depth" in result.detail
    no_rgb = analyser(tmp_path, [face]).analyse(Frames(ir=frames.ir, depth=frames.depth))
    assert no_rgb.decision is Decision.NO_FACE and "no RGB" in no_rgb.detail


def test_frames_of_another_camera_are_refused(tmp_path: Path) -> None:
    frames, face = frames_of()
    assert frames.ir is not None and frames.rgb is not None and frames.depth is not None
    with pytest.raises(UnusableFrame):
        analyser(tmp_path, [face]).analyse(Frames(ir=frames.ir[:300], rgb=frames.rgb, depth=frames.depth))
    with pytest.raises(UnusableFrame):
        analyser(tmp_path, [face]).analyse(Frames(ir=frames.ir, rgb=frames.rgb[:, :600], depth=frames.depth))


def test_the_models_own_threshold_decides_unless_the_configuration_sets_one(tmp_path: Path) -> None:
    """A site's retrained model carries its threshold in its metadata; the station holds faces to it."""
    frames, face = frames_of()
    strict = constant_model(tmp_path, 0.7, threshold=0.9)
    own = FaceAnalyser(FaceConfig(quality=LENIENT), CALIBRATION, Finder([face]), strict)  # type: ignore[arg-type]
    result = own.analyse(frames)
    assert result.decision is Decision.ATTACK and result.liveness is not None
    assert result.liveness.threshold == 0.9
    configured = FaceConfig(quality=LENIENT, liveness=LivenessConfig(threshold=0.6))
    result = FaceAnalyser(configured, CALIBRATION, Finder([face]), strict).analyse(frames)  # type: ignore[arg-type]
    assert result.decision is Decision.LIVE and result.liveness is not None and result.liveness.threshold == 0.6


DIM = [  # the dimmest LIGHT_HELD_OUT gives: a third of office light from the side, sunlit IR; held-out people
    FaceScene(identity=identity, distance_m=distance, light=Light(0.35, (azimuth, 45.0), 0.35, warmth))
    for identity, distance, azimuth, warmth in [(16, 0.45, -60.0, -1.0), (19, 0.75, 60.0, 1.0), (22, 0.6, 45.0, 0.8)]
]


@pytest.mark.parametrize("scene", DIM, ids=lambda s: f"identity-{s.identity}")
def test_a_dim_live_face_is_acquired_and_judged_live_with_the_default_limits(scene: FaceScene) -> None:
    """Liveness judges IR (its own flood) and depth, not the RGB's brightness: a dim RGB face the detector finds
    must reach it, not stop at quality (the old min_brightness of 50 refused every face under 0.6 office light)."""
    truth = draw_truth(DF2, serial_rng("DF2DIM0001", "camera-truth"))
    frames = render_face(truth, scene, Capture(), np.random.default_rng(scene.identity))
    calibration = CameraCalibration("DF2DIM0001", "df2", truth.ir, truth.rgb, truth.rgb_from_ir, 0.0)
    result = FaceAnalyser(FaceConfig(), calibration).analyse(Frames(frames["ir"], frames["rgb"], frames["depth"]))
    assert result.quality is not None and result.quality.figures["brightness"] < 30
    assert result.decision is Decision.LIVE, result.detail


def test_a_configured_threshold_below_the_models_own_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    config = FaceConfig(liveness=LivenessConfig(threshold=0.05))
    with caplog.at_level("WARNING", logger="camera.faceanalysis"):
        model = FaceAnalyser(config, CALIBRATION).model
    assert model.threshold > 0.05 and "below the model's own" in caplog.text
