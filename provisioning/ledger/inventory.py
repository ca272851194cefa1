"""The authorised inventory: the units the line may key, and every run reconciled against it.

A unit outside the inventory gets no Initial Key ID (see ``allocate_initial_key_id``); ``reconcile``
lists what does not add up: units of a run refused, units still without a key, units keyed more than
once, and injections of units the inventory does not hold (removed after they were keyed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import validate
from .errors import NotInInventory
from .models import REFERENCE_LENGTH, InventoryUnit, KeyInjection
from .records import InventoryRecord, Reconciliation

if TYPE_CHECKING:
    from .ledger import _Write

PER_ENTRY = 200  # serials named by one audit entry (its details stay far below the 64 KiB limit)


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
            operator, session = write.named_operator(), write.session
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
            write.named_operator()
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

    def reconcile(self, serials: Sequence[str] | None = None) -> Reconciliation:
        """Check a run's units (``serials``), or the whole line, against the inventory and the injections."""
        run = None if serials is None else tuple(dict.fromkeys(validate.serial(s) for s in serials))
        with self._reading(snapshot=True) as session:
            units = select(InventoryUnit.serial)
            keyed = select(KeyInjection.serial, KeyInjection.initial_key_id).order_by(KeyInjection.id)
            if run is not None:
                units = units.where(InventoryUnit.serial.in_(run))
                keyed = keyed.where(KeyInjection.serial.in_(run))
            inventory = set(session.scalars(units))
            injected: dict[str, list[str]] = defaultdict(list)
            for serial, initial_key_id in session.execute(keyed):
                injected[serial].append(initial_key_id)
        return Reconciliation(
            serials=run,
            authorised=len(inventory),
            injected=len(injected),
            refused=tuple(s for s in run if s not in inventory) if run is not None else (),
            not_injected=tuple(sorted(inventory - injected.keys())),
            injected_more_than_once={s: tuple(ids) for s, ids in sorted(injected.items()) if len(ids) > 1},
            not_in_inventory={s: tuple(ids) for s, ids in sorted(injected.items()) if s not in inventory},
        )
