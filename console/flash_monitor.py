"""Following a flash on the bench: engine events become card phases, progress bars and outcomes."""

from __future__ import annotations

import logging
import os
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot

from i18n import N_, _

from .bench import NO_VALUE, Bench, error_texts
from .workers import FlashResultMissing, FlashRun, FlashRunner

LOG = logging.getLogger(__name__)

WAITING = N_("Waiting to flash…")
PHASE_FALLBACK = N_("Flashing: {phase}")
FLASHED = N_("Firmware {version} on slot {slot}")


class FlashMonitor(QObject):
    """Shows a flash runner's events on the bench cards (GUI thread only) and logs each run's summary."""

    summarised = pyqtSignal(str)

    def __init__(self, bench: Bench, runner: FlashRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bench = bench
        self._finished: dict[FlashRun, set[str]] = {}
        runner.flash_event.connect(self._on_event)
        runner.run_finished.connect(self._on_run_finished)

    def begin(self, run: FlashRun) -> None:
        """A run was started: hold its units' cards and show them waiting."""
        self._finished[run] = set()
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

    @pyqtSlot(object, object)
    def _on_event(self, run: FlashRun, event: Any) -> None:
        card = self._bench.card(event.serial)
        if event.kind == "phase":
            if card is not None:
                msgid = run.labels.get(event.phase) or PHASE_FALLBACK
                # a label may name {partition} although the event has none: fill in nothing, as the engine does
                card.show_step(msgid, partition=event.partition or "", phase=str(event.phase))
        elif event.kind == "progress":
            if card is not None:
                card.show_progress(int(event.done or 0), int(event.total or 0))
        elif event.kind == "message":  # already translated by the engine
            LOG.info("%s", _("Unit {serial}: {message}", serial=event.serial, message=event.message))
        elif event.kind == "finished":
            self._finished.setdefault(run, set()).add(event.serial)
            self._show_outcome(event.serial, event.result, None)
        else:
            LOG.debug("ignoring flash event of kind %r", event.kind)

    @pyqtSlot(object)
    def _on_run_finished(self, run: FlashRun) -> None:
        done = self._finished.pop(run, set())
        for serial in run.serials:
            if serial not in done:
                self._show_outcome(serial, run.results.get(serial), run.error)
        self._summarise(run)

    def _show_outcome(self, serial: str, result: Any, run_error: BaseException | None) -> None:
        card = self._bench.card(serial)
        if card is None:
            return
        if result is not None and result.ok:
            card.show_result(FLASHED, version=result.version, slot=result.slot)
        else:
            error = (result.error if result is not None else None) or run_error or FlashResultMissing(serial=serial)
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
        ok = [s for s in run.serials if getattr(run.results.get(s), "ok", False)]
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
