"""Message catalogs (zh_CN, en) and the functions every user-facing string goes through.

Write user-facing text as ``_("Unit {serial} is not attached", serial=s)``; mark text that is
translated later (class attributes, tables) with ``N_()``.  The catalogs are gettext ``.po`` files
beside this module (written by Babel through ``python -m i18n.extract``, so translators keep their usual
tools), read on first use by the small reader below.
"""

from __future__ import annotations

import os
import re
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
    """The translated, non-fuzzy entries of a ``.po`` file.

    A small reader for the files ``i18n.extract`` writes (entries apart by blank lines; ``#,`` flags;
    ``msgid``/``msgstr`` with continuation lines): Babel's parser took 100 ms per catalog, paid by every
    command that prints a sentence.  A test checks that both readers agree on the shipped catalogs.
    """
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, list[str]] = {}
        keyword, fuzzy = "", False
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("#,"):
                fuzzy = fuzzy or "fuzzy" in (flag.strip() for flag in line[2:].split(","))
            elif line.startswith('"') and keyword:
                fields[keyword].append(_unquote(line))
            elif line and not line.startswith("#"):
                keyword, _sep, literal = line.partition(" ")
                fields[keyword] = [_unquote(literal)]
        msgid, msgstr = "".join(fields.get("msgid", ())), "".join(fields.get("msgstr", ()))
        if msgid and msgstr and not fuzzy:
            entries[msgid] = msgstr
    return entries


_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r"}


def _unquote(literal: str) -> str:
    """The text of a quoted ``.po`` string, its C escapes (``\\n``, ``\\"``, ``\\\\`` ...) resolved."""
    return _ESCAPE.sub(lambda m: _ESCAPED.get(m[1], m[1]), literal.strip()[1:-1])


def normalize_language(name: str | None) -> str:
    """Map ``zh``, ``zh_CN.UTF-8``, ``zh-Hans``, Windows' ``Chinese (Simplified)_China`` ... to ``zh_CN``; anything
    else to English."""
    if name and name.replace("-", "_").lower().startswith(("zh", "chinese")):
        return "zh_CN"
    return DEFAULT_LANGUAGE


def get_language() -> str:
    """The current language: set_language(), else NAIAD_LANG, else the locale."""
    if _language is not None:
        return _language
    env = os.environ.get("NAIAD_LANG") or os.environ.get("LC_ALL") or os.environ.get("LANG")
    if not env:
        import locale  # only without NAIAD_LANG, LC_ALL and LANG: it costs every command's start-up

        try:
            env = locale.getlocale()[0]
        except ValueError:  # a locale name Python cannot parse (macOS's bare "UTF-8"): English
            env = None
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
