"""Plain, immutable records the ledger hands out, so callers never hold a live ORM object."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from i18n import N_, _

from .errors import AuditChainBroken, LedgerRowTampered


@dataclass(frozen=True)
class DeviceRecord:
    serial: str
    model: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    port_path: str | None


@dataclass(frozen=True)
class OperationRecord:
    id: int
    serial: str
    station: str
    operator: str | None
    kind: str
    status: str
    started: dt.datetime
    ended: dt.datetime | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class OperatorRecord:
    name: str
    role: str
    created: dt.datetime
    disabled: bool = False
    has_password: bool = False
    failed_logins: int = 0


@dataclass(frozen=True)
class Credentials:
    """What checking an operator's password needs; the stored hash is kept out of ``repr``."""

    name: str
    role: str
    disabled: bool
    failed_logins: int
    password_hash: str | None = field(repr=False)


@dataclass(frozen=True)
class SessionRecord:
    """A CLI session found by its token's hash, with its operator as the ledger has them now."""

    id: int
    operator: str
    role: str
    operator_disabled: bool
    expires: dt.datetime
    ended: dt.datetime | None


@dataclass(frozen=True)
class BdkRecord:
    """A registered Base Derivation Key: what identifies and checks it, never the key."""

    label: str
    bdk_id: bytes  # 4 bytes, the first half of every Initial Key ID derived from it
    kcv: bytes
    origin: str  # "ceremony" or "generated"
    custodians: tuple[str, ...]
    registered: dt.datetime
    station: str
    operator: str | None
    issued: int = 0  # derivation IDs allocated so far (the last one issued)


@dataclass(frozen=True)
class AllocationRecord:
    """An Initial Key ID issued to a unit, and what became of it."""

    initial_key_id: bytes
    bdk_label: str
    serial: str
    state: str  # "allocated", "injected" or "failed"
    station: str
    operator: str | None
    allocated: dt.datetime
    ended: dt.datetime | None
    reason: str | None


@dataclass(frozen=True)
class InjectionRecord:
    """A recorded injection: the unit stored the Initial Key whose KCV it returned."""

    serial: str
    initial_key_id: bytes
    kcv: bytes
    certificate_serial: str
    bdk_label: str
    station: str
    operator: str | None
    injected: dt.datetime


@dataclass(frozen=True)
class InventoryRecord:
    """A unit the line is authorised to key."""

    serial: str
    reference: str | None
    added_by: str | None
    added: dt.datetime


@dataclass(frozen=True)
class CalibrationRecord:
    """A camera calibration written to a unit and read back, named by its blob's SHA-256."""

    serial: str
    checksum: str  # lower-case hex SHA-256 of the blob (terminal.camera.blob_checksum)
    blob_version: int
    figures: dict[str, float | int]
    station: str
    operator: str | None
    created: dt.datetime


@dataclass(frozen=True)
class CameraCheckRecord:
    """A depth-quality run or a field check of a unit's camera."""

    serial: str
    kind: str  # "depth-quality" or "field-check"
    passed: bool
    verdict: str | None  # a field check's verdict (camera.fieldcheck.FieldVerdict), e.g. "recalibrate"
    figures: dict[str, float | int]
    calibration: str | None  # the checksum of the calibration checked, when known
    station: str
    operator: str | None
    created: dt.datetime


@dataclass(frozen=True)
class PlatformCallRecord:
    """A call to the merchant platform kept in the outbox: ``pending``, ``done`` (with the reply) or ``refused``
    (with the platform's code and reason); ``biz`` is the request as sent (its request number included)."""

    request_no: str
    method: str
    serial: str | None
    biz: dict[str, Any]
    state: str
    attempts: int
    created: dt.datetime
    updated: dt.datetime
    reply: dict[str, Any] | None
    error: str | None
    station: str
    operator: str | None


@dataclass(frozen=True)
class UnitRunRecord:
    """A unit's run of a recipe (``running``, ``succeeded`` or ``failed``) and who holds or held it."""

    id: int
    serial: str
    recipe: str
    digest: str
    batch: str
    status: str
    station: str
    host: str
    pid: int
    operator: str | None
    started: dt.datetime
    finished: dt.datetime | None
    heartbeat: dt.datetime
    lease_seconds: int


@dataclass(frozen=True)
class UnitStepRecord:
    """One attempt at one step of a unit's run, with the run's recipe; ``data`` and ``error`` are JSON, no secret
    (``error``: the error's class, message and remedy as they were shown)."""

    id: int
    run_id: int
    recipe: str
    position: int
    name: str
    status: str
    started: dt.datetime
    finished: dt.datetime | None
    seconds: float | None
    detail: str
    data: dict[str, Any]
    error: dict[str, Any] | None
    already_done: bool
    station: str


@dataclass(frozen=True)
class RunClaim:
    """What :meth:`~provisioning.ledger.Ledger.claim_unit_run` found and did.

    ``outcome``: ``claimed`` (a new run), ``resumed`` (an unfinished or failed run of the same recipe, with its
    ``steps`` so far), ``already-done`` (``run`` is the unit's succeeded run of a writing recipe, ``steps`` its
    steps) or ``held-elsewhere`` (``run`` is the running run a live station holds).  ``taken_over`` names the
    station whose run was taken over (dead process, or lease expired), None otherwise."""

    outcome: str
    run: UnitRunRecord
    steps: tuple[UnitStepRecord, ...] = ()
    taken_over: str | None = None


