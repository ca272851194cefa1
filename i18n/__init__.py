"""Message catalogs (zh_CN, en) and the functions every user-facing string goes through.

Write user-facing text as ``_("Unit {serial} is not attached", serial=s)``; mark text that is
translated later (class attributes, tables) with ``N_()``.  The catalogs are gettext ``.po`` files
beside this module, read with Babel on first use, so translators keep their usual tools.
"""

from __future__ import annotations

import locale
import os
import threading
from collections.abc import Callable
from pathlib import Path

LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "en"
CATALOG_DIR = Path(__file__).resolve().parent

_lock = threading.Lock()
_catalogs: dict[str, dict[str, str]] = {}
_language: str | None = None
_listeners: list[Callable[[str], None]] = []


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs without translating it yet."""
    return message


def catalog(language: str) -> dict[str, str]:
    """The msgid -> msgstr table of ``language`` (empty translations left out)."""
    with _lock:
        if language not in _catalogs:
            _catalogs[language] = _read_catalog(CATALOG_DIR / f"{language}.po")
        return _catalogs[language]


def _read_catalog(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    from babel.messages.pofile import read_po

    with path.open("rb") as fh:
        po = read_po(fh)
    return {str(m.id): str(m.string) for m in po if m.id and m.string and not m.fuzzy}


def normalize_language(name: str | None) -> str:
    """Map ``zh``, ``zh_CN.UTF-8``, ``zh-Hans`` ... to ``zh_CN``; anything else to English."""
    if name and name.replace("-", "_").lower().startswith("zh"):
        return "zh_CN"
    return DEFAULT_LANGUAGE


def get_language() -> str:
    """The current language: set_language(), else NAIAD_LANG, else the locale."""
    if _language is not None:
        return _language
    env = os.environ.get("NAIAD_LANG") or os.environ.get("LC_ALL") or os.environ.get("LANG")
    if not env:
        env = locale.getlocale()[0]
    return normalize_language(env)


def set_language(language: str) -> None:
    """Switch every later translation to ``language`` and tell the listeners (the open console)."""
    global _language
    _language = normalize_language(language)
    for listener in list(_listeners):
        listener(_language)


def add_language_listener(listener: Callable[[str], None]) -> None:
    _listeners.append(listener)


def remove_language_listener(listener: Callable[[str], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def translate(message: str, language: str | None = None) -> str:
    return catalog(language or get_language()).get(message, message)


def _(message: str, /, **params: object) -> str:
    """Translate ``message`` into the current language and fill in ``{named}`` parameters."""
    text = translate(message)
    return text.format(**params) if params else text
