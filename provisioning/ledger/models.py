"""The ledger's tables as typed SQLAlchemy 2 models.

The migration in ``migrations/versions`` creates exactly these tables (a test compares them), so a
change here needs a new migration.  Times are stored as UTC and always read back timezone-aware.
Every table whose rows are evidence is ``sealed()``: its rows are bound into the audit hash chain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .seals import sealed

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OPERATION_STATUSES = ("running", "succeeded", "failed")
ROLES = ("installer", "operator", "custodian", "support", "admin")
BDK_ORIGINS = ("ceremony", "generated")
INITIAL_KEY_ID_STATES = ("allocated", "injected", "failed")
CAMERA_CHECK_KINDS = ("depth-quality", "field-check")  # provisioning.calibration's DEPTH_STEP and CHECK_STEP
PLATFORM_CALL_STATES = ("pending", "done", "refused", "abandoned")
RUN_STATUSES = ("running", "succeeded", "failed")  # a unit's run of a recipe, and each of its steps
MAX_DERIVATION_ID = 0xFFFFFFFF  # the 32-bit derivation ID of an AES DUKPT Initial Key ID (X9.24-3)
HASH_LENGTH = 64  # hex SHA-256
KCV_HEX_LENGTH = 10  # at most 5 bytes: the AES-CMAC KCV of a TR-31 KC block
INITIAL_KEY_ID_HEX_LENGTH = 16  # 8 bytes: BDK ID (4) + derivation ID (4)
CERTIFICATE_SERIAL_LENGTH = 40  # at most 20 bytes (RFC 5280), hex
REFERENCE_LENGTH = 255
ERROR_LENGTH = 1000
NAME_LENGTH = 64


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and returned timezone-aware, on SQLite as on PostgreSQL.

    SQLite keeps no offset, so naive values read back are UTC by construction; naive values are
    refused on the way in so that a local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Station(Base):
    __tablename__ = "stations"
    __table_args__ = (sealed(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    created: Mapped[dt.datetime]


class Operator(Base):
    __tablename__ = "operators"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"), sealed())

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created: Mapped[dt.datetime]
    # "scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>"; None: cannot log in until a password is set (revision 0003)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[dt.datetime | None]  # when an admin disabled the operator; None while active
    failed_logins: Mapped[int] = mapped_column(Integer, server_default="0")


class OperatorSession(Base):
    """A CLI session: only the SHA-256 of its token is stored, with its expiry and when it was ended."""

    __tablename__ = "operator_sessions"
    __table_args__ = (sealed(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    token_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True)
    created: Mapped[dt.datetime]
    expires: Mapped[dt.datetime]
    ended: Mapped[dt.datetime | None]


class Device(Base):
    __tablename__ = "devices"
    # last_seen moves on every sighting without an audit entry (a polling bench must not flood the trail)
    __table_args__ = (sealed(unsealed=("last_seen",)),)

    serial: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    port_path: Mapped[str | None] = mapped_column(String(NAME_LENGTH))


class Operation(Base):
    """One step run on one unit: a row per attempt, never updated after it ends."""

    __tablename__ = "operations"
    __table_args__ = (
        CheckConstraint(f"status IN {OPERATION_STATUSES!r}", name="status"),
        Index("ix_operations_device_serial_started", "device_serial", "started"),
        sealed(),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_serial: Mapped[str] = mapped_column(ForeignKey("devices.serial"))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started: Mapped[dt.datetime]
    ended: Mapped[dt.datetime | None]
    result: Mapped[dict[str, Any] | None]


class Bdk(Base):
    """A Base Derivation Key known to the line: its label, BDK ID and KCV, never the key.

    ``last_derivation_id`` is the counter Initial Key IDs are allocated from: the allocating transaction
    locks this row, so each derivation ID is issued once (the ``initial_key_ids`` unique constraint too)."""

    __tablename__ = "bdks"
    __table_args__ = (
        CheckConstraint(f"origin IN {BDK_ORIGINS!r}", name="origin"),
        CheckConstraint(f"last_derivation_id BETWEEN 0 AND {MAX_DERIVATION_ID}", name="derivation_range"),
        sealed(),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    bdk_id: Mapped[str] = mapped_column(String(8), unique=True)  # 4 bytes, upper-case hex
    kcv: Mapped[str] = mapped_column(String(KCV_HEX_LENGTH))  # upper-case hex
    origin: Mapped[str] = mapped_column(String(16))
    custodians: Mapped[list[str]] = mapped_column(JSON)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    registered: Mapped[dt.datetime]
    last_derivation_id: Mapped[int] = mapped_column(BigInteger, server_default="0")


class InitialKeyId(Base):
    """An Initial Key ID issued to one unit: ``allocated``, then ``injected`` or ``failed``; never reissued."""

    __tablename__ = "initial_key_ids"
    __table_args__ = (
        CheckConstraint(f"state IN {INITIAL_KEY_ID_STATES!r}", name="state"),
        CheckConstraint(f"derivation_id BETWEEN 1 AND {MAX_DERIVATION_ID}", name="derivation_range"),
        UniqueConstraint("bdk_label", "derivation_id"),
        Index("ix_initial_key_ids_serial", "serial"),
        sealed(),
    )

    initial_key_id: Mapped[str] = mapped_column(String(INITIAL_KEY_ID_HEX_LENGTH), primary_key=True)  # hex
    bdk_label: Mapped[str] = mapped_column(ForeignKey("bdks.label"))
    derivation_id: Mapped[int] = mapped_column(BigInteger)
    serial: Mapped[str] = mapped_column(String(NAME_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    allocated: Mapped[dt.datetime]
    ended: Mapped[dt.datetime | None]  # when it was injected or failed
    reason: Mapped[str | None] = mapped_column(String(REFERENCE_LENGTH))  # why it failed


class KeyInjection(Base):
    """The evidence of one injection: the unit confirmed the KCV of the Initial Key it stored."""

    __tablename__ = "key_injections"
    __table_args__ = (Index("ix_key_injections_serial", "serial"), sealed())

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    initial_key_id: Mapped[str] = mapped_column(ForeignKey("initial_key_ids.initial_key_id"), unique=True)
    serial: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kcv: Mapped[str] = mapped_column(String(KCV_HEX_LENGTH))
    certificate_serial: Mapped[str] = mapped_column(String(CERTIFICATE_SERIAL_LENGTH))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    injected: Mapped[dt.datetime]


class InventoryUnit(Base):
    """A unit the line is authorised to key (from a purchase order or a delivery note)."""

    __tablename__ = "inventory"
    __table_args__ = (sealed(),)

    serial: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_LENGTH))
    added_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    added: Mapped[dt.datetime]


class CameraCalibration(Base):
    """A camera calibration written to a unit and read back: its blob's checksum and figures, never the blob."""

    __tablename__ = "camera_calibrations"
    __table_args__ = (Index("ix_camera_calibrations_serial", "serial"), sealed())

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(NAME_LENGTH))
    checksum: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True)  # SHA-256 of the blob, lower-case hex
    blob_version: Mapped[int] = mapped_column(Integer)
    figures: Mapped[dict[str, Any]]  # name -> number (RMS, standard deviations, views used)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created: Mapped[dt.datetime]


