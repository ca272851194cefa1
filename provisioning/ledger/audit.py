"""The hash-chained audit log: canonical encoding, appending under the chain lock, verifying.

Each entry's hash is SHA-256 over the previous entry's hash followed by a canonical JSON encoding
(sorted keys, no whitespace, ISO-8601 UTC times) of the entry's own fields, its id included, so
editing, inserting, deleting or moving a row breaks the chain at that row.  Appenders lock the
single ``audit_head`` row first, which keeps the log one line when several stations write to one
database; the head row also lets ``verify`` (in ``verify.py``) notice a cut-off tail, unless the
head was rewritten too, which only a head kept outside the database can reveal.  An entry also
carries the seals of the rows its transaction changed (``seals.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from i18n import _

from .encoding import canonical_json, iso_utc
from .errors import InvalidLedgerInput, LedgerError, SecretRefused
from .models import AuditEntry, AuditHeadRow
from .records import AuditHead, AuditRecord

LOG = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16

# Field names that hold key material or credentials; the ledger stores key IDs and KCVs, never keys.
_SECRET_NAMES = frozenset(
    {
        "key", "secret", "password", "passwd", "passphrase", "pin", "pin_block", "pinblock",
        "bdk", "ipek", "ik", "initial_key", "private_key", "privkey", "clear_key", "plain_key",
        "key_component", "component", "plaintext", "kbpk", "session_key", "seed",
    }
)  # fmt: skip
_SECRET_SUFFIXES = ("_secret", "_password", "_passphrase", "_pin", "_key", "_key_component")
_ALLOWED_KEY_NAMES = frozenset({"public_key", "key_id", "key_ids"})


def entry_hash(
    prev_hash: str,
    *,
    entry_id: int,
    at: dt.datetime,
    station: str,
    operator: str | None,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    seals: Mapping[str, str | None] | None = None,
) -> str:
    """The entry's hash; ``seals`` (rows the entry binds) are hashed only when there are some, so
    entries written before rows were sealed keep their hashes."""
    fields: dict[str, Any] = {
        "id": entry_id,
        "at": iso_utc(at),
        "station": station,
        "operator": operator,
        "action": action,
        "subject": subject,
        "details": details,
    }
    if seals:
        fields["seals"] = seals
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def stored_entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash a stored entry (its columns by name, decoded) must carry."""
    return entry_hash(
        entry["prev_hash"],
        entry_id=entry["id"],
        at=entry["at"],
        station=entry["station"],
        operator=entry["operator"],
        action=entry["action"],
        subject=entry["subject"],
        details=entry["details"],
        seals=entry["seals"],
    )


def clean_json(value: Any, field: str) -> Any:
    """``value`` as stored (tuples become lists), after refusing what JSON or the ledger cannot keep.

    Refused: non-string keys, NaN and infinities, other types, deep nesting, more than 64 KiB, and
    any field named like a key, PIN or password.
    """
    _check_json(value, field, depth=0)
    text = canonical_json(value)
    if len(text.encode("utf-8")) > MAX_JSON_BYTES:
        raise InvalidLedgerInput(field=field, detail=_("more than {limit} bytes of JSON", limit=MAX_JSON_BYTES))
    return json.loads(text)


def _check_json(value: Any, path: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidLedgerInput(field=path, detail=_("nested more than {limit} levels", limit=MAX_JSON_DEPTH))
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        _check_text(value, path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidLedgerInput(field=path, detail=_("not a finite number"))
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidLedgerInput(field=path, detail=_("a key that is not text"))
            _check_text(key, path)
            if looks_secret(key):
                raise SecretRefused(field=f"{path}.{key}")
            _check_json(item, f"{path}.{key}", depth + 1)
        return
    raise InvalidLedgerInput(field=path, detail=_("{kind} cannot be stored as JSON", kind=type(value).__name__))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidLedgerInput(field=path, detail=_("text that is not valid Unicode")) from exc


def looks_secret(name: str) -> bool:
    normal = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if normal in _ALLOWED_KEY_NAMES:
        return False
    return normal in _SECRET_NAMES or normal.endswith(_SECRET_SUFFIXES)


def lock_head(session: Session) -> AuditHeadRow:
    """Lock and return the chain head; every appender takes this lock before anything else."""
    head = session.scalars(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).one_or_none()
    if head is None:
        raise LedgerError(detail=_("the audit chain head row is missing"))
    return head


def append(
    session: Session,
    head: AuditHeadRow,
    *,
    at: dt.datetime,
    station: str,
    operator: str | None,
    action: str,
    subject: str,
    details: dict[str, Any],
    seals: dict[str, str | None] | None = None,
) -> AuditRecord:
    """Add the next link after ``head`` (locked by ``lock_head`` in this transaction) and move the head."""
    entry_id = head.entry_id + 1
    digest = entry_hash(
        head.hash,
        entry_id=entry_id,
        at=at,
        station=station,
        operator=operator,
        action=action,
        subject=subject,
        details=details,
        seals=seals,
    )
    entry = AuditEntry(
        id=entry_id,
        at=at,
        station=station,
        operator=operator,
        action=action,
        subject=subject,
        details=details,
        seals=seals or None,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(entry)
    head.entry_id, head.hash = entry_id, digest
    session.flush()
    return to_record(entry)


def to_record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=entry.id,
        at=entry.at,
        station=entry.station,
        operator=entry.operator,
        action=entry.action,
        subject=entry.subject,
        details=entry.details,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
        seals=entry.seals or {},
    )


def read_head(session: Session) -> AuditHead:
    row = session.get(AuditHeadRow, 1)
    if row is None:
        raise LedgerError(detail=_("the audit chain head row is missing"))
    return AuditHead(entry_id=row.entry_id, hash=row.hash)
