"""The platform's gateway API on the wire, shared by the station's client and the sandbox (docs/platform-api.md).

One HTTPS endpoint takes a form POST of the common parameters (``app_id``, ``method``, ``format``, ``charset``,
``sign_type``, ``timestamp``, ``version``), the business content as a JSON text (``biz_content``) and ``sign``:
RSA-SHA256 (PKCS#1 v1.5, base64) over the *sign string*, every other non-empty parameter as ``key=value`` sorted
by key and joined with ``&``, in UTF-8, values neither escaped nor trimmed.

A reply is a JSON object with exactly two members, ``{"<method with _ for .>_response": {...}, "sign": "..."}``,
and the platform's signature covers the exact bytes of the response object as sent.  :func:`decode_response`
takes those bytes from the body itself (no re-serialising), so a reply is trusted only as it was signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GATEWAY_PATH = "/gateway"
FORMAT = "JSON"
CHARSET = "utf-8"
SIGN_TYPE = "RSA2"
VERSION = "1.0"
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
"""``timestamp`` is China Standard Time (UTC+8, no daylight saving), as the big platforms use."""
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
COMMON_PARAMETERS = ("app_id", "method", "format", "charset", "sign_type", "timestamp", "version", "biz_content")
MAX_BODY = 1 << 20
"""Largest request or response body either side accepts (1 MiB)."""

Signer = Callable[[bytes], bytes]
"""Signs the sign string's bytes with RSA-SHA256 (PKCS#1 v1.5): a key store's ``sign`` for the station's key."""


class Method(StrEnum):
    """Every method of the gateway.  Write methods carry a request number (:data:`REQUEST_NUMBER`)."""

    INVENTORY_REGISTER = "iot.device.inventory.register"
    DEVICE_BIND = "iot.device.bind"
    DEVICE_ACTIVATE = "iot.device.activate"
    SUBSIDY_ENROLL = "iot.subsidy.enroll"
    SUBSIDY_QUERY = "iot.subsidy.query"
    FACE_SESSION_INITIALIZE = "face.session.initialize"
    FACE_SESSION_VERIFY = "face.session.verify"
    TRADE_PAY = "trade.pay"
    TRADE_QUERY = "trade.query"
    TRADE_REFUND = "trade.refund"
    TRADE_REFUND_QUERY = "trade.refund.query"


REQUEST_NUMBER: dict[Method, str] = {
    Method.INVENTORY_REGISTER: "out_request_no",
    Method.DEVICE_BIND: "out_request_no",
    Method.DEVICE_ACTIVATE: "out_request_no",
    Method.SUBSIDY_ENROLL: "out_request_no",
    Method.FACE_SESSION_INITIALIZE: "out_request_no",
    Method.FACE_SESSION_VERIFY: "out_request_no",
    Method.TRADE_PAY: "out_trade_no",
    Method.TRADE_REFUND: "out_request_no",
}
"""The business field that makes each write method exactly-once: the platform answers a repeated number with
the first answer (and refuses it with other content); read methods have none and are safe to repeat."""


class Code(StrEnum):
    """The gateway's result codes; ``sub_code`` says which case (docs/platform-api.md lists them)."""

    SUCCESS = "10000"
    UNAVAILABLE = "20000"  # the platform could not serve it now: transient, try again
    UNAUTHORISED = "20001"  # app id, signature or timestamp refused
    MISSING_PARAMETER = "40001"
    INVALID_PARAMETER = "40002"
    BUSINESS_FAILED = "40004"  # a valid request the business refuses (sub_code says why)
    FORBIDDEN = "40006"  # the app may not do this


TRANSIENT_CODES = frozenset({Code.UNAVAILABLE})


class SubCode(StrEnum):
    """The gateway's own sub-codes (business handlers add upper-case ones such as ``DEVICE_NOT_BOUND``)."""

    MISSING_APP_ID = "isv.missing-app-id"
    INVALID_APP_ID = "isv.invalid-app-id"
    MISSING_SIGNATURE = "isv.missing-signature"
    INVALID_SIGNATURE = "isv.invalid-signature"
    MISSING_TIMESTAMP = "isv.missing-timestamp"
    INVALID_TIMESTAMP = "isv.invalid-timestamp"
    MISSING_METHOD = "isv.missing-method"
    INVALID_METHOD = "isv.invalid-method"
    INVALID_FORMAT = "isv.invalid-format"
    INVALID_CHARSET = "isv.invalid-charset"
    INVALID_SIGN_TYPE = "isv.invalid-signature-type"
    INVALID_VERSION = "isv.invalid-version"
    MISSING_BIZ_CONTENT = "isv.missing-biz-content"
    INVALID_BIZ_CONTENT = "isv.invalid-biz-content"
    MISSING_PARAMETER = "isv.missing-parameter"
    INVALID_PARAMETER = "isv.invalid-parameter"
    DUPLICATE_REQUEST_NO = "isv.duplicate-request-no"
    RATE_LIMITED = "isp.rate-limited"
    UNKNOWN_ERROR = "isp.unknown-error"


