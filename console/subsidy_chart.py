"""A unit's subsidy per month as a small chart: earnings as bars, users as dots.

Painted with QPainter (no plotting library): two value axes (yuan on the left, users on the right) whose
labels are measured with the widget's font, so neither axis nor the legend is clipped in any language; the users
axis counts in whole users.  A program's terms (its monthly cap) are the platform's data, and its subsidy reply
does not carry them, so the chart draws no cap line: the totals beside it say the cap left, from the reply.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from i18n import _

if TYPE_CHECKING:
    from provisioning.registration import SubsidyMonth

WINDOW_MONTHS = 5
"""The chart's slots at least (the programs so far pay for five months from activation); more if a reply has more."""

EARNED_COLOUR = QColor("#1565c0")
USERS_COLOUR = QColor("#ef6c00")
AXIS_COLOUR = QColor("#616161")
GRID_COLOUR = QColor("#e0e0e0")
PAD = 6


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (1 for nothing): a round axis top."""
    if value <= 0:
        return 1.0
    power: float = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):  # 0.3 / 0.1 is not quite 3 in floating point
            return step * power
    return 10.0 * power


def axis_text(value: float) -> str:
    """A tick label: whole numbers without decimals, others with the fen they need (a quarter of 5 yuan is 1.25,
    not "1.2")."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")


class SubsidyChart(QWidget):
    """Users and earnings per month of one unit's subsidy window."""

    TICKS = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("subsidyChart")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(360, 200)
        self.months: tuple[SubsidyMonth, ...] = ()

    def show_months(self, months: Sequence[SubsidyMonth]) -> None:
        """Chart ``months`` (none: nothing earned yet)."""
        self.months = tuple(months)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(520, 260)

    # -- scales ---------------------------------------------------------------------------------------------

    def yuan_top(self) -> float:
        return nice_ceiling(max([float(month.earned) for month in self.months] + [0.0]) * 1.1)

    def users_top(self) -> int:
        """Whole users on every tick: the top is a round step (at least one user) times :attr:`TICKS`."""
        step = nice_ceiling(max([month.users for month in self.months] + [1]) / self.TICKS)
        return math.ceil(step) * self.TICKS

    # -- painting -------------------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.fillRect(self.rect(), QColor("#ffffff"))
            if not self.months:
                painter.setPen(AXIS_COLOUR)
                painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, _("No subsidy months yet"))
                return
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        metrics = QFontMetrics(self.font())
        line = metrics.height()
        yuan_top, users_top = self.yuan_top(), self.users_top()
        yuan_ticks = [yuan_top * i / self.TICKS for i in range(self.TICKS + 1)]
        users_ticks = [users_top * i // self.TICKS for i in range(self.TICKS + 1)]
        yuan_title, users_title = _("Yuan"), _("Users")
        left = PAD + max(metrics.horizontalAdvance(t) for t in [yuan_title, *map(axis_text, yuan_ticks)]) + PAD
        right = PAD + max(metrics.horizontalAdvance(t) for t in [users_title, *map(axis_text, users_ticks)]) + PAD
        legend_bottom = self._paint_legend(painter, metrics, PAD)
        titles = legend_bottom + PAD  # the axes' titles, a line above the top tick labels
        plot = QRectF(left, titles + 1.5 * line + PAD, self.width() - left - right, 0)
        plot.setBottom(self.height() - PAD - line - PAD)
        if plot.width() < 40 or plot.height() < 40:
            return

        def y_of(value: float, top: float) -> float:
            return plot.bottom() - plot.height() * value / top

        painter.setPen(AXIS_COLOUR)
        painter.drawText(QRectF(PAD, titles, left, line), Qt.AlignmentFlag.AlignLeft, yuan_title)
        painter.drawText(QRectF(plot.right(), titles, right - PAD, line), Qt.AlignmentFlag.AlignRight, users_title)
        for yuan, users in zip(yuan_ticks, users_ticks, strict=True):
            y = y_of(yuan, yuan_top)
            painter.setPen(QPen(GRID_COLOUR, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(AXIS_COLOUR)
            painter.drawText(
                QRectF(PAD, y - line / 2, left - 2 * PAD, line),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                axis_text(yuan),
            )
            painter.drawText(
                QRectF(plot.right() + PAD, y - line / 2, right - 2 * PAD, line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                axis_text(users),
            )

        slots = max(WINDOW_MONTHS, max(month.index for month in self.months))
        slot = plot.width() / slots
        by_index = {month.index: month for month in self.months}
        points: list[QPointF] = []
        for index in range(1, slots + 1):
            x = plot.left() + slot * (index - 1)
            painter.setPen(AXIS_COLOUR)
            painter.drawText(
                QRectF(x, plot.bottom() + PAD, slot, line), Qt.AlignmentFlag.AlignHCenter, _("M{index}", index=index)
            )
            month = by_index.get(index)
            if month is None:
                continue
            top = y_of(float(month.earned), yuan_top)
            painter.fillRect(QRectF(x + slot * 0.2, top, slot * 0.6, plot.bottom() - top), EARNED_COLOUR)
            points.append(QPointF(x + slot / 2, y_of(month.users, users_top)))

        painter.setPen(QPen(USERS_COLOUR, 2))
        for start, end in itertools.pairwise(points):
            painter.drawLine(start, end)
        painter.setBrush(USERS_COLOUR)
        for point in points:
            painter.drawEllipse(point, 4.0, 4.0)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(AXIS_COLOUR, 1))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())

    def _paint_legend(self, painter: QPainter, metrics: QFontMetrics, top: float) -> float:
        """The legend on one line (wrapped onto more when narrow); returns its bottom."""
        entries = [(_("Earned per month"), "bar"), (_("Users per month"), "dot")]
        line = metrics.height()
        x, y = float(PAD), top
        for text, kind in entries:
            width = 18 + 4 + metrics.horizontalAdvance(text) + 14
            if x > PAD and x + width > self.width() - PAD:
                x, y = float(PAD), y + line + 2
            middle = y + line / 2
            if kind == "bar":
                painter.fillRect(QRectF(x, middle - 5, 18, 10), EARNED_COLOUR)
            else:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(USERS_COLOUR)
                painter.drawEllipse(QPointF(x + 9, middle), 4.0, 4.0)
                painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(AXIS_COLOUR)
            painter.drawText(QRectF(x + 22, y, width, line), Qt.AlignmentFlag.AlignVCenter, text)
            x += width
        return y + line
