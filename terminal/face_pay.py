"""Host side of the face-pay group (docs/protocol.md section 9): ask a unit's face-pay app for a test transaction.

The unit opens a face session with the platform itself, captures, decides liveness on its own and answers a
face token bound to the platform's test buyer, or a refusal with its reason.  The client checks the reply's
shape (``terminal.schema``); here every field is checked against what its result must carry: a token only with
a session and a score, a refusal only with a known reason and a one-line detail, each within its bounds.  A
unit that breaks them gets ``MalformedReply``, never a traceback.  The token is ``repr=False`` and never logged:
whoever holds it can pay with it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from i18n import _

from .client import ManagementClient
from .errors import MalformedReply
from .protocol import MessageType, Payload, type_name

LOG = logging.getLogger(__name__)

FACE_PAY_TIMEOUT = 30.0
"""Seconds the host waits for a test transaction: the unit's capture and two platform calls (face session, then
verify), each tried twice on a transient failure with the unit's own 5 s per attempt, and the link's round trips."""
REPLY_MARGIN = 5.0
"""Seconds of the host's wait the unit does not get (``budget_s``): it answers before the host gives up."""
BUDGET_S = (1.0, 300.0)  # what a unit accepts as budget_s
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what trade.pay takes as auth_code
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_DETAIL = 512


@dataclass(frozen=True)
class UnitFaceReply:
    """What the unit answered: ``result`` "token" (with ``ftoken``, ``session_id``, ``liveness_score`` and the
    ``frame_set`` it decided on) or "refused" (with ``reason`` and ``detail``, maybe ``liveness_score``)."""

    result: str
    ftoken: str | None = field(default=None, repr=False)
    session_id: str | None = None
    liveness_score: float | None = None
    reason: str | None = None
    detail: str = ""
    frame_set: int | None = None

    @property
    def has_token(self) -> bool:
        return self.result == "token"


class FacePayUnit:
    """The face-pay app of the unit behind ``client`` (an open ``ManagementClient``)."""

    def __init__(self, client: ManagementClient) -> None:
        self.client = client

    def test_transaction(self, merchant_id: str, store_id: str, *, timeout: float = FACE_PAY_TIMEOUT) -> UnitFaceReply:
        """Ask for a test transaction at the merchant's store; the unit answers within ``timeout`` seconds
        (``UnitTimeout`` otherwise; ``UnitGone`` when it goes away meanwhile)."""
        budget = min(max(timeout - REPLY_MARGIN, BUDGET_S[0]), BUDGET_S[1])
        payload = {"merchant_id": merchant_id, "store_id": store_id, "budget_s": budget}
        reply = self.client.request(MessageType.FACE_PAY_TEST, payload, timeout=timeout)
        checked = self._checked(reply)
        LOG.info(
            "unit %s face-pay test: %s%s",
            self.client.unit_name,
            checked.result,
            f" ({checked.reason})" if checked.reason else "",
        )
        return checked

    def _checked(self, reply: Payload) -> UnitFaceReply:
        score = reply.get("liveness_score")
        if score is not None and not 0.0 <= score <= 1.0:
            raise self._malformed("liveness_score", "0..1")
        detail = reply.get("detail", "")
        if len(detail) > MAX_DETAIL or not detail.isprintable():
            raise self._malformed("detail", _("one line of at most {count} characters", count=MAX_DETAIL))
        if reply["result"] == "token":
            for name in ("ftoken", "session_id", "liveness_score", "frame_set"):
                if name not in reply:
                    raise self._malformed(name, _("present with a token"))
            if "reason" in reply:
                raise self._malformed("reason", _("absent with a token"))
            if not TOKEN.fullmatch(reply["ftoken"]):
                raise self._malformed("ftoken", "1 to 128 of A-Z a-z 0-9 _ -")
            if not SESSION_ID.fullmatch(reply["session_id"]):
                raise self._malformed("session_id", _("a session id"))
            return UnitFaceReply("token", reply["ftoken"], reply["session_id"], score, None, detail, reply["frame_set"])
        for name in ("ftoken", "session_id", "frame_set"):
            if name in reply:
                raise self._malformed(name, _("absent with a refusal"))
        if "reason" not in reply or "detail" not in reply:
            raise self._malformed("reason" if "reason" not in reply else "detail", _("present with a refusal"))
        return UnitFaceReply("refused", liveness_score=score, reason=reply["reason"], detail=detail)

    def _malformed(self, field_name: str, expected: str) -> MalformedReply:
        client = self.client
        return MalformedReply(
            path=client.transport.path,
            serial=client.unit_name,
            request=type_name(MessageType.FACE_PAY_TEST),
            field=field_name,
            expected=expected,
        )
