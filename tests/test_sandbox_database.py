"""The sandbox's database file: owner-only, one sandbox at a time, never a file it did not make, damage refused.

Also the ``naiad platform serve`` refusals of a bad ``--host`` and of a station configuration over ``--db``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from click.testing import CliRunner, Result
from sandbox_station import SUPPLIER_ID, Station
from sqlalchemy.exc import DBAPIError

import console.cli_platform_serve as serve_module
import enrollment.sandbox.server as server_module
from console.cli_root import cli
from enrollment.gateway import GATEWAY_PATH, Method
from enrollment.sandbox.app import build_app
from enrollment.sandbox.auth import FORM_TYPE
from enrollment.sandbox.database import Database, DatabaseClosed, DatabaseInUse
from enrollment.sandbox.dispatch import Gateway
from enrollment.sandbox.faults import Draw, FaultPlan
from enrollment.sandbox.registry import HANDLERS, Call
from enrollment.sandbox.server import (
    Sandbox,
    SandboxDatabaseForeign,
    SandboxDatabaseInUse,
    SandboxDatabaseUnusable,
    SandboxDidNotStop,
    SandboxHostInvalid,
)


def naiad(*args: str) -> Result:
    return CliRunner().invoke(cli, ["platform", "serve", *args], env={"NAIAD_LANG": "en"})


@pytest.fixture(scope="module", name="made")
def made_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sandbox database made (and left) by one start, with a request written through it."""
    path = tmp_path_factory.mktemp("made") / "platform.db"
    with Sandbox.start(path) as sandbox:
        station = Station(sandbox, path.parent)
        biz = {"out_request_no": "R1", "supplier_id": SUPPLIER_ID, "devices": [{"serial": "DB1", "model": "DF2"}]}
        assert station.call(Method.INVENTORY_REGISTER, biz)["code"] == "10000"
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.glob("platform.db*")}
        station.close()
    assert {"platform.db", "platform.db-wal", "platform.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes  # the file holds the platform's private keys
    yield path


def test_a_more_open_database_file_is_made_owner_only(made: Path) -> None:
    os.chmod(made, 0o644)
    Database(made).close()
    assert stat.S_IMODE(made.stat().st_mode) == 0o600


def test_a_second_sandbox_on_the_same_database_is_refused(made: Path) -> None:
    with Sandbox.start(made), pytest.raises(SandboxDatabaseInUse) as caught:
        Sandbox.start(made)
    assert "another sandbox" in str(caught.value) and caught.value.remedy_text


def test_a_second_sandbox_through_a_symlink_to_the_database_is_refused(made: Path) -> None:
    link = made.parent / "link.db"
    link.symlink_to(made)
    first = Database(made)
    try:
        with pytest.raises(DatabaseInUse):
            Database(link)
    finally:
        first.close()


def test_writes_from_two_connections_queue_instead_of_failing(tmp_path: Path) -> None:
    first, second = Database(tmp_path / "p.db"), None
    try:  # two Database objects on one file, as two processes would be (the lock file aside)
        os.close(first._lock_fd)
        first._lock_fd = os.open(os.devnull, os.O_RDONLY)
        second = Database(tmp_path / "p.db")
        numbers = itertools.count()

        def write(database: Database) -> None:
            with database.write() as session:
                session.connection().exec_driver_sql("SELECT count(*) FROM counters").all()  # a read, then a write
                session.connection().exec_driver_sql(f"INSERT INTO counters VALUES ('c{next(numbers)}', 0)")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, [first, second] * 100))
        with first.read() as session:
            assert session.connection().exec_driver_sql("SELECT count(*) FROM counters").scalar() == 200
    finally:
        first.close()
        if second is not None:
            second.close()


