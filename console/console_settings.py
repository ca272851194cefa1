"""The console's own settings: language, ledger, key store, platform configuration, reports folder, idle lock and
each recipe's site settings, kept as JSON in ``console.json`` in the configuration directory.

The file is the console's, edited in its Settings view; the ``naiad`` commands keep reading their options and the
environment.  A value the file does not give falls back to the environment where the commands have one
(``NAIAD_LEDGER``, ``NAIAD_KEYSTORE``, ``NAIAD_PLATFORM_CONFIG``), so one station's set-up serves both.  A missing
file gives the defaults; a file that cannot be read or holds a wrong value is logged and that value ignored: the
console still opens, with the default, never with a traceback.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

FILE_NAME = "console.json"
SOFTWARE = "software"
PKCS11 = "pkcs11"
KEYSTORE_KINDS = (SOFTWARE, PKCS11)
LANGUAGES = ("zh_CN", "en")
IDLE_LOCK_MINUTES = (1, 240)
"""The idle lock's range in minutes (the console locks itself after this long without a key or mouse event)."""


@dataclass(frozen=True)
class ConsoleSettings:
    """What the console remembers between runs.  ``None`` means "not set here": the environment's, else the
    built-in default."""

    language: str | None = None
    """zh_CN or en; None: the system's (Chinese on a Chinese system)."""
    ledger_url: str | None = field(default=None, repr=False)
    """A SQLAlchemy URL (PostgreSQL for a shared ledger; kept out of ``repr``: it may hold a password); None:
    ``NAIAD_LEDGER``, else the default SQLite file."""
    keystore: str | None = None
    """software or pkcs11; None: ``NAIAD_KEYSTORE``, else software."""
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    platform_config: str | None = None
    """The merchant platform's configuration file; None: ``NAIAD_PLATFORM_CONFIG``."""
    reports_dir: str | None = None
    """Where batch reports go; None: ``<data dir>/reports``."""
    idle_lock_minutes: int = 10
    recipe_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per recipe name, its site settings as ``naiad provision --set`` gives them: ``{"flash.bundle": "/x.zip"}``."""

    # -- what is in force -------------------------------------------------------------------------------------

    def effective_ledger_url(self) -> str | None:
        return self.ledger_url or os.environ.get("NAIAD_LEDGER") or None

    def effective_keystore(self) -> str:
        chosen = self.keystore or os.environ.get("NAIAD_KEYSTORE") or SOFTWARE
        return chosen if chosen in KEYSTORE_KINDS else SOFTWARE

    def effective_platform_config(self) -> str | None:
        return self.platform_config or os.environ.get("NAIAD_PLATFORM_CONFIG") or None

    def overrides(self, recipe: str) -> dict[str, str]:
        """The site settings kept for ``recipe`` (a copy)."""
        return dict(self.recipe_settings.get(recipe, {}))

    def with_overrides(self, recipe: str, values: dict[str, str]) -> ConsoleSettings:
        kept = {name: dict(v) for name, v in self.recipe_settings.items()}
        kept[recipe] = {k: v for k, v in values.items() if v != ""}
        return replace(self, recipe_settings=kept)

    # -- the file ---------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None) -> ConsoleSettings:
        """The settings in ``path`` (else the configuration directory's ``console.json``); defaults for what is
        missing or wrong there."""
        path = path if path is not None else default_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            LOG.warning("console settings %s not read (%s); using the defaults", path, type(exc).__name__)
            return cls()
        if not isinstance(raw, dict):
            LOG.warning("console settings %s hold no object; using the defaults", path)
            return cls()
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw and _valid(f.name, raw[f.name])})

    def save(self, path: Path | None = None) -> None:
        """Write the settings to ``path`` (else the default), through a temporary file and a rename, readable by
        this user only (the ledger URL may hold a password).  OSError when it cannot be: the old file stays."""
        path = path if path is not None else default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        temporary = path.with_name(path.name + ".tmp")
        try:
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                os.chmod(temporary, 0o600)  # an old temporary file keeps its mode through O_CREAT
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise


def default_path() -> Path:
    from terminal.dirs import config_dir

    return config_dir() / FILE_NAME


def _valid(name: str, value: Any) -> bool:
    """Whether ``value`` is a right value for the field ``name``; a wrong one is logged (without the value)."""
    ok: bool
    if name == "idle_lock_minutes":
        ok = type(value) is int and IDLE_LOCK_MINUTES[0] <= value <= IDLE_LOCK_MINUTES[1]
    elif name == "recipe_settings":
        ok = isinstance(value, dict) and all(
            isinstance(k, str)
            and isinstance(v, dict)
            and all(isinstance(a, str) and isinstance(b, str) for a, b in v.items())
            for k, v in value.items()
        )
    elif name == "language":
        ok = value is None or value in LANGUAGES
    elif name == "keystore":
        ok = value is None or value in KEYSTORE_KINDS
    else:
        ok = value is None or (isinstance(value, str) and "\0" not in value and len(value) < 4096)
    if not ok:
        LOG.warning("console setting %s is not valid; using its default", name)
    return ok
