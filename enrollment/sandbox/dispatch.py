"""The gateway's dispatcher: authenticate, run the method's handler in one transaction, answer signed.

Idempotency is generic: for a method with a request number (gateway.REQUEST_NUMBER) the first success reply is
stored in the handler's own transaction, so a repeat with the same content gets it again and changes nothing,
and a repeat with other content is refused (``isv.duplicate-request-no``).  Refusals roll back and are not stored.
A reply holding a single-use secret (:data:`SECRET_REPLIES`: the face token) is stored with the secret's SHA-256
only; a repeat is answered with a fresh secret that replaces the earlier one (the first reply may have been lost).
A handler that fails unexpectedly rolls back too and is answered ``isp.unknown-error``, never with a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..config import ID
from ..gateway import (
    ERROR_RESPONSE_KEY,
    REQUEST_NUMBER,
    Code,
    Method,
    Signer,
    SubCode,
    canonical_json,
    encode_response,
    response_key,
)
from .auth import Authenticated, authenticate, parse_biz
from .database import Database
from .models import Idempotency
from .payments import reissue_ftoken
from .registry import HANDLERS, Call, Refused
from .seed import APP_METHODS

LOG = logging.getLogger(__name__)

MESSAGES = {
    Code.SUCCESS: "Success",
    Code.UNAVAILABLE: "Service Currently Unavailable",
    Code.UNAUTHORISED: "Insufficient Token Permissions",
    Code.MISSING_PARAMETER: "Missing Required Arguments",
    Code.INVALID_PARAMETER: "Invalid Arguments",
    Code.BUSINESS_FAILED: "Business Failed",
    Code.FORBIDDEN: "Insufficient Permissions",
}


def error_object(refusal: Refused) -> dict[str, Any]:
    return {
        "code": str(refusal.code),
        "msg": MESSAGES[refusal.code],
        "sub_code": refusal.sub_code,
        "sub_msg": refusal.sub_msg,
    }


UNKNOWN_ERROR = Refused(SubCode.UNKNOWN_ERROR, "the platform failed; try again later", Code.UNAVAILABLE)


def reply_key(form: Mapping[str, str]) -> str:
    """The member a reply to ``form`` puts its response in: the method's, or ``error_response``."""
    method = form.get("method", "")
    return response_key(method) if method in set(Method) else ERROR_RESPONSE_KEY


Reissue = Callable[[Session, str, dt.datetime], str]
"""``(session, digest, now) -> secret``: a fresh secret in place of the one whose SHA-256 is ``digest``, the
earlier one invalidated, or :class:`Refused`."""

SECRET_REPLIES: dict[Method, tuple[str, Reissue]] = {Method.FACE_SESSION_VERIFY: ("ftoken", reissue_ftoken)}
"""Reply members that are single-use secrets: the stored reply keeps only their SHA-256, so a repeat of the
request is answered with the stored reply holding a fresh secret from the given reissue, the earlier one
invalidated; no table ever holds the secret itself."""


SELF_IDEMPOTENT = frozenset({Method.TRADE_REFUND})
"""Methods whose handler itself answers a repeated number with other content (a refund naming its trade by
``trade_no`` instead of ``out_trade_no`` is the same refund): the dispatcher does not refuse it for them."""


def request_number(method: str, biz: Mapping[str, Any]) -> str | None:
    """The request number ``biz`` carries for ``method`` (REQUEST_NUMBER), when it is a valid one."""
    field = REQUEST_NUMBER.get(Method(method)) if method in set(Method) else None
    number = biz.get(field) if field else None
    return number if isinstance(number, str) and ID.fullmatch(number) else None


class Gateway:
    """Answers gateway requests from the database, signing every reply with the platform's key."""

    def __init__(self, database: Database, signer: Signer, clock: Callable[[], dt.datetime]) -> None:
        self.database, self.signer, self.clock = database, signer, clock

    def sign(self, key: str, response: Mapping[str, Any]) -> bytes:
        return encode_response(key, response, self.signer)

    def refusal(self, key: str, refusal: Refused) -> bytes:
        return self.sign(key, error_object(refusal))

    def authenticate(self, form: Mapping[str, str]) -> Authenticated:
        """The request ``form`` once authenticated (auth.authenticate), or :class:`Refused`."""
        with self.database.read() as session:
            return authenticate(form, session, self._now())

    def refused(self, form: Mapping[str, str], refusal: Refused) -> bytes:
        """The signed refusal of the request ``form``, echoing its request number where it has a valid one (so a
        station can tell the refusal answers this request and is not a replayed one)."""
        return self.sign(reply_key(form), {**error_object(refusal), **_echo(form)})

    def answer(self, form: Mapping[str, str], request: Authenticated | None = None) -> bytes:
        """The signed reply to one request (``request``: ``form`` already authenticated): a success, a refusal
        or ``isp.unknown-error``."""
        try:
            response = self._run(request or self.authenticate(form), self._now())
        except Refused as refusal:
            return self.refused(form, refusal)
        except Exception:
            LOG.exception("sandbox gateway: %s failed", reply_key(form))
            return self.refused(form, UNKNOWN_ERROR)
        return self.sign(reply_key(form), response)

    def _now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC)  # SQLite keeps no zone: UTC in the database

    def _run(self, request: Authenticated, now: dt.datetime) -> dict[str, Any]:
        allowed = APP_METHODS.get(request.app_id)
        if allowed is not None and request.method not in allowed:
            raise Refused("METHOD_NOT_PERMITTED", "this app may not call this method", Code.FORBIDDEN)
        handler = HANDLERS.get(request.method)
        if handler is None:
            raise Refused(SubCode.INVALID_METHOD, "this sandbox does not serve the method", Code.INVALID_PARAMETER)
        number = request_number(request.method, request.biz)
        fingerprint = hashlib.sha256(canonical_json(request.biz).encode()).hexdigest()
        secret = SECRET_REPLIES.get(request.method)
        with self.database.write() as session:
            stored = (
                None if number is None else session.get(Idempotency, (request.app_id, request.method.value, number))
            )
            if stored is not None and stored.fingerprint == fingerprint:
                reply: dict[str, Any] = json.loads(stored.response)
                if secret is not None:
                    field, reissue = secret
                    fresh = reissue(session, str(reply[field]), now)
                    stored.response = canonical_json({**reply, field: _digest(fresh)})
                    reply[field] = fresh
                return reply
            if stored is not None and request.method not in SELF_IDEMPOTENT:
                raise Refused(
                    SubCode.DUPLICATE_REQUEST_NO,
                    f"{REQUEST_NUMBER[request.method]} was used before with other content",
                    Code.INVALID_PARAMETER,
                )
            call = Call(session, request.app_id, request.supplier_id, request.method, request.biz, now)
            response = {**handler(call), "code": Code.SUCCESS.value, "msg": MESSAGES[Code.SUCCESS]}
            if number is not None and stored is None:
                kept = dict(response)
                if secret is not None:
                    kept[secret[0]] = _digest(str(kept[secret[0]]))
                session.add(
                    Idempotency(
                        app_id=request.app_id,
                        method=request.method.value,
                        request_no=number,
                        fingerprint=fingerprint,
                        response=canonical_json(kept),
                        created=now,
                    )
                )
            return response


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _echo(form: Mapping[str, str]) -> dict[str, str]:
    """``{field: number}`` of the request number in ``form``'s business content, or nothing."""
    method = form.get("method", "")
    try:
        biz = parse_biz(form.get("biz_content", ""))
    except Refused:
        return {}
    number = request_number(method, biz)
    return {} if number is None else {REQUEST_NUMBER[Method(method)]: number}
