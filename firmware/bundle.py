"""Opening, verifying and checking a firmware bundle before a byte reaches a unit.

The order is deliberate: vet the container, check the signature over the manifest with the
station's trusted keys, cross-check members against the manifest, and only then hash the images
(:meth:`Bundle.verify`) and compare with the unit (:meth:`Bundle.check_compatible`).  A flasher
calls :meth:`Bundle.check_before_flash` and then streams each image with :meth:`Bundle.open_image`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from i18n import _
from terminal.events import ItemProgressCallback
from terminal.models import TerminalModel

from .container import BundleLimits, ImageReader, read_end_record, vet_members, zip_errors
from .errors import (
    BundleNotFound,
    ExpandedSizeMismatch,
    HardwareRevisionMismatch,
    ImageSizeMismatch,
    ImageTooLarge,
    MalformedBundle,
    MalformedSparseImage,
    MalformedSparsePartition,
    MissingMember,
    ModelMismatch,
    NotABundleFile,
    OversizedImage,
    RollbackRefused,
    SignatureError,
    SpecialBundleFile,
    TooManyMembers,
    UnexpectedMember,
    UnknownPartition,
    UntrustedBundle,
)
from .manifest import IMAGE_DIR, MANIFEST_MEMBER, SIGNATURE_MEMBER, SPARSE, Manifest, PartitionImage
from .signing import ManifestSignature, PublicKey, TrustStore, short_key_id, verify_manifest
from .sparse import PIECE, ChunkType, SparseReader

LOG = logging.getLogger(__name__)


def _open_regular_file(path: Path, label: str) -> BinaryIO:
    """``path`` opened for reading, refused unless it is a regular file: reading a FIFO or a device would hang.

    Checked before opening, and again on the open file (non-blocking, so a FIFO swapped in meanwhile
    cannot hang the open itself)."""
    try:
        _refuse_unless_regular(path.stat().st_mode, label)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise BundleNotFound(path=label) from None
    except OSError as exc:
        raise MalformedBundle(
            path=label, detail=_("it could not be opened: {reason}", reason=exc.strerror or exc)
        ) from exc
    fh = os.fdopen(fd, "rb")
    try:
        _refuse_unless_regular(os.fstat(fd).st_mode, label)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        fh.close()
        raise
    return fh


def _refuse_unless_regular(mode: int, label: str) -> None:
    if stat.S_ISDIR(mode):
        raise NotABundleFile(path=label)
    if not stat.S_ISREG(mode):
        raise SpecialBundleFile(path=label)


class Bundle:
    """An open, signature-checked firmware bundle.  Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        path: Path,
        fh: BinaryIO,
        zf: zipfile.ZipFile,
        members: dict[str, zipfile.ZipInfo],
        manifest: Manifest,
        signature: ManifestSignature,
        trust_error: SignatureError | None,
        limits: BundleLimits,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.signature = signature
        self.trust_error = trust_error
        """Why the signature is not accepted (only for bundles opened with ``require_trusted=False``)."""
        self.limits = limits
        self._fh = fh
        self._zip = zf
        self._members = members
        self._verified = False
        self._lock = threading.Lock()
        self.content_sha256: dict[str, str] = {}
        """Hex SHA-256 of the bytes each image writes, in offset order, made by :meth:`verify` in its one pass: a
        raw image's own SHA-256; a sparse image's RAW and FILL data, DONT_CARE holes left out (what a unit hashes
        of an image it holds, ``diag/slot-hashes``)."""

    # --- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path | str,
        trusted: TrustStore | Mapping[str, PublicKey] | None = None,
        *,
        limits: BundleLimits | None = None,
        require_trusted: bool = True,
    ) -> Bundle:
        """Open ``path`` and check its container and signature against ``trusted`` (default: the station's store).

        With ``require_trusted=False`` a bundle with a bad or unknown signature still opens, for
        inspection only: :attr:`trust_error` says why, and verify/flash operations refuse it.
        """
        path = Path(path)
        limits = limits or BundleLimits()
        label = str(path)
        fh = _open_regular_file(path, label)
        try:
            return cls._open(path, fh, trusted, limits, require_trusted)
        except BaseException:
            fh.close()
            raise

    @classmethod
    def _open(
        cls,
        path: Path,
        fh: BinaryIO,
        trusted: TrustStore | Mapping[str, PublicKey] | None,
        limits: BundleLimits,
        require_trusted: bool,
    ) -> Bundle:
        label = str(path)
        with zip_errors(label):
            end = read_end_record(fh, label)
            if end.members > limits.max_members:
                raise TooManyMembers(path=label, count=end.members, limit=limits.max_members)
            zf = zipfile.ZipFile(fh)
            members = vet_members(zf, fh, end, limits, label)
        for required in (SIGNATURE_MEMBER, MANIFEST_MEMBER):
            if required not in members:
                raise MissingMember(path=label, member=required)
        signature = ManifestSignature.decode(cls._read_small(zf, members[SIGNATURE_MEMBER], label), label)
        manifest_bytes = cls._read_small(zf, members[MANIFEST_MEMBER], label)
        keys = trusted.keys() if isinstance(trusted, TrustStore) else trusted
        if keys is None:
            keys = TrustStore().keys()
        trust_error: SignatureError | None = None
        try:
            verify_manifest(signature, manifest_bytes, dict(keys), label)
        except SignatureError as exc:
            if require_trusted:
                raise
            trust_error = exc
        manifest = Manifest.parse(manifest_bytes, label)
        cls._cross_check(manifest, members, limits, label)
        LOG.info(
            "opened bundle %s: version %s, security version %d, signed by %s%s",
            label,
            manifest.version,
            manifest.security_version,
            short_key_id(signature.key_id),
            "" if trust_error is None else " (untrusted)",
        )
        return cls(path, fh, zf, members, manifest, signature, trust_error, limits)

    @staticmethod
    def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
        with zip_errors(label, info.filename), zf.open(info) as member:
            data = member.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise MalformedBundle(
                path=label,
                detail=_("the member {member} is not {size} bytes long", member=info.filename, size=info.file_size),
            )
        return data

    @staticmethod
    def _cross_check(manifest: Manifest, members: dict[str, zipfile.ZipInfo], limits: BundleLimits, label: str) -> None:
        listed = {p.path for p in manifest.partitions}
        for name in members:
            if name.startswith(IMAGE_DIR) and name not in listed:
                raise UnexpectedMember(path=label, member=name)
        for image in manifest.partitions:
            info = members.get(image.path)
            if info is None:
                raise MissingMember(path=label, member=image.path)
            if info.file_size != image.size:
                raise ImageSizeMismatch(partition=image.name, expected=image.size, actual=info.file_size)
            if max(image.size, image.expanded_size) > limits.max_image_size:
                raise OversizedImage(
                    path=label,
                    member=image.path,
                    size=image.size,
                    expanded_size=image.expanded_size,
                    limit=limits.max_image_size,
                )

    # --- using ---------------------------------------------------------------------------------------

    @property
    def partitions(self) -> tuple[PartitionImage, ...]:
        """The images in flashing order."""
        return self.manifest.partitions

    @property
    def trusted(self) -> bool:
        return self.trust_error is None

    @property
    def verified(self) -> bool:
        return self._verified

    def _require_trusted(self) -> None:
        if self.trust_error is not None:
            raise UntrustedBundle(path=str(self.path))

    def open_image(self, name: str, *, check_hash: bool = True) -> io.BufferedReader:
        """A bounded reader of the image of partition ``name``, exactly as the manifest declares it.

        With ``check_hash`` the SHA-256 is re-checked while streaming (the reader cannot seek);
        without, the reader can seek (for re-sparsing) and relies on an earlier :meth:`verify`.
        """
        self._require_trusted()
        image = self.manifest.partition(name)
        if image is None:
            raise MissingMember(path=str(self.path), member=name)
        with zip_errors(str(self.path), image.path):
            member = self._zip.open(self._members[image.path])
        raw = ImageReader(member, image, str(self.path), check_hash=check_hash)
        return io.BufferedReader(raw, buffer_size=64 * 1024)

    def verify(self, progress: ItemProgressCallback | None = None, *, force: bool = False) -> None:
        """Hash every image (and walk every sparse image's chunks) against the manifest.

        Runs once per open bundle unless ``force``; raises the first mismatch found.  ``progress`` gets
        (image, bytes hashed so far over all images, total bytes of all images).
        """
        self._require_trusted()
        with self._lock:
            if self._verified and not force:
                return
            total = sum(p.size for p in self.partitions)
            done = 0
            for image in self.partitions:
                if progress is None:
                    self._verify_image(image, lambda at: None)
                else:
                    self._verify_image(image, lambda at: progress(image.name, done + at, total))  # noqa: B023
                done += image.size
                if progress is not None:
                    progress(image.name, done, total)
            self._verified = True
            LOG.info("bundle %s: %d images verified", self.path, len(self.partitions))

    def _verify_image(self, image: PartitionImage, report: Callable[[int], None]) -> None:
        """Stream one image through its hash check (and sparse parser), its content hash made on the way;
        ``report`` gets the bytes read."""
        with self.open_image(image.name, check_hash=True) as stream:
            if image.type == SPARSE:
                content = self._walk_sparse(image, stream, lambda: report(stream.tell()))
            else:
                while stream.read(PIECE):
                    report(stream.tell())
                content = image.sha256
        self.content_sha256[image.name] = content  # the stream ended: its manifest hash matched

    @staticmethod
    def _walk_sparse(image: PartitionImage, stream: BinaryIO, report: Callable[[], None]) -> str:
        """Walk a sparse image's chunks; the hex SHA-256 of its RAW and FILL data in order."""
        digest = hashlib.sha256()
        try:
            reader = SparseReader(stream)
            if reader.header.expanded_size != image.expanded_size:
                raise ExpandedSizeMismatch(
                    partition=image.name, expected=image.expanded_size, actual=reader.header.expanded_size
                )
            block_size = reader.header.block_size
            for chunk in reader.chunks():
                for data in reader.payload():
                    digest.update(data)
                    report()
                if chunk.type is ChunkType.FILL:
                    left = chunk.blocks * block_size
                    piece = chunk.fill * (min(left, PIECE) // 4)
                    while left:
                        step = min(left, len(piece))
                        digest.update(piece[:step])
                        left -= step
        except MalformedSparseImage as exc:
            raise MalformedSparsePartition(partition=image.name, detail=exc.params.get("detail", "")) from exc
        return digest.hexdigest()

    def check_compatible(self, model: TerminalModel, hardware_revision: str, unit_security_version: int) -> None:
        """Refuse the bundle for a unit of another model or revision, a newer security version, or
        partitions the model lacks or cannot hold."""
        self._require_trusted()
        manifest = self.manifest
        compatibility = manifest.compatibility(model.id)
        if compatibility is None:
            raise ModelMismatch(model=model.id, models=", ".join(manifest.models))
        if hardware_revision not in compatibility.hardware_revisions:
            raise HardwareRevisionMismatch(
                model=model.id, revision=hardware_revision, revisions=", ".join(compatibility.hardware_revisions)
            )
        if manifest.security_version < unit_security_version:
            raise RollbackRefused(
                bundle_security_version=manifest.security_version, unit_security_version=unit_security_version
            )
        for image in self.partitions:
            partition = model.partition(image.name)
            if partition is None:
                raise UnknownPartition(model=model.id, partition=image.name)
            if image.expanded_size > partition.size:
                raise ImageTooLarge(
                    partition=image.name, size=image.expanded_size, model=model.id, capacity=partition.size
                )

    def check_before_flash(
        self,
        model: TerminalModel,
        hardware_revision: str,
        unit_security_version: int,
        progress: ItemProgressCallback | None = None,
    ) -> None:
        """Everything that must hold before the first byte is written: compatibility, then every hash."""
        self.check_compatible(model, hardware_revision, unit_security_version)
        self.verify(progress)

    # --- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._zip.close()
        self._fh.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
