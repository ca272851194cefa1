"""The RGB face box mapped into the IR image through depth and the calibration, and the nominal calibration."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from camera.depth import pixel_rays
from camera.facegeometry import FACE_WIDTH_M, face_distance_mm, face_in_ir, nominal_calibration
from camera.faces import Face
from terminal.camera import CameraCalibration, Extrinsics, Intrinsics
from terminal.models import model_by_id

ROTATION, _ = cv2.Rodrigues(np.radians([0.4, -0.3, 0.2]))
CALIBRATION = CameraCalibration(
    serial="DF2TEST",
    model="df2",
    ir=Intrinsics(640, 400, 458.0, 459.0, 318.0, 203.0, (-0.08, 0.04, 0.0004, -0.0002, 0.0)),
    rgb=Intrinsics(1280, 720, 1003.0, 1001.0, 645.0, 355.0, (-0.05, 0.08, -0.0003, 0.0005, 0.0)),
    rgb_from_ir=Extrinsics(
        tuple(tuple(float(v) for v in row) for row in ROTATION),  # type: ignore[arg-type]
        (-0.0252, 0.0004, -0.0006),
    ),
    created=0.0,
)
# A face 160 mm wide, 200 mm high, its five landmarks, on a plane Z mm in front of the IR camera.
OUTLINE = np.array([[-80, -100], [80, -100], [80, 100], [-80, 100]], np.float64)
LANDMARKS = np.array([[-32, -20], [32, -20], [0, 15], [-28, 55], [28, 55]], np.float64)


def project(points_ir: npt.NDArray[np.float64], camera: Intrinsics, to_camera: bool) -> npt.NDArray[np.float64]:
    rotation, t = np.array(CALIBRATION.rgb_from_ir.R), np.array(CALIBRATION.rgb_from_ir.t_m) * 1000
    points = points_ir @ rotation.T + t if to_camera else points_ir
    pixels, _jac = cv2.projectPoints(points, np.zeros(3), np.zeros(3), np.array(camera.K), np.array(camera.dist))
    return np.asarray(pixels, np.float64).reshape(-1, 2)


def face_at(z_mm: float, centre_mm: tuple[float, float] = (30.0, -10.0)) -> tuple[Face, Face]:
    """(the face as the RGB camera sees it, as the IR camera sees it) on a plane at ``z_mm``."""

    def points(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.column_stack([xy + centre_mm, np.full(len(xy), z_mm)])

    def face(camera: Intrinsics, to_rgb: bool) -> Face:
        outline = project(points(OUTLINE), camera, to_rgb)
        marks = project(points(LANDMARKS), camera, to_rgb)
        box = (*outline.min(axis=0), *outline.max(axis=0))
        return Face(tuple(float(v) for v in box), 0.9, tuple((float(x), float(y)) for x, y in marks))  # type: ignore[arg-type]

    return face(CALIBRATION.rgb, True), face(CALIBRATION.ir, False)


def plane_depth(z_mm: float) -> npt.NDArray[np.uint16]:
    """A frontal plane at ``z_mm`` over the whole IR image (Z is the same along every ray)."""
    return np.full((CALIBRATION.ir.height, CALIBRATION.ir.width), round(z_mm), np.uint16)


@pytest.mark.parametrize("z_mm", [350.0, 500.0, 800.0])
def test_the_face_lands_where_the_ir_camera_sees_it(z_mm: float) -> None:
    rgb, expected = face_at(z_mm)
    found = face_in_ir(rgb, plane_depth(z_mm), CALIBRATION)
    assert found is not None and found.landmarks is not None and expected.landmarks is not None
    # The box is the mapped outline's bounds: within a pixel of the IR camera's own view of the face.
    assert np.allclose(found.box, expected.box, atol=1.5)
    assert np.allclose(found.landmarks, expected.landmarks, atol=0.5)
    assert found.score == rgb.score


def test_parallax_is_taken_from_the_depth_not_assumed() -> None:
    """The same RGB box means different IR boxes at different distances: the depth decides which."""
    rgb, _ = face_at(500.0)
    near, far = face_in_ir(rgb, plane_depth(350.0), CALIBRATION), face_in_ir(rgb, plane_depth(800.0), CALIBRATION)
    assert near is not None and far is not None
    assert abs(near.centre[0] - far.centre[0]) > 10  # df2's 25 mm baseline: ~33 px at 0.35 m, ~14 px at 0.8 m


def test_depth_off_the_face_is_not_used() -> None:
    """Only depth points that land in the RGB box's middle count: a wall beside the face does not move it."""
    rgb, expected = face_at(500.0)
    depth = plane_depth(1100.0)
    x0, y0, x1, y1 = (round(v) for v in expected.box)
    depth[y0:y1, x0:x1] = 500
    assert face_distance_mm(rgb, depth, CALIBRATION) == pytest.approx(500.0, abs=2.0)


def test_without_depth_the_face_is_placed_by_its_size() -> None:
    z_mm = 600.0
    rgb, expected = face_at(z_mm)
    empty = np.zeros((400, 640), np.uint16)
    assert face_distance_mm(rgb, empty, CALIBRATION) is None
    found = face_in_ir(rgb, empty, CALIBRATION)
    assert found is not None
    # The box is 160 mm wide (FACE_WIDTH_M): the distance from its size is nearly right.
    assert pytest.approx(0.16) == FACE_WIDTH_M
    assert np.allclose(found.centre, expected.centre, atol=3.0)


def test_a_face_outside_the_ir_view_is_none() -> None:
    face = Face((-900.0, -900.0, -700.0, -650.0), 0.9, None)
    assert face_in_ir(face, plane_depth(500.0), CALIBRATION) is None


def test_depth_of_another_size_than_the_calibration_is_not_used() -> None:
    rgb, _ = face_at(500.0)
    assert face_distance_mm(rgb, np.full((480, 640), 500, np.uint16), CALIBRATION) is None


def test_nominal_calibration_is_the_model_table_module() -> None:
    module = model_by_id("df2").camera
    calibration = nominal_calibration("DF2000001", "df2", module)
    assert (calibration.ir.width, calibration.ir.height) == module.ir_resolution
    assert (calibration.rgb.width, calibration.rgb.height) == module.rgb_resolution
    assert calibration.ir.fx == calibration.ir.fy == module.focal_length_px
    assert calibration.rgb.fx == module.rgb_focal_length_px
    assert np.allclose(np.array(calibration.rgb_from_ir.t_m) * 1000, module.rgb_from_ir_t_mm)
    assert CameraCalibration.decode(calibration.encode()) == calibration  # a valid blob, as a stored one is
    assert pixel_rays(calibration.ir).shape == (400, 640, 2)
