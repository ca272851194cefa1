"""The bench view (being built: the recipe bar, unit selection and the batch summary come here)."""

from __future__ import annotations

from PyQt6.QtWidgets import QVBoxLayout, QWidget

from .context import ConsoleContext


class BenchView(QWidget):
    def __init__(self, context: ConsoleContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(context.bench)

    def retranslate(self) -> None:
        pass
