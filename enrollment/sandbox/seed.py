"""The sandbox's seeded world (CONTRACT): the distributor station's app, the terminal vendor's face-pay app, two
test merchants, a test buyer.

Seeding is idempotent: a re-start adds what is missing and changes nothing else (a station's key that was
set stays set).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from ..gateway import Method
from .models import App, Buyer, Merchant, Store

APP_ID = "2026000000000001"
APP_NAME = "Sandbox distributor station"
SUPPLIER_ID = "2088000000000100"
TERMINAL_APP_ID = "2026000000000002"
TERMINAL_APP_NAME = "Sandbox terminal face-pay app"
TERMINAL_VENDOR_ID = "2088000000000900"
"""The terminal vendor the terminal app acts for: it owns no inventory (payments.unit_at_store)."""
TERMINAL_METHODS = frozenset({Method.FACE_SESSION_INITIALIZE, Method.FACE_SESSION_VERIFY})
"""All the terminal app may call: it opens and verifies face sessions on units of any supplier's inventory; the
inventory owner's app pays with the face tokens it gets (dispatch refuses it every other method)."""
APP_METHODS = {TERMINAL_APP_ID: TERMINAL_METHODS}
"""Apps limited to some methods; an app not named here may call every method."""
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
    if session.get(App, TERMINAL_APP_ID) is None:
        app = App(app_id=TERMINAL_APP_ID, name=TERMINAL_APP_NAME, supplier_id=TERMINAL_VENDOR_ID, created=now)
        session.add(app)
    for merchant_id, (name, stores) in MERCHANTS.items():
        if session.get(Merchant, merchant_id) is None:
            session.add(Merchant(merchant_id=merchant_id, name=name))
            session.flush()
        for store_id, store_name in stores.items():
            if session.get(Store, (merchant_id, store_id)) is None:
                session.add(Store(merchant_id=merchant_id, store_id=store_id, name=store_name))
    if session.get(Buyer, BUYER_ID) is None:
        session.add(Buyer(buyer_id=BUYER_ID, logon_id=BUYER_LOGON_ID, face_id=BUYER_FACE_ID))


def seed_terminal_key(session: Session, public_key_pem: str) -> None:
    """Check the terminal app's requests with ``public_key_pem`` (its key is the sandbox's own, tls.py)."""
    app = session.get(App, TERMINAL_APP_ID)
    if app is not None and app.public_key != public_key_pem:
        app.public_key = public_key_pem
