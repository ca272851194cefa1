"""Everything the console does off the GUI thread: watching the USB bus, unit actions, flashing.

The GUI thread never blocks on a device.  ``DeviceWatcher`` runs ``Discovery.watch()`` in its own
QThread and re-emits each event as a Qt signal, which Qt queues to the GUI thread.  ``ActionRunner``
runs device actions (info, reboot) on a QThreadPool, one at a time per unit, and delivers the result
or the error back by signal.  ``FlashRunner`` runs ``provisioning.flashing.flash_units`` for a set of
units on a thread of its own and brings the engine's events (raised on its worker threads) back the
same way.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PyQt6.QtCore import QObject, QThread, QThreadPool, pyqtSignal, pyqtSlot

from i18n import N_
from terminal.errors import NaiadError

LOG = logging.getLogger(__name__)


class DiscoveryLike(Protocol):
    def watch(self, stop: threading.Event, interval: float = 0.25) -> Iterator[Any]: ...


DiscoveryFactory = Callable[[], DiscoveryLike]


def discovery_factory(sim_dir: str | os.PathLike[str] | None) -> DiscoveryFactory:
    """A factory for the real ``terminal.discovery.Discovery`` over ``sim_dir`` (or the real USB bus)."""

    def make() -> DiscoveryLike:
        from .composition import Wiring

        return Wiring(None if sim_dir is None else Path(sim_dir)).discovery()

    return make


class StationUnavailable(NaiadError):
    message = N_("Unit actions are unavailable: {detail}")
    remedy = N_("Reinstall Naiad; its provisioning station could not be loaded.")


class FlashingUnavailable(NaiadError):
    message = N_("Firmware flashing is unavailable: {detail}")
    remedy = N_("Reinstall Naiad; its firmware flashing could not be loaded.")


class NoUnitsChosen(NaiadError):
    message = N_("No units are chosen to flash")
    remedy = N_("Tick at least one attached unit of a model the bundle is for.")


class UnitsBusy(NaiadError):
    message = N_("Units already busy: {serials}")
    remedy = N_("Wait until their running step or flash ends, then start again.")


class ConsoleClosing(NaiadError):
    message = N_("The console is closing; no new flash starts")


class FlashResultMissing(NaiadError):
    message = N_("Unit {serial} ended the flash without a result")
    remedy = N_("Flash the unit again; partitions already verified are skipped.")


class DiscoveryWorker(QObject):
    """Runs ``watch()`` until stopped; lives in the watcher's QThread, so its signals are queued."""

    device_added = pyqtSignal(object)
    device_removed = pyqtSignal(object)
    failed = pyqtSignal(object)
    finished = pyqtSignal()

    def __init__(self, make_discovery: DiscoveryFactory, interval: float, retry_delay: float) -> None:
        super().__init__()
        self._make_discovery = make_discovery
        self._interval = interval
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._present: dict[tuple[str, str], Any] = {}

    def stop(self) -> None:
        """Ask ``run`` to return; thread-safe (the worker's own event loop is busy inside ``run``)."""
        self._stop.set()

    @pyqtSlot()
    def run(self) -> None:
        while not self._stop.is_set():
            try:
                discovery = self._make_discovery()
                for event in discovery.watch(self._stop, self._interval):
                    self._forward(event)
            except Exception as exc:  # a broken bus must not kill the watcher: report, retry
                if isinstance(exc, NaiadError):
                    LOG.warning("device discovery failed: %s", exc)
                else:
                    LOG.exception("device discovery failed")
                self._forget_all()
                self.failed.emit(exc)
                self._stop.wait(self._retry_delay)
        self.finished.emit()

    def _forward(self, event: Any) -> None:
        device = event.device
        key = (device.serial, device.mode)
        if event.kind == "added":
            self._present[key] = device
            self.device_added.emit(device)
        elif event.kind == "removed":
            self._present.pop(key, None)
            self.device_removed.emit(device)
        else:
            LOG.warning("ignoring discovery event of unknown kind %r", event.kind)

    def _forget_all(self) -> None:
        """After a failure we no longer see the bus: every unit we reported is gone until seen again."""
        for device in self._present.values():
            self.device_removed.emit(device)
        self._present.clear()


