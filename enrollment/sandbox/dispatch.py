"""The gateway's dispatcher: authenticate, run the method's handler in one transaction, answer signed.

Idempotency is generic: for a method with a request number (gateway.REQUEST_NUMBER) the first success reply is
stored in the handler's own transaction, so a repeat with the same content gets it again and changes nothing,
and a repeat with other content is refused (``isv.duplicate-request-no``).  Refusals roll back and are not stored.
A handler that fails unexpectedly rolls back too and is answered ``isp.unknown-error``, never with a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

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
from .auth import Authenticated, authenticate
from .database import Database
from .models import Idempotency
from .registry import HANDLERS, Call, Refused

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


class Gateway:
    """Answers gateway requests from the database, signing every reply with the platform's key."""

    def __init__(self, database: Database, signer: Signer, clock: Callable[[], dt.datetime]) -> None:
        self.database, self.signer, self.clock = database, signer, clock

    def sign(self, key: str, response: Mapping[str, Any]) -> bytes:
        return encode_response(key, response, self.signer)

    def refusal(self, key: str, refusal: Refused) -> bytes:
        return self.sign(key, error_object(refusal))

    def answer(self, form: Mapping[str, str]) -> bytes:
        """The signed reply to one request's parameters: a success, a refusal or ``isp.unknown-error``."""
        key = reply_key(form)
        try:
            now = self.clock().astimezone(dt.UTC)  # SQLite keeps no zone: UTC in the database
            with self.database.read() as session:
                request = authenticate(form, session, now)
            response = self._run(request, now)
        except Refused as refusal:
            response = error_object(refusal)
        except Exception:
            LOG.exception("sandbox gateway: %s failed", key)
            response = error_object(UNKNOWN_ERROR)
        return self.sign(key, response)

    def _run(self, request: Authenticated, now: dt.datetime) -> dict[str, Any]:
        handler = HANDLERS.get(request.method)
        if handler is None:
            raise Refused(SubCode.INVALID_METHOD, "this sandbox does not serve the method", Code.INVALID_PARAMETER)
        field = REQUEST_NUMBER.get(request.method)
        number = request.biz.get(field) if field else None
        numbered = isinstance(number, str) and ID.fullmatch(number) is not None
        fingerprint = hashlib.sha256(canonical_json(request.biz).encode()).hexdigest()
        with self.database.write() as session:
            if numbered:
                stored = session.get(Idempotency, (request.app_id, request.method.value, number))
                if stored is not None and stored.fingerprint == fingerprint:
                    return json.loads(stored.response)  # type: ignore[no-any-return]  # a stored object
                if stored is not None:
                    raise Refused(
                        SubCode.DUPLICATE_REQUEST_NO,
                        f"{field} was used before with other content",
                        Code.INVALID_PARAMETER,
                    )
            call = Call(session, request.app_id, request.supplier_id, request.method, request.biz, now)
            response = {**handler(call), "code": Code.SUCCESS.value, "msg": MESSAGES[Code.SUCCESS]}
            if numbered:
                session.add(
                    Idempotency(
                        app_id=request.app_id,
                        method=request.method.value,
                        request_no=number,
                        fingerprint=fingerprint,
                        response=canonical_json(response),
                        created=now,
                    )
                )
            return response
