"""``naiad register`` and ``naiad subsidy``: units onto the merchant platform, and what they earn there.

- ``naiad register inventory (--device SERIAL ... | --all) [--json]``: the distributor registers units (their
  models from the ledger or from discovery) in its inventory;
- ``naiad register bind SERIAL (--merchant M --store S | --qr TEXT) [--program P] [--json]``: the installer binds
  the unit to a store, activates it and enrols it in the subsidy program;
- ``naiad register resume [--json]``: sends the outbox's calls that an outage or a crash left unanswered;
- ``naiad register abandon REQUEST_NO [--json]``: drops a pending call (checked on the platform as not wanted);
- ``naiad subsidy status (SERIAL | --merchant M) [--json]``: months, users and earnings, caps and months left.

Presentation only: :mod:`provisioning.registration` does the work, its events drive one bar per unit, and every
call goes through the ledger's outbox (:func:`console.platform_option.open_outbox`).  Careless input (both or
neither of --merchant and --qr, a bad QR text or id, a serial the station does not know) is refused before the
key store opens and before anything is sent, and so is an operator without the flow's role (``--operator`` or
NAIAD_OPERATOR; ``provisioning.registration.ROLES_*``).  Exit status 1 when a step failed.  JSON:
docs/registration.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from enrollment.config import ID, Merchant, resolve
from enrollment.merchant_qr import parse_merchant_qr
from i18n import N_, _
from provisioning.operators import require_role
from provisioning.registration import (
    FAILED,
    ROLES_BIND,
    ROLES_INVENTORY,
    ROLES_OUTBOX,
    ROLES_SUBSIDY,
    STEP_ACTIVATE,
    STEP_BIND,
    STEP_INVENTORY,
    STEP_SUBSIDY,
    EnrollmentStepResult,
    UnitSubsidy,
    UnitToRegister,
    abandon_call,
    bring_live,
    register_inventory,
    resume_calls,
    subsidy_status,
)
from terminal.discovery import UsbAccessDenied
from terminal.errors import DeviceNotFound, NaiadError

from .cli_common import Command, Group, emit_json, json_option, option, out, problem_text, reported, table
from .cli_progress import plain_outcome, unit_bars
from .cli_root import Settings, pass_settings
from .keystore_option import open_key_store
from .platform_option import open_outbox, platform_options

if TYPE_CHECKING:
    from provisioning.operators import OperatorSession
    from provisioning.station import Station
    from terminal.discovery import Device
    from terminal.events import StepResult

STEP_NAMES = {
    STEP_INVENTORY: N_("inventory"),
    STEP_BIND: N_("bind to the store"),
    STEP_ACTIVATE: N_("activate"),
    STEP_SUBSIDY: N_("enrol in the subsidy"),
}
BRING_LIVE = (STEP_BIND, STEP_ACTIVATE, STEP_SUBSIDY)


class UnitUnknown(NaiadError):
    message = N_("This station does not know unit {serial}")
    remedy = N_("Connect the unit (see 'naiad devices') or check the serial on its label.")


class IdInvalid(NaiadError):
    message = N_("{what} '{value}' is not a valid id")
    remedy = N_("Ids are 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    msgid_params = ("what",)


class NoUnitsToRegister(NaiadError):
    message = N_("No unit to register")
    remedy = N_("Name units with --device SERIAL, or use --all with units attached.")


class UnitSerialUnread(NaiadError):
    message = N_("The unit at {path} shows no serial")
    remedy = N_("Re-plug the unit; if it still shows none, register it by the serial on its label with --device.")


def _operator(settings: Settings, roles: tuple[str, ...]) -> OperatorSession:
    """The logged-in operator, checked to hold one of ``roles`` before the key store asks for its passphrase."""
    return require_role(settings.session(), *roles)


def _unread(device: Device) -> EnrollmentStepResult:
    """The failed result of an attached unit whose serial cannot be read: every unit is accounted for."""
    error = UsbAccessDenied(path=device.path) if device.permission_denied else UnitSerialUnread(path=device.path)
    return EnrollmentStepResult(device.serial or device.path, STEP_INVENTORY, False, FAILED, error=error)


def _checked(value: str, what: str) -> str:
    if not ID.fullmatch(value):
        raise IdInvalid(what=what, value=value)
    return value


def _model_of(station: Station, serial: str) -> str:
    """The model of a unit the ledger has seen or discovery finds now; UnitUnknown for any other serial."""
    _checked(serial, N_("The unit serial"))
    record = station.ledger.device(serial)
    if record is not None:
        return record.model
    try:
        return station.find(serial).model
    except DeviceNotFound:
        raise UnitUnknown(serial=serial) from None


def _outcome(result: StepResult) -> str:
    """A unit's bar once a step ended: its status, and what the platform answered."""
    if not isinstance(result, EnrollmentStepResult):
        return plain_outcome(result)
    step = _(STEP_NAMES.get(result.step, result.step))
    if result.detail:
        return _("{step}: {status} ({detail})", step=step, status=result.status_text, detail=result.detail)
    return _("{step}: {status}", step=step, status=result.status_text)


