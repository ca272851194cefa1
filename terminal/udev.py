"""udev rules that let the station's users reach the units without root, generated from the model table.

Each model gets a rule per USB mode (run and bootloader: read the serial number, claim the fastboot
interface) and a rule for its CDC-ACM tty, which also names it ``/dev/naiad/<serial>`` and keeps
ModemManager from probing it with AT commands (that would corrupt the management protocol).
The packaged copy is ``data/udev/70-naiad.rules``; ``naiad doctor`` compares the installed copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from .models import BOOTLOADER, RUN, TerminalModel, load_models

LOG = logging.getLogger(__name__)

RULES_NAME = "70-naiad.rules"
RULE_DIRS: tuple[Path, ...] = (Path("/etc/udev/rules.d"), Path("/lib/udev/rules.d"), Path("/usr/lib/udev/rules.d"))
GROUP = "plugdev"
_ACCESS = f'MODE="0660", GROUP="{GROUP}", TAG+="uaccess"'

INSTALL_COMMAND = (
    f"sudo install -m 0644 data/udev/{RULES_NAME} /etc/udev/rules.d/ && sudo udevadm control "
    "--reload-rules && sudo udevadm trigger --subsystem-match=usb --subsystem-match=tty"
)

_HEADER = """\
# Naiad: access to face-payment terminals for the {group} group and the logged-in user.
# Generated from the terminal model table by terminal/udev.py; do not edit by hand.
# Install: sudo install -m 0644 {name} /etc/udev/rules.d/ && sudo udevadm control --reload-rules \\
#          && sudo udevadm trigger --subsystem-match=usb --subsystem-match=tty
"""


def _model_rules(model: TerminalModel) -> list[str]:
    run, boot = model.usb_id(RUN), model.usb_id(BOOTLOADER)
    match_run = f'ATTR{{idVendor}}=="{run.vid:04x}", ATTR{{idProduct}}=="{run.pid:04x}"'
    match_boot = f'ATTR{{idVendor}}=="{boot.vid:04x}", ATTR{{idProduct}}=="{boot.pid:04x}"'
    match_tty = f'ATTRS{{idVendor}}=="{run.vid:04x}", ATTRS{{idProduct}}=="{run.pid:04x}"'
    return [
        f"# {model.name} ({model.id}), run mode: CDC-ACM management port",
        f'SUBSYSTEM=="usb", {match_run}, {_ACCESS}, ENV{{ID_MM_DEVICE_IGNORE}}="1"',
        f'SUBSYSTEM=="tty", {match_tty}, {_ACCESS}, ENV{{ID_MM_DEVICE_IGNORE}}="1", SYMLINK+="naiad/%s{{serial}}"',
        f"# {model.name} ({model.id}), bootloader mode: fastboot interface",
        f'SUBSYSTEM=="usb", {match_boot}, {_ACCESS}',
    ]


def render_rules(models: Iterable[TerminalModel] | None = None) -> str:
    """The rules file for ``models`` (default: every known model, the user's table included)."""
    chosen = sorted(load_models().values() if models is None else models, key=lambda m: m.id)
    lines = [_HEADER.format(group=GROUP, name=RULES_NAME)]
    for model in chosen:
        lines.extend(_model_rules(model))
        lines.append("")
    return "\n".join(lines)


def installed_rule_status(dirs: Sequence[Path] = RULE_DIRS, expected: str | None = None) -> tuple[Path | None, bool]:
    """The installed Naiad rules file (first of ``dirs`` to have one) and whether it matches ``expected``.

    Any ``*-naiad.rules`` counts, so a copy renamed to sort earlier (``70-naiad.rules``) is found."""
    wanted = render_rules() if expected is None else expected
    for directory in dirs:
        candidates = sorted(directory.glob("*-naiad.rules")) if directory.is_dir() else []
        exact = directory / RULES_NAME
        if exact in candidates:
            candidates.remove(exact)
            candidates.insert(0, exact)
        for path in candidates:
            try:
                return path, path.read_text(encoding="utf-8") == wanted
            except OSError:
                LOG.warning("cannot read the udev rules %s", path, exc_info=True)
                return path, False
    return None, False
