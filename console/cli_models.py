"""``naiad models [--json]``: the terminal model table (packaged, plus the station's own ``models.toml``)."""

from __future__ import annotations

from typing import Any

import click

from i18n import N_, _
from terminal.models import Partition, TerminalModel, load_models, user_table_path

from .cli_common import Command, emit_json, json_option, out, reported, table

MiB = 1 << 20


def _size(partition: Partition) -> str:
    """Whole MiB as partition tables are written, else bytes."""
    size = partition.size
    return f"{size // MiB:,} MiB" if size % MiB == 0 else f"{size:,} B"


def _as_dict(model: TerminalModel) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "vendor": model.vendor,
        "run_usb": str(model.run_usb),
        "bootloader_usb": str(model.bootloader_usb),
        "hardware_revisions": list(model.hardware_revisions),
        "camera_module": model.camera.module,
        "slot_scheme": model.slot_scheme,
        "partitions": [{"name": p.name, "size": p.size, "slotted": p.slotted} for p in model.partitions],
    }


@click.command("models", cls=Command, help=N_("List the terminal models this station knows, with their partitions."))
@json_option
def models(as_json: bool) -> None:
    with reported(as_json):
        known = sorted(load_models().values(), key=lambda m: m.id)
        own_table = user_table_path()
    if as_json:
        emit_json({"models": [_as_dict(m) for m in known], "user_table": str(own_table)})
        return
    about = table(
        N_("Model"),
        N_("Name"),
        N_("Run USB"),
        N_("Bootloader USB"),
        N_("Camera module"),
        N_("Slots"),
        N_("Hardware revisions"),
        title=_("Terminal models"),
    )
    sizes = table(N_("Model"), N_("Partition"), N_("Size"), N_("A/B slots"), title=_("Partitions"))
    for model in known:
        about.add_row(
            model.id,
            model.name,
            str(model.run_usb),
            str(model.bootloader_usb),
            model.camera.module,
            model.slot_scheme,
            ", ".join(model.hardware_revisions),
        )
        for partition in model.partitions:
            sizes.add_row(model.id, partition.name, _size(partition), _("yes") if partition.slotted else _("no"))
    console = out()
    console.print(about)
    console.print(sizes)
    console.print(_("Add models of your own in {path}", path=own_table), soft_wrap=True)
