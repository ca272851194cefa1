"""A job on many units, followed on the bench: flashing and key injection are such runs.

The cards show the step's phases and progress through the bench (as for any step).  :class:`UnitRuns` adds what
every run on many units needs: the cards held waiting while the job owns them, each unit's outcome on its card
as its step finishes (or when the job ends without one), and the failures in the log.  A subclass says what a
unit's success reads like (:meth:`UnitRuns.describe`) and writes the run's summary (:meth:`UnitRuns.summarise`).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from i18n import _
from terminal.errors import NaiadError
from terminal.events import StepFinished

from .unit_card import Bench, error_texts
from .workers import Job, Work, Workers

LOG = logging.getLogger(__name__)


@dataclass(eq=False)
class UnitRun:
    """One press of Start: some units, as one job."""

    number: int
    serials: tuple[str, ...]
    results: dict[str, Any] = field(default_factory=dict)
    """Each unit's step result, as it finishes (and from the job's final outcome)."""
    error: BaseException | None = None
    """Set when the job itself raised (refused before any unit was touched): no unit has a result then."""
    shown: set[str] = field(default_factory=set)
    """Units whose outcome is on their card."""


class UnitRuns(QObject):
    """Starts runs on the workers and shows their outcomes on the cards (GUI thread only)."""

    summarised = pyqtSignal(str)
    run_finished = pyqtSignal(object)

    def __init__(
        self, bench: Bench, workers: Workers, waiting: str, missing: type[NaiadError], parent: QObject | None = None
    ) -> None:
        """``waiting`` is the msgid a held card shows; ``missing(serial=...)`` is a unit's error without a result."""
        super().__init__(parent)
        self._bench = bench
        self._workers = workers
        self._waiting = waiting
        self._missing = missing
        self._numbers = itertools.count(1)
        self._runs: set[UnitRun] = set()

    def running(self) -> bool:
        return bool(self._runs)

    def running_units(self) -> list[str]:
        return sorted({serial for run in self._runs for serial in run.serials})

    def next_number(self) -> int:
        return next(self._numbers)

    def launch(self, run: UnitRun, work: Work, name: str) -> Job:
        """Run ``work`` as one job holding ``run``'s units; refused (changing nothing) if any is busy."""
        job = Job(work, run.serials, name)
        self._bench.follow(job)
        job.step_finished.connect(lambda event: self._on_unit_finished(run, event))
        job.succeeded.connect(lambda outcome: self._on_run_ended(run, outcome, None))
        job.failed.connect(lambda error: self._on_run_ended(run, None, error))
        self.prepare(run, job)
        self._workers.start(job)
        self._runs.add(run)
        for serial in run.serials:
            card = self._bench.card(serial)
            if card is not None:
                card.begin_job()
                card.show_step(self._waiting)
        return job

    # -- what a subclass says -----------------------------------------------------------------------------

    def prepare(self, run: UnitRun, job: Job) -> None:
        """Connect a view to ``job``'s signals before it starts, so it misses none of its events (default: none)."""

    def describe(self, result: Any) -> tuple[str, dict[str, object]] | None:
        """The msgid and parameters of a unit's success, or None when ``result`` is not one (the default)."""
        return None

    def collect(self, run: UnitRun, outcome: Any) -> None:
        """Take the units' results from the job's outcome: by default a list of results with a ``serial``."""
        for result in outcome if isinstance(outcome, list) else []:
            run.results.setdefault(str(getattr(result, "serial", "")), result)

    def summarise(self, run: UnitRun) -> None:
        """Log the run's summary once every card shows its outcome; by default each failure."""
        for serial in run.serials:
            if self.describe(run.results.get(serial)) is None:
                self.log_failure(run, serial)

    # -- the outcomes -------------------------------------------------------------------------------------

    def _on_unit_finished(self, run: UnitRun, event: StepFinished) -> None:
        if event.unit in run.serials:
            run.results[event.unit] = event.result
            self._show_outcome(run, event.unit)

    def _on_run_ended(self, run: UnitRun, outcome: Any, error: BaseException | None) -> None:
        self.collect(run, outcome)
        run.error = error
        for serial in run.serials:
            if serial not in run.shown:
                self._show_outcome(run, serial)
        self._runs.discard(run)
        self.summarise(run)
        self.run_finished.emit(run)

    def error_of(self, run: UnitRun, serial: str) -> BaseException:
        """Why ``serial`` failed: its result's error, else the run's, else that it has no result."""
        return getattr(run.results.get(serial), "error", None) or run.error or self._missing(serial=serial)

    def _show_outcome(self, run: UnitRun, serial: str) -> None:
        run.shown.add(serial)
        card = self._bench.card(serial)
        if card is None:
            return
        described = self.describe(run.results.get(serial))
        if described is not None:
            card.show_result(described[0], **described[1])
        else:
            card.show_error(self.error_of(run, serial), sticky=True)
        card.end_job()

    def log_failure(self, run: UnitRun, serial: str) -> None:
        message, remedy = error_texts(self.error_of(run, serial))
        LOG.error("%s", _("{serial}: {message}", serial=serial, message=message) + (f" — {remedy}" if remedy else ""))

    def log_refused(self, error: BaseException, msgid: str, **params: object) -> None:
        """The job was refused before any unit was touched: log ``msgid`` (with ``{message}``) and the remedy."""
        message, remedy = error_texts(error)
        text = _(msgid, message=message, **params)
        LOG.error("%s", text + (f" — {remedy}" if remedy else ""))
        self.summarised.emit(text)
