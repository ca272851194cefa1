"""The ``naiad`` command line: every command a thin shell over the station and the domains.

The entry point is :func:`console.cli.main`; the subcommands in ``SUBCOMMANDS`` load on first use.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from i18n import LANGUAGES, N_, _, set_language

from .cli_common import Group, atomic_output, byte_bar, emit_json, err, json_option, option, out, reported, table

if TYPE_CHECKING:
    from rich.table import Table

    from provisioning.ledger import AuditHead
    from provisioning.operators import OperatorSession
    from provisioning.station import Station
    from terminal.discovery import Device

    from .composition import Wiring

SUBCOMMANDS = {
    "calibrate": "console.cli_camera:calibrate",
    "demo": "console.cli_demo:demo",
    "depth-quality": "console.cli_camera:depth_quality",
    "diagnose": "console.cli_diagnose:diagnose",
    "doctor": "console.doctor:doctor",
    "facecheck": "console.cli_facecheck:facecheck",
    "fastboot": "console.cli_fastboot:fastboot",
    "firmware": "console.cli_firmware:firmware",
    "flash": "console.cli_flash:flash",
    "history": "console.cli_diagnose:history",
    "keys": "console.cli_keys:keys_group",
    "models": "console.cli_models:models",
    "operator": "console.cli_operator:operator_group",
    "platform": "console.cli_platform:platform",
    "provision": "console.cli_provision:provision",
    "register": "console.cli_register:register",
    "sim": "console.cli_sim:sim",
    "subsidy": "console.cli_register:subsidy",
}


@dataclass
class Settings:
    """The root options; the bus and the station are made on first use, so ``--version`` loads neither."""

    sim_dir: Path | None = None
    ledger_url: str | None = None
    operator: str | None = None
    _station: Station | None = field(default=None, repr=False)
    _session: OperatorSession | None = field(default=None, repr=False)

    def wiring(self) -> Wiring:
        """Where the units are: ``--sim``, else NAIAD_SIM, else real USB (resolved by the composition root)."""
        from .composition import Wiring

        return Wiring.resolve(self.sim_dir)

    def station(self) -> Station:
        """The station; with ``--operator`` or ``NAIAD_OPERATOR`` its ledger writes as that operator."""
        if self._station is None:
            self._station = self.wiring().station(self.ledger_url)
            if self.operator:
                self.session()
            else:
                self._resume_quietly()
        return self._station

    def _resume_quietly(self) -> None:
        """Resume the NAIAD_OPERATOR session if it is still valid.  A stale token does not stop a command that
        needs no operator (listing, verifying); one that does asks :meth:`session` and gets SessionExpired."""
        from provisioning.operators import SessionExpired

        try:
            self.session()
        except SessionExpired as exc:
            err().print(_("Warning: {problem}; going on without an operator.", problem=str(exc)), style="yellow")

    def session(self) -> OperatorSession | None:
        """The logged-in operator: ``--operator NAME`` (password asked), else the NAIAD_OPERATOR token.

        Resolved once, on first use, so commands that need no ledger never ask for a password."""
        if self._session is None and (self.operator or os.environ.get(TOKEN_VARIABLE)):
            from provisioning import operators

            station = self.station()
            if self.operator:
                password = click.prompt(_("Password for {operator}", operator=self.operator), hide_input=True, err=True)
                self._session = operators.login(station.ledger, self.operator, password)
            else:
                self._session = operators.resume_session(station.ledger, os.environ[TOKEN_VARIABLE])
            station.act_as(self._session.operator)
        return self._session

    def close(self) -> None:
        if self._station is not None:
            self._station.close()


pass_settings = click.make_pass_decorator(Settings)
TOKEN_VARIABLE = "NAIAD_OPERATOR"


def _choose_language(value: str | None) -> None:
    if value:
        set_language(value)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Print the version line when it is asked for, in the language chosen by then (not when cli was imported)."""
    if value and not ctx.resilient_parsing:
        from .cli import version_line

        click.echo(version_line())
        ctx.exit()


@click.group(
    "naiad",
    cls=Group,
    lazy=SUBCOMMANDS,
    help=N_("Naiad brings face-payment terminals from the shelf to taking payments."),
)
@option(
    "--sim",
    "sim_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=N_("Work with the simulator running in this state directory (also NAIAD_SIM)."),
)
@option(
    "--ledger",
    "ledger_url",
    envvar="NAIAD_LEDGER",
    help=N_("SQLAlchemy URL of the ledger (default: SQLite in the data directory)."),
)
@option(
    "--lang",
    type=click.Choice(LANGUAGES),
    envvar="NAIAD_LANG",
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, param, value: _choose_language(value),  # eager: before --help is drawn
    help=N_("Language of the output."),
)
@option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_show_version,
    help=N_("Show the version and exit."),
)
@option(
    "--operator",
    "operator",
    metavar="NAME",
    help=N_("Log in as this operator; the password is asked (or set NAIAD_OPERATOR to a session token)."),
)
@click.pass_context
def cli(ctx: click.Context, sim_dir: Path | None, ledger_url: str | None, operator: str | None) -> None:
    settings = ctx.ensure_object(Settings)
    settings.sim_dir, settings.ledger_url, settings.operator = sim_dir, ledger_url, operator
    ctx.call_on_close(settings.close)


def _device_table(devices: list[Device]) -> Table:
    rows = table(N_("Serial"), N_("Model"), N_("Mode"), N_("Port path"), N_("Port"), title=_("Attached units"))
    for d in devices:
        rows.add_row(d.serial or "?", d.model_name, _(d.mode), d.path, d.port or d.fastboot or "-")
    return rows


