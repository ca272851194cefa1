"""The bundle manifest: what a release contains and which units it is for, as canonical JSON.

The manifest is the only thing the release key signs, so it names every image with its size and
SHA-256.  Parsing is strict: exact key sets, no duplicate keys, integers only where numbers are
expected, and the bytes must be the canonical encoding of what they parse to, so that one signed
manifest has exactly one meaning for every reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

from i18n import _

from .errors import (
    DuplicatePartition,
    MalformedManifest,
    MissingManifestFields,
    UnexpectedManifestFields,
    UnsupportedBundleFormat,
)

FORMAT_VERSION = 1
RAW = "raw"
SPARSE = "sparse"
IMAGE_TYPES = (RAW, SPARSE)
MANIFEST_MEMBER = "manifest.json"
SIGNATURE_MEMBER = "manifest.sig"
IMAGE_DIR = "images/"
IMAGE_SUFFIX = ".img"
MAX_SECURITY_VERSION = 2**32 - 1
MAX_IMAGE_SIZE = 2**48

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_PARTITION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PART_KEYS = {"name", "path", "type", "size", "expanded_size", "sha256"}


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the one encoding that is signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def image_member(partition: str) -> str:
    return f"{IMAGE_DIR}{partition}{IMAGE_SUFFIX}"


def valid_partition_name(name: str) -> bool:
    return bool(_PARTITION.fullmatch(name))


def valid_version(version: str) -> bool:
    return bool(_VERSION.fullmatch(version))


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key for firmware versions of :func:`valid_version`'s form: dot/underscore-separated pieces, numbers
    compared as numbers (2.10 > 2.9), letters as text, numbers after letters; a pre-release after ``-`` or ``~``
    (2.1.0-rc1) sorts before its release; build metadata after ``+`` is ignored."""

    def pieces(text: str) -> tuple[tuple[int, int, str], ...]:
        return tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in re.findall(r"[0-9]+|[A-Za-z]+", text))

    release, _sep, pre = version.split("+", 1)[0].replace("~", "-").partition("-")
    return (pieces(release), 0 if pre else 1, pieces(pre))


@dataclass(frozen=True)
class Compatibility:
    model: str
    hardware_revisions: tuple[str, ...]


@dataclass(frozen=True)
class PartitionImage:
    name: str
    type: str
    size: int
    """Bytes of the image as stored in the bundle."""
    expanded_size: int
    """Bytes it occupies on the partition (equal to ``size`` for raw images)."""
    sha256: str

    @property
    def path(self) -> str:
        return image_member(self.name)


