"""``naiad operator``: operators who log in.  ``add NAME --role ROLE``, ``list [--json]``, ``passwd NAME``,
``disable NAME``, ``login NAME [--minutes N]`` (prints a session token for NAIAD_OPERATOR) and ``logout``.

Passwords are only ever asked on the terminal, never taken as arguments.  Presentation only: the checks
(bootstrap, roles, lockout) are :mod:`provisioning.operators`'.
"""

from __future__ import annotations

import os

import click

from i18n import N_, _
from provisioning.ledger.models import ROLES

from .cli_common import Group, emit_json, json_option, option, out, reported, table
from .cli_root import TOKEN_VARIABLE, Settings, pass_settings


@click.group("operator", cls=Group, help=N_("Operators who log in: add, list, change passwords, disable."))
def operator_group() -> None:
    pass


def _new_password(name: str) -> str:
    text: str = click.prompt(
        _("New password for {operator}", operator=name),
        hide_input=True,
        err=True,
        confirmation_prompt=_("Repeat the new password"),
    )
    return text


@operator_group.command("add", help=N_("Add an operator (an admin; on an empty ledger, the first admin)."))
@click.argument("name")
@option("--role", type=click.Choice(ROLES), required=True, help=N_("What the operator may do."))
@pass_settings
def add(settings: Settings, name: str, role: str) -> None:
    from provisioning import operators

    with reported(False):
        station, session = settings.station(), settings.session()
        operators.may_add(station.ledger, session, role)  # refused before a password is typed
        operators.add_operator(station.ledger, session, name, role, _new_password(name))
    out().print(_("Operator {operator} added with the {role} role.", operator=name, role=role))


@operator_group.command("list", help=N_("List the operators with their roles and whether they can log in."))
@json_option
@pass_settings
def list_operators(settings: Settings, as_json: bool) -> None:
    with reported(as_json):
        found = settings.station().ledger.operators()
    rows = [
        {
            "name": o.name,
            "role": o.role,
            "created": o.created.isoformat(),
            "disabled": o.disabled,
            "can_log_in": o.has_password and not o.disabled,
            "failed_logins": o.failed_logins,
        }
        for o in found
    ]
    if as_json:
        emit_json({"operators": rows})
        return
    shown = table(N_("Name"), N_("Role"), N_("Created"), N_("State"), title=_("Operators"))
    for record in found:
        state = _("disabled") if record.disabled else _("active") if record.has_password else _("no password")
        shown.add_row(record.name, record.role, record.created.strftime("%Y-%m-%d %H:%M"), state)
    out().print(shown)


@operator_group.command("passwd", help=N_("Change a password: your own, or anyone's as an admin (also unlocks)."))
@click.argument("name")
@pass_settings
def passwd(settings: Settings, name: str) -> None:
    from provisioning import operators

    with reported(False):
        station, session = settings.station(), settings.session()
        operators.may_change_password(session, name)  # refused before a password is typed
        operators.change_password(station.ledger, session, name, _new_password(name))
    out().print(_("The password of {operator} was changed.", operator=name))


@operator_group.command("disable", help=N_("Disable an operator and end their sessions (admin)."))
@click.argument("name")
@pass_settings
def disable(settings: Settings, name: str) -> None:
    from provisioning import operators

    with reported(False):
        station = settings.station()
        operators.disable_operator(station.ledger, settings.session(), name)
    out().print(_("Operator {operator} is disabled.", operator=name))


@operator_group.command("login", help=N_("Log in and print a session token to put in NAIAD_OPERATOR."))
@click.argument("name")
@option("--minutes", type=click.IntRange(1, 720), default=30, show_default=True, help=N_("How long it is valid."))
@pass_settings
def login(settings: Settings, name: str, minutes: int) -> None:
    from provisioning import operators

    with reported(False):
        ledger = settings.station().ledger
        password: str = click.prompt(_("Password for {operator}", operator=name), hide_input=True, err=True)
        _session, token, expires = operators.open_session(ledger, name, password, minutes)
    click.echo(token)
    click.echo(_("Valid until {time} UTC; set it as NAIAD_OPERATOR.", time=expires.strftime("%H:%M")), err=True)


@operator_group.command("logout", help=N_("End the session whose token is in NAIAD_OPERATOR."))
@pass_settings
def logout(settings: Settings) -> None:
    from provisioning import operators

    with reported(False):
        if not os.environ.get(TOKEN_VARIABLE):
            raise operators.NotLoggedIn()
        session = settings.session()
        if session is not None:
            operators.close_session(settings.station().ledger, session)
    out().print(_("Logged out; unset NAIAD_OPERATOR."))
