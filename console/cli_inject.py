"""``naiad keys inject (--device SERIAL ... | --all) [--json]`` and ``naiad keys status SERIAL [--json]``.

Presentation only: :func:`provisioning.injection.inject_units` does the work on worker threads, its events
drive one bar per unit (:class:`console.cli_progress.RichBars`), and its results become a table of Initial Key
IDs and KCVs (or JSON) followed by the run's reconciliation with the authorised inventory.  Exit status 1 when
any unit failed.  ``status`` asks the unit's secure element and shows what the ledger recorded beside it.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from i18n import N_, _
from keys.kcv import shown
from provisioning.injection import ROLE, BdkNotRegistered, InjectionResult, InjectionRun, NoUnitsSelected, inject_units
from provisioning.operators import require_role
from terminal.events import StepResult

from .cli_common import Command, emit_json, err, json_option, option, out, reported, table
from .cli_inventory import WHOLE, print_reconciliation
from .cli_progress import CountColumn, RichBars
from .cli_root import Settings, pass_settings
from .keystore_option import keystore_options, open_key_store

# The secure element's states (the protocol's words, kept as they are in JSON); shown through _() at run time.
SE_STATES = {
    "factory": N_("factory: attestation key only"),
    "identity": N_("identity key made, not certified"),
    "certified": N_("certified, no payment key"),
    "keyed": N_("keyed"),
}


def _outcome(result: StepResult) -> str:
    if isinstance(result, InjectionResult) and result.ok and result.initial_key_id and result.kcv:
        return _("done: {ikid}, KCV {kcv}", ikid=result.initial_key_id.hex().upper(), kcv=shown(result.kcv))
    return _("failed")


def _summary(run: InjectionRun) -> Table:
    shown_table = table(
        N_("Unit"),
        N_("Result"),
        N_("Initial Key ID"),
        N_("KCV"),
        N_("Certificate"),
        N_("Seconds"),
        N_("Problem"),
        title=_("Key injection"),
        column=WHOLE,
    )
    for r in run.results:
        problem = ""
        if r.error is not None:
            problem = str(r.error) + (f"\n{r.error.remedy_text}" if r.error.remedy_text else "")
        shown_table.add_row(
            r.serial,
            Text(_("succeeded"), style="green") if r.ok else Text(_("failed"), style="red"),
            r.initial_key_id.hex().upper() if r.initial_key_id else "-",
            shown(r.kcv) if r.kcv else "-",
            r.certificate_serial or "-",
            f"{r.seconds:.1f}",
            problem,
        )
    return shown_table


def _default_bdk(settings: Settings) -> str:
    """The only BDK the ledger knows; with several, the operator must name one."""
    labels = [record.label for record in settings.station().ledger.bdks()]
    if len(labels) != 1:
        raise click.UsageError(
            _("Name the BDK with --bdk LABEL (the ledger has: {labels})", labels=", ".join(labels) or "-")
        )
    return labels[0]


@click.command(
    "inject",
    cls=Command,
    help=N_(
        "Inject a unique AES DUKPT Initial Key into units (operator role). Exits 1 when a unit failed or the run's "
        "reconciliation with the authorised inventory has findings."
    ),
)
@option("--device", "devices", multiple=True, metavar="SERIAL", help=N_("A unit to inject (repeat for several)."))
@option("--all", "all_units", is_flag=True, help=N_("Inject every attached unit in run mode."))
@option("--bdk", "bdk_label", metavar="LABEL", help=N_("The BDK to derive from (default: the only one registered)."))
@option("--workers", type=click.IntRange(1, 64), help=N_("Units to inject at the same time (default: all)."))
@keystore_options
@json_option
@pass_settings
def inject(
    settings: Settings,
    devices: tuple[str, ...],
    all_units: bool,
    bdk_label: str | None,
    workers: int | None,
    keystore: str,
    as_json: bool,
) -> None:
    if devices and all_units:
        raise click.UsageError(_("Use either --device or --all, not both."))
    with reported(as_json):
        station, session = settings.station(), settings.session()
        require_role(session, ROLE)  # before the key store asks for its passphrase or PIN
        serials = list(devices)
        if all_units:
            attached = [d for d in station.devices() if d.serial]
            serials = [d.serial for d in attached if d.mode == "run" and not d.permission_denied]
            for device in attached:
                if device.serial not in serials:
                    err().print(_("Left out {serial}: not reachable in run mode.", serial=device.serial))
        if not serials:
            raise NoUnitsSelected()
        label = bdk_label or _default_bdk(settings)
        if station.ledger.bdk(label) is None:  # before the key store asks for its passphrase or PIN
            raise BdkNotRegistered(label=label)
        roots = settings.wiring().manufacturer_roots()
        with open_key_store(keystore) as store:
            console: Console = err()
            if not as_json and console.is_terminal:
                columns = (TextColumn("{task.description}"), BarColumn(), CountColumn(), TimeElapsedColumn())
                with Progress(*columns, console=console) as progress:
                    bars = RichBars(progress, outcome=_outcome)
                    run = inject_units(station, store, session, label, roots, serials, bars, max_workers=workers)
            else:
                run = inject_units(station, store, session, label, roots, serials, max_workers=workers)
    if as_json:
        emit_json({"bdk": label, **run.as_dict()})
    else:
        out().print(_summary(run))
        print_reconciliation(run.reconciliation)
    if not (run.ok and run.reconciliation.ok):
        raise click.exceptions.Exit(1)


@click.command("status", cls=Command, help=N_("Show a unit's secure element: identity and keys with their KCVs."))
@click.argument("serial")
@json_option
@pass_settings
def status(settings: Settings, serial: str, as_json: bool) -> None:
    from terminal.secure_element import SecureElement

    with reported(as_json):
        station = settings.station()
        with station.connect(serial) as client:
            found = SecureElement(client).status()
        recorded = station.ledger.injections(serial)
    last = recorded[-1] if recorded else None
    keys: list[dict[str, Any]] = [
        {
            "name": slot.name,
            "initial_key_id": slot.initial_key_id.hex().upper(),
            "ksn": slot.ksn.hex().upper(),
            "kcv": shown(slot.kcv),
            "loaded_at": slot.loaded_at,
            "matches_ledger": last is not None and last.initial_key_id == slot.initial_key_id and last.kcv == slot.kcv,
        }
        for slot in found.keys
    ]
    answer = {
        "serial": serial,
        "state": found.state,
        "identity_serial_number": found.identity_serial_number,
        "keys": keys,
        "ledger": None
        if last is None
        else {
            "initial_key_id": last.initial_key_id.hex().upper(),
            "kcv": shown(last.kcv),
            "certificate_serial": last.certificate_serial,
            "station": last.station,
            "operator": last.operator,
            "injected": last.injected.isoformat(),
        },
    }
    if as_json:
        emit_json(answer)
        return
    state = _(SE_STATES[found.state]) if found.state in SE_STATES else found.state
    out().print(_("Secure element of {serial}: {state}", serial=serial, state=state))
    if found.identity_serial_number:
        out().print(_("Identity certificate serial: {number}", number=found.identity_serial_number))
    shown_table = table(
        N_("Key"), N_("Initial Key ID"), N_("KSN"), N_("KCV"), N_("In the ledger"), title=_("Keys"), column=WHOLE
    )
    for key in keys:
        shown_table.add_row(
            key["name"], key["initial_key_id"], key["ksn"], key["kcv"], _("yes") if key["matches_ledger"] else _("no")
        )
    out().print(shown_table)
