"""Where the station keeps its configuration and data: platformdirs locations, overridable for tests and
for several stations on one machine (``NAIAD_CONFIG_DIR``, ``NAIAD_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_ENV = "NAIAD_CONFIG_DIR"
DATA_ENV = "NAIAD_DATA_DIR"


def config_dir() -> Path:
    """Trusted keys, the user's model table: ``$NAIAD_CONFIG_DIR``, else the platform's user config dir."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    import platformdirs  # only when asked: it costs a command's start-up 10 ms

    return Path(platformdirs.user_config_dir("naiad", appauthor=False))


def data_dir() -> Path:
    """The ledger and other station data: ``$NAIAD_DATA_DIR``, else the platform's user data dir."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("naiad", appauthor=False))
