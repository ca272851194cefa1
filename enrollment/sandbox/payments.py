"""The payment methods: face sessions and face tokens, trade pay, query, refund and refund query.

A unit initialises a face session at a merchant's store; verifying a known face issues a face token (ftoken),
good once, for 5 minutes, and only for a payment on that unit at that store.  Refunds never take back more
than was paid.  Repeated request numbers are answered by the gateway's idempotency before a handler runs,
except a refund's, which :func:`refund` decides itself (the same refund may name its trade either way).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..gateway import CHINA, Code, Method, SubCode
from .models import Buyer, Counter, Device, Merchant, Store
from .models_trade import FaceSession, Refund, Trade
from .registry import Call, Refused, fen_text, handles, inspects, time_text
from .seed import TERMINAL_APP_ID

TOKEN_LIFETIME = dt.timedelta(minutes=5)
"""How long a face session waits for a face, and a face token for its payment."""
AUTH_CODE = re.compile(r"[A-Za-z0-9_-]{1,128}")
TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
"""A subject or refund reason: one line of up to 256 characters."""
REFUND_SUCCESS = "REFUND_SUCCESS"


def next_number(session: Session, name: str) -> int:
    """The next value of the counter ``name`` (1 first), in the request's transaction."""
    counter = session.get(Counter, name)
    if counter is None:
        counter = Counter(name=name, value=0)
        session.add(counter)
    counter.value += 1
    return counter.value


def trade_number(call: Call) -> str:
    """A new trade number: the China date, "2200" and a 10-digit sequence ("2026113022000000000001")."""
    return f"{call.now.astimezone(CHINA):%Y%m%d}2200{next_number(call.session, 'trade'):010d}"


def ftoken_digest(ftoken: str) -> str:
    return hashlib.sha256(ftoken.encode()).hexdigest()


def masked(logon_id: str) -> str:
    """A buyer's logon id as replies show it: ``138****0001``."""
    return f"{logon_id[:3]}****{logon_id[-4:]}" if len(logon_id) > 7 else f"{logon_id[:1]}***"


def merchant_store(call: Call) -> tuple[str, str]:
    """The request's ``merchant_id`` and ``store_id``, refused unless the store is one of the merchant's."""
    merchant_id, store_id = call.text("merchant_id"), call.text("store_id")
    if call.session.get(Merchant, merchant_id) is None:
        raise Refused("MERCHANT_NOT_FOUND", f"no merchant {merchant_id}")
    if call.session.get(Store, (merchant_id, store_id)) is None:
        raise Refused("STORE_NOT_FOUND", f"merchant {merchant_id} has no store {store_id}")
    return merchant_id, store_id


def unit_at_store(call: Call, serial: str, merchant_id: str, store_id: str) -> Device:
    """The unit ``serial`` of the caller's supplier (of any supplier for the terminal app, which runs on every
    unit), refused when it is bound to another merchant or store.

    An unbound unit may take a payment anywhere (its face-pay check runs before it is bound); such trades
    never count for subsidy, which counts only trades at the unit's bound store (subsidy.unit_status).
    """
    device = call.session.get(Device, serial)
    if device is None or (device.supplier_id != call.supplier_id and call.app_id != TERMINAL_APP_ID):
        raise Refused("DEVICE_NOT_IN_INVENTORY", f"no unit {serial} in this supplier's inventory")
    if device.merchant_id is not None and (device.merchant_id, device.store_id) != (merchant_id, store_id):
        raise Refused("DEVICE_NOT_AT_STORE", f"unit {serial} is bound to another merchant or store")
    return device


@handles(Method.FACE_SESSION_INITIALIZE)
def initialize_face_session(call: Call) -> dict[str, Any]:
    call.only("out_request_no", "serial", "merchant_id", "store_id")
    number, serial = call.text("out_request_no"), call.text("serial")
    merchant_id, store_id = merchant_store(call)
    unit_at_store(call, serial, merchant_id, store_id)
    face = FaceSession(
        session_id="fs" + secrets.token_hex(16),
        app_id=call.app_id,
        serial=serial,
        merchant_id=merchant_id,
        store_id=store_id,
        created=call.now,
        expires=call.now + TOKEN_LIFETIME,
    )
    call.session.add(face)
    return {"out_request_no": number, "session_id": face.session_id, "expires": time_text(face.expires)}


