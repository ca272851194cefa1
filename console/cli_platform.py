"""``naiad platform``: the merchant platform as the station sees it (its key) and the sandbox (``serve``)."""

from __future__ import annotations

import click

from i18n import N_

from .cli_common import Group

PLATFORM_COMMANDS = {
    "serve": "console.cli_platform_serve:serve",
    "keygen": "console.cli_platform_keys:keygen",
}


@click.group(
    "platform",
    cls=Group,
    lazy=PLATFORM_COMMANDS,
    help=N_("The merchant platform: the station's platform key and the sandbox platform server."),
)
def platform() -> None:
    pass
