"""The station's ledger: which units were seen, what was done to them, by whom, and the audit trail.

One ``Ledger`` is shared by all I/O workers of a station (it is thread-safe: every call runs in
its own session).  Every state-changing call writes its audit entry in the same transaction, so
the audit log and the tables cannot disagree.  The API takes no keys, PINs or passphrases, and
refuses JSON fields named like them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, aliased

from i18n import _

from . import audit as chain
from . import db, seals, validate
from . import verify as checks
from .accounts import Accounts
from .camera import CameraRecords
from .errors import (
    InvalidLedgerInput,
    LedgerClosed,
    LedgerError,
    LedgerMalformed,
    LedgerOperatorDisabled,
    LedgerRoleRequired,
    LedgerUnavailable,
    OperatorRequired,
    UnknownDevice,
    UnknownOperator,
)
from .inventory import Inventory
from .models import AuditEntry, AuditHeadRow, Device, Operation, Operator, Station
from .payment_keys import PaymentKeys
from .platform_calls import PlatformCalls
from .records import (
    AuditHead,
    AuditRecord,
    DeviceRecord,
    OperationRecord,
    OperatorRecord,
    VerifyReport,
)
from .runs import UnitRuns

LOG = logging.getLogger(__name__)

MAX_ERROR_TEXT = 1000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


STATION_ENV = "NAIAD_STATION"


def default_station_name() -> str:
    """``$NAIAD_STATION`` (several stations on one machine), else this machine's host name without its domain."""
    named = os.environ.get(STATION_ENV, "").strip()
    if named:
        return named[:64]
    return socket.gethostname().split(".")[0][:64] or "station"


@dataclass
class OperationHandle:
    """The running operation inside ``with ledger.operation(...)``; set ``result`` to record it."""

    id: int
    serial: str
    kind: str
    operator: str | None
    result: dict[str, Any] | None = field(default=None)


@dataclass
class _Write:
    session: Session
    head: AuditHeadRow
    station: str
    at: dt.datetime
    operator: str | None = None  # the authenticated operator, named by entries that name no other

    def named_operator(self, role: str | None = None) -> str:
        """The authenticated operator, for records that must name one (keys, the inventory).

        With ``role``, the operator's row is read in this transaction and the write refused unless they are
        registered, not disabled and have exactly ``role`` now: a session opened before an admin disabled or
        demoted them writes nothing more (the chain lock orders this read after any such change)."""
        if self.operator is None:
            raise OperatorRequired()
        if role is not None:
            row = self.session.scalars(select(Operator).where(Operator.name == self.operator)).one_or_none()
            if row is None:
                raise UnknownOperator(operator=self.operator)
            if row.disabled is not None:
                raise LedgerOperatorDisabled(operator=self.operator)
            if row.role != role:
                raise LedgerRoleRequired(role=role, operator=self.operator, actual=row.role)
        return self.operator

    def audit(self, action: str, subject: str, details: dict[str, Any], operator: str | None = None) -> AuditRecord:
        """Append an entry that also seals every sealed row this transaction changed since the last one."""
        return chain.append(
            self.session,
            self.head,
            at=self.at,
            station=self.station,
            operator=operator if operator is not None else self.operator,
            action=action,
            subject=subject,
            details=details,
            seals=seals.take_seals(self.session),
        )


@contextmanager
def _write(engine: Engine, url: str, station: str, operator: str | None = None) -> Iterator[_Write]:
    """One write transaction under the chain lock; refuses to commit a sealed row left unaudited."""
    with db.translate_errors(url), db.write_session(engine) as session:
        seals.track(session)
        yield _Write(session, chain.lock_head(session), station, _now(), operator)
        unsealed = seals.unsealed_rows(session)
        if unsealed:  # a writer changed evidence without an audit entry: a bug, never committed
            raise LedgerError(detail=_("rows changed without an audit entry: {rows}", rows=", ".join(unsealed)))


def _device_record(row: Device) -> DeviceRecord:
    return DeviceRecord(row.serial, row.model, row.first_seen, row.last_seen, row.port_path)


