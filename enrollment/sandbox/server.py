"""The sandbox platform as a running HTTPS server: :class:`Sandbox` (for tests, the bench, demos and the CLI).

uvicorn serves the Starlette application in a background thread over a socket bound before it starts (so port
0 gets a free port and a port in use is an error at once).  TLS uses the certificate the sandbox's own CA
issued (:mod:`.tls`); its key file exists only while the TLS context loads it.  Only a named address of this
machine is named in the certificate and the station configuration; a wildcard host listens everywhere but
names loopback (docs/platform-api.md).
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn
from cryptography.exceptions import UnsupportedAlgorithm
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from i18n import N_

from ..config import Merchant, PlatformConfig
from ..errors import EnrollmentError
from ..gateway import GATEWAY_PATH, GatewayFormatError, load_public_key, rsa_signer
from .app import build_app, load_handlers
from .database import Database, DatabaseInUse, NotASandboxDatabase
from .dispatch import Gateway
from .faults import FaultPlan, Faults
from .models import App
from .seed import APP_ID, SUPPLIER_ID, TERMINAL_APP_ID, TEST_MERCHANT, seed, seed_terminal_key
from .tls import Credentials, credentials

LOG = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
GRACE_SECONDS = 1.0
SHUTDOWN_TICK_SECONDS = 0.25
"""Time for the server to see the stop and close its listeners (its loop looks every 0.1 s, then waits 0.1 s)."""
"""How long requests under way get to finish when the sandbox stops, beyond a latency spike's length."""
WILDCARD_HOSTS = ("0.0.0.0", "::")

__all__ = ["Faults", "Sandbox", "SandboxError"]


class SandboxError(EnrollmentError):
    message = N_("The sandbox platform could not start")
    remedy = N_("Check the options of 'naiad platform serve' and try again.")


class SandboxPortInUse(SandboxError):
    message = N_("The sandbox platform cannot listen on {host}:{port}: {reason}")
    remedy = N_("Choose another --port (or stop the program using this one), or use --port 0 for a free port.")
    msgid_params = ("reason",)


class SandboxHostInvalid(SandboxError):
    message = N_("The sandbox platform cannot listen on the address '{host}': {reason}")
    remedy = N_("Check --host: give an address of this machine, such as 127.0.0.1.")
    msgid_params = ("reason",)


class SandboxDatabaseUnusable(SandboxError):
    message = N_("The sandbox database {path} cannot be used: {reason}")
    remedy = N_("Choose a --db path in a directory you may write to, or remove a file that is not a sandbox database.")
    msgid_params = ("reason",)


class SandboxDatabaseForeign(SandboxError):
    message = N_("The file {path} is not a sandbox database")
    remedy = N_(
        "Give --db a new file (the sandbox creates it) or one an earlier 'naiad platform serve' made; "
        "the sandbox does not change other files."
    )


class SandboxDatabaseInUse(SandboxError):
    message = N_("The sandbox database {path} is in use by another sandbox platform")
    remedy = N_("Stop the other 'naiad platform serve' using this --db, or give another --db.")


class SandboxConfigOverDatabase(SandboxError):
    message = N_("The station configuration {path} would replace the sandbox database")
    remedy = N_("Give --station-config a file other than --db.")


class SandboxTerminalConfigOverFile(SandboxError):
    message = N_("The terminal configuration {path} would replace the sandbox database or the station configuration")
    remedy = N_("Give --terminal-config a file other than --db and --station-config.")


class SandboxDidNotStop(SandboxError):
    message = N_("The sandbox platform did not stop in time")
    remedy = N_("End the program; the database stays consistent (each request is one transaction).")


class SandboxAppKeyInvalid(SandboxError):
    message = N_("The app key for {app_id} is not usable: {reason}")
    remedy = N_("Give the PEM public key of an RSA key of 2048 bits or more ('naiad platform keygen' prints one).")
    msgid_params = ("reason",)


class SandboxAppUnknown(SandboxError):
    message = N_("The sandbox has no app {app_id}")
    remedy = N_("Use the seeded app id 2026000000000001.")


class SandboxAppKeyFixed(SandboxError):
    message = N_("The key of the sandbox's terminal app {app_id} is the sandbox's own and cannot be set")
    remedy = N_(
        "Give the station's key to the station app 2026000000000001; simulated units get the terminal app's "
        "key from 'naiad platform serve --terminal-config FILE'."
    )


def checked_app_key(app_id: str, public_key_pem: str) -> str:
    """``public_key_pem`` once checked to be an RSA public key of 2048 bits or more, for ``app_id``."""
    try:
        load_public_key(public_key_pem)
    except GatewayFormatError:
        raise SandboxAppKeyInvalid(
            app_id=app_id, reason=N_("not an RSA public key of 2048 bits or more (PEM)")
        ) from None
    return public_key_pem.strip() + "\n"