@cli.command("devices", help=N_("List the attached units; with --watch, follow them as they come and go."))
@option("--watch", is_flag=True, help=N_("Keep running and report units as they are plugged and unplugged."))
@json_option
@pass_settings
def devices(settings: Settings, watch: bool, as_json: bool) -> None:
    with reported(as_json):
        station = settings.station()
        if not watch:
            found = station.devices()
            if as_json:
                emit_json({"devices": [d.as_dict() for d in found]})
            else:
                out().print(_device_table(found))
            return
        stop = threading.Event()
        try:
            for event in station.discovery.watch(stop):
                if event.kind == "added":
                    station.record_seen(event.device)
                if as_json:
                    click.echo(json.dumps({"event": event.kind, "device": event.device.as_dict()}))
                else:
                    d = event.device
                    text = _("added") if event.kind == "added" else _("removed")
                    out().print(f"{text:8} {d.serial} {d.model_name} {_(d.mode)} {d.path} {d.port or ''}", markup=False)
        except KeyboardInterrupt:
            pass


@cli.command("info", help=N_("Show what a unit reports about itself."))
@click.argument("serial")
@json_option
@pass_settings
def info(settings: Settings, serial: str, as_json: bool) -> None:
    with reported(as_json):
        result = settings.station().info(serial)
    if as_json:
        emit_json(result)
        return
    rows = [
        (_("Model"), result.get("model")),
        (_("Hardware revision"), result.get("hardware_revision")),
        (_("Active slot"), result.get("active_slot")),
        (_("Boot count"), result.get("boot_count")),
        (_("Secure element"), result.get("secure_element", {}).get("state")),
        (_("Camera module"), result.get("camera_module")),
    ]
    for slot, about in sorted(result.get("slots", {}).items()):
        rows.append(
            (
                _("Slot {slot} firmware", slot=slot),
                (about.get("version") if isinstance(about, dict) else about) or _("empty"),
            )
        )
    shown = table(N_("Field"), N_("Value"), title=_("Unit {serial}", serial=serial), show_header=False)
    for label, value in rows:
        shown.add_row(label, str(value))
    out().print(shown)


@cli.command("reboot", help=N_("Reboot a unit into run or bootloader mode and wait until it is back."))
@click.argument("serial")
@option("--mode", type=click.Choice(["run", "bootloader"]), required=True, help=N_("The mode to come back in."))
@option("--no-wait", is_flag=True, help=N_("Return once the unit has been told, without waiting for it."))
@json_option
@pass_settings
def reboot(settings: Settings, serial: str, mode: str, no_wait: bool, as_json: bool) -> None:
    with reported(as_json):
        back = settings.station().reboot(serial, mode, wait=not no_wait)
    if as_json:
        emit_json({"serial": serial, "mode": mode, "device": back.as_dict() if back else None})
    elif back:
        out().print(_("Unit {serial} is back in {mode} mode at {path}.", serial=serial, mode=_(mode), path=back.path))
    else:
        out().print(_("Unit {serial} is rebooting into {mode} mode.", serial=serial, mode=_(mode)))


@cli.command("logs", help=N_("Fetch a unit's system log."))
@click.argument("serial")
@option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help=N_("Write the log to this file."))
@pass_settings
def logs(settings: Settings, serial: str, output: Path | None) -> None:
    with reported(False), atomic_output(output) if output else nullcontext(None) as sink:
        with byte_bar(True, _("Fetching the log")) as update:
            text = settings.station().logs(serial, update)
        if sink is None:
            click.echo(text, nl=False)
        else:
            sink.write(text)


@cli.group("ledger", cls=Group, help=N_("The station's ledger of units, steps and audit trail."))
def ledger() -> None:
    pass


def _parse_anchor(text: str) -> AuditHead:
    from provisioning.ledger import AuditHead

    entry, _sep, digest = text.partition(":")
    if not entry.isdigit() or len(digest) != 64:
        raise click.BadParameter(_("expected ENTRY:HASH as printed by 'naiad ledger head'"))
    return AuditHead(int(entry), digest.lower())


@ledger.command("verify", help=N_("Check the audit trail's hash chain and every ledger row for edits and deletions."))
@option("--anchor", help=N_("ENTRY:HASH kept outside the database ('naiad ledger head'), to detect a cut-off tail."))
@json_option
@pass_settings
def ledger_verify(settings: Settings, anchor: str | None, as_json: bool) -> None:
    expected = _parse_anchor(anchor) if anchor else None
    with reported(as_json):
        report = settings.station().ledger.verify(expected)
    result = {
        "ok": report.ok,
        "entries": report.entries,
        "first_bad_id": report.first_bad_id,
        "reason": report.reason,
        "table": report.table,
        "row": report.row,
        "rows": report.rows,
        "head": f"{report.head.entry_id}:{report.head.hash}" if report.head else None,
    }
    if as_json:
        emit_json(result)
        if not report.ok:
            raise click.exceptions.Exit(1)
        return
    with reported(False):
        report.raise_if_broken()
    out().print(
        _("The ledger is intact: {entries} audit entries, {rows} rows.", entries=report.entries, rows=report.rows)
    )


@ledger.command("head", help=N_("Print the audit trail's last entry and hash, to keep outside the database."))
@pass_settings
def ledger_head(settings: Settings) -> None:
    with reported(False):
        head = settings.station().ledger.head()
    click.echo(f"{head.entry_id}:{head.hash}")


@cli.command("console", help=N_("Open the Naiad console (the bench window)."))
@option(
    "--sim",
    "sim_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=N_("Work with the simulator running in this state directory."),
)
@pass_settings
def console(settings: Settings, sim_dir: Path | None) -> None:
    from .app import run_console

    with reported(False):
        chosen = sim_dir or settings.sim_dir
        raise click.exceptions.Exit(run_console(str(chosen) if chosen else None))
