"""The station ledger: devices, operations, operators and a hash-chained audit log (SQLAlchemy).

SQLite in WAL mode is the embedded default; a line of stations shares one PostgreSQL database.
See ``docs/ledger.md``.
"""

from __future__ import annotations

from .db import current_revision, default_path, default_url, head_revision
from .errors import (
    AuditChainBroken,
    BdkExists,
    BdkIdInUse,
    BootstrapClosed,
    InvalidLedgerInput,
    InvalidLedgerUrl,
    LedgerClosed,
    LedgerDriverMissing,
    LedgerError,
    LedgerMalformed,
    LedgerRowTampered,
    LedgerSchemaTooNew,
    LedgerUnavailable,
    OperatorExists,
    SecretRefused,
    UnknownBdk,
    UnknownDevice,
    UnknownOperator,
)
from .ledger import Ledger, OperationHandle, default_station_name
from .records import (
    AuditHead,
    AuditRecord,
    BdkRecord,
    ChainProblem,
    Credentials,
    DeviceRecord,
    OperationRecord,
    OperatorRecord,
    SessionRecord,
    VerifyReport,
)

__all__ = [
    "AuditChainBroken",
    "AuditHead",
    "AuditRecord",
    "BdkExists",
    "BdkIdInUse",
    "BdkRecord",
    "BootstrapClosed",
    "ChainProblem",
    "Credentials",
    "DeviceRecord",
    "InvalidLedgerInput",
    "InvalidLedgerUrl",
    "Ledger",
    "LedgerClosed",
    "LedgerDriverMissing",
    "LedgerError",
    "LedgerMalformed",
    "LedgerRowTampered",
    "LedgerSchemaTooNew",
    "LedgerUnavailable",
    "OperationHandle",
    "OperationRecord",
    "OperatorExists",
    "OperatorRecord",
    "SecretRefused",
    "SessionRecord",
    "UnknownBdk",
    "UnknownDevice",
    "UnknownOperator",
    "VerifyReport",
    "current_revision",
    "default_path",
    "default_station_name",
    "default_url",
    "head_revision",
]
