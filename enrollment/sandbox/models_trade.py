"""The sandbox's payment tables: face sessions (and the face tokens they issue), trades and refunds.

Same :class:`~.models.Base` as the shared tables.  Money in fen; times go in and come out as aware UTC
(:class:`UtcDateTime`), whatever the database keeps.  A face token is kept only as its SHA-256.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Dialect, ForeignKey, ForeignKeyConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

from .models import Base

TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as aware UTC; a naive time (SQLite keeps no zone) is taken to be UTC already."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A time stored as UTC and read back aware, on SQLite (which drops the zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else as_utc(value)


class FaceSession(Base):
    """A unit's face session at a merchant's store; verifying a face issues one single-use face token."""

    __tablename__ = "face_sessions"
    __table_args__ = (ForeignKeyConstraint(["merchant_id", "store_id"], ["stores.merchant_id", "stores.store_id"]),)
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(64))
    merchant_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ftoken_digest: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    """SHA-256 (hex) of the face token issued; the token itself is never stored (not in the idempotency table
    either: dispatch.SECRET_REPLIES)."""
    buyer_id: Mapped[str | None] = mapped_column(ForeignKey("buyers.buyer_id"), nullable=True)
    ftoken_expires: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ftoken_used: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Trade(Base):
    """A successful face-pay trade on a unit at a merchant's store; closed once wholly refunded."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("app_id", "out_trade_no"),
        ForeignKeyConstraint(["merchant_id", "store_id"], ["stores.merchant_id", "stores.store_id"]),
    )
    trade_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(64), index=True)
    merchant_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(64))
    buyer_id: Mapped[str] = mapped_column(ForeignKey("buyers.buyer_id"))
    subject: Mapped[str] = mapped_column(String(256))
    amount_fen: Mapped[int] = mapped_column(Integer)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    @property
    def status(self) -> str:
        return TRADE_CLOSED if self.refunded_fen >= self.amount_fen else TRADE_SUCCESS


class Refund(Base):
    """One refund of a trade, by the caller's refund request number."""

    __tablename__ = "refunds"
    trade_no: Mapped[str] = mapped_column(ForeignKey("trades.trade_no"), primary_key=True)
    out_request_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created: Mapped[dt.datetime] = mapped_column(UtcDateTime)
