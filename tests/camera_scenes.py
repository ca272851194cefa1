"""What a camera module captures of a board for a field check, made with OpenCV alone (charuco_render's board
images, plus depth and speckle IR): a good unit, a drifted one, a dead projector, a defocused RGB camera."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt
from charuco_render import IR, RGB, RGB_FROM_IR, Pose, render, rgb_pose

from camera.depth import pixel_rays
from terminal.camera import Board, CameraCalibration, Extrinsics, Intrinsics

BOARD = Board()
BASELINE_MM = 40.0
SIGMA_D = 0.08
FIELD_POSE = Pose((0.15, -0.2, 0.05), (-0.13, -0.09, 0.45))  # the board held up, about 0.45 m away


@dataclass(frozen=True)
class Unit:
    """What a camera module physically is; the calibration it stores is that of the unit it was made from."""

    ir: Intrinsics = IR
    rgb: Intrinsics = RGB
    rgb_from_ir: Extrinsics = RGB_FROM_IR

    def calibration(self) -> CameraCalibration:
        return CameraCalibration("DF2TEST0001", "df2", self.ir, self.rgb, self.rgb_from_ir, 0.0)

    def drifted(self) -> Unit:
        """After a drop: IR principal point +4 px, the RGB camera turned 0.6 degrees and moved 1.5 mm."""
        turn = cv2.Rodrigues(np.array([0.0, np.radians(0.6), 0.0]))[0] @ np.array(self.rgb_from_ir.R)
        rotation = tuple(tuple(float(v) for v in row) for row in turn)
        t = self.rgb_from_ir.t_m
        moved = Extrinsics(rotation, (t[0] + 0.0015, t[1], t[2]))  # type: ignore[arg-type]
        return Unit(replace(self.ir, cx=self.ir.cx + 4.0), self.rgb, moved)


@dataclass(frozen=True)
class Capture:
    ir: npt.NDArray[np.uint8]
    rgb: npt.NDArray[np.uint8]
    depth: npt.NDArray[np.uint16]
    speckle: npt.NDArray[np.uint8]


def board_depth(camera: Intrinsics, pose: Pose, board: Board = BOARD, seed: int = 0) -> npt.NDArray[np.uint16]:
    """Depth (mm) of the board plane and, around the board, of a wall 0.9 m away; structured-light noise."""
    rotation = cv2.Rodrigues(np.array(pose.rvec, np.float64))[0]
    translation = np.array(pose.tvec_m, np.float64)
    rays = np.dstack([pixel_rays(camera), np.ones((camera.height, camera.width))])
    normal = rotation[:, 2]
    z = float(normal @ translation) / (rays @ normal)
    on_board = (rays * z[..., None] - translation) @ rotation  # board frame
    inside = (
        (on_board[..., 0] >= 0)
        & (on_board[..., 1] >= 0)
        & (on_board[..., 0] <= board.squares_x * board.square_length_m)
        & (on_board[..., 1] <= board.squares_y * board.square_length_m)
    )
    z_mm = np.where(inside, z * 1000.0, 900.0)
    noise = np.random.default_rng(seed).normal(size=z_mm.shape) * z_mm**2 * SIGMA_D / (camera.fx * BASELINE_MM)
    depth: npt.NDArray[np.uint16] = np.round(z_mm + noise).astype(np.uint16)
    return depth


def capture(unit: Unit, pose: Pose = FIELD_POSE, *, dead_projector: bool = False, rgb_blur: float = 0.0) -> Capture:
    """What ``unit`` captures of the board at the IR ``pose``: flood IR, RGB, depth and speckle IR."""
    ir = render(BOARD, unit.ir, pose, seed=3)
    rgb = render(BOARD, unit.rgb, rgb_pose(pose, unit.rgb_from_ir), colour=True, blur_sigma=rgb_blur, seed=4)
    depth = board_depth(unit.ir, pose)
    speckle = (ir * 0.6).astype(np.uint8)  # the projector lights the scene; its dots stand out
    if dead_projector:
        depth[:] = 0
    else:
        dots = np.random.default_rng(5).random(ir.shape) < 0.08
        speckle[dots] += 90
    return Capture(ir, rgb, depth, speckle)
