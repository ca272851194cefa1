"""Frame-set folders: captured frame sets kept as PNG files for offline face analysis.

``naiad facecheck --save-frames DIR`` writes them and ``naiad facecheck --from-images DIR`` reads them.  A frame
set named NAME is three files: ``NAME_ir.png`` (8-bit grey), ``NAME_rgb.png`` (8-bit colour) and
``NAME_depth.png`` (16-bit grey, millimetres, the IR image's size); the folder may hold the unit's calibration
blob as ``calibration.bin``.  Other files are ignored.  Only regular files are read (a FIFO or a device would
block or never end); every file's header is checked before a byte of any set is decoded (:mod:`camera.frames`),
and the sets are decoded one at a time as they are used, up to ``MAX_SETS`` sets and ``MAX_PIXELS`` pixels a
folder, so a folder of small, highly compressed PNGs cannot take the machine's memory.  Whatever is wrong is a
typed error that names the file, and saving changes nothing unless all of a set can be written.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from i18n import N_, _
from terminal.camera import MAX_BLOB, CalibrationBlobError, CameraCalibration
from terminal.camera_unit import FORMATS, FramePng, png_bound, size_text

from .errors import CameraError
from .frames import CorruptFrame, Frames, decode_frame

STREAMS = ("ir", "rgb", "depth")
CALIBRATION_FILE = "calibration.bin"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A frame set's name: safe as a file name on every system, never a path."""
MAX_SIDE = 4096  # no unit's camera is larger; a bigger PNG would decode to hundreds of megabytes
MAX_SETS = 200  # a face-pay check saves a handful of sets
MAX_PIXELS = 250_000_000  # all streams of all sets of a folder: 270 sets of 640x480, or 5 of 4096x4096
_PNG = b"\x89PNG\r\n\x1a\n"
_FILE = re.compile(r"^(?P<name>.+)_(?P<stream>ir|rgb|depth)\.png$", re.IGNORECASE)
_FOLDER_REMEDY = N_(
    "Point at a folder of saved frame sets (NAME_ir.png, NAME_rgb.png and NAME_depth.png, as "
    "'naiad facecheck --save-frames DIR' writes them)."
)


class FrameFolderError(CameraError):
    """Root of the frame-set folder's errors."""

    message = N_("The frame-set folder {directory} cannot be used")
    remedy = _FOLDER_REMEDY


class NotAFrameFolder(FrameFolderError):
    message = N_("{directory} does not exist or is not a folder")


class NoFrameSets(FrameFolderError):
    message = N_("No frame sets (NAME_ir.png, NAME_rgb.png, NAME_depth.png) in {directory}")


class IncompleteFrameSets(FrameFolderError):
    message = N_("These frame sets lack a stream: {sets}")
    remedy = N_(
        "Each frame set needs its IR, RGB and depth images taken together: add the missing ones or remove the set."
    )


class DuplicateFrameFiles(FrameFolderError):
    message = N_("These files hold the same frame set's stream: {names}")
    remedy = N_("Keep one file per frame set and stream (a_ir.png and a_IR.png are the same): remove the others.")


class BadFrameFile(FrameFolderError):
    message = N_("The frame file {path} cannot be used: {detail}")
    remedy = N_("Save the frame set again or remove it from the folder.")


class BadFrameSetName(FrameFolderError):
    message = N_('"{name}" cannot name a frame set')
    remedy = N_("Name frame sets with letters, digits, '.', '_' and '-' (up to 64, starting with a letter or digit).")


class FrameSetExists(FrameFolderError):
    message = N_("{path} is already there: nothing was saved")
    remedy = N_("Save into an empty folder or under another name; saved frames are never overwritten.")


class UnsavableFrames(FrameFolderError):
    message = N_("The frames cannot be saved as a frame set: {detail}")
    remedy = N_("Capture IR, RGB and depth together (the face-pay check's capture does) and save again.")


class TooLargeFrameFolder(FrameFolderError):
    message = N_(
        "{directory} holds too much to read at once: {sets} frame sets of {megapixels} megapixels "
        "(at most {max_sets} sets of {max_megapixels} megapixels)"
    )
    remedy = N_("Move some frame sets to another folder and read each folder on its own.")


class BadFolderCalibration(FrameFolderError):
    message = N_("The calibration {path} cannot be used: {detail}")
    remedy = N_("Remove it to use the unit's nominal calibration, or copy the unit's calibration blob there again.")


