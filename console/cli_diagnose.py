"""``naiad diagnose SERIAL`` and ``naiad history SERIAL``: what is wrong with a returned unit, and what was done to it.

``naiad diagnose SERIAL [--report PATH] [--json]`` runs the read-only ``support-diagnose`` recipe on that one unit
through the station's pipeline (so the run is in the ledger), prints each check and the verdict with its action in
plain words, and with ``--report`` writes the unit's report (format from the suffix).  Exit status 1 when the
verdict asks for an action or a check could not run.  ``naiad history SERIAL [--json]`` prints the ledger's
timeline of the unit.  Presentation only: the steps are ``provisioning.diagnose_steps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from i18n import N_, _

from .cli_common import Command, emit_json, json_option, option, out, reported, table
from .cli_root import Settings, pass_settings

if TYPE_CHECKING:
    from provisioning.steps import StepOutcome

RECIPE = "support-diagnose"


def _check_rows(steps: list[StepOutcome]) -> Any:
    from rich.text import Text

    shown = table(N_("Check"), N_("Result"), N_("Seconds"), N_("What it found"), title=_("Diagnosis"))
    for step in steps:
        if step.step == "verdict":
            continue
        findings = [line for line in step.data.get("findings") or [] if line != step.detail]  # each said once
        found = "\n".join([step.detail, *(f"- {line}" for line in findings)]).strip()
        result = Text(_("ok") if step.ok and not findings else (_("finding") if step.ok else _("failed")))
        result.stylize("green" if step.ok and not findings else ("yellow" if step.ok else "red"))
        shown.add_row(step.step, result, f"{step.seconds:.1f}", Text(found))
    return shown


@click.command(
    "diagnose",
    cls=Command,
    help=N_(
        "Diagnose a returned unit without changing it: run the support-diagnose checks, then say what is wrong "
        "and what to do (re-flash, re-calibrate, re-inject, replace the cable, RMA). Exits 1 when it needs an action."
    ),
)
@click.argument("serial")
@option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PATH",
    help=N_("Also write the unit's report to PATH (.html, .pdf, .json or .csv)."),
)
@option("--set", "overrides", multiple=True, metavar="STEP.SETTING=VALUE", help=N_("Change a step's setting."))
@json_option
@pass_settings
def diagnose(
    settings: Settings, serial: str, report_path: Path | None, overrides: tuple[str, ...], as_json: bool
) -> None:
    from provisioning.pipeline import run_recipe
    from provisioning.recipes import load_recipe
    from provisioning.steps import Resources

    from .cli_progress import recipe_bars

    with reported(as_json):
        recipe = load_recipe(RECIPE, dict(_override(text) for text in overrides))
        station, session = settings.station(), settings.session()
        station.find(serial)  # not attached (or mistyped): said at once, not after the pipeline's replug wait
        resources = Resources(station=station, session=session, jig=settings.wiring().jig())
        with recipe_bars(as_json, recipe.name) as listener:
            resources.listener = listener
            batch = run_recipe(recipe, [serial], resources, workers=1)
        [run] = batch.units
        written = None
        if report_path is not None:
            from provisioning.reports import write_report

            written = write_report(station.ledger, serial, report_path)
    verdict = next((s for s in run.steps if s.step == "verdict"), None)
    data = verdict.data if verdict is not None else {}
    needs_action = not run.ok or data.get("action", "none") != "none"
    if as_json:
        emit_json({**run.as_dict(), "verdict": data or None, "report": None if written is None else str(written)})
        if needs_action:
            raise click.exceptions.Exit(1)
        return
    out().print(_check_rows(run.steps))
    if verdict is None:
        error = run.error
        out().print(_("No verdict: {problem}", problem=str(error) if error else run.result), markup=False)
    else:
        out().print(_("Verdict: {verdict}", verdict=data["verdict_text"]), markup=False)
        out().print(_("What to do: {action}", action=data["action_text"]), markup=False)
        for reason in data.get("reasons", []):
            out().print(f"  - {reason}", markup=False)
    if written is not None:
        out().print(_("Report written to {path}", path=str(written)), markup=False)
    if needs_action:
        raise click.exceptions.Exit(1)


def _override(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or "." not in name:
        raise click.BadParameter(_("expected STEP.SETTING=VALUE, got {text}", text=text), param_hint="--set")
    return name, value


HISTORY_HEADINGS = (N_("When"), N_("Kind"), N_("What"), N_("Status"), N_("Station"), N_("Operator"))


@click.command(
    "history",
    cls=Command,
    help=N_("Show what the ledger knows of a unit: its runs and steps, operations, keys, calibrations and checks."),
)
@click.argument("serial")
@json_option
@pass_settings
def history(settings: Settings, serial: str, as_json: bool) -> None:
    from provisioning.history import UnknownUnitHistory, china_time, unit_history

    with reported(as_json):
        found = unit_history(settings.station().ledger, serial)
        if not found.known:
            raise UnknownUnitHistory(serial=serial)
    if as_json:
        emit_json(found.as_dict())
        return
    shown = table(*HISTORY_HEADINGS, title=_("History of {serial}", serial=serial))
    for event in found.timeline(brief=True):
        when = china_time(event.at) or "-"  # as the reports: China time with its offset
        shown.add_row(
            when,
            _(event.kind),
            event.what,
            _(event.status) if event.status else "",
            event.station or "",
            event.operator or "",
        )
    out().print(shown)
