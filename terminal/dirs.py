"""Where the station keeps its configuration and data: platformdirs locations, overridable for tests and
for several stations on one machine (``NAIAD_CONFIG_DIR``, ``NAIAD_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CONFIG_ENV = "NAIAD_CONFIG_DIR"
DATA_ENV = "NAIAD_DATA_DIR"


def config_dir() -> Path:
    """Trusted keys, the user's model table: ``$NAIAD_CONFIG_DIR``, else the platform's user config dir."""
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else Path(platformdirs.user_config_dir("naiad", appauthor=False))


def data_dir() -> Path:
    """The ledger and other station data: ``$NAIAD_DATA_DIR``, else the platform's user data dir."""
    override = os.environ.get(DATA_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("naiad", appauthor=False))
