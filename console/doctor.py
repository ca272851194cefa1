"""``naiad doctor``: the station's self-checks as a table (or JSON), each problem with its fix."""

from __future__ import annotations

from typing import Any

import click

from i18n import N_, _

from .cli_common import Command, emit_json, json_option, out, reported, table

_COLOURS = {"ok": "green", "warning": "yellow", "problem": "red"}


@click.command("doctor", cls=Command, help=N_("Check USB, permissions, the udev rule, the HSM library and the ledger."))
@json_option
@click.pass_obj
def doctor(settings: Any, as_json: bool) -> None:
    from rich.text import Text

    from provisioning.doctor import Status, run_checks

    with reported(as_json):  # a --sim directory that is not there: the error and its remedy
        station = settings.station()
    results = run_checks(station.discovery, lambda: station.ledger)
    if as_json:
        emit_json({"checks": [r.as_dict() for r in results]})
    else:
        shown = table(N_("Check"), N_("Status"), N_("Detail"), N_("How to fix"), title=_("Naiad doctor"))
        for r in results:
            status = Text(_(str(r.status)), style=_COLOURS[str(r.status)])
            shown.add_row(_(r.name), status, r.detail, r.remedy or "")
        out().print(shown)
    if any(r.status is Status.PROBLEM for r in results):
        raise click.exceptions.Exit(1)