class GatewayFormatError(ValueError):
    """A request or reply that is not in the gateway's format; ``reason`` says what is wrong (English, for logs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def now_timestamp(now: dt.datetime | None = None) -> str:
    """``now`` (default: the current time) as a ``timestamp`` parameter."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(CHINA).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> dt.datetime:
    """A ``timestamp`` parameter as an aware time; GatewayFormatError when it is not one."""
    try:
        return dt.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=CHINA)
    except (TypeError, ValueError):
        raise GatewayFormatError("timestamp is not yyyy-MM-dd HH:mm:ss") from None


def sign_string(params: Mapping[str, str]) -> bytes:
    """What is signed: every parameter but ``sign`` with a non-empty value, ``key=value`` sorted, joined by ``&``."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key != "sign" and params[key] != "").encode()


def response_key(method: str) -> str:
    """The member of a reply that holds the response object of ``method``."""
    return method.replace(".", "_") + "_response"


ERROR_RESPONSE_KEY = "error_response"
"""The reply member used when the request named no method the gateway knows."""


def request_parameters(
    app_id: str, method: str, biz: Mapping[str, Any], signer: Signer, timestamp: str
) -> dict[str, str]:
    """The form parameters of one request, signed with ``signer``."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": FORMAT,
        "charset": CHARSET,
        "sign_type": SIGN_TYPE,
        "timestamp": timestamp,
        "version": VERSION,
        "biz_content": canonical_json(biz),
    }
    params["sign"] = base64.b64encode(signer(sign_string(params))).decode("ascii")
    return params


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and no ASCII escaping: the form business content and replies take."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def rsa_signer(key: rsa.RSAPrivateKey) -> Signer:
    """A :data:`Signer` over a private key held in memory (the sandbox's; a station signs in its key store)."""
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key (PEM SubjectPublicKeyInfo) of at least 2048 bits; GatewayFormatError otherwise."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError):
        raise GatewayFormatError("not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise GatewayFormatError("not an RSA public key of 2048 bits or more")
    return key


def verify(public_key: rsa.RSAPublicKey, data: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` is a valid RSA-SHA256 signature of ``data`` by ``public_key``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def encode_response(key: str, response: Mapping[str, Any], signer: Signer) -> bytes:
    """A signed reply: ``{"<key>":<response>,"sign":"..."}`` with the signature over the response's bytes."""
    body = canonical_json(response).encode()
    signature = base64.b64encode(signer(body)).decode("ascii")
    return b'{"' + key.encode() + b'":' + body + b',"sign":"' + signature.encode() + b'"}'


def decode_response(key: str, body: bytes, public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The response object of a reply, once its signature is checked over the bytes as sent.

    Raises GatewayFormatError for anything but ``{"<key>": {...}, "sign": "..."}`` (also ``error_response`` in place
    of ``key``), and :class:`BadSignature` when the signature does not verify."""
    if len(body) > MAX_BODY:
        raise GatewayFormatError("reply larger than 1 MiB")
    try:
        text = body.decode("utf-8")
        whole = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        raise GatewayFormatError("reply is not UTF-8 JSON") from None
    if not isinstance(whole, dict) or len(whole) != 2 or not isinstance(whole.get("sign"), str):
        raise GatewayFormatError("reply is not a response object and a signature")
    member = key if key in whole else ERROR_RESPONSE_KEY
    opening = '{"' + member + '":'
    if not text.startswith(opening) or not isinstance(whole.get(member), dict):
        raise GatewayFormatError("reply does not start with its response object")
    try:
        response, end = json.JSONDecoder().raw_decode(text, len(opening))
    except (ValueError, RecursionError):
        raise GatewayFormatError("reply's response object is not JSON") from None
    if response != whole[member] or not text[end:].startswith(',"sign":'):
        raise GatewayFormatError("reply's response object is not the one signed")
    if not verify(public_key, text[len(opening) : end].encode("utf-8"), whole["sign"]):
        raise BadSignature()
    return whole[member]  # type: ignore[no-any-return]  # a dict: checked above


class BadSignature(Exception):
    """A signature that does not verify (the caller names whose and turns it into its own error)."""
