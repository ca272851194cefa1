"""Operators who log in: password hashing, sessions and the one role check every privileged action calls.

- Passwords are hashed with scrypt (``hashlib.scrypt``), a random 16-byte salt per operator, and the
  parameters stored with the hash (``scrypt$n$r$p$salt$hash``), so they can be raised later without
  breaking stored hashes; the comparison is constant-time.
- A CLI session is either a password asked on the terminal (``naiad --operator NAME``) or a short-lived
  token from ``naiad operator login`` in ``NAIAD_OPERATOR``.  The ledger stores only the token's SHA-256
  with its expiry; the operator's role and disabled mark are read afresh on every use.
- ``MAX_FAILED_LOGINS`` failures in a row lock the operator (counted in the ledger, so across stations)
  until an admin sets a new password; no sleeping.
- :func:`require_role` is the check: operator admin needs ``admin``, key injection ``operator`` and the
  key ceremony ``custodian``.  Roles do not nest: an admin is not a custodian, so dual control holds.

Nothing here logs, raises or returns a password, a hash or a token, except the token handed to the
operator once by :func:`open_session`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from i18n import N_
from terminal.errors import NaiadError

from .ledger import Credentials, Ledger

SCRYPT_N = 2**15  # 32 MiB and about 0.2 s a check on the dev VM: slow for a guesser, fine for a person
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_SCRYPT_N = 2**20  # a stored hash asking for more is refused rather than exhausting memory
MAX_FAILED_LOGINS = 5
SESSION_MINUTES = 30
MAX_SESSION_MINUTES = 12 * 60
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "naiad_"

ROLE_ADMIN = "admin"
ROLE_OPERATOR = "operator"  # key injection
ROLE_CUSTODIAN = "custodian"  # key ceremony


class OperatorError(NaiadError):
    """Root of login and role errors.  Parameters name operators and roles, never a secret."""

    message = N_("Operator check failed")


class NotLoggedIn(OperatorError):
    message = N_("This needs a logged-in operator")
    remedy = N_(
        "Run it with --operator NAME (the password is asked), or set NAIAD_OPERATOR to a token from "
        "'naiad operator login NAME'."
    )


class SessionExpired(NotLoggedIn):
    message = N_("The session token in NAIAD_OPERATOR is not valid any more (expired, ended or unknown)")
    remedy = N_("Log in again with 'naiad operator login NAME' and set NAIAD_OPERATOR to the new token.")


class BadCredentials(OperatorError):
    message = N_("Wrong operator name or password")
    remedy = N_(
        "Check the name and type the password again; after several failures the operator is locked until "
        "an admin sets a new password."
    )


class OperatorLocked(BadCredentials):
    message = N_("Operator {operator} is locked after too many failed logins")
    remedy = N_("Ask an admin to set a new password with 'naiad operator passwd {operator}'.")


class OperatorDisabled(OperatorError):
    message = N_("Operator {operator} is disabled")
    remedy = N_("Ask an admin; a disabled operator cannot log in or act.")


class RoleRequired(OperatorError):
    message = N_("This needs the {role} role; operator {operator} has the {actual} role")
    remedy = N_("Log in as an operator with the {role} role.")


class RolesRequired(RoleRequired):
    message = N_("This needs one of the roles {roles}; operator {operator} has the {actual} role")
    remedy = N_("Log in as an operator with one of the roles {roles}.")


class FirstOperatorNotAdmin(RoleRequired):
    message = N_("The first operator of a ledger must have the admin role, not {role}")
    remedy = N_("Add an admin first ('naiad operator add NAME --role admin'), then log in as them to add others.")


class WeakPassword(OperatorError):
    message = N_("The password is too short: it needs at least {length} characters")
    remedy = N_("Choose a longer password, a passphrase of several words for example.")


@dataclass(frozen=True)
class OperatorSession:
    """An authenticated operator; ``session_id`` is set when it came from a token."""

    operator: str
    role: str
    session_id: int | None = None


# -- passwords ---------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) of ``password`` with a fresh random salt."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(length=MIN_PASSWORD_LENGTH)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; a missing or unreadable hash still costs one scrypt."""
    try:
        kind, n_text, r_text, p_text, salt_hex, hash_hex = (stored or "").split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
        if (
            kind != "scrypt"
            or not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16)
            or len(expected) != HASH_BYTES
        ):
            raise ValueError(kind)
    except ValueError:
        _scrypt(password, b"\0" * SALT_BYTES, SCRYPT_N, SCRYPT_R, SCRYPT_P)  # same cost as a real check
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * (n + p + 2), dklen=HASH_BYTES
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- logging in -----------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _checked(ledger: Ledger, name: str, password: str) -> Credentials:
    """The operator's record if ``password`` is theirs; a failure is counted, and enough of them lock."""
    found = ledger.credentials(name)
    if found is not None and found.failed_logins >= MAX_FAILED_LOGINS:
        raise OperatorLocked(operator=found.name)
    if not check_password(password, None if found is None else found.password_hash) or found is None:
        if found is not None and ledger.login_failed(found.name) >= MAX_FAILED_LOGINS:
            raise OperatorLocked(operator=found.name)
        raise BadCredentials()
    if found.disabled:
        raise OperatorDisabled(operator=found.name)
    return found


