"""Checks on the names and labels callers hand to the ledger, so bad input never reaches a table."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping

from i18n import _

from .errors import InvalidLedgerInput
from .models import BDK_ORIGINS, NAME_LENGTH, ROLES

_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_ACTION = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_HEX_SERIAL = re.compile(r"[0-9A-Fa-f]{1,40}")
_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_FIGURE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
MAX_FIGURES = 64
MAX_FIGURE_INTEGER = 2**53  # the largest whole number a JSON reader keeps exactly
SUBJECT_LENGTH = 255
BDK_ID_BYTES = 4
INITIAL_KEY_ID_BYTES = 8
KCV_BYTES = (3, 5)  # legacy TDES KCV, AES-CMAC KCV: anything longer could be key material


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


def exact_bytes(value: object, field: str, length: int) -> bytes:
    """``length`` bytes (a BDK ID, an Initial Key ID)."""
    if not isinstance(value, bytes | bytearray) or len(value) != length:
        raise InvalidLedgerInput(field=field, detail=_("must be exactly {count} bytes", count=length))
    return bytes(value)


def kcv(value: object) -> bytes:
    """A key check value: 3 to 5 bytes, so that no key can be stored in its place."""
    low, high = KCV_BYTES
    if not isinstance(value, bytes | bytearray) or not low <= len(value) <= high:
        raise InvalidLedgerInput(field="kcv", detail=_("must be {low} to {high} bytes", low=low, high=high))
    return bytes(value)


def origin(value: object) -> str:
    if value not in BDK_ORIGINS:
        raise InvalidLedgerInput(field="origin", detail=_("must be one of {origins}", origins=", ".join(BDK_ORIGINS)))
    assert isinstance(value, str)
    return value


def distinct_labels(values: object, field: str) -> list[str]:
    """One or more distinct names (the custodians of a BDK)."""
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple):
        raise InvalidLedgerInput(field=field, detail=_("must be a list of names"))
    names = [label(v, field) for v in values]
    if not names or len(set(names)) != len(names):
        raise InvalidLedgerInput(field=field, detail=_("must name one or more different people"))
    return names


def certificate_serial(value: object) -> str:
    """An X.509 serial number as hex (at most 20 bytes), stored upper-case."""
    if not isinstance(value, str) or not _HEX_SERIAL.fullmatch(value):
        raise InvalidLedgerInput(field="certificate_serial", detail=_("must be 1 to 40 hexadecimal digits"))
    return value.upper()


def text(value: object, field: str, *, limit: int) -> str:
    """Free text such as an error or a reference: whitespace runs become one space, cut at ``limit``."""
    if not isinstance(value, str):
        raise InvalidLedgerInput(field=field, detail=_("must be text"))
    return label(" ".join(value.split())[:limit], field, limit=limit)


def sha256_hex(value: object, field: str) -> str:
    """A SHA-256 as 64 hexadecimal digits (a calibration blob's checksum), stored lower-case."""
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise InvalidLedgerInput(field=field, detail=_("must be 64 hexadecimal digits"))
    return value.lower()


def figures(value: object, field: str = "figures") -> dict[str, float | int]:
    """Named measurements: at most ``MAX_FIGURES`` names, each a finite number (numpy's too; never a bool), a
    whole one within 2^53 (JSON keeps no more exactly, and a measurement needs no more: a 128-bit number could
    carry key material)."""
    if not isinstance(value, Mapping) or len(value) > MAX_FIGURES:
        raise InvalidLedgerInput(field=field, detail=_("must be a map of at most {count} numbers", count=MAX_FIGURES))
    out: dict[str, float | int] = {}
    for name, number in value.items():
        if not isinstance(name, str) or not _FIGURE.fullmatch(name):
            raise InvalidLedgerInput(
                field=field, detail=_("a name must be 1 to 64 letters, digits, '.', '_' or '-', from a letter")
            )
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            raise InvalidLedgerInput(field=f"{field}.{name}", detail=_("not a finite number"))
        if isinstance(number, numbers.Integral):
            if abs(integer := int(number)) > MAX_FIGURE_INTEGER:
                raise InvalidLedgerInput(field=f"{field}.{name}", detail=_("a whole number beyond 2^53"))
            out[name] = integer
        elif math.isfinite(converted := float(number)):
            out[name] = converted
        else:
            raise InvalidLedgerInput(field=f"{field}.{name}", detail=_("not a finite number"))
    return out
