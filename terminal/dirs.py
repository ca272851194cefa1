"""Where the station keeps its configuration and data: platformdirs locations, overridable for tests and
for several stations on one machine (``NAIAD_CONFIG_DIR``, ``NAIAD_DATA_DIR``).

A location that exists but is not a directory is refused here, once for every command: otherwise a
command that only reads (``naiad firmware trusted``) would find nothing there and report success."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from i18n import N_

from .errors import NaiadError

CONFIG_ENV = "NAIAD_CONFIG_DIR"
DATA_ENV = "NAIAD_DATA_DIR"


class NotADirectory(NaiadError):
    message = N_("The directory for {variable} is {path}, which exists but is not a directory")
    remedy = N_("Set {variable} to a directory (it is created when missing), or move {path} away.")


def _directory(variable: str, default: Callable[[], str]) -> Path:
    """``$variable`` if set, else ``default()``; refused when it exists and is not a directory."""
    path = Path(os.environ.get(variable) or default())
    if path.exists() and not path.is_dir():
        raise NotADirectory(variable=variable, path=str(path))
    return path


def config_dir() -> Path:
    """Trusted keys, the user's model table: ``$NAIAD_CONFIG_DIR``, else the platform's user config dir."""
    return _directory(CONFIG_ENV, lambda: _platformdirs().user_config_dir("naiad", appauthor=False))


def data_dir() -> Path:
    """The ledger and other station data: ``$NAIAD_DATA_DIR``, else the platform's user data dir."""
    return _directory(DATA_ENV, lambda: _platformdirs().user_data_dir("naiad", appauthor=False))


def _platformdirs() -> Any:
    import platformdirs  # only when asked: it costs a command's start-up 10 ms

    return platformdirs
