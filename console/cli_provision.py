"""``naiad provision``: run a recipe on units, a worker each, every step in the ledger; then the batch's report.

    naiad provision --recipe NAME|FILE (--device SERIAL ... | --all) [--set STEP.KEY=VALUE ...] [--workers N]
                    [--merchant ID --store ID | --merchant-qr TEXT] [--reports DIR] [--json]

A recipe that is wrong (an unknown step or setting, a wrong type, a missing file) is refused with its line and
reason before any unit is touched (exit 2), as is careless input (no units named, an unknown serial).  A bar per
unit shows the step it is in; a table sums up each unit (result, Initial Key ID, KCV, time, the failed step and
what to do).  Exit 1 when any unit failed.  Presentation only: :mod:`provisioning.recipes` and
:mod:`provisioning.pipeline` decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from i18n import N_, _
from terminal.errors import NaiadError

from .cli_common import Command, emit_json, fail, json_option, option, out, problem_text, reported
from .cli_root import Settings, pass_settings
from .platform_option import platform_options
from .station_resources import batch_folder_name, write_reports

if TYPE_CHECKING:
    from enrollment.config import Merchant
    from provisioning.pipeline import BatchRun, UnitRun
    from provisioning.recipes import Recipe
    from provisioning.station import Station
    from terminal.events import StepResult

RECIPE_ERROR_EXIT = 2
RESULTS = {
    "succeeded": (N_("succeeded"), "green"),
    "failed": (N_("failed"), "bold red"),
    "already-done": (N_("already done"), "cyan"),
    "held-elsewhere": (N_("held by another station"), "yellow"),
}


class ProvisionError(NaiadError):
    """Units named to ``naiad provision`` that it cannot work on."""


class UnitNotAttached(ProvisionError):
    message = N_("No attached unit has the serial {serial}")
    remedy = N_("Check the serial with 'naiad devices' and that the unit is plugged in; nothing was done.")


class NoUnitsAttached(ProvisionError):
    message = N_("No unit is attached")
    remedy = N_("Plug the units in and check them with 'naiad devices'; nothing was done.")


def parse_overrides(values: Sequence[str]) -> dict[str, str]:
    """``STEP.KEY=VALUE`` arguments as ``{"STEP.KEY": "VALUE"}`` (the recipe loader parses and checks them)."""
    parsed: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        step, dot, name = key.strip().partition(".")
        if not sep or not dot or not step or not name:
            raise click.BadParameter(
                _("expected STEP.SETTING=VALUE, for example calibrate.views=16; got {value}", value=value),
                param_hint="--set",
            )
        parsed[f"{step}.{name}"] = setting
    return parsed


def chosen_units(station: Station, devices: Sequence[str], all_units: bool) -> list[str]:
    """The serials to work on: every attached unit (``--all``) or those named, each attached now (the command
    checked before, with :func:`check_unit_choice`, that it was told one of the two)."""
    attached = [d.serial for d in station.discovery.devices() if d.serial]  # only looked at: nothing recorded
    if all_units:
        if not attached:
            raise NoUnitsAttached()
        return sorted(dict.fromkeys(attached))
    for serial in devices:
        if serial not in attached:
            raise UnitNotAttached(serial=serial)
    return list(dict.fromkeys(devices))


def check_unit_choice(devices: Sequence[str], all_units: bool) -> None:
    """``--device`` or ``--all``, one of the two: said before anything is read or opened."""
    if bool(devices) == all_units:
        raise click.UsageError(_("Name the units with --device SERIAL (once per unit) or give --all, one of the two."))


def load_checked_recipe(name: str, overrides: dict[str, str], as_json: bool) -> Recipe:
    """The recipe, or its error (with the line and reason) printed and exit 2, before anything is touched."""
    from provisioning.recipes import RecipeError, load_recipe

    try:
        return load_recipe(name, overrides)
    except RecipeError as exc:
        try:
            fail(exc, as_json)
        except click.exceptions.Exit:
            raise click.exceptions.Exit(RECIPE_ERROR_EXIT) from None


def unit_outcome(result: StepResult) -> str:
    """A unit's end on its bar: its result, and the step that failed."""
    data = result.as_dict()
    word = _(RESULTS.get(str(data.get("result")), (str(data.get("result")), ""))[0])
    failed = failed_step(data)
    return f"{word}: {failed}" if failed else word


