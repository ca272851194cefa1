"""Build a signed firmware bundle from partition images.

Everything is checked before the output exists: models and revisions against the model table,
partition names and sizes against every target model, sparse images parsed end to end.  The images
are read twice, once to hash and measure them and once to write them (and are re-hashed then, so an
image rewritten by a build meanwhile is caught).  The bundle is written to a temporary file, checked
by the same reader the station uses, and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from i18n import _
from terminal.errors import UnknownModel
from terminal.events import ItemProgressCallback
from terminal.models import TerminalModel, load_models

from .bundle import Bundle
from .container import BundleLimits
from .errors import (
    DuplicatePartition,
    ImageChanged,
    ImageNotFound,
    ImageTooLarge,
    InvalidModelSpec,
    InvalidPartitionSpec,
    InvalidRelease,
    OutputExists,
    OversizedImage,
    UnknownHardwareRevision,
    UnknownPartition,
)
from .manifest import (
    MANIFEST_MEMBER,
    MAX_SECURITY_VERSION,
    RAW,
    SIGNATURE_MEMBER,
    SPARSE,
    Compatibility,
    Manifest,
    PartitionImage,
    valid_partition_name,
    valid_version,
)
from .signing import PrivateKey, algorithm_of, key_id, sign_manifest
from .sparse import PIECE, SparseReader, is_sparse

LOG = logging.getLogger(__name__)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_MIN_SAVING = 0.9  # deflate only when it saves at least a tenth


@dataclass(frozen=True)
class ModelSpec:
    """A target model, optionally restricted to some of its hardware revisions (``df2:A,B``)."""

    model: str
    hardware_revisions: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        model, sep, revisions = text.partition(":")
        if not model or (sep and not revisions):
            raise InvalidModelSpec(spec=text)
        revs = tuple(r.strip() for r in revisions.split(",")) if sep else None
        if revs is not None and (not all(revs) or len(set(revs)) != len(revs)):
            raise InvalidModelSpec(spec=text)
        return cls(model.strip(), revs)


@dataclass(frozen=True)
class PartitionSource:
    """``NAME=FILE``: the image file for one partition."""

    name: str
    file: Path

    @classmethod
    def parse(cls, text: str) -> PartitionSource:
        name, sep, file = text.partition("=")
        if not sep or not file or not valid_partition_name(name):
            raise InvalidPartitionSpec(spec=text)
        return cls(name, Path(file))


@dataclass(frozen=True)
class _Analysis:
    image: PartitionImage
    deflated_size: int


class _Tee:
    """A non-seekable read-through that hashes (and optionally measures deflate of) what passes."""

    def __init__(self, stream: BinaryIO, compress_level: int | None) -> None:
        self._stream = stream
        self.hash = hashlib.sha256()
        self.size = 0
        self.deflated = 0
        # the same settings zipfile uses, so the measured size is the size the member will have
        self._deflate = zlib.compressobj(compress_level, zlib.DEFLATED, -15) if compress_level is not None else None

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.hash.update(data)
        self.size += len(data)
        if self._deflate is not None:
            self.deflated += len(self._deflate.compress(data))
        return data

    def finish(self) -> None:
        if self._deflate is not None:
            self.deflated += len(self._deflate.flush())


def _open_image(path: Path) -> BinaryIO:
    try:
        if not path.is_file():
            raise ImageNotFound(path=str(path))
        return path.open("rb")
    except OSError as exc:
        raise ImageNotFound(path=str(path)) from exc


def _analyse(source: PartitionSource, compress_level: int | None, progress: ItemProgressCallback | None) -> _Analysis:
    with _open_image(source.file) as fh:
        head = fh.read(4)
        fh.seek(0)
        tee = _Tee(fh, compress_level)
        if is_sparse(head):
            reader = SparseReader(tee)  # type: ignore[arg-type]
            for _chunk in reader.chunks():
                for _data in reader.payload():
                    if progress is not None:
                        progress(source.name, tee.size, 0)
            kind, expanded = SPARSE, reader.header.expanded_size
        else:
            while tee.read(PIECE):
                if progress is not None:
                    progress(source.name, tee.size, 0)
            kind, expanded = RAW, tee.size
        tee.finish()
    image = PartitionImage(source.name, kind, tee.size, expanded, tee.hash.hexdigest())
    return _Analysis(image, tee.deflated)


def _resolve_models(
    specs: Sequence[ModelSpec], table: Mapping[str, TerminalModel]
) -> list[tuple[TerminalModel, Compatibility]]:
    if not specs:
        raise InvalidRelease(field="model", detail=_("at least one --model is required"))
    resolved = []
    seen: set[str] = set()
    for spec in specs:
        model = table.get(spec.model)
        if model is None:
            raise UnknownModel(model=spec.model)
        if spec.model in seen:
            raise InvalidModelSpec(spec=spec.model)
        seen.add(spec.model)
        revisions = spec.hardware_revisions or model.hardware_revisions
        for revision in revisions:
            if revision not in model.hardware_revisions:
                raise UnknownHardwareRevision(
                    model=model.id, revision=revision, revisions=", ".join(model.hardware_revisions)
                )
        resolved.append((model, Compatibility(model.id, tuple(revisions))))
    return resolved


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch and epoch.isdigit() else dt.datetime.now(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _zip_info(name: str, method: int, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info.compress_type = method
    info.file_size = size
    return info


def pack_bundle(
    out: Path,
    *,
    key: PrivateKey,
    models: Sequence[ModelSpec],
    version: str,
    security_version: int,
    partitions: Sequence[PartitionSource],
    compress: bool = True,
    compress_level: int = 6,
    overwrite: bool = False,
    model_table: Mapping[str, TerminalModel] | None = None,
    limits: BundleLimits | None = None,
    progress: ItemProgressCallback | None = None,
) -> Manifest:
    """Write a bundle of ``partitions`` for ``models`` to ``out``, signed with ``key``; returns its manifest.

    With ``compress``, each image is deflated at ``compress_level`` (1 fast .. 9 small) when that saves
    a tenth or more and stays within the reader's expansion limit; otherwise it is stored.  ``progress``
    gets (partition, bytes done, total): first each source is read (total 0: unknown), then written.
    """
    limits = limits or BundleLimits()
    if not 1 <= compress_level <= 9:
        raise InvalidRelease(field="compress_level", detail=_("it must be from {low} to {high}", low=1, high=9))
    level = compress_level if compress else None
    if not valid_version(version):
        raise InvalidRelease(field="version", detail=_("it must be 1-64 characters of letters, digits and . + _ ~ -"))
    if not 0 <= security_version <= MAX_SECURITY_VERSION:
        raise InvalidRelease(
            field="security_version", detail=_("it must be from {low} to {high}", low=0, high=MAX_SECURITY_VERSION)
        )
    if not partitions:
        raise InvalidRelease(field="partition", detail=_("at least one --partition is required"))
    if len(partitions) + 2 > limits.max_members:
        raise InvalidRelease(
            field="partition", detail=_("a bundle holds at most {limit} partitions", limit=limits.max_members - 2)
        )
    names = [p.name for p in partitions]
    for name in names:
        if names.count(name) > 1:
            raise DuplicatePartition(path=str(out), partition=name)
    targets = _resolve_models(models, model_table if model_table is not None else load_models())
    for model, _compat in targets:
        for name in names:
            if model.partition(name) is None:
                raise UnknownPartition(model=model.id, partition=name)
    if out.exists() and not overwrite:
        raise OutputExists(path=str(out))

    analyses = [_analyse(source, level, progress) for source in partitions]
    for analysis in analyses:
        image = analysis.image
        if max(image.size, image.expanded_size) > limits.max_image_size:
            raise OversizedImage(
                path=str(out),
                member=image.path,
                size=image.size,
                expanded_size=image.expanded_size,
                limit=limits.max_image_size,
            )
        for model, _compat in targets:
            capacity = model.partition(image.name).size  # type: ignore[union-attr]
            if image.expanded_size > capacity:
                raise ImageTooLarge(partition=image.name, size=image.expanded_size, model=model.id, capacity=capacity)

    manifest = Manifest(
        version=version,
        security_version=security_version,
        compatible=tuple(compat for _model, compat in targets),
        partitions=tuple(a.image for a in analyses),
        created=_created(),
    )
    manifest_bytes = manifest.encode()
    signature = sign_manifest(key, manifest_bytes)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        _write(tmp, manifest_bytes, signature.encode(), partitions, analyses, level, limits, progress)
        public = key.public_key()
        with Bundle.open(tmp, {key_id(public): public}, limits=limits):
            pass  # the station's own reader accepts what was written
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    LOG.info(
        "packed %s: version %s, security version %d, %d images, %s key %s",
        out,
        version,
        security_version,
        len(partitions),
        algorithm_of(key),
        signature.key_id[:16],
    )
    return manifest


def _write(
    tmp: Path,
    manifest_bytes: bytes,
    signature_bytes: bytes,
    partitions: Sequence[PartitionSource],
    analyses: Sequence[_Analysis],
    compress_level: int | None,
    limits: BundleLimits,
    progress: ItemProgressCallback | None,
) -> None:
    total = sum(a.image.size for a in analyses)
    done = 0
    with tmp.open("wb") as fh:
        with zipfile.ZipFile(fh, "w", compresslevel=compress_level) as zf:
            zf.writestr(_zip_info(SIGNATURE_MEMBER, zipfile.ZIP_STORED, len(signature_bytes)), signature_bytes)
            zf.writestr(_zip_info(MANIFEST_MEMBER, zipfile.ZIP_STORED, len(manifest_bytes)), manifest_bytes)
            for source, analysis in zip(partitions, analyses, strict=True):
                image = analysis.image
                deflate = (
                    compress_level is not None
                    and analysis.deflated_size < image.size * _MIN_SAVING
                    and (
                        image.size <= limits.ratio_floor
                        or image.size <= max(analysis.deflated_size, 1) * limits.max_expansion_ratio
                    )
                )
                method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
                digest = hashlib.sha256()
                written = 0
                with _open_image(source.file) as src, zf.open(_zip_info(image.path, method, image.size), "w") as dst:
                    while data := src.read(PIECE):
                        if written + len(data) > image.size:
                            raise ImageChanged(path=str(source.file))
                        digest.update(data)
                        dst.write(data)
                        written += len(data)
                        if progress is not None:
                            progress(image.name, done + written, total)
                if written != image.size or digest.hexdigest() != image.sha256:
                    raise ImageChanged(path=str(source.file))
                done += written
        fh.flush()
        os.fsync(fh.fileno())
