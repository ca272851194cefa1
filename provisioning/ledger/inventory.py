"""The authorised inventory: the units the line may key, and every run reconciled against it.

A unit outside the inventory gets no Initial Key ID (see ``allocate_initial_key_id``), and the station
puts its refusal on record with ``unit_refused``.  Only an admin who is not disabled changes the inventory.
``reconcile`` lists what does not add up: units refused, units still without a key, units keyed more than
once, injections of units the inventory does not hold (removed after they were keyed), and Initial Key IDs
left ``allocated`` whose unit may hold a key the ledger never recorded; failed IDs are listed too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import validate
from .errors import NotInInventory
from .models import REFERENCE_LENGTH, AuditEntry, InitialKeyId, InventoryUnit, KeyInjection
from .records import InventoryRecord, Reconciliation

if TYPE_CHECKING:
    from .ledger import _Write

PER_ENTRY = 200  # serials named by one audit entry (its details stay far below the 64 KiB limit)
INVENTORY_ROLE = "admin"  # the only role that adds units to the inventory or removes them
UNIT_REFUSED = "keys.unit_refused"  # the audit action recording a unit refused as not authorised
DEVICE = "device:"  # the subject prefix of a unit's audit entries


def _ids_by_serial(found: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """serial -> Initial Key IDs, by serial, from (serial, ID) rows in the order read."""
    ids: dict[str, list[str]] = defaultdict(list)
    for serial, initial_key_id in found:
        ids[serial].append(initial_key_id)
    return {serial: tuple(found_ids) for serial, found_ids in sorted(ids.items())}


class Inventory:
    """The part of :class:`~provisioning.ledger.Ledger` that keeps the authorised inventory."""

    if TYPE_CHECKING:

        def _writing(self) -> AbstractContextManager[_Write]: ...

        def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Session]: ...

    def inventory_add(self, serials: Sequence[str], reference: str | None = None) -> int:
        """Authorise ``serials`` (``reference``: the purchase order or delivery note); how many were new.

        Units already in the inventory keep their first reference.  One transaction: all or none."""
        wanted = list(dict.fromkeys(validate.serial(s) for s in serials))
        if reference is not None:
            reference = validate.text(reference, "reference", limit=REFERENCE_LENGTH)
        added = 0
        with self._writing() as write:
            operator, session = write.named_operator(INVENTORY_ROLE), write.session
            known: set[str] = set()
            for start in range(0, len(wanted), PER_ENTRY):  # a few hundred bound values a query, on any database
                query = select(InventoryUnit.serial).where(InventoryUnit.serial.in_(wanted[start : start + PER_ENTRY]))
                known.update(session.scalars(query))
            new = [s for s in wanted if s not in known]
            for start in range(0, len(new), PER_ENTRY):
                chunk = new[start : start + PER_ENTRY]
                for serial in chunk:
                    session.add(InventoryUnit(serial=serial, reference=reference, added_by=operator, added=write.at))
                write.audit("inventory.added", "inventory", {"reference": reference, "serials": chunk})
                added += len(chunk)
        return added

    def inventory_remove(self, serial: str) -> None:
        """Withdraw the authorisation of ``serial`` (its past injections stay, and reconcile names them)."""
        serial = validate.serial(serial)
        with self._writing() as write:
            write.named_operator(INVENTORY_ROLE)
            row = write.session.get(InventoryUnit, serial)
            if row is None:
                raise NotInInventory(serial=serial)
            write.session.delete(row)
            write.audit("inventory.removed", f"device:{serial}", {"reference": row.reference})

    def inventory(self) -> list[InventoryRecord]:
        """The authorised units, by serial."""
        with self._reading() as session:
            return [
                InventoryRecord(row.serial, row.reference, row.added_by, row.added)
                for row in session.scalars(select(InventoryUnit).order_by(InventoryUnit.serial))
            ]

    def authorised(self, serial: str) -> bool:
        """Whether ``serial`` is in the authorised inventory."""
        serial = validate.serial(serial)
        with self._reading() as session:
            return session.get(InventoryUnit, serial) is not None

    def unit_refused(self, serial: str, reason: str) -> None:
        """Put on record that the station refused to key ``serial`` (``reason``: why, such as "not authorised").

        Its own transaction, so the trace stays when the refusal itself rolls back the allocation; a
        whole-line ``reconcile`` lists the unit as refused until an admin adds it to the inventory."""
        serial = validate.serial(serial)
        reason = validate.text(reason, "reason", limit=REFERENCE_LENGTH)
        with self._writing() as write:
            write.named_operator()
            write.audit(UNIT_REFUSED, f"{DEVICE}{serial}", {"reason": reason})

    def reconcile(self, serials: Sequence[str] | None = None) -> Reconciliation:
        """Check a run's units (``serials``), or the whole line, against the inventory and the injections.

        A run's refused units are those not in the inventory; the whole line's are the units put on record
        with ``unit_refused`` and still not in it.  ``unconfirmed`` are the IDs still ``allocated`` (of the
        run's units, or all): the station lost the unit's reply, so the unit may hold a key the ledger never
        recorded, until ``record_injection`` or ``allocation_failed`` settles the ID."""
        run = None if serials is None else tuple(dict.fromkeys(validate.serial(s) for s in serials))
        with self._reading(snapshot=True) as session:
            units = select(InventoryUnit.serial)
            keyed = select(KeyInjection.serial, KeyInjection.initial_key_id).order_by(KeyInjection.id)
            issued = select(InitialKeyId.serial, InitialKeyId.initial_key_id).order_by(
                InitialKeyId.allocated, InitialKeyId.initial_key_id
            )
            if run is not None:
                units = units.where(InventoryUnit.serial.in_(run))
                keyed = keyed.where(KeyInjection.serial.in_(run))
                issued = issued.where(InitialKeyId.serial.in_(run))
            inventory = set(session.scalars(units))
            injected = _ids_by_serial(session.execute(keyed))
            unconfirmed = _ids_by_serial(session.execute(issued.where(InitialKeyId.state == "allocated")))
            failed = _ids_by_serial(session.execute(issued.where(InitialKeyId.state == "failed")))
            if run is None:
                entries = session.scalars(select(AuditEntry.subject).where(AuditEntry.action == UNIT_REFUSED))
                refused = tuple(sorted({s.removeprefix(DEVICE) for s in entries} - inventory))
            else:
                refused = tuple(s for s in run if s not in inventory)
        return Reconciliation(
            serials=run,
            authorised=len(inventory),
            injected=len(injected),
            refused=refused,
            not_injected=tuple(sorted(inventory - injected.keys())),
            injected_more_than_once={s: ids for s, ids in injected.items() if len(ids) > 1},
            not_in_inventory={s: ids for s, ids in injected.items() if s not in inventory},
            unconfirmed=unconfirmed,
            failed=failed,
        )
