"""The station's client for the platform's gateway: pooled HTTPS, deadlines, retries, signature checks.

Each attempt is signed afresh (a new ``timestamp``, so a retry after minutes is not refused as a replay) and sent
over a pooled, TLS-verified connection: against ``ca_certificate`` when the configuration names one (and only
it), else the system's trust store; never through a proxy or with credentials the environment names, and no
cookie kept.  Each attempt has one wall-clock deadline, from connecting to the last byte of the reply.  Only
transient failures are tried again, with exponential backoff and jitter: a connection that fails or drops, a
deadline passed, HTTP 5xx, HTTP 429 (its ``Retry-After`` honoured up to ``max_backoff_seconds``) and the
gateway's ``Code.UNAVAILABLE``.  A refusal (:class:`PlatformRefused`) or a reply that cannot be trusted or used
(:class:`PlatformReplyInvalid`) is final: sending the same request again would get the same answer.  Write
methods are safe to retry because their request number makes them exactly-once at the platform (see
:mod:`provisioning.outbox`).

Nothing secret is logged or put in an error: no signature, key, token or business content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import http.cookiejar
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, ReadTimeoutError

from i18n import N_

from . import replies
from .config import PlatformConfig
from .errors import (
    PlatformNotTrusted,
    PlatformRefused,
    PlatformReplyInvalid,
    PlatformSignatureInvalid,
    PlatformUnavailable,
)
from .gateway import (
    MAX_BODY,
    BadSignature,
    Code,
    GatewayFormatError,
    Method,
    Signer,
    decode_response,
    load_public_key,
    now_timestamp,
    request_parameters,
    response_key,
)

LOG = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
MAX_SUB_MSG = 256
CODE = re.compile(r"[0-9]{5}")
CONNECTION_FAILED = N_("the connection failed")
CONNECTION_DROPPED = N_("the connection dropped before the whole reply")
NO_REPLY_IN_TIME = N_("no reply in time")
SERVER_ERROR = N_("the platform answered with a server error")
RATE_LIMITED = N_("the platform limited the station's request rate")
PLATFORM_BUSY = N_("the platform said it cannot serve the request now")


def tls_context(ca_certificate: str | None) -> ssl.SSLContext:
    """Verifies the platform's certificate and host name: against ``ca_certificate`` (PEM, loaded from memory)
    alone when given, else against the system's trust store."""
    context = ssl.create_default_context(cadata=ca_certificate) if ca_certificate else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _VerifiedAdapter(HTTPAdapter):
    """A pooled adapter whose every connection verifies TLS with one context, whatever ``verify`` or the
    environment (``REQUESTS_CA_BUNDLE``) says: a configured CA must not quietly widen to another bundle."""

    def __init__(self, context: ssl.SSLContext, pool_size: int) -> None:
        self._context = context
        super().__init__(pool_connections=1, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme, "https": _WatchedPool}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        pool.pop("ca_certs", None)
        pool.pop("ca_cert_dir", None)
        pool.update(ssl_context=self._context, cert_reqs="CERT_REQUIRED")
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED"


_ATTEMPT = threading.local()
"""The deadline of the attempt the calling thread is making (``deadline``), for :class:`_WatchedPool`."""


class _Deadline:
    """One attempt's wall-clock deadline, from connecting to the last byte of the reply.

    Per-read timeouts cannot bound an attempt (a server sending a header byte every ``timeout - ε`` keeps it
    open for ever), so a timer shuts the attempt's connection down when the deadline passes, wherever the
    attempt is: the TLS handshake, the status line, the headers or the body.  The blocked read then fails at
    once, and ``expired`` says why.  ``finish`` disarms it before the connection goes back to the pool, so a
    late timer never cuts a connection another attempt has taken."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._connection: Any = None
        self._over = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _ATTEMPT.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def watch(self, connection: Any) -> None:
        """The attempt goes over ``connection`` (a urllib3 connection: its ``sock`` is set once it connects)."""
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def finish(self) -> None:
        with self._lock:
            self._over = True
            self._connection = None
        self._timer.cancel()
        _ATTEMPT.deadline = None

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.expired = True
            if self._connection is not None:
                _shut(self._connection)


def _shut(connection: Any) -> None:
    """Shut the connection's socket down under any read blocked on it (the TLS layer left alone: another
    thread is inside it, and sees end of file)."""
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedPool(HTTPSConnectionPool):
    """A connection pool that hands each connection it uses, new or kept alive, to the calling thread's
    attempt deadline before connecting and again once connected: a deadline that passed while connecting
    (resolving, the TCP and TLS handshakes) found no socket to shut, so the second look shuts it then."""

    def _validate_conn(self, conn: Any) -> None:
        deadline = getattr(_ATTEMPT, "deadline", None)
        if deadline is not None:
            deadline.watch(conn)
        super()._validate_conn(conn)  # connects a new connection
        if deadline is not None:
            deadline.watch(conn)


class _Transient(Exception):
    """An attempt that may succeed if tried again; ``detail`` is a msgid, ``retry_after`` the server's wish."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after