class Ledger(Accounts, PaymentKeys, Inventory, CameraRecords, PlatformCalls, UnitRuns):
    """The ledger of one station over a shared database.  Create it with ``Ledger.open``.

    ``operator`` is the authenticated operator (see :mod:`provisioning.operators`): operations and audit
    entries that name no operator of their own name this one.
    """

    def __init__(
        self, engine: Engine, station: str, station_id: int, operator: str | None = None, *, owner: Ledger | None = None
    ) -> None:
        self._engine = engine
        self._url = db.redact_url(engine.url)
        self._station = station
        self._station_id = station_id
        self._operator = None if operator is None else validate.label(operator, "operator")
        self._owner = owner  # a view made by as_operator shares its owner's engine and never disposes it
        self._closed = False

    @classmethod
    def open(cls, url: str | None = None, station: str | None = None) -> Ledger:
        """Open (creating and migrating as needed) the database at ``url``, the default file if None.

        Entries name no operator; :meth:`as_operator` gives a view that writes as the authenticated one."""
        name = validate.label(station if station is not None else default_station_name(), "station")
        if url is None:
            path = db.default_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailable(
                    url=str(path), detail=_("its directory could not be created: {reason}", reason=exc.strerror or exc)
                ) from exc
            url = db.default_url()
        engine = db.create_ledger_engine(url)
        try:
            db.migrate(engine)
            station_id = cls._register_station(engine, name)
        except BaseException:
            engine.dispose()
            raise
        LOG.info("ledger %s opened for station %s", db.redact_url(engine.url), name)
        return cls(engine, name, station_id)

    @staticmethod
    def _register_station(engine: Engine, name: str) -> int:
        hostname = socket.gethostname()[:255]
        with _write(engine, db.redact_url(engine.url), name) as write:
            session = write.session
            row = session.scalars(select(Station).where(Station.name == name)).one_or_none()
            if row is None:
                row = Station(name=name, hostname=hostname, created=write.at)
                session.add(row)
                session.flush()
                write.audit("station.registered", f"station:{name}", {"hostname": hostname})
            elif row.hostname != hostname:
                previous, row.hostname = row.hostname, hostname
                write.audit("station.moved", f"station:{name}", {"hostname": hostname, "previous_hostname": previous})
            return row.id

    @property
    def station(self) -> str:
        return self._station

    @property
    def operator(self) -> str | None:
        """The authenticated operator this ledger writes as, None when nobody logged in."""
        return self._operator

    def as_operator(self, name: str) -> Ledger:
        """This ledger writing as ``name`` (already authenticated), over the same database connection pool."""
        self._check_open()
        return Ledger(self._engine, self._station, self._station_id, name, owner=self._owner or self)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._url

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owner is None:
                self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def current_revision(self) -> str | None:
        self._check_open()
        return db.current_revision(self._engine)

    # -- writing ----------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[_Write]:
        self._check_open()
        with _write(self._engine, self._url, self._station, self._operator) as write:
            yield write

    def register_operator(self, name: str, role: str) -> OperatorRecord:
        """Add an operator, or change the role of an existing one."""
        name = validate.label(name, "operator")
        role = validate.role(role)
        with self._writing() as write:
            row = write.session.scalars(select(Operator).where(Operator.name == name)).one_or_none()
            if row is None:
                row = Operator(name=name, role=role, created=write.at)
                write.session.add(row)
                write.audit("operator.registered", f"operator:{name}", {"role": role})
            elif row.role != role:
                previous, row.role = row.role, role
                write.audit("operator.role_changed", f"operator:{name}", {"role": role, "previous_role": previous})
            return OperatorRecord(name=row.name, role=row.role, created=row.created)

    def device_seen(self, serial: str, model: str, port_path: str | None = None) -> None:
        """Record that the unit ``serial`` is attached now: first/last seen, model and port path.

        The audit trail gets an entry when the unit is new or moved; a bare sighting only updates last_seen,
        so a bench that polls does not flood the trail."""
        serial = validate.serial(serial)
        model = validate.label(model, "model")
        if port_path is not None:
            port_path = validate.label(port_path, "port_path")
        with self._writing() as write:
            row = write.session.get(Device, serial)
            details: dict[str, Any] = {"model": model, "port_path": port_path}
            if row is None:
                write.session.add(
                    Device(serial=serial, model=model, first_seen=write.at, last_seen=write.at, port_path=port_path)
                )
                details["first_seen"] = True
            else:
                if row.model != model:
                    details["previous_model"] = row.model
                if row.port_path != port_path:
                    details["previous_port_path"] = row.port_path
                row.model, row.port_path, row.last_seen = model, port_path, write.at
            if len(details) > 2:  # first sighting, or a new model or port: an event, not just a timestamp
                write.audit("device.seen", f"device:{serial}", details)

    @contextmanager
    def operation(self, serial: str, kind: str, operator: str | None = None) -> Iterator[OperationHandle]:
        """Record one step on a unit: 'running' now, then 'succeeded', or 'failed' with the error.

        The exception, if any, propagates unchanged after it is recorded.
        """
        handle = self._start_operation(serial, kind, operator)
        try:
            yield handle
        except BaseException as exc:
            self._finish_failed(handle, exc)
            raise
        try:
            result = None if handle.result is None else chain.clean_json(handle.result, "result")
        except Exception as exc:
            self._finish_failed(handle, exc)
            raise
        self._finish(handle, "succeeded", result)

    def _start_operation(self, serial: str, kind: str, operator: str | None) -> OperationHandle:
        serial = validate.serial(serial)
        kind = validate.kind(kind)
        operator = operator if operator is not None else self._operator
        if operator is not None:
            operator = validate.label(operator, "operator")
        with self._writing() as write:
            if write.session.get(Device, serial) is None:
                raise UnknownDevice(serial=serial)
            operator_id = None
            if operator is not None:
                operator_id = write.session.scalars(select(Operator.id).where(Operator.name == operator)).first()
                if operator_id is None:
                    raise UnknownOperator(operator=operator)
            row = Operation(
                device_serial=serial,
                station_id=self._station_id,
                operator_id=operator_id,
                kind=kind,
                status="running",
                started=write.at,
            )
            write.session.add(row)
            write.session.flush()
            write.audit("operation.started", f"device:{serial}", {"operation": row.id, "kind": kind}, operator)
            return OperationHandle(id=row.id, serial=serial, kind=kind, operator=operator)

    def _finish_failed(self, handle: OperationHandle, exc: BaseException) -> None:
        error = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)[:MAX_ERROR_TEXT]}
        try:
            partial = None if handle.result is None else chain.clean_json(handle.result, "result")
        except Exception:
            partial = None
        try:
            self._finish(handle, "failed", {**(partial or {}), "error": error})
        except Exception:
            # The step's own error matters more to the caller; the row stays 'running' (interrupted).
            LOG.exception("could not record the failure of operation %d", handle.id)

    def _finish(self, handle: OperationHandle, status: str, result: dict[str, Any] | None) -> None:
        with self._writing() as write:
            row = write.session.get(Operation, handle.id)
            if row is None or row.status != "running":
                LOG.warning("operation %d was not running any more", handle.id)
                return
            row.status, row.ended, row.result = status, write.at, result
            details = {"operation": handle.id, "kind": handle.kind, "status": status, "result": result}
            write.audit("operation.finished", f"device:{handle.serial}", details, handle.operator)

    def audit(
        self, action: str, subject: str, details: dict[str, Any] | None = None, operator: str | None = None
    ) -> AuditRecord:
        """Append an entry of the caller's own (e.g. a key injection with its key IDs and KCVs)."""
        action = validate.action(action)
        subject = validate.label(subject, "subject", limit=validate.SUBJECT_LENGTH)
        if operator is not None:
            operator = validate.label(operator, "operator")
        clean = chain.clean_json({} if details is None else details, "details")
        if not isinstance(clean, dict):
            raise InvalidLedgerInput(field="details", detail=_("must be a JSON object"))
        with self._writing() as write:
            return write.audit(action, subject, clean, operator)

    # -- reading ----------------------------------------------------------------------------------

    @contextmanager
    def _reading(self, *, snapshot: bool = False) -> Iterator[Session]:
        self._check_open()
        try:
            with db.translate_errors(self._url), db.read_session(self._engine, snapshot=snapshot) as session:
                yield session
        except ValueError as exc:  # a stored time or JSON text the ledger never wrote
            raise LedgerMalformed(
                detail=_("a stored time or JSON text could not be read: {reason}", reason=str(exc)[:200])
            ) from exc

    def device(self, serial: str) -> DeviceRecord | None:
        """The unit ``serial`` as last seen, None if this ledger never saw it."""
        serial = validate.serial(serial)
        with self._reading() as session:
            row = session.get(Device, serial)
            return None if row is None else _device_record(row)

    def devices(self) -> list[DeviceRecord]:
        with self._reading() as session:
            return [_device_record(row) for row in session.scalars(select(Device).order_by(Device.serial))]

    def operations(self, serial: str | None = None) -> list[OperationRecord]:
        """Operations, oldest first; only those of ``serial`` when given."""
        if serial is not None:
            serial = validate.serial(serial)
        who = aliased(Operator)
        query = (
            select(Operation, Station.name, who.name)
            .join(Station, Operation.station_id == Station.id)
            .outerjoin(who, Operation.operator_id == who.id)
            .order_by(Operation.started, Operation.id)
        )
        if serial is not None:
            query = query.where(Operation.device_serial == serial)
        with self._reading() as session:
            return [
                OperationRecord(
                    id=op.id,
                    serial=op.device_serial,
                    station=station,
                    operator=operator,
                    kind=op.kind,
                    status=op.status,
                    started=op.started,
                    ended=op.ended,
                    result=op.result,
                )
                for op, station, operator in session.execute(query)
            ]

    def audit_entries(self, subject: str | None = None, limit: int | None = None) -> list[AuditRecord]:
        """Audit entries in chain order (the last ``limit`` ones when given), optionally of one subject."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc())
        if subject is not None:
            query = query.where(AuditEntry.subject == validate.label(subject, "subject", limit=255))
        if limit is not None:
            query = query.limit(max(0, limit))
        with self._reading() as session:
            return [chain.to_record(e) for e in reversed(session.scalars(query).all())]

    def head(self) -> AuditHead:
        """The chain's last link; keep a copy elsewhere to detect a cut-off tail with ``verify``."""
        with self._reading() as session:
            return chain.read_head(session)

    def verify(self, anchor: AuditHead | None = None) -> VerifyReport:
        """Walk the audit chain and check every sealed row; ``anchor`` is a head kept outside the database."""
        with self._reading(snapshot=True) as session:
            return checks.verify(session, anchor)

    def _check_open(self) -> None:
        if self._closed or (self._owner is not None and self._owner._closed):
            raise LedgerClosed()
