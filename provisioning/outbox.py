"""The outbox: every write call to the merchant platform is written to the ledger first, then sent, then marked.

So a flaky network delays a registration but never loses or doubles it (DESIGN section 6):

- ``call`` gives the call a fresh request number (a uuid4 hex, in the method's ``REQUEST_NUMBER`` field), writes
  it ``pending`` to the ledger, sends it, and marks it ``done`` with the reply, or ``refused`` when the platform
  refuses the request itself (its business or its parameters); when the platform cannot be reached, refuses
  only this sending (authentication, permission, its own trouble) or its reply cannot be used, the call stays
  ``pending``;
- a station that crashed after writing and before sending, or whose reply was lost on the way, sends the
  pending call again with the *same* request number (``resume``, or the next ``call`` of the same method about
  the same unit with the same content): the platform does the work at most once and answers a repeated number
  with its first answer.  A pending call is never answered in place of a call asking something else
  (:class:`PendingCallDiffers`); an operator who checked the platform can ``abandon`` it.

Pending calls are the station's own: another station sharing the ledger neither sends nor abandons them.
Read methods (subsidy status, trade query) change nothing and go straight to the client (``read``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enrollment.client import PlatformClient
from enrollment.errors import EnrollmentError, PlatformRefused, PlatformUnavailable
from enrollment.gateway import REQUEST_NUMBER, Code, Method, SubCode, canonical_json
from enrollment.replies import REQUEST_REFUSALS, checked_fields
from i18n import N_
from provisioning.ledger import Ledger, PlatformCallNotPending, PlatformCallRecord
from provisioning.ledger.platform_calls import BLANKED_WHEN_SETTLED

LOG = logging.getLogger(__name__)

PENDING = "pending"
SETTLING_CODES = REQUEST_REFUSALS
"""Refusals of the request itself, the same however often it is sent: they settle a call ``refused``."""
STATION_CODES = frozenset({Code.UNAUTHORISED, Code.FORBIDDEN})
"""Refusals of the station (its key, clock or app): every other call would meet them too."""


class PendingCallDiffers(EnrollmentError):
    """A call of the same method about the same unit is still pending with other content: it may have been done
    already (its reply lost), so neither it nor the new call is sent in its place."""

    message = N_(
        "An earlier {method} call for {serial} ({request_no}) is still waiting with other content; it may "
        "already be done"
    )
    remedy = N_(
        "Send it with 'naiad register resume', or, once you have checked the platform, drop it with "
        "'naiad register abandon {request_no}'; then run again."
    )


class PlatformCallSecretGone(EnrollmentError):
    """A call found done by another sending (a concurrent one with the same content): the secret its reply
    carried (a face session's token) was handed to that sending and is not kept, so there is none to return."""

    message = N_("The {method} call {request_no} was done by another sending; its face token is not kept")
    remedy = N_("Open a new face session and verify the buyer again.")


@dataclass(frozen=True)
class ResumeReport:
    """What ``resume`` did: calls marked done, marked refused, and still pending (the platform unreachable, or
    refusing the sending rather than the request)."""

    done: int
    refused: int
    pending: int


def settles(refused: PlatformRefused) -> bool:
    """Whether a refusal is the platform's word on the request (``refused`` for good), not on this sending:
    business refusals and malformed requests, except a request number the platform holds other content for
    and the platform's own ``isp.*`` troubles.  Authentication (20001), permission (40006) and any other code
    say nothing about whether the platform did the request before: the call stays pending."""
    if refused.code not in SETTLING_CODES or refused.sub_code.startswith("isp."):
        return False
    return refused.sub_code != SubCode.DUPLICATE_REQUEST_NO


class Outbox:
    """Sends the station's platform calls through the ledger (thread-safe, as the ledger and the client are;
    two stations sharing a ledger are not kept from writing calls for the same unit: see
    ``Ledger.queue_platform_call``)."""

    def __init__(self, ledger: Ledger, client: PlatformClient) -> None:
        self._ledger = ledger
        self._client = client

    def as_operator(self, name: str) -> Outbox:
        """The same outbox, writing as operator ``name`` (see ``Ledger.as_operator``)."""
        return Outbox(self._ledger.as_operator(name), self._client)

    def call(self, method: Method, biz: Mapping[str, Any], *, serial: str | None = None) -> dict[str, Any]:
        """Write the call, send it, mark it; return the platform's checked reply.

        When this station has a call of the same ``method`` about the same ``serial`` still pending, it is sent
        again instead (with its own request number) if it asks the same (``biz`` compared as JSON, without the
        request number): it may have been done already, its reply lost, and doing the thing twice (two payments,
        two bindings) is worse than answering with the first answer.  If it asks something else,
        :class:`PendingCallDiffers` is raised and nothing is sent or written.  Looking for it and writing the new
        call are one ledger transaction.  Raises PlatformRefused (the call marked refused when :func:`settles`,
        else left pending), PlatformUnavailable or PlatformReplyInvalid (the call stays pending), or
        PlatformCallSecretGone (a verify another sending did: its token is not kept)."""
        method = Method(method)
        field = REQUEST_NUMBER.get(method)
        if field is None:
            raise ValueError(f"{method} changes nothing: use Outbox.read")
        number = uuid.uuid4().hex
        record, written = self._ledger.queue_platform_call(method, number, {**biz, field: number}, serial)
        if written:
            return self._send(record, counted=True)
        if _content(record.biz, field) != _content(biz, field):
            raise PendingCallDiffers(method=str(method), serial=serial, request_no=record.request_no)
        return self._send(record)

    def read(self, method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        """A read method (no request number, safe to repeat), straight to the client."""
        method = Method(method)
        if method in REQUEST_NUMBER:
            raise ValueError(f"{method} is a write: use Outbox.call")
        return self._client.call(method, biz)

    def resume(self, method: Method | None = None, serial: str | None = None) -> ResumeReport:
        """Send this station's pending calls (of ``method``, about ``serial`` when given) again, oldest first,
        each with its own request number.

        Stops at the first call the platform cannot be reached for, or that it refuses because of the station
        (its key, clock or app): the rest would fare no better, and a later call may depend on it (activation
        on binding).  A reply that cannot be used leaves that call pending and goes on with the next."""
        done = refused = left = 0
        calls = self._ledger.pending_platform_calls(None if method is None else Method(method), serial)
        for index, record in enumerate(calls):
            try:
                self._send(record)
            except PlatformRefused as refusal:
                if settles(refusal):
                    refused += 1
                    continue
                left += 1
                if refusal.code in STATION_CODES:
                    LOG.warning("the platform refused the station (%s): %d calls left pending", refusal.code, left)
                    left += len(calls) - index - 1
                    break
            except PlatformUnavailable:
                left += len(calls) - index
                LOG.warning("platform unreachable: %d calls left pending", left)
                break
            except PlatformCallNotPending:
                LOG.info("call %s was abandoned meanwhile", record.request_no)
            except Exception:
                left += 1
                LOG.warning("call %s (%s) left pending", record.request_no, record.method, exc_info=True)
            else:
                done += 1
        return ResumeReport(done=done, refused=refused, pending=left)

    def abandon(self, request_no: str) -> PlatformCallRecord:
        """Mark this station's pending call ``request_no`` abandoned: it is never sent again (audited as
        ``platform.call.abandoned``).  For a call whose reply can never be used, or one superseded, once an
        operator checked what the platform did.  A sending already under way that the platform answers with
        success still settles it ``done``: the work happened and must be found, not done again.
        Raises ``PlatformCallNotPending`` for any other call, ``UnknownPlatformCall`` for a number the ledger
        has not."""
        return self._ledger.abandon_platform_call(request_no)

    def pending(self, method: Method | None = None, serial: str | None = None) -> list[PlatformCallRecord]:
        """This station's calls (of ``method``, about ``serial`` when given) not settled yet, oldest first."""
        return self._ledger.pending_platform_calls(None if method is None else Method(method), serial)

    def done(self, method: Method, serial: str) -> PlatformCallRecord | None:
        """The latest call of ``method`` about ``serial`` that the platform did, None if there is none."""
        return self._ledger.find_platform_call(Method(method), serial, state="done")

    def _send(self, record: PlatformCallRecord, *, counted: bool = False) -> dict[str, Any]:
        """Send a written call (its attempt ``counted`` already when it was just written) and settle it by the
        answer; a call without a final answer stays pending.  A call found settled meanwhile (by another thread)
        is not sent: its outcome is returned or raised."""
        if not counted:
            record = self._ledger.platform_call_attempted(record.request_no)
            if record.state != PENDING:
                return _outcome(record)
        try:
            reply = self._client.call(Method(record.method), record.biz)
        except PlatformRefused as refused:
            if settles(refused):
                error = f"{refused.code} {refused.sub_code}: {refused.sub_msg}"
                self._ledger.settle_platform_call(record.request_no, "refused", error=error)
            raise
        self._ledger.settle_platform_call(record.request_no, "done", reply=checked_fields(Method(record.method), reply))
        return reply


def _content(biz: Mapping[str, Any], field: str) -> str:
    """What a call asks for, without its request number, as JSON (so a tuple and a list are the same)."""
    return canonical_json({key: value for key, value in biz.items() if key != field})


def _outcome(record: PlatformCallRecord) -> dict[str, Any]:
    """A settled call's stored reply, or its stored refusal raised again, or PlatformCallNotPending; a stored
    reply whose secret was blanked is no success to hand back (PlatformCallSecretGone)."""
    if record.state == "done" and record.reply is not None:
        if any(record.reply.get(name) == "" for name in BLANKED_WHEN_SETTLED):
            raise PlatformCallSecretGone(method=record.method, request_no=record.request_no)
        return record.reply
    if record.state == "refused" and record.error is not None:
        code, _, rest = record.error.partition(" ")
        sub_code, _, sub_msg = rest.partition(": ")
        raise PlatformRefused(method=record.method, code=code, sub_code=sub_code, sub_msg=sub_msg)
    raise PlatformCallNotPending(request_no=record.request_no, state=record.state, station=record.station)
