"""The subsidy programs file: the packaged programs, and a clear error naming what is wrong in a bad file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from enrollment.errors import EnrollmentError
from enrollment.sandbox.programs import PACKAGED_PROGRAMS, Program, ProgramsInvalid, newest, read_programs

GOOD = """\
[programs.2019]
name = "Dragonfly 2019"
published = 2019-04-01
per_user = "0.70"
monthly_cap = "400.00"
unit_cap = "1200.00"
months = 5
"""


def test_the_packaged_programs() -> None:
    programs = read_programs(PACKAGED_PROGRAMS)
    assert programs == {
        "2019": Program("2019", "Dragonfly 2019", dt.date(2019, 4, 1), 70, 40000, 120000, 5),
        "2020": Program("2020", "Dragonfly 2020", dt.date(2020, 1, 1), 70, 80000, 160000, 5),
    }
    assert newest(programs).id == "2020"


BAD = [
    ("an amount as a float", GOOD.replace('"0.70"', "0.70"), "program 2019, per_user"),
    ("an amount with one decimal", GOOD.replace('"0.70"', '"0.7"'), "program 2019, per_user"),
    ("a zero amount", GOOD.replace('"0.70"', '"0.00"'), "program 2019, per_user"),
    ("a missing field", GOOD.replace("months = 5\n", ""), "program 2019, months: missing field"),
    ("an unknown field", GOOD + 'per_day = "1.00"\n', "program 2019, per_day: unknown field"),
    ("no months", GOOD.replace("months = 5", "months = 0"), "program 2019, months"),
    ("months as true", GOOD.replace("months = 5", "months = true"), "program 2019, months"),
    ("a date as text", GOOD.replace("2019-04-01", '"2019-04-01"'), "program 2019, published"),
    ("a date and time", GOOD.replace("2019-04-01", "2019-04-01T00:00:00"), "program 2019, published"),
    ("an empty name", GOOD.replace('"Dragonfly 2019"', '" "'), "program 2019, name"),
    ("caps out of order", GOOD.replace('"1200.00"', '"399.00"'), "program 2019, monthly_cap"),
    ("a bad id", GOOD.replace("[programs.2019]", '[programs."20 19"]'), "program 20 19, id"),
    ("two programs published the same day", GOOD + GOOD.replace("programs.2019", "programs.2019b"), "same published"),
    ("no programs", "", "[programs.ID] tables"),
    ("something else besides", "owner = 1\n" + GOOD, "[programs.ID] tables"),
    ("not TOML", "[programs.2019\n", "could not be read"),
]


@pytest.mark.parametrize(("text", "says"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_programs_file_is_refused_saying_where(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "programs.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramsInvalid) as caught:
        read_programs(path)
    assert isinstance(caught.value, EnrollmentError)
    assert str(path) in str(caught.value) and says in str(caught.value)
    assert caught.value.remedy_text


def test_a_missing_programs_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProgramsInvalid, match="could not be read"):
        read_programs(tmp_path / "none.toml")
