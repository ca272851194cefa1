"""A calibration set on disk: what a jig calibration would capture, with the truth to check a result against.

``write_set`` needs no running simulator: it draws a unit's truth from the seed, renders ``views`` poses of the
planned jig sequence and writes ``ir_NN.png`` (flood-lit IR), ``rgb_NN.png``, ``depth_NN.png`` (mm),
``board.json`` and ``truth.json`` (the truth as the ``truth`` control command gives it, plus the model, the
seed and each view's board pose).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from terminal.camera import Board
from terminal.events import ProgressCallback
from terminal.models import TerminalModel, model_by_id

from ..state import replace_atomically
from . import DEFAULT_MODEL, DEFAULT_VIEWS
from .jig import jig_poses
from .render import Capture, render
from .service import encode_png
from .truth import draw_truth

_FRAME = re.compile(r"(ir|rgb|depth)_\d{2,}\.png")


def write_set(
    out: Path,
    views: int = DEFAULT_VIEWS,
    seed: int = 0,
    model: str | TerminalModel = DEFAULT_MODEL,
    progress: ProgressCallback | None = None,
) -> Path:
    """Render ``views`` jig views of a unit drawn from ``seed`` into ``out`` (frames of an older set there go)."""
    terminal_model = model_by_id(model) if isinstance(model, str) else model
    rng = np.random.default_rng(seed)
    truth = draw_truth(terminal_model, rng)
    board = Board()
    poses = jig_poses(truth, terminal_model, board, rng, views)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if _FRAME.fullmatch(old.name):
            old.unlink()
    capture = Capture(depth_range_mm=terminal_model.camera.depth_range_mm)
    for index, scene in enumerate(poses):
        frames = render(truth, scene, capture, rng, terminal_model.camera.speckle_dots)
        for stream, image in frames.items():
            replace_atomically(out / f"{stream}_{index:02d}.png", encode_png(image))
        if progress is not None:
            progress(index + 1, views)
    replace_atomically(out / "board.json", json.dumps(board.to_dict(), indent=1).encode())
    record = {
        **truth.to_dict(),
        "model": terminal_model.id,
        "seed": seed,
        "poses": [{"rvec": list(p.rvec), "tvec_m": list(p.tvec_m)} for p in poses],
    }
    replace_atomically(out / "truth.json", json.dumps(record, indent=1).encode())
    return out
