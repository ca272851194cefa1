"""``naiad fastboot SERIAL getvar|flash|erase|set_active|reboot|oem ...``: fastboot for support engineers.

The unit is chosen by its Naiad serial and reached over whichever link its bootloader offers (fastboot
TCP or USB), or addressed directly with ``--target tcp:HOST:PORT``.  Presentation only: the protocol
lives in :mod:`terminal.fastboot`; this module turns arguments into calls, INFO lines and progress into
output, and errors into a message with its remedy (or JSON).

These commands open no ledger and build no station.  They are the support engineer's raw access to a
bootloader: a query (``getvar``, ``oem sha256``) changes nothing on the unit, so there is nothing to
record (not even a sighting: ``naiad devices`` and every provisioning step record those), and a unit
is looked up by its serial alone (:meth:`terminal.discovery.Discovery.find`), without reading every
other unit on the bus.  That keeps ``naiad fastboot SERIAL getvar product`` as quick as the stock client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from i18n import N_, _
from terminal.fastboot import FastbootClient, open_fastboot

from .cli_common import Group, Option, byte_bar, emit_json, reported

ANY_UNIT = "-"


class _SerialGroup(Group):
    """Options may come before or after SERIAL (``naiad fastboot DF2A00001 --json getvar all``)."""

    allow_interspersed_args = True
    ignore_unknown_options = True  # an option the group does not know belongs to the command after it


class _Session:
    """The unit chosen on the command line; connected on first use, closed when the command ends."""

    def __init__(self, serial: str, target: str | None, sim: str | None, as_json: bool, timeout: float) -> None:
        """``sim``: the group's ``--sim`` or the root's; None lets the composition root read NAIAD_SIM."""
        self.serial, self.target, self.sim, self.as_json, self.timeout = serial, target, sim, as_json, timeout
        self._client: FastbootClient | None = None

    def info(self, line: str) -> None:
        if not self.as_json:
            click.echo(f"(bootloader) {line}", err=True)  # plain lines: no need to load rich for them

    def client(self) -> FastbootClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> FastbootClient:
        if self.target is not None:  # a direct address: no bus to read, so no discovery to load
            serial = None if self.serial == ANY_UNIT else self.serial
            return open_fastboot(self.target, serial=serial, on_info=self.info, timeout=self.timeout)
        from provisioning.station import open_device_fastboot

        from .composition import Wiring

        discovery = Wiring.resolve(self.sim).discovery()
        device = discovery.find(self.serial)
        return open_device_fastboot(discovery, device, on_info=self.info, timeout=self.timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def run(self, action: Callable[[FastbootClient], Any]) -> Any:
        with reported(self.as_json):
            return action(self.client())

    def done(self, result: object, text: str | None = None) -> None:
        """The command's result: JSON on stdout, or a short line for people."""
        if self.as_json:
            emit_json(result)
        elif text:
            click.echo(text, err=True)


pass_session = click.make_pass_decorator(_Session)


@click.group(
    "fastboot",
    cls=_SerialGroup,
    help=N_("Run fastboot commands on the unit SERIAL in bootloader mode ('-' with --target: any unit)."),
)
@click.argument("serial")
@click.option(
    "--target",
    cls=Option,
    metavar="tcp:HOST:PORT",
    help=N_("Address the bootloader directly instead of finding SERIAL on USB."),
)
@click.option(
    "--sim",
    cls=Option,
    type=click.Path(file_okay=False),
    help=N_("The simulator state directory whose units to use."),
)
@click.option("--json", "as_json", cls=Option, is_flag=True, help=N_("Print results as JSON."))
@click.option(
    "--timeout",
    cls=Option,
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help=N_("Seconds to wait for each answer."),
)
@click.pass_context
def fastboot(
    ctx: click.Context, serial: str, target: str | None, sim: str | None, as_json: bool, timeout: float
) -> None:
    session = _Session(serial, target, sim or ctx.find_root().params.get("sim_dir"), as_json, timeout)
    ctx.obj = session
    ctx.call_on_close(session.close)


@fastboot.command("getvar", help=N_("Print a bootloader variable, or 'all' of them."))
@click.argument("name")
@pass_session
def getvar(session: _Session, name: str) -> None:
    if name == "all":
        variables: dict[str, str] = session.run(lambda fb: fb.getvar_all())
        if not session.as_json:
            for key, value in variables.items():
                click.echo(f"{key}: {value}")
        session.done(variables)
        return
    single: str = session.run(lambda fb: fb.getvar(name))
    if not session.as_json:
        click.echo(f"{name}: {single}")
    session.done({name: single})


@fastboot.command("flash", help=N_("Write IMAGE to PARTITION (several images: sparse pieces, in order)."))
@click.argument("partition")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_session
def flash(session: _Session, partition: str, images: tuple[Path, ...]) -> None:
    with byte_bar(not session.as_json, _("Sending {partition}", partition=partition)) as progress:
        session.run(lambda fb: fb.flash(partition, list(images), progress))
    session.done(
        {"flashed": partition, "images": [str(p) for p in images]}, _("Wrote {partition}", partition=partition)
    )


@fastboot.command("erase", help=N_("Erase PARTITION."))
@click.argument("partition")
@pass_session
def erase(session: _Session, partition: str) -> None:
    session.run(lambda fb: fb.erase(partition))
    session.done({"erased": partition}, _("Erased {partition}", partition=partition))


@fastboot.command("set_active", help=N_("Make SLOT (a or b) the slot to boot next."))
@click.argument("slot")
@pass_session
def set_active(session: _Session, slot: str) -> None:
    session.run(lambda fb: fb.set_active(slot))
    session.done({"active": slot}, _("Slot {slot} is active", slot=slot))


@fastboot.command("reboot", help=N_("Reboot the unit, or with 'bootloader' back into its bootloader."))
@click.argument("into", required=False, type=click.Choice(["bootloader"]))
@pass_session
def reboot(session: _Session, into: str | None) -> None:
    session.run(lambda fb: fb.reboot_bootloader() if into == "bootloader" else fb.reboot())
    session.done({"rebooted": into or "system"}, _("Rebooting"))


@fastboot.command(
    "oem",
    help=N_("Run an OEM command; Naiad units answer 'oem sha256 PARTITION [OFFSET SIZE]'."),
    context_settings={"ignore_unknown_options": True},
)
@click.argument("args", nargs=-1, required=True)
@pass_session
def oem(session: _Session, args: tuple[str, ...]) -> None:
    lines: list[str] = session.run(lambda fb: fb.oem(*args))
    session.done({"info": lines})
