"""Calibrating from a folder of captured image pairs (``naiad calibrate --from-images``).

The folder holds ``ir_NN.png`` and ``rgb_NN.png`` (same NN: the same instant; grey or colour, 8 or 16 bits,
any resolution; other files are ignored).  Pairs without the board are skipped and named; everything that makes
a good calibration impossible is a typed :class:`camera.errors.CameraError` that says why, never a traceback.
"""

from __future__ import annotations

import re
from collections import Counter
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
    BoardNotTilted,
    CalibrationFailed,
    CorruptImage,
    CoverageTooLow,
    DuplicateImages,
    NoImagePairs,
    NotAFolder,
    Skip,
    TooFewViews,
    UnmatchedImages,
)
from .views import PairSelector

__all__ = [
    "BoardNotFound",
    "BoardNotTilted",
    "CalibrationFailed",
    "CorruptImage",
    "CoverageTooLow",
    "DuplicateImages",
    "NoImagePairs",
    "NotAFolder",
    "TooFewViews",
    "UnmatchedImages",
    "calibrate_folder",
    "find_pairs",
    "read_image",
]

_NAME = re.compile(r"^(ir|rgb)_(\d+)\.png$", re.IGNORECASE)
_PNG = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 16384  # the largest image side a calibration blob accepts (terminal.camera.Intrinsics)
_DIAGNOSED = 3  # images of each camera searched for foreign markers when no pair shows the board
_STREAMS = ("ir", "rgb")


def find_pairs(directory: Path) -> list[tuple[str, Path, Path]]:
    """(NN, IR file, RGB file) of every pair in ``directory``, in NN order; errors for none or unmatched ones.

    NN is a number: ``ir_7.png`` and ``IR_07.png`` are the same camera's image of pair 07 (an error when both
    are there).  A name that fits but is no readable file (a folder, a broken link) is an error, never ignored.
    """
    if not directory.is_dir():
        raise NotAFolder(directory=str(directory))
    found: dict[int, dict[str, Path]] = {}
    duplicates: set[str] = set()
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise NoImagePairs(directory=str(directory)) from exc
    for path in entries:
        match = _NAME.match(path.name)
        if not match:
            continue
        if not path.is_file():
            raise CorruptImage(path=str(path), detail=_("it is not a readable file"))
        files = found.setdefault(int(match.group(2)), {})
        stream = match.group(1).lower()
        if stream in files:
            duplicates |= {files[stream].name, path.name}
        files[stream] = path
    if duplicates:
        raise DuplicateImages(names=", ".join(sorted(duplicates)))
    unmatched = sorted(p.name for files in found.values() if len(files) == 1 for p in files.values())
    if unmatched:
        raise UnmatchedImages(names=", ".join(unmatched))
    if not found:
        raise NoImagePairs(directory=str(directory))
    return [(f"{number:02d}", files["ir"], files["rgb"]) for number, files in sorted(found.items())]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG file's header; :class:`CorruptImage` for anything that is not a PNG file.

    Checked before decoding: whatever was renamed ``.png`` (a JPEG, a TIFF) is refused, and so is an image too
    large for a calibration blob.
    """
    try:
        with path.open("rb") as file:
            header = file.read(24)
    except OSError as exc:
        raise CorruptImage(path=str(path), detail=exc.strerror or str(exc)) from exc
    if len(header) < 24 or header[:8] != _PNG or header[12:16] != b"IHDR":
        raise CorruptImage(path=str(path), detail=_("it is not a PNG image"))
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    if max(width, height) > MAX_SIDE:
        raise CorruptImage(path=str(path), detail=_("it is {width}x{height} pixels", width=width, height=height))
    return width, height


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """The PNG image at ``path`` as 8-bit grey; :class:`CorruptImage` for anything that is not a readable PNG."""
    png_size(path)
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise CorruptImage(path=str(path), detail=exc.strerror or str(exc)) from exc
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0 or image.ndim not in (2, 3):
        raise CorruptImage(path=str(path), detail=_("it is not a whole PNG image"))
    return grey(image)


def _sizes(pairs: list[tuple[str, Path, Path]]) -> dict[str, tuple[int, int]]:
    """Each camera's image size: the one most of its images have; an error naming the first image of another."""
    sizes: dict[str, tuple[int, int]] = {}
    columns = ([ir for _nn, ir, _rgb in pairs], [rgb for _nn, _ir, rgb in pairs])
    for stream, paths in zip(_STREAMS, columns, strict=True):
        found = [(png_size(path), path) for path in paths]
        usual = Counter(size for size, _path in found).most_common(1)[0][0]
        odd = [(size, path) for size, path in found if size != usual]
        if odd:
            (width, height), path = odd[0]
            detail = _(
                "it is {width}x{height}, most {stream} images are {w}x{h} (images of another size: {names})",
                width=width,
                height=height,
                stream=stream.upper(),
                w=usual[0],
                h=usual[1],
                names=", ".join(p.name for _size, p in odd),
            )
            raise CorruptImage(path=str(path), detail=detail)
        sizes[stream] = usual
    return sizes


