"""Calibration against the simulator's ground truth: a rendered df2 set (issue 8's accuracy figures)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera.offline import calibrate_folder
from simulator.camera.calibration_set import write_set
from terminal.camera import Board, Extrinsics, Intrinsics


def test_a_rendered_unit_calibrates_within_the_issue_limits(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "set", 20, 4, "df2")
    truth = json.loads((folder / "truth.json").read_text())
    calibration = calibrate_folder(folder, Board.read(folder / "board.json"))
    for result, name in ((calibration.ir, "ir"), (calibration.rgb, "rgb")):
        got, want = result.intrinsics, Intrinsics.from_dict(truth[name])
        assert got.fx == pytest.approx(want.fx, rel=0.003) and got.fy == pytest.approx(want.fy, rel=0.003)
        assert abs(got.cx - want.cx) <= 1.5 and abs(got.cy - want.cy) <= 1.5
        assert result.rms_px <= 0.3
    motion, want_motion = calibration.stereo.rgb_from_ir, Extrinsics.from_dict(truth["rgb_from_ir"])
    assert np.linalg.norm(np.subtract(motion.t_m, want_motion.t_m)) <= 0.0005
    turn = cv2.Rodrigues(np.array(motion.R) @ np.array(want_motion.R).T)[0]
    assert np.degrees(np.linalg.norm(turn)) <= 0.1
    assert calibration.stereo.rms_px <= 0.3 and calibration.views_used >= 12
