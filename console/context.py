"""What every view of the console shares: where the units are, the one worker pool, the station, who is logged
in, the bench's cards and the console's settings.

The main window makes one :class:`ConsoleContext` and hands it to each view (bench, installer wizard, support desk,
settings); a view keeps nothing of the others.  Settings change only through :meth:`ConsoleContext.update_settings`,
which saves them and tells every view (``settings_changed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, pyqtSignal

from .console_settings import ConsoleSettings

if TYPE_CHECKING:
    from .composition import Wiring
    from .operator_login import OperatorLogin
    from .unit_card import Bench
    from .workers import StationProvider, Workers


class ConsoleContext(QObject):
    """The console's shared parts (GUI thread only, except ``stations``, which any worker may ask)."""

    settings_changed = pyqtSignal(object)
    """The new :class:`ConsoleSettings`, after they were saved."""

    def __init__(
        self,
        wiring: Wiring,
        workers: Workers,
        stations: StationProvider,
        operator: OperatorLogin,
        bench: Bench,
        settings: ConsoleSettings,
        settings_path: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        """``settings_path``: where the settings are saved (None: the configuration directory's file)."""
        super().__init__(parent)
        self.wiring = wiring
        self.workers = workers
        self.stations = stations
        self.operator = operator
        self.bench = bench
        self.settings = settings
        self.settings_path = settings_path

    def update_settings(self, settings: ConsoleSettings) -> None:
        """Save ``settings`` and tell the views; OSError when they cannot be saved (nothing changes then)."""
        settings.save(self.settings_path)
        self.settings = settings
        self.settings_changed.emit(settings)
