"""``naiad flash BUNDLE (--device SERIAL ... | --all) [--json]``: flash units in parallel, a bar each.

Presentation only: :func:`provisioning.flashing.flash_units` does the work on worker threads; its
events go to the CLI's listener (:class:`console.cli_progress.RichBars`, one bar per unit, on a
terminal), its results into a summary table or JSON, and errors into a message with its remedy.
Exit status 1 when any unit failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from i18n import N_, _
from provisioning.flashing import FlashResult, NoUnitsAttached, flash_units
from terminal.events import StepResult

from .cli_common import Command, emit_json, err, json_option, option, out, reported, table
from .cli_progress import CountColumn, RichBars

if TYPE_CHECKING:
    from provisioning.station import Station


@contextmanager
def _station(ctx: click.Context) -> Iterator[Station]:
    """The root command's station when there is one (``naiad flash``), else one of our own."""
    settings = ctx.find_root().obj
    if settings is not None and hasattr(settings, "station"):
        yield settings.station()
        return
    from .composition import Wiring

    with Wiring.resolve().station() as station:
        yield station


def _outcome(result: StepResult) -> str:
    """A unit's bar once its flash ended."""
    if isinstance(result, FlashResult) and result.ok:
        return _("done: {version} in slot {slot}", version=result.version, slot=result.slot)
    return _("failed")


def _summary(results: list[FlashResult]) -> Table:
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
        columns = (TextColumn("{task.description}"), BarColumn(), CountColumn(), TimeElapsedColumn())
        if show:
            with Progress(*columns, console=console) as progress:
                bars = RichBars(progress, verbose=verbose, outcome=_outcome)
                results = flash_units(station, bundle, serials, bars, max_workers=workers)
        else:
            results = flash_units(station, bundle, serials, max_workers=workers)
    if as_json:
        emit_json({"bundle": str(bundle), "ok": all(r.ok for r in results), "results": [r.as_dict() for r in results]})
    else:
        out().print(_summary(results))
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(1)
