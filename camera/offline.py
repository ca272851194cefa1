"""Calibrating from a folder of captured image pairs (``naiad calibrate --from-images``).

The folder holds ``ir_NN.png`` and ``rgb_NN.png`` (same NN: the same instant; grey or colour, 8 or 16 bits,
any resolution; other files are ignored).  Pairs without the board are skipped and named; everything that makes
a good calibration impossible is a typed :class:`camera.errors.CameraError` that says why, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from i18n import _
from terminal.camera import Board
from terminal.events import Listener, Reporter
from terminal.models import CameraLimits

from .board import explain_missing_board
from .calibrate import Calibration, calibrate_views
from .detect import Detection, detect, grey
from .errors import (
    BoardNotFound,
    CalibrationFailed,
    CorruptImage,
    CoverageTooLow,
    NoImagePairs,
    TooFewViews,
    UnmatchedImages,
)
from .views import PairSelector

__all__ = [
    "BoardNotFound",
    "CalibrationFailed",
    "CorruptImage",
    "CoverageTooLow",
    "NoImagePairs",
    "TooFewViews",
    "UnmatchedImages",
    "calibrate_folder",
    "find_pairs",
    "read_image",
]

_NAME = re.compile(r"^(ir|rgb)_(\d+)\.png$", re.IGNORECASE)
_PNG = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 16384  # the largest image side a calibration blob accepts (terminal.camera.Intrinsics)
_DIAGNOSED = 3  # images searched for foreign markers when no view shows the board


def find_pairs(directory: Path) -> list[tuple[str, Path, Path]]:
    """(NN, IR file, RGB file) of every pair in ``directory``, in NN order; errors for none or unmatched ones."""
    found: dict[str, dict[str, Path]] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise NoImagePairs(directory=str(directory)) from exc
    for path in entries:
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.setdefault(match.group(2), {})[match.group(1).lower()] = path
    unmatched = sorted(p.name for files in found.values() if len(files) == 1 for p in files.values())
    if unmatched:
        raise UnmatchedImages(names=", ".join(unmatched))
    if not found:
        raise NoImagePairs(directory=str(directory))
    return [(nn, files["ir"], files["rgb"]) for nn, files in sorted(found.items(), key=lambda kv: (int(kv[0]), kv[0]))]


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """The image at ``path`` as 8-bit grey; :class:`CorruptImage` for anything that is not a readable image."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise CorruptImage(path=str(path), detail=exc.strerror or str(exc)) from exc
    header = data[:24].tobytes()
    if header[:8] == _PNG and header[12:16] == b"IHDR":
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        if max(width, height) > MAX_SIDE:  # refused before decoding: a calibration blob cannot hold it anyway
            raise CorruptImage(path=str(path), detail=_("it is {width}x{height} pixels", width=width, height=height))
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0 or image.ndim not in (2, 3):
        raise CorruptImage(path=str(path), detail=_("it is not a whole PNG image"))
    return grey(image)


def calibrate_folder(
    directory: Path, board: Board, listener: Listener | None = None, *, limits: CameraLimits | None = None
) -> Calibration:
    """The calibration the image pairs in ``directory`` give, checked against ``limits`` (defaults if None)."""
    limits = limits or CameraLimits()
    report = Reporter(listener, directory.name, "calibrate")
    pairs = find_pairs(directory)
    report.phase("detect", _("Finding the board"))
    detections: list[tuple[str, Detection, Detection]] = []
    sizes: dict[str, tuple[int, int]] = {}
    unseen: list[npt.NDArray[np.uint8]] = []  # a few images without the board, for the diagnosis
    for done, (nn, ir_path, rgb_path) in enumerate(pairs):
        views = []
        for stream, path in (("ir", ir_path), ("rgb", rgb_path)):
            image = read_image(path)
            size = (image.shape[1], image.shape[0])
            expected = sizes.setdefault(stream, size)
            if size != expected:
                raise CorruptImage(
                    path=str(path),
                    detail=_(
                        "it is {width}x{height}, the other {stream} images are {w}x{h}",
                        width=size[0],
                        height=size[1],
                        stream=stream.upper(),
                        w=expected[0],
                        h=expected[1],
                    ),
                )
            views.append(detect(image, board))
            if not views[-1].count and len(unseen) < _DIAGNOSED:
                unseen.append(image)
        detections.append((nn, views[0], views[1]))
        report.progress(done + 1, len(pairs), counts="items")
    if not any(ir.count and rgb.count for _nn, ir, rgb in detections):
        detail = next(filter(None, (explain_missing_board(im, board) for im in unseen)), None)
        raise BoardNotFound(directory=str(directory), detail=detail or _("no ArUco markers at all"))
    report.phase("select", _("Choosing views"))
    selector = PairSelector(board, sizes["ir"], sizes["rgb"])
    for nn, ir, rgb in detections:
        if not (ir.count and rgb.count):
            camera = "IR" if not ir.count else "RGB"
            report.message(_("Pair {nn} skipped: no board in the {camera} image", nn=nn, camera=camera), item=nn)
            continue
        verdict = selector.offer(ir, rgb)
        if not verdict.accepted:
            report.message(_("Pair {nn} skipped: {reason}", nn=nn, reason=verdict.reason), item=nn)
    found = len(selector.accepted)
    if found < limits.min_views:
        raise TooFewViews(found=found, needed=limits.min_views)
    if selector.coverage() < limits.min_coverage:
        holes = ", ".join(f"({x:.2f}, {y:.2f})" for x, y in selector.ir.holes()[:6])
        raise CoverageTooLow(coverage=selector.coverage(), needed=limits.min_coverage, holes=holes)
    report.phase("solve", _("Solving the calibration"))
    calibration = calibrate_views(selector.accepted, board, sizes["ir"], sizes["rgb"])
    calibration = replace(calibration, coverage=selector.coverage())
    failures = calibration.failures(limits)
    if failures:
        raise CalibrationFailed(details="; ".join(failures))
    return calibration