class PlatformClient:
    """Calls the platform's gateway for one station (thread-safe: the connection pool is shared)."""

    def __init__(
        self,
        config: PlatformConfig,
        signer: Signer,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.25,
        max_backoff_seconds: float = 4.0,
        pool_size: int = 16,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1 or backoff_seconds < 0 or max_backoff_seconds < backoff_seconds or pool_size < 1:
            raise ValueError("attempts and pool_size must be at least 1, 0 <= backoff_seconds <= max_backoff_seconds")
        if not config.url.lower().startswith("https://"):
            raise ValueError("the platform is reached over HTTPS only")  # PlatformConfig.read refuses others too
        self._config = config
        self._signer = signer
        self._public_key = load_public_key(config.platform_public_key)
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._sleep = sleep
        self._random = random.Random()
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy, .netrc credentials or CA bundle from the environment
        self._session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # none kept
        self._session.headers.update({"Accept-Encoding": "identity", "User-Agent": "naiad-station"})
        self._session.mount("https://", _VerifiedAdapter(tls_context(config.ca_certificate), pool_size))

    def call(self, method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``biz`` to ``method`` and return the checked success response object.

        Raises PlatformRefused, PlatformReplyInvalid (PlatformSignatureInvalid), or PlatformUnavailable once
        every attempt met a transient failure (PlatformNotTrusted at once: a certificate is not transient)."""
        method = Method(method)
        for attempt in range(1, self._attempts + 1):
            try:
                return self._attempt(method, biz)
            except _Transient as transient:
                if attempt == self._attempts:
                    LOG.warning("%s: %s (attempt %d, giving up)", method, transient.detail, attempt)
                    raise PlatformUnavailable(method=str(method), attempts=attempt, detail=transient.detail) from None
                delay = self._delay(attempt, transient.retry_after)
                LOG.info("%s: %s (attempt %d), again in %.2f s", method, transient.detail, attempt, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (half fixed, half random), at least the server's ``Retry-After``;
        never more than ``max_backoff_seconds``."""
        ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return float(min(delay, self._max_backoff))

    def _attempt(self, method: Method, biz: Mapping[str, Any]) -> dict[str, Any]:
        config = self._config
        params = request_parameters(config.app_id, method, biz, self._signer, now_timestamp(self._clock()))
        with _Deadline(2 * config.timeout_seconds) as deadline:  # to connect, then for the whole reply
            try:
                response = self._session.post(
                    config.url,
                    data=params,
                    timeout=(config.timeout_seconds, config.timeout_seconds),
                    stream=True,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise _failed(method, exc, deadline) from None
            with response:
                try:
                    body = self._body(method, response, deadline)
                finally:
                    deadline.finish()  # before the connection goes back to the pool
        try:
            reply = decode_response(response_key(method), body, self._public_key)
        except BadSignature:
            raise PlatformSignatureInvalid(
                method=str(method), field="sign", detail=N_("the signature does not verify")
            ) from None
        except GatewayFormatError:
            raise PlatformReplyInvalid(
                method=str(method), field="body", detail=N_("not the gateway's reply format")
            ) from None
        code = reply.get("code")
        if code == Code.SUCCESS:
            replies.check_success(method, biz, reply)
            return reply
        if code == Code.UNAVAILABLE:
            raise _Transient(PLATFORM_BUSY)
        replies.check_refusal(method, biz, reply)
        raise _refusal(method, reply)

    def _body(self, method: Method, response: requests.Response, deadline: _Deadline) -> bytes:
        """The reply's body, refused unread past MAX_BODY; transient statuses and a reply cut short or too slow
        raise _Transient."""
        status = response.status_code
        if status == 429 or status >= 500:
            wait = self._retry_after(response.headers.get("Retry-After"))
            raise _Transient(RATE_LIMITED if status == 429 else SERVER_ERROR, wait)
        if status != 200:
            raise PlatformReplyInvalid(
                method=str(method), field=f"HTTP {status}", detail=N_("the gateway answered with an unexpected status")
            )
        too_large = PlatformReplyInvalid(method=str(method), field="body", detail=N_("larger than the gateway allows"))
        length = response.headers.get("Content-Length", "0").strip()
        if not (length.isascii() and length.isdigit()):
            raise PlatformReplyInvalid(method=str(method), field="Content-Length", detail=replies.WRONG_FORM)
        if int(length) > MAX_BODY:
            raise too_large
        if response.headers.get("Content-Encoding", "identity").strip().lower() not in ("identity", ""):
            raise PlatformReplyInvalid(method=str(method), field="Content-Encoding", detail=replies.WRONG_FORM)
        body = bytearray()
        try:
            while chunk := response.raw.read1(READ_CHUNK, decode_content=False):  # what has come, not a full chunk
                body += chunk
                if len(body) > MAX_BODY:
                    raise too_large
        except (ReadTimeoutError, requests.Timeout):
            raise _Transient(NO_REPLY_IN_TIME) from None
        except (HTTPError, requests.RequestException, OSError):
            raise _Transient(NO_REPLY_IN_TIME if deadline.expired else CONNECTION_DROPPED) from None
        if deadline.expired:  # cut off: a reply trickling in is no reply
            raise _Transient(NO_REPLY_IN_TIME)
        return bytes(body)

    def _retry_after(self, value: str | None) -> float | None:
        """``Retry-After`` in seconds (delta-seconds or an HTTP date), None when absent or not understood."""
        if value is None:
            return None
        value = value.strip()
        if value.isascii() and value.isdigit():
            return float(int(value[:6]))
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, (when - self._clock()).total_seconds())


def _refusal(method: Method, reply: Mapping[str, Any]) -> PlatformRefused | PlatformReplyInvalid:
    """The refusal an error reply carries, its platform text cut to printable characters."""
    code, sub_code, sub_msg = reply.get("code"), reply.get("sub_code", ""), reply.get("sub_msg", "")
    if not isinstance(code, str) or not CODE.fullmatch(code):
        return PlatformReplyInvalid(method=str(method), field="code", detail=replies.WRONG_FORM)
    if not isinstance(sub_code, str) or not (sub_code == "" or replies.SUB_CODE.fullmatch(sub_code)):
        return PlatformReplyInvalid(method=str(method), field="sub_code", detail=replies.WRONG_FORM)
    if not isinstance(sub_msg, str):
        return PlatformReplyInvalid(method=str(method), field="sub_msg", detail=replies.WRONG_FORM)
    text = "".join(c if c.isprintable() else " " for c in sub_msg)[:MAX_SUB_MSG]
    return PlatformRefused(method=str(method), code=code, sub_code=sub_code, sub_msg=text)


def _failed(method: Method, exc: requests.RequestException, deadline: _Deadline) -> Exception:
    """What a request that got no response means: the deadline passed, the certificate refused, the connection
    failed (nothing sent) or dropped (the request may have arrived)."""
    if deadline.expired or isinstance(exc, requests.Timeout):
        return _Transient(NO_REPLY_IN_TIME)
    if _certificate_refused(exc):
        return PlatformNotTrusted(method=str(method))
    connected = not _caused_by(exc, NewConnectionError)
    return _Transient(CONNECTION_DROPPED if connected else CONNECTION_FAILED)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts and the exceptions requests and urllib3 keep in args/reason."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [item for item in linked if isinstance(item, BaseException)]


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(item, kind) for item in _causes(exc))


def _certificate_refused(exc: BaseException) -> bool:
    return _caused_by(exc, ssl.SSLCertVerificationError)
