"""Checks on the platform's success replies, per method, before the station believes a field of them.

A signed reply can still be wrong for the request it answers (a platform bug, a mix-up of replies, a number
reused by mistake): every field a flow reads is checked for its type and form (ids, amounts as ``"0.01"``,
times as ``yyyy-MM-dd HH:mm:ss``, the documented states), and every field that echoes the request (its request
number, serial, merchant, store, amounts) must equal the request's.  Anything else is
:class:`~enrollment.errors.PlatformReplyInvalid`, naming the field.  Fields not listed are let through
(a newer platform may add some) but never read, nor kept (:func:`checked_fields`).  A refusal of a write
request's business or parameters must echo the request's number (:func:`check_refusal`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from i18n import N_

from .config import ID
from .errors import PlatformReplyInvalid
from .gateway import REQUEST_NUMBER, Code, GatewayFormatError, Method, parse_timestamp

AMOUNT = re.compile(r"(0|[1-9][0-9]{0,9})\.[0-9]{2}")
"""A money amount in yuan with exactly two decimals ("0.01"), as replies carry it."""
TOKEN = re.compile(r"[A-Za-z0-9_.:+/=-]{8,256}")
"""An opaque token the platform hands out (a face session id, a face token)."""
SUB_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_LIST = 1000

Check = Callable[[Any, str], None]
"""Checks a value found at a path (``results[2].status``); raises :class:`_Bad` naming what is wrong."""


class _Bad(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(field, detail)
        self.field, self.detail = field, detail


WRONG_FORM = N_("a field is missing or has the wrong type or form")
NOT_ECHOED = N_("a field that repeats the request differs from the request")
WRONG_UNITS = N_("the units in the reply are not the units of the request")


def _text(pattern: re.Pattern[str]) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _Bad(path, WRONG_FORM)

    return check


def _time(value: Any, path: str) -> None:
    try:
        parse_timestamp(value)
    except GatewayFormatError:
        raise _Bad(path, WRONG_FORM) from None


def _count(most: int) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise _Bad(path, WRONG_FORM)

    return check


def _one_of(*options: str) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in options:
            raise _Bad(path, WRONG_FORM)

    return check


def _nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return check


def _printable(most: int) -> Check:
    """Text shown to people (a masked buyer account ``138******01``, a unit's refusal reason): 1 to ``most``
    printable characters, so no control character (C0 or C1, such as the CSI escape) and no format character
    (such as a right-to-left override) reaches a terminal or a label."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, str) or not 1 <= len(value) <= most or not value.isprintable():
            raise _Bad(path, WRONG_FORM)

    return check


class _Objects:
    """Checks a list (at most MAX_LIST) of objects, each with ``fields`` and maybe ``optional`` ones; and
    projects a checked one onto those fields (:func:`checked_fields`)."""

    def __init__(self, fields: Mapping[str, Check], optional: Mapping[str, Check] | None = None) -> None:
        self.fields, self.optional = fields, optional or {}

    def __call__(self, value: Any, path: str) -> None:
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise _Bad(path, WRONG_FORM)
        for index, item in enumerate(value):
            _fields(item, self.fields, f"{path}[{index}]", self.optional)

    def project(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_project(item, {**self.fields, **self.optional}) for item in value]


def _project(value: Mapping[str, Any], fields: Mapping[str, Check]) -> dict[str, Any]:
    """The checked ``fields`` of an object, nested lists of objects projected in turn."""
    return {
        name: check.project(value[name]) if isinstance(check, _Objects) else value[name]
        for name, check in fields.items()
        if name in value
    }


def _fields(value: Any, fields: Mapping[str, Check], path: str, optional: Mapping[str, Check]) -> None:
    if not isinstance(value, dict):
        raise _Bad(path or "response", WRONG_FORM)
    prefix = f"{path}." if path else ""
    for name, check in fields.items():
        if name not in value:
            raise _Bad(prefix + name, WRONG_FORM)
        check(value[name], prefix + name)
    for name, check in optional.items():
        if value.get(name) is not None:
            check(value[name], prefix + name)


ident, amount, token = _text(ID), _text(AMOUNT), _text(TOKEN)
MONTH: dict[str, Check] = {"index": _count(5), "start": _time, "end": _time, "users": _count(10**9), "earned": amount}
UNIT: dict[str, Check] = {
    "serial": ident,
    "merchant_id": ident,
    "store_id": ident,
    "program": _nullable(ident),
    "activated": _nullable(_time),
    "window_end": _nullable(_time),
    "months": _Objects(MONTH),
    "users": _count(10**9),
    "earned": amount,
    "cap_left": amount,
    "months_left": _count(5),
}
RESULT: dict[str, Check] = {"serial": ident, "status": _one_of("registered", "already-registered", "refused")}

FIELDS: dict[Method, dict[str, Check]] = {
    Method.INVENTORY_REGISTER: {
        "out_request_no": ident,
        "results": _Objects(RESULT, {"sub_code": _text(SUB_CODE), "sub_msg": _printable(64)}),
    },
    Method.DEVICE_BIND: {
        "out_request_no": ident,
        "serial": ident,
        "merchant_id": ident,
        "store_id": ident,
        "bound": _time,
    },
    Method.DEVICE_ACTIVATE: {"out_request_no": ident, "serial": ident, "activated": _time},
    Method.SUBSIDY_ENROLL: {
        "out_request_no": ident,
        "serial": ident,
        "program": ident,
        "enrolled": _time,
        "window_start": _time,
        "window_end": _time,
    },
    Method.SUBSIDY_QUERY: {"units": _Objects(UNIT), "earned": amount},
    Method.FACE_SESSION_INITIALIZE: {"out_request_no": ident, "session_id": token, "expires": _time},
    Method.FACE_SESSION_VERIFY: {"out_request_no": ident, "ftoken": token, "expires": _time},
    Method.TRADE_PAY: {
        "out_trade_no": ident,
        "trade_no": ident,
        "buyer_logon_id": _printable(64),
        "total_amount": amount,
        "gmt_payment": _time,
        "trade_status": _one_of("TRADE_SUCCESS"),
    },
    Method.TRADE_QUERY: {
        "trade_no": ident,
        "out_trade_no": ident,
        "trade_status": _one_of("TRADE_SUCCESS", "TRADE_CLOSED"),
        "total_amount": amount,
        "refunded_amount": amount,
    },
    Method.TRADE_REFUND: {
        "out_request_no": ident,
        "trade_no": ident,
        "out_trade_no": ident,
        "refund_amount": amount,
        "refunded_total": amount,
        "gmt_refund": _time,
    },
    Method.TRADE_REFUND_QUERY: {
        "out_request_no": ident,
        "trade_no": ident,
        "refund_amount": amount,
        "refund_status": _one_of("REFUND_SUCCESS"),
    },
}
"""The fields every success reply of a method must carry, each with its check."""

ECHOED = ("out_request_no", "out_trade_no", "trade_no", "serial", "merchant_id", "store_id", "program")
ECHOED_AMOUNTS = {Method.TRADE_PAY: "total_amount", Method.TRADE_REFUND: "refund_amount"}


def check_success(method: Method, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
    """Refuse a success ``response`` to ``request`` whose fields are not what ``method`` returns, or that
    does not echo the request: :class:`PlatformReplyInvalid` naming the field."""
    try:
        _fields(response, FIELDS[method], "", {})
        _echoes(method, request, response)
    except _Bad as bad:
        raise PlatformReplyInvalid(method=str(method), field=bad.field, detail=bad.detail) from None


def checked_fields(method: Method, response: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a checked success ``response`` that was checked, nested objects included: what a flow may read
    and the outbox keeps.  A field the station does not know (``results[0].device_key``) is dropped."""
    status = {name: response[name] for name in ("code", "msg") if name in response}
    return status | _project(response, FIELDS[method])


REQUEST_REFUSALS = frozenset({Code.BUSINESS_FAILED, Code.MISSING_PARAMETER, Code.INVALID_PARAMETER})
"""Refusals of the request itself (its business or its parameters), not of the station or of this sending."""


def check_refusal(method: Method, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
    """Refuse an error ``response`` to a write ``request`` that echoes a request number other than the
    request's, or, refusing the request itself (:data:`REQUEST_REFUSALS`), echoes none:
    :class:`PlatformReplyInvalid`.  The station sends only readable, valid numbers and the platform echoes the
    number on every refusal of such a request, so a replayed refusal of another call, or one of a request the
    platform could not read, must not settle this call.  Refusals of the station (authentication, permission)
    need not echo: they settle nothing."""
    field = REQUEST_NUMBER.get(method)
    if field is None:
        return
    if field in response and response[field] != request.get(field):
        raise PlatformReplyInvalid(method=str(method), field=field, detail=NOT_ECHOED)
    if field not in response and response.get("code") in REQUEST_REFUSALS:
        raise PlatformReplyInvalid(method=str(method), field=field, detail=NOT_ECHOED)


def _echoes(method: Method, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
    names = [name for name in ECHOED if name in FIELDS[method]]
    if method in ECHOED_AMOUNTS:
        names.append(ECHOED_AMOUNTS[method])
    for name in names:
        if request.get(name) is not None and response[name] != request[name]:
            raise _Bad(name, NOT_ECHOED)
    if method is Method.INVENTORY_REGISTER:
        asked = Counter(device.get("serial") for device in request.get("devices", ()) if isinstance(device, dict))
        if Counter(result["serial"] for result in response["results"]) != asked:
            raise _Bad("results", WRONG_UNITS)
    if method is Method.SUBSIDY_QUERY:
        for key in ("serial", "merchant_id"):
            wanted = request.get(key)
            for index, unit in enumerate(response["units"]):
                if wanted is not None and unit[key] != wanted:
                    raise _Bad(f"units[{index}].{key}", NOT_ECHOED)