class CameraCheck(Base):
    """A depth-quality run or a field check of a unit's camera, passed or not, with its figures.

    ``passed`` is 0 or 1: an integer reads back the same on every database, so its seal does too."""

    __tablename__ = "camera_checks"
    __table_args__ = (
        CheckConstraint(f"kind IN {CAMERA_CHECK_KINDS!r}", name="kind"),
        CheckConstraint("passed IN (0, 1)", name="passed"),
        Index("ix_camera_checks_serial", "serial"),
        sealed(),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    passed: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str | None] = mapped_column(String(32))  # camera.fieldcheck.FieldVerdict, e.g. "recalibrate"
    figures: Mapped[dict[str, Any]]
    calibration: Mapped[str | None] = mapped_column(String(HASH_LENGTH))  # checksum of the calibration checked
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created: Mapped[dt.datetime]


class PlatformCall(Base):
    """A call to the merchant platform in the station's outbox: written before it is sent, then ``done`` or
    ``refused`` once the platform answered; ``pending`` until then, across restarts (provisioning/outbox.py), or
    until an operator ``abandoned`` it.

    ``attempts`` and ``updated`` move on every sending without an audit entry (an outage must not flood the
    trail); everything else is sealed.  ``biz`` holds the request as sent, its ``auth_code`` blanked once settled."""

    __tablename__ = "platform_calls"
    __table_args__ = (
        CheckConstraint(f"state IN {PLATFORM_CALL_STATES!r}", name="state"),
        Index("ix_platform_calls_state_created", "state", "created"),
        Index("ix_platform_calls_method_serial", "method", "serial"),
        sealed(unsealed=("attempts", "updated")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_no: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    method: Mapped[str] = mapped_column(String(NAME_LENGTH))
    serial: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    biz: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created: Mapped[dt.datetime]
    updated: Mapped[dt.datetime]
    reply: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))