class Finding(enum.Enum):
    """What reconcile found about a unit, by the :class:`Reconciliation` field naming it; the value is the msgid."""

    REFUSED = N_("refused: not in the inventory")
    NOT_INJECTED = N_("not keyed yet")
    INJECTED_MORE_THAN_ONCE = N_("keyed more than once")
    NOT_IN_INVENTORY = N_("keyed, but not in the inventory")
    UNCONFIRMED = N_("key unconfirmed: check the unit with 'naiad keys status'")
    FAILED = N_("injection failed: Initial Key ID burnt")

    def text(self) -> str:
        return _(self.value)


@dataclass(frozen=True)
class Reconciliation:
    """A run (or the whole line) checked against the authorised inventory and the injections recorded.

    ``refused``: units of the run not in the inventory (of the whole line: units the station refused and
    put on record, still not in it); ``not_injected``: inventory units with no injection;
    ``injected_more_than_once`` and ``not_in_inventory``: serial -> Initial Key IDs (hex) of its injections;
    ``unconfirmed``: serial -> IDs still allocated with no injection (the unit may hold a key the ledger
    never recorded); ``failed``: serial -> IDs burnt by failed injections, listed for the officer.
    ``ok`` when nothing but units still to key and failed IDs is found."""

    serials: tuple[str, ...] | None  # the run's units, None for everything
    authorised: int
    injected: int
    refused: tuple[str, ...]
    not_injected: tuple[str, ...]
    injected_more_than_once: Mapping[str, tuple[str, ...]]
    not_in_inventory: Mapping[str, tuple[str, ...]]
    unconfirmed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    failed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.refused or self.injected_more_than_once or self.not_in_inventory or self.unconfirmed)

    def verdict(self) -> str:
        """The verdict as shown to a person (the CLI's and the console's last line)."""
        return _("Everything adds up.") if self.ok else _("Report the findings to the security officer.")

    def findings(self) -> list[tuple[Finding, str, tuple[str, ...]]]:
        """(finding, serial, Initial Key IDs) for every unit named, in the order of the fields."""
        none: tuple[str, ...] = ()
        rows = [(Finding.REFUSED, s, none) for s in self.refused]
        rows += [(Finding.NOT_INJECTED, s, none) for s in self.not_injected]
        named = (
            (Finding.INJECTED_MORE_THAN_ONCE, self.injected_more_than_once),
            (Finding.NOT_IN_INVENTORY, self.not_in_inventory),
            (Finding.UNCONFIRMED, self.unconfirmed),
            (Finding.FAILED, self.failed),
        )
        return rows + [(finding, s, ids) for finding, by_serial in named for s, ids in by_serial.items()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "serials": None if self.serials is None else list(self.serials),
            "authorised": self.authorised,
            "injected": self.injected,
            "refused": list(self.refused),
            "not_injected": list(self.not_injected),
            "injected_more_than_once": {k: list(v) for k, v in self.injected_more_than_once.items()},
            "not_in_inventory": {k: list(v) for k, v in self.not_in_inventory.items()},
            "unconfirmed": {k: list(v) for k, v in self.unconfirmed.items()},
            "failed": {k: list(v) for k, v in self.failed.items()},
        }


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: dt.datetime
    station: str
    operator: str | None
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    seals: dict[str, str | None] = field(default_factory=dict)  # rows this entry binds (see seals.py)


@dataclass(frozen=True)
class AuditHead:
    """The last link of the chain; keep a copy outside the database to detect a cut-off tail."""

    entry_id: int
    hash: str


class ChainProblem(enum.Enum):
    """What ``verify()`` found wrong; the value is the msgid shown to a person."""

    EDITED = N_("the entry's contents do not match its hash (edited)")
    BROKEN_LINK = N_("the entry does not follow the one before it (an entry was deleted, inserted or moved)")
    HEAD_MISMATCH = N_("the chain does not end at the recorded head (the tail was cut off or replaced)")
    ANCHOR_MISSING = N_("the chain no longer contains the externally kept head (the tail was cut off)")
    ANCHOR_MISMATCH = N_("the entry differs from the externally kept head (the chain was rewritten)")
    MALFORMED = N_("the row holds a value the ledger never writes (a bad time, text that is not JSON, a missing value)")
    ROW_EDITED = N_("the row differs from the state the audit trail recorded for it (edited)")
    ROW_DELETED = N_("the row the audit trail recorded is missing (deleted)")
    ROW_UNRECORDED = N_("the row is not in the audit trail (inserted behind the ledger's back)")


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``verify``: ``ok``, or the first thing wrong, why, and where.

    ``table`` and ``row`` name the row found wrong (``audit_log`` and the entry id for the chain
    itself); ``first_bad_id`` is the chain entry concerned (for a row, the one that last recorded
    it; None for a row the chain never recorded).  ``rows`` counts the sealed rows found intact."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: ChainProblem | None = None
    head: AuditHead | None = None
    table: str | None = None
    row: str | None = None
    rows: int = 0

    @property
    def reason(self) -> str | None:
        """The problem in the user's language."""
        return _(self.problem.value) if self.problem else None

    def raise_if_broken(self) -> None:
        if self.ok:
            return
        if self.table not in (None, "audit_log"):
            raise LedgerRowTampered(table=self.table, row=self.row, reason=self.reason)
        raise AuditChainBroken(entry_id=self.first_bad_id, reason=self.reason)
