"""Payment keys in the ledger: the BDK registry and, per BDK, the Initial Key IDs it has issued.

Only what identifies and checks a key is stored (labels, BDK IDs, Initial Key IDs, KCVs, certificate
serials, names and times), never a key: KCVs longer than 5 bytes are refused.  Every write is audited
in its own transaction, naming the authenticated operator, and every row is sealed.  Initial Key IDs are
allocated and injections recorded only under an authenticated operator (``OperatorRequired``) who, as the
ledger has them in that same transaction, is not disabled and has the ``operator`` role; a BDK may be
registered without one, as its custodians are named.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import validate
from .errors import (
    BdkExists,
    BdkIdInUse,
    DerivationIdsExhausted,
    InitialKeyIdOfAnotherUnit,
    InitialKeyIdUsed,
    InjectionAlreadyRecorded,
    UnitNotAuthorised,
    UnknownBdk,
    UnknownInitialKeyId,
)
from .models import MAX_DERIVATION_ID, REFERENCE_LENGTH, Bdk, InitialKeyId, InventoryUnit, KeyInjection, Station
from .records import AllocationRecord, BdkRecord, InjectionRecord

if TYPE_CHECKING:
    from .ledger import _Write

INJECTING_ROLE = "operator"  # the only role that allocates Initial Key IDs and records injections
AES_KCV_BYTES = 5  # an injection's KCV is the AES-CMAC one the unit returned


def _bdk_record(row: Bdk, station: str) -> BdkRecord:
    return BdkRecord(
        label=row.label,
        bdk_id=bytes.fromhex(row.bdk_id),
        kcv=bytes.fromhex(row.kcv),
        origin=row.origin,
        custodians=tuple(row.custodians),
        registered=row.registered,
        station=station,
        operator=row.operator,
        issued=row.last_derivation_id,
    )


def _injection_record(row: KeyInjection, bdk_label: str, station: str) -> InjectionRecord:
    return InjectionRecord(
        row.serial,
        bytes.fromhex(row.initial_key_id),
        bytes.fromhex(row.kcv),
        row.certificate_serial,
        bdk_label,
        station,
        row.operator,
        row.injected,
    )


class PaymentKeys:
    """The part of :class:`~provisioning.ledger.Ledger` that keeps BDKs and Initial Key IDs."""

    if TYPE_CHECKING:
        _station: str
        _station_id: int

        def _writing(self) -> AbstractContextManager[_Write]: ...

        def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Session]: ...

    def register_bdk(self, label: str, bdk_id: bytes, kcv: bytes, origin: str, custodians: Sequence[str]) -> BdkRecord:
        """Record a BDK the key store now holds (``origin`` "ceremony" or "generated"); labels and BDK IDs
        are unique and a registered BDK is never replaced."""
        label = validate.label(label, "label")
        bdk_id = validate.exact_bytes(bdk_id, "bdk_id", validate.BDK_ID_BYTES)
        kcv = validate.kcv(kcv)
        origin = validate.origin(origin)
        names = validate.distinct_labels(custodians, "custodians")
        with self._writing() as write:
            session = write.session
            if session.scalars(select(Bdk.id).where(Bdk.label == label)).first() is not None:
                raise BdkExists(label=label)
            holder = session.scalars(select(Bdk.label).where(Bdk.bdk_id == bdk_id.hex().upper())).first()
            if holder is not None:
                raise BdkIdInUse(bdk_id=bdk_id.hex().upper(), label=holder)
            row = Bdk(
                label=label,
                bdk_id=bdk_id.hex().upper(),
                kcv=kcv.hex().upper(),
                origin=origin,
                custodians=names,
                station_id=self._station_id,
                operator=write.operator,
                registered=write.at,
                last_derivation_id=0,
            )
            session.add(row)
            details = {"bdk_id": row.bdk_id, "kcv": row.kcv, "origin": origin, "custodians": names}
            write.audit("bdk.registered", f"bdk:{label}", details)
            return _bdk_record(row, self._station)

    def bdk(self, label: str) -> BdkRecord | None:
        """The BDK registered as ``label``, None if there is none."""
        label = validate.label(label, "label")
        with self._reading() as session:
            found = session.execute(
                select(Bdk, Station.name).join(Station, Bdk.station_id == Station.id).where(Bdk.label == label)
            ).one_or_none()
            return None if found is None else _bdk_record(*found)

    def bdks(self) -> list[BdkRecord]:
        """Every registered BDK, by label."""
        with self._reading() as session:
            query = select(Bdk, Station.name).join(Station, Bdk.station_id == Station.id).order_by(Bdk.label)
            return [_bdk_record(row, station) for row, station in session.execute(query)]

    def allocate_initial_key_id(self, bdk_label: str, serial: str) -> bytes:
        """A new Initial Key ID for ``serial`` under the BDK ``bdk_label``: its BDK ID then the next derivation ID.

        One transaction: the BDK row (its counter) is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; on
        SQLite the transaction holds the database write lock from ``BEGIN IMMEDIATE``), the counter moves
        up by one and the ID is recorded ``allocated``, so no two stations or processes ever get the same ID
        and a failed injection never gives its ID back.  Derivation IDs count from 1; a unit outside the
        authorised inventory gets none (``UnitNotAuthorised``)."""
        bdk_label = validate.label(bdk_label, "bdk_label")
        serial = validate.serial(serial)
        with self._writing() as write:
            operator, session = write.named_operator(INJECTING_ROLE), write.session
            bdk = session.scalars(select(Bdk).where(Bdk.label == bdk_label).with_for_update()).one_or_none()
            if bdk is None:
                raise UnknownBdk(label=bdk_label)
            if session.get(InventoryUnit, serial) is None:
                raise UnitNotAuthorised(serial=serial)
            if bdk.last_derivation_id >= MAX_DERIVATION_ID:
                raise DerivationIdsExhausted(label=bdk_label, count=MAX_DERIVATION_ID)
            bdk.last_derivation_id += 1
            initial_key_id = bytes.fromhex(bdk.bdk_id) + bdk.last_derivation_id.to_bytes(4, "big")
            session.add(
                InitialKeyId(
                    initial_key_id=initial_key_id.hex().upper(),
                    bdk_label=bdk_label,
                    derivation_id=bdk.last_derivation_id,
                    serial=serial,
                    state="allocated",
                    station_id=self._station_id,
                    operator=operator,
                    allocated=write.at,
                )
            )
            details = {"initial_key_id": initial_key_id.hex().upper(), "bdk_label": bdk_label}
            write.audit("keys.id_allocated", f"device:{serial}", details)
            return initial_key_id

    def allocation_failed(self, initial_key_id: bytes, reason: str) -> None:
        """Mark an allocated Initial Key ID ``failed`` (the injection did not complete); it is never issued
        again.  Marking a failed ID again changes nothing; an injected one is refused."""
        hex_id = validate.exact_bytes(initial_key_id, "initial_key_id", validate.INITIAL_KEY_ID_BYTES).hex().upper()
        reason = validate.text(reason, "reason", limit=REFERENCE_LENGTH)
        with self._writing() as write:
            write.named_operator()
            row = write.session.get(InitialKeyId, hex_id, with_for_update=True)
            if row is None:
                raise UnknownInitialKeyId(initial_key_id=hex_id)
            if row.state == "failed":
                return
            if row.state == "injected":
                raise InjectionAlreadyRecorded(initial_key_id=hex_id, state=row.state)
            row.state, row.ended, row.reason = "failed", write.at, reason
            write.audit("keys.id_failed", f"device:{row.serial}", {"initial_key_id": hex_id, "reason": reason})

    def record_injection(
        self, serial: str, initial_key_id: bytes, kcv: bytes, certificate_serial: str
    ) -> InjectionRecord:
        """Record that ``serial`` stored the Initial Key ``initial_key_id`` and returned ``kcv`` (already
        compared with the key store's), under the device certificate ``certificate_serial`` (hex).

        Refused: a KCV that is not the 5-byte AES-CMAC one, an ID the ledger never issued
        (``UnknownInitialKeyId``), one issued to another unit, or one not awaiting injection (recorded, or
        failed).  An ID left ``allocated`` because the station lost the unit's reply (reconcile lists it as
        ``unconfirmed``) is settled by this call once the unit's key status shows the key, or by
        :meth:`allocation_failed` once it shows none."""
        serial = validate.serial(serial)
        hex_id = validate.exact_bytes(initial_key_id, "initial_key_id", validate.INITIAL_KEY_ID_BYTES).hex().upper()
        kcv = validate.exact_bytes(kcv, "kcv", AES_KCV_BYTES)
        certificate_serial = validate.certificate_serial(certificate_serial)
        with self._writing() as write:
            operator = write.named_operator(INJECTING_ROLE)
            row = write.session.get(InitialKeyId, hex_id, with_for_update=True)
            if row is None:
                raise UnknownInitialKeyId(initial_key_id=hex_id)
            if row.serial != serial:
                raise InitialKeyIdOfAnotherUnit(initial_key_id=hex_id, serial=serial)
            if row.state == "injected":
                raise InjectionAlreadyRecorded(initial_key_id=hex_id, state=row.state)
            if row.state != "allocated":
                raise InitialKeyIdUsed(initial_key_id=hex_id, state=row.state)
            row.state, row.ended = "injected", write.at
            injection = KeyInjection(
                initial_key_id=hex_id,
                serial=serial,
                kcv=kcv.hex().upper(),
                certificate_serial=certificate_serial,
                station_id=self._station_id,
                operator=operator,
                injected=write.at,
            )
            write.session.add(injection)
            details = {
                "initial_key_id": hex_id,
                "kcv": injection.kcv,
                "certificate_serial": certificate_serial,
                "bdk_label": row.bdk_label,
            }
            write.audit("keys.injected", f"device:{serial}", details)
            return _injection_record(injection, row.bdk_label, self._station)

    def injections(self, serial: str | None = None) -> list[InjectionRecord]:
        """Recorded injections, oldest first; only those of ``serial`` when given."""
        query = (
            select(KeyInjection, InitialKeyId.bdk_label, Station.name)
            .join(InitialKeyId, KeyInjection.initial_key_id == InitialKeyId.initial_key_id)
            .join(Station, KeyInjection.station_id == Station.id)
            .order_by(KeyInjection.injected, KeyInjection.id)
        )
        if serial is not None:
            query = query.where(KeyInjection.serial == validate.serial(serial))
        with self._reading() as session:
            return [_injection_record(*found) for found in session.execute(query)]

    def allocations(self, serial: str | None = None) -> list[AllocationRecord]:
        """Initial Key IDs issued, oldest first, with their state; only those of ``serial`` when given."""
        query = (
            select(InitialKeyId, Station.name)
            .join(Station, InitialKeyId.station_id == Station.id)
            .order_by(InitialKeyId.allocated, InitialKeyId.initial_key_id)
        )
        if serial is not None:
            query = query.where(InitialKeyId.serial == validate.serial(serial))
        with self._reading() as session:
            return [
                AllocationRecord(
                    bytes.fromhex(row.initial_key_id),
                    row.bdk_label,
                    row.serial,
                    row.state,
                    station,
                    row.operator,
                    row.allocated,
                    row.ended,
                    row.reason,
                )
                for row, station in session.execute(query)
            ]