def save_frame_set(directory: Path, name: str, frames: Frames) -> list[Path]:
    """Write ``frames`` (IR, RGB and depth) as the frame set ``name`` in ``directory`` (created when missing).

    Nothing is written unless every check passes: a careless name, frames of the wrong layout or an existing
    file of the set is an error, and a failure while writing removes what was written.
    """
    if not NAME.fullmatch(name):
        raise BadFrameSetName(name=name)
    images = {"ir": frames.ir, "rgb": frames.rgb, "depth": frames.depth}
    pngs: dict[str, bytes] = {}
    for stream, image in images.items():
        if image is None:
            raise UnsavableFrames(detail=_("there is no {stream} image", stream=stream))
        channels, bits = FORMATS[stream]
        shape_ok = image.ndim == 2 if channels == 1 else image.ndim == 3 and image.shape[2] == channels
        if not shape_ok or image.dtype != (np.uint8 if bits == 8 else np.uint16) or not image.size:
            detail = _(
                "the {stream} image is not {channels} channels of {bits} bits",
                stream=stream,
                channels=channels,
                bits=bits,
            )
            raise UnsavableFrames(detail=detail)
        if max(image.shape[:2]) > MAX_SIDE:
            raise UnsavableFrames(
                detail=_("the {stream} image is larger than {side} pixels", stream=stream, side=MAX_SIDE)
            )
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise UnsavableFrames(detail=_("the {stream} image does not encode", stream=stream))
        pngs[stream] = encoded.tobytes()
    assert frames.ir is not None and frames.depth is not None  # checked above
    if frames.depth.shape != frames.ir.shape:
        depth, ir = size_text(*frames.depth.shape[::-1]), size_text(*frames.ir.shape[::-1])
        raise UnsavableFrames(detail=_("the depth image is {depth}, the IR image {ir}", depth=depth, ir=ir))
    _folder_to_write(directory)
    existing = _set_files(directory) if directory.is_dir() else {}
    for stream in STREAMS:
        if (name, stream) in existing:
            raise FrameSetExists(path=str(existing[name, stream]))
    return _write_all(directory, {f"{name}_{stream}.png": png for stream, png in pngs.items()})


class FrameSets:
    """The frame sets of a folder, by name: every file's header is checked when the folder is read, and a set's
    pixels are decoded only when it is used (indexing or iterating gives (name, Frames))."""

    def __init__(self, directory: Path, names: list[str], files: dict[tuple[str, str], tuple[Path, int, int]]):
        self.directory = directory
        self.names = names
        self._files = files

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[str, Frames]:
        name = self.names[index]
        images = {stream: _read_frame(*self._files[name, stream], stream) for stream in STREAMS}
        return name, Frames(ir=images["ir"], rgb=images["rgb"], depth=images["depth"])

    def __iter__(self) -> Iterator[tuple[str, Frames]]:
        return (self[i] for i in range(len(self.names)))


def read_frame_sets(directory: Path) -> FrameSets:
    """The frame sets in ``directory``, by name; a typed error for the first thing that is not as it must be
    (a file's pixels that do not decode: when that set is used)."""
    if not directory.is_dir():
        raise NotAFrameFolder(directory=str(directory))
    files = _set_files(directory)
    names = sorted({name for name, _stream in files})
    missing = [(name, [s for s in STREAMS if (name, s) not in files]) for name in names]
    incomplete = [_("{name} (no {streams})", name=n, streams=", ".join(s)) for n, s in missing if s]
    if incomplete:
        raise IncompleteFrameSets(directory=str(directory), sets="; ".join(incomplete))
    if not names:
        raise NoFrameSets(directory=str(directory))
    if len(names) > MAX_SETS:
        raise _too_large(directory, len(names), 0)
    sized = {key: (path, *_frame_size(path)) for key, path in files.items()}
    pixels = sum(width * height for _path, width, height in sized.values())
    if pixels > MAX_PIXELS:
        raise _too_large(directory, len(names), pixels)
    for name in names:
        (_ir, *ir), (depth_path, *depth) = sized[name, "ir"], sized[name, "depth"]
        if depth != ir:
            detail = _(
                "it is {depth}, its IR image {ir} (depth is on the IR image's grid)",
                depth=size_text(*depth),
                ir=size_text(*ir),
            )
            raise BadFrameFile(directory=str(directory), path=str(depth_path), detail=detail)
    return FrameSets(directory, names, sized)


def _too_large(directory: Path, sets: int, pixels: int) -> TooLargeFrameFolder:
    return TooLargeFrameFolder(
        directory=str(directory),
        sets=sets,
        megapixels=round(pixels / 1e6),
        max_sets=MAX_SETS,
        max_megapixels=round(MAX_PIXELS / 1e6),
    )


