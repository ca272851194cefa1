"""What a bundle holds and who signed it, read without hashing any image: for inspect screens and pickers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from terminal.errors import NaiadError

from .bundle import Bundle
from .errors import UnknownSigningKey
from .signing import short_key_id

LOG = logging.getLogger(__name__)


def signature_status(trust_error: NaiadError | None) -> str:
    """``trusted``, ``unknown-key`` or ``invalid``: the signature as a script or a badge shows it."""
    if trust_error is None:
        return "trusted"
    return "unknown-key" if isinstance(trust_error, UnknownSigningKey) else "invalid"


@dataclass(frozen=True)
class ModelFit:
    """A model the bundle is for: id, display name (from the model table) and hardware revisions."""

    model: str
    name: str
    hardware_revisions: tuple[str, ...]


@dataclass(frozen=True)
class PartitionRow:
    name: str
    type: str
    size: int
    expanded_size: int


@dataclass(frozen=True)
class BundleSummary:
    """A bundle's manifest and signature status, read without hashing any image."""

    path: str
    version: str
    security_version: int
    created: str | None
    models: tuple[ModelFit, ...]
    partitions: tuple[PartitionRow, ...]
    key_id: str
    algorithm: str
    trust_error: NaiadError | None

    @property
    def trusted(self) -> bool:
        return self.trust_error is None

    def fits(self, model: str) -> bool:
        return any(fit.model == model for fit in self.models)


def read_bundle_summary(path: str | os.PathLike[str], trusted: Mapping[str, Any] | None = None) -> BundleSummary:
    """Open ``path`` for inspection only (an untrusted signature is reported, not raised) and summarise it.

    ``trusted`` is the release keys to accept (default: the station's trust store).  Raises the
    bundle's typed error (``BundleNotFound``, ``MalformedBundle`` ...) when it cannot be read at all.
    """
    from terminal.models import load_models

    with Bundle.open(os.fspath(path), trusted, require_trusted=False) as bundle:
        manifest = bundle.manifest
        signature = bundle.signature
        trust_error = bundle.trust_error
    try:
        table = load_models()
    except NaiadError as exc:  # a broken user model table must not hide the bundle
        LOG.warning("model names unavailable: %s", exc)
        table = {}
    models = tuple(
        ModelFit(c.model, table[c.model].name if c.model in table else c.model, tuple(c.hardware_revisions))
        for c in manifest.compatible
    )
    partitions = tuple(PartitionRow(p.name, p.type, p.size, p.expanded_size) for p in manifest.partitions)
    return BundleSummary(
        path=os.fspath(path),
        version=manifest.version,
        security_version=manifest.security_version,
        created=manifest.created,
        models=models,
        partitions=partitions,
        key_id=short_key_id(signature.key_id),
        algorithm=signature.algorithm,
        trust_error=trust_error,
    )
