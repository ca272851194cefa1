"""The console's one way to work off the GUI thread, and the one record of which units are busy.

Every piece of work (a unit action, a flash, reading a bundle, watching the bus; keys, calibration and
face-pay later) is a :class:`Job` started on the :class:`Workers` pool.  A job's ``work`` gets a
:class:`terminal.events.Listener` (:class:`QtListener`) for the step events it reports; those events,
and the job's result or error, come back as the job's Qt signals.  The job is a QObject created on the
GUI thread while the work emits from a pool thread, so Qt queues every delivery to the GUI thread:
slots touch widgets safely.  A job may claim units; a claimed unit is busy until its step finished
(:class:`~terminal.events.StepFinished`) or the job ended, and no other job starts on it meanwhile.  A job that
runs several steps on a unit (bind, activate, enroll) holds its units until it ends (``release_on="end"``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal, Protocol

from PyQt6.QtCore import QObject, QThreadPool, pyqtSignal, pyqtSlot

from i18n import N_
from terminal.errors import NaiadError
from terminal.events import Listener, Message, Observed, PhaseStarted, Progressed, StepFinished

if TYPE_CHECKING:
    from provisioning.station import Station
    from terminal.discovery import Device, DeviceEvent

LOG = logging.getLogger(__name__)

POOL_THREADS = 32
"""The pool's size: jobs wait on units and links, not on the CPU, and the bus watcher holds a thread for good."""


class UnitsBusy(NaiadError):
    message = N_("Units already busy: {serials}")
    remedy = N_("Wait until their running step or flash ends, then start again.")


class ConsoleClosing(NaiadError):
    message = N_("The console is closing; no new flash starts")


# -- events as Qt signals ---------------------------------------------------------------------------------


class EventSignals(QObject):
    """The step events as typed signals (see :class:`QtListener`)."""

    phase_started = pyqtSignal(PhaseStarted)
    progressed = pyqtSignal(Progressed)
    message = pyqtSignal(Message)
    step_finished = pyqtSignal(StepFinished)
    observed = pyqtSignal(Observed)


