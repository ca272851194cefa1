"""Flashing from the bench: a flash is one job on the console's workers, followed on the cards.

The cards show the flash's phases and progress through the bench (as for any step); this module adds
what is particular to a flash: the units held waiting, each unit's outcome, and the run's summary in
the log.  The engine (:func:`provisioning.flashing.flash_units`) is imported on the pool thread, when
the first flash starts, so the console starts without it.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, pyqtSignal

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Listener, StepFinished

from .unit_card import NO_VALUE, Bench, error_texts
from .workers import Job, StationProvider, Workers

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
class FlashRun:
    """One press of Start: one bundle for some units, flashed together as one job."""

    number: int
    bundle_path: str
    serials: tuple[str, ...]
    results: dict[str, FlashResult] = field(default_factory=dict)
    """Each unit's result, as it finishes (and from the final list)."""
    error: BaseException | None = None
    """Set when the flash itself raised (bad bundle, no station): no unit has a result then."""
    shown: set[str] = field(default_factory=set)
    """Units whose outcome is on their card."""


class FlashMonitor(QObject):
    """Starts flashes on the workers and shows their outcomes (GUI thread only); logs each run's summary."""

    summarised = pyqtSignal(str)
    run_finished = pyqtSignal(object)

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        stations: StationProvider,
        flash: FlashUnits = flash_with_engine,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._bench = bench
        self._workers = workers
        self._stations = stations
        self._flash = flash
        self._numbers = itertools.count(1)
        self._runs: set[FlashRun] = set()

    def running(self) -> bool:
        return bool(self._runs)

    def start(self, bundle_path: str, serials: Iterable[str]) -> FlashRun:
        """Flash ``bundle_path`` to ``serials`` off the GUI thread; refused (changing nothing) if any is busy."""
        chosen = tuple(dict.fromkeys(s for s in serials if s))
        if not chosen:
            raise NoUnitsChosen()
        run = FlashRun(next(self._numbers), str(bundle_path), chosen)
        flash, stations = self._flash, self._stations
        job = Job(lambda listener: flash(stations.get(), Path(run.bundle_path), chosen, listener), chosen, "flash")
        self._bench.follow(job)
        job.step_finished.connect(lambda event: self._on_unit_finished(run, event))
        job.succeeded.connect(lambda results: self._on_run_ended(run, results, None))
        job.failed.connect(lambda error: self._on_run_ended(run, [], error))
        self._workers.start(job)
        self._runs.add(run)
        self._begin(run)
        return run

    def _begin(self, run: FlashRun) -> None:
        for serial in run.serials:
            card = self._bench.card(serial)
            if card is not None:
                card.begin_job()
                card.show_step(WAITING)
        LOG.info(
            "%s",
            _(
                "Flashing {bundle} to {count} units: {serials}",
                bundle=os.path.basename(run.bundle_path),
                count=len(run.serials),
                serials=", ".join(run.serials),
            ),
        )

    def _on_unit_finished(self, run: FlashRun, event: StepFinished) -> None:
        from provisioning.flashing import FlashResult

        if event.unit in run.serials and isinstance(event.result, FlashResult):
            run.results[event.unit] = event.result
            self._show_outcome(run, event.unit)

    def _on_run_ended(self, run: FlashRun, results: object, error: BaseException | None) -> None:
        from provisioning.flashing import FlashResult

        for result in results if isinstance(results, list) else []:
            if isinstance(result, FlashResult):
                run.results.setdefault(result.serial, result)
        run.error = error
        for serial in run.serials:
            if serial not in run.shown:
                self._show_outcome(run, serial)
        self._runs.discard(run)
        self._summarise(run)
        self.run_finished.emit(run)

    def _show_outcome(self, run: FlashRun, serial: str) -> None:
        run.shown.add(serial)
        card = self._bench.card(serial)
        if card is None:
            return
        result = run.results.get(serial)
        if result is not None and result.ok:
            card.show_result(FLASHED, version=result.version, slot=result.slot)
        else:
            error = (result.error if result is not None else None) or run.error or FlashResultMissing(serial=serial)
            card.show_error(error, sticky=True)
        card.end_job()

    def _summarise(self, run: FlashRun) -> None:
        bundle = os.path.basename(run.bundle_path)
        if run.error is not None:  # the bundle (or the station) failed before any unit was touched
            message, remedy = error_texts(run.error)
            text = _("Flashing {bundle} did not start: {message}", bundle=bundle, message=message)
            LOG.error("%s", text + (f" — {remedy}" if remedy else ""))
            self.summarised.emit(text)
            return
        ok = [s for s in run.serials if (r := run.results.get(s)) is not None and r.ok]
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
            if result is not None and result.ok:
                LOG.info(
                    "%s",
                    _(
                        "{serial}: firmware {version} on slot {slot} in {seconds} s; written: {written}; "
                        "already there: {skipped}",
                        serial=serial,
                        version=result.version,
                        slot=result.slot,
                        seconds=f"{result.seconds:.1f}",
                        written=", ".join(result.written) or NO_VALUE,
                        skipped=", ".join(result.skipped) or NO_VALUE,
                    ),
                )
            else:
                error = (result.error if result is not None else None) or FlashResultMissing(serial=serial)
                message, remedy = error_texts(error)
                LOG.error(
                    "%s", _("{serial}: {message}", serial=serial, message=message) + (f" — {remedy}" if remedy else "")
                )
        self.summarised.emit(text)
