"""A camera frame on screen: a numpy image shown scaled to its widget, aspect kept, with overlays drawn over it.

The array becomes a :class:`QImage` over the array's own memory (no copy: the view keeps the array alive as long as
the image); the one copy made is the image scaled to the widget, made again only when the frame or the size
changes, so painting is cheap.  Overlays (a calibration's detected corners, the coverage grid of the views so far)
are drawn in widget coordinates over the scaled image, never into the frame.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import numpy.typing as npt
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen, QResizeEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

CORNER_COLOUR = QColor(0, 230, 118)
CORNER_REJECTED_COLOUR = QColor(255, 145, 0)
COVERED_COLOUR = QColor(0, 200, 83, 70)
GRID_COLOUR = QColor(255, 255, 255, 60)
EMPTY_COLOUR = QColor(40, 40, 40)


def image_from_array(array: npt.NDArray[np.uint8]) -> tuple[QImage, npt.NDArray[np.uint8]]:
    """A QImage over ``array``'s memory (grey ``(H, W)`` or BGR ``(H, W, 3)`` uint8) and the array it uses.

    The QImage does not own its pixels: keep the returned array as long as the image.  An array that is not
    C-contiguous (a crop, a flipped view) is copied once to become so; a contiguous one is not copied."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"not a grey or BGR uint8 image: {array.dtype} {array.shape}")
    pixels = np.ascontiguousarray(array)
    height, width = pixels.shape[:2]
    fmt = QImage.Format.Format_Grayscale8 if pixels.ndim == 2 else QImage.Format.Format_BGR888
    buffer = cast(bytes, pixels.data)  # the array's own memory (PyQt takes any buffer), not a copy
    return QImage(buffer, width, height, int(pixels.strides[0]), fmt), pixels


class FrameView(QWidget):
    """Shows one frame, scaled to fit with its aspect ratio, and optionally corners and a coverage grid over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 100)
        self._image: QImage | None = None
        self._pixels: npt.NDArray[np.uint8] | None = None  # the memory ``_image`` shows
        self._scaled: QImage | None = None
        self._corners: npt.NDArray[np.float32] = np.zeros((0, 2), np.float32)
        self._corners_kept = True
        self._grid: npt.NDArray[np.bool_] | None = None

    # -- what to show ---------------------------------------------------------------------------------------

    def show_frame(self, array: npt.NDArray[np.uint8]) -> None:
        """Show a new frame (no copy when it is C-contiguous); corners and grid stay until replaced."""
        self._image, self._pixels = image_from_array(array)
        self._scaled = None
        self.update()

    def show_corners(self, corners: npt.NDArray[np.float32], kept: bool = True) -> None:
        """Corner positions in frame pixels (OpenCV's convention: (0, 0) is the centre of the first pixel)."""
        self._corners = np.asarray(corners, np.float32).reshape(-1, 2)
        self._corners_kept = kept
        self.update()

    def show_grid(self, grid: npt.NDArray[np.bool_] | None) -> None:
        """Shade the cells of a ``(rows, cols)`` grid over the frame where ``grid`` is True."""
        self._grid = None if grid is None else np.asarray(grid, bool)
        self.update()

    def clear(self) -> None:
        self._image = self._pixels = self._scaled = None
        self._corners = np.zeros((0, 2), np.float32)
        self._grid = None
        self.update()

    @property
    def frame_size(self) -> QSize | None:
        return None if self._image is None else self._image.size()

    @property
    def grid(self) -> npt.NDArray[np.bool_] | None:
        """The coverage grid shaded over the frame, if any."""
        return self._grid

    # -- geometry -------------------------------------------------------------------------------------------

    def image_rect(self) -> QRectF:
        """Where the frame is drawn: as large as fits the widget with the frame's aspect ratio, centred."""
        if self._image is None:
            return QRectF()
        width, height = self._image.width(), self._image.height()
        scale = min(self.width() / width, self.height() / height)
        shown_w, shown_h = width * scale, height * scale
        return QRectF((self.width() - shown_w) / 2, (self.height() - shown_h) / 2, shown_w, shown_h)

    def to_widget(self, x: float, y: float) -> QPointF:
        """A frame pixel position (pixel centres at integers, as OpenCV) in widget coordinates."""
        rect = self.image_rect()
        assert self._image is not None
        scale = rect.width() / self._image.width()
        return QPointF(rect.x() + (x + 0.5) * scale, rect.y() + (y + 0.5) * scale)

    def sizeHint(self) -> QSize:
        return QSize(640, 400)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        self._scaled = None
        super().resizeEvent(event)

    # -- drawing --------------------------------------------------------------------------------------------

    def _scaled_image(self, rect: QRectF) -> QImage:
        """The frame scaled to ``rect`` once per frame and size (painting then copies nothing)."""
        assert self._image is not None
        size = rect.size().toSize()
        if self._scaled is None or self._scaled.size() != size:
            self._scaled = self._image.scaled(
                size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        return self._scaled

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), EMPTY_COLOUR)
        if self._image is not None and self.width() > 0 and self.height() > 0:
            rect = self.image_rect()
            painter.drawImage(rect.topLeft(), self._scaled_image(rect))
            self._paint_grid(painter, rect)
            self._paint_corners(painter)
        painter.end()

    def _paint_grid(self, painter: QPainter, rect: QRectF) -> None:
        grid = self._grid
        if grid is None or grid.ndim != 2 or grid.size == 0:
            return
        rows, cols = grid.shape
        cell_w, cell_h = rect.width() / cols, rect.height() / rows
        painter.setPen(QPen(GRID_COLOUR, 1))
        for row in range(rows):
            for col in range(cols):
                cell = QRectF(rect.x() + col * cell_w, rect.y() + row * cell_h, cell_w, cell_h)
                if grid[row, col]:
                    painter.fillRect(cell, COVERED_COLOUR)
                painter.drawRect(cell)

    def _paint_corners(self, painter: QPainter) -> None:
        if not len(self._corners):
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = CORNER_COLOUR if self._corners_kept else CORNER_REJECTED_COLOUR
        painter.setPen(QPen(colour, 1.5))
        radius = 3.0
        for x, y in self._corners:
            painter.drawEllipse(self.to_widget(float(x), float(y)), radius, radius)
