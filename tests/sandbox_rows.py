"""An in-memory sandbox database with a few rows, and handler calls straight through the registry.

For the handler tests of the payment and subsidy methods (tests/ is on sys.path): no server, no signing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import enrollment.sandbox.devices
import enrollment.sandbox.payments
import enrollment.sandbox.subsidy  # noqa: F401  # registers the handlers
from enrollment.gateway import CHINA, Method
from enrollment.sandbox.models import Base, Buyer, Device
from enrollment.sandbox.registry import HANDLERS, Call
from enrollment.sandbox.seed import APP_ID, MERCHANTS, SUPPLIER_ID, seed

NOODLES, GROCER = MERCHANTS


def china(text: str) -> dt.datetime:
    """``yyyy-mm-dd HH:MM[:SS]`` China time, as an aware time."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=CHINA)


def seeded_session() -> Session:
    """A session over a fresh in-memory database with the sandbox's seeds and a second buyer (``buyer-2``)."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = Session(engine)
    seed(session, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    session.add(Buyer(buyer_id="2088100000000002", logon_id="13800000002", face_id="buyer-2"))
    session.commit()
    return session


def add_unit(
    session: Session,
    serial: str,
    *,
    merchant: str | None = NOODLES,
    store: str = "S0001",
    activated: dt.datetime | None = None,
    supplier: str = SUPPLIER_ID,
) -> None:
    """A unit in ``supplier``'s inventory, bound to ``merchant``'s ``store`` unless merchant is None.

    Times go in as UTC: the shared tables' columns keep no zone on SQLite (as the sandbox writes them)."""
    activated = activated and activated.astimezone(dt.UTC)
    registered = activated or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    session.add(
        Device(
            serial=serial,
            model="NF-1",
            supplier_id=supplier,
            registered=registered,
            merchant_id=merchant,
            store_id=store if merchant else None,
            bound=registered if merchant else None,
            activated=activated,
        )
    )
    session.commit()


def handle(session: Session, method: Method, biz: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Run ``method``'s handler as the dispatcher would: at ``now`` in UTC, committed, or rolled back if refused."""
    try:
        reply = HANDLERS[method](Call(session, APP_ID, SUPPLIER_ID, method, biz, now.astimezone(dt.UTC)))
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return reply


def face_pay(
    session: Session,
    serial: str,
    now: dt.datetime,
    *,
    face_id: str = "sandbox-buyer-1",
    amount: str = "0.01",
    merchant: str = NOODLES,
    store: str = "S0001",
    number: str | None = None,
) -> dict[str, Any]:
    """A face payment on ``serial`` at ``now``: a face session, the buyer's face token, then trade.pay."""
    number = number or f"{serial}-{now:%Y%m%d%H%M%S%f}-{face_id}"
    where = {"serial": serial, "merchant_id": merchant, "store_id": store}
    opened = handle(session, Method.FACE_SESSION_INITIALIZE, {"out_request_no": f"i{number}", **where}, now)
    verified = handle(
        session,
        Method.FACE_SESSION_VERIFY,
        {"out_request_no": f"v{number}", "session_id": opened["session_id"], "serial": serial, "face_id": face_id},
        now,
    )
    biz = {"out_trade_no": number, "scene": "face", "auth_code": verified["ftoken"], "total_amount": amount}
    return handle(session, Method.TRADE_PAY, {**biz, "subject": "Noodles", **where}, now)
