"""Message types and payloads of the management protocol (docs/protocol.md).

A message type is ``group << 8 | number``.  Payloads are CBOR maps of plain values only
(text, bytes, integers, floats, booleans, null, lists and maps): anything else is refused, so a
hostile device cannot make the station build arbitrary objects.
"""

from __future__ import annotations

import enum
import io
from typing import Any

import cbor2

from i18n import _

from .errors import FrameError

Payload = dict[str, Any]


class Group(enum.IntEnum):
    SYSTEM = 0x01
    SECURE_ELEMENT = 0x02
    CAMERA = 0x03
    FACE_PAY = 0x04
    DIAGNOSTICS = 0x05
    CONFIGURATION = 0x06


class MessageType(enum.IntEnum):
    HELLO = 0x0100
    INFO = 0x0101
    REBOOT = 0x0102
    TIME = 0x0103
    OBJECT_READ = 0x0104
    OBJECT_WRITE = 0x0105
    BOOT_HISTORY = 0x0106
    SE_ATTESTATION = 0x0200
    SE_IDENTITY = 0x0201
    SE_CERT_INSTALL = 0x0202
    SE_KEY_SESSION = 0x0203
    SE_KEY_LOAD = 0x0204
    SE_KEY_COMMIT = 0x0205
    SE_KEY_STATUS = 0x0206
    SE_ZEROISE = 0x0207
    CAMERA_CAPABILITIES = 0x0300
    CAMERA_PROJECTOR = 0x0301
    CAMERA_EXPOSURE = 0x0302
    CAMERA_CAPTURE = 0x0303
    FACE_PAY_TEST = 0x0400


class ErrorCode(enum.StrEnum):
    """Codes a unit answers with in an error reply."""

    UNKNOWN_TYPE = "unknown-type"
    BAD_REQUEST = "bad-request"
    NOT_FOUND = "not-found"
    READ_ONLY = "read-only"
    INTEGRITY = "integrity"
    BUSY = "busy"
    INTERNAL = "internal"
    REFUSED = "refused"  # authentication, replay and policy failures of the secure element


class SecureElementState(enum.StrEnum):
    """What a unit's secure element holds (SE_KEY_STATUS, INFO), from least to most."""

    FACTORY = "factory"  # the factory attestation key and certificate only
    IDENTITY = "identity"  # an identity key made, not yet certified
    CERTIFIED = "certified"  # the identity key has a device certificate from the provisioning CA
    KEYED = "keyed"  # a payment key set is stored


# Objects a unit serves through OBJECT_READ / OBJECT_WRITE.
OBJECT_LOGS = "logs"
OBJECT_LOOPBACK = "diag/loopback"  # written and read back to test a link end to end
OBJECT_SLOT_HASHES = "diag/slot-hashes"  # read only: JSON {slot: {partition: {sha256, bytes} | null}} (run mode)
OBJECT_CALIBRATION = "camera/calibration"  # the camera calibration blob (terminal/camera.py), read and written
CAMERA_STREAMS = ("ir", "rgb", "depth")  # a capture's frames are the objects "camera/<stream>", PNG-compressed


def frame_object(stream: str) -> str:
    """The object name under which a unit serves the last capture's frame of ``stream``."""
    return f"camera/{stream}"


_PLAIN = (str, bytes, int, float, bool, type(None))


def _check_plain(value: Any, depth: int = 0) -> None:
    if depth > 16:
        raise FrameError(detail=_("its payload is nested too deeply"))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FrameError(detail=_("a map key in its payload is not text"))
            _check_plain(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, depth + 1)
    elif not isinstance(value, _PLAIN):
        raise FrameError(detail=_("its payload holds a {kind}", kind=type(value).__name__))


def encode_payload(payload: Payload) -> bytes:
    return cbor2.dumps(payload)


def decode_payload(data: bytes) -> Payload:
    stream = io.BytesIO(data)
    try:
        value = cbor2.load(stream)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise FrameError(detail=_("its payload is not valid CBOR: {reason}", reason=exc)) from exc
    if stream.tell() != len(data):
        raise FrameError(detail=_("bytes follow its payload"))
    if not isinstance(value, dict):
        raise FrameError(detail=_("its payload is not a map"))
    _check_plain(value)
    return value


def type_name(type_: int) -> str:
    try:
        return MessageType(type_).name.lower()
    except ValueError:
        return f"0x{type_:04x}"