def login(ledger: Ledger, name: str, password: str) -> OperatorSession:
    """A password session for one command: ``name``'s password checked, the login audited."""
    found = _checked(ledger, name, password)
    ledger.logged_in(found.name)
    return OperatorSession(found.name, found.role)


def open_session(
    ledger: Ledger, name: str, password: str, minutes: int = SESSION_MINUTES, now: dt.datetime | None = None
) -> tuple[OperatorSession, str, dt.datetime]:
    """Log in and open a token session: (session, token, expiry).  The token is shown once, stored hashed."""
    minutes = max(1, min(minutes, MAX_SESSION_MINUTES))
    found = _checked(ledger, name, password)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = (now or _now()) + dt.timedelta(minutes=minutes)
    session_id = ledger.logged_in(found.name, _token_hash(token), expires)
    return OperatorSession(found.name, found.role, session_id), token, expires


def resume_session(ledger: Ledger, token: str, now: dt.datetime | None = None) -> OperatorSession:
    """The session a token from ``open_session`` stands for, with the operator's current role."""
    found = ledger.session_by_token(_token_hash(token.strip())) if token.strip() else None
    if found is None or found.ended is not None or found.expires <= (now or _now()):
        raise SessionExpired()
    if found.operator_disabled:
        raise OperatorDisabled(operator=found.operator)
    return OperatorSession(found.operator, found.role, found.id)


def close_session(ledger: Ledger, session: OperatorSession) -> None:
    """Log out: end the token session (a password session has nothing to end)."""
    if session.session_id is not None:
        ledger.end_session(session.session_id)


def require_role(session: OperatorSession | None, role: str, *others: str) -> OperatorSession:
    """The check every privileged action makes first: a logged-in operator with ``role`` (or one of
    ``others``, for an action several roles may take)."""
    if session is None:
        raise NotLoggedIn()
    if session.role == role or session.role in others:
        return session
    if others:
        raise RolesRequired(roles=", ".join((role, *others)), operator=session.operator, actual=session.role)
    raise RoleRequired(role=role, operator=session.operator, actual=session.role)


# -- operator administration --------------------------------------------------------------------------


def may_add(ledger: Ledger, session: OperatorSession | None, role: str) -> bool:
    """Refuse unless ``session`` is an admin's, or this is the bootstrap: True for the bootstrap.

    The bootstrap is the first admin, made without a login while no admin can log in."""
    if session is not None:
        require_role(session, ROLE_ADMIN)
        return False
    if ledger.admin_can_log_in():
        raise NotLoggedIn()
    if role != ROLE_ADMIN:
        raise FirstOperatorNotAdmin(role=role)
    return True


def add_operator(ledger: Ledger, session: OperatorSession | None, name: str, role: str, password: str) -> None:
    """Add an operator: by an admin, or as the bootstrap (see :func:`may_add`)."""
    bootstrap = may_add(ledger, session, role)
    password_hash = hash_password(password)
    if session is not None:
        ledger = _acting(ledger, session)
    ledger.add_operator(name, role, password_hash, bootstrap=bootstrap)


def may_change_password(session: OperatorSession | None, name: str) -> OperatorSession:
    """Refuse unless ``session`` is ``name``'s own or an admin's."""
    if session is None or session.operator != name:
        return require_role(session, ROLE_ADMIN)
    return session


def change_password(ledger: Ledger, session: OperatorSession | None, name: str, password: str) -> None:
    """Set ``name``'s password: an operator their own, an admin anyone's (which also unlocks them)."""
    _acting(ledger, may_change_password(session, name)).set_password(name, hash_password(password))


def disable_operator(ledger: Ledger, session: OperatorSession | None, name: str) -> None:
    """Disable ``name`` (admin only) and end their sessions."""
    _acting(ledger, require_role(session, ROLE_ADMIN)).disable_operator(name)


def _acting(ledger: Ledger, session: OperatorSession) -> Ledger:
    """``ledger`` writing as the session's operator, so the audit entries name who did it."""
    return ledger if ledger.operator == session.operator else ledger.as_operator(session.operator)
