"""The outbox: every write call to the merchant platform is written to the ledger first, then sent, then marked.

So a flaky network delays a registration but never loses or doubles it (DESIGN section 6):

- ``call`` gives the call a fresh request number (a uuid4 hex, in the method's ``REQUEST_NUMBER`` field), writes
  it ``pending`` to the ledger, sends it, and marks it ``done`` with the reply, or ``refused`` when the platform
  refuses it; when the platform cannot be reached or its reply cannot be used, the call stays ``pending``;
- a station that crashed after writing and before sending, or whose reply was lost on the way, sends the
  pending call again with the *same* request number (``resume``, or the next ``call`` of the same method about
  the same unit): the platform does the work at most once and answers a repeated number with its first answer.

Read methods (subsidy status, trade query) change nothing and go straight to the client (``read``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enrollment.client import PlatformClient
from enrollment.errors import PlatformRefused, PlatformUnavailable
from enrollment.gateway import REQUEST_NUMBER, Method
from enrollment.replies import checked_fields
from provisioning.ledger import Ledger, PlatformCallRecord

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumeReport:
    """What ``resume`` did: calls marked done, marked refused, and still pending (the platform unreachable)."""

    done: int
    refused: int
    pending: int


class Outbox:
    """Sends the station's platform calls through the ledger (thread-safe, as the ledger and the client are)."""

    def __init__(self, ledger: Ledger, client: PlatformClient) -> None:
        self._ledger = ledger
        self._client = client

    def call(self, method: Method, biz: Mapping[str, Any], *, serial: str | None = None) -> dict[str, Any]:
        """Write the call, send it, mark it; return the platform's checked reply.

        A call of the same ``method`` about the same ``serial`` still pending is sent again in its place, with
        its own request number and content: it may have been done already (its reply lost), and doing the
        thing twice (two payments, two bindings) is worse than answering with the first one.
        Raises PlatformRefused (the call marked refused), PlatformUnavailable or PlatformReplyInvalid (the call
        stays pending, to be sent again)."""
        method = Method(method)
        field = REQUEST_NUMBER.get(method)
        if field is None:
            raise ValueError(f"{method} changes nothing: use Outbox.read")
        pending = None if serial is None else self._ledger.find_platform_call(method, serial, state="pending")
        if pending is not None:
            if _content(pending.biz, field) != _content(biz, field):
                LOG.warning(
                    "%s for %s: the pending call %s is sent in place of new content", method, serial, pending.request_no
                )
            return self._send(pending)
        number = uuid.uuid4().hex
        written = self._ledger.add_platform_call(method, number, {**biz, field: number}, serial, sending=True)
        return self._send(written, counted=True)

    def read(self, method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        """A read method (no request number, safe to repeat), straight to the client."""
        method = Method(method)
        if method in REQUEST_NUMBER:
            raise ValueError(f"{method} is a write: use Outbox.call")
        return self._client.call(method, biz)

    def resume(self) -> ResumeReport:
        """Send every pending call again, oldest first, with its own request number.

        Stops at the first call the platform cannot be reached for (the rest would fare no better, and a later
        call may depend on it: activation on binding); a reply that cannot be used leaves that call pending and
        goes on with the next."""
        done = refused = 0
        calls = self._ledger.pending_platform_calls()
        for index, record in enumerate(calls):
            try:
                self._send(record)
            except PlatformRefused:
                refused += 1
            except PlatformUnavailable:
                LOG.warning("platform unreachable: %d calls left pending", len(calls) - index)
                break
            except Exception:
                LOG.warning("call %s (%s) left pending", record.request_no, record.method, exc_info=True)
            else:
                done += 1
        return ResumeReport(done=done, refused=refused, pending=len(calls) - done - refused)

    def pending(self) -> list[PlatformCallRecord]:
        """The calls written and not settled yet, oldest first."""
        return self._ledger.pending_platform_calls()

    def done(self, method: Method, serial: str) -> PlatformCallRecord | None:
        """The latest call of ``method`` about ``serial`` that the platform did, None if there is none."""
        return self._ledger.find_platform_call(Method(method), serial, state="done")

    def _send(self, record: PlatformCallRecord, *, counted: bool = False) -> dict[str, Any]:
        """Send a written call (its attempt ``counted`` already when it was just written) and settle it by the
        answer; a call without an answer stays pending."""
        if not counted:
            self._ledger.platform_call_attempted(record.request_no)
        try:
            reply = self._client.call(Method(record.method), record.biz)
        except PlatformRefused as refused:
            error = f"{refused.code} {refused.sub_code}: {refused.sub_msg}"
            self._ledger.settle_platform_call(record.request_no, "refused", error=error)
            raise
        self._ledger.settle_platform_call(record.request_no, "done", reply=checked_fields(Method(record.method), reply))
        return reply


def _content(biz: Mapping[str, Any], field: str) -> dict[str, Any]:
    """What a call asks for, without its request number."""
    return {key: value for key, value in biz.items() if key != field}
