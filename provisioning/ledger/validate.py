"""Checks on the names and labels callers hand to the ledger, so bad input never reaches a table."""

from __future__ import annotations

import re

from i18n import _

from .errors import InvalidLedgerInput
from .models import NAME_LENGTH, ROLES

_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_ACTION = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
SUBJECT_LENGTH = 255


def serial(value: object) -> str:
    if not isinstance(value, str) or not _SERIAL.fullmatch(value):
        raise InvalidLedgerInput(field="serial", detail=_("must be 1 to 64 letters, digits, '.', '_', ':' or '-'"))
    return value


def kind(value: object) -> str:
    if not isinstance(value, str) or not _KIND.fullmatch(value):
        raise InvalidLedgerInput(field="kind", detail=_("must be 1 to 32 lower-case letters, digits, '.', '_' or '-'"))
    return value


def action(value: object) -> str:
    if not isinstance(value, str) or not _ACTION.fullmatch(value):
        raise InvalidLedgerInput(
            field="action", detail=_("must be 1 to 64 lower-case letters, digits, '.', '_' or '-'")
        )
    return value


def role(value: object) -> str:
    if value not in ROLES:
        raise InvalidLedgerInput(field="role", detail=_("must be one of {roles}", roles=", ".join(ROLES)))
    assert isinstance(value, str)
    return value


def label(value: object, field: str, *, limit: int = NAME_LENGTH) -> str:
    """A printable, trimmed, non-empty name (station, operator, model, port path, subject)."""
    if (
        not isinstance(value, str)
        or not value
        or value != value.strip()
        or len(value) > limit
        or not value.isprintable()
    ):
        raise InvalidLedgerInput(field=field, detail=_("must be 1 to {limit} printable characters", limit=limit))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidLedgerInput(field=field, detail=_("text that is not valid Unicode")) from exc
    return value