class DeviceWatcher(QObject):
    """Owns the discovery thread; its signals arrive on the thread that created it (the GUI thread)."""

    device_added = pyqtSignal(object)
    device_removed = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(
        self,
        make_discovery: DiscoveryFactory,
        interval: float = 0.25,
        retry_delay: float = 2.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._make_discovery = make_discovery
        self._interval = interval
        self._retry_delay = retry_delay
        self._thread: QThread | None = None
        self._worker: DiscoveryWorker | None = None

    @property
    def thread_handle(self) -> QThread | None:
        """The running discovery thread, or None when stopped (tests check it ends on close)."""
        return self._thread

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def start(self) -> None:
        if self._thread is not None:
            return
        thread = QThread()
        thread.setObjectName("naiad-discovery")
        worker = DiscoveryWorker(self._make_discovery, self._interval, self._retry_delay)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.finished.connect(thread.quit)
        worker.device_added.connect(self.device_added)
        worker.device_removed.connect(self.device_removed)
        worker.failed.connect(self.failed)
        self._thread, self._worker = thread, worker
        thread.start()

    def stop(self, timeout_ms: int = 5000) -> bool:
        """Stop watching and wait for the thread to end; False if it did not end within ``timeout_ms``."""
        thread, worker = self._thread, self._worker
        if thread is None or worker is None:
            return True
        worker.stop()
        thread.quit()
        ended = thread.wait(timeout_ms)
        if not ended:
            LOG.error("the discovery thread did not stop within %d ms", timeout_ms)
            return False
        worker.device_added.disconnect()
        worker.device_removed.disconnect()
        worker.failed.disconnect()
        self._thread = self._worker = None
        return True


class StationProvider:
    """Creates the provisioning ``Station`` on first use, on whichever worker thread needs it first."""

    def __init__(self, sim_dir: str | os.PathLike[str] | None, factory: Callable[[], Any] | None = None):
        self._sim_dir = sim_dir
        self._factory = factory
        self._station: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._station is None:
                self._station = self._create()
            return self._station

    def _create(self) -> Any:
        if self._factory is not None:
            return self._factory()
        from .composition import Wiring

        try:
            return Wiring(None if self._sim_dir is None else Path(self._sim_dir)).station()
        except ImportError as exc:
            raise StationUnavailable(detail=str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            station, self._station = self._station, None
        close = getattr(station, "close", None)
        if callable(close):
            close()


class _JobSignals(QObject):
    """Created on the GUI thread, emitted from a pool thread: Qt queues delivery to the GUI thread."""

    succeeded = pyqtSignal(object, object)
    failed = pyqtSignal(object, object)


@dataclass
class _Job:
    serial: str
    action: str
    call: Callable[[], Any]
    signals: _JobSignals | None = field(default=None)


class ActionRunner(QObject):
    """Runs unit actions on a thread pool: one at a time per unit, results delivered by signal.

    ``action`` is a short name the caller chooses ("info", "reboot"); it comes back with the result so
    one handler can serve several actions.
    """

    started = pyqtSignal(str, str)
    succeeded = pyqtSignal(str, str, object)
    failed = pyqtSignal(str, str, object)

    def __init__(self, max_threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        if max_threads is not None:
            self._pool.setMaxThreadCount(max_threads)
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, _Job] = {}
        self._closed = False

    def busy(self, serial: str) -> bool:
        return serial in self._running

    def submit(self, serial: str, action: str, call: Callable[[], Any]) -> None:
        """Queue ``call`` for ``serial``; it runs after every earlier action on that unit."""
        if self._closed:
            LOG.warning("not running %s on %s: the console is closing", action, serial)
            return
        self._queues.setdefault(serial, deque()).append(_Job(serial, action, call))
        if serial not in self._running:
            self._start_next(serial)

    def _start_next(self, serial: str) -> None:
        queue = self._queues.get(serial)
        if not queue:
            self._queues.pop(serial, None)
            return
        job = queue.popleft()
        job.signals = _JobSignals()
        job.signals.succeeded.connect(self._on_succeeded)
        job.signals.failed.connect(self._on_failed)
        self._running[serial] = job
        self.started.emit(serial, job.action)
        signals = job.signals

        def run() -> None:
            try:
                result = job.call()
            except Exception as exc:
                if not isinstance(exc, NaiadError):
                    LOG.exception("%s on %s failed", job.action, serial)
                signals.failed.emit(job, exc)
            else:
                signals.succeeded.emit(job, result)

        self._pool.start(run)

    @pyqtSlot(object, object)
    def _on_succeeded(self, job: _Job, result: Any) -> None:
        self._done(job, result, None)

    @pyqtSlot(object, object)
    def _on_failed(self, job: _Job, error: BaseException) -> None:
        self._done(job, None, error)

    def _done(self, job: _Job, result: Any, error: BaseException | None) -> None:
        if self._running.get(job.serial) is not job:
            return
        del self._running[job.serial]
        if self._closed:  # the window is gone: no dialog or card for a late result
            return
        if error is None:
            self.succeeded.emit(job.serial, job.action, result)
        else:
            self.failed.emit(job.serial, job.action, error)
        self._start_next(job.serial)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Drop queued actions and wait for running ones; False if some are still running."""
        self._closed = True
        self._queues.clear()
        done = self._pool.waitForDone(timeout_ms)
        if not done:
            LOG.error("unit actions still running after %d ms: %s", timeout_ms, ", ".join(self._running))
        return bool(done)


# -- flashing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlashEngine:
    """What the console needs of ``provisioning.flashing``: its entry point and the phase names (msgids)."""

    flash_units: Callable[..., list[Any]]
    phase_labels: Mapping[Any, str]


def load_flash_engine() -> FlashEngine:
    """Import the flashing engine (on first use, on the flash thread: nothing is loaded at start-up)."""
    try:
        module = importlib.import_module("provisioning.flashing")
    except ImportError as exc:
        raise FlashingUnavailable(detail=str(exc)) from exc
    return FlashEngine(module.flash_units, module.PHASE_LABELS)


@dataclass(eq=False)
class FlashRun:
    """One press of Start: one bundle for some units, flashed together by one ``flash_units`` call."""

    number: int
    bundle_path: str
    serials: tuple[str, ...]
    labels: Mapping[Any, str] = field(default_factory=dict)
    """The engine's phase msgids; filled on the flash thread before its first event."""
    results: dict[str, Any] = field(default_factory=dict)
    """``FlashResult`` by serial, as each unit finishes (and from the final list)."""
    error: BaseException | None = None
    """Set when ``flash_units`` itself raised (bad bundle, no station): no unit has a result then."""


class _FlashSignals(QObject):
    """Created on the GUI thread, emitted from flash threads: Qt queues delivery to the GUI thread."""

    flash_event = pyqtSignal(object, object)
    finished = pyqtSignal(object, object)
    failed = pyqtSignal(object, object)


class FlashRunner(QObject):
    """Flashes units off the GUI thread; its signals arrive on the GUI thread.

    ``flash_event(run, FlashEvent)`` for every engine event, ``run_finished(run)`` once ``flash_units`` has
    returned or raised.  A unit is busy from :meth:`start` until its ``finished`` event; a unit can be in
    one run at a time, and runs on other units may overlap.
    """

    flash_event = pyqtSignal(object, object)
    run_finished = pyqtSignal(object)

    def __init__(
        self,
        stations: StationProvider,
        load_engine: Callable[[], FlashEngine] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._stations = stations
        self._load_engine = load_engine or load_flash_engine
        self._numbers = itertools.count(1)
        self._busy: set[str] = set()
        self._runs: dict[FlashRun, tuple[threading.Thread, _FlashSignals]] = {}
        self._closed = False

    def busy(self, serial: str) -> bool:
        return serial in self._busy

    def running(self) -> bool:
        return bool(self._runs)

    def busy_serials(self) -> set[str]:
        return set(self._busy)

    def start(self, bundle_path: str, serials: Iterable[str]) -> FlashRun:
        """Flash ``bundle_path`` to ``serials`` on a new thread; refused (changing nothing) if any is busy."""
        if self._closed:
            raise ConsoleClosing()
        chosen = tuple(dict.fromkeys(s for s in serials if s))
        if not chosen:
            raise NoUnitsChosen()
        busy = [s for s in chosen if s in self._busy]
        if busy:
            raise UnitsBusy(serials=", ".join(busy))
        run = FlashRun(next(self._numbers), str(bundle_path), chosen)
        signals = _FlashSignals()
        signals.flash_event.connect(self._on_event)
        signals.finished.connect(self._on_finished)
        signals.failed.connect(self._on_failed)
        thread = threading.Thread(target=self._work, args=(run, signals), name=f"naiad-flash-{run.number}", daemon=True)
        self._busy.update(chosen)
        self._runs[run] = (thread, signals)
        thread.start()
        return run

    def _work(self, run: FlashRun, signals: _FlashSignals) -> None:
        """The flash thread: everything here is off the GUI thread and talks back only by signal."""

        shown: dict[str, tuple[object, int]] = {}

        def on_event(event: Any) -> None:  # called on the engine's worker threads
            if event.kind == "progress" and event.total > 0 and event.done < event.total:
                # a bar moves in thousandths: coalesce finer steps, so sixteen units cannot flood the GUI
                step = (event.partition, event.done * 1000 // event.total)
                if shown.get(event.serial) == step:
                    return
                shown[event.serial] = step
            signals.flash_event.emit(run, event)

        try:
            engine = self._load_engine()
            run.labels = dict(engine.phase_labels)
            station = self._stations.get()
            results = engine.flash_units(station, Path(run.bundle_path), list(run.serials), on_event)
        except Exception as exc:
            if not isinstance(exc, NaiadError):
                LOG.exception("flashing %s failed", ", ".join(run.serials))
            signals.failed.emit(run, exc)
        else:
            signals.finished.emit(run, list(results))

    @pyqtSlot(object, object)
    def _on_event(self, run: FlashRun, event: Any) -> None:
        if event.kind == "finished" and event.serial in run.serials:
            if event.result is not None:
                run.results[event.serial] = event.result
            self._busy.discard(event.serial)
        self.flash_event.emit(run, event)

    @pyqtSlot(object, object)
    def _on_finished(self, run: FlashRun, results: list[Any]) -> None:
        for result in results:
            run.results[result.serial] = result
        self._end(run)

    @pyqtSlot(object, object)
    def _on_failed(self, run: FlashRun, error: BaseException) -> None:
        run.error = error
        self._end(run)

    def _end(self, run: FlashRun) -> None:
        if self._runs.pop(run, None) is None:
            return
        self._busy.difference_update(run.serials)
        self.run_finished.emit(run)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Start no more runs and wait up to ``timeout_ms`` for running ones; False if some still run.

        A flash cannot be cancelled half-way; one that outlives the console leaves each unit on a slot
        that boots, and flashing again resumes it.
        """
        self._closed = True
        deadline = time.monotonic() + timeout_ms / 1000
        for thread, _signals in list(self._runs.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        still = [s for run, (thread, _x) in self._runs.items() if thread.is_alive() for s in run.serials]
        if still:
            LOG.warning("flashing still running on %s as the console closes", ", ".join(still))
        return not still
