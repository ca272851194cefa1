"""FastbootClient: the standard fastboot commands over any packet transport (USB bulk or TCP).

The client never prints: the bootloader's INFO/TEXT lines go to ``on_info`` and transfer progress to
a ``progress(done, total)`` callback, so the CLI draws a bar and the console emits Qt signals.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeAlias, cast

from i18n import N_, _

from .errors import (
    DownloadTooLarge,
    FastbootFailure,
    FastbootProtocolError,
    ImageUnreadable,
    InvalidFastbootCommand,
)
from .protocol import (
    Response,
    Status,
    build_command,
    check_token,
    download_command,
    oem_command,
    parse_number,
    parse_response,
    parse_variable_line,
)

if TYPE_CHECKING:
    from ..events import ProgressCallback  # a type only: sending bytes needs none of the event classes

LOG = logging.getLogger(__name__)
_PARTITION = N_("partition name")  # names the argument when check_token refuses it

Source: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO
"""An image to download: a path, bytes, or a binary file positioned at its start."""


class PacketTransport(Protocol):
    """What the client needs from a link: whole packets out and in.

    ``send`` carries one command; ``send_stream`` download payload, whose packet boundaries do not
    matter.  A transport may also offer ``send_file(fh, offset, count, progress)`` to send payload from
    a file without copying it through Python, calling ``progress(bytes sent)`` as it goes.
    """

    target: str
    stream_chunk_size: int

    def send(self, packet: bytes) -> None: ...

    def send_stream(self, data: bytes | bytearray | memoryview) -> None: ...

    def recv(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class FastbootClient:
    """The host side of the fastboot protocol for one unit."""

    def __init__(
        self,
        transport: PacketTransport,
        *,
        on_info: Callable[[str], None] | None = None,
        timeout: float = 10.0,
        long_timeout: float = 300.0,
    ) -> None:
        self.transport = transport
        self.on_info = on_info
        self.timeout = timeout
        self.long_timeout = long_timeout
        self._max_download: int | None = None

    @property
    def target(self) -> str:
        return self.transport.target

    # -- the exchange ---------------------------------------------------------------------

    def command(self, command: bytes | str, *, timeout: float | None = None) -> tuple[str, list[str]]:
        """Send one command; return the final payload and the INFO/TEXT lines that came before it.

        Raises FastbootFailure with the bootloader's text when it answers FAIL."""
        packet = command.encode("ascii") if isinstance(command, str) else command
        LOG.debug("%s: %s", self.target, packet[:64].decode("ascii", errors="replace"))
        self.transport.send(packet)
        response, lines = self._final(packet, timeout)
        if response.status is Status.DATA:
            raise FastbootProtocolError(
                target=self.target, detail=_("it answered DATA to {command}", command=repr(packet[:32]))
            )
        return response.payload, lines

    def _final(self, packet: bytes, timeout: float | None) -> tuple[Response, list[str]]:
        """Read responses to ``packet`` until OKAY, FAIL or DATA; interim lines also go to ``on_info``."""
        lines: list[str] = []
        wait = self.timeout if timeout is None else timeout
        while True:
            reply = self.transport.recv(wait)
            if not reply:
                continue  # a zero-length packet ends a USB transfer; it is no response
            response = parse_response(reply, target=self.target)
            if response.status in (Status.INFO, Status.TEXT):
                lines.append(response.payload)
                if self.on_info is not None:
                    self.on_info(response.payload)
                continue
            if response.status is Status.FAIL:
                raise FastbootFailure(
                    target=self.target,
                    command=packet[:64].decode("ascii", errors="replace"),
                    reason=response.payload,
                )
            return response, lines

    # -- variables ------------------------------------------------------------------------

    def getvar(self, name: str) -> str:
        return self.command(build_command("getvar", _variable_name(name)))[0]

    def getvar_all(self) -> dict[str, str]:
        """Every variable the bootloader lists for ``getvar:all``, by name (``partition-size:boot_a``)."""
        _, lines = self.command(build_command("getvar", "all"), timeout=self.long_timeout)
        variables: dict[str, str] = {}
        for line in lines:
            parsed = parse_variable_line(line)
            if parsed is not None:
                variables[parsed[0]] = parsed[1]
        return variables

    @property
    def max_download_size(self) -> int | None:
        """The bootloader's ``max-download-size``, asked once; None when it does not say."""
        if self._max_download is None:
            try:
                self._max_download = parse_number(self.getvar("max-download-size"))
            except (FastbootFailure, ValueError):
                self._max_download = 0
        return self._max_download or None

    # -- transfers --------------------------------------------------------------------------

    def download(self, source: Source, size: int | None = None, progress: ProgressCallback | None = None) -> None:
        """Send ``source`` to the bootloader's download buffer (``download:%08x``, DATA, payload, OKAY)."""
        with _Opened(source, size) as image:
            self._download(image, progress, 0, image.size)

    def _download(self, image: _Opened, progress: ProgressCallback | None, done: int, total: int) -> None:
        limit = self.max_download_size
        if limit is not None and image.size > limit:
            raise DownloadTooLarge(target=self.target, size=image.size, limit=limit)
        packet = download_command(image.size)
        self.transport.send(packet)
        response, _lines = self._final(packet, self.timeout)
        if response.status is not Status.DATA or response.data_size() != image.size:
            raise FastbootProtocolError(
                target=self.target,
                detail=_(
                    "it answered {answer} to {command}",
                    answer=repr(response.status.value + response.payload),
                    command=repr(packet),
                ),
            )
        image.stream(self.transport, lambda n: progress(done + n, total) if progress else None)
        response, _lines = self._final(packet, self.long_timeout)
        if response.status is not Status.OKAY:
            raise FastbootProtocolError(
                target=self.target, detail=_("it did not answer OKAY after the data of {command}", command=repr(packet))
            )

    def flash(
        self,
        partition: str,
        source: Source | Iterable[Source],
        progress: ProgressCallback | None = None,
    ) -> None:
        """Write ``source`` to ``partition``: one image, or pre-split sparse pieces flashed in turn."""
        name = check_token(partition, _PARTITION)
        pieces = cast("Iterable[Source]", [source] if _is_single(source) else source)
        total = 0
        if isinstance(pieces, Sequence):
            for piece in pieces:
                with _Opened(piece, None) as image:
                    total += image.size
        done = 0
        for piece in pieces:
            with _Opened(piece, None) as image:
                self._download(image, progress, done, total)
                done += image.size
            self.command(build_command("flash", name), timeout=self.long_timeout)

    def erase(self, partition: str) -> None:
        self.command(build_command("erase", check_token(partition, _PARTITION)), timeout=self.long_timeout)

    def set_active(self, slot: str) -> None:
        slot = slot.removeprefix("_")
        self.command(build_command("set_active", check_token(slot, N_("slot name"))))

    def reboot(self) -> None:
        self.command(b"reboot")

    def reboot_bootloader(self) -> None:
        self.command(b"reboot-bootloader")

    def oem(self, *args: str) -> list[str]:
        """An OEM command; returns the INFO lines the bootloader answered with."""
        return self.command(oem_command(args), timeout=self.long_timeout)[1]

    def oem_sha256(self, partition: str, offset: int | None = None, size: int | None = None) -> str:
        """SHA-256 (hex) of a partition range, computed by the unit (Naiad bootloaders; see docs/fastboot.md)."""
        args = ["sha256", check_token(partition, _PARTITION)]
        if offset is not None or size is not None:
            args += [str(offset or 0), str(size if size is not None else 0)]
        for line in self.oem(*args):
            word = line.strip().split()[-1] if line.strip() else ""
            if len(word) == 64 and all(c in "0123456789abcdef" for c in word):
                return word
        raise FastbootProtocolError(target=self.target, detail=_("its answer to oem sha256 holds no digest"))

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> FastbootClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _variable_name(name: str) -> str:
    """A getvar name may carry ``:`` (``partition-size:boot_a``) but no spaces or control bytes."""
    if not name or any(not (0x21 <= ord(c) <= 0x7E) for c in name):
        raise InvalidFastbootCommand(
            detail=_("the variable name {name} is empty or holds a space or a control character", name=repr(name))
        )
    return name


