"""The ledger on a throwaway PostgreSQL server: migrations, time zones, and one chain from many stations."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from urllib.parse import quote

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import execute_sql
from sqlalchemy import create_engine

from provisioning.ledger import (
    ChainProblem,
    Ledger,
    LedgerUnavailable,
    VerifyReport,
    current_revision,
    head_revision,
)
from provisioning.ledger.models import Base

pytestmark = pytest.mark.postgresql


def test_open_migrates_a_fresh_database_to_head(postgres_url: str) -> None:
    assert current_revision(postgres_url) is None
    with Ledger.open(postgres_url, station="line-1") as ledger:
        assert ledger.current_revision() == head_revision()
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_devices_and_operations_round_trip(postgres_url: str) -> None:
    with Ledger.open(postgres_url, station="line-1") as ledger:
        ledger.register_operator("alice", "operator")
        ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
        ledger.device_seen("SN0001", "dragonfly-2", "1-4.3")
        with ledger.operation("SN0001", "flash", operator="alice") as op:
            op.result = {"version": "2.1.0", "bytes": 2**40, "ratio": 0.1}
        with pytest.raises(OSError), ledger.operation("SN0001", "reboot"):
            raise OSError("unplugged")
        (device,) = ledger.devices()
        assert device.port_path == "1-4.3" and device.last_seen >= device.first_seen
        flashed, rebooted = ledger.operations("SN0001")
        assert (flashed.status, flashed.operator, flashed.result) == ("succeeded", "alice", op.result)
        assert rebooted.status == "failed" and rebooted.result is not None
        assert rebooted.result["error"]["type"] == "builtins.OSError"
        assert ledger.verify().ok


def test_times_stay_utc_whatever_the_session_time_zone(postgres_url: str) -> None:
    shanghai = f"{postgres_url}?options={quote('-c timezone=Asia/Shanghai')}"
    with Ledger.open(shanghai, station="line-cn") as east, Ledger.open(postgres_url, station="line-utc") as utc:
        east.device_seen("SN0001", "dragonfly-2")
        utc.device_seen("SN0001", "dragonfly-2")
        for ledger in (east, utc):
            (device,) = ledger.devices()
            assert device.first_seen.utcoffset() == dt.timedelta(0)
            assert ledger.verify().ok
        assert [e.at for e in east.audit_entries()] == [e.at for e in utc.audit_entries()]


def test_stations_on_separate_engines_append_one_chain(postgres_url: str) -> None:
    stations, threads_each, rounds = 3, 2, 6
    ledgers = [Ledger.open(postgres_url, station=f"line-{n}") for n in range(stations)]
    errors: list[BaseException] = []

    def work(ledger: Ledger, worker: int) -> None:
        try:
            serial = f"SN{worker:04d}"
            ledger.device_seen(serial, "dragonfly-2")
            for n in range(rounds):
                ledger.audit("test.note", f"note:{worker}", {"worker": worker, "n": n})
                with ledger.operation(serial, "flash"):
                    pass
        except BaseException as exc:
            errors.append(exc)

    audits_during_appends: list[VerifyReport] = []
    appending = threading.Event()

    def audit_while_appending() -> None:
        # A support engineer verifying while the line works must not see false breaks.
        while appending.is_set():
            audits_during_appends.append(ledgers[0].verify())

    targets: list[Callable[[], None]] = []
    for worker in range(stations * threads_each):
        ledger = ledgers[worker % stations]
        targets.append(partial(work, ledger, worker))
    threads = [threading.Thread(target=t) for t in targets]
    auditor = threading.Thread(target=audit_while_appending)
    try:
        appending.set()
        auditor.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        appending.clear()
        auditor.join(timeout=120)
        assert errors == []
        assert audits_during_appends and all(r.ok for r in audits_during_appends)
        expected = stations + stations * threads_each * (1 + rounds * 3)
        report = ledgers[0].verify()
        assert (report.ok, report.entries) == (True, expected)
        assert [e.id for e in ledgers[1].audit_entries()] == list(range(1, expected + 1))
        assert {o.station for o in ledgers[2].operations()} == {f"line-{n}" for n in range(stations)}
    finally:
        for ledger in ledgers:
            ledger.close()


# Imports first, then waits for the go line on stdin, so that the stations really open at once.
OPEN_IN_A_PROCESS = """
import sys
from provisioning.ledger import Ledger
print("ready", flush=True)
sys.stdin.readline()
with Ledger.open(sys.argv[1], station=sys.argv[2]) as ledger:
    print(ledger.current_revision())