def failed_step(unit: dict[str, Any]) -> str:
    """The name of the step a unit's run stopped at ("" when none failed)."""
    return next((str(s["name"]) for s in unit.get("steps", []) if not s.get("ok")), "")


def shown_kcv(kcv: str | None) -> str:
    """A KCV as the CLI shows KCVs (the first 3 bytes, 6 upper-case hex digits); "-" for none."""
    from keys.kcv import shown

    if not kcv:
        return "-"
    try:
        return shown(bytes.fromhex(kcv))
    except (ValueError, NaiadError):
        return "?"


def summary_table(units: Sequence[UnitRun], title: str) -> Any:
    """Unit, result (with the step a failed unit stopped at), Initial Key ID, KCV and time: narrow enough for 80
    columns with the serials and key IDs whole (they never wrap or shrink); the problems go below the table
    (:func:`problem_lines`)."""
    rows = unit_table(N_("Result"), title=title)
    for unit in units:
        seconds = unit.seconds or sum(s.seconds for s in unit.steps)
        rows.add_row(
            unit.serial,
            result_text(unit),
            unit.initial_key_id or "-",
            shown_kcv(unit.kcv),
            f"{seconds:.1f} s",
        )
    return rows


def unit_table(*results: str, title: str | None = None) -> Any:
    """A summary table's columns: the unit, ``results`` (msgids or recipe names), Key ID, KCV, time.  The serial,
    the key ID, the KCV and the time keep their whole width; the results wrap when the terminal is narrow."""
    from .cli_common import table

    rows = table(title=title)
    rows.add_column(_("Unit"), no_wrap=True, min_width=6)
    for heading in results:
        rows.add_column(_(heading), overflow="fold")
    rows.add_column(_("Key ID"), no_wrap=True)
    rows.add_column(_("KCV"), no_wrap=True)
    rows.add_column(_("Time"), no_wrap=True, justify="right")
    return rows


def result_text(unit: UnitRun, recipe: str | None = None) -> Text:
    """A unit's result in its colour, with the step it failed at (``recipe: `` before it when given)."""
    word, style = RESULTS.get(unit.result, (unit.result, ""))
    failed = next((s for s in unit.steps if not s.ok), None)
    text = _(word) if failed is None else _("{result} at {step}", result=_(word), step=failed.step)
    return Text(f"{recipe}: {text}" if recipe else text, style=style)


def problem_lines(units: Sequence[UnitRun], recipe: str | None = None) -> list[str]:
    """Each failed unit's problem and remedy, a paragraph each, for below a summary table (which has no room)."""
    lines = []
    for unit in units:
        failed = next((s for s in unit.steps if not s.ok), None)
        error = failed.error if failed else unit.error
        if unit.result != "failed" and error is None:
            continue
        where = unit.serial if failed is None else f"{unit.serial} · {failed.step}"
        if recipe:
            where = f"{where} ({recipe})"
        text = problem_text(error).replace("\n", " ") or _(RESULTS["failed"][0])
        lines.append(f"{where}: {text}")
    return lines


def batch_line(batch: BatchRun) -> str:
    """The batch in one line: its recipe, how many units ended how, and the time."""
    counts: dict[str, int] = {}
    for unit in batch.units:
        counts[unit.result] = counts.get(unit.result, 0) + 1
    parts = [f"{_(RESULTS.get(r, (r, ''))[0])} {n}" for r, n in sorted(counts.items())]
    return _(
        "{recipe}: units: {units}, {seconds} s: {counts}",
        recipe=batch.recipe.name,
        units=len(batch.units),
        seconds=f"{batch.seconds:.0f}",
        counts=", ".join(parts),
    )


def reconciliation_lines(batch: BatchRun) -> list[str]:
    """The batch's reconciliation with the authorised inventory for people (none for a recipe that neither keys
    nor registers units)."""
    from provisioning.pipeline import reconciliation_lines as lines

    return lines(batch)


def print_summary(batch: BatchRun, reports: Path) -> None:
    out().print(summary_table(batch.units, _("Recipe {recipe}", recipe=batch.recipe.name)))
    for line in problem_lines(batch.units):
        out().print(line, markup=False, soft_wrap=False)
    out().print(batch_line(batch), markup=False)
    for line in reconciliation_lines(batch):
        out().print(line, markup=False)
    out().print(_("Reports: {path}", path=str(reports)), markup=False)