class QtListener(Listener):
    """The console's :class:`~terminal.events.Listener`: each event becomes the matching signal of ``signals``.

    Called on the step's worker threads; ``signals`` lives on the GUI thread, so delivery is queued there.
    Progress is passed on in thousandths of its total at most, so sixteen units cannot flood the GUI.
    It holds its signals rather than being a QObject: Qt's metaclass does not mix with the ABC's.
    """

    def __init__(self, signals: EventSignals) -> None:
        self.signals = signals
        self._shown: dict[str, tuple[str | None, str | None, int]] = {}
        self._lock = threading.Lock()

    def phase_started(self, event: PhaseStarted) -> None:
        with self._lock:
            self._shown.pop(event.unit, None)
        self.signals.phase_started.emit(event)

    def progressed(self, event: Progressed) -> None:
        if event.total > 0 and event.done < event.total:
            step = (event.phase, event.item, event.done * 1000 // event.total)
            with self._lock:
                if self._shown.get(event.unit) == step:
                    return
                self._shown[event.unit] = step
        self.signals.progressed.emit(event)

    def message(self, event: Message) -> None:
        self.signals.message.emit(event)

    def finished(self, event: StepFinished) -> None:
        self.signals.step_finished.emit(event)

    def observed(self, event: Observed) -> None:
        """A frame or figure a view may show (a calibration's views); the event holds the step's own arrays."""
        self.signals.observed.emit(event)


# -- jobs -------------------------------------------------------------------------------------------------


Work = Callable[[Listener], object]
"""What a job runs on a pool thread: given the listener for its step events, returns its result."""


class Job(EventSignals):
    """One piece of work off the GUI thread.  Create it (on the GUI thread), connect, then :meth:`Workers.start`.

    ``succeeded(result)`` or ``failed(error)`` comes once, after the work's step events, unless the job was
    cancelled (:meth:`cancel`) first.  Once it ran, the job holds no reference to its work (whose closure may hold a
    password or a key store's secret), and its error no frames.
    """

    succeeded = pyqtSignal(object)
    failed = pyqtSignal(object)
    _ended = pyqtSignal(object, object)  # (result, error) from the pool thread, to Workers first

    def __init__(
        self,
        work: Work,
        units: Iterable[str] = (),
        name: str = "job",
        *,
        release_on: Literal["step", "end"] = "step",
    ) -> None:
        """``release_on``: a unit is free again at its (first) finished step, or only when the job ends."""
        super().__init__()
        self.work: Work | None = work
        self.cancelled = False
        self.units = tuple(dict.fromkeys(units))
        self.name = name
        self.release_on = release_on
        self.returned = threading.Event()
        """Set once the pool thread holds no reference to the job: it may then be deleted on the GUI thread."""

    def run(self) -> None:
        """The pool thread's part: everything here talks to the GUI only by signal."""
        work = self.work
        assert work is not None, "a job runs once"
        try:
            result = work(QtListener(self))
        except Exception as exc:
            if not isinstance(exc, NaiadError):
                LOG.exception("%s failed", self.name)
            exc.__traceback__ = None  # its frames may hold the work's secrets; the error outlives the job
            self._ended.emit(None, exc)
        else:
            self._ended.emit(result, None)
        finally:
            self.work = None

    def cancel(self) -> None:
        """Whoever asked no longer wants the outcome (GUI thread): neither ``succeeded`` nor ``failed`` comes.

        The work itself runs on to its end; it cannot be stopped half-way."""
        self.cancelled = True


class Workers(QObject):
    """Runs jobs on one thread pool and keeps the one set of busy units; lives on the GUI thread."""

    busy_changed = pyqtSignal()

    def __init__(self, max_threads: int = POOL_THREADS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._busy: dict[str, Job] = {}
        self._jobs: set[Job] = set()
        self._retired: list[Job] = []  # ended; kept until their pool thread let go (a QObject dies on its thread)
        self._closed = False

    def busy(self, serial: str) -> bool:
        return serial in self._busy

    def busy_units(self) -> set[str]:
        return set(self._busy)

    def start(self, job: Job) -> Job:
        """Run ``job`` on the pool; refused (changing nothing) when closing or when one of its units is busy."""
        if self._closed:
            raise ConsoleClosing()
        busy = [unit for unit in job.units if unit in self._busy]
        if busy:
            raise UnitsBusy(serials=", ".join(busy))
        job._ended.connect(self._on_ended)
        job.step_finished.connect(self._on_step_finished)
        self._jobs.add(job)
        self._busy.update(dict.fromkeys(job.units, job))
        holder = [job]

        def run() -> None:
            running = holder.pop()
            running.run()
            returned = running.returned
            del running
            returned.set()

        self._pool.start(run)
        if job.units:
            self.busy_changed.emit()
        return job

    def run(self, work: Work, units: Iterable[str] = (), name: str = "job") -> Job:
        """Start a job whose outcome nobody needs before it starts (its step events may still be followed)."""
        return self.start(Job(work, units, name))

    @pyqtSlot(StepFinished)
    def _on_step_finished(self, event: StepFinished) -> None:
        job = self.sender()
        if isinstance(job, Job) and job.release_on == "step" and self._busy.get(event.unit) is job:
            del self._busy[event.unit]
            self.busy_changed.emit()

    @pyqtSlot(object, object)
    def _on_ended(self, result: object, error: BaseException | None) -> None:
        job = self.sender()
        if not isinstance(job, Job) or job not in self._jobs:
            return
        self._jobs.discard(job)
        self._retired = [old for old in self._retired if not old.returned.is_set()]
        self._retired.append(job)
        freed = [unit for unit, holder in self._busy.items() if holder is job]
        for unit in freed:
            del self._busy[unit]
        if self._closed or job.cancelled:  # the window, or whoever asked, is gone: nobody to show it to
            return
        if error is None:
            job.succeeded.emit(result)
        else:
            job.failed.emit(error)
        if freed:
            self.busy_changed.emit()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Start no more jobs and wait up to ``timeout_ms`` for running ones; False if some still run.

        A flash cannot be cancelled half-way; one that outlives the console leaves each unit on a slot
        that boots, and flashing again resumes it.
        """
        self._closed = True
        done = bool(self._pool.waitForDone(timeout_ms))
        if not done:
            LOG.warning("work still running as the console closes, on units: %s", ", ".join(sorted(self._busy)))
        return done


# -- the bus watcher --------------------------------------------------------------------------------------


class DiscoveryLike(Protocol):
    def watch(self, stop: threading.Event, interval: float = 0.25) -> Iterator[DeviceEvent]: ...


DiscoveryFactory = Callable[[], DiscoveryLike]


class DeviceWatcher(QObject):
    """Watches the bus as one long job on the pool; its signals arrive on the GUI thread.

    It is a job like any other (no thread of its own): it only holds one pool thread until :meth:`stop`.
    A failing bus is reported and retried; every unit it had reported is removed until seen again.
    """

    device_added = pyqtSignal(object)
    device_removed = pyqtSignal(object)
    failed = pyqtSignal(object)

    def __init__(
        self,
        workers: Workers,
        make_discovery: DiscoveryFactory,
        interval: float = 0.25,
        retry_delay: float = 2.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._workers = workers
        self._make_discovery = make_discovery
        self._interval = interval
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._ended.set()

    def is_running(self) -> bool:
        return not self._ended.is_set()

    def start(self) -> None:
        if self.is_running():
            return
        self._stop.clear()
        self._ended.clear()
        try:
            self._workers.run(lambda _listener: self._watch(), name="discovery")
        except NaiadError:
            self._ended.set()
            raise

    def stop(self, timeout_ms: int = 5000) -> bool:
        """Stop watching and wait for the job to end; False if it did not end within ``timeout_ms``."""
        self._stop.set()
        ended = self._ended.wait(timeout_ms / 1000)
        if not ended:
            LOG.error("the discovery watcher did not stop within %d ms", timeout_ms)
        return ended

    def _watch(self) -> None:
        present: dict[tuple[str, str], Device] = {}
        try:
            while not self._stop.is_set():
                try:
                    for event in self._make_discovery().watch(self._stop, self._interval):
                        self._forward(event, present)
                except Exception as exc:  # a broken bus must not kill the watcher: report, retry
                    if isinstance(exc, NaiadError):
                        LOG.warning("device discovery failed: %s", exc)
                    else:
                        LOG.exception("device discovery failed")
                    for device in present.values():  # we no longer see the bus: they are gone until seen again
                        self.device_removed.emit(device)
                    present.clear()
                    self.failed.emit(exc)
                    self._stop.wait(self._retry_delay)
        finally:
            self._ended.set()

    def _forward(self, event: DeviceEvent, present: dict[tuple[str, str], Device]) -> None:
        device = event.device
        key = (device.serial, device.mode)
        if event.kind == "added":
            present[key] = device
            self.device_added.emit(device)
        elif event.kind == "removed":
            present.pop(key, None)
            self.device_removed.emit(device)
        else:
            LOG.warning("ignoring discovery event of unknown kind %r", event.kind)


class StationProvider:
    """Creates the provisioning ``Station`` on first use, on whichever pool thread needs it first."""

    def __init__(self, make_station: Callable[[], Station]) -> None:
        self._make_station = make_station
        self._station: Station | None = None
        self._lock = threading.Lock()

    def get(self) -> Station:
        with self._lock:
            if self._station is None:
                self._station = self._make_station()
            return self._station

    def close(self) -> None:
        with self._lock:
            station, self._station = self._station, None
        if station is not None:
            station.close()
