"""The shape of every reply the station accepts (docs/protocol.md section 9), declared as data.

A hostile or broken unit may put any CBOR value in any field.  ``ManagementClient`` checks each reply
against its message type's shape before anything reads it, so the station only ever sees the documented
types: text where text is promised, finite numbers, no byte strings where a person or JSON will see them.
A field that breaks its shape raises ``Invalid`` naming the field; the client turns it into
``MalformedReply`` naming the unit and the request.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from .protocol import MessageType, Payload

EXACT_FLOAT_INT = 2**53  # the largest integer a float holds exactly


class Invalid(Exception):
    """``field`` (a dotted path such as ``slots.a.version``) is missing or not ``expected``.

    ``expected`` is in the notation of docs/protocol.md section 9 (``uint``, ``text|null``, ``[...]``),
    the same in every language."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(field, expected)
        self.field, self.expected = field, expected


def json_safe(value: Any) -> Any:
    """``value`` with byte strings as hex and non-finite numbers as null, so JSON and tables take it."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Shape(ABC):
    """What one value must be; ``clean`` returns it (possibly normalised) or raises ``Invalid``."""

    expected: str

    @abstractmethod
    def accepts(self, value: Any) -> bool: ...

    def clean(self, value: Any, where: str) -> Any:
        if not self.accepts(value):
            raise Invalid(where, self.expected)
        return value


class Text(Shape):
    expected = "text"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str)


class Bool(Shape):
    expected = "bool"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class UInt(Shape):
    expected = "uint"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Float(Shape):
    """A finite number; an integer is taken where a float is expected (section 9), if a float holds it exactly
    (|n| <= 2^53: a bignum beyond would overflow or change on the way)."""

    expected = "float"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return abs(value) <= EXACT_FLOAT_INT
        return isinstance(value, float) and math.isfinite(value)

    def clean(self, value: Any, where: str) -> float:
        return float(super().clean(value, where))


class Bytes(Shape):
    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self.expected = "bytes" if size is None else f"bytes[{size}]"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bytes) and (self.size is None or len(value) == self.size)


class Nullable(Shape):
    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.expected = f"{shape.expected}|null"

    def accepts(self, value: Any) -> bool:
        return value is None or self.shape.accepts(value)

    def clean(self, value: Any, where: str) -> Any:
        return None if value is None else self.shape.clean(value, where)


class OneOf(Shape):
    """One of a few plain values (``1|3``); ``True`` is not ``1`` here."""

    def __init__(self, *values: int | str) -> None:
        self.values = values
        self.expected = "|".join(str(v) for v in values)

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)


class ListOf(Shape):
    """An array of one shape; of exactly ``length`` items when given (``[uint, uint]``)."""

    def __init__(self, item: Shape, length: int | None = None) -> None:
        self.item, self.length = item, length
        self.expected = f"[{item.expected}]" if length is None else f"[{', '.join([item.expected] * length)}]"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and (self.length is None or len(value) == self.length)

    def clean(self, value: Any, where: str) -> list[Any]:
        return [self.item.clean(item, f"{where}[{i}]") for i, item in enumerate(super().clean(value, where))]


class MapOf(Shape):
    """A map from text keys (any) to values of one shape, such as INFO's slots."""

    def __init__(self, item: Shape) -> None:
        self.item = item
        self.expected = "{text: ...}"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def clean(self, value: Any, where: str) -> dict[str, Any]:
        return {key: self.item.clean(item, f"{where}.{key}") for key, item in super().clean(value, where).items()}


class Record(Shape):
    """A map with named fields; fields it does not name are kept JSON-safe (``extra``) or dropped."""

    expected = "{...}"

    def __init__(
        self, required: Mapping[str, Shape], optional: Mapping[str, Shape] | None = None, *, extra: bool = False
    ) -> None:
        self.required, self.optional, self.extra = dict(required), dict(optional or {}), extra

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def clean(self, value: Any, where: str = "") -> dict[str, Any]:
        value = super().clean(value, where or "reply")
        prefix = f"{where}." if where else ""
        out: dict[str, Any] = {}
        for name, shape in self.required.items():
            if name not in value:
                raise Invalid(prefix + name, shape.expected)
            out[name] = shape.clean(value[name], prefix + name)
        for name, shape in self.optional.items():
            if name in value:
                out[name] = shape.clean(value[name], prefix + name)
        if self.extra:
            known = self.required.keys() | self.optional.keys()
            out.update({key: json_safe(item) for key, item in value.items() if key not in known})
        return out


SLOT = Record({"version": Nullable(Text()), "successful": Bool(), "bootable": Bool()}, extra=True)
BOOT = Record(
    {"at": Float(), "mode": Text(), "boot": UInt()},
    {
        "slot": Text(),
        "version": Nullable(Text()),
        "fell_back": Bool(),
        "failed_attempts": UInt(),
        "error": Text(),
    },
    extra=True,
)

