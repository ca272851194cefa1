"""``verify`` checks every row that matters, not only the audit chain: tampered, deleted, forged and malformed rows.

Each test tampers with the SQLite file the way an insider with write access would (plain SQL, foreign
keys off) and expects ``verify`` to name the table and row, never to raise.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Integer, String, Table

from provisioning.ledger import (
    ChainProblem,
    InvalidLedgerUrl,
    Ledger,
    LedgerDriverMissing,
    LedgerMalformed,
    LedgerRowTampered,
    LedgerUnavailable,
    VerifyReport,
    db,
    head_revision,
    seals,
)
from provisioning.ledger import audit as chain
from provisioning.ledger.models import Base, Operation


class Boom(Exception):
    pass


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def worked(url: str) -> Iterator[Ledger]:
    """A ledger with a unit, an operator, a succeeded flash (operation 1) and a failed one (operation 2)."""
    with Ledger.open(url, station="bench-1") as ledger:
        ledger.register_operator("alice", "operator")
        ledger.device_seen("DF2A00001", "dragonfly-2", "1-4.2")
        ledger.device_seen("DF2A00002", "dragonfly-2", "1-4.3")
        with ledger.operation("DF2A00001", "flash", operator="alice") as op:
            op.result = {"version": "2.1.0", "slot": "b"}
        with pytest.raises(Boom), ledger.operation("DF2A00002", "flash", operator="alice"):
            raise Boom("unit went away")
        assert ledger.verify().ok
        yield ledger


def _tamper(url: str, *statements: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as raw:  # foreign keys off
        for statement in statements:
            raw.execute(statement)


def _found(ledger: Ledger) -> tuple[ChainProblem | None, str | None, str | None]:
    report = ledger.verify()
    assert not report.ok and report.reason
    return report.problem, report.table, report.row


def _sealing_entry(ledger: Ledger, key: str) -> int:
    return max(e.id for e in ledger.audit_entries() if key in e.seals)


def test_an_untouched_ledger_verifies_every_row(worked: Ledger) -> None:
    report = worked.verify()
    # one station, one operator, two units, two operations
    assert (report.ok, report.rows, report.table, report.row) == (True, 6, None, None)


def test_each_change_seals_the_rows_it_made_in_its_own_audit_entry(worked: Ledger) -> None:
    finished = [e for e in worked.audit_entries() if e.action == "operation.finished"]
    assert [set(e.seals) for e in finished] == [{"operations:1"}, {"operations:2"}]
    entry = finished[0]
    assert entry.hash == chain.entry_hash(
        entry.prev_hash,
        entry_id=entry.id,
        at=entry.at,
        station=entry.station,
        operator=entry.operator,
        action=entry.action,
        subject=entry.subject,
        details=entry.details,
        seals=entry.seals,
    )
    assert worked.audit("test.note", "note:1").seals == {}  # an entry of the caller's own binds no row


def test_a_failed_flash_flipped_to_succeeded_is_found(worked: Ledger, url: str) -> None:
    _tamper(url, """UPDATE operations SET status = 'succeeded', result = '{"version": "2.1.0"}' WHERE id = 2""")
    report = worked.verify()
    assert (report.problem, report.table, report.row) == (ChainProblem.ROW_EDITED, "operations", "2")
    assert report.first_bad_id == _sealing_entry(worked, "operations:2")
    with pytest.raises(LedgerRowTampered, match="operations row 2"):
        report.raise_if_broken()


def test_a_deleted_operation_is_found(worked: Ledger, url: str) -> None:
    _tamper(url, "DELETE FROM operations WHERE id = 2")
    assert _found(worked) == (ChainProblem.ROW_DELETED, "operations", "2")


def test_a_retimed_operation_is_found(worked: Ledger, url: str) -> None:
    _tamper(url, "UPDATE operations SET started = '2020-01-01 00:00:00.000000' WHERE id = 1")
    assert _found(worked) == (ChainProblem.ROW_EDITED, "operations", "1")


def test_a_forged_operation_is_found(worked: Ledger, url: str) -> None:
    _tamper(
        url,
        "INSERT INTO operations (id, device_serial, station_id, operator_id, kind, status, started, ended, result)"
        " VALUES (3, 'DF2A00002', 1, 1, 'flash', 'succeeded', '2026-01-01 00:00:00.000000',"
        """ '2026-01-01 00:01:00.000000', '{"version": "2.1.0"}')""",
    )
    report = worked.verify()
    assert (report.problem, report.table, report.row, report.first_bad_id) == (
        ChainProblem.ROW_UNRECORDED,
        "operations",
        "3",
        None,
    )


def test_a_deleted_device_is_found(worked: Ledger, url: str) -> None:
    _tamper(url, "DELETE FROM devices WHERE serial = 'DF2A00002'")
    assert _found(worked) == (ChainProblem.ROW_DELETED, "devices", "DF2A00002")


def test_an_edited_device_is_found(worked: Ledger, url: str) -> None:
    _tamper(url, "UPDATE devices SET model = 'frog-pro' WHERE serial = 'DF2A00001'")
    assert _found(worked) == (ChainProblem.ROW_EDITED, "devices", "DF2A00001")


def test_edited_stations_and_operators_are_found(worked: Ledger, url: str) -> None:
    _tamper(url, "UPDATE operators SET role = 'admin' WHERE name = 'alice'")
    assert _found(worked) == (ChainProblem.ROW_EDITED, "operators", "1")
    _tamper(url, "UPDATE operators SET role = 'operator' WHERE name = 'alice'")
    assert worked.verify().ok
    _tamper(url, "UPDATE stations SET hostname = 'elsewhere'")
    assert _found(worked) == (ChainProblem.ROW_EDITED, "stations", "1")


def test_sightings_move_last_seen_without_breaking_the_seal(worked: Ledger) -> None:
    before = {e.id for e in worked.audit_entries()}
    worked.device_seen("DF2A00001", "dragonfly-2", "1-4.2")  # a bare sighting: no audit entry
    assert {e.id for e in worked.audit_entries()} == before
    worked.device_seen("DF2A00001", "dragonfly-2", "1-4.9")  # moved: an entry that re-seals the row
    assert worked.verify().ok


@pytest.mark.parametrize(
    ("statement", "table", "row"),
    [
        ("UPDATE operations SET started = 'yesterday' WHERE id = 1", "operations", "1"),
        ("UPDATE operations SET ended = '2026-01-01T00:00:00+05:00' WHERE id = 1", "operations", "1"),
        ("UPDATE operations SET result = '{not json' WHERE id = 2", "operations", "2"),
        ("UPDATE operations SET result = '{\"x\": NaN}' WHERE id = 2", "operations", "2"),
        ("UPDATE operations SET station_id = 'one' WHERE id = 2", "operations", "2"),
        ("UPDATE devices SET first_seen = 17 WHERE serial = 'DF2A00001'", "devices", "DF2A00001"),
        ("UPDATE audit_log SET at = 'noon' WHERE id = 3", "audit_log", "3"),
        ("UPDATE audit_log SET details = 'not json' WHERE id = 4", "audit_log", "4"),
        ("UPDATE audit_log SET seals = '[1, 2]' WHERE id = 4", "audit_log", "4"),
        ("UPDATE audit_head SET hash = x'00'", "audit_head", "1"),
    ],
)
def test_a_malformed_row_is_tampering_named_by_table_and_row(
    worked: Ledger, url: str, statement: str, table: str, row: str
) -> None:
    _tamper(url, statement)
    assert _found(worked) == (ChainProblem.MALFORMED, table, row)


def test_a_null_where_the_ledger_always_writes_a_value_is_malformed() -> None:
    table = cast(Table, Operation.__table__)
    raw = {"id": 1, "device_serial": "SN1", "station_id": 1, "operator_id": None, "kind": None, "status": "running"}
    with pytest.raises(seals.MalformedRow) as caught:
        seals.decode(table, {**raw, "started": "2026-01-01 00:00:00.000000", "ended": None, "result": None})
    assert caught.value.column == "kind"


def test_reading_a_malformed_row_is_a_typed_error(worked: Ledger, url: str) -> None:
    _tamper(url, "UPDATE operations SET started = 'yesterday' WHERE id = 1")
    with pytest.raises(LedgerMalformed) as caught:
        worked.operations()
    assert caught.value.remedy_text


def test_rows_written_from_many_threads_and_engines_verify(url: str) -> None:
    ledgers = [Ledger.open(url, station=f"bench-{n}") for n in range(3)]
    errors: list[BaseException] = []
    reports: list[VerifyReport] = []
    writing = threading.Event()

    def work(ledger: Ledger, worker: int) -> None:
        try:
            serial = f"SN{worker:04d}"
            for n in range(4):
                ledger.device_seen(serial, "dragonfly-2", f"1-{n}")
                with ledger.operation(serial, "flash") as op:
                    op.result = {"n": n}
        except BaseException as exc:
            errors.append(exc)

    def verify_while_writing() -> None:
        while writing.is_set():
            reports.append(ledgers[0].verify())

    threads = [threading.Thread(target=work, args=(ledgers[w % 3], w)) for w in range(6)]
    auditor = threading.Thread(target=verify_while_writing)
    try:
        writing.set()
        auditor.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        writing.clear()
        auditor.join(timeout=120)
        assert errors == []
        assert reports and all(r.ok for r in reports), [r for r in reports if not r.ok][:1]
        report = ledgers[1].verify()
        assert (report.ok, report.rows) == (True, 3 + 6 + 6 * 4)
    finally:
        for ledger in ledgers:
            ledger.close()


# -- ledgers made before rows were sealed ----------------------------------------------------------


def _ledger_at_revision_0001(url: str) -> None:
    """A ledger as Naiad wrote it before revision 0002: a station, a unit, an operation, a chain of two."""
    from alembic import command

    engine = db.create_ledger_engine(url)
    with engine.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0001")
    engine.dispose()
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    stored = "2026-01-01 00:00:00.000000"
    prev = chain.GENESIS_HASH
    statements = [
        f"INSERT INTO stations VALUES (1, 'bench-1', 'host', '{stored}')",
        f"INSERT INTO devices VALUES ('SN1', 'dragonfly-2', '{stored}', '{stored}', NULL)",
        "INSERT INTO operations (id, device_serial, station_id, kind, status, started, ended, result)"
        f""" VALUES (1, 'SN1', 1, 'flash', 'failed', '{stored}', '{stored}', '{{"error": "x"}}')""",
    ]
    for entry_id, action in enumerate(["station.registered", "device.seen"], start=1):
        digest = chain.entry_hash(
            prev, entry_id=entry_id, at=at, station="bench-1", operator=None, action=action, subject="s", details={}
        )
        statements.append(
            "INSERT INTO audit_log (id, at, station, action, subject, details, prev_hash, hash)"
            f" VALUES ({entry_id}, '{stored}', 'bench-1', '{action}', 's', '{{}}', '{prev}', '{digest}')"
        )
        prev = digest
    statements.append(f"UPDATE audit_head SET entry_id = 2, hash = '{prev}'")
    _tamper(url, *statements)


def test_an_existing_ledger_is_migrated_and_its_rows_sealed(url: str) -> None:
    _ledger_at_revision_0001(url)
    with Ledger.open(url, station="bench-1") as ledger:
        assert ledger.current_revision() == db.HEAD_REVISION
        report = ledger.verify()  # two old entries, the seals, the station's move to this host
        assert (report.ok, report.entries, report.rows) == (True, 4, 3)
        sealed = ledger.audit_entries()[2]
        assert (sealed.action, sealed.station) == ("ledger.sealed", "migration")
        assert set(sealed.seals) == {"stations:1", "devices:SN1", "operations:1"}
        _tamper(url, "UPDATE operations SET status = 'succeeded' WHERE id = 1")
        assert _found(ledger) == (ChainProblem.ROW_EDITED, "operations", "1")


# -- opening an existing ledger imports no migration machinery ------------------------------------

OPEN_AND_LIST_MODULES = """
import sys, time
started = time.perf_counter()
from provisioning.ledger import Ledger
with Ledger.open(sys.argv[1], station="bench-1") as ledger:
    ledger.verify()
