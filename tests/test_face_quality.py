"""Face quality: the pose from five landmarks, and each limit failing on its own on a real face."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from test_face_detect import astronaut

from camera.faceconfig import QualityLimits
from camera.facequality import EYES_TO_MOUTH, NOSE_DEPTH, NOSE_HEIGHT, assess_quality, pose_from_landmarks
from camera.faces import Face

# The ArcFace five-point template (112x112 aligned faces): a frontal face.
TEMPLATE = [(38.29, 51.70), (73.53, 51.50), (56.03, 71.74), (41.55, 92.37), (70.73, 92.20)]
# The astronaut's face as CenterFace finds it (test_face_detect checks that it does).
BOX = (181.6, 59.5, 270.0, 170.3)
MARKS = ((207.3, 101.7), (247.0, 105.4), (227.1, 123.0), (207.7, 141.1), (240.2, 144.3))


def head(yaw: float, pitch: float, roll: float) -> list[tuple[float, float]]:
    """The five landmarks of the model head (inter-ocular distance 100 px) turned by the angles, in degrees."""
    iod = 100.0
    points = np.array(
        [
            (-0.5, 0, 0),
            (0.5, 0, 0),
            (0, NOSE_HEIGHT * EYES_TO_MOUTH, NOSE_DEPTH),
            (-0.4, EYES_TO_MOUTH, 0),
            (0.4, EYES_TO_MOUTH, 0),
        ]
    )
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    turn = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    nod = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    lean = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    moved = points @ (lean @ nod @ turn).T
    return [(300 + iod * x, 200 + iod * y) for x, y, _z in moved]


def test_a_frontal_face_has_no_pose() -> None:
    assert pose_from_landmarks(TEMPLATE) == pytest.approx((0, 0, 0), abs=1.0)


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"), [(20, 0, 0), (-25, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 30), (15, 10, -12)]
)
def test_the_pose_of_a_turned_model_head_is_found(yaw: float, pitch: float, roll: float) -> None:
    # Positive: the nose towards the image's left, the nose down, clockwise in the image (as FaceScene's).
    assert pose_from_landmarks(head(yaw, pitch, roll)) == pytest.approx((yaw, pitch, roll), abs=3.0)


FACE = Face(BOX, 0.8, MARKS)


def test_a_good_face_passes_with_every_figure() -> None:
    quality = assess_quality(astronaut(), FACE, QualityLimits())
    assert quality.ok, quality.failures
    assert set(quality.figures) == {
        "size_px",
        "size_share",
        "offset",
        "yaw_deg",
        "pitch_deg",
        "roll_deg",
        "brightness",
        "clipped",
        "sharpness",
    }
    assert quality.figures["size_px"] == pytest.approx(88.4)
    assert abs(quality.figures["yaw_deg"]) < 10 and abs(quality.figures["roll_deg"]) < 10


def failures(image: np.ndarray, face: Face = FACE, **limits: float) -> str:
    return " | ".join(assess_quality(image, face, QualityLimits(**limits)).failures)


def test_each_limit_fails_on_its_own() -> None:
    image = astronaut()
    dim = (image * 0.2).astype(np.uint8)  # grey 31: judged (liveness needs IR and depth, not RGB light)
    assert failures(dim) == ""
    assert failures((image * 0.05).astype(np.uint8)) == "the face is too dark: add light or face the light"
    bright = np.clip(image.astype(np.int32) * 3, 0, 255).astype(np.uint8)
    assert "too bright" in failures(bright) and "clipped" in failures(bright)
    assert failures(cv2.GaussianBlur(image, (0, 0), 3)) == "the face is blurred: hold still"
    assert failures(image, min_face_px=100) == "the face is too small (88 px wide): come nearer"
    assert failures(image, max_face_share=0.1) == "the face is too near the camera: step back a little"
    assert failures(image, max_offset=0.3) == "the face is not in the middle of the image"
    turned = Face(BOX, 0.8, tuple(head(35, 0, 0)))
    assert failures(image, turned).startswith("the head is turned sideways (35 degrees)")
    assert failures(image, Face(BOX, 0.8, tuple(head(0, -30, 0)))).startswith("the head is tilted up or down (-30")
    assert failures(image, Face(BOX, 0.8, tuple(head(0, 0, 40)))).startswith("the head is leaning to one side (40")


def test_a_face_cut_by_the_edge_is_not_in_the_middle() -> None:
    image = astronaut()[40:, 170:]  # the box now starts at the image's left edge
    face = Face((0.0, 19.5, 100.0, 130.3), 0.8, tuple((x - 170, y - 40) for x, y in MARKS))
    assert "not in the middle" in failures(image, face)


def test_a_face_without_landmarks_has_no_pose_figures() -> None:
    quality = assess_quality(astronaut(), Face(BOX, 0.8), QualityLimits())
    assert quality.ok and "yaw_deg" not in quality.figures


def test_a_box_outside_the_image_holds_no_image() -> None:
    quality = assess_quality(astronaut(), Face((600.0, 600.0, 700.0, 700.0), 0.8), QualityLimits())
    assert "the face box holds no image" in quality.failures


def test_grey_images_are_judged_alike() -> None:
    image = astronaut()
    colour = assess_quality(image, FACE, QualityLimits())
    grey = assess_quality(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), FACE, QualityLimits())
    assert grey.figures == colour.figures