def _result_text(result: EnrollmentStepResult) -> Text:
    return Text(result.status_text, style="green" if result.ok else "red")


@click.group("register", cls=Group, help=N_("Register units with the merchant platform, bind and activate them."))
def register() -> None:
    pass


@click.group("subsidy", cls=Group, help=N_("The merchant platform's subsidy for units: users and earnings."))
def subsidy() -> None:
    pass


@register.command(
    "inventory",
    cls=Command,
    help=N_("Register units in the distributor's inventory at the platform. Exits 1 when a unit was not registered."),
)
@option("--device", "devices", multiple=True, metavar="SERIAL", help=N_("A unit to register (repeat for several)."))
@option("--all", "all_units", is_flag=True, help=N_("Register every attached unit."))
@platform_options
@json_option
@pass_settings
def inventory(
    settings: Settings,
    devices: tuple[str, ...],
    all_units: bool,
    platform_config: str | None,
    keystore: str,
    as_json: bool,
) -> None:
    if devices and all_units:
        raise click.UsageError(_("Use either --device or --all, not both."))
    unread: list[EnrollmentStepResult] = []
    with reported(as_json):
        station = settings.station()
        if all_units:
            attached = station.devices()
            readable = [d for d in attached if d.serial and not d.permission_denied]
            units = [UnitToRegister(d.serial, d.model) for d in readable]
            unread = [_unread(d) for d in attached if d not in readable]
            models = {d.serial or d.path: d.model for d in attached}
        else:
            units = [UnitToRegister(serial, _model_of(station, serial)) for serial in dict.fromkeys(devices)]
            models = {unit.serial: unit.model for unit in units}
        if not units and not unread:
            raise NoUnitsToRegister()
        session = _operator(settings, ROLES_INVENTORY)
        config = resolve(platform_config)  # before the key store asks for its passphrase or PIN
        results = unread
        if units:
            with (
                open_key_store(keystore) as store,
                open_outbox(station, platform_config, store) as outbox,
                unit_bars(as_json, _outcome, verbose=True) as bars,  # shows earlier calls sent again
            ):
                results = register_inventory(outbox, config.supplier_id, units, bars, session=session) + unread
    ok = all(r.ok for r in results)
    if as_json:
        emit_json({"supplier_id": config.supplier_id, "ok": ok, "results": [r.as_dict() for r in results]})
    else:
        shown = table(N_("Unit"), N_("Model"), N_("Result"), N_("Problem"), title=_("Inventory registration"))
        for r in results:
            shown.add_row(r.serial, models[r.serial], _result_text(r), problem_text(r.error))
        out().print(shown)
    if not ok:
        raise click.exceptions.Exit(1)


