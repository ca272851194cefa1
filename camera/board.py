"""The OpenCV ChArUco board a board file describes (DESIGN section 6), built once per board."""

from __future__ import annotations

import functools
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from i18n import _
from terminal.camera import Board

# Searched in this order (cheapest first) for the markers of a board other than the one the file describes;
# each DICT_NXN family by its smallest dictionary, whose markers its larger ones share.
_SUSPECTS = (
    "DICT_4X4_50",
    "DICT_5X5_50",
    "DICT_6X6_50",
    "DICT_7X7_50",
    "DICT_APRILTAG_16h5",
    "DICT_APRILTAG_25h9",
    "DICT_ARUCO_MIP_36h12",
    "DICT_APRILTAG_36h11",
    "DICT_ARUCO_ORIGINAL",
)


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

    Tells a board of another dictionary, of another size, or printed in the other (legacy) pattern from a
    board that is not there.  Dictionaries of one family share their first markers, so each family is searched
    by its smallest (fastest) member; large dictionaries take a second or more per image.
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
    for name in _SUSPECTS:
        if _family(name) != _family(board.dictionary) and len(_markers(image, name)) >= 4:
            return _(
                "markers of a {found} dictionary were seen, but none of this board's dictionary {dictionary}",
                found=_family(name),
                dictionary=board.dictionary,
            )
    return None


def _family(dictionary: str) -> str:
    """``DICT_4X4_*`` for each of the DICT_4X4 sizes (they share their first markers); other names as they are."""
    head, _sep, size = dictionary.rpartition("_")
    return f"{head}_*" if head.startswith("DICT_") and "X" in head and size.isdigit() else dictionary
