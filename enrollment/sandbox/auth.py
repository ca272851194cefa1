"""Checks of a gateway request before any business: the form, every common parameter, the app and its signature.

Each check refuses with the gateway's code and sub-code (docs/platform-api.md); a request that passes them all
is an :class:`Authenticated` with its business content parsed to a JSON object.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from ..gateway import (
    CHARSET,
    COMMON_PARAMETERS,
    FORMAT,
    SIGN_TYPE,
    VERSION,
    Code,
    GatewayFormatError,
    Method,
    SubCode,
    load_public_key,
    parse_timestamp,
    sign_string,
    verify,
)
from .models import App
from .registry import Refused

FORM_TYPE = "application/x-www-form-urlencoded"
PARAMETERS = frozenset({*COMMON_PARAMETERS, "sign"})
TIMESTAMP_WINDOW = dt.timedelta(minutes=5)
REQUIRED = (
    ("app_id", SubCode.MISSING_APP_ID),
    ("method", SubCode.MISSING_METHOD),
    ("timestamp", SubCode.MISSING_TIMESTAMP),
    ("sign", SubCode.MISSING_SIGNATURE),
    ("sign_type", SubCode.MISSING_PARAMETER),
    ("version", SubCode.MISSING_PARAMETER),
    ("biz_content", SubCode.MISSING_BIZ_CONTENT),
)
FIXED = (
    ("format", FORMAT, SubCode.INVALID_FORMAT),
    ("charset", CHARSET, SubCode.INVALID_CHARSET),
    ("sign_type", SIGN_TYPE, SubCode.INVALID_SIGN_TYPE),
    ("version", VERSION, SubCode.INVALID_VERSION),
)


@dataclass(frozen=True)
class Authenticated:
    app_id: str
    supplier_id: str
    method: Method
    biz: dict[str, Any]


def invalid(sub_code: str, sub_msg: str) -> Refused:
    return Refused(sub_code, sub_msg, Code.INVALID_PARAMETER)


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """The parameters of a form body: UTF-8, each named once, only the gateway's names."""
    if content_type.split(";")[0].strip().lower() != FORM_TYPE:
        raise invalid(SubCode.INVALID_PARAMETER, f"the body must be {FORM_TYPE}")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise invalid(SubCode.INVALID_PARAMETER, "the body is not a UTF-8 form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMETERS:
            raise invalid(SubCode.INVALID_PARAMETER, "unknown parameter")
        if name in form:
            raise invalid(SubCode.INVALID_PARAMETER, f"{name} given twice")
        form[name] = value
    return form


def authenticate(form: Mapping[str, str], session: Session, now: dt.datetime) -> Authenticated:
    """The request in ``form`` once every common parameter, the app, the signature and the time are checked."""
    for name, sub_code in REQUIRED:
        if not form.get(name):
            raise Refused(sub_code, f"{name} is required", Code.MISSING_PARAMETER)
    if form["method"] not in set(Method):
        raise invalid(SubCode.INVALID_METHOD, "no such method")
    for name, expected, sub_code in FIXED:  # format and charset may be left out
        if form.get(name, expected).lower() != expected.lower():
            raise invalid(sub_code, f"{name} must be {expected}")
    try:
        sent = parse_timestamp(form["timestamp"])
    except GatewayFormatError:
        raise invalid(SubCode.INVALID_TIMESTAMP, "timestamp is not yyyy-MM-dd HH:mm:ss") from None
    app = session.get(App, form["app_id"])
    if app is None or app.public_key is None:
        raise Refused(SubCode.INVALID_APP_ID, "no such app, or it has no key", Code.UNAUTHORISED)
    if not verify(load_public_key(app.public_key), sign_string(form), form["sign"]):
        raise Refused(SubCode.INVALID_SIGNATURE, "the signature does not verify", Code.UNAUTHORISED)
    if sent < now - TIMESTAMP_WINDOW:
        raise Refused(SubCode.INVALID_TIMESTAMP, "timestamp is more than 5 minutes old", Code.UNAUTHORISED)
    if sent > now + TIMESTAMP_WINDOW:
        raise Refused(SubCode.INVALID_TIMESTAMP, "timestamp is more than 5 minutes ahead", Code.UNAUTHORISED)
    return Authenticated(app.app_id, app.supplier_id, Method(form["method"]), parse_biz(form["biz_content"]))


def parse_biz(text: str) -> dict[str, Any]:
    """The business content: one JSON object, no member named twice, no NaN or Infinity."""
    try:
        biz = json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise invalid(SubCode.INVALID_BIZ_CONTENT, "biz_content is not JSON") from None
    if not isinstance(biz, dict):
        raise invalid(SubCode.INVALID_BIZ_CONTENT, "biz_content is not a JSON object")
    return biz


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a member named twice")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
