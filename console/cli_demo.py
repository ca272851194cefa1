"""``naiad demo [--units N] [--json] [--keep]``: the whole station on simulated units, from a fresh machine.

It starts N simulated terminals, the sandbox merchant platform and a software key store holding a demo BDK
loaded under dual control by demo custodians (:class:`console.demo_world.DemoWorld`), runs ``distributor-bulk``
then ``installer-onsite`` on every unit with a bar each, shows a table per recipe and where the reports are,
then stops everything.  No display is needed.  ``--json`` prints only the JSON on standard output (progress is
off); exit 1 when a unit failed.  Without ``--keep`` only the reports stay of the demo's directory.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from i18n import N_, _
from terminal.errors import NaiadError

from .cli_common import Command, emit_json, err, fail, json_option, option, out, problem_text

if TYPE_CHECKING:
    from terminal.events import Listener

    from .demo import DemoRun
    from .demo_world import DemoWorld

LOG_FILE = "demo.log"
KEPT = ("reports", LOG_FILE)
"""What stays of the demo's directory without --keep."""


@contextmanager
def logged_to(path: Path) -> Iterator[None]:
    """The demo's log records (its steps' warnings, a worker's complaint while Ctrl-C tears the world down) go to
    ``path``, not between the bars and tables on the terminal."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the block runs, so the world is cleaned up as on Ctrl-C."""

    def on_term(number: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(as_json: bool, text: str) -> None:
    if not as_json:
        err().print(text, markup=False, soft_wrap=True)


def tidy(root: Path, keep: bool) -> None:
    """Remove what the demo made under ``root`` but its reports (everything stays with ``keep``)."""
    if keep:
        return
    for entry in root.iterdir():
        if entry.name not in KEPT:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@click.command(
    "demo",
    cls=Command,
    help=N_(
        "Show the station end to end on simulated units: the sandbox platform, a demo key ceremony, "
        "distributor-bulk then installer-onsite on every unit, a summary and the reports. Needs no display."
    ),
)
@option("--units", type=click.IntRange(1, 16), default=4, show_default=True, help=N_("How many simulated units."))
@option(
    "--keep",
    is_flag=True,
    help=N_("Keep the demo's whole directory (ledger, key store, simulator state), not only the reports."),
)
@option(
    "--calibration-views",
    "views",
    type=click.IntRange(12, 40),
    help=N_("Calibrate each unit from this many views instead of the jig's 40: a quicker, rougher demo."),
)
@json_option
def demo(units: int, keep: bool, views: int | None, as_json: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="naiad-demo-"))
    try:
        with terminate_as_interrupt(), logged_to(root / LOG_FILE):
            run = run_world(root, units, as_json, calibration_views=views)
    except KeyboardInterrupt:
        _say(as_json, _("Stopped; the simulator and the sandbox platform are stopped too."))
        raise click.exceptions.Exit(130) from None
    except NaiadError as exc:
        fail(exc, as_json)
    finally:
        tidy(root, keep)
    if as_json:
        emit_json(run)
    else:
        out().print(_("Reports: {path}", path=str(root / "reports")), markup=False)
        if keep:
            serial = next((u["serial"] for u in run["units"]), "SERIAL")
            for line in kept_lines(root, serial):
                out().print(line, markup=False)
    if not run["ok"]:
        raise click.exceptions.Exit(1)


def kept_lines(root: Path, serial: str) -> list[str]:
    """What ``--keep`` kept and what of it can be used: the ledger can be read; the key store and the operators'
    accounts cannot be opened again (their passphrase and passwords were random, in memory only, never written)."""
    return [
        _("The demo's ledger and simulator state are kept in {path}", path=str(root)),
        _(
            "Its key store and operator accounts are kept too but cannot be opened again: their passphrase and "
            "passwords were random and were never written down."
        ),
        _("A unit's history: {command}", command=f"NAIAD_DATA_DIR={root / 'data'} naiad history {serial}"),
    ]


def run_world(root: Path, units: int, as_json: bool, *, calibration_views: int | None = None) -> dict[str, Any]:
    """Set the world up in ``root``, run the demo's recipes with a bar each and a table after each, write the
    reports, stop the world; the JSON form of the run."""
    from .cli_progress import recipe_bars
    from .cli_provision import batch_line, reconciliation_lines, unit_outcome
    from .demo import DemoRun, run_demo, write_reports
    from .demo_world import DemoWorld

    @contextmanager
    def bars(recipe: str) -> Iterator[Listener | None]:
        _say(as_json, _("Running {recipe}; units: {units}", recipe=recipe, units=units))
        with recipe_bars(as_json, recipe, unit_outcome) as listener:
            yield listener

    _say(as_json, _("Starting the simulated units ({units}), the sandbox platform and a demo key store", units=units))
    with DemoWorld(root, units, calibration_views=calibration_views) as world:
        _introduce(world, as_json)
        run = DemoRun(world)
        for recipe, batch in run_demo(world, bars):
            run.batches.append(batch)
            try:
                run.reports[recipe] = write_reports(world, recipe, batch)
            except NaiadError as exc:
                run.report_errors[recipe] = exc
                _say(as_json, _("The batch report could not be written: {problem}", problem=problem_text(exc)))
            _say(as_json, batch_line(batch))
            for line in reconciliation_lines(batch):
                _say(as_json, line)
        if not as_json:
            out().print(demo_table(run))
            for line in demo_problems(run):
                out().print(line, markup=False)
        result = run.as_dict()
    _say(as_json, _("The simulator and the sandbox platform are stopped."))
    return result


def demo_table(run: DemoRun) -> Any:
    """One row a unit: each recipe's result (a line each), the Initial Key ID and KCV, the time; narrow enough for
    80 columns (the problems go below it: :func:`demo_problems`)."""
    from rich.text import Text

    from .cli_provision import result_text, shown_kcv, unit_table

    rows = unit_table(N_("Results"), title=_("Summary"))
    for serial in run.world.serials:
        ran = [u for b in run.batches for u in b.units if u.serial == serial]
        results = Text("\n").join(result_text(u, u.recipe) for u in ran) if ran else Text("-")
        key_id = next((u.initial_key_id for u in ran if u.initial_key_id), None)
        kcv = next((u.kcv for u in ran if u.kcv), None)
        rows.add_row(serial, results, key_id or "-", shown_kcv(kcv), f"{sum(u.seconds for u in ran):.1f} s")
    return rows


def demo_problems(run: DemoRun) -> list[str]:
    """Each failed unit's problem and remedy, recipe by recipe."""
    from .cli_provision import problem_lines

    return [line for b in run.batches for line in problem_lines(b.units, b.recipe.name)]


def _introduce(world: DemoWorld, as_json: bool) -> None:
    """What the world holds, for people: units, the demo BDK's KCV (never the key), the bundles."""
    from keys.kcv import shown

    from .demo_world import BDK_LABEL, FIRMWARE_VERSION, UPDATE_VERSION

    _say(as_json, _("Units: {serials}", serials=", ".join(world.serials)))
    if world.bdk_kcv is not None:
        _say(
            as_json,
            _(
                "Demo BDK {label} loaded under dual control by two demo custodians; its KCV is {kcv}.",
                label=BDK_LABEL,
                kcv=shown(world.bdk_kcv),
            ),
        )
    _say(
        as_json,
        _(
            "Firmware {version} for the bulk run and {update} for the on-site update, signed with a demo release key.",
            version=FIRMWARE_VERSION,
            update=UPDATE_VERSION,
        ),
    )
    _say(as_json, _("Sandbox platform at {url}", url=world.sandbox.url))
