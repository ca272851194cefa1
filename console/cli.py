"""The ``naiad`` entry point: answers ``naiad --version`` before loading anything, then runs the command line.

The commands live in :mod:`console.cli_root` (click, the domains and the device code load when a command
needs them).  A bare ``naiad --version`` is answered here without importing click or reading the package
metadata, so it costs little more than starting the interpreter; every command ends without the
garbage collector's final passes over what it loaded.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from i18n import DEFAULT_LANGUAGE, N_, get_language, translate

from . import __version__

VERSION_TEXT = N_("naiad, version {version}")  # both paths print it: this one and cli_root's --version


def version_line() -> str:
    """The ``--version`` answer in the user's language; English is the msgid itself, read from no catalog."""
    text = VERSION_TEXT if get_language() == DEFAULT_LANGUAGE else translate(VERSION_TEXT)
    return text.format(version=__version__)


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(version_line() + "\n")
        return
    from .cli_root import cli

    try:
        cli(prog_name="naiad")
    finally:
        # The process ends here: the collector's last passes over every object the command loaded would
        # only free memory the system takes back anyway (15 ms of a 110 ms ``naiad fastboot getvar``).
        # Exit handlers, flushes and closes still run.
        gc.freeze()


def __getattr__(name: str) -> Any:
    """``console.cli.cli`` and the other names of the command line, loaded on first use."""
    if name.startswith("__"):  # the import system probes ``__path__`` and the like: not a command-line name
        raise AttributeError(name)
    from . import cli_root

    return getattr(cli_root, name)


if __name__ == "__main__":
    main()
