"""The sandbox's own database (SQLAlchemy): apps, merchants and stores, the test buyer, units, idempotency.

Money is kept in fen (integer hundredths of a yuan); times are aware UTC.  Tables of payments and subsidies
live beside their handlers and share :class:`Base`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class App(Base):
    """An application allowed to call the gateway, with the public key its requests are signed by."""

    __tablename__ = "apps"
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    supplier_id: Mapped[str] = mapped_column(String(64))
    """The supplier (distributor) this app acts for: the owner of the inventory it registers."""
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    """PEM SubjectPublicKeyInfo; None until a station's key is set (its requests are refused until then)."""
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Merchant(Base):
    __tablename__ = "merchants"
    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))


class Store(Base):
    __tablename__ = "stores"
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.merchant_id"), primary_key=True)
    store_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))


class Buyer(Base):
    """A shopper who pays with a face; ``face_id`` names the face the sandbox recognises as theirs."""

    __tablename__ = "buyers"
    buyer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    logon_id: Mapped[str] = mapped_column(String(128))
    """Shown masked in replies (``138****0001``)."""
    face_id: Mapped[str] = mapped_column(String(64), unique=True)


class Device(Base):
    """A unit the platform knows: in a supplier's inventory, then bound to a merchant's store, then activated."""

    __tablename__ = "devices"
    __table_args__ = (ForeignKeyConstraint(["merchant_id", "store_id"], ["stores.merchant_id", "stores.store_id"]),)
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    supplier_id: Mapped[str] = mapped_column(String(64))
    registered: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    merchant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    store_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bound: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    activated: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Idempotency(Base):
    """The first successful answer to each request number, so a repeat gets it again and changes nothing."""

    __tablename__ = "idempotency"
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the canonical business content: the same number with other content is refused."""
    response: Mapped[str] = mapped_column(Text)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Counter(Base):
    """Sequence numbers for the platform's own ids (trade numbers and the like), one row per name."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class SubsidyEnrollment(Base):
    """A unit's enrollment in a subsidy program (a version of :mod:`.programs`' data), at most one per unit."""

    __tablename__ = "subsidy_enrollments"
    serial: Mapped[str] = mapped_column(ForeignKey("devices.serial"), primary_key=True)
    program: Mapped[str] = mapped_column(String(16))
    enrolled: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