ERROR_REPLY = Record({"code": Text()}, {"detail": Text()})

# the secure element group (docs/protocol.md section 9): sizes as the unit must send them
LOADED_KEY = Record({"initial_key_id": Bytes(8), "ksn": Bytes(12), "kcv": Bytes(5)})
KEY_SLOT = Record({"name": Text(), "initial_key_id": Bytes(8), "ksn": Bytes(12), "kcv": Bytes(5), "loaded_at": Float()})

# the camera group (docs/protocol.md section 9): frame descriptors as terminal/camera_unit.py reads them
SIZE = Record({"width": UInt(), "height": UInt()}, extra=True)
FRAME = Record(
    {
        "object": Text(),
        "width": UInt(),
        "height": UInt(),
        "channels": OneOf(1, 3),
        "bits": OneOf(8, 16),
        "bytes": UInt(),
        "sha256": Bytes(32),
    }
)

# the face-pay group (docs/protocol.md section 9): one reply for a token and for a refusal; terminal/face_pay.py
# checks which fields each result must carry and their bounds
FACE_PAY_RESULTS = ("token", "refused")
FACE_PAY_REASONS = ("no-face", "several-faces", "not-live", "not-recognised", "no-platform", "platform")
FACE_PAY_REPLY = Record(
    {"result": OneOf(*FACE_PAY_RESULTS)},
    {
        "ftoken": Text(),
        "session_id": Text(),
        "liveness_score": Float(),
        "frame_set": UInt(),
        "reason": OneOf(*FACE_PAY_REASONS),
        "detail": Text(),
    },
)

REPLIES: dict[int, Record] = {
    MessageType.HELLO: Record(
        {"protocol": UInt(), "max_frame": UInt(), "serial": Text(), "model": Text()}, {"mode": Text()}, extra=True
    ),
    MessageType.INFO: Record(
        {
            "model": Text(),
            "serial": Text(),
            "hardware_revision": Text(),
            "slots": MapOf(SLOT),
            "active_slot": Text(),
            "security_version": UInt(),
        },
        {
            "boot_count": UInt(),
            "secure_element": Record({"state": Text()}, extra=True),
            "camera_module": Text(),
        },
        extra=True,
    ),
    MessageType.REBOOT: Record({}),
    MessageType.TIME: Record({"utc": Float()}),
    MessageType.BOOT_HISTORY: Record({"boots": ListOf(BOOT)}),
    MessageType.OBJECT_READ: Record(
        {"name": Text(), "offset": UInt(), "total": UInt(), "sha256": Bytes(32), "data": Bytes()}
    ),
    MessageType.OBJECT_WRITE: Record({"received": UInt(), "complete": Bool()}),
    MessageType.SE_ATTESTATION: Record({"chain": ListOf(Bytes())}),
    MessageType.SE_IDENTITY: Record({"csr": Bytes(), "signature": Bytes()}),
    MessageType.SE_CERT_INSTALL: Record({"serial_number": Text()}),
    MessageType.SE_KEY_SESSION: Record({"session": Bytes(16), "unit_nonce": Bytes(32), "signature": Bytes()}),
    MessageType.SE_KEY_LOAD: LOADED_KEY,
    MessageType.SE_KEY_COMMIT: LOADED_KEY,
    MessageType.SE_KEY_STATUS: Record(
        {"state": Text(), "identity_serial_number": Nullable(Text()), "keys": ListOf(KEY_SLOT)}
    ),
    MessageType.SE_ZEROISE: Record({}),
    MessageType.CAMERA_CAPABILITIES: Record(
        {
            "module": Text(),
            "ir": SIZE,
            "rgb": SIZE,
            "depth": Record({"width": UInt(), "height": UInt(), "range_mm": ListOf(UInt(), 2)}, extra=True),
            "projector_baseline_mm": Float(),
            "max_frame_bytes": UInt(),
        },
        extra=True,
    ),
    MessageType.CAMERA_PROJECTOR: Record({"on": Bool()}),
    MessageType.CAMERA_EXPOSURE: Record({"ir_us": UInt(), "rgb_us": UInt()}),
    MessageType.CAMERA_CAPTURE: Record({"frame_set": UInt(), "timestamp": Float(), "frames": MapOf(FRAME)}),
    MessageType.FACE_PAY_TEST: FACE_PAY_REPLY,
}


def check_reply(type_: int, payload: Payload, *, error: bool = False) -> Payload:
    """``payload`` cleaned to its documented shape (an error reply's when ``error``); Invalid when it breaks it.

    A type this version does not define (a test's, or a later group's) passes unchanged to its caller."""
    shape = ERROR_REPLY if error else REPLIES.get(type_)
    return shape.clean(payload) if shape is not None else payload