@handles(Method.FACE_SESSION_VERIFY)
def verify_face(call: Call) -> dict[str, Any]:
    """Recognise a buyer's face in an open session and issue the session's one face token."""
    call.only("out_request_no", "session_id", "serial", "face_id")
    number, session_id = call.text("out_request_no"), call.text("session_id")
    serial, face_id = call.text("serial"), call.text("face_id")
    face = call.session.get(FaceSession, session_id)
    if (
        face is None
        or face.app_id != call.app_id
        or face.serial != serial
        or face.ftoken_digest is not None
        or call.now >= face.expires
    ):
        raise Refused("SESSION_INVALID", "no open face session with that id on this unit")
    buyer = call.session.scalars(select(Buyer).where(Buyer.face_id == face_id)).first()
    if buyer is None:
        raise Refused("FACE_NOT_RECOGNISED", "the face is not one of a known buyer")
    ftoken = new_ftoken()
    face.ftoken_digest, face.buyer_id = ftoken_digest(ftoken), buyer.buyer_id
    face.ftoken_expires = call.now + TOKEN_LIFETIME
    return {"out_request_no": number, "ftoken": ftoken, "expires": time_text(face.ftoken_expires)}


def new_ftoken() -> str:
    return "ftk" + secrets.token_urlsafe(24)


def reissue_ftoken(session: Session, digest: str, now: dt.datetime) -> str:
    """A fresh face token in place of the one whose SHA-256 is ``digest``, for a repeated verify (its reply was
    lost): the earlier token stops working and the fresh one keeps its expiry.  Refused once it paid or expired."""
    face = session.scalars(select(FaceSession).where(FaceSession.ftoken_digest == digest)).first()
    if face is None or face.ftoken_used is not None or face.ftoken_expires is None or now >= face.ftoken_expires:
        raise Refused("SESSION_INVALID", "the session's face token was used or has expired; open a new face session")
    ftoken = new_ftoken()
    face.ftoken_digest = ftoken_digest(ftoken)
    return ftoken


@handles(Method.TRADE_PAY)
def pay(call: Call) -> dict[str, Any]:
    """Take a payment with a face token, on the unit and at the store the token was issued for.

    The token comes from a face session the caller opened, or the terminal app opened on the unit (then the
    caller is the unit's inventory owner: ``unit_at_store`` checked it)."""
    call.only("out_trade_no", "scene", "auth_code", "total_amount", "subject", "merchant_id", "store_id", "serial")
    out_trade_no = call.text("out_trade_no")
    call.choice("scene", ("face",))
    auth_code, amount = call.text("auth_code", AUTH_CODE), call.amount("total_amount")
    subject, serial = call.text("subject", TEXT), call.text("serial")
    merchant_id, store_id = merchant_store(call)
    unit_at_store(call, serial, merchant_id, store_id)  # it may have been bound since its session opened
    face = call.session.scalars(
        select(FaceSession).where(FaceSession.ftoken_digest == ftoken_digest(auth_code))
    ).first()
    if (
        face is None
        or face.buyer_id is None
        or face.ftoken_expires is None
        or face.ftoken_used is not None
        or call.now >= face.ftoken_expires
        or face.app_id not in (call.app_id, TERMINAL_APP_ID)
        or (face.serial, face.merchant_id, face.store_id) != (serial, merchant_id, store_id)
    ):
        raise Refused("AUTH_CODE_INVALID", "the face token is unknown, used, expired or for another unit or store")
    face.ftoken_used = call.now
    trade = Trade(
        trade_no=trade_number(call),
        app_id=call.app_id,
        out_trade_no=out_trade_no,
        serial=serial,
        merchant_id=merchant_id,
        store_id=store_id,
        buyer_id=face.buyer_id,
        subject=subject,
        amount_fen=amount,
        refunded_fen=0,
        created=call.now,
    )
    call.session.add(trade)
    buyer = call.session.get(Buyer, face.buyer_id)
    return {
        "out_trade_no": out_trade_no,
        "trade_no": trade.trade_no,
        "buyer_logon_id": masked(buyer.logon_id if buyer else ""),
        "total_amount": fen_text(amount),
        "gmt_payment": time_text(call.now),
        "trade_status": trade.status,
    }


