"""Where the jig holds the board: the planned pose sequence, aimed poses, the default scene, scene dicts.

The planned sequence (``JIG_POSES`` poses, deterministic per unit) spreads the board over distance, tilt
(up to 40 degrees about varied axes) and image position, ordered so that any prefix of it is already spread
(a calibration that stops at 15 or 20 views still sees tilts both ways and every part of the image).
Distances follow the module: near enough that the markers' bits are several pixels wide, far enough that a
tilted board mostly stays in view.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from i18n import N_
from terminal.camera import Board, BoardFileError
from terminal.errors import NaiadError
from terminal.models import TerminalModel

from ..face.heads import IDENTITIES
from ..face.scene import FaceScene, Light
from .render import BoardScene, EmptyScene, Scene, WallScene
from .truth import CameraTruth, serial_rng

JIG_POSES = 40
MIN_BIT_PX = 3.6  # a marker bit spans at least this many IR pixels at the farthest pose
BOARD_WIDTH_SHARE = (0.75, 0.45)  # the board's width as a share of the IR image at the nearest / farthest pose
_TILTS_DEG = (35.0, 25.0, 40.0, 15.0, 30.0)
_POSITIONS: tuple[tuple[float, float], ...] = (
    (0.5, 0.5), (0.2, 0.2), (0.8, 0.8), (0.8, 0.2), (0.2, 0.8), (0.5, 0.2), (0.5, 0.8), (0.2, 0.5),
    (0.8, 0.5), (0.35, 0.35), (0.65, 0.65), (0.65, 0.35), (0.35, 0.65),
)  # fmt: skip


class SceneError(NaiadError):
    """A scene the simulator cannot stage; ``detail`` is a msgid the control channel carries to the caller."""

    message = N_("The simulator cannot stage that scene: {detail}")
    remedy = N_("Scenes are described in docs/simulator-camera.md.")
    msgid_params = ("detail",)


class FaceIdentityError(SceneError):
    """An identity the simulator does not have."""

    message = N_("The simulator cannot stage that scene: identity must be a whole number from 0 to {last}")


class JigPoseError(SceneError):
    """A jig pose out of the planned sequence (its own message: the control channel carries a class's msgid)."""

    message = N_("The simulator cannot stage that scene: jig_pose must be a whole number from 0 to {last}")


def distance_range(model: TerminalModel, board: Board) -> tuple[float, float]:
    """Nearest and farthest board distance (m) for the module: markers readable, a tilted board in view."""
    cam = model.camera
    width_px = cam.ir_resolution[0]
    board_w = board.squares_x * board.square_length_m
    near = cam.focal_length_px * board_w / (BOARD_WIDTH_SHARE[0] * width_px)
    far = min(cam.focal_length_px * board_w / (BOARD_WIDTH_SHARE[1] * width_px), _readable_m(model, board))
    return near, max(far, near * 1.1)


def _readable_m(model: TerminalModel, board: Board) -> float:
    """The farthest distance at which a marker bit (of the marker and its black border) spans MIN_BIT_PX pixels."""
    bits = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary)).markerSize + 2
    return model.camera.focal_length_px * board.marker_length_m / bits / MIN_BIT_PX


