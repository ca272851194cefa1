"""Everything the console does off the GUI thread: watching the USB bus and running unit actions.

The GUI thread never blocks on a device.  ``DeviceWatcher`` runs ``Discovery.watch()`` in its own
QThread and re-emits each event as a Qt signal, which Qt queues to the GUI thread.  ``ActionRunner``
runs device actions (info, reboot, later flashing) on a QThreadPool, one at a time per unit, and
delivers the result or the error back by signal.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from PyQt6.QtCore import QObject, QThread, QThreadPool, pyqtSignal, pyqtSlot

from i18n import N_
from terminal.errors import NaiadError

LOG = logging.getLogger(__name__)


class DeviceLike(Protocol):
    """The fields of ``terminal.discovery.Device`` the console reads."""

    serial: str
    mode: str


class DiscoveryLike(Protocol):
    def watch(self, stop: threading.Event, interval: float = 0.25) -> Iterator[Any]: ...


DiscoveryFactory = Callable[[], DiscoveryLike]


def discovery_factory(sim_dir: str | os.PathLike[str] | None) -> DiscoveryFactory:
    """A factory for the real ``terminal.discovery.Discovery`` over ``sim_dir`` (or the real USB bus)."""

    def make() -> DiscoveryLike:
        from terminal.discovery import Discovery

        return Discovery(sim_dir)

    return make


class StationUnavailable(NaiadError):
    message = N_("Unit actions are unavailable: {detail}")
    remedy = N_("Reinstall Naiad; its provisioning station could not be loaded.")


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
        try:
            from provisioning.station import Station
        except ImportError as exc:
            raise StationUnavailable(detail=str(exc)) from exc
        return Station(sim_dir=None if self._sim_dir is None else str(self._sim_dir))

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
        if error is None:
            self.succeeded.emit(job.serial, job.action, result)
        else:
            self.failed.emit(job.serial, job.action, error)
        if not self._closed:
            self._start_next(job.serial)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Drop queued actions and wait for running ones; False if some are still running."""
        self._closed = True
        self._queues.clear()
        done = self._pool.waitForDone(timeout_ms)
        if not done:
            LOG.error("unit actions still running after %d ms: %s", timeout_ms, ", ".join(self._running))
        return bool(done)
