"""The fastboot wire vocabulary: commands the host sends, responses the bootloader answers.

Shared by the client (``terminal.fastboot.client``) and the simulator's bootloader, so both ends
agree on one definition.  A response is one packet: a four-letter status then up to 252 bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from i18n import _

from .errors import FastbootProtocolError, InvalidFastbootCommand

MAX_COMMAND_LENGTH = 4096
"""Longest command a host may send (the protocol allowed 64 bytes before 2019; 4096 since)."""
MAX_RESPONSE_LENGTH = 256
"""Longest response packet, status included (64 in the classic USB protocol)."""
MAX_DOWNLOAD_FIELD = 0xFFFFFFFF
"""``download:%08x`` carries a 32-bit size."""


class Status(enum.Enum):
    OKAY = "OKAY"
    FAIL = "FAIL"
    INFO = "INFO"
    TEXT = "TEXT"
    DATA = "DATA"


@dataclass(frozen=True)
class Response:
    status: Status
    payload: str

    def data_size(self) -> int:
        """The byte count of a DATA response (eight hex digits)."""
        return parse_hex_size(self.payload)


def parse_response(packet: bytes, *, target: str = "?") -> Response:
    """Decode one response packet; anything else raises FastbootProtocolError."""
    if len(packet) < 4:
        raise FastbootProtocolError(
            target=target,
            detail=_("a response of {size} bytes is too short: {packet}", size=len(packet), packet=repr(bytes(packet))),
        )
    if len(packet) > MAX_RESPONSE_LENGTH:
        raise FastbootProtocolError(
            target=target,
            detail=_("a response of {size} bytes is longer than {limit}", size=len(packet), limit=MAX_RESPONSE_LENGTH),
        )
    try:
        status = Status(bytes(packet[:4]).decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise FastbootProtocolError(
            target=target, detail=_("unknown response status {status}", status=repr(bytes(packet[:4])))
        ) from None
    payload = bytes(packet[4:]).decode("utf-8", errors="replace").rstrip("\x00")
    response = Response(status, payload)
    if status is Status.DATA:
        try:
            response.data_size()
        except ValueError:
            raise FastbootProtocolError(
                target=target, detail=_("the size in a DATA response is malformed: {size}", size=repr(payload))
            ) from None
    return response


def parse_hex_size(text: str) -> int:
    """An eight-digit hex size as in ``download:%08x`` and ``DATA%08x``."""
    text = text.strip()
    if not 1 <= len(text) <= 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"not a hex size: {text!r}")
    return int(text, 16)


def parse_number(text: str) -> int:
    """A number as bootloaders print variables: ``0x10000000``, ``268435456``."""
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text, 10)


def encode_response(status: Status, payload: str = "") -> bytes:
    """One response packet, cut to MAX_RESPONSE_LENGTH (a longer text would break the stock client)."""
    data = status.value.encode("ascii") + payload.encode("utf-8", errors="replace")
    return data[:MAX_RESPONSE_LENGTH]


def check_token(value: str, what: str) -> str:
    """A command argument: printable ASCII without separators (``:`` or space) that would change its sense.

    ``what`` names the argument as a msgid (``N_("partition name")``), translated only on refusal."""
    if not value or any(not (0x21 <= ord(c) <= 0x7E) or c == ":" for c in value):
        raise InvalidFastbootCommand(
            detail=_(
                "the {what} {value} is empty or holds a space, a ':' or a character that is not printable ASCII",
                what=_(what),
                value=repr(value),
            )
        )
    return value


def build_command(verb: str, argument: str | None = None) -> bytes:
    """``verb`` or ``verb:argument`` as ASCII, checked for length and content before it is sent."""
    text = verb if argument is None else f"{verb}:{argument}"
    if not text or any(not (0x20 <= ord(c) <= 0x7E) for c in text):
        raise InvalidFastbootCommand(
            detail=_("{command} is empty or holds a character that is not printable ASCII", command=repr(text))
        )
    if len(text) > MAX_COMMAND_LENGTH:
        raise InvalidFastbootCommand(
            detail=_("it is {size} bytes long, more than {limit}", size=len(text), limit=MAX_COMMAND_LENGTH)
        )
    return text.encode("ascii")


def download_command(size: int) -> bytes:
    if not 0 < size <= MAX_DOWNLOAD_FIELD:
        raise InvalidFastbootCommand(detail=_("a download of {size} bytes is out of range", size=size))
    return f"download:{size:08x}".encode("ascii")


def oem_command(args: list[str] | tuple[str, ...]) -> bytes:
    if not args or any(not a or any(not (0x21 <= ord(c) <= 0x7E) for c in a) for a in args):
        raise InvalidFastbootCommand(
            detail=_(
                "the oem arguments {arguments} are empty or hold a space or a character that is not printable ASCII",
                arguments=repr(" ".join(args)),
            )
        )
    return build_command("oem " + " ".join(args))


def parse_variable_line(line: str) -> tuple[str, str] | None:
    """Split a ``getvar:all`` INFO line into name and value.

    Bootloaders print ``name:value``, ``name: value`` or ``partition-size:boot_a: 0x4000000``;
    the value is whatever follows the last colon.
    """
    name, sep, value = line.rpartition(":")
    if not sep or not name.strip():
        return None
    return name.strip(), value.strip()
