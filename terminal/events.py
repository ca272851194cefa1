"""The one typed event stream of every long-running step: flashing, keys, calibration, face-pay, enrollment.

A step reports four kinds of event about one unit: it started a phase (optionally on an item such as a
partition, a key or a calibration view), some bytes or items of a total are done, a message for the person
watching, and it finished with its result.  Views implement :class:`Listener` (the CLI's rich bars, the
console's Qt signals); cores send through a :class:`Reporter`, which names the unit and the step once,
keeps progress monotonic within a phase (in the spirit of pyOCD's progress normaliser) and never lets a
failing listener break the step.  Each event delivers itself to the matching listener method, so no view
dispatches on an event's type.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .errors import NaiadError

LOG = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""``(done, total)`` of one transfer: the one low-level progress shape (``total`` <= 0: unknown)."""
ItemProgressCallback = Callable[[str, int, int], None]
"""``(item, done, total)`` of a pass over several items (a bundle's images, a slot's partitions)."""


class StepResult(Protocol):
    """What a finished step hands its listeners: success, the error if any, and a JSON form."""

    @property
    def ok(self) -> bool: ...

    @property
    def error(self) -> NaiadError | None: ...

    def as_dict(self) -> dict[str, Any]: ...


class Event(abc.ABC):
    """One event of one step on one unit."""

    unit: str
    step: str

    @abc.abstractmethod
    def deliver(self, listener: Listener) -> None:
        """Call the listener method for this kind of event."""


@dataclass(frozen=True)
class PhaseStarted(Event):
    """The step entered ``phase`` (its own vocabulary, e.g. ``write``), optionally on ``item``."""

    unit: str
    step: str
    phase: str
    label: str
    """The phase in the current language, for people."""
    item: str | None = None

    def deliver(self, listener: Listener) -> None:
        listener.phase_started(self)


@dataclass(frozen=True)
class Progressed(Event):
    """``done`` of ``total`` (bytes or items) of the current phase; ``total`` <= 0 means unknown."""

    unit: str
    step: str
    phase: str | None
    done: int
    total: int
    item: str | None = None
    counts: str = "bytes"
    """``bytes`` or ``items``."""

    def deliver(self, listener: Listener) -> None:
        listener.progressed(self)


@dataclass(frozen=True)
class Message(Event):
    """A line for the person watching, already translated (a bootloader's INFO line, a skipped item)."""

    unit: str
    step: str
    text: str
    item: str | None = None

    def deliver(self, listener: Listener) -> None:
        listener.message(self)


@dataclass(frozen=True)
class StepFinished(Event):
    """The step ended on this unit, well or not; ``result`` says which and carries the figures."""

    unit: str
    step: str
    result: StepResult

    def deliver(self, listener: Listener) -> None:
        listener.finished(self)


@dataclass(frozen=True)
class Observed(Event):
    """Something a step saw that a view may show as it happens: ``kind`` names what ``data`` holds.

    The camera's steps send ``view`` (a captured frame, its detected corners and the coverage so far), ``depth``
    (a depth frame and its figures) and ``camera`` (one camera's result with its uncertainties); the data
    classes are the step's own (``camera/``), so this module stays free of image types.
    """

    unit: str
    step: str
    kind: str
    data: Any

    def deliver(self, listener: Listener) -> None:
        listener.observed(self)


E = TypeVar("E", bound=Event)


class Listener(abc.ABC):
    """A view of the event stream.  Methods are called from the step's worker thread; they must not block."""

    @abc.abstractmethod
    def phase_started(self, event: PhaseStarted) -> None: ...

    @abc.abstractmethod
    def progressed(self, event: Progressed) -> None: ...

    @abc.abstractmethod
    def message(self, event: Message) -> None: ...

    @abc.abstractmethod
    def finished(self, event: StepFinished) -> None: ...

    def observed(self, event: Observed) -> None:  # noqa: B027 - most views show no frames: ignore by default
        """A step saw something a view may show (a frame, a figure); ignored unless the view shows such things."""


class Recorder(Listener):
    """Keeps every event in order: for tests, and for a view that replays a unit's history."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def _add(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def phase_started(self, event: PhaseStarted) -> None:
        self._add(event)

    def progressed(self, event: Progressed) -> None:
        self._add(event)

    def message(self, event: Message) -> None:
        self._add(event)

    def finished(self, event: StepFinished) -> None:
        self._add(event)

    def observed(self, event: Observed) -> None:
        self._add(event)

    def of(self, kind: type[E], unit: str | None = None) -> list[E]:
        """The recorded events of one kind (and unit)."""
        with self._lock:
            return [e for e in self.events if isinstance(e, kind) and (unit is None or e.unit == unit)]


def _deliver(event: Event, listener: Listener) -> None:
    """Hand ``event`` to ``listener``; one that raises is logged, never allowed to break the step."""
    try:
        event.deliver(listener)
    except Exception:
        LOG.exception("%s: a listener of step %s failed", event.unit, event.step)


class Fanout(Listener):
    """Several listeners as one, in order; one that raises is logged and the others still get the event."""

    def __init__(self, listeners: Iterable[Listener]) -> None:
        self.listeners = tuple(listeners)

    def _each(self, event: Event) -> None:
        for listener in self.listeners:
            _deliver(event, listener)

    def phase_started(self, event: PhaseStarted) -> None:
        self._each(event)

    def progressed(self, event: Progressed) -> None:
        self._each(event)

    def message(self, event: Message) -> None:
        self._each(event)

    def finished(self, event: StepFinished) -> None:
        self._each(event)

    def observed(self, event: Observed) -> None:
        self._each(event)


class Reporter:
    """Sends one unit's events of one step.  A listener that raises is logged, never allowed to break the step.

    Progress is normalised per phase and item: ``done`` is clamped to ``[0, total]`` and never goes back
    (a retried transfer does not make a bar jump backwards); a new phase or item starts again from zero.
    """

    def __init__(self, listener: Listener | None, unit: str, step: str) -> None:
        self.listener = listener
        self.unit = unit
        self.step = step
        self.phase_now: str | None = None
        self._item: str | None = None
        self._done = 0

    def _send(self, event: Event) -> None:
        if self.listener is not None:
            _deliver(event, self.listener)

    def phase(self, phase: str, label: str, item: str | None = None) -> None:
        self.phase_now, self._item, self._done = phase, item, 0
        self._send(PhaseStarted(self.unit, self.step, str(phase), label, item))

    def progress(self, done: int, total: int, item: str | None = None, *, counts: str = "bytes") -> None:
        if item != self._item:
            self._item, self._done = item, 0
        done = max(0, done if total <= 0 else min(done, total))
        self._done = max(self._done, done)
        phase = None if self.phase_now is None else str(self.phase_now)
        self._send(Progressed(self.unit, self.step, phase, self._done, total, item, counts))

    def item_progress(self, item: str, done: int, total: int) -> None:
        """Byte progress of ``item``: an :data:`ItemProgressCallback`."""
        self.progress(done, total, item)

    def progress_callback(self, item: str | None = None, *, counts: str = "bytes") -> ProgressCallback:
        """A ``(done, total)`` callback for a lower layer's transfer of ``item``."""

        def callback(done: int, total: int) -> None:
            self.progress(done, total, item, counts=counts)

        return callback

    def message(self, text: str, item: str | None = None) -> None:
        self._send(Message(self.unit, self.step, text, item))

    def observe(self, kind: str, data: Any) -> None:
        self._send(Observed(self.unit, self.step, kind, data))

    def finished(self, result: StepResult) -> None:
        self._send(StepFinished(self.unit, self.step, result))
