"""Subsidy arithmetic, table-driven, on the pure function: caps, the five-month window, one user per day."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_rows import china

from enrollment.gateway import CHINA
from enrollment.sandbox.programs import packaged_programs
from enrollment.sandbox.subsidy import FacePayment, add_months, reckon_subsidy

ACTIVATED = china("2026-01-10 10:00")
"""Month 1 is [01-10 10:00, 02-10 10:00) China time, ..., month 5 ends 06-10 10:00."""


def pay(buyer: str, when: str, refunded: int = 0) -> FacePayment:
    return FacePayment(buyer, china(when), 100, refunded)


def crowd(count: int, when: str) -> list[FacePayment]:
    """``count`` different buyers paying at ``when``."""
    return [pay(f"crowd-{when}-{i}", when) for i in range(count)]


USERS_PER_DAY = [
    (
        "one buyer twice a day counts once",
        [pay("a", "2026-01-11 09:00"), pay("a", "2026-01-11 20:00")],
        [1, 0, 0, 0, 0],
    ),
    (
        "a second buyer the same day counts",
        [pay("a", "2026-01-11 09:00"), pay("b", "2026-01-11 09:05")],
        [2, 0, 0, 0, 0],
    ),
    (
        "the same buyer on two days counts twice",
        [pay("a", "2026-01-11 09:00"), pay("a", "2026-01-12 09:00")],
        [2, 0, 0, 0, 0],
    ),
    (
        "the day turns at China midnight",
        [pay("a", "2026-01-11 23:59:59"), pay("a", "2026-01-12 00:00:00")],
        [2, 0, 0, 0, 0],
    ),
    (
        "one UTC day, two China days",  # 15:30 and 16:30 UTC on 01-11
        [pay("a", "2026-01-11 23:30"), pay("a", "2026-01-12 00:30")],
        [2, 0, 0, 0, 0],
    ),
    (
        "two UTC days, one China day",  # 23:30 UTC on 01-11 and 00:30 UTC on 01-12
        [pay("a", "2026-01-12 07:30"), pay("a", "2026-01-12 08:30")],
        [1, 0, 0, 0, 0],
    ),
    ("a wholly refunded trade is not counted", [pay("a", "2026-01-11 09:00", refunded=100)], [0, 0, 0, 0, 0]),
    ("a partly refunded trade is counted", [pay("a", "2026-01-11 09:00", refunded=99)], [1, 0, 0, 0, 0]),
    (
        "a refunded trade does not hide the buyer's other trade that day",
        [pay("a", "2026-01-11 09:00", refunded=100), pay("a", "2026-01-11 10:00")],
        [1, 0, 0, 0, 0],
    ),
    ("before activation is not counted", [pay("a", "2026-01-10 09:59:59")], [0, 0, 0, 0, 0]),
    ("the activation moment is in month 1", [pay("a", "2026-01-10 10:00")], [1, 0, 0, 0, 0]),
    ("the last moment of month 1", [pay("a", "2026-02-10 09:59:59")], [1, 0, 0, 0, 0]),
    ("the first moment of month 2", [pay("a", "2026-02-10 10:00")], [0, 1, 0, 0, 0]),
    ("the last moment of month 5", [pay("a", "2026-06-10 09:59:59")], [0, 0, 0, 0, 1]),
    ("the window's end is outside", [pay("a", "2026-06-10 10:00")], [0, 0, 0, 0, 0]),
    (
        "a day across a month boundary counts once, in its first trade's month",
        [pay("a", "2026-03-10 11:00"), pay("a", "2026-03-10 09:00")],
        [0, 1, 0, 0, 0],
    ),
    (
        "a buyer each month",
        [pay("a", f"2026-0{m}-15 12:00") for m in range(1, 7)],
        [1, 1, 1, 1, 1],
    ),
]


@pytest.mark.parametrize(("payments", "users"), [c[1:] for c in USERS_PER_DAY], ids=[c[0] for c in USERS_PER_DAY])
def test_valid_users_per_month(payments: list[FacePayment], users: list[int]) -> None:
    reckoning = reckon_subsidy(packaged_programs()["2019"], ACTIVATED, payments, china("2026-07-01 00:00"))
    assert [m.users for m in reckoning.months] == users
    assert reckoning.users == sum(users)
    assert [m.earned_fen for m in reckoning.months] == [70 * u for u in users]


CAPS = [
    ("2019", "under the monthly cap", [571], [39970], 39970),
    ("2019", "over the monthly cap", [572], [40000], 40000),
    ("2020", "the 2020 monthly cap is 800.00", [1143, 1142], [80000, 79940], 159940),
    ("2019", "the unit cap stops a full month", [600, 600, 600, 600, 600], [40000, 40000, 40000, 0, 0], 120000),
    ("2020", "the unit cap cuts a month short", [1200, 1000, 300, 5], [80000, 70000, 10000, 0, 0], 160000),
    ("2019", "months under the caps add up", [10, 0, 20, 0, 30], [700, 0, 1400, 0, 2100], 4200),
]


@pytest.mark.parametrize(
    ("program_id", "users", "earned", "total"), [(c[0], *c[2:]) for c in CAPS], ids=[c[1] for c in CAPS]
)
def test_monthly_and_unit_caps(program_id: str, users: list[int], earned: list[int], total: int) -> None:
    program = packaged_programs()[program_id]
    payments = [p for m, count in enumerate(users, start=2) for p in crowd(count, f"2026-0{m}-01 12:00")]
    reckoning = reckon_subsidy(program, ACTIVATED, payments, china("2026-07-01 00:00"))
    assert [m.users for m in reckoning.months] == users + [0] * (5 - len(users))
    assert [m.earned_fen for m in reckoning.months] == earned + [0] * (5 - len(earned))
    assert reckoning.earned_fen == total
    assert reckoning.cap_left_fen == program.unit_cap_fen - total


def test_the_same_buyer_on_two_units_counts_once_on_each() -> None:
    program = packaged_programs()["2019"]
    trades = {"unit-1": [pay("a", "2026-01-11 09:00")], "unit-2": [pay("a", "2026-01-11 09:01")]}
    users = [reckon_subsidy(program, ACTIVATED, unit, ACTIVATED).users for unit in trades.values()]
    assert users == [1, 1]


MONTHS_LEFT = [
    ("before activation", "2026-01-01 00:00", 5),
    ("at activation", "2026-01-10 10:00", 5),
    ("in month 3", "2026-04-01 00:00", 3),
    ("the last moment of month 5", "2026-06-10 09:59:59", 1),
    ("at the window's end", "2026-06-10 10:00", 0),
    ("a year on", "2027-01-10 10:00", 0),
]


@pytest.mark.parametrize(("now", "left"), [c[1:] for c in MONTHS_LEFT], ids=[c[0] for c in MONTHS_LEFT])
def test_months_left(now: str, left: int) -> None:
    assert reckon_subsidy(packaged_programs()["2020"], ACTIVATED, [], china(now)).months_left == left


CALENDAR = [
    ("month ends are clamped", "2026-01-31 12:00", ["02-28", "03-31", "04-30", "05-31", "06-30"]),
    ("a leap February", "2028-01-30 12:00", ["02-29", "03-30", "04-30", "05-30", "06-30"]),
    ("the year turns", "2026-10-31 12:00", ["11-30", "12-31", "01-31", "02-28", "03-31"]),
    ("China's date, not UTC's (01-31 20:00 UTC)", "2026-02-01 04:00", ["03-01", "04-01", "05-01", "06-01", "07-01"]),
]


@pytest.mark.parametrize(("activated", "ends"), [c[1:] for c in CALENDAR], ids=[c[0] for c in CALENDAR])
def test_subsidy_months_are_calendar_months_in_china_time(activated: str, ends: list[str]) -> None:
    start = china(activated)
    reckoning = reckon_subsidy(packaged_programs()["2019"], start, [], start)
    assert [f"{m.end.astimezone(start.tzinfo):%m-%d %H:%M}" for m in reckoning.months] == [
        f"{end} {start:%H:%M}" for end in ends
    ]
    assert [m.start for m in reckoning.months[1:]] == [m.end for m in reckoning.months[:-1]]
    assert reckoning.window_start == start
    assert add_months(start, 0) == start and add_months(start, 0).tzinfo == dt.UTC


PAYMENTS = st.lists(
    st.builds(
        FacePayment,
        buyer_id=st.sampled_from(["a", "b", "c"]),
        paid=st.integers(-40 * 86400, 200 * 86400).map(lambda s: ACTIVATED + dt.timedelta(seconds=s)),
        amount_fen=st.just(100),
        refunded_fen=st.sampled_from([0, 0, 50, 100]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(payments=PAYMENTS, program_id=st.sampled_from(["2019", "2020"]))
def test_the_arithmetic_keeps_its_invariants(payments: list[FacePayment], program_id: str) -> None:
    program = packaged_programs()[program_id]
    reckoning = reckon_subsidy(program, ACTIVATED, payments, ACTIVATED)
    counted = {
        (p.buyer_id, p.paid.astimezone(CHINA).date())
        for p in payments
        if p.refunded_fen < p.amount_fen and ACTIVATED <= p.paid < reckoning.window_end
    }
    assert reckoning.users == sum(m.users for m in reckoning.months) == len(counted)
    assert reckoning.earned_fen == sum(m.earned_fen for m in reckoning.months) <= program.unit_cap_fen
    assert all(m.earned_fen <= min(m.users * program.per_user_fen, program.monthly_cap_fen) for m in reckoning.months)
    assert reckoning.cap_left_fen == program.unit_cap_fen - reckoning.earned_fen
    assert reckon_subsidy(program, ACTIVATED, reversed(payments), ACTIVATED) == reckoning
