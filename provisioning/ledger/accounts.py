"""Operators' credentials and CLI sessions in the ledger: storage only, every change audited.

The policy (hashing, lockout, who may do what) lives in :mod:`provisioning.operators`; this module
stores what it is handed.  Password hashes and token hashes are opaque text here, never put in an
audit entry's details (the rows are sealed like every other, so an edited hash is found by ``verify``).
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from i18n import _

from . import validate
from .encoding import iso_utc
from .errors import BootstrapClosed, InvalidLedgerInput, OperatorExists, UnknownOperator
from .models import Operator, OperatorSession
from .records import Credentials, OperatorRecord, SessionRecord

if TYPE_CHECKING:
    from .ledger import _Write

HASH_TEXT_LIMIT = 255


def _hash_text(value: str, field: str) -> str:
    if not value or len(value) > HASH_TEXT_LIMIT or not value.isascii() or not value.isprintable():
        raise InvalidLedgerInput(field=field, detail=_("not a stored hash"))
    return value


def _operator(write: _Write, name: str) -> Operator:
    row = write.session.scalars(select(Operator).where(Operator.name == name)).one_or_none()
    if row is None:
        raise UnknownOperator(operator=name)
    return row


class Accounts:
    """The part of :class:`~provisioning.ledger.Ledger` that keeps operators' credentials and sessions."""

    if TYPE_CHECKING:

        def _writing(self) -> AbstractContextManager[_Write]: ...

        def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Session]: ...

    def operators(self) -> list[OperatorRecord]:
        """Every operator by name, with whether they are disabled and can log in (never their hash)."""
        with self._reading() as session:
            return [
                OperatorRecord(
                    row.name,
                    row.role,
                    row.created,
                    row.disabled is not None,
                    row.password_hash is not None,
                    row.failed_logins,
                )
                for row in session.scalars(select(Operator).order_by(Operator.name))
            ]

    def credentials(self, name: str) -> Credentials | None:
        """What a login check needs, None when there is no such operator."""
        name = validate.label(name, "operator")
        with self._reading() as session:
            row = session.scalars(select(Operator).where(Operator.name == name)).one_or_none()
            if row is None:
                return None
            return Credentials(row.name, row.role, row.disabled is not None, row.failed_logins, row.password_hash)

    def admin_can_log_in(self) -> bool:
        """Whether an active admin with a password exists; until one does, the first admin is made freely."""
        with self._reading() as session:
            return _admin_can_log_in(session)

    def add_operator(self, name: str, role: str, password_hash: str, *, bootstrap: bool = False) -> OperatorRecord:
        """A new operator with a password; ``bootstrap`` refuses if an admin who can log in exists."""
        name = validate.label(name, "operator")
        role = validate.role(role)
        password_hash = _hash_text(password_hash, "password_hash")
        with self._writing() as write:
            if bootstrap and _admin_can_log_in(write.session):
                raise BootstrapClosed()
            if write.session.scalars(select(Operator.id).where(Operator.name == name)).first() is not None:
                raise OperatorExists(operator=name)
            row = Operator(name=name, role=role, created=write.at, password_hash=password_hash, failed_logins=0)
            write.session.add(row)
            write.audit("operator.registered", f"operator:{name}", {"role": role, "bootstrap": bootstrap})
            return OperatorRecord(name, role, row.created, False, True, 0)

    def set_password(self, name: str, password_hash: str) -> None:
        """Replace the operator's password hash; clears the failed-login count (unlocks)."""
        name = validate.label(name, "operator")
        password_hash = _hash_text(password_hash, "password_hash")
        with self._writing() as write:
            row = _operator(write, name)
            row.password_hash, row.failed_logins = password_hash, 0
            write.audit("operator.password_set", f"operator:{name}", {})

    def disable_operator(self, name: str) -> None:
        """Mark the operator disabled and end their open sessions."""
        name = validate.label(name, "operator")
        with self._writing() as write:
            row = _operator(write, name)
            if row.disabled is None:
                row.disabled = write.at
            ended = 0
            for open_session in write.session.scalars(
                select(OperatorSession).where(OperatorSession.operator_id == row.id, OperatorSession.ended.is_(None))
            ):
                open_session.ended = write.at
                ended += 1
            write.audit("operator.disabled", f"operator:{name}", {"sessions_ended": ended})

    def login_failed(self, name: str) -> int:
        """Count a failed login of ``name``; the count so far."""
        name = validate.label(name, "operator")
        with self._writing() as write:
            row = _operator(write, name)
            row.failed_logins += 1
            # nobody is authenticated: the entry names the operator only as its subject
            write.audit("operator.login_failed", f"operator:{name}", {"failed_logins": row.failed_logins})
            return row.failed_logins

    def logged_in(self, name: str, token_hash: str | None = None, expires: dt.datetime | None = None) -> int | None:
        """Record a successful login (clearing the failed count); with a token, open a session: its id."""
        name = validate.label(name, "operator")
        with self._writing() as write:
            row = _operator(write, name)
            row.failed_logins = 0
            details: dict[str, object] = {}
            session_id = None
            if token_hash is not None and expires is not None:
                opened = OperatorSession(
                    operator_id=row.id,
                    token_hash=_hash_text(token_hash, "token_hash"),
                    created=write.at,
                    expires=expires,
                )
                write.session.add(opened)
                write.session.flush()
                session_id = opened.id
                details = {"session": session_id, "expires": iso_utc(expires)}
            write.audit("operator.logged_in", f"operator:{name}", details, name)
            return session_id

    def session_by_token(self, token_hash: str) -> SessionRecord | None:
        """The session whose token hashes to ``token_hash``, None if there is none."""
        with self._reading() as session:
            found = session.execute(
                select(OperatorSession, Operator)
                .join(Operator, OperatorSession.operator_id == Operator.id)
                .where(OperatorSession.token_hash == token_hash)
            ).one_or_none()
            if found is None:
                return None
            row, who = found
            return SessionRecord(row.id, who.name, who.role, who.disabled is not None, row.expires, row.ended)

    def end_session(self, session_id: int) -> None:
        """Log out: the session's token no longer opens anything."""
        with self._writing() as write:
            row = write.session.get(OperatorSession, session_id)
            if row is None or row.ended is not None:
                return
            row.ended = write.at
            who = write.session.get(Operator, row.operator_id)
            name = who.name if who is not None else None
            write.audit("operator.logged_out", f"operator:{name}", {"session": session_id}, name)


def _admin_can_log_in(session: Session) -> bool:
    query = select(Operator.id).where(
        Operator.role == "admin", Operator.disabled.is_(None), Operator.password_hash.is_not(None)
    )
    return session.scalars(query.limit(1)).first() is not None
