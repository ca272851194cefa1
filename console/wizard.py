"""(being built)"""

from __future__ import annotations

from PyQt6.QtWidgets import QWidget

from .context import ConsoleContext


class InstallerWizard(QWidget):
    def __init__(self, context: ConsoleContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context

    def retranslate(self) -> None:
        pass
