"""A camera frame with a face drawn over it: the face-pay check's views of RGB, IR and depth.

:class:`FaceFrameView` is a :class:`~console.frame_view.FrameView` that also draws one face's box, its five
landmarks and a caption (the station's decision and liveness score), in widget coordinates over the scaled frame.
"""

from __future__ import annotations

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QWidget

from camera.faces import Face

from .frame_view import FrameView

LIVE_COLOUR = QColor(0, 230, 118)
ATTACK_COLOUR = QColor(255, 82, 82)
OTHER_COLOUR = QColor(255, 196, 0)
LANDMARK_COLOUR = QColor(41, 182, 246)


class FaceFrameView(FrameView):
    """A frame with a face drawn over it: its box, its five landmarks and a caption (the decision and score)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.face: Face | None = None
        self.caption = ""
        self.colour = OTHER_COLOUR
        self.setMinimumSize(200, 150)

    def show_face(self, face: Face | None, caption: str, colour: QColor) -> None:
        self.face, self.caption, self.colour = face, caption, colour
        self.update()

    def clear(self) -> None:
        self.face, self.caption = None, ""
        super().clear()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        super().paintEvent(event)
        face = self.face
        if face is None or self.frame_size is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(self.colour, 2))
        x0, y0, x1, y1 = face.box
        top_left, bottom_right = self.to_widget(x0 - 0.5, y0 - 0.5), self.to_widget(x1 - 0.5, y1 - 0.5)
        box = QRectF(top_left, bottom_right)
        painter.drawRect(box)
        painter.setPen(QPen(LANDMARK_COLOUR, 2))
        painter.setBrush(LANDMARK_COLOUR)
        for x, y in face.landmarks or ():
            painter.drawEllipse(self.to_widget(x, y), 2.5, 2.5)
        if self.caption:
            font = QFont(painter.font())
            font.setBold(True)
            painter.setFont(font)
            metrics = painter.fontMetrics()
            text = metrics.elidedText(self.caption, Qt.TextElideMode.ElideRight, self.width() - 4)
            width, height = metrics.horizontalAdvance(text) + 8, metrics.height() + 4
            left = min(max(0.0, box.left()), self.width() - width)
            top = box.top() - height if box.top() >= height else min(box.bottom(), self.height() - height)
            label = QRectF(left, top, width, height)
            painter.fillRect(label, QColor(0, 0, 0, 170))
            painter.setPen(self.colour)
            painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
        painter.end()
