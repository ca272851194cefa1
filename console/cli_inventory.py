"""``naiad keys inventory``: the units this line is authorised to key.  ``add SERIAL... [--from FILE]
[--reference TEXT]`` and ``remove SERIAL`` (admin), ``list [--json]`` and ``reconcile [SERIAL...] [--json]``
(any logged-in operator).

Registered under the ``keys`` group with ``keys_group.add_command(inventory_group)``.  Presentation only:
the ledger keeps the inventory and reconciles (:mod:`provisioning.ledger.inventory`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

import click

from i18n import N_, _

from .cli_common import Group, emit_json, json_option, option, out, reported, table
from .cli_root import Settings, pass_settings

if TYPE_CHECKING:
    from provisioning.ledger import Ledger, Reconciliation


@click.group("inventory", cls=Group, help=N_("The units this line is authorised to key: add, remove, list, reconcile."))
def inventory_group() -> None:
    pass


def _ledger(settings: Settings, role: str | None = None) -> Ledger:
    """The ledger, writing as the logged-in operator, once the operator (with ``role``, when given) is checked."""
    from provisioning import operators

    station, session = settings.station(), settings.session()  # in this order: the password is asked once
    if session is None:
        raise operators.NotLoggedIn()
    if role is not None:
        operators.require_role(session, role)
    return station.ledger


def _serials_in(source: TextIO) -> list[str]:
    """One serial a line; blank lines and lines starting with '#' are skipped."""
    return [line.strip() for line in source if line.strip() and not line.lstrip().startswith("#")]


@inventory_group.command("add", help=N_("Authorise units to be keyed (admin): serials, or one a line in a file."))
@click.argument("serials", nargs=-1)
@option(
    "--from",
    "source",
    type=click.File("r", encoding="utf-8"),
    help=N_("Read serials from this file, one a line ('-': standard input)."),
)
@option("--reference", help=N_("Where the units come from, such as a purchase order number."))
@pass_settings
def add(settings: Settings, serials: tuple[str, ...], source: TextIO | None, reference: str | None) -> None:
    from provisioning.operators import ROLE_ADMIN

    wanted = [*serials, *(_serials_in(source) if source is not None else [])]
    if not wanted:
        raise click.UsageError(_("Name the units: serials as arguments, or --from FILE."))
    with reported(False):
        added = _ledger(settings, ROLE_ADMIN).inventory_add(wanted, reference)
    known = len(set(wanted)) - added
    out().print(
        _("{added} units added to the authorised inventory; {known} were in it already.", added=added, known=known)
    )


@inventory_group.command("remove", help=N_("Withdraw a unit's authorisation (admin); its past injections stay."))
@click.argument("serial")
@pass_settings
def remove(settings: Settings, serial: str) -> None:
    from provisioning.operators import ROLE_ADMIN

    with reported(False):
        _ledger(settings, ROLE_ADMIN).inventory_remove(serial)
    out().print(_("The unit {serial} was removed from the authorised inventory.", serial=serial))


@inventory_group.command("list", help=N_("List the authorised units with their references."))
@json_option
@pass_settings
def list_units(settings: Settings, as_json: bool) -> None:
    with reported(as_json):
        units = _ledger(settings).inventory()
    if as_json:
        emit_json(
            {
                "inventory": [
                    {"serial": u.serial, "reference": u.reference, "added_by": u.added_by, "added": u.added.isoformat()}
                    for u in units
                ]
            }
        )
        return
    shown = table(N_("Serial"), N_("Reference"), N_("Added by"), N_("Added (UTC)"), title=_("Authorised inventory"))
    for unit in units:
        shown.add_row(unit.serial, unit.reference or "", unit.added_by or "", unit.added.strftime("%Y-%m-%d %H:%M"))
    out().print(shown)


WHOLE = {"overflow": "fold"}
"""Table columns that wrap a long ID onto the next line on a narrow terminal instead of cutting it with '…'."""


def print_reconciliation(found: Reconciliation) -> None:
    """The findings as a table, then the counts and the verdict (``naiad keys inventory reconcile`` and inject)."""
    shown = table(N_("Unit"), N_("Finding"), N_("Initial Key IDs"), title=_("Reconciliation"), column=WHOLE)
    for finding, serial, ids in found.findings():
        shown.add_row(serial, finding.text(), ", ".join(ids))
    out().print(shown)
    out().print(
        _("{authorised} authorised units, {injected} keyed.", authorised=found.authorised, injected=found.injected)
    )
    out().print(found.verdict())


@inventory_group.command(
    "reconcile",
    help=N_(
        "Check the inventory against the injections recorded: of these units (a run), or of the whole line. "
        "Exits 1 when a unit was refused, keyed twice, keyed without being in the inventory, or may hold "
        "a key the ledger never recorded (an Initial Key ID left allocated)."
    ),
)
@click.argument("serials", nargs=-1)
@json_option
@pass_settings
def reconcile(settings: Settings, serials: tuple[str, ...], as_json: bool) -> None:
    with reported(as_json):
        found = _ledger(settings).reconcile(serials or None)
    if as_json:
        emit_json(found.as_dict())
    else:
        print_reconciliation(found)
    if not found.ok:
        raise click.exceptions.Exit(1)