def test_an_sqlite_file_the_sandbox_did_not_make_is_refused_and_left_alone(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with sqlite3.connect(ledger) as db:
        db.execute("CREATE TABLE devices (serial TEXT)")
    db.close()
    os.chmod(ledger, 0o644)
    before = ledger.read_bytes()
    with pytest.raises(SandboxDatabaseForeign):
        Sandbox.start(ledger)
    (tmp_path / "notes.db").write_text("not a database at all", encoding="ascii")
    with pytest.raises(SandboxDatabaseForeign):
        Sandbox.start(tmp_path / "notes.db")
    assert ledger.read_bytes() == before and stat.S_IMODE(ledger.stat().st_mode) == 0o644


def test_a_damaged_stored_key_is_refused_with_a_remedy_and_the_file_released(made: Path) -> None:
    with sqlite3.connect(made) as db:
        pem = db.execute("SELECT pem FROM credentials WHERE name = 'signing-key'").fetchone()[0]
        db.execute("UPDATE credentials SET pem = 'junk' WHERE name = 'signing-key'")
    db.close()
    try:
        with pytest.raises(SandboxDatabaseUnusable) as caught:
            Sandbox.start(made)
        assert "damaged" in str(caught.value) and caught.value.remedy_text
        Database(made).close()  # released: the failed start holds neither the lock nor the engine
    finally:
        with sqlite3.connect(made) as db:
            db.execute("UPDATE credentials SET pem = ? WHERE name = 'signing-key'", (pem,))
        db.close()


def test_a_station_config_over_the_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "same.db"
    result = naiad("--port", "0", "--db", str(db), "--station-config", str(db))
    assert result.exit_code == 1 and "--station-config" in result.output
    assert not db.exists()


@pytest.mark.parametrize(("host", "reason"), [("", "empty"), ("bad host", "no such address"), ("192.0.2.1", "")])
def test_a_bad_host_is_refused_with_the_host_remedy(tmp_path: Path, host: str, reason: str) -> None:
    with pytest.raises(SandboxHostInvalid) as caught:
        Sandbox.start(tmp_path / "p.db", host=host)
    assert reason in str(caught.value) and "--host" in (caught.value.remedy_text or "")
    assert "--port" not in (caught.value.remedy_text or "")


def test_a_wildcard_host_is_served_with_a_warning_that_it_names_only_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve_module, "serve_until", lambda stopped: None)
    result = naiad("--port", "0", "--db", str(tmp_path / "p.db"), "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert "https://127.0.0.1:" in result.output and "every network interface (0.0.0.0)" in result.output


def test_a_directory_as_the_database_is_refused_with_a_translatable_reason(tmp_path: Path) -> None:
    with pytest.raises(SandboxDatabaseUnusable) as caught:
        Sandbox.start(tmp_path)
    assert caught.value.params["reason"] == "the path is a directory"  # not the bare errno name EISDIR


def sqlite_error(tmp_path: Path, content: bytes | None) -> sqlite3.Error:
    """The error SQLite raises reading ``tmp_path/x.db`` holding ``content`` (None: the path is a directory)."""
    path = tmp_path / "x.db"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(sqlite3.Error) as caught:
        sqlite3.connect(path).execute("SELECT * FROM sqlite_master").fetchall()
    return caught.value


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "the database file cannot be opened"), (b"not a database" * 100, "the file is not a database")],
)
def test_sqlite_refusals_are_given_translatable_reasons(tmp_path: Path, content: bytes | None, reason: str) -> None:
    error = sqlite_error(tmp_path, content)
    assert server_module._database_reason(error) == reason
    wrapped = DBAPIError("SELECT", None, error)
    assert server_module._database_reason(wrapped) == reason


def test_an_unmapped_system_refusal_is_given_the_generic_translatable_reason() -> None:
    assert server_module._os_reason(OSError(errno.EXDEV, "cross-device link")) == server_module.OTHER_REASON
    assert server_module._database_reason(sqlite3.InterfaceError("bad")) == server_module.OTHER_REASON


def test_the_database_and_its_lock_are_kept_while_a_handler_thread_still_uses_it(made: Path) -> None:
    database = Database(made)
    entered, release = threading.Event(), threading.Event()

    def handler() -> None:
        with database.write():
            entered.set()
            release.wait()

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(handler)
        entered.wait()
        assert not database.close()  # the handler still writes: the file and its lock are kept
        with pytest.raises(DatabaseInUse):
            Database(made)
        with pytest.raises(DatabaseClosed), database.read():
            pass  # no new session once closing
        release.set()
        running.result()
    assert database.close()
    Database(made).close()


def test_a_stop_with_a_handler_still_running_reports_it_and_keeps_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()

    def stuck(call: Call) -> dict[str, Any]:
        entered.set()
        release.wait()
        return {}

    monkeypatch.setitem(HANDLERS, Method.INVENTORY_REGISTER, stuck)
    monkeypatch.setattr(server_module, "GRACE_SECONDS", 0.0)
    path = tmp_path / "platform.db"
    sandbox = Sandbox.start(path)
    station = Station(sandbox, tmp_path)
    biz = {"out_request_no": "R1", "supplier_id": SUPPLIER_ID, "devices": [{"serial": "DB1", "model": "DF2"}]}
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(station.call, Method.INVENTORY_REGISTER, biz)
        entered.wait()
        with pytest.raises(SandboxDidNotStop):
            sandbox.stop()
        with pytest.raises(SandboxDatabaseInUse):
            Sandbox.start(path)
        release.set()
        with contextlib.suppress(Exception):
            sent.result()  # the connection was closed with nothing sent
    station.close()
    assert sandbox._database.close(wait=10.0)  # the handler thread ends once released


def test_a_request_cancelled_under_way_is_reset_and_stays_cancelled() -> None:
    aborted, drawn = threading.Event(), threading.Event()

    class Cycle:  # uvicorn's request cycle: its bound ``send`` carries the connection's transport
        transport = SimpleNamespace(abort=aborted.set)

        async def send(self, message: Any) -> None:
            raise AssertionError(message)  # nothing is sent

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def draw() -> Draw:
        drawn.set()
        return Draw(delay=3600.0, error=False, drop=False)  # cancelled in this latency spike

    gateway = SimpleNamespace(authenticate=lambda form: SimpleNamespace(app_id="app"))
    plan = SimpleNamespace(limited=lambda app_id: False, draw=draw)
    app = build_app(cast(Gateway, gateway), cast(FaultPlan, plan), cast(Database, None))
    headers = [(b"content-type", FORM_TYPE.encode())]
    scope = {"type": "http", "method": "POST", "path": GATEWAY_PATH, "headers": headers, "query_string": b""}

    async def cancelled() -> None:
        task = asyncio.ensure_future(app(scope, receive, Cycle().send))
        while not drawn.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert aborted.is_set()