print(f"{(time.perf_counter() - started) * 1000:.1f}")
print(" ".join(sorted(sys.modules)))
"""


def test_opening_an_existing_ledger_imports_neither_alembic_nor_other_dialects(worked: Ledger, url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_AND_LIST_MODULES, url], capture_output=True, text=True, check=True, timeout=60
    )
    elapsed, modules = done.stdout.splitlines()
    print(f"opening an existing SQLite ledger: {elapsed} ms")  # a figure, not an assertion
    loaded = set(modules.split())
    assert not {m for m in loaded if m == "alembic" or m.startswith("alembic.")}
    unused = ("postgresql", "mysql", "mssql", "oracle")
    assert not {m for m in loaded if m.split(".")[:3] in [["sqlalchemy", "dialects", d] for d in unused]}


def test_importing_the_cli_loads_no_database_code() -> None:
    code = "import sys, console.cli; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(done.stdout.split())
    assert not {m for m in loaded if m.split(".")[0] in ("alembic", "sqlalchemy", "psycopg", "psycopg2", "sqlite3")}


# -- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("notaurl", "notaurl"),
        ("sqlite:/tmp/x.sqlite", "sqlite:/tmp/x.sqlite"),
        ("naiad:s3cr3t@db.line/naiad", "naiad:***@db.line/naiad"),
        ("postgres ql://naiad:s3cr3t@db/naiad", "postgres ql://naiad:***@db/naiad"),
        ("naiad:s3cr3t", "naiad:***"),
        ("host=db.line user=naiad password=s3cr3t", "host=db.line user=naiad password=***"),
    ],
)
def test_text_that_is_not_a_url_is_shown_with_only_a_password_hidden(text: str, shown: str) -> None:
    with pytest.raises(InvalidLedgerUrl) as caught:
        Ledger.open(text, station="bench-1")
    assert caught.value.params["url"] == shown
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "driver", "package", "module"),
    [
        ("postgresql+nosuchdriver://naiad:s3cr3t@db/naiad", "nosuchdriver", "nosuchdriver", "nosuchdriver"),
        ("mysql://naiad:s3cr3t@db/naiad", "mysqldb", "mysqlclient", "MySQLdb"),
        ("postgresql+psycopg2://naiad:s3cr3t@db/naiad", "psycopg2", "psycopg2-binary", "psycopg2"),
    ],
)
def test_a_url_whose_driver_is_missing_says_what_to_install(url: str, driver: str, package: str, module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    with pytest.raises(LedgerDriverMissing) as caught:
        Ledger.open(url, station="bench-1")
    error = caught.value
    assert isinstance(error, LedgerUnavailable) and not isinstance(error, InvalidLedgerUrl)
    assert error.params["driver"] == driver and f"pip install {package}" in (error.remedy_text or "")
    assert "s3cr3t" not in str(error) and "Not a database URL" not in str(error)


# -- the command ----------------------------------------------------------------------------------


def test_naiad_ledger_verify_names_the_tampered_row(worked: Ledger, url: str) -> None:
    from click.testing import CliRunner

    from console.cli import cli

    runner = CliRunner()
    intact = runner.invoke(cli, ["--ledger", url, "ledger", "verify", "--json"])
    assert intact.exit_code == 0, intact.output
    assert json.loads(intact.output)["rows"] == 7  # and the station the command registered
    _tamper(url, "UPDATE operations SET status = 'succeeded' WHERE id = 2")
    found = runner.invoke(cli, ["--ledger", url, "ledger", "verify", "--json"])
    assert found.exit_code == 1
    assert {k: json.loads(found.output)[k] for k in ("ok", "table", "row")} == {
        "ok": False,
        "table": "operations",
        "row": "2",
    }
    text = runner.invoke(cli, ["--ledger", url, "ledger", "verify"])
    assert text.exit_code == 1 and "operations row 2" in text.output


def test_the_head_revision_opening_trusts_is_the_newest_migration_script() -> None:
    assert head_revision() == db.HEAD_REVISION


hostile_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=20)
    | st.sampled_from(["2026-01-01 00:00:00.000000", "2026-13-01 00:00:00", "{}", "[1]", "NaN", '{"a": Infinity}'])
    | st.sampled_from([float("nan"), "\ud800", {"a": float("inf")}, {"k": b"x"}, [1, {"b": None}]])
)


@pytest.mark.parametrize(
    ("column", "value"),
    [("result", float("nan")), ("result", {"a": float("inf")}), ("result", {"k": b"x"}), ("kind", "\ud800")],
)
def test_values_a_driver_decoded_but_that_cannot_be_hashed_are_malformed(column: str, value: object) -> None:
    raw = {"id": 1, "device_serial": "SN1", "station_id": 1, "operator_id": None, "kind": "flash", "status": "failed"}
    raw |= {"started": "2026-01-01 00:00:00.000000", "ended": None, "result": None, column: value}
    with pytest.raises(seals.MalformedRow) as caught:
        seals.decode(Base.metadata.tables["operations"], raw)
    assert caught.value.column == column


def _plausible(column: Column[Any]) -> st.SearchStrategy[Any]:
    """Values the ledger could have written to ``column``, so that most drawn rows get past their first column."""
    if isinstance(column.type, JSON):
        return st.recursive(
            st.none() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
            max_leaves=6,
        )
    if isinstance(column.type, Integer):
        return st.integers(0, 2**31)
    if isinstance(column.type, String):
        return st.text(max_size=20)
    return st.just("2026-01-01 00:00:00.000000")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(Base.metadata.tables)))
def test_decoding_any_stored_value_is_a_value_or_malformed(data: st.DataObject, name: str) -> None:
    table = Base.metadata.tables[name]
    spoiled = data.draw(st.sampled_from([c.name for c in table.columns]), label="spoiled column")
    raw = {
        c.name: data.draw(hostile_values if c.name == spoiled else _plausible(c), label=c.name) for c in table.columns
    }
    try:
        values = seals.decode(table, raw)
    except seals.MalformedRow as bad:
        assert bad.column in raw
    else:
        if seals.SEAL_INFO in table.info:
            assert len(seals.digest(table, values)) == 64
        if name == "audit_log":
            assert len(chain.stored_entry_hash(values)) == 64