def _merchant(merchant_id: str | None, store_id: str | None, qr_text: str | None) -> Merchant:
    """The store typed (--merchant and --store) or scanned (--qr): exactly one of the two ways."""
    typed = merchant_id is not None or store_id is not None
    if typed == (qr_text is not None):
        raise click.UsageError(_("Give the store either as --merchant and --store or as --qr, one of the two."))
    if qr_text is not None:
        return parse_merchant_qr(qr_text)
    if merchant_id is None or store_id is None:
        raise click.UsageError(_("--merchant and --store go together: give both."))
    return Merchant(_checked(merchant_id, N_("The merchant id")), _checked(store_id, N_("The store id")))


@register.command(
    "bind",
    cls=Command,
    help=N_(
        "Bind a unit to a merchant's store, activate it and enrol it in the subsidy program. Steps done before are "
        "not sent again, so running it again finishes an interrupted run. Exits 1 when a step failed."
    ),
)
@click.argument("serial")
@option("--merchant", "merchant_id", metavar="MERCHANT", help=N_("The merchant id."))
@option("--store", "store_id", metavar="STORE", help=N_("The store id."))
@option("--qr", "qr_text", metavar="TEXT", help=N_("The text of the store's binding QR code, instead of the ids."))
@option("--program", metavar="PROGRAM", help=N_("The subsidy program (default: the platform's current one)."))
@platform_options
@json_option
@pass_settings
def bind(
    settings: Settings,
    serial: str,
    merchant_id: str | None,
    store_id: str | None,
    qr_text: str | None,
    program: str | None,
    platform_config: str | None,
    keystore: str,
    as_json: bool,
) -> None:
    with reported(as_json):
        merchant = _merchant(merchant_id, store_id, qr_text)
        if program is not None:
            _checked(program, N_("The subsidy program"))
        station = settings.station()
        _model_of(station, serial)
        session = _operator(settings, ROLES_BIND)
        config = resolve(platform_config)
        with (
            open_key_store(keystore) as store,
            open_outbox(station, platform_config, store) as outbox,
            unit_bars(as_json, _outcome) as bars,
        ):
            results = bring_live(outbox, config.supplier_id, serial, merchant, bars, session=session, program=program)
    ok = len(results) == len(BRING_LIVE) and all(r.ok for r in results)
    not_done = [step for step in BRING_LIVE if step not in {r.step for r in results if r.ok}]
    if as_json:
        emit_json(
            {
                "serial": serial,
                "merchant_id": merchant.merchant_id,
                "store_id": merchant.store_id,
                "program": program,
                "ok": ok,
                "steps": [r.as_dict() for r in results],
                "not_done": not_done,
            }
        )
    else:
        title = _(
            "Unit {serial} at store {store_id} of merchant {merchant_id}",
            serial=serial,
            store_id=merchant.store_id,
            merchant_id=merchant.merchant_id,
        )
        shown = table(N_("Step"), N_("Result"), N_("Detail"), N_("Seconds"), N_("Problem"), title=title)
        for r in results:
            step = _(STEP_NAMES[r.step])
            shown.add_row(step, _result_text(r), r.detail or "", f"{r.seconds:.1f}", problem_text(r.error))
        out().print(shown)
        if not_done:
            names = ", ".join(_(STEP_NAMES[step]) for step in not_done)
            out().print(_("Not done yet: {steps}.", steps=names))
    if not ok:
        raise click.exceptions.Exit(1)


@register.command(
    "resume",
    cls=Command,
    help=N_("Send the platform calls an outage or a crash left unanswered. Exits 1 when some are still not done."),
)
@platform_options
@json_option
@pass_settings
def resume(settings: Settings, platform_config: str | None, keystore: str, as_json: bool) -> None:
    with reported(as_json):
        station = settings.station()
        session = _operator(settings, ROLES_OUTBOX)
        resolve(platform_config)
        with open_key_store(keystore) as store, open_outbox(station, platform_config, store) as outbox:
            report = resume_calls(outbox, session=session)
    answer = {"done": report.done, "refused": report.refused, "pending": report.pending}
    if as_json:
        emit_json({"ok": not (report.refused or report.pending), **answer})
    else:
        out().print(
            _("{done} calls sent and done, {refused} refused by the platform, {pending} still waiting.", **answer)
        )
    if report.refused or report.pending:
        raise click.exceptions.Exit(1)