@click.command(
    "provision",
    cls=Command,
    help=N_(
        "Run a recipe (distributor-bulk, installer-onsite, support-diagnose or a TOML file) on units, each in its "
        "own worker, every step recorded in the ledger: a unit interrupted before resumes from its last "
        "completed step, and steps that must not repeat never do. Exits 1 when a unit failed, 2 for a bad recipe."
    ),
)
@option("--recipe", "recipe_name", required=True, metavar="NAME|FILE", help=N_("A built-in recipe's name or a file."))
@option("--device", "devices", multiple=True, metavar="SERIAL", help=N_("A unit to work on (repeat for more)."))
@option("--all", "all_units", is_flag=True, help=N_("Every attached unit."))
@option(
    "--set",
    "settings_given",
    multiple=True,
    metavar="STEP.KEY=VALUE",
    help=N_("Set a step's setting (a TOML value, else text), for example flash.bundle=df2-2.0.0.zip."),
)
@option("--workers", type=click.IntRange(1, 64), help=N_("At most this many units at once (default: all)."))
@option("--merchant", "merchant_id", metavar="MERCHANT", help=N_("The merchant id units are bound to."))
@option("--store", "store_id", metavar="STORE", help=N_("The store id units are bound to."))
@option("--merchant-qr", "qr_text", metavar="TEXT", help=N_("The store's binding QR code text, instead of the ids."))
@option(
    "--reports",
    "reports_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=N_("Write the reports and labels here (default: reports/<recipe>-<UTC time> in the data directory)."),
)
@platform_options
@json_option
@pass_settings
def provision(
    settings: Settings,
    recipe_name: str,
    devices: tuple[str, ...],
    all_units: bool,
    settings_given: tuple[str, ...],
    workers: int | None,
    merchant_id: str | None,
    store_id: str | None,
    qr_text: str | None,
    reports_dir: Path | None,
    platform_config: str | None,
    keystore: str,
    as_json: bool,
) -> None:
    from .station_resources import chosen_merchant, reports_folder

    overrides = parse_overrides(settings_given)
    check_unit_choice(devices, all_units)
    with reported(as_json):
        merchant = chosen_merchant(merchant_id, store_id, qr_text)
    recipe = load_checked_recipe(recipe_name, overrides, as_json)
    with reported(as_json):
        station = settings.station()
        serials = chosen_units(station, devices, all_units)
        folder = reports_folder(batch_folder_name(recipe.name), reports_dir)
        batch = run_batch(
            settings,
            recipe,
            serials,
            folder,
            keystore=keystore,
            platform_config=platform_config,
            merchant=merchant,
            workers=workers,
            as_json=as_json,
        )
        files, report_error = write_reports(batch, station, folder, as_json)
    if as_json:
        emit_json({**batch.as_dict(), **reports_json(folder, files, report_error)})
    else:
        print_summary(batch, folder)
    if not batch.ok:  # a unit failed, or the batch does not reconcile with the inventory
        raise click.exceptions.Exit(1)


def run_batch(
    settings: Settings,
    recipe: Recipe,
    serials: list[str],
    folder: Path,
    *,
    keystore: str,
    platform_config: str | None,
    merchant: Merchant | None,
    workers: int | None,
    as_json: bool,
) -> BatchRun:
    """Open what the recipe's steps need, only that (a support engineer runs support-diagnose without the key
    store; a passphrase is asked before any bar is drawn), then run the batch with a bar each."""
    from provisioning.pipeline import run_recipe
    from provisioning.steps import needed

    from .cli_progress import recipe_bars
    from .station_resources import open_resources

    needs = needed(step.name for step in recipe.steps)
    with (
        open_resources(
            settings,
            keystore=keystore,
            platform_config=platform_config,
            merchant=merchant,
            reports_dir=folder,
            needs=needs,
        ) as resources,
        recipe_bars(as_json, recipe.name, unit_outcome) as listener,
    ):
        resources.listener = listener
        return run_recipe(recipe, serials, resources, workers=workers)


def reports_json(folder: Path, files: Sequence[Path], error: NaiadError | None) -> dict[str, Any]:
    """Where the reports are, the batch report's files, and why there are none when it could not be written."""
    return {
        "reports": str(folder),
        "report_files": [str(f) for f in files],
        "report_error": None if error is None else error.as_dict(),
    }