def _is_single(source: object) -> bool:
    return isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(source, "read")


class _Opened:
    """One image opened for streaming: its size known before ``download:`` is sent."""

    def __init__(self, source: Source, size: int | None) -> None:
        self._owned: BinaryIO | None = None
        self._data: memoryview | None = None
        self._fh: BinaryIO | None = None
        self.name = str(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", "<data>"))
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data = memoryview(source).cast("B")
            available = len(self._data)
        else:
            if isinstance(source, (str, os.PathLike)):
                try:
                    self._owned = self._fh = Path(source).open("rb")  # noqa: SIM115 - closed by close()
                except OSError as exc:
                    raise ImageUnreadable(
                        path=str(source), detail=_("it could not be opened: {reason}", reason=exc.strerror or exc)
                    ) from exc
            else:
                self._fh = source
            available = self._remaining(self._fh)
        self.size = available if size is None else size
        if self.size <= 0 or self.size > available:
            self.close()
            raise ImageUnreadable(
                path=self.name,
                detail=_("{size} bytes were asked for but it holds {available}", size=self.size, available=available),
            )
        self._start = self._fh.tell() if self._fh is not None else 0

    @staticmethod
    def _remaining(fh: BinaryIO) -> int:
        here = fh.tell()
        end = fh.seek(0, io.SEEK_END)
        fh.seek(here)
        return end - here

    def stream(self, transport: PacketTransport, progress: Callable[[int], object]) -> None:
        chunk = max(4096, transport.stream_chunk_size)
        if self._data is not None:
            for offset in range(0, self.size, chunk):
                piece = self._data[offset : offset + chunk]
                transport.send_stream(piece)
                progress(offset + len(piece))
            return
        assert self._fh is not None
        send_file = getattr(transport, "send_file", None)
        if send_file is not None and _has_fileno(self._fh):
            send_file(self._fh, self._start, self.size, progress)
            return
        buf = bytearray(chunk)
        view = memoryview(buf)
        done = 0
        while done < self.size:
            n = self._fh.readinto(view[: min(chunk, self.size - done)])  # type: ignore[attr-defined]
            if not n:
                raise ImageUnreadable(path=self.name, detail=_("it ended after {size} bytes", size=done))
            transport.send_stream(view[:n])
            done += n
            progress(done)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_fileno(fh: BinaryIO) -> bool:
    try:
        fh.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True
