"""Subsidy programs as versioned data (programs.toml beside this module), checked field by field on loading.

Adding a program is a table in the file, not code.  Amounts are held in fen (integers) from the file's text
("0.70"), so no float ever touches money.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i18n import N_, _

from ..errors import EnrollmentError
from .registry import AMOUNT

PACKAGED_PROGRAMS = Path(__file__).with_name("programs.toml")
PROGRAM_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z.-]{0,15}")
"""A program's id (its version, "2019"), as the enrollment table and the business content carry it."""
FIELDS = ("name", "published", "per_user", "monthly_cap", "unit_cap", "months")
MOST_MONTHS = 60


class ProgramsInvalid(EnrollmentError):
    """The programs file cannot be used; ``detail`` says which program and field and why."""

    message = N_("The subsidy programs in {path} are not valid: {detail}")
    remedy = N_(
        "Fix the file: each [programs.ID] table needs name, published, per_user, monthly_cap, unit_cap "
        'and months, amounts as text such as "0.70" (docs/subsidy.md).'
    )


@dataclass(frozen=True)
class Program:
    """One version of the subsidy program; amounts in fen."""

    id: str
    name: str
    published: dt.date
    per_user_fen: int
    monthly_cap_fen: int
    unit_cap_fen: int
    months: int


def fen(text: str) -> int:
    """An amount in yuan as the file and the business content write it ("400.00"), in fen."""
    whole, cents = text.split(".")
    return int(whole) * 100 + int(cents)


def read_programs(path: Path) -> dict[str, Program]:
    """Every program in the file at ``path`` by id; ProgramsInvalid naming the first problem otherwise."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProgramsInvalid(path=str(path), detail=_("it could not be read: {reason}", reason=exc)) from None
    tables = data.get("programs")
    if set(data) != {"programs"} or not isinstance(tables, dict) or not tables:
        raise ProgramsInvalid(path=str(path), detail=_("it must hold [programs.ID] tables and nothing else"))
    programs = {key: _program(path, key, row) for key, row in tables.items()}
    dates = [p.published for p in programs.values()]
    if len(set(dates)) != len(dates):
        raise ProgramsInvalid(path=str(path), detail=_("two programs have the same published date"))
    return programs


def _program(path: Path, key: str, row: Any) -> Program:
    def invalid(field: str, reason: str) -> ProgramsInvalid:
        return ProgramsInvalid(
            path=str(path), detail=_("program {program}, {field}: {reason}", program=key, field=field, reason=_(reason))
        )

    if not PROGRAM_ID.fullmatch(key):
        raise invalid("id", N_("an id is 1 to 16 letters, digits, dots or dashes"))
    if not isinstance(row, dict):
        raise invalid("-", N_("a program is a table"))
    odd = sorted(set(FIELDS) ^ set(row))
    if odd:
        raise invalid(odd[0], N_("unknown field") if odd[0] in row else N_("missing field"))
    name, published, months = row["name"], row["published"], row["months"]
    if not isinstance(name, str) or not name.strip():
        raise invalid("name", N_("a name is non-empty text"))
    if not isinstance(published, dt.date) or isinstance(published, dt.datetime):
        raise invalid("published", N_("a date such as 2020-01-01"))
    if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= MOST_MONTHS:
        raise invalid("months", N_("a whole number of months from 1 to 60"))
    amounts: dict[str, int] = {}
    for field in ("per_user", "monthly_cap", "unit_cap"):
        value = row[field]
        if not isinstance(value, str) or not AMOUNT.fullmatch(value) or fen(value) < 1:
            raise invalid(field, N_('an amount is text in yuan with two decimals, at least "0.01"'))
        amounts[field] = fen(value)
    if not amounts["per_user"] <= amounts["monthly_cap"] <= amounts["unit_cap"]:
        raise invalid("monthly_cap", N_("per_user <= monthly_cap <= unit_cap must hold"))
    return Program(key, name, published, amounts["per_user"], amounts["monthly_cap"], amounts["unit_cap"], months)


@functools.cache
def packaged_programs() -> dict[str, Program]:
    """The programs the sandbox ships with (read once, on first use)."""
    return read_programs(PACKAGED_PROGRAMS)


def newest(programs: dict[str, Program]) -> Program:
    """The program published last: a new enrollment's default."""
    return max(programs.values(), key=lambda p: p.published)
