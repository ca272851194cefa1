"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temporary directory.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` OS user (via
``runuser``) in a directory owned by it.  It listens on a free localhost port and keeps its unix
socket in its own directory, trusts local connections, and skips fsync (it is thrown away).
Tests get a fresh database each from ``PostgresServer.create_database()``.

Use ``find_bin_dir()`` to decide whether to skip: no binaries means no PostgreSQL tests here (CI
installs them); binaries that fail to start a server are an error, not a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"
START_TIMEOUT_S = 60
_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine (the reason says why): skip."""


def find_bin_dir() -> Path | None:
    """The directory of the newest ``initdb``/``pg_ctl`` found ($NAIAD_PG_BIN first, then PATH)."""
    candidates: list[Path] = []
    if os.environ.get("NAIAD_PG_BIN"):
        candidates.append(Path(os.environ["NAIAD_PG_BIN"]))
    for pattern in _BIN_GLOBS:
        candidates.extend(sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway server; ``stop()`` ends it and removes its files."""

    bin_dir: Path
    base_dir: Path
    port: int
    run_as: str | None
    _databases: list[str] = field(default_factory=list)
    _watchdog: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> PostgresServer:
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
        run_as = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root and 'runuser' is missing")
            try:
                import pwd

                account = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise PostgresUnavailable("running as root and there is no 'postgres' OS user") from exc
            run_as = SUPERUSER
        base_dir = Path(tempfile.mkdtemp(prefix="naiad-pg-"))
        server = cls(bin_dir=bin_dir, base_dir=base_dir, port=0, run_as=run_as)
        try:
            server.socket_dir.mkdir()
            if run_as is not None:
                for path in (base_dir, server.socket_dir):
                    os.chown(path, account.pw_uid, account.pw_gid)
            server._run("initdb", "-D", str(server.data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync", "--no-instructions")  # fmt: skip
            server._start_on_free_port()
            server._start_watchdog()
        except BaseException:
            server.stop()
            raise
        return server

    def _start_on_free_port(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -F "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.base_dir / "server.log"),
                          "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip
                return
            except subprocess.CalledProcessError:
                if attempt == attempts - 1:
                    raise RuntimeError(f"PostgreSQL did not start:\n{self.log_tail()}") from None

    def _start_watchdog(self) -> None:
        """A shell that stops the server and removes its files if this process dies without ``stop()``.

        A test run killed by a timeout skips fixture teardown; without this the server would linger.
        """
        stop = shlex.join(self._command("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"))
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
            f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(self.base_dir))}"
        )
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return command

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(tool, *args), check=True, capture_output=True, text=True, cwd=self.base_dir)

    def log_tail(self, lines: int = 30) -> str:
        log = self.base_dir / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        """A SQLAlchemy URL over TCP to ``database`` as the superuser."""
        return f"postgresql+{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database and return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        name = name or f"naiad_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.append(name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediately: the data is thrown away) and remove its directory."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
