"""Business handlers per gateway method, and the checks every field of business content goes through.

A handler takes a :class:`Call` (the database session of the request's transaction, the app, the validated
business content, the sandbox's clock) and returns the response's business fields; it refuses with
:class:`Refused`.  The gateway does the rest: authentication, idempotency by request number, signing.
No field reaches a handler's logic unchecked: :meth:`Call.only` refuses unknown fields and each accessor
checks type, pattern and range.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from ..config import ID
from ..gateway import Code, Method, SubCode, now_timestamp


class Refused(Exception):
    """A request the platform refuses: ``code``/``sub_code`` and an English ``sub_msg`` for the reply."""

    def __init__(self, sub_code: str, sub_msg: str, code: Code = Code.BUSINESS_FAILED) -> None:
        super().__init__(sub_code, sub_msg)
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg


AMOUNT = re.compile(r"(0|[1-9][0-9]{0,9})\.[0-9]{2}")
"""A money amount in yuan with exactly two decimals, as the business content carries it ("0.01")."""


@dataclass
class Call:
    session: Session
    app_id: str
    supplier_id: str
    method: Method
    biz: dict[str, Any]
    now: dt.datetime

    def only(self, *names: str) -> None:
        """Refuse business content with a field not in ``names``."""
        unknown = sorted(set(self.biz) - set(names))
        if unknown:
            raise Refused(SubCode.INVALID_PARAMETER, f"unknown field {unknown[0]}", Code.INVALID_PARAMETER)

    def text(self, name: str, pattern: re.Pattern[str] = ID) -> str:
        """The required field ``name``, text matching ``pattern`` (by default an id: serial, merchant, store...)."""
        value = self.optional(name, pattern)
        if value is None:
            raise Refused(SubCode.MISSING_PARAMETER, f"{name} is required", Code.MISSING_PARAMETER)
        return value

    def optional(self, name: str, pattern: re.Pattern[str] = ID) -> str | None:
        """The field ``name`` if present (text matching ``pattern``), else None."""
        value = self.biz.get(name)
        if value is not None and (not isinstance(value, str) or not pattern.fullmatch(value)):
            raise Refused(SubCode.INVALID_PARAMETER, f"{name} is not valid", Code.INVALID_PARAMETER)
        return value

    def amount(self, name: str) -> int:
        """A required amount in yuan ("12.30"), returned in fen; at least 0.01."""
        text = self.text(name, AMOUNT)
        try:
            fen = int(Decimal(text) * 100)
        except InvalidOperation:  # pragma: no cover - AMOUNT admits only decimals
            raise Refused(SubCode.INVALID_PARAMETER, f"{name} is not valid", Code.INVALID_PARAMETER) from None
        if fen < 1:
            raise Refused(SubCode.INVALID_PARAMETER, f"{name} must be at least 0.01", Code.INVALID_PARAMETER)
        return fen

    def choice(self, name: str, options: Sequence[str], *, required: bool = True) -> str | None:
        value = self.biz.get(name)
        if value is None and not required:
            return None
        if value not in options:
            sub = SubCode.MISSING_PARAMETER if value is None else SubCode.INVALID_PARAMETER
            code = Code.MISSING_PARAMETER if value is None else Code.INVALID_PARAMETER
            raise Refused(sub, f"{name} must be one of {', '.join(options)}", code)
        return str(value)

    def items(self, name: str, most: int) -> list[dict[str, Any]]:
        """A required list of 1 to ``most`` objects (each checked by the handler with :func:`item_call`)."""
        value = self.biz.get(name)
        if value is None:
            raise Refused(SubCode.MISSING_PARAMETER, f"{name} is required", Code.MISSING_PARAMETER)
        if not isinstance(value, list) or not 1 <= len(value) <= most or not all(isinstance(v, dict) for v in value):
            raise Refused(SubCode.INVALID_PARAMETER, f"{name} must list 1 to {most} objects", Code.INVALID_PARAMETER)
        return value

    def item_call(self, item: dict[str, Any]) -> Call:
        """The same call over one object of a list, to check its fields with the same accessors."""
        return Call(self.session, self.app_id, self.supplier_id, self.method, item, self.now)


def fen_text(fen: int) -> str:
    """An amount in fen as the reply carries it: yuan with two decimals."""
    return f"{fen // 100}.{fen % 100:02d}"


def time_text(moment: dt.datetime) -> str:
    """A time in a reply: ``yyyy-MM-dd HH:mm:ss`` China Standard Time, like the ``timestamp`` parameter."""
    return now_timestamp(moment)


Handler = Callable[[Call], dict[str, Any]]
HANDLERS: dict[Method, Handler] = {}


def handles(method: Method) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``method``."""

    def register(handler: Handler) -> Handler:
        if method in HANDLERS:
            raise RuntimeError(f"two handlers for {method}")
        HANDLERS[method] = handler
        return handler

    return register


Inspection = Callable[[Session], list[dict[str, Any]]]
INSPECTIONS: dict[str, Inspection] = {}
"""Read-only views served as JSON at ``GET /sandbox/<name>`` (merchants, devices, trades) for trainers and tests."""


def inspects(name: str) -> Callable[[Inspection], Inspection]:
    """Register the decorated function as the read-only view ``GET /sandbox/<name>``."""

    def register(view: Inspection) -> Inspection:
        if name in INSPECTIONS:
            raise RuntimeError(f"two views named {name}")
        INSPECTIONS[name] = view
        return view

    return register
