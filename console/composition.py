"""The composition root: the one place that knows whether the units are real (USB) or simulated.

``--sim DIR`` or ``NAIAD_SIM`` are read here and nowhere else; every command and view gets a ready
:class:`Wiring` and asks it for a discovery or a station, so the core never learns which bus it is on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from i18n import _

if TYPE_CHECKING:
    from provisioning.ledger import Ledger
    from provisioning.station import Station
    from terminal.discovery import Discovery

SIM_ENV = "NAIAD_SIM"


@dataclass(frozen=True)
class Wiring:
    """Where the units are: the real USB bus (``sim_dir`` None) or a simulator's state directory."""

    sim_dir: Path | None = None

    @classmethod
    def resolve(cls, sim_dir: str | os.PathLike[str] | None = None) -> Wiring:
        """The argument, else ``NAIAD_SIM``, else real USB; SimulatorNotFound when the directory is missing."""
        chosen = os.fspath(sim_dir) if sim_dir is not None else os.environ.get(SIM_ENV) or None
        if chosen is None:
            return cls(None)
        if not Path(chosen).is_dir():
            from terminal.discovery import SimulatorNotFound

            raise SimulatorNotFound(path=chosen)
        return cls(Path(chosen).resolve())

    def discovery(self) -> Discovery:
        """A new discovery over this bus (each watcher or command gets its own)."""
        from terminal.discovery import Discovery

        return Discovery(self.sim_dir)

    def station(self, ledger_url: str | None = None, *, ledger: Ledger | None = None) -> Station:
        """A station over this bus with the ledger at ``ledger_url`` (the default ledger when None)."""
        from provisioning.station import Station

        return Station(self.sim_dir, ledger_url, ledger=ledger)

    def describe(self) -> str:
        """Where the units are, for people: "simulator PATH" or "the USB bus"."""
        if self.sim_dir is None:
            return _("the USB bus")
        return _("simulator {path}", path=str(self.sim_dir))