@register.command(
    "abandon",
    cls=Command,
    help=N_(
        "Drop a call left pending, once you have checked on the platform that it is not wanted: it is never sent "
        "again, and the next run writes a new one. REQUEST_NO is named by the run it stopped."
    ),
)
@click.argument("request_no")
@platform_options
@json_option
@pass_settings
def abandon(settings: Settings, request_no: str, platform_config: str | None, keystore: str, as_json: bool) -> None:
    with reported(as_json):
        _checked(request_no, N_("The request number"))
        station = settings.station()
        session = _operator(settings, ROLES_OUTBOX)
        resolve(platform_config)
        with open_key_store(keystore) as store, open_outbox(station, platform_config, store) as outbox:
            dropped = abandon_call(outbox, request_no, session=session)
    if as_json:
        emit_json({"ok": True, "request_no": dropped.request_no, "method": dropped.method, "serial": dropped.serial})
    else:
        out().print(
            _(
                "Call {request_no} ({method}, unit {serial}) dropped: it will not be sent again.",
                request_no=dropped.request_no,
                method=str(dropped.method),
                serial=dropped.serial or "-",
            )
        )


@subsidy.command(
    "status",
    cls=Command,
    help=N_("Show a unit's subsidy, or every unit's of a merchant: users and earnings per month, caps left."),
)
@click.argument("serial", required=False)
@option("--merchant", "merchant_id", metavar="MERCHANT", help=N_("Every unit of this merchant."))
@platform_options
@json_option
@pass_settings
def status(
    settings: Settings,
    serial: str | None,
    merchant_id: str | None,
    platform_config: str | None,
    keystore: str,
    as_json: bool,
) -> None:
    if (serial is None) == (merchant_id is None):
        raise click.UsageError(_("Name a unit SERIAL or a merchant with --merchant, one of the two."))
    with reported(as_json):
        if serial is not None:
            _checked(serial, N_("The unit serial"))
        if merchant_id is not None:
            _checked(merchant_id, N_("The merchant id"))
        station = settings.station()
        session = _operator(settings, ROLES_SUBSIDY)
        resolve(platform_config)
        with open_key_store(keystore) as store, open_outbox(station, platform_config, store) as outbox:
            units = subsidy_status(outbox, session=session, serial=serial, merchant_id=merchant_id)
    earned = sum((unit.earned for unit in units), Decimal("0.00"))
    if as_json:
        emit_json(
            {"serial": serial, "merchant_id": merchant_id, "units": [u.as_dict() for u in units], "earned": str(earned)}
        )
        return
    for unit in units:
        _print_unit(unit)
    if merchant_id is not None:
        out().print(
            _(
                "Merchant {merchant_id}: {count} units, {earned} yuan earned.",
                merchant_id=merchant_id,
                count=len(units),
                earned=str(earned),
            )
        )


def _print_unit(unit: UnitSubsidy) -> None:
    where = _("Unit {serial} at store {store_id} of merchant {merchant_id}", **_fields(unit))
    if unit.program is None:
        out().print(where)
        out().print(_("Not enrolled in a subsidy program."))
        return
    title = _("{where}: program {program}, activated {activated}", where=where, **_fields(unit))
    shown = table(N_("Month"), N_("From"), N_("To"), N_("Users"), N_("Earned (yuan)"), title=title)
    for month in unit.months:
        shown.add_row(str(month.index), month.start, month.end, str(month.users), str(month.earned))
    shown.add_row(_("Total"), "", "", str(unit.users), str(unit.earned), style="bold")
    out().print(shown)
    out().print(
        _(
            "Cap left: {cap_left} yuan; months left: {months_left} (the window ends {window_end}).",
            cap_left=str(unit.cap_left),
            months_left=unit.months_left,
            window_end=unit.window_end or "-",
        )
    )


def _fields(unit: UnitSubsidy) -> dict[str, Any]:
    return {
        "serial": unit.serial,
        "merchant_id": unit.merchant_id,
        "store_id": unit.store_id,
        "program": unit.program,
        "activated": unit.activated or "-",
    }
