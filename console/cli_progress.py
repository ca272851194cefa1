"""The command line's view of the event stream: one rich progress bar per unit, for any step.

:class:`RichBars` is the CLI's :class:`terminal.events.Listener` (the console's is
``console.workers.QtListener``): a unit's bar shows the label of the phase it is in, pulses while the
phase has no count and fills with bytes or items when it has one.  It knows nothing of flashing, keys
or cameras; a command passes how to word a finished step's result if it has more to say than "done".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Column
from rich.text import Text

from i18n import _
from terminal.events import (
    Listener,
    Message,
    PhaseStarted,
    ProgressCallback,
    Progressed,
    Reporter,
    StepFinished,
    StepResult,
)

from .cli_common import err

Outcome = Callable[[StepResult], str]
"""Words for a finished step's result on its bar (translated)."""


def plain_outcome(result: StepResult) -> str:
    return _("done") if result.ok else _("failed")


class CountColumn(DownloadColumn):
    """Bytes (or items) done of the total; blank while a unit is in a phase that counts nothing."""

    def render(self, task: Task) -> Text:
        counts = task.fields.get("counts")
        if counts is None:
            return Text("")
        if counts == "items":
            total = "?" if task.total is None else str(int(task.total))
            return Text(f"{int(task.completed)}/{total}", style="progress.download")
        return super().render(task)


class RichBars(Listener):
    """One bar per unit on ``progress``, fed from the steps' worker threads (rich's Progress is thread-safe).

    A unit's bar appears with its first event.  ``verbose`` also prints the steps' messages above the bars.
    """

    def __init__(self, progress: Progress, *, verbose: bool = False, outcome: Outcome = plain_outcome) -> None:
        self.progress = progress
        self.verbose = verbose
        self.outcome = outcome
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}

    @staticmethod
    def _describe(unit: str, text: str) -> str:
        return f"{escape(unit)}  {escape(text)}" if unit else escape(text)

    def _task(self, unit: str) -> TaskID:
        task = self._tasks.get(unit)
        if task is None:
            task = self._tasks[unit] = self.progress.add_task(self._describe(unit, ""), total=None, counts=None)
        return task

    def _show(self, unit: str, description: str, total: float | None, completed: float) -> None:
        task = self._task(unit)
        self.progress.update(task, description=description, completed=completed, counts=None)
        for shown in self.progress.tasks:
            if shown.id == task:
                shown.total = total  # None: a pulsing bar (rich's update() cannot set it back to None)

    def phase_started(self, event: PhaseStarted) -> None:
        with self._lock:
            self._show(event.unit, self._describe(event.unit, event.label), None, 0)

    def progressed(self, event: Progressed) -> None:
        with self._lock:
            task = self._task(event.unit)
            total = event.total if event.total > 0 else None
            self.progress.update(task, completed=event.done, total=total, counts=event.counts)

    def message(self, event: Message) -> None:
        if self.verbose:
            text = f"{event.unit}: {event.text}" if event.unit else event.text
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def finished(self, event: StepFinished) -> None:
        mark = "[green]✓[/] " if event.result.ok else "[red]✗[/] "
        with self._lock:
            self._show(event.unit, mark + self._describe(event.unit, self.outcome(event.result)), 1, 1)


class RecipeBars(RichBars):
    """One bar per unit for a run of ``recipe``: it fills step by step (the pipeline's own events, whose step is
    the recipe's name) and names the step the unit is in, with the phase of that step's own work beside it (the
    domain's events: writing ``system``, view 12 of 16...).  Only the pipeline's end of a unit marks its bar."""

    def __init__(self, progress: Progress, recipe: str, *, verbose: bool = False, outcome: Outcome = plain_outcome):
        super().__init__(progress, verbose=verbose, outcome=outcome)
        self.recipe = recipe
        self._current: dict[str, str] = {}

    def phase_started(self, event: PhaseStarted) -> None:
        with self._lock:
            task = self._task(event.unit)
            if event.step == self.recipe:
                self._current[event.unit] = event.label
                text = event.label
            else:
                step = self._current.get(event.unit)
                text = f"{step} · {event.label}" if step else event.label
            self.progress.update(task, description=self._describe(event.unit, text))

    def progressed(self, event: Progressed) -> None:
        if event.step != self.recipe:
            return  # bytes of a step's own work: the unit's bar counts steps
        with self._lock:
            total = event.total if event.total > 0 else None
            self.progress.update(self._task(event.unit), completed=event.done, total=total, counts="items")

    def finished(self, event: StepFinished) -> None:
        if event.step != self.recipe:
            return  # one step's own work ended; the unit's run goes on
        mark = "[green]✓[/] " if event.result.ok else "[red]✗[/] "
        with self._lock:
            task = self._task(event.unit)
            shown = next((t for t in self.progress.tasks if t.id == task), None)
            total = 1.0 if shown is None or not shown.total else shown.total
            # a unit that failed at step 2 of 6 shows 2/6, not a full bar
            done = total if event.result.ok else (0.0 if shown is None else shown.completed)
            description = mark + self._describe(event.unit, self.outcome(event.result))
            self.progress.update(task, description=description, completed=done, total=total)


def bar_columns(width: int) -> tuple[ProgressColumn, ...]:
    """A unit's bar in a terminal ``width`` columns wide: the description (serial, step, phase) is cut with an
    ellipsis so the bar, the count and the elapsed time always stay on the line."""
    bar = max(10, min(40, width // 5))
    description = max(16, width - bar - 30)  # count (up to ~16), elapsed (7), the gaps between columns
    return (
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=description)),
        BarColumn(bar_width=bar),
        CountColumn(),
        TimeElapsedColumn(),
    )


@contextmanager
def _bars(as_json: bool, make: Callable[[Progress], RichBars]) -> Iterator[Listener | None]:
    """Bars on stderr when it is a terminal and no JSON is asked for (``make`` makes the listener); else none."""
    console = err()
    if as_json or not console.is_terminal:
        yield None
        return
    with Progress(*bar_columns(console.width), console=console) as progress:
        yield make(progress)


def recipe_bars(
    as_json: bool, recipe: str, outcome: Outcome = plain_outcome
) -> AbstractContextManager[Listener | None]:
    """One bar per unit for a run of ``recipe`` on stderr when it is a terminal and no JSON is asked for."""
    return _bars(as_json, lambda progress: RecipeBars(progress, recipe, outcome=outcome))


def unit_bars(
    as_json: bool, outcome: Outcome = plain_outcome, *, verbose: bool = False
) -> AbstractContextManager[Listener | None]:
    """One bar per unit on stderr when it is a terminal and no JSON is asked for; else no listener."""
    return _bars(as_json, lambda progress: RichBars(progress, verbose=verbose, outcome=outcome))


@contextmanager
def transfer_bar(console: Console, label: str) -> Iterator[ProgressCallback]:
    """A transient byte bar with speed on ``console``; yields the transfer's ``(done, total)`` callback."""
    columns = (TextColumn("{task.description}"), BarColumn(), CountColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        reporter = Reporter(RichBars(progress), "", "transfer")
        reporter.phase("transfer", label)
        yield reporter.progress_callback()
