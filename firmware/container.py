"""The bundle container: a zip file vetted member by member before anything in it is read.

A bundle is a zip with ``manifest.json``, ``manifest.sig`` and ``images/<partition>.img``, each
member stored or deflated.  Before the signature is even looked at, the container is checked
against hard limits (member count, sizes, expansion ratio) and every member name and type is vetted:
no ``..``, no absolute names, no links, devices or directories, no duplicates, no overlapping data.
Images are then read through :class:`ImageReader`, which returns exactly the declared bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from i18n import _

from .errors import (
    AbsoluteMemberPath,
    DecompressionBomb,
    DuplicateMember,
    ImageHashMismatch,
    ImageSizeMismatch,
    MalformedBundle,
    OverlappingMembers,
    OversizedMember,
    PathTraversalMember,
    SpecialMember,
    TooManyMembers,
    UnexpectedMember,
    UnsafeMemberPath,
    UnsupportedMemberEncoding,
)
from .manifest import IMAGE_DIR, IMAGE_SUFFIX, MANIFEST_MEMBER, SIGNATURE_MEMBER, PartitionImage, valid_partition_name

MiB = 1 << 20
_EOCD = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_UNIX = 3
_FLAG_ENCRYPTED = 0x1


@dataclass(frozen=True)
class BundleLimits:
    """Hard limits a bundle must stay within, whatever its manifest says."""

    max_members: int = 64
    max_manifest_size: int = 1 * MiB
    max_signature_size: int = 4096
    max_image_size: int = 16 * 1024 * MiB
    max_expansion_ratio: int = 200
    """Largest expanded/compressed ratio of a deflated member bigger than ``ratio_floor``."""
    ratio_floor: int = 1 * MiB


@contextlib.contextmanager
def zip_errors(path: str, member: str | None = None) -> Iterator[None]:
    """Turn whatever the zip layer raises on damaged input into :class:`MalformedBundle`.

    ``member`` names the member being read; None while the zip directory itself is read.
    """
    try:
        yield
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        ValueError,
        struct.error,
        NotImplementedError,
        IndexError,
        OverflowError,
    ) as exc:
        if member is None:
            detail = _("the zip directory could not be read: {reason}", reason=exc)
        else:
            detail = _("the member {member} could not be read: {reason}", member=member, reason=exc)
        raise MalformedBundle(path=path, detail=detail) from exc


@dataclass(frozen=True)
class EndRecord:
    """What the end-of-central-directory record declares: member count and where the directory starts."""

    members: int
    directory_start: int


def read_end_record(fh: BinaryIO, path: str) -> EndRecord:
    """Read the end-of-central-directory record (zip64 aware) before zipfile parses the directory."""
    end = fh.seek(0, io.SEEK_END)
    tail_size = min(end, _EOCD.size + 65535)
    fh.seek(end - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise MalformedBundle(path=path, detail=_("it has no zip end-of-central-directory record"))
    fields = _EOCD.unpack_from(tail, at)
    count, directory_size = int(fields[4]), int(fields[5])
    record_at = end - tail_size + at
    if count == 0xFFFF or fields[6] == 0xFFFFFFFF or directory_size == 0xFFFFFFFF:
        locator_at = at - _ZIP64_LOCATOR.size
        if locator_at < 0 or tail[locator_at : locator_at + 4] != b"PK\x06\x07":
            raise MalformedBundle(path=path, detail=_("its zip64 locator is missing"))
        record_at = record_at - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size
        if record_at < 0:
            raise MalformedBundle(path=path, detail=_("its zip64 record lies outside the file"))
        fh.seek(record_at)
        record = fh.read(_ZIP64_EOCD.size)
        if record[:4] != b"PK\x06\x06":
            raise MalformedBundle(path=path, detail=_("its zip64 record is missing"))
        fields64 = _ZIP64_EOCD.unpack(record)
        count, directory_size = int(fields64[7]), int(fields64[8])
    fh.seek(0)
    if directory_size > record_at:
        raise MalformedBundle(path=path, detail=_("its central directory lies outside the file"))
    return EndRecord(count, record_at - directory_size)


def _check_name(info: zipfile.ZipInfo, path: str) -> None:
    name = info.orig_filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise AbsoluteMemberPath(path=path, member=name)
    if ".." in parts:
        raise PathTraversalMember(path=path, member=name)
    if "\0" in name or "\\" in name or any(ord(c) < 32 for c in name):
        raise UnsafeMemberPath(path=path, member=repr(name))


def _check_type(info: zipfile.ZipInfo, path: str) -> None:
    mode = info.external_attr >> 16
    if info.create_system == _UNIX and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        kinds = {
            stat.S_IFLNK: "symbolic link",
            stat.S_IFDIR: "directory",
            stat.S_IFCHR: "character device",
            stat.S_IFBLK: "block device",
            stat.S_IFIFO: "fifo",
            stat.S_IFSOCK: "socket",
        }
        raise SpecialMember(path=path, member=info.filename, kind=kinds.get(stat.S_IFMT(mode), oct(mode)))
    if info.is_dir() or info.external_attr & 0x10:
        raise SpecialMember(path=path, member=info.filename, kind="directory")


def _member_limit(name: str, limits: BundleLimits) -> int:
    if name == MANIFEST_MEMBER:
        return limits.max_manifest_size
    if name == SIGNATURE_MEMBER:
        return limits.max_signature_size
    return limits.max_image_size


def _is_known_name(name: str) -> bool:
    if name in (MANIFEST_MEMBER, SIGNATURE_MEMBER):
        return True
    if name.startswith(IMAGE_DIR) and name.endswith(IMAGE_SUFFIX):
        return valid_partition_name(name[len(IMAGE_DIR) : -len(IMAGE_SUFFIX)])
    return False


def vet_members(
    zf: zipfile.ZipFile, fh: BinaryIO, end: EndRecord, limits: BundleLimits, path: str
) -> dict[str, zipfile.ZipInfo]:
    """Check every member of ``zf`` against the container rules; returns them by name."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise TooManyMembers(path=path, count=len(infos), limit=limits.max_members)
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_name(info, path)
        _check_type(info, path)
        name = info.filename
        if name in members:
            raise DuplicateMember(path=path, member=name)
        if not _is_known_name(name):
            raise UnexpectedMember(path=path, member=name)
        if info.flag_bits & _FLAG_ENCRYPTED:
            raise UnsupportedMemberEncoding(path=path, member=name, detail=_("it is encrypted"))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UnsupportedMemberEncoding(
                path=path, member=name, detail=_("compression method {method}", method=info.compress_type)
            )
        limit = _member_limit(name, limits)
        if info.file_size > limit:
            raise OversizedMember(path=path, member=name, size=info.file_size, limit=limit)
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise MalformedBundle(
                path=path, detail=_("the stored member {member} has two different sizes", member=name)
            )
        if (
            info.compress_type == zipfile.ZIP_DEFLATED
            and info.file_size > limits.ratio_floor
            and info.file_size > max(info.compress_size, 1) * limits.max_expansion_ratio
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise DecompressionBomb(path=path, member=name, ratio=ratio, limit=limits.max_expansion_ratio)
        members[name] = info
    _check_layout(infos, fh, end.directory_start, path)
    return members


def _check_layout(infos: list[zipfile.ZipInfo], fh: BinaryIO, directory_start: int, path: str) -> None:
    """Refuse members whose data overlaps another member's or the directory: overlap zip bombs."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None], strict=True):
        if not 0 <= info.header_offset < directory_start:
            raise MalformedBundle(
                path=path, detail=_("the header of {member} lies outside the file", member=info.filename)
            )
        fh.seek(info.header_offset)
        raw = fh.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
            raise MalformedBundle(path=path, detail=_("the local header of {member} is damaged", member=info.filename))
        fields = _LOCAL_HEADER.unpack(raw)
        data_end = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10] + info.compress_size
        limit = following.header_offset if following is not None else directory_start
        if data_end > limit:
            raise OverlappingMembers(path=path, member=info.filename)
    fh.seek(0)


class ImageReader(io.RawIOBase):
    """Exactly the declared bytes of one image member; with ``check_hash``, verified at the end.

    Reading past the declared size returns nothing; a member that ends early raises
    :class:`ImageSizeMismatch`, and one whose SHA-256 differs from the manifest raises
    :class:`ImageHashMismatch` on the read that reaches the end.  A reader that checks the hash
    cannot seek (the hash would no longer cover what was read).
    """

    def __init__(self, member: IO[bytes], image: PartitionImage, path: str, *, check_hash: bool) -> None:
        super().__init__()
        self._member = member
        self._image = image
        self._path = path
        self._hash = hashlib.sha256() if check_hash else None
        self._pos = 0
        self._member_pos = 0

    @property
    def image(self) -> PartitionImage:
        return self._image

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._hash is None

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._hash is not None:
            raise io.UnsupportedOperation("a hash-checking image reader cannot seek")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._image.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._image.size - self._pos)
        if want <= 0:
            return 0
        with zip_errors(self._path, self._image.path):
            if self._member_pos != self._pos:
                self._member.seek(self._pos)
                self._member_pos = self._pos
            data = self._member.read(want)
        if not data:
            raise ImageSizeMismatch(partition=self._image.name, expected=self._image.size, actual=self._pos)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        self._member_pos += n
        if self._hash is not None:
            self._hash.update(data)
            if self._pos == self._image.size and self._hash.hexdigest() != self._image.sha256:
                raise ImageHashMismatch(partition=self._image.name)
        return n

    def close(self) -> None:
        if not self.closed:
            self._member.close()
        super().close()
