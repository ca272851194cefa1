"""Typed errors of the keys domain.  Parameters never hold key material: at most a KCV or a key ID."""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class KeysError(NaiadError):
    """Root of every keys error."""

    message = N_("Key handling failed: {detail}")
