"""Choosing the views a calibration keeps: sharp, with enough corners, not a near copy of one already kept.

Coverage is counted on a grid over the image: a cell is covered when a corner of a kept view fell in it.  The
empty cells are the holes a jig (or a person) should fill next; the ones farthest from any covered cell first,
and among those the ones nearest the image's edges, where lens distortion is strongest and least constrained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from i18n import N_, _
from terminal.camera import Board

from .calibrate import MIN_POINTS, NOT_COMMON
from .detect import Detection

MIN_SHARPNESS = 0.25  # an edge blurred by a Gaussian of about 1.6 px or more ...
BLUR_SHARE = 1 / 30  # ... unless the squares are large: then a blur up to this share of a square's side is fine
REDUNDANT_SHARE = 0.8  # a view sharing this share of its corners with a kept one ...
REDUNDANT_SHIFT = 0.02  # ... and moved nearly all of them (95 %) by less than this share of the diagonal is a copy

BLURRED = N_("blurred (sharpness {sharpness:.2f}, at least {needed:.2f} needed)")
TOO_FEW = N_("too few board corners ({found}, at least {needed} needed)")
REDUNDANT = N_("redundant (nearly the same as a view already kept)")


@dataclass(frozen=True)
class Verdict:
    """Whether a view was kept and, if not, why (translated) and what kind of reason it was (for summaries)."""

    accepted: bool
    reason: str | None = None
    kind: str | None = None  # "blurred", "too-few", "redundant", "not-common"


def min_sharpness(detection: Detection) -> float:
    """The sharpness a view needs: an edge blur of 1.6 px, or of BLUR_SHARE of a square when squares are large.

    Blur matters relative to the board's squares: a corner is refined over a window scaled to them, so a
    high-resolution image whose squares span a hundred pixels calibrates well with edges a few pixels wide.
    """
    sigma = max(1 / (MIN_SHARPNESS * np.sqrt(2 * np.pi)), BLUR_SHARE * detection.spacing_px)
    return float(1 / (sigma * np.sqrt(2 * np.pi)))


def min_corners(board: Board) -> int:
    """Corners a view needs: a fifth of the board's, and never fewer than 8 (a pose needs well over 4)."""
    return max(8, board.corners // 5)


class ViewSelector:
    """Keeps the views of one camera that add something, and measures how much of the image they cover."""

    def __init__(self, board: Board, image_size: tuple[int, int], *, grid: tuple[int, int] = (8, 6)) -> None:
        self.board = board
        self.image_size = image_size
        self.grid = grid  # (cols, rows)
        self.accepted: list[Detection] = []
        self._covered = np.zeros((grid[1], grid[0]), bool)

    def judge(self, detection: Detection, *, redundancy: bool = True) -> Verdict:
        """The verdict on ``detection`` without keeping it."""
        needed = min_corners(self.board)
        if detection.count < needed:
            return Verdict(False, _(TOO_FEW, found=detection.count, needed=needed), "too-few")
        sharp = min_sharpness(detection)
        if detection.sharpness < sharp:
            return Verdict(False, _(BLURRED, sharpness=detection.sharpness, needed=sharp), "blurred")
        if redundancy and any(self._same(detection, kept) for kept in self.accepted):
            return Verdict(False, _(REDUNDANT), "redundant")
        return Verdict(True)

    def offer(self, detection: Detection) -> Verdict:
        """Judge ``detection`` and keep it when it is accepted."""
        verdict = self.judge(detection)
        if verdict.accepted:
            self.keep(detection)
        return verdict

    def keep(self, detection: Detection) -> None:
        """Keep ``detection`` whatever its verdict (the other camera of a pair decided)."""
        self.accepted.append(detection)
        self._covered[self._cells(detection.corners)] = True

    def coverage(self) -> float:
        return float(self._covered.mean())

    def coverage_grid(self) -> npt.NDArray[np.bool_]:
        """(rows, cols): True where a corner of a kept view fell."""
        return self._covered.copy()

    def holes(self) -> list[tuple[float, float]]:
        """Centres of the empty cells as (x, y) image fractions, most useful first."""
        rows, cols = self._covered.shape
        empty = np.argwhere(~self._covered)
        full = np.argwhere(self._covered)

        def usefulness(cell: npt.NDArray[np.intp]) -> tuple[float, float]:
            far = float(np.abs(full - cell).max(axis=1).min()) if len(full) else 0.0
            edge = float(np.hypot((cell[0] + 0.5) / rows - 0.5, (cell[1] + 0.5) / cols - 0.5))
            return (-far, -edge)

        ordered = sorted(empty, key=usefulness)
        return [((float(c) + 0.5) / cols, (float(r) + 0.5) / rows) for r, c in ordered]

    def _cells(self, corners: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        width, height = self.image_size
        cols, rows = self.grid
        c = np.clip((corners[:, 0] / width * cols).astype(np.intp), 0, cols - 1)
        r = np.clip((corners[:, 1] / height * rows).astype(np.intp), 0, rows - 1)
        return r, c

    def _same(self, a: Detection, b: Detection) -> bool:
        common, ia, ib = np.intersect1d(a.ids, b.ids, return_indices=True)
        if len(common) < REDUNDANT_SHARE * max(a.count, b.count):
            return False
        # Nearly every corner, not the median: a new tilt moves the far corners most, and tilts are what pin f.
        shift = float(np.percentile(np.linalg.norm(a.corners[ia] - b.corners[ib], axis=1), 95))
        return shift < REDUNDANT_SHIFT * float(np.hypot(*self.image_size))


class PairSelector:
    """Views of the IR and RGB cameras taken at the same instant, kept or dropped together.

    The IR view decides redundancy (both cameras see the same pose); each camera's view must be sharp and show
    enough corners, and both must share enough corners for the IR-to-RGB solve.  The calibration's coverage is
    the IR camera's: the depth image lives on its pixel grid.
    """

    def __init__(
        self, board: Board, ir_size: tuple[int, int], rgb_size: tuple[int, int], *, grid: tuple[int, int] = (8, 6)
    ) -> None:
        self.ir = ViewSelector(board, ir_size, grid=grid)
        self.rgb = ViewSelector(board, rgb_size, grid=grid)
        self.accepted: list[tuple[Detection, Detection]] = []

    def offer(self, ir: Detection, rgb: Detection) -> Verdict:
        verdict = self.ir.judge(ir)
        if not verdict.accepted:
            return Verdict(False, _("IR: {reason}", reason=verdict.reason), verdict.kind)
        rgb_verdict = self.rgb.judge(rgb, redundancy=False)
        if not rgb_verdict.accepted:
            return Verdict(False, _("RGB: {reason}", reason=rgb_verdict.reason), rgb_verdict.kind)
        common = len(np.intersect1d(ir.ids, rgb.ids))
        if common < MIN_POINTS:
            return Verdict(False, _(NOT_COMMON, found=common, needed=MIN_POINTS), "not-common")
        self.ir.keep(ir)
        self.rgb.keep(rgb)
        self.accepted.append((ir, rgb))
        return verdict

    def coverage(self) -> float:
        return self.ir.coverage()