def find_trade(call: Call) -> Trade:
    """The caller's trade named by ``trade_no`` and/or ``out_trade_no`` (both must name the same one)."""
    trade_no, out_trade_no = call.optional("trade_no"), call.optional("out_trade_no")
    if trade_no is None and out_trade_no is None:
        raise Refused(SubCode.MISSING_PARAMETER, "trade_no or out_trade_no is required", Code.MISSING_PARAMETER)
    query = select(Trade).where(Trade.app_id == call.app_id)
    if trade_no is not None:
        query = query.where(Trade.trade_no == trade_no)
    if out_trade_no is not None:
        query = query.where(Trade.out_trade_no == out_trade_no)
    trade = call.session.scalars(query).first()
    if trade is None:
        raise Refused("TRADE_NOT_EXIST", "no such trade")
    return trade


@handles(Method.TRADE_QUERY)
def query_trade(call: Call) -> dict[str, Any]:
    call.only("trade_no", "out_trade_no")
    trade = find_trade(call)
    return {
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "trade_status": trade.status,
        "total_amount": fen_text(trade.amount_fen),
        "refunded_amount": fen_text(trade.refunded_fen),
    }


@handles(Method.TRADE_REFUND)
def refund(call: Call) -> dict[str, Any]:
    """Refund part or all of a trade; the refunds of a trade never add up to more than was paid.

    A refund number is the app's, once: repeated for the same trade and amount (the trade named either way,
    any reason) it answers the first refund again (dispatch.SELF_IDEMPOTENT); for anything else it is refused.
    """
    call.only("out_request_no", "trade_no", "out_trade_no", "refund_amount", "refund_reason")
    number, amount = call.text("out_request_no"), call.amount("refund_amount")
    reason = call.optional("refund_reason", TEXT)
    trade = find_trade(call)
    done = call.session.scalars(
        select(Refund).join(Trade).where(Trade.app_id == call.app_id, Refund.out_request_no == number)
    ).first()
    if done is not None and (done.trade_no, done.amount_fen) != (trade.trade_no, amount):
        raise Refused(
            SubCode.DUPLICATE_REQUEST_NO, "out_request_no was used for another refund", Code.INVALID_PARAMETER
        )
    if done is None:
        if trade.refunded_fen + amount > trade.amount_fen:
            left = fen_text(trade.amount_fen - trade.refunded_fen)
            raise Refused("REFUND_AMOUNT_EXCEEDED", f"at most {left} is left to refund")
        done = Refund(
            trade_no=trade.trade_no, out_request_no=number, amount_fen=amount, reason=reason, created=call.now
        )
        call.session.add(done)
        trade.refunded_fen += amount
    return {
        "out_request_no": number,
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "refund_amount": fen_text(done.amount_fen),
        "refunded_total": fen_text(trade.refunded_fen),
        "gmt_refund": time_text(done.created),
    }


@handles(Method.TRADE_REFUND_QUERY)
def query_refund(call: Call) -> dict[str, Any]:
    call.only("out_request_no", "trade_no", "out_trade_no")
    number = call.text("out_request_no")
    trade = find_trade(call)
    done = call.session.get(Refund, (trade.trade_no, number))
    if done is None:
        raise Refused("REFUND_NOT_EXIST", f"no refund {number} of this trade")
    return {
        "out_request_no": number,
        "trade_no": trade.trade_no,
        "refund_amount": fen_text(done.amount_fen),
        "refund_status": REFUND_SUCCESS,
    }


@inspects("trades")
def trades_view(session: Session) -> list[dict[str, Any]]:
    """Every trade, oldest first, for trainers and tests (``GET /sandbox/trades``)."""
    return [
        {
            "trade_no": t.trade_no,
            "out_trade_no": t.out_trade_no,
            "serial": t.serial,
            "merchant_id": t.merchant_id,
            "amount": fen_text(t.amount_fen),
            "status": t.status,
            "refunded": t.refunded_fen > 0,
            "refunded_amount": fen_text(t.refunded_fen),
            "created": time_text(t.created),
        }
        for t in session.scalars(select(Trade).order_by(Trade.created, Trade.trade_no))
    ]