def aimed_pose(
    truth: CameraTruth, board: Board, x_frac: float, y_frac: float, distance_m: float, tilt: tuple[float, float, float]
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(rvec, tvec_m) of the board, rotated by ``tilt`` (rvec, radians), covering IR image point (x, y) fractions.

    The board's centre goes to that point, pulled inwards just enough that most of the board stays in view."""
    ir = truth.ir
    half_w = ir.fx * board.squares_x * board.square_length_m / distance_m / 2
    half_h = ir.fy * board.squares_y * board.square_length_m / distance_m / 2
    u = float(np.clip(x_frac * ir.width, 0.75 * half_w, ir.width - 0.75 * half_w)) if 1.5 * half_w < ir.width else ir.cx
    v = (
        float(np.clip(y_frac * ir.height, 0.75 * half_h, ir.height - 0.75 * half_h))
        if 1.5 * half_h < ir.height
        else ir.cy
    )
    ray = cv2.undistortPoints(np.array([[[u, v]]]), np.array(ir.K), np.array(ir.dist)).reshape(2)
    rotation, _ = cv2.Rodrigues(np.asarray(tilt, dtype=np.float64))
    centre = np.array([board.squares_x * board.square_length_m / 2, board.squares_y * board.square_length_m / 2, 0])
    tvec = np.array([ray[0], ray[1], 1.0]) * distance_m - rotation @ centre
    rvec, _ = cv2.Rodrigues(rotation)
    r = rvec.reshape(3)
    return (float(r[0]), float(r[1]), float(r[2])), (float(tvec[0]), float(tvec[1]), float(tvec[2]))


def jig_poses(
    truth: CameraTruth, model: TerminalModel, board: Board, rng: np.random.Generator, count: int = JIG_POSES
) -> list[BoardScene]:
    """The planned sequence: ``count`` board poses spread over distance, tilt and image position."""
    near, far = distance_range(model, board)
    scenes = []
    for i in range(count):
        tilt_deg = _TILTS_DEG[i % len(_TILTS_DEG)] if i % 7 != 3 else 5.0
        axis_deg = 45.0 * (i % 8) + 137.5 * (i // 8) + rng.uniform(-10, 10)
        axis = math.radians(axis_deg)
        roll = math.radians(rng.uniform(-12, 12))
        tilt = (math.radians(tilt_deg) * math.cos(axis), math.radians(tilt_deg) * math.sin(axis), roll)
        distance = near + (far - near) * ((i * 0.618034) % 1.0)
        x, y = _POSITIONS[i % len(_POSITIONS)]
        x, y = x + rng.uniform(-0.04, 0.04), y + rng.uniform(-0.04, 0.04)
        rvec, tvec = aimed_pose(truth, board, x, y, distance, tilt)
        scenes.append(BoardScene(board, rvec, tvec))
    return scenes


def default_scene(truth: CameraTruth, model: TerminalModel, board: Board) -> BoardScene:
    """The board held up for a field check: about 0.45 m (nearer where its markers would be too small), facing
    the camera, slightly tilted."""
    distance = max(min(0.45, _readable_m(model, board)), distance_range(model, board)[0])
    rvec, tvec = aimed_pose(truth, board, 0.5, 0.5, distance, (math.radians(8), math.radians(-6), 0.0))
    return BoardScene(board, rvec, tvec)


FACE_KINDS = {"face": "live", "photo": "photo", "screen": "screen", "mask": "mask"}  # kind -> presentation
_FACE_FIELDS = {
    "kind",
    "identity",
    "distance_m",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "offset_m",
    "light",
    "faces",
    "face_id",
}
_FIELDS = {  # what each kind of scene takes: anything else is refused, not silently ignored
    "none": {"kind"},
    "default": {"kind", "board"},
    "wall": {"kind", "distance_m", "tilt_deg"},
    "board": {"kind", "board", "jig_pose", "aim", "rvec", "tvec_m"},
    "face": _FACE_FIELDS,
    "photo": _FACE_FIELDS | {"bend"},
    "screen": _FACE_FIELDS,
    "mask": _FACE_FIELDS,
}
_LIGHT_FIELDS = {"rgb_level", "direction_deg", "ambient_ir", "warmth"}
SECOND_FACE_OFFSET_M = (0.17, 0.06)  # "faces": 2 puts another person this far beside (x) and behind (z)
_POSES = ({"jig_pose"}, {"aim"}, {"rvec", "tvec_m"})  # a board scene's pose: exactly one of these forms


def scene_from_dict(data: Any, truth: CameraTruth, model: TerminalModel, serial: str) -> Scene:
    """The scene a ``scene`` control command describes (contract in docs/simulator-camera.md)."""
    if not isinstance(data, dict):
        raise SceneError(detail=N_("a scene is a JSON object"))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise SceneError(detail=N_("its kind must be board, wall, face, photo, screen, mask, none or default"))
    if set(data) - _FIELDS[kind]:
        raise SceneError(detail=N_("it has a field its kind does not take"))
    if kind in FACE_KINDS:
        return face_scene_from_dict(data)
    if kind == "board" and sum(1 for form in _POSES if form & set(data)) != 1:
        raise SceneError(detail=N_("a board scene needs rvec and tvec_m (three numbers each), jig_pose or aim"))
    try:
        board = Board.from_dict(data["board"]) if "board" in data else Board()
    except BoardFileError as exc:
        raise SceneError(detail=N_("its board is not a valid board")) from exc
    markers = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary)).bytesList.shape[0]
    if board.squares_x * board.squares_y // 2 > markers:
        raise SceneError(detail=N_("its board needs more markers than its dictionary has"))
    if kind == "none":
        return EmptyScene()
    if kind == "default":
        return default_scene(truth, model, board)
    if kind == "wall":
        distance = _number(data.get("distance_m"), 0.05, 20.0, N_("distance_m must be a distance from 0.05 to 20 m"))
        tilt = data.get("tilt_deg", [0.0, 0.0])
        if not isinstance(tilt, list) or len(tilt) != 2:
            raise SceneError(detail=N_("tilt_deg must be two angles in degrees"))
        ax, ay = (_number(a, -60.0, 60.0, N_("tilt_deg must be two angles from -60 to 60 degrees")) for a in tilt)
        return WallScene(distance, (ax, ay))
    if "jig_pose" in data:
        index = data["jig_pose"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < JIG_POSES:
            raise JigPoseError(last=JIG_POSES - 1)
        return jig_poses(truth, model, board, serial_rng(serial, "jig"))[index]
    if "aim" in data:
        aim = data["aim"]
        if not isinstance(aim, list) or len(aim) != 2:
            raise SceneError(detail=N_("aim must be two image fractions from 0 to 1"))
        x, y = (_number(a, 0.0, 1.0, N_("aim must be two image fractions from 0 to 1")) for a in aim)
        near, far = distance_range(model, board)
        return BoardScene(board, *aimed_pose(truth, board, x, y, (near + far) / 2, (math.radians(20), 0.0, 0.0)))
    rvec, tvec = data.get("rvec"), data.get("tvec_m")
    if not (isinstance(rvec, list) and len(rvec) == 3 and isinstance(tvec, list) and len(tvec) == 3):
        raise SceneError(detail=N_("a board scene needs rvec and tvec_m (three numbers each), jig_pose or aim"))
    r = tuple(_number(v, -10.0, 10.0, N_("rvec must be three numbers from -10 to 10")) for v in rvec)
    t = tuple(_number(v, -20.0, 20.0, N_("tvec_m must be three numbers from -20 to 20 m")) for v in tvec)
    if t[2] <= 0:
        raise SceneError(detail=N_("the board must be in front of the camera (tvec_m z above 0)"))
    return BoardScene(board, (r[0], r[1], r[2]), (t[0], t[1], t[2]))


def face_scene_from_dict(data: dict[str, Any]) -> FaceScene:
    """A face scene (``kind`` face, photo, screen or mask): every field optional, a frontal face by default."""
    index = data.get("identity", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < IDENTITIES:
        raise FaceIdentityError(last=IDENTITIES - 1)
    angles = N_("yaw_deg, pitch_deg and roll_deg must be angles from -60 to 60 degrees")
    offset = _numbers(
        data.get("offset_m", [0.0, 0.0]), 2, -1.0, 1.0, N_("offset_m must be two distances from -1 to 1 m")
    )
    faces = data.get("faces", 1)
    if isinstance(faces, bool) or faces not in (1, 2):
        raise SceneError(detail=N_("faces must be 1 or 2"))
    face_id = data.get("face_id", FaceScene.face_id)
    if not isinstance(face_id, str) or not 0 < len(face_id) <= 64:
        raise SceneError(detail=N_("face_id must be a name of 1 to 64 characters"))
    scene = FaceScene(
        presentation=FACE_KINDS[data["kind"]],
        identity=index,
        distance_m=_number(
            data.get("distance_m", 0.5), 0.2, 1.5, N_("distance_m must be a distance from 0.2 to 1.5 m")
        ),
        yaw_deg=_number(data.get("yaw_deg", 0.0), -60.0, 60.0, angles),
        pitch_deg=_number(data.get("pitch_deg", 0.0), -60.0, 60.0, angles),
        roll_deg=_number(data.get("roll_deg", 0.0), -60.0, 60.0, angles),
        offset_m=(offset[0], offset[1]),
        light=_light_from_dict(data.get("light", {})),
        bend=_number(data.get("bend", 0.0), -10.0, 10.0, N_("bend must be a curvature from -10 to 10 per metre")),
        face_id=face_id,
    )
    if faces == 1:
        return scene
    side = SECOND_FACE_OFFSET_M[0] if scene.offset_m[0] <= 0 else -SECOND_FACE_OFFSET_M[0]
    other = FaceScene(
        identity=(index + 1) % IDENTITIES,  # the other photograph
        distance_m=min(scene.distance_m + SECOND_FACE_OFFSET_M[1], 1.5),
        offset_m=(scene.offset_m[0] + side, scene.offset_m[1]),
        light=scene.light,
    )
    return dataclasses.replace(scene, others=(other,))


def _light_from_dict(data: Any) -> Light:
    if not isinstance(data, dict) or set(data) - _LIGHT_FIELDS:
        raise SceneError(detail=N_("light must be an object of rgb_level, direction_deg, ambient_ir and warmth"))
    levels = N_("light's rgb_level must be from 0 to 2, ambient_ir from 0 to 0.5 and warmth from -1 to 1")
    default = Light()
    direction = _numbers(
        data.get("direction_deg", list(default.direction_deg)),
        2,
        -90.0,
        90.0,
        N_("light's direction_deg must be two angles from -90 to 90 degrees"),
    )
    return Light(
        rgb_level=_number(data.get("rgb_level", default.rgb_level), 0.0, 2.0, levels),
        direction_deg=(direction[0], direction[1]),
        ambient_ir=_number(data.get("ambient_ir", default.ambient_ir), 0.0, 0.5, levels),
        warmth=_number(data.get("warmth", default.warmth), -1.0, 1.0, levels),
    )


def face_scene_to_dict(scene: FaceScene) -> dict[str, Any]:
    """A face scene as the ``scene`` command answers it (and takes it back)."""
    kind = next(k for k, p in FACE_KINDS.items() if p == scene.presentation)
    light = scene.light
    out: dict[str, Any] = {
        "kind": kind,
        "identity": scene.identity,
        "distance_m": scene.distance_m,
        "yaw_deg": scene.yaw_deg,
        "pitch_deg": scene.pitch_deg,
        "roll_deg": scene.roll_deg,
        "offset_m": list(scene.offset_m),
        "light": {
            "rgb_level": light.rgb_level,
            "direction_deg": list(light.direction_deg),
            "ambient_ir": light.ambient_ir,
            "warmth": light.warmth,
        },
        "faces": 1 + len(scene.others),
        "face_id": scene.face_id,
    }
    if kind == "photo":
        out["bend"] = scene.bend
    return out


def scene_to_dict(scene: Scene) -> dict[str, Any]:
    """The resolved scene, as the ``scene`` command answers it."""
    if isinstance(scene, FaceScene):
        return face_scene_to_dict(scene)
    if isinstance(scene, BoardScene):
        return {"kind": "board", "rvec": list(scene.rvec), "tvec_m": list(scene.tvec_m), "board": scene.board.to_dict()}
    if isinstance(scene, WallScene):
        return {"kind": "wall", "distance_m": scene.distance_m, "tilt_deg": list(scene.tilt_deg)}
    return {"kind": "none"}


def _numbers(value: Any, count: int, low: float, high: float, detail: str) -> list[float]:
    if not isinstance(value, list) or len(value) != count:
        raise SceneError(detail=detail)
    return [_number(v, low, high, detail) for v in value]


def _number(value: Any, low: float, high: float, detail: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SceneError(detail=detail)
    return float(value)
