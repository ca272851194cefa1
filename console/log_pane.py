"""The log pane: core ``logging`` records from any thread, shown in the window as they happen.

``QtLogHandler`` is a plain ``logging.Handler``; its ``emit`` (called on whatever thread logged) only
formats the record and emits a Qt signal, which Qt queues to the GUI thread where the pane draws it.
"""

from __future__ import annotations

import html
import logging
from collections import deque

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from i18n import N_, _

from .style import level_colour

LOG = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DEFAULT_MAX_RECORDS = 5000

LEVEL_CHOICES: tuple[tuple[int, str], ...] = (
    (logging.DEBUG, N_("Debug")),
    (logging.INFO, N_("Info")),
    (logging.WARNING, N_("Warnings")),
    (logging.ERROR, N_("Errors")),
)


class _RecordBridge(QObject):
    """Carries formatted records across threads; Python-owned so it outlives the pane safely."""

    record = pyqtSignal(int, str)


class QtLogHandler(logging.Handler):
    """A logging handler whose records arrive as the ``record(levelno, text)`` Qt signal."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.bridge = _RecordBridge()
        self.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            self.bridge.record.emit(record.levelno, text)
        except RuntimeError:  # the Qt side is gone while the application shuts down
            pass
        except Exception:
            self.handleError(record)


class LogPane(QWidget):
    """A read-only, level-filtered view of the log, capped at ``max_records`` lines."""

    def __init__(self, parent: QWidget | None = None, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        super().__init__(parent)
        self._records: deque[tuple[int, str]] = deque(maxlen=max_records)
        self._handler: QtLogHandler | None = None
        self._logger: logging.Logger | None = None

        self.title = QLabel()
        self.level_label = QLabel()
        self.level_combo = QComboBox()
        for level, _msgid in LEVEL_CHOICES:
            self.level_combo.addItem("", level)
        self.level_combo.setCurrentIndex(1)
        self.level_combo.currentIndexChanged.connect(self._rerender)
        self.clear_button = QPushButton()
        self.clear_button.clicked.connect(self.clear)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(max_records)
        self.view.setObjectName("logView")

        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addStretch(1)
        header.addWidget(self.level_label)
        header.addWidget(self.level_combo)
        header.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.view)
        self.retranslate()

    def attach(self, logger: logging.Logger | None = None, level: int = logging.DEBUG) -> QtLogHandler:
        """Start showing records of ``logger`` (the root logger by default)."""
        self.detach()
        self._logger = logger or logging.getLogger()
        self._handler = QtLogHandler(level)
        self._handler.bridge.record.connect(self.append_record)
        self._logger.addHandler(self._handler)
        return self._handler

    def detach(self) -> None:
        """Stop receiving records; call before the pane goes away."""
        if self._handler is not None and self._logger is not None:
            self._logger.removeHandler(self._handler)
            self._handler.bridge.record.disconnect(self.append_record)
        self._handler = self._logger = None

    @property
    def min_level(self) -> int:
        level = self.level_combo.currentData()
        return int(level) if level is not None else logging.INFO

    def set_min_level(self, level: int) -> None:
        index = self.level_combo.findData(level)
        if index >= 0:
            self.level_combo.setCurrentIndex(index)

    @pyqtSlot(int, str)
    def append_record(self, levelno: int, text: str) -> None:
        self._records.append((levelno, text))
        if levelno >= self.min_level:
            self._show(levelno, text)

    def lines(self) -> list[str]:
        """The text lines currently shown (what the user sees, after filtering)."""
        return self.view.toPlainText().splitlines()

    def clear(self) -> None:
        self._records.clear()
        self.view.clear()

    def _show(self, levelno: int, text: str) -> None:
        escaped = html.escape(text).replace("\n", "<br>")
        self.view.appendHtml(f'<span style="color:{level_colour(levelno)}; white-space:pre">{escaped}</span>')

    def _rerender(self) -> None:
        self.view.clear()
        minimum = self.min_level
        for levelno, text in self._records:
            if levelno >= minimum:
                self._show(levelno, text)

    def retranslate(self) -> None:
        self.title.setText(_("Log"))
        self.level_label.setText(_("Show:"))
        for index, (_level, msgid) in enumerate(LEVEL_CHOICES):
            self.level_combo.setItemText(index, _(msgid))
        self.clear_button.setText(_("Clear log"))
