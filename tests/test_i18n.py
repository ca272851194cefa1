"""Every user-facing string has a Chinese translation, and translations keep their placeholders."""

from __future__ import annotations

import string

import pytest

import i18n
from i18n.extract import extract_messages
from terminal.errors import DeviceNotFound


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.fixture(scope="module")
def msgids() -> list[str]:
    return [m.id for m in extract_messages() if m.id]


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_message_is_translated(msgids: list[str], language: str) -> None:
    catalog = i18n.catalog(language)
    missing = [m for m in msgids if not catalog.get(m)]
    assert not missing, (
        f"{len(missing)} messages lack a {language} translation (run python -m i18n.extract): {missing[:10]}"
    )


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_translations_keep_their_placeholders(language: str) -> None:
    wrong = {msgid: text for msgid, text in i18n.catalog(language).items() if _fields(msgid) != _fields(text)}
    assert not wrong


def test_switching_language_changes_errors_and_tells_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    heard: list[str] = []
    i18n.add_language_listener(heard.append)
    try:
        i18n.set_language("zh_CN")
        chinese = str(DeviceNotFound(serial="DF2X"))
        i18n.set_language("en")
        english = str(DeviceNotFound(serial="DF2X"))
    finally:
        i18n.remove_language_listener(heard.append)
    assert heard == ["zh_CN", "en"]
    assert english == "No attached unit with serial DF2X"
    assert "DF2X" in chinese and chinese != english


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("zh", "zh_CN"),
        ("zh_CN.UTF-8", "zh_CN"),
        ("zh-Hans", "zh_CN"),
        ("en_US.UTF-8", "en"),
        ("de_DE", "en"),
        (None, "en"),
    ],
)
def test_language_names_are_normalised(given: str | None, expected: str) -> None:
    assert i18n.normalize_language(given) == expected
