"""The outbox of calls to the merchant platform, in the ledger (revision 0006; provisioning/outbox.py sends them).

A call is written ``pending`` before it is sent, with the request as it will be sent (its request number
included), so a crash or an outage never loses it: it is sent again, with the same number, until the platform
answers; then it is settled ``done`` with the reply or ``refused`` with the platform's code and reason, unless
an operator ``abandoned`` it first.  A pending call is its station's own: only that station sends it again or
abandons it.  Writing and settling are audited (``platform.call.queued``, ``platform.call.done``,
``platform.call.refused``, ``platform.call.abandoned``; subject
``device:SERIAL`` when the call is about a unit) and the row is sealed; counting attempts is not (an outage
must not flood the trail).  A settled call keeps no face token: ``auth_code`` in the request and ``ftoken`` in
the reply are blanked.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from i18n import _

from . import audit as chain
from . import validate
from .errors import InvalidLedgerInput, PlatformCallNotPending, UnknownPlatformCall
from .models import ERROR_LENGTH, PLATFORM_CALL_STATES, PlatformCall, Station
from .records import PlatformCallRecord

if TYPE_CHECKING:
    from .ledger import _Write

__all__ = ["PlatformCallRecord", "PlatformCalls"]

QUEUED = "platform.call.queued"
DONE = "platform.call.done"
REFUSED = "platform.call.refused"
ABANDONED_ACTION = "platform.call.abandoned"
PENDING = "pending"
ABANDONED = "abandoned"
SETTLED = {"done": DONE, "refused": REFUSED}
BLANKED_WHEN_SETTLED = ("auth_code", "ftoken")
"""Face tokens (the ``auth_code`` a payment carries, the ``ftoken`` a verified face session returns): kept only
while the call may have to be sent again."""
_REQUEST_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_METHOD = re.compile(r"[a-z][a-z0-9_.]{0,63}")


def _request_no(value: object) -> str:
    if not isinstance(value, str) or not _REQUEST_NO.fullmatch(value):
        raise InvalidLedgerInput(field="request_no", detail=_("must be 1 to 64 letters, digits, '.', '_' or '-'"))
    return value


def _method(value: object) -> str:
    if not isinstance(value, str) or not _METHOD.fullmatch(value):
        raise InvalidLedgerInput(field="method", detail=_("must be 1 to 64 lower-case letters, digits, '.' or '_'"))
    return value


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidLedgerInput(field=field, detail=_("must be a JSON object"))
    clean: dict[str, Any] = chain.clean_json(value, field)
    return clean


def _blanked(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else {k: "" if k in BLANKED_WHEN_SETTLED else v for k, v in value.items()}


def _subject(row: PlatformCall) -> str:
    return f"device:{row.serial}" if row.serial else f"platform-call:{row.request_no}"


def _record(row: PlatformCall, station: str) -> PlatformCallRecord:
    return PlatformCallRecord(
        request_no=row.request_no,
        method=row.method,
        serial=row.serial,
        biz=dict(row.biz),
        state=row.state,
        attempts=row.attempts,
        created=row.created,
        updated=row.updated,
        reply=None if row.reply is None else dict(row.reply),
        error=row.error,
        station=station,
        operator=row.operator,
    )


def _calls() -> Select[PlatformCall, str]:
    return select(PlatformCall, Station.name).join(Station, PlatformCall.station_id == Station.id)


class PlatformCalls:
    """The part of :class:`~provisioning.ledger.Ledger` that keeps the outbox of platform calls."""

    if TYPE_CHECKING:
        _station: str
        _station_id: int

        def _writing(self) -> AbstractContextManager[_Write]: ...

        def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Session]: ...

    def add_platform_call(
        self, method: str, request_no: str, biz: dict[str, Any], serial: str | None = None, *, sending: bool = False
    ) -> PlatformCallRecord:
        """Write a call ``pending`` before it is sent: ``biz`` is the business content as it will be sent, its
        request number ``request_no`` included.  ``sending``: it goes out next, counted as its first attempt
        (one write fewer than :meth:`platform_call_attempted`).  A request number already written is refused."""
        return self._add_platform_call(method, request_no, biz, serial, sending=sending, reuse=False)[0]

    def queue_platform_call(
        self, method: str, request_no: str, biz: dict[str, Any], serial: str | None = None
    ) -> tuple[PlatformCallRecord, bool]:
        """This station's call of ``method`` about ``serial`` still pending, as it is, and False; else the call
        written as :meth:`add_platform_call` does (counted as sent: it goes out next), and True.

        Looking and writing are one transaction under the chain lock, so two threads of one station never both
        write a call for one unit.  Only this station's pending calls are looked at: two stations sharing a
        ledger may each write (and send) a call for the same unit; keeping a unit on one station at a time is
        the flows' part.  A call without a serial is always written."""
        return self._add_platform_call(method, request_no, biz, serial, sending=True, reuse=serial is not None)

    def _add_platform_call(
        self, method: str, request_no: str, biz: dict[str, Any], serial: str | None, *, sending: bool, reuse: bool
    ) -> tuple[PlatformCallRecord, bool]:
        method, request_no = _method(method), _request_no(request_no)
        serial = None if serial is None else validate.serial(serial)
        clean = _object(biz, "biz")
        with self._writing() as write:
            if reuse:
                pending = write.session.execute(self._pending_calls(method, serial).limit(1)).first()
                if pending is not None:
                    return _record(pending[0], pending[1]), False
            found = write.session.scalars(select(PlatformCall.id).where(PlatformCall.request_no == request_no))
            if found.first() is not None:
                raise InvalidLedgerInput(field="request_no", detail=_("already written"))
            row = PlatformCall(
                request_no=request_no,
                method=method,
                serial=serial,
                biz=clean,
                state=PENDING,
                attempts=int(sending),
                created=write.at,
                updated=write.at,
                station_id=self._station_id,
                operator=write.operator,
            )
            write.session.add(row)
            write.audit(QUEUED, _subject(row), {"request_no": request_no, "method": method})
            return _record(row, self._station), True

    def platform_call_attempted(self, request_no: str) -> PlatformCallRecord:
        """Count one more sending of the call (before it goes out); a settled call is left as it is."""
        request_no = _request_no(request_no)
        with self._writing() as write:
            row, station = self._one(write.session, request_no)
            if row.state == PENDING:
                row.attempts, row.updated = row.attempts + 1, write.at
            return _record(row, station)

    def settle_platform_call(
        self, request_no: str, state: str, *, reply: dict[str, Any] | None = None, error: str | None = None
    ) -> PlatformCallRecord:
        """Mark a pending call ``done`` (with the platform's ``reply``) or ``refused`` (with the ``error``: code,
        sub-code and reason), blanking its face tokens.  A call abandoned while it was being sent is still marked
        ``done`` when the platform did it (audited with ``"abandoned": true``): the work happened, and a flow
        must find it rather than do it again; a refusal leaves it abandoned (done nowhere either way).  A call
        already settled (by another thread sending the same request number) is returned as it is, and nothing
        is written."""
        request_no = _request_no(request_no)
        if state not in SETTLED:
            raise InvalidLedgerInput(field="state", detail=_("must be one of {states}", states="done, refused"))
        clean = None if reply is None else _object(reply, "reply")
        text = None if error is None else validate.text(error, "error", limit=ERROR_LENGTH)
        with self._writing() as write:
            row, station = self._one(write.session, request_no)
            late = row.state == ABANDONED and state == "done"
            if row.state != PENDING and not late:
                return _record(row, station)
            row.state, row.updated = state, write.at
            row.biz, row.reply, row.error = _blanked(row.biz) or {}, _blanked(clean), text
            details: dict[str, Any] = {"request_no": request_no, "method": row.method, "attempts": row.attempts}
            if late:
                details["abandoned"] = True
            if text is not None:
                details["error"] = text
            write.audit(SETTLED[state], _subject(row), details)
            return _record(row, station)

    def platform_call(self, request_no: str) -> PlatformCallRecord | None:
        """The call written with ``request_no``, None if there is none."""
        query = _calls().where(PlatformCall.request_no == _request_no(request_no))
        with self._reading() as session:
            found = session.execute(query).first()
            return None if found is None else _record(found[0], found[1])

    def abandon_platform_call(self, request_no: str) -> PlatformCallRecord:
        """Mark a call of this station's still pending ``abandoned``: it is never sent again (an operator checked
        the platform, or its reply can never be used).  Its face tokens are blanked; audited as
        ``platform.call.abandoned``.  Any other call is refused with :class:`PlatformCallNotPending`."""
        request_no = _request_no(request_no)
        with self._writing() as write:
            row, station = self._one(write.session, request_no)
            if row.state != PENDING or row.station_id != self._station_id:
                raise PlatformCallNotPending(request_no=request_no, state=row.state, station=station)
            row.state, row.updated, row.biz = ABANDONED, write.at, _blanked(row.biz) or {}
            details = {"request_no": request_no, "method": row.method, "attempts": row.attempts}
            write.audit(ABANDONED_ACTION, _subject(row), details)
            return _record(row, station)

    def pending_platform_calls(self, method: str | None = None, serial: str | None = None) -> list[PlatformCallRecord]:
        """This station's calls not settled yet (of ``method``, about ``serial`` when given), oldest first: the
        order they are sent again in.  Another station's pending calls are its own to send: sent from here they
        would go out under this station's app and key, maybe while that station sends them too."""
        query = self._pending_calls(None if method is None else _method(method), serial)
        with self._reading() as session:
            return [_record(row, station) for row, station in session.execute(query)]

    def find_platform_call(self, method: str, serial: str, state: str | None = None) -> PlatformCallRecord | None:
        """The latest call of ``method`` about the unit ``serial`` (in ``state`` when given), None if none.
        A ``pending`` one is this station's (see :meth:`pending_platform_calls`); a settled one any station's."""
        query = _calls().where(PlatformCall.method == _method(method), PlatformCall.serial == validate.serial(serial))
        if state is not None:
            if state not in PLATFORM_CALL_STATES:
                detail = _("must be one of {states}", states=", ".join(PLATFORM_CALL_STATES))
                raise InvalidLedgerInput(field="state", detail=detail)
            query = query.where(PlatformCall.state == state)
            if state == PENDING:
                query = query.where(PlatformCall.station_id == self._station_id)
        query = query.order_by(PlatformCall.created.desc(), PlatformCall.id.desc()).limit(1)
        with self._reading() as session:
            found = session.execute(query).first()
            return None if found is None else _record(found[0], found[1])

    def _pending_calls(self, method: str | None, serial: str | None) -> Select[PlatformCall, str]:
        query = _calls().where(PlatformCall.state == PENDING, PlatformCall.station_id == self._station_id)
        if method is not None:
            query = query.where(PlatformCall.method == method)
        if serial is not None:
            query = query.where(PlatformCall.serial == validate.serial(serial))
        return query.order_by(PlatformCall.created, PlatformCall.id)

    @staticmethod
    def _one(session: Session, request_no: str) -> tuple[PlatformCall, str]:
        found = session.execute(_calls().where(PlatformCall.request_no == request_no)).first()
        if found is None:
            raise UnknownPlatformCall(request_no=request_no)
        return found[0], found[1]