class _NoTraceback(logging.Filter):
    """uvicorn's records without their tracebacks: nothing of a request cut short reaches the terminal as one."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


_NO_TRACEBACK = _NoTraceback()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sandbox:
    """A running sandbox platform; :meth:`start` returns once it serves, :meth:`stop` (or ``with``) ends it."""

    def __init__(
        self, database: Database, server: uvicorn.Server, thread: threading.Thread, plan: FaultPlan, **facts: str
    ) -> None:
        self._database, self._server, self._thread, self._plan = database, server, thread, plan
        self.base_url = facts["base_url"]
        self.url = self.base_url + GATEWAY_PATH
        self.ca_certificate = facts["ca_certificate"]
        self.platform_public_key = facts["platform_public_key"]
        self._terminal_private_key = facts["terminal_private_key"]

    @classmethod
    def start(
        cls,
        db: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> Sandbox:
        """Open (or create and seed) the database ``db`` and serve the gateway on ``host:port`` in a thread."""
        clock = clock or _utc_now
        load_handlers()
        logging.getLogger("uvicorn.error").addFilter(_NO_TRACEBACK)  # once: the same filter is not added twice
        listener = _listen(host, port)  # first: a port in use is refused before any work
        database: Database | None = None
        try:
            database, made = _open(Path(db), host, clock)
            plan = FaultPlan(faults or Faults())
            gateway = Gateway(database, rsa_signer(made.signing_key), clock)
            config = uvicorn.Config(
                build_app(gateway, plan, database),
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=None,  # stop() gives the grace, then forces the exit
            )
            _load_tls(config, made.tls_certificate, made.tls_key)
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [listener]}, name="naiad-sandbox", daemon=True
            )
            thread.start()
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    raise SandboxError()
                time.sleep(0.01)
        except BaseException:
            listener.close()
            if database is not None:
                database.close()
            raise
        bound_port = listener.getsockname()[1]
        shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard: loopback
        return cls(
            database,
            server,
            thread,
            plan,
            base_url=f"https://[{shown}]:{bound_port}" if ":" in shown else f"https://{shown}:{bound_port}",
            ca_certificate=made.ca_certificate,
            platform_public_key=made.platform_public_key,
            terminal_private_key=made.terminal_private_key,
        )

    @property
    def faults(self) -> Faults:
        return self._plan.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._plan.faults = faults

    def set_app_key(self, app_id: str, public_key_pem: str) -> None:
        """Set the public key ``app_id``'s requests are checked with (its station's key)."""
        if app_id == TERMINAL_APP_ID:
            raise SandboxAppKeyFixed(app_id=app_id)
        checked = checked_app_key(app_id, public_key_pem)
        with self._database.write() as session:
            app = session.get(App, app_id)
            if app is None:
                raise SandboxAppUnknown(app_id=app_id)
            app.public_key = checked

    def station_config(self, key_label: str | None = None) -> PlatformConfig:
        """What a station needs to talk to this sandbox as its seeded app, with the test merchant."""
        return PlatformConfig(
            url=self.url,
            app_id=APP_ID,
            key_label=key_label or f"platform-{APP_ID}",
            supplier_id=SUPPLIER_ID,
            platform_public_key=self.platform_public_key,
            ca_certificate=self.ca_certificate,
            test_merchant=Merchant(*TEST_MERCHANT),
        )

    def terminal_config(self) -> dict[str, str]:
        """What a simulated unit's face-pay app needs to open face sessions here as the seeded terminal app:
        ``url``, ``ca_certificate``, ``platform_public_key``, ``app_id`` and ``private_key`` (PEM).  The private
        key is a sandbox test credential, kept in the sandbox database; keep the file written from it owner-only."""
        return {
            "url": self.url,
            "ca_certificate": self.ca_certificate,
            "platform_public_key": self.platform_public_key,
            "app_id": TERMINAL_APP_ID,
            "private_key": self._terminal_private_key,
        }

    def stop(self) -> None:
        """Stop serving: requests under way get GRACE_SECONDS more than a latency spike to finish; then the
        connections still open are closed with nothing sent (app.py), and handlers still running in worker
        threads get GRACE_SECONDS more before the database is closed.  SandboxDidNotStop if the server thread or
        a handler is still running after that (the database and its lock are then left open under it)."""
        faults = self._plan.faults
        self._server.should_exit = True
        deadline = time.monotonic() + GRACE_SECONDS + (faults.latency_seconds if faults.latency_rate > 0 else 0.0)
        self._thread.join(SHUTDOWN_TICK_SECONDS)  # the server closes its listeners: no request starts after this
        while self._thread.is_alive() and self._server.server_state.tasks and time.monotonic() < deadline:
            self._thread.join(0.05)  # requests under way finish
        # An idle keep-alive TLS connection a client has not closed would hold the server for the whole grace:
        # with no request left to finish there is nothing to wait for.
        self._server.force_exit = True
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive() or not self._database.close(wait=GRACE_SECONDS):
            raise SandboxDidNotStop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _open(path: Path, host: str, clock: Callable[[], dt.datetime]) -> tuple[Database, Credentials]:
    """The sandbox database at ``path``, seeded, and the platform's credentials (made on first start)."""
    try:
        database = Database(path)
    except DatabaseInUse:
        raise SandboxDatabaseInUse(path=str(path)) from None
    except NotASandboxDatabase:
        raise SandboxDatabaseForeign(path=str(path)) from None
    except OSError as exc:
        raise SandboxDatabaseUnusable(path=str(path), reason=_os_reason(exc)) from None
    except (sqlite3.Error, SQLAlchemyError) as exc:
        raise SandboxDatabaseUnusable(path=str(path), reason=_database_reason(exc)) from None
    try:
        with database.write() as session:
            seed(session, clock().astimezone(dt.UTC))
            made = credentials(session, host)
            seed_terminal_key(session, made.terminal_public_key)
            return database, made
    except (SQLAlchemyError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        database.close()
        raise SandboxDatabaseUnusable(path=str(path), reason=_database_reason(exc)) from None
    except BaseException:
        database.close()
        raise


OS_REASONS = {
    errno.EADDRINUSE: N_("the port is in use"),
    errno.EACCES: N_("permission denied"),
    errno.EPERM: N_("permission denied"),
    errno.ENOENT: N_("no such file or directory"),
    errno.EROFS: N_("the file system is read-only"),
    errno.EADDRNOTAVAIL: N_("the address is not one of this machine's"),
    errno.EISDIR: N_("the path is a directory"),
    errno.ENOTDIR: N_("a part of the path is not a directory"),
    errno.ENOSPC: N_("the disk is full"),
    errno.ELOOP: N_("the path has too many symbolic links"),
    errno.ENAMETOOLONG: N_("the path is too long"),
}
"""Translatable reasons for the system's refusals, by errno."""

DATABASE_REASONS = {
    sqlite3.SQLITE_BUSY: N_("the database is locked by another program"),
    sqlite3.SQLITE_LOCKED: N_("the database is locked by another program"),
    sqlite3.SQLITE_CANTOPEN: N_("the database file cannot be opened"),
    sqlite3.SQLITE_CORRUPT: N_("the database file is damaged"),
    sqlite3.SQLITE_NOTADB: N_("the file is not a database"),
    sqlite3.SQLITE_FULL: N_("the disk is full"),
    sqlite3.SQLITE_READONLY: N_("the database file is read-only"),
    sqlite3.SQLITE_PERM: N_("permission denied"),
    sqlite3.SQLITE_IOERR: N_("the disk could not be read or written"),
}
"""Translatable reasons for SQLite's refusals, by primary result code."""

OTHER_REASON = N_("the system refused it (details are in the log)")


def _database_reason(exc: Exception) -> str:
    """A translatable reason for a refusal by SQLite or a damaged stored key (never SQLite's English text)."""
    if isinstance(exc, ValueError | TypeError | UnsupportedAlgorithm):  # tls.py: a stored PEM that does not load
        return N_("a stored platform key or certificate is damaged")
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(error, "sqlite_errorcode", None)
    reason = DATABASE_REASONS.get(code & 0xFF) if isinstance(code, int) else None  # the primary result code
    return reason or _other(exc)


def _os_reason(exc: OSError) -> str:
    """A translatable reason for a refusal by the system (never its English text or errno name)."""
    return OS_REASONS.get(exc.errno or 0) or _other(exc)


def _other(exc: Exception) -> str:
    LOG.warning("sandbox platform: refused by the system: %r", exc)
    return OTHER_REASON


def _listen(host: str, port: int) -> socket.socket:
    if not host.strip():
        raise SandboxHostInvalid(host=host, reason=N_("the address is empty"))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY on TCP only
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except socket.gaierror:
        listener.close()
        raise SandboxHostInvalid(host=host, reason=N_("no such address")) from None
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise SandboxHostInvalid(host=host, reason=_os_reason(exc)) from None
        raise SandboxPortInUse(host=host, port=port, reason=_os_reason(exc)) from None
    return listener


def _load_tls(config: uvicorn.Config, certificate: str, key: str) -> None:
    """Load ``config`` with the TLS chain and key, from files that exist only while it reads them."""
    with tempfile.TemporaryDirectory(prefix="naiad-sandbox-tls-") as folder:
        cert_file, key_file = Path(folder, "chain.pem"), Path(folder, "key.pem")
        cert_file.write_text(certificate, encoding="ascii")
        key_file.touch(mode=0o600)
        key_file.write_text(key, encoding="ascii")
        config.ssl_certfile, config.ssl_keyfile = str(cert_file), str(key_file)
        config.load()
