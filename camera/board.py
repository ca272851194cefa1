"""The OpenCV ChArUco board a board file describes (DESIGN section 6), built once per board."""

from __future__ import annotations

import functools
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from i18n import _
from terminal.camera import DICTIONARIES, Board


@functools.lru_cache(maxsize=32)
def charuco_board(board: Board) -> cv2.aruco.CharucoBoard:
    """OpenCV's board for ``board``: its dictionary, squares and lengths, and the legacy pattern when asked.

    Boards printed by OpenCV before 4.6 with an even number of rows start with a marker where newer ones start
    with a black square; ``legacy_pattern`` in the board file says which one was printed.
    """
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
    result = cv2.aruco.CharucoBoard(
        (board.squares_x, board.squares_y), board.square_length_m, board.marker_length_m, dictionary
    )
    result.setLegacyPattern(board.legacy_pattern)
    return result


def _markers(image: npt.NDArray[np.uint8], dictionary: str) -> npt.NDArray[np.int32]:
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)))
    _corners, ids, _rejected = detector.detectMarkers(image)
    return np.zeros(0, np.int32) if ids is None else np.asarray(ids, np.int32).ravel()


def explain_missing_board(image: npt.NDArray[np.uint8], board: Board) -> str | None:
    """Why ``image`` (grey) shows no corner of ``board`` when it shows markers, translated; None if no markers.

    Tells a board of another dictionary (named by the smallest predefined dictionary of its family that holds
    every id seen), of another size, or printed in the other (legacy) pattern from a board that is not there.
    """
    own = _markers(image, board.dictionary)
    if len(own) >= 4:
        board_ids = set(np.asarray(charuco_board(board).getIds()).ravel().tolist())
        foreign = sorted(set(own.tolist()) - board_ids)
        if foreign:
            return _(
                "markers of {dictionary} were seen, but with ids this board does not have ({ids}): "
                "is the board another size?",
                dictionary=board.dictionary,
                ids=", ".join(str(i) for i in foreign[:8]),
            )
        other = replace(board, legacy_pattern=not board.legacy_pattern)
        corners, _ids, _mc, _mi = cv2.aruco.CharucoDetector(charuco_board(other)).detectBoard(image)
        if corners is not None and len(corners) >= 4:
            return _(
                "the board was found with legacy_pattern set to {value}: set it so in the board file",
                value=str(other.legacy_pattern).lower(),
            )
        return _(
            "markers of {dictionary} were seen but no chessboard corners between them: check squares_x, "
            "squares_y and the square and marker lengths",
            dictionary=board.dictionary,
        )
    best, best_ids = "", np.zeros(0, np.int32)
    for name in sorted(DICTIONARIES - {board.dictionary}):
        ids = _markers(image, name)
        if len(ids) > len(best_ids):
            best, best_ids = name, ids
    if len(best_ids) < 4:
        return None
    return _(
        "markers of {found} were seen, but none of this board's dictionary {dictionary}",
        found=_smallest_family_member(best, int(best_ids.max())),
        dictionary=board.dictionary,
    )


def _smallest_family_member(name: str, largest_id: int) -> str:
    """``DICT_4X4_1000`` with ids up to 43 is most likely a ``DICT_4X4_50`` board (the family shares markers)."""
    family, _sep, size = name.rpartition("_")
    if not size.isdigit():
        return name
    sizes = sorted(int(n.rpartition("_")[2]) for n in DICTIONARIES if n.rpartition("_")[0] == family)
    return f"{family}_{next(s for s in sizes if s > largest_id)}"
