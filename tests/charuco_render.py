"""Test images of a ChArUco board seen by a pinhole camera with distortion, made with OpenCV alone.

An independent "other camera" for the calibration tests: OpenCV's own board image, mapped per pixel through
the exact inverse of the camera's distortion onto the board plane, supersampled for anti-aliasing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from camera.board import charuco_board
from terminal.camera import Board, Extrinsics, Intrinsics

PIXELS_PER_SQUARE = 120
MARGIN_SQUARES = 1


@dataclass(frozen=True)
class Pose:
    rvec: tuple[float, float, float]
    tvec_m: tuple[float, float, float]


@functools.lru_cache(maxsize=8)
def _board_image(board: Board) -> npt.NDArray[np.uint8]:
    margin = PIXELS_PER_SQUARE * MARGIN_SQUARES
    size = (board.squares_x * PIXELS_PER_SQUARE + 2 * margin, board.squares_y * PIXELS_PER_SQUARE + 2 * margin)
    image = charuco_board(board).generateImage(size, marginSize=margin, borderBits=1)
    return np.asarray(image, np.uint8)


@functools.lru_cache(maxsize=8)
def _rays(camera: Intrinsics, supersample: int) -> npt.NDArray[np.float64]:
    """(H*S, W*S, 2): the undistorted normalised ray of every sample point (pixel centres at integers)."""
    s = supersample
    u = (np.arange(camera.width * s) + 0.5) / s - 0.5
    v = (np.arange(camera.height * s) + 0.5) / s - 0.5
    uu, vv = np.meshgrid(u, v)
    pts = np.stack([uu.ravel(), vv.ravel()], axis=1).reshape(-1, 1, 2)
    k = np.array(camera.K, np.float64)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 60, 1e-12)
    rays = cv2.undistortPoints(pts, k, np.array(camera.dist), R=None, P=None, criteria=criteria)
    return np.asarray(rays, np.float64).reshape(camera.height * s, camera.width * s, 2)


def render(
    board: Board,
    camera: Intrinsics,
    pose: Pose,
    *,
    blur_sigma: float = 0.0,
    noise: float = 1.0,
    colour: bool = False,
    seed: int = 0,
    supersample: int = 2,
) -> npt.NDArray[np.uint8]:
    """The board at ``pose`` (board to camera) through ``camera``: grey, or BGR with ``colour``."""
    rays = _rays(camera, supersample)
    rotation, _ = cv2.Rodrigues(np.array(pose.rvec, np.float64))
    homography = np.column_stack([rotation[:, 0], rotation[:, 1], np.array(pose.tvec_m)])
    inverse = np.linalg.inv(homography)
    x, y = rays[..., 0], rays[..., 1]
    bx = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    by = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    bw = inverse[2, 0] * x + inverse[2, 1] * y + inverse[2, 2]
    scale = PIXELS_PER_SQUARE / board.square_length_m
    margin = PIXELS_PER_SQUARE * MARGIN_SQUARES
    with np.errstate(divide="ignore", invalid="ignore"):
        map_x = np.where(bw > 0, bx / bw * scale - 0.5 + margin, -10.0).astype(np.float32)
        map_y = np.where(bw > 0, by / bw * scale - 0.5 + margin, -10.0).astype(np.float32)
    big = cv2.remap(_board_image(board), map_x, map_y, cv2.INTER_LINEAR, borderValue=235)
    image: npt.NDArray[np.float64] = cv2.resize(
        big, (camera.width, camera.height), interpolation=cv2.INTER_AREA
    ).astype(np.float64)
    image = 25.0 + image * (200.0 / 255.0)
    if blur_sigma > 0:
        image = np.asarray(cv2.GaussianBlur(image, (0, 0), blur_sigma), np.float64)
    rng = np.random.default_rng(seed)
    image = image + rng.normal(0.0, noise, image.shape)
    grey = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if not colour:
        return grey
    tint = np.array([0.85, 1.0, 0.95])
    return np.asarray(np.clip(grey[..., None] * tint, 0, 255), np.uint8)


def rgb_pose(pose: Pose, rgb_from_ir: Extrinsics) -> Pose:
    """The same board pose seen from the RGB camera."""
    rotation, _ = cv2.Rodrigues(np.array(pose.rvec, np.float64))
    r = np.array(rgb_from_ir.R, np.float64)
    t = np.array(rgb_from_ir.t_m, np.float64)
    rvec, _ = cv2.Rodrigues(r @ rotation)
    tvec = r @ np.array(pose.tvec_m) + t
    return Pose(tuple(float(v) for v in rvec.ravel()), tuple(float(v) for v in tvec))  # type: ignore[arg-type]


def poses(board: Board, camera: Intrinsics, count: int, *, seed: int = 1) -> list[Pose]:
    """``count`` board poses spread over the image, distance and tilt (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    width_m = board.squares_x * board.square_length_m
    height_m = board.squares_y * board.square_length_m
    out: list[Pose] = []
    for i in range(count):
        distance = camera.fx * width_m / (camera.width * rng.uniform(0.45, 0.75))
        ax, ay = rng.uniform(-0.28, 0.28), rng.uniform(-0.25, 0.25)
        if i % 3 == 0:
            ax, ay = ax * 0.3, ay * 0.3
        tilt_x, tilt_y = rng.uniform(-35, 35), rng.uniform(-35, 35)
        spin = rng.uniform(-15, 15)
        rotation, _ = cv2.Rodrigues(np.radians([tilt_x, tilt_y, spin]))
        centre_board = rotation @ np.array([width_m / 2, height_m / 2, 0.0])
        fx_frac = (camera.cx + ax * camera.width - camera.cx) / camera.fx
        fy_frac = (camera.cy + ay * camera.height - camera.cy) / camera.fy
        target = np.array([fx_frac * distance, fy_frac * distance, distance])
        tvec = target - centre_board
        rvec, _ = cv2.Rodrigues(rotation)
        out.append(Pose(tuple(float(v) for v in rvec.ravel()), tuple(float(v) for v in tvec)))  # type: ignore[arg-type]
    return out


IR = Intrinsics(640, 400, 462.3, 461.1, 322.4, 197.6, (-0.09, 0.06, 0.0006, -0.0004, 0.0))
RGB = Intrinsics(800, 450, 627.5, 626.2, 404.1, 221.3, (0.05, -0.02, -0.0003, 0.0005, 0.0))
RGB_FROM_IR = Extrinsics(
    tuple(tuple(float(v) for v in row) for row in cv2.Rodrigues(np.radians([0.3, -0.2, 0.15]))[0]),  # type: ignore[arg-type]
    (-0.0251, 0.0004, -0.0003),
)


def write_set(
    directory: Path,
    board: Board,
    views: Sequence[Pose],
    *,
    ir: Intrinsics = IR,
    rgb: Intrinsics = RGB,
    rgb_from_ir: Extrinsics = RGB_FROM_IR,
    colour_ir: bool = False,
) -> Path:
    """``ir_NN.png`` and ``rgb_NN.png`` of each pose, ``board.json`` and ``truth.json`` (the simulator's form)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "board.json").write_text(json.dumps(board.to_dict()))
    truth = {
        "ir": ir.to_dict(),
        "rgb": rgb.to_dict(),
        "rgb_from_ir": rgb_from_ir.to_dict(),
        "poses": [{"rvec": list(p.rvec), "tvec_m": list(p.tvec_m)} for p in views],
    }
    (directory / "truth.json").write_text(json.dumps(truth))
    for i, pose in enumerate(views):
        cv2.imwrite(str(directory / f"ir_{i:02d}.png"), render(board, ir, pose, seed=2 * i, colour=colour_ir))
        cv2.imwrite(
            str(directory / f"rgb_{i:02d}.png"),
            render(board, rgb, rgb_pose(pose, rgb_from_ir), seed=2 * i + 1, colour=True),
        )
    return directory
