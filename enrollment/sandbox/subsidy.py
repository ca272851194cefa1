"""Subsidy arithmetic (a pure function over a unit's trades) and the enrollment and status methods.

The rules (docs/subsidy.md): a unit's subsidy months are the program's ``months`` calendar months from its
activation, month k being [activation + k months, activation + k+1 months) in China time.  A *valid user* is
one buyer per unit per China-time day, counted from the successful face-pay trades on the unit that are not
wholly refunded; a day's user counts in the month of their first such trade that day.  Each month earns
users x per_user up to the monthly cap, and the months together at most the unit cap (a month that would pass
it earns what is left).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..gateway import CHINA, Code, Method, SubCode
from .models import App, Device, Merchant, SubsidyEnrollment
from .models_trade import Trade, as_utc
from .programs import PROGRAM_ID, Program, newest, packaged_programs
from .registry import Call, Refused, fen_text, handles, time_text


@dataclass(frozen=True)
class FacePayment:
    """A face-pay trade on the unit, as the arithmetic sees it (the buyer, when, how much, how much refunded)."""

    buyer_id: str
    paid: dt.datetime
    amount_fen: int
    refunded_fen: int = 0


@dataclass(frozen=True)
class SubsidyMonth:
    index: int
    """1 to the program's ``months``."""
    start: dt.datetime
    end: dt.datetime
    users: int
    earned_fen: int