"""


def test_stations_opening_a_fresh_database_at_once_migrate_it_once(postgres_url: str) -> None:
    stations = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_IN_A_PROCESS, postgres_url, f"line-{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for station in stations:
        assert station.stdout is not None and station.stdout.readline().strip() == "ready"
    for station in stations:
        assert station.stdin is not None
        station.stdin.write("go\n")
        station.stdin.flush()
    outputs = [station.communicate(timeout=120) for station in stations]
    assert [station.returncode for station in stations] == [0, 0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [head_revision()] * 3
    with Ledger.open(postgres_url, station="line-0") as ledger:
        report = ledger.verify()
        assert (report.ok, report.entries) == (True, 3)
        assert {e.subject for e in ledger.audit_entries()} == {f"station:line-{n}" for n in range(3)}


def test_tampering_is_found(postgres_url: str) -> None:
    with Ledger.open(postgres_url, station="line-1") as ledger:
        for n in range(6):
            ledger.audit("test.note", f"note:{n}", {"n": n})
        execute_sql(postgres_url, """UPDATE audit_log SET details = '{"n": 7}' WHERE id = 3""")
        report = ledger.verify()
        assert (report.first_bad_id, report.problem) == (3, ChainProblem.EDITED)
        execute_sql(postgres_url, "DELETE FROM audit_log WHERE id = 3")
        report = ledger.verify()
        assert (report.first_bad_id, report.problem) == (4, ChainProblem.BROKEN_LINK)


def test_an_unreachable_server_is_unavailable_and_the_password_stays_hidden() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(LedgerUnavailable) as caught:
            Ledger.open(f"postgresql+psycopg://naiad:s3cr3t@127.0.0.1:{port}/naiad", station="line-1")
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in repr(caught.value.params)
    assert caught.value.remedy_text


def test_tampered_rows_are_found_and_named(postgres_url: str) -> None:
    with Ledger.open(postgres_url, station="line-1") as ledger:
        ledger.device_seen("SN0001", "dragonfly-2")
        ledger.device_seen("SN0002", "dragonfly-2")
        with pytest.raises(RuntimeError), ledger.operation("SN0001", "flash"):
            raise RuntimeError("unit went away")
        assert ledger.verify().ok

        def found(statement: str) -> tuple[ChainProblem | None, str | None, str | None]:
            execute_sql(postgres_url, statement)
            report = ledger.verify()
            return report.problem, report.table, report.row

        edited = (ChainProblem.ROW_EDITED, "operations", "1")
        assert found("UPDATE operations SET status = 'succeeded' WHERE id = 1") == edited
        assert found("UPDATE operations SET status = 'failed', started = started - interval '1 day'") == edited
        assert found("UPDATE operations SET started = started + interval '1 day'") == (None, None, None)
        assert found("DELETE FROM devices WHERE serial = 'SN0002'") == (ChainProblem.ROW_DELETED, "devices", "SN0002")
        assert found(
            "INSERT INTO devices VALUES ('SN0002', 'dragonfly-2', now(), now(), NULL);"
            "UPDATE devices SET port_path = '1-9' WHERE serial = 'SN0001'"
        ) == (ChainProblem.ROW_EDITED, "devices", "SN0001")
        assert found(
            "UPDATE devices SET port_path = NULL WHERE serial = 'SN0001'; DELETE FROM devices WHERE serial = 'SN0002';"
            "INSERT INTO operations (device_serial, station_id, kind, status, started)"
            " VALUES ('SN0001', 1, 'flash', 'succeeded', now())"
        ) == (ChainProblem.ROW_UNRECORDED, "operations", "2")
        assert found(
            "DELETE FROM operations WHERE id = 2;"
            "ALTER TABLE operations ALTER COLUMN kind DROP NOT NULL; UPDATE operations SET kind = NULL"
        ) == (ChainProblem.MALFORMED, "operations", "1")


def test_rows_sealed_by_many_stations_stay_one_chain(postgres_url: str) -> None:
    ledgers = [Ledger.open(postgres_url, station=f"line-{n}") for n in range(3)]
    errors: list[BaseException] = []

    def work(ledger: Ledger, worker: int) -> None:
        try:
            for n in range(5):
                ledger.device_seen(f"SN{n:04d}", "dragonfly-2", f"1-{worker}")  # every station moves every unit
                with ledger.operation(f"SN{n:04d}", "flash") as op:
                    op.result = {"worker": worker}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ledgers[w % 3], w)) for w in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        report = ledgers[2].verify()
        assert (report.ok, report.rows) == (True, 3 + 5 + 6 * 5)
        assert [e.id for e in ledgers[0].audit_entries()] == list(range(1, report.entries + 1))
    finally:
        for ledger in ledgers:
            ledger.close()


def test_an_existing_ledger_is_migrated_and_its_rows_sealed(postgres_url: str) -> None:
    from alembic import command

    from provisioning.ledger import audit as chain
    from provisioning.ledger.db import alembic_config, create_ledger_engine

    engine = create_ledger_engine(postgres_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
    finally:
        engine.dispose()
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    digest = chain.entry_hash(
        chain.GENESIS_HASH, entry_id=1, at=at, station="line-1", operator=None, action="a", subject="s", details={}
    )
    execute_sql(
        postgres_url,
        "INSERT INTO stations VALUES (1, 'line-1', 'host', '2026-01-01T00:00:00Z');"
        "INSERT INTO devices VALUES ('SN1', 'dragonfly-2', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', NULL);"
        "INSERT INTO operations (device_serial, station_id, kind, status, started)"
        " VALUES ('SN1', 1, 'flash', 'running', '2026-01-01T00:00:00Z');"
        "INSERT INTO audit_log (id, at, station, action, subject, details, prev_hash, hash)"
        f" VALUES (1, '2026-01-01T00:00:00Z', 'line-1', 'a', 's', '{{}}', '{chain.GENESIS_HASH}', '{digest}');"
        f"UPDATE audit_head SET entry_id = 1, hash = '{digest}'",
    )
    with Ledger.open(postgres_url, station="line-1") as ledger:
        report = ledger.verify()
        assert (report.ok, report.rows) == (True, 3)
        execute_sql(postgres_url, "UPDATE operations SET status = 'succeeded'")
        assert ledger.verify().problem is ChainProblem.ROW_EDITED