def _no_board(
    directory: Path, board: Board, seen: dict[str, int], unseen: dict[str, list[npt.NDArray[np.uint8]]]
) -> BoardNotFound:
    """Why no pair shows the board in both images: which camera misses it, and what its images show instead."""
    missing = [stream for stream in _STREAMS if not seen[stream]]
    images = [image for stream in missing or _STREAMS for image in unseen[stream]]
    why = next(filter(None, (explain_missing_board(image, board) for image in images)), None)
    why = why or _("no ArUco markers at all")
    if len(missing) == 1:
        other = next(s for s in _STREAMS if s != missing[0])
        why = _(
            "the {camera} images show none ({other} images show it in {count} pairs): {why}",
            camera=missing[0].upper(),
            other=other.upper(),
            count=seen[other],
            why=why,
        )
    elif not missing:
        why = _("the board is never in both images of a pair")
    return BoardNotFound(directory=str(directory), detail=why)


def calibrate_folder(
    directory: Path, board: Board, listener: Listener | None = None, *, limits: CameraLimits | None = None
) -> Calibration:
    """The calibration the image pairs in ``directory`` give, checked against ``limits`` (defaults if None).

    Every pair left out is named by a message as it is left out, and the errors that end a calibration list them
    by kind (``TooFewViews``, ``CoverageTooLow``, ``BoardNotTilted``, ``CalibrationFailed``).
    """
    limits = limits or CameraLimits()
    report = Reporter(listener, directory.name, "calibrate")
    pairs = find_pairs(directory)
    sizes = _sizes(pairs)
    report.phase("detect", _("Finding the board"))
    detections: list[tuple[str, Detection, Detection]] = []
    seen = dict.fromkeys(_STREAMS, 0)
    unseen: dict[str, list[npt.NDArray[np.uint8]]] = {stream: [] for stream in _STREAMS}
    for done, (nn, ir_path, rgb_path) in enumerate(pairs):
        views = []
        for stream, path in zip(_STREAMS, (ir_path, rgb_path), strict=True):
            image = read_image(path)
            views.append(detect(image, board))
            if views[-1].count:
                seen[stream] += 1
            elif len(unseen[stream]) < _DIAGNOSED:
                unseen[stream].append(image)
        detections.append((nn, views[0], views[1]))
        report.progress(done + 1, len(pairs), counts="items")
    if not any(ir.count and rgb.count for _nn, ir, rgb in detections):
        raise _no_board(directory, board, seen, unseen)
    report.phase("select", _("Choosing views"))
    selector = PairSelector(board, sizes["ir"], sizes["rgb"])
    chosen: list[str] = []
    skipped: list[Skip] = []

    def skip(nn: str, kind: str, reason: str) -> None:
        report.message(_("Pair {nn} skipped: {reason}", nn=nn, reason=reason), item=nn)
        skipped.append(Skip(nn, kind, reason))

    for nn, ir, rgb in detections:
        if not (ir.count and rgb.count):
            skip(nn, "no-board", _("no board in the {camera} image", camera="IR" if not ir.count else "RGB"))
            continue
        verdict = selector.offer(ir, rgb)
        if verdict.accepted:
            chosen.append(nn)
        else:
            skip(nn, verdict.kind or "", verdict.reason or "")
    found = len(selector.accepted)
    if found < limits.min_views:
        raise TooFewViews(found=found, needed=limits.min_views, skipped=skipped)
    if selector.coverage() < limits.min_coverage:
        holes = ", ".join(f"({x:.2f}, {y:.2f})" for x, y in selector.ir.holes()[:6])
        raise CoverageTooLow(coverage=selector.coverage(), needed=limits.min_coverage, holes=holes, skipped=skipped)
    report.phase("solve", _("Solving the calibration"))
    calibration = calibrate_views(selector.accepted, board, sizes["ir"], sizes["rgb"])
    calibration = replace(calibration, coverage=selector.coverage())
    for index, kind, reason in calibration.dropped:
        skip(chosen[index], kind, reason)
    if calibration.views_used < limits.min_views:
        raise TooFewViews(found=calibration.views_used, needed=limits.min_views, skipped=skipped)
    untilted = calibration.untilted()
    if untilted:
        raise BoardNotTilted(details="; ".join(untilted), skipped=skipped)
    failures = calibration.failures(limits)
    if failures:
        raise CalibrationFailed(details="; ".join(failures), skipped=skipped)
    return calibration