@dataclass(frozen=True)
class Reckoning:
    """A unit's subsidy under a program at a moment."""

    months: tuple[SubsidyMonth, ...]
    users: int
    earned_fen: int
    cap_left_fen: int
    """The unit cap less what was earned."""
    months_left: int
    """Subsidy months not yet over (the current one included); 0 once the window has closed."""

    @property
    def window_start(self) -> dt.datetime:
        return self.months[0].start

    @property
    def window_end(self) -> dt.datetime:
        return self.months[-1].end


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` plus ``months`` calendar months in China time, the day clamped to the month's last (aware UTC)."""
    local = moment.astimezone(CHINA)
    year, month0 = divmod(local.year * 12 + local.month - 1 + months, 12)
    day = min(local.day, calendar.monthrange(year, month0 + 1)[1])
    return local.replace(year=year, month=month0 + 1, day=day).astimezone(dt.UTC)


def subsidy_window(program: Program, activated: dt.datetime) -> list[dt.datetime]:
    """The boundaries of the subsidy months: ``months + 1`` times from the activation to the window's end."""
    return [add_months(activated, k) for k in range(program.months + 1)]


def reckon_subsidy(
    program: Program, activated: dt.datetime, payments: Iterable[FacePayment], now: dt.datetime
) -> Reckoning:
    """A unit's subsidy under ``program`` from its activation time and its face-pay trades, as at ``now``."""
    bounds = subsidy_window(program, activated)
    first_month: dict[tuple[str, dt.date], int] = {}
    for pay in sorted(payments, key=lambda p: p.paid):
        if pay.refunded_fen >= pay.amount_fen or not bounds[0] <= pay.paid < bounds[-1]:
            continue
        day = (pay.buyer_id, pay.paid.astimezone(CHINA).date())
        first_month.setdefault(day, bisect.bisect_right(bounds, pay.paid) - 1)
    users = Tally(first_month.values())
    months, left = [], program.unit_cap_fen
    for k in range(program.months):
        earned = min(users[k] * program.per_user_fen, program.monthly_cap_fen, left)
        left -= earned
        months.append(SubsidyMonth(k + 1, bounds[k], bounds[k + 1], users[k], earned))
    return Reckoning(
        months=tuple(months),
        users=len(first_month),
        earned_fen=program.unit_cap_fen - left,
        cap_left_fen=left,
        months_left=sum(1 for end in bounds[1:] if end > now),
    )


def program_named(program_id: str) -> Program:
    program = packaged_programs().get(program_id)
    if program is None:
        raise Refused("PROGRAM_NOT_FOUND", f"no subsidy program {program_id}")
    return program


def own_device(call: Call, serial: str) -> Device:
    """The unit ``serial`` in the calling supplier's inventory; another supplier's unit is not found either."""
    device = call.session.get(Device, serial)
    if device is None or device.supplier_id != call.supplier_id:
        raise Refused("DEVICE_NOT_FOUND", f"no unit {serial} in the supplier's inventory")
    return device


@handles(Method.SUBSIDY_ENROLL)
def enroll(call: Call) -> dict[str, Any]:
    """Enroll an activated unit in a program (default: the newest, or the unit's own once enrolled)."""
    call.only("out_request_no", "serial", "program")
    number, serial = call.text("out_request_no"), call.text("serial")
    wanted = call.optional("program", PROGRAM_ID)
    device = own_device(call, serial)
    if device.activated is None:
        raise Refused("DEVICE_NOT_ACTIVATED", f"unit {device.serial} is not activated")
    enrollment = call.session.get(SubsidyEnrollment, device.serial)
    if wanted is None:
        wanted = enrollment.program if enrollment else newest(packaged_programs()).id
    program = program_named(wanted)
    if enrollment is None:
        enrollment = SubsidyEnrollment(serial=device.serial, program=program.id, enrolled=call.now.astimezone(dt.UTC))
        call.session.add(enrollment)
    elif enrollment.program != program.id:
        raise Refused("ALREADY_ENROLLED", f"unit {device.serial} is enrolled in program {enrollment.program}")
    bounds = subsidy_window(program, as_utc(device.activated))
    return {
        "out_request_no": number,
        "serial": device.serial,
        "program": program.id,
        "enrolled": time_text(as_utc(enrollment.enrolled)),
        "window_start": time_text(bounds[0]),
        "window_end": time_text(bounds[-1]),
    }


@handles(Method.SUBSIDY_QUERY)
def query(call: Call) -> dict[str, Any]:
    """Subsidy status of one unit (``serial``) or of every unit of the supplier at a merchant (``merchant_id``)."""
    call.only("serial", "merchant_id")
    serial, merchant_id = call.optional("serial"), call.optional("merchant_id")
    if serial is None and merchant_id is None:
        raise Refused(SubCode.MISSING_PARAMETER, "serial or merchant_id is required", Code.MISSING_PARAMETER)
    if serial is not None and merchant_id is not None:
        raise Refused(SubCode.INVALID_PARAMETER, "give serial or merchant_id, not both", Code.INVALID_PARAMETER)
    if serial is not None:
        devices = [own_device(call, serial)]
        if devices[0].merchant_id is None:
            raise Refused("DEVICE_NOT_BOUND", f"unit {serial} is not bound to a store")
    else:
        if call.session.get(Merchant, merchant_id) is None:
            raise Refused("MERCHANT_NOT_FOUND", f"no merchant {merchant_id}")
        devices = list(
            call.session.scalars(
                select(Device)
                .where(Device.merchant_id == merchant_id, Device.supplier_id == call.supplier_id)
                .order_by(Device.serial)
            )
        )
    units = [unit_status(call, device) for device in devices]
    return {"units": units, "earned": fen_text(sum(unit.pop("earned_fen") for unit in units))}


def unit_status(call: Call, device: Device) -> dict[str, Any]:
    """One unit's entry of a status reply (plus ``earned_fen`` for the total, taken out by the caller)."""
    enrollment = call.session.get(SubsidyEnrollment, device.serial)
    status: dict[str, Any] = {
        "serial": device.serial,
        "merchant_id": device.merchant_id,
        "store_id": device.store_id,
        "program": None,
        "activated": None if device.activated is None else time_text(as_utc(device.activated)),
        "window_end": None,
        "months": [],
        "users": 0,
        "earned": "0.00",
        "cap_left": "0.00",
        "months_left": 0,
        "earned_fen": 0,
    }
    if enrollment is None or device.activated is None:
        return status
    program = program_named(enrollment.program)
    trades = call.session.scalars(  # at its bound store, by its supplier's apps (the window starts at activation)
        select(Trade)
        .join(App, App.app_id == Trade.app_id)
        .where(
            Trade.serial == device.serial,
            Trade.merchant_id == device.merchant_id,
            Trade.store_id == device.store_id,
            App.supplier_id == device.supplier_id,
        )
    )
    payments = [FacePayment(t.buyer_id, t.created, t.amount_fen, t.refunded_fen) for t in trades]
    reckoning = reckon_subsidy(program, as_utc(device.activated), payments, call.now)
    status.update(
        program=program.id,
        window_end=time_text(reckoning.window_end),
        months=[
            {
                "index": m.index,
                "start": time_text(m.start),
                "end": time_text(m.end),
                "users": m.users,
                "earned": fen_text(m.earned_fen),
            }
            for m in reckoning.months
        ],
        users=reckoning.users,
        earned=fen_text(reckoning.earned_fen),
        cap_left=fen_text(reckoning.cap_left_fen),
        months_left=reckoning.months_left,
        earned_fen=reckoning.earned_fen,
    )
    return status