class UnitRun(Base):
    """One unit's run of a recipe (provisioning/pipeline.py): ``running`` while a station holds it, then
    ``succeeded`` or ``failed``.  A failed or abandoned run is taken up again (``running``) to resume it.

    A unit has at most one ``running`` run, across every station sharing the database (the partial unique
    index): that run is the unit's claim, held by the station, host, machine and process named in it, which keeps
    ``heartbeat`` fresh while it works (unsealed: a heartbeat is no event for the audit trail)."""

    __tablename__ = "unit_runs"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index("ix_unit_runs_serial_started", "serial", "started"),
        Index(
            "uq_unit_runs_running_serial",
            "serial",
            unique=True,
            sqlite_where=text("status = 'running'"),  # PostgreSQL's where: in the migration (no dialect import here)
        ),
        sealed(unsealed=("heartbeat",)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(NAME_LENGTH))
    recipe: Mapped[str] = mapped_column(String(NAME_LENGTH))
    digest: Mapped[str] = mapped_column(String(HASH_LENGTH))  # SHA-256 of the canonical recipe, overrides applied
    batch: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    machine: Mapped[str] = mapped_column(String(64))  # a hash of the holder's machine id (runs.machine_identity)
    nonce: Mapped[str] = mapped_column(String(64))  # the holding process's random token (runs.process_nonce)
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    started: Mapped[dt.datetime]
    finished: Mapped[dt.datetime | None]
    lease_seconds: Mapped[int] = mapped_column(Integer)
    heartbeat: Mapped[dt.datetime]


class UnitStep(Base):
    """One attempt at one step of a unit's run: ``running``, then ``succeeded`` or ``failed`` with its seconds,
    its one-line detail, its data (JSON, no secret) and its error (class, message, remedy)."""

    __tablename__ = "unit_steps"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        CheckConstraint("already_done IN (0, 1)", name="already_done"),
        Index("ix_unit_steps_run_id", "run_id"),
        sealed(),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("unit_runs.id"))
    position: Mapped[int] = mapped_column(Integer)  # the step's index in the recipe, from 0
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    started: Mapped[dt.datetime]
    finished: Mapped[dt.datetime | None]
    milliseconds: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(ERROR_LENGTH))
    data: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    already_done: Mapped[int] = mapped_column(Integer, server_default="0")


class AuditEntry(Base):
    """One link of the hash chain.  Ids are dense and given by the appender, in chain order."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    station: Mapped[str] = mapped_column(String(NAME_LENGTH))
    operator: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(NAME_LENGTH))
    subject: Mapped[str] = mapped_column(String(255), index=True)
    details: Mapped[dict[str, Any]]
    seals: Mapped[dict[str, Any] | None]  # "table:key" -> row digest or None, of the rows it changed
    prev_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True)


class AuditHeadRow(Base):
    """The single chain-head row: appenders lock it, so the chain stays one line across stations."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry_id: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
