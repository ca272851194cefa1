"""Flashing from the bench: a flash is one job on the console's workers, followed on the cards.

A flash is a run on many units (:mod:`console.unit_runs`); this module adds what is particular to a flash:
the engine's entry point, a unit's outcome (firmware version and slot), and the run's summary in the log.
The engine (:func:`provisioning.flashing.flash_units`) is imported on the pool thread, when the first flash
starts, so the console starts without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import QObject

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Listener

from .unit_card import NO_VALUE, Bench
from .unit_runs import UnitRun, UnitRuns
from .workers import StationProvider, Workers

if TYPE_CHECKING:
    from provisioning.flashing import FlashResult
    from provisioning.station import Station

LOG = logging.getLogger(__name__)

WAITING = N_("Waiting to flash…")
FLASHED = N_("Firmware {version} on slot {slot}")

FlashUnits = Callable[["Station", Path, Sequence[str], Listener], "list[FlashResult]"]
"""The engine's entry point as the console calls it (tests pass a scripted one)."""


def flash_with_engine(station: Station, bundle: Path, serials: Sequence[str], listener: Listener) -> list[FlashResult]:
    from provisioning.flashing import flash_units

    return flash_units(station, bundle, serials, listener)


class NoUnitsChosen(NaiadError):
    message = N_("No units are chosen to flash")
    remedy = N_("Tick at least one attached unit of a model the bundle is for.")


class FlashResultMissing(NaiadError):
    message = N_("Unit {serial} ended the flash without a result")
    remedy = N_("Flash the unit again; partitions already verified are skipped.")


@dataclass(eq=False)
class FlashRun(UnitRun):
    """One press of Start: one bundle for some units, flashed together as one job."""

    bundle_path: str = ""


class FlashMonitor(UnitRuns):
    """Starts flashes on the workers and shows their outcomes (GUI thread only); logs each run's summary."""

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        stations: StationProvider,
        flash: FlashUnits = flash_with_engine,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(bench, workers, WAITING, FlashResultMissing, parent)
        self._stations = stations
        self._flash = flash

    def start(self, bundle_path: str, serials: Iterable[str]) -> FlashRun:
        """Flash ``bundle_path`` to ``serials`` off the GUI thread; refused (changing nothing) if any is busy."""
        chosen = tuple(dict.fromkeys(s for s in serials if s))
        if not chosen:
            raise NoUnitsChosen()
        run = FlashRun(self.next_number(), chosen, bundle_path=str(bundle_path))
        flash, stations = self._flash, self._stations
        self.launch(run, lambda listener: flash(stations.get(), Path(run.bundle_path), chosen, listener), "flash")
        LOG.info(
            "%s",
            _(
                "Flashing {bundle} to {count} units: {serials}",
                bundle=os.path.basename(run.bundle_path),
                count=len(run.serials),
                serials=", ".join(run.serials),
            ),
        )
        return run

    def describe(self, result: Any) -> tuple[str, dict[str, object]] | None:
        from provisioning.flashing import FlashResult

        if isinstance(result, FlashResult) and result.ok:
            return FLASHED, {"version": result.version, "slot": result.slot}
        return None

    def summarise(self, run: UnitRun) -> None:
        assert isinstance(run, FlashRun)
        bundle = os.path.basename(run.bundle_path)
        if run.error is not None:  # the bundle (or the station) failed before any unit was touched
            self.log_refused(run.error, N_("Flashing {bundle} did not start: {message}"), bundle=bundle)
            return
        ok = [s for s in run.serials if self.describe(run.results.get(s)) is not None]
        text = _(
            "Flashed {bundle}: {ok} of {total} units updated, {failed} failed",
            bundle=bundle,
            ok=len(ok),
            total=len(run.serials),
            failed=len(run.serials) - len(ok),
        )
        LOG.info("%s", text)
        for serial in run.serials:
            result = run.results.get(serial)
            if serial in ok and result is not None:
                LOG.info(
                    "%s",
                    _(
                        "{serial}: firmware {version} on slot {slot} in {seconds} s; written: {written}; "
                        "already there: {skipped}",
                        serial=serial,
                        version=result.version,
                        slot=result.slot,
                        seconds=round(result.seconds, 1),
                        written=", ".join(result.written) or NO_VALUE,
                        skipped=", ".join(result.skipped) or NO_VALUE,
                    ),
                )
            else:
                self.log_failure(run, serial)
        self.summarised.emit(text)