def read_folder_calibration(directory: Path) -> CameraCalibration | None:
    """The calibration blob ``calibration.bin`` in ``directory``, or None when there is none."""
    path = directory / CALIBRATION_FILE
    if not path.exists() and not path.is_symlink():
        return None

    def bad(detail: str) -> BadFolderCalibration:
        return BadFolderCalibration(directory=str(directory), path=str(path), detail=detail)

    blob = _read_regular(path, MAX_BLOB, bad)
    if len(blob) > MAX_BLOB:
        raise bad(_("it is too large to be one"))
    try:
        return CameraCalibration.decode(blob)
    except CalibrationBlobError as exc:
        raise bad(str(exc)) from None


def save_folder_calibration(directory: Path, calibration: CameraCalibration) -> Path:
    """Write ``calibration``'s blob as ``calibration.bin``; the same blob already there is fine, another is not."""
    blob = calibration.encode()
    path = directory / CALIBRATION_FILE
    _folder_to_write(directory)
    if path.exists() or path.is_symlink():
        try:
            same = path.is_file() and path.read_bytes() == blob
        except OSError:
            same = False
        if not same:
            raise FrameSetExists(directory=str(directory), path=str(path))
        return path
    return _write_all(directory, {CALIBRATION_FILE: blob})[0]


def _folder_to_write(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise NotAFrameFolder(directory=str(directory))


def _set_files(directory: Path) -> dict[tuple[str, str], Path]:
    """(set name, stream) -> file of every frame-set file in ``directory``; DuplicateFrameFiles for two of one."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise NotAFrameFolder(directory=str(directory)) from exc
    files: dict[tuple[str, str], Path] = {}
    duplicates: set[str] = set()
    for path in entries:
        match = _FILE.match(path.name)
        if not match:
            continue
        key = (match.group("name"), match.group("stream").lower())
        if key in files:
            duplicates |= {files[key].name, path.name}
        files[key] = path
    if duplicates:
        raise DuplicateFrameFiles(directory=str(directory), names=", ".join(sorted(duplicates)))
    return files


def _read_regular(path: Path, limit: int, bad: Callable[[str], FrameFolderError]) -> bytes:
    """Up to ``limit`` + 1 bytes of ``path``, which must be a regular file: opened without blocking and checked
    on the open file (a FIFO would block for ever, a device never end; a check before opening races)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise bad(_("it is not a readable file"))
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read(limit + 1)
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def _frame_bad(path: Path) -> Callable[[str], BadFrameFile]:
    return lambda detail: BadFrameFile(directory=str(path.parent), path=str(path), detail=detail)


def _png_size(head: bytes, bad: Callable[[str], FrameFolderError]) -> tuple[int, int]:
    """(width, height) from a PNG file's first 24 bytes, within MAX_SIDE."""
    if len(head) < 24 or head[:8] != _PNG or head[12:16] != b"IHDR":
        raise bad(_("it is not a PNG image"))
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if max(width, height) > MAX_SIDE or not width or not height:
        raise bad(_("it is {size} pixels", size=size_text(width, height)))
    return width, height


def _frame_size(path: Path) -> tuple[int, int]:
    """The (width, height) a frame file's header gives, read without decoding anything."""
    bad = _frame_bad(path)
    return _png_size(_read_regular(path, 23, bad)[:24], bad)


def _read_frame(path: Path, width: int, height: int, stream: str) -> np.ndarray:
    """The pixels of one frame file, checked against its stream's layout and the size its header gave when the
    folder was read, before they are decoded."""
    bad = _frame_bad(path)
    channels, bits = FORMATS[stream]
    limit = png_bound(width, height, channels, bits)
    png = _read_regular(path, limit, bad)
    if len(png) > limit:
        raise bad(_("it is larger than a PNG of its pixels can be"))
    if _png_size(png[:24], bad) != (width, height):
        raise bad(_("it changed while the folder was read"))
    try:
        return decode_frame(FramePng(stream, width, height, channels, bits, png))
    except CorruptFrame as exc:
        raise bad(str(exc.params.get("detail", ""))) from None


def _write_all(directory: Path, contents: dict[str, bytes]) -> list[Path]:
    """Create every file in ``directory`` (never over an existing one); on any failure remove all of them again."""
    created = not directory.exists()
    done: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, data in contents.items():
            target = directory / file_name
            with target.open("xb") as file:  # "x": fails when the file appeared meanwhile
                done.append(target)
                file.write(data)
    except OSError as exc:
        for target in done:
            target.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise BadFrameFile(directory=str(directory), path=str(directory), detail=exc.strerror or str(exc)) from None
    return done
