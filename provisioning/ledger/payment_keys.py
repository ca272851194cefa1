"""Payment keys in the ledger: the BDK registry and, per BDK, the Initial Key IDs it has issued.

Only what identifies and checks a key is stored (labels, BDK IDs, Initial Key IDs, KCVs, certificate
serials, names and times), never a key: KCVs longer than 5 bytes are refused.  Every write is audited
in its own transaction, naming the authenticated operator, and every row is sealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import validate
from .errors import BdkExists, BdkIdInUse
from .models import Bdk, Station
from .records import BdkRecord

if TYPE_CHECKING:
    from .ledger import _Write


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
