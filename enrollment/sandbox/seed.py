"""The sandbox's seeded world (CONTRACT): the distributor station's app, two test merchants, a test buyer.

Seeding is idempotent: a re-start adds what is missing and changes nothing else (a station's key that was
set stays set).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from .models import App, Buyer, Merchant, Store

APP_ID = "2026000000000001"
APP_NAME = "Sandbox distributor station"
SUPPLIER_ID = "2088000000000100"
MERCHANTS = {
    "2088000000000001": (
        "Sandbox Noodle Bar",
        {"S0001": "Noodle Bar, Main Street", "S0002": "Noodle Bar, Station Road"},
    ),
    "2088000000000002": ("Sandbox Grocer", {"S0001": "Grocer, Market Square"}),
}
TEST_MERCHANT = ("2088000000000001", "S0001")
BUYER_ID = "2088100000000001"
BUYER_LOGON_ID = "13800000001"
BUYER_FACE_ID = "sandbox-buyer-1"


def seed(session: Session, now: dt.datetime) -> None:
    """Add every seeded row that is missing."""
    if session.get(App, APP_ID) is None:
        session.add(App(app_id=APP_ID, name=APP_NAME, supplier_id=SUPPLIER_ID, public_key=None, created=now))
    for merchant_id, (name, stores) in MERCHANTS.items():
        if session.get(Merchant, merchant_id) is None:
            session.add(Merchant(merchant_id=merchant_id, name=name))
            session.flush()
        for store_id, store_name in stores.items():
            if session.get(Store, (merchant_id, store_id)) is None:
                session.add(Store(merchant_id=merchant_id, store_id=store_id, name=store_name))
    if session.get(Buyer, BUYER_ID) is None:
        session.add(Buyer(buyer_id=BUYER_ID, logon_id=BUYER_LOGON_ID, face_id=BUYER_FACE_ID))