@dataclass(frozen=True)
class Manifest:
    version: str
    security_version: int
    compatible: tuple[Compatibility, ...]
    partitions: tuple[PartitionImage, ...]
    created: str | None = None

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(c.model for c in self.compatible)

    def compatibility(self, model: str) -> Compatibility | None:
        return next((c for c in self.compatible if c.model == model), None)

    def partition(self, name: str) -> PartitionImage | None:
        return next((p for p in self.partitions if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "version": self.version,
            "security_version": self.security_version,
            "compatible": [
                {"model": c.model, "hardware_revisions": list(c.hardware_revisions)} for c in self.compatible
            ],
            "partitions": [
                {
                    "name": p.name,
                    "path": p.path,
                    "type": p.type,
                    "size": p.size,
                    "expanded_size": p.expanded_size,
                    "sha256": p.sha256,
                }
                for p in self.partitions
            ],
        }
        if self.created is not None:
            body["created"] = self.created
        return body

    def encode(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def parse(cls, data: bytes, path: str) -> Manifest:
        """Decode and validate manifest bytes; any defect is a typed error naming ``path``."""
        return _Parser(path).parse(data)


# The top-level fields: "format" and the Manifest's own; those with a default may be left out.
_ALLOWED_TOP_KEYS = frozenset({"format", *(f.name for f in fields(Manifest))})
_REQUIRED_TOP_KEYS = frozenset({"format", *(f.name for f in fields(Manifest) if f.default is MISSING)})


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, *, detail: str) -> MalformedManifest:
        """``detail`` is translated text: ``self.fail(detail=_("..."))``, which the i18n test checks."""
        return MalformedManifest(path=self.path, detail=detail)

    def parse(self, data: bytes) -> Manifest:
        try:
            body = json.loads(
                data.decode("utf-8"), object_pairs_hook=self._no_duplicates, parse_constant=self._no_constant
            )
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise self.fail(detail=_("it is not JSON text: {reason}", reason=exc)) from exc
        if not isinstance(body, dict):
            raise self.fail(detail=_("it is not a JSON object"))
        fmt = body.get("format")
        if not _is_int(fmt):
            raise self.fail(detail=_("format is missing or not an integer"))
        if fmt != FORMAT_VERSION:
            raise UnsupportedBundleFormat(path=self.path, format=fmt)
        keys = set(body)
        if unexpected := keys - _ALLOWED_TOP_KEYS:
            raise UnexpectedManifestFields(
                path=self.path, unexpected=", ".join(sorted(unexpected)), allowed=", ".join(sorted(_ALLOWED_TOP_KEYS))
            )
        if missing := _REQUIRED_TOP_KEYS - keys:
            raise MissingManifestFields(path=self.path, missing=", ".join(sorted(missing)))
        if canonical_json(body) != data:
            raise self.fail(detail=_("it is not in canonical form"))
        created = body.get("created")
        if created is not None and not (isinstance(created, str) and len(created) <= 64):
            raise self.fail(detail=_("created is not a short string"))
        return Manifest(
            version=self._version(body["version"]),
            security_version=self._int(body["security_version"], "security_version", MAX_SECURITY_VERSION),
            compatible=self._compatible(body["compatible"]),
            partitions=self._partitions(body["partitions"]),
            created=created,
        )

    def _no_duplicates(self, pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise self.fail(detail=_("a key appears twice in one object"))
        return result

    def _no_constant(self, name: str) -> Any:
        raise self.fail(detail=_("{name} is not a number", name=name))

    def _version(self, value: Any) -> str:
        if not isinstance(value, str) or not valid_version(value):
            raise self.fail(detail=_("version must be 1-64 characters of letters, digits and . + _ ~ -"))
        return value

    def _int(self, value: Any, name: str, maximum: int) -> int:
        if not _is_int(value) or not 0 <= value <= maximum:
            raise self.fail(detail=_("{name} must be an integer from 0 to {maximum}", name=name, maximum=maximum))
        return int(value)

    def _compatible(self, value: Any) -> tuple[Compatibility, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(detail=_("compatible must be a non-empty list"))
        result = []
        for entry in value:
            if not isinstance(entry, dict) or set(entry) != {"model", "hardware_revisions"}:
                raise self.fail(detail=_("each compatible entry needs exactly model and hardware_revisions"))
            model, revisions = entry["model"], entry["hardware_revisions"]
            if not isinstance(model, str) or not _MODEL.fullmatch(model):
                raise self.fail(detail=_("invalid model id {model}", model=repr(model)))
            if (
                not isinstance(revisions, list)
                or not revisions
                or not all(isinstance(r, str) and _REVISION.fullmatch(r) for r in revisions)
                or len(set(revisions)) != len(revisions)
            ):
                raise self.fail(detail=_("invalid hardware revisions for {model}", model=model))
            result.append(Compatibility(model, tuple(revisions)))
        if len({c.model for c in result}) != len(result):
            raise self.fail(detail=_("a model is listed twice"))
        return tuple(result)

    def _partitions(self, value: Any) -> tuple[PartitionImage, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(detail=_("partitions must be a non-empty list"))
        result: list[PartitionImage] = []
        for entry in value:
            if not isinstance(entry, dict) or set(entry) != _PART_KEYS:
                raise self.fail(detail=_("each partition needs exactly {fields}", fields=", ".join(sorted(_PART_KEYS))))
            name = entry["name"]
            if not isinstance(name, str) or not valid_partition_name(name):
                raise self.fail(detail=_("invalid partition name {name}", name=repr(name)))
            if any(p.name == name for p in result):
                raise DuplicatePartition(path=self.path, partition=name)
            if entry["path"] != image_member(name):
                raise self.fail(
                    detail=_(
                        "the image of {partition} must be stored as {member}", partition=name, member=image_member(name)
                    )
                )
            kind = entry["type"]
            if kind not in IMAGE_TYPES:
                raise self.fail(
                    detail=_("partition {partition} has unknown type {kind}", partition=name, kind=repr(kind))
                )
            size = self._int(entry["size"], f"{name}.size", MAX_IMAGE_SIZE)
            expanded = self._int(entry["expanded_size"], f"{name}.expanded_size", MAX_IMAGE_SIZE)
            if kind == RAW and expanded != size:
                raise self.fail(detail=_("raw image {partition} must have expanded_size equal to size", partition=name))
            digest = entry["sha256"]
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise self.fail(detail=_("partition {partition} has an invalid sha256", partition=name))
            result.append(PartitionImage(name, kind, size, expanded, digest))
        return tuple(result)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
