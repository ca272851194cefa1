"""The one canonical encoding the ledger hashes, shared by audit entries and row seals."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """The one encoding hashed: sorted keys, no whitespace, UTF-8 text kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def iso_utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")
