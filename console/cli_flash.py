"""``naiad flash BUNDLE (--device SERIAL ... | --all) [--json]``: flash units in parallel, a bar each.

Presentation only: :func:`provisioning.flashing.flash_units` does the work on worker threads; this
module turns its events into one rich progress bar per unit (on a terminal), its results into a
summary table or JSON, and errors into a message with its remedy.  Exit status 1 when any unit failed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from i18n import N_, _
from provisioning.flashing import (
    FlashEvent,
    FlashPhase,
    FlashResult,
    NoUnitsAttached,
    flash_units,
    phase_label,
)

from .cli_common import Command, emit_json, err, json_option, option, out, reported, table


@contextmanager
def _station(ctx: click.Context) -> Iterator[Any]:
    """The root command's station when there is one (``naiad flash``), else one of our own."""
    settings = ctx.find_root().obj
    if settings is not None and hasattr(settings, "station"):
        yield settings.station()
        return
    from .composition import Wiring

    with Wiring.resolve().station() as station:
        yield station


class _Bytes(DownloadColumn):
    """Bytes sent of the partition being written; blank while a unit is in a phase without bytes."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.fields.get("bytes") else Text("")


class _Bars:
    """One bar per unit, fed by flash events from the worker threads (rich's Progress is thread-safe)."""

    def __init__(self, progress: Progress, serials: list[str], verbose: bool) -> None:
        self.progress = progress
        self.verbose = verbose
        self._lock = threading.Lock()
        self._tasks = {
            serial: progress.add_task(self._label(serial, phase_label(FlashPhase.CHECK)), total=None, bytes=False)
            for serial in serials
        }

    @staticmethod
    def _label(serial: str, text: str) -> str:
        return f"{escape(serial)}  {escape(text)}"

    def _show(self, task: TaskID, description: str, total: float | None, completed: float, with_bytes: bool) -> None:
        self.progress.update(task, description=description, completed=completed, bytes=with_bytes)
        for shown in self.progress.tasks:
            if shown.id == task:
                shown.total = total  # None: a pulsing bar, for phases that have no byte count

    def __call__(self, event: FlashEvent) -> None:
        task = self._tasks.get(event.serial)
        if task is None:
            return
        with self._lock:
            if event.kind == "phase" and event.phase is not None:
                label = self._label(event.serial, phase_label(event.phase, event.partition))
                self._show(task, label, None, 0, False)
            elif event.kind == "progress" and event.total:
                self.progress.update(task, completed=event.done, total=event.total, bytes=True)
            elif event.kind == "message" and self.verbose and event.message:
                self.progress.console.print(f"{escape(event.serial)}: {escape(event.message)}", soft_wrap=True)
            elif event.kind == "finished" and event.result is not None:
                result = event.result
                if result.ok:
                    text = _("done: {version} in slot {slot}", version=result.version, slot=result.slot)
                    label = "[green]✓[/] " + self._label(event.serial, text)
                else:
                    label = "[red]✗[/] " + self._label(event.serial, _("failed"))
                self._show(task, label, 1, 1, False)


def _summary(results: list[FlashResult]) -> Any:
    shown = table(
        N_("Unit"),
        N_("Result"),
        N_("Version"),
        N_("Slot"),
        N_("Written"),
        N_("Skipped"),
        N_("Seconds"),
        N_("Problem"),
        title=_("Firmware flash"),
    )
    for r in results:
        problem = ""
        if r.error is not None:
            problem = str(r.error) + (f"\n{r.error.remedy_text}" if r.error.remedy_text else "")
        shown.add_row(
            r.serial,
            Text(_("succeeded"), style="green") if r.ok else Text(_("failed"), style="red"),
            r.version or "-",
            r.slot or "-",
            ", ".join(r.written) or "-",
            ", ".join(r.skipped) or "-",
            f"{r.seconds:.1f}",
            problem,
        )
    return shown


@click.command(
    "flash",
    cls=Command,
    help=N_("Flash a signed firmware BUNDLE onto units: the inactive slot, verified, then switched to."),
)
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@option("--device", "devices", multiple=True, metavar="SERIAL", help=N_("A unit to flash (repeat for several)."))
@option("--all", "all_units", is_flag=True, help=N_("Flash every attached unit."))
@option("--workers", type=click.IntRange(1, 256), help=N_("Units to flash at the same time (default: all)."))
@option("-v", "--verbose", is_flag=True, help=N_("Also print what the bootloaders say."))
@json_option
@click.pass_context
def flash(
    ctx: click.Context,
    bundle: Path,
    devices: tuple[str, ...],
    all_units: bool,
    workers: int | None,
    verbose: bool,
    as_json: bool,
) -> None:
    if devices and all_units:
        raise click.UsageError(_("Use either --device or --all, not both."))
    with reported(as_json), _station(ctx) as station:
        serials = list(devices)
        if all_units:
            serials = [d.serial for d in station.devices() if d.serial and not d.permission_denied]
            if not serials:
                raise NoUnitsAttached(serial="-", detail="")
        console: Console = err()
        show = not as_json and console.is_terminal
        columns = (TextColumn("{task.description}"), BarColumn(), _Bytes(), TimeElapsedColumn())
        if show:
            with Progress(*columns, console=console) as progress:
                results = flash_units(station, bundle, serials, _Bars(progress, serials, verbose), max_workers=workers)
        else:
            results = flash_units(station, bundle, serials, max_workers=workers)
    if as_json:
        emit_json({"bundle": str(bundle), "ok": all(r.ok for r in results), "results": [r.as_dict() for r in results]})
    else:
        out().print(_summary(results))
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(1)
