"""The station ledger on SQLite: migrations, devices, operations, the audit hash chain and its tamper checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import make_url

from provisioning.ledger import (
    AuditChainBroken,
    AuditHead,
    ChainProblem,
    InvalidLedgerInput,
    InvalidLedgerUrl,
    Ledger,
    LedgerClosed,
    LedgerSchemaTooNew,
    LedgerUnavailable,
    SecretRefused,
    UnknownDevice,
    UnknownOperator,
    current_revision,
    head_revision,
)
from provisioning.ledger import audit as chain
from provisioning.ledger.db import create_ledger_engine, redact_url
from provisioning.ledger.models import Base


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger.open(url, station="bench-1") as opened:
        yield opened


def _raw(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)


def _fill(ledger: Ledger, count: int) -> None:
    """``count`` more audit entries of the caller's own kind."""
    for n in range(count):
        ledger.audit("test.note", f"note:{n}", {"n": n, "text": "ok"})


# -- migrations and connection settings -----------------------------------------------------------


def test_open_migrates_a_fresh_database_to_head(url: str) -> None:
    assert current_revision(url) is None
    with Ledger.open(url, station="bench-1") as ledger:
        assert ledger.current_revision() == head_revision()
    assert current_revision(url) == head_revision()
    with Ledger.open(url, station="bench-1") as again:  # already at head: nothing to do, nothing lost
        assert again.current_revision() == head_revision()
        assert [e.action for e in again.audit_entries()] == ["station.registered"]


def test_migrated_schema_matches_the_models(ledger: Ledger, url: str) -> None:
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_default_database_is_a_wal_file_in_the_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAIAD_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Ledger.open(station="bench-1") as ledger:
        ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
    path = tmp_path / "data" / "naiad" / "ledger.sqlite"
    assert path.is_file()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT serial FROM devices").fetchall() == [("SN0001",)]


def test_naiad_data_dir_moves_the_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAIAD_DATA_DIR", str(tmp_path / "station-data"))
    with Ledger.open(station="bench-1") as ledger:
        assert ledger.url.endswith("station-data/ledger.sqlite")
    assert (tmp_path / "station-data" / "ledger.sqlite").is_file()


def test_every_connection_enforces_foreign_keys_and_waits_when_busy(ledger: Ledger, url: str) -> None:
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_a_database_from_a_newer_naiad_is_refused_untouched(url: str) -> None:
    Ledger.open(url, station="bench-1").close()
    with _raw(url) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(LedgerSchemaTooNew) as caught:
        Ledger.open(url, station="bench-2")
    assert caught.value.remedy_text
    with _raw(url) as raw:
        assert raw.execute("SELECT count(*) FROM stations").fetchone()[0] == 1


def test_an_unopenable_file_is_unavailable_with_a_remedy(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger.open(f"sqlite:///{tmp_path / 'missing-dir' / 'ledger.sqlite'}", station="bench-1")
    assert caught.value.remedy_text
    assert not (tmp_path / "missing-dir").exists()


def test_an_unwritable_data_dir_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("NAIAD_DATA_DIR", str(tmp_path / "a-file" / "naiad"))
    with pytest.raises(LedgerUnavailable):
        Ledger.open(station="bench-1")


@pytest.mark.parametrize("bad", ["not a url", "nosuchdialect://host/db"])
def test_a_bad_url_is_refused(bad: str) -> None:
    with pytest.raises(InvalidLedgerUrl):
        Ledger.open(bad, station="bench-1")


def test_urls_in_errors_hide_the_password() -> None:
    shown = redact_url("postgresql+psycopg://naiad:s3cr3t@db.example/naiad")
    assert "s3cr3t" not in shown and "naiad@db.example" not in shown
    assert "s3cr3t" not in redact_url("weird//naiad:s3cr3t@host")
    assert "s3cr3t" not in redact_url(make_url("postgresql+psycopg://db.example/naiad?password=s3cr3t"))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@ss@h/db",
        "not a url u:se/cret@h",
        "postgresql://u:s/ecret@h/db",
        "postgresql://h/db?user=u&password=cret",
        "postgresql+psycopg://u:cret@h:5432/db",
    ],
)
def test_a_malformed_url_never_shows_its_password(url: str) -> None:
    shown = redact_url(url)
    assert not any(part in shown for part in ("ss@", "se/cret", "s/ecret", "cret"))


def test_a_closed_ledger_refuses_calls(url: str) -> None:
    ledger = Ledger.open(url, station="bench-1")
    ledger.close()
    with pytest.raises(LedgerClosed):
        ledger.devices()
    with pytest.raises(LedgerClosed):
        ledger.device_seen("SN0001", "dragonfly-2")


# -- devices and operations -----------------------------------------------------------------------


def test_device_seen_inserts_then_updates_keeping_first_seen(ledger: Ledger) -> None:
    ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
    (first,) = ledger.devices()
    ledger.device_seen("SN0001", "dragonfly-2", "1-4.3")
    (second,) = ledger.devices()
    assert first.first_seen == second.first_seen
    assert second.last_seen >= first.last_seen
    assert second.port_path == "1-4.3"
    assert second.first_seen.tzinfo is not None and second.first_seen.utcoffset() == dt.timedelta(0)
    entries = ledger.audit_entries(subject="device:SN0001")
    assert [e.action for e in entries] == ["device.seen", "device.seen"]
    assert entries[0].details["first_seen"] is True
    assert entries[1].details["previous_port_path"] == "1-4.2"


def test_a_bare_sighting_updates_last_seen_without_an_audit_entry(ledger: Ledger) -> None:
    ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
    (first,) = ledger.devices()
    ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
    (again,) = ledger.devices()
    assert again.last_seen >= first.last_seen
    assert len(ledger.audit_entries(subject="device:SN0001")) == 1


def test_a_successful_operation_is_recorded_with_its_result(ledger: Ledger) -> None:
    ledger.register_operator("alice", "operator")
    ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
    with ledger.operation("SN0001", "flash", operator="alice") as op:
        (running,) = ledger.operations("SN0001")
        assert running.status == "running" and running.ended is None
        op.result = {"version": "2.1.0", "slots": ("a", "b")}
    (done,) = ledger.operations("SN0001")
    assert (done.id, done.status, done.operator, done.station) == (op.id, "succeeded", "alice", "bench-1")
    assert done.result == {"version": "2.1.0", "slots": ["a", "b"]}
    assert done.ended is not None and done.ended >= done.started
    finished = ledger.audit_entries(subject="device:SN0001")[-1]
    assert finished.action == "operation.finished" and finished.operator == "alice"
    assert finished.details["result"] == done.result


def test_a_failed_operation_records_the_error_and_reraises_it(ledger: Ledger) -> None:
    ledger.device_seen("SN0001", "dragonfly-2")
    with pytest.raises(TimeoutError, match="no answer"), ledger.operation("SN0001", "reboot") as op:
        op.result = {"attempts": 3}
        raise TimeoutError("no answer")
    (failed,) = ledger.operations()
    assert failed.status == "failed" and failed.ended is not None
    assert failed.result == {"attempts": 3, "error": {"type": "builtins.TimeoutError", "message": "no answer"}}


def test_an_unstorable_result_fails_the_operation(ledger: Ledger) -> None:
    ledger.device_seen("SN0001", "dragonfly-2")
    with pytest.raises(InvalidLedgerInput), ledger.operation("SN0001", "calibrate") as op:
        op.result = {"rms": float("nan")}
    (failed,) = ledger.operations()
    assert failed.status == "failed"
    assert failed.result is not None and failed.result["error"]["type"].endswith("InvalidLedgerInput")


def test_operations_are_listed_per_unit_oldest_first(ledger: Ledger) -> None:
    for serial in ("SN0001", "SN0002"):
        ledger.device_seen(serial, "dragonfly-2")
    for kind in ("reboot", "flash", "calibrate"):
        for serial in ("SN0001", "SN0002"):
            with ledger.operation(serial, kind):
                pass
    assert [o.kind for o in ledger.operations("SN0002")] == ["reboot", "flash", "calibrate"]
    assert len(ledger.operations()) == 6


def test_an_operation_on_an_unknown_unit_or_operator_writes_nothing(ledger: Ledger) -> None:
    before = ledger.head()
    with pytest.raises(UnknownDevice), ledger.operation("SN9999", "flash"):
        pass
    ledger.device_seen("SN0001", "dragonfly-2")
    seen = ledger.head()
    with pytest.raises(UnknownOperator), ledger.operation("SN0001", "flash", operator="mallory"):
        pass
    assert ledger.head() == seen and seen.entry_id == before.entry_id + 1
    assert ledger.operations() == []


def test_operator_roles_are_registered_and_changed_with_an_audit_entry(ledger: Ledger) -> None:
    assert ledger.register_operator("bob", "installer").role == "installer"
    assert ledger.register_operator("bob", "installer").role == "installer"  # no change, no entry
    assert ledger.register_operator("bob", "support").role == "support"
    actions = [e.action for e in ledger.audit_entries(subject="operator:bob")]
    assert actions == ["operator.registered", "operator.role_changed"]


def test_the_state_change_and_its_audit_entry_commit_together(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_append(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(chain, "append", broken_append)
    with pytest.raises(RuntimeError):
        ledger.device_seen("SN0001", "dragonfly-2")
    monkeypatch.undo()
    assert ledger.devices() == []
    assert ledger.verify().ok


BAD_CALLS: list[tuple[str, Callable[[Ledger], object], type[Exception]]] = [
    ("empty serial", lambda lg: lg.device_seen("", "dragonfly-2"), InvalidLedgerInput),
    ("serial with space", lambda lg: lg.device_seen("SN 1", "dragonfly-2"), InvalidLedgerInput),
    ("long serial", lambda lg: lg.device_seen("S" * 65, "dragonfly-2"), InvalidLedgerInput),
    ("serial not text", lambda lg: lg.device_seen(1234, "dragonfly-2"), InvalidLedgerInput),  # type: ignore[arg-type]
    ("empty model", lambda lg: lg.device_seen("SN0001", ""), InvalidLedgerInput),
    ("control char", lambda lg: lg.device_seen("SN0001", "dragon\nfly"), InvalidLedgerInput),
    ("padded port", lambda lg: lg.device_seen("SN0001", "dragonfly-2", " 1-4"), InvalidLedgerInput),
    ("bad kind", lambda lg: lg.operation("SN0001", "Flash!").__enter__(), InvalidLedgerInput),
    ("bad role", lambda lg: lg.register_operator("eve", "root"), InvalidLedgerInput),
    ("bad action", lambda lg: lg.audit("Key Loaded", "device:SN0001"), InvalidLedgerInput),
    ("details not object", lambda lg: lg.audit("note", "x", [1, 2]), InvalidLedgerInput),  # type: ignore[arg-type]
    ("bytes", lambda lg: lg.audit("note", "x", {"blob": b"\x00"}), InvalidLedgerInput),
    ("set", lambda lg: lg.audit("note", "x", {"ids": {1, 2}}), InvalidLedgerInput),
    ("infinity", lambda lg: lg.audit("note", "x", {"v": float("inf")}), InvalidLedgerInput),
    ("int key", lambda lg: lg.audit("note", "x", {"m": {1: "a"}}), InvalidLedgerInput),
    ("surrogate", lambda lg: lg.audit("note", "x", {"t": "\ud800"}), InvalidLedgerInput),
    ("too big", lambda lg: lg.audit("note", "x", {"t": "x" * 70_000}), InvalidLedgerInput),
    ("too deep", lambda lg: lg.audit("note", "x", _deep(40)), InvalidLedgerInput),
    ("bdk", lambda lg: lg.audit("key.loaded", "x", {"bdk": "00" * 16}), SecretRefused),
    ("nested pin", lambda lg: lg.audit("note", "x", {"card": {"PIN": "1234"}}), SecretRefused),
    ("clear key", lambda lg: lg.audit("note", "x", {"list": [{"clear-key": "ab"}]}), SecretRefused),
    ("passphrase", lambda lg: lg.audit("note", "x", {"keystore_passphrase": "x"}), SecretRefused),
]


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"d": value}
    return value


@pytest.mark.parametrize(("call", "error"), [(c, e) for _, c, e in BAD_CALLS], ids=[n for n, _, _ in BAD_CALLS])
def test_bad_input_gets_a_typed_error_and_changes_nothing(
    ledger: Ledger, call: Callable[[Ledger], object], error: type[Exception]
) -> None:
    ledger.device_seen("SN0001", "dragonfly-2", "1-4.2")
    before = (ledger.head(), ledger.devices())
    with pytest.raises(error) as caught:
        call(ledger)
    assert str(caught.value)
    assert (ledger.head(), ledger.devices(), ledger.operations()) == (*before, [])
    assert ledger.verify().ok


def test_a_result_holding_a_secret_is_not_stored(ledger: Ledger) -> None:
    ledger.device_seen("SN0001", "dragonfly-2")
    with pytest.raises(SecretRefused), ledger.operation("SN0001", "inject") as op:
        op.result = {"key_id": "FFFF0001", "session_key": "00112233445566778899AABBCCDDEEFF"}
    (failed,) = ledger.operations()
    assert failed.status == "failed" and failed.result is not None
    assert set(failed.result) == {"error"}
    assert all("00112233" not in json.dumps(e.details) for e in ledger.audit_entries())


def test_key_ids_and_kcvs_may_be_recorded(ledger: Ledger) -> None:
    entry = ledger.audit(
        "keys.injected", "device:SN0001", {"key_id": "FFFF0001", "kcv": "A1B2C3", "public_key": "MFkw"}
    )
    assert entry.details == {"key_id": "FFFF0001", "kcv": "A1B2C3", "public_key": "MFkw"}


# -- the hash chain -------------------------------------------------------------------------------


def test_entry_hash_is_sha256_over_prev_hash_and_canonical_json(ledger: Ledger) -> None:
    entry = ledger.audit("test.note", "note:1", {"b": [1, 2.5, None], "a": "流水"}, operator=None)
    fields = {
        "id": entry.id,
        "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "station": "bench-1",
        "operator": None,
        "action": "test.note",
        "subject": "note:1",
        "details": {"a": "流水", "b": [1, 2.5, None]},
    }
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert entry.hash == hashlib.sha256((entry.prev_hash + encoded).encode()).hexdigest()
    assert entry.prev_hash == ledger.audit_entries()[-2].hash
    assert ledger.head() == AuditHead(entry.id, entry.hash)


def test_an_untouched_chain_verifies(ledger: Ledger) -> None:
    ledger.device_seen("SN0001", "dragonfly-2")
    _fill(ledger, 5)
    report = ledger.verify()
    assert report.ok and report.first_bad_id is None and report.reason is None
    assert report.entries == 7 == ledger.head().entry_id
    report.raise_if_broken()


@pytest.fixture
def chained(ledger: Ledger) -> Ledger:
    """A ledger whose chain holds entries 1 (station) to 8."""
    _fill(ledger, 7)
    assert ledger.head().entry_id == 8
    return ledger


def test_an_edited_entry_is_found(chained: Ledger, url: str) -> None:
    with _raw(url) as raw:
        raw.execute("""UPDATE audit_log SET details = '{"n": 99, "text": "ok"}' WHERE id = 4""")
    report = chained.verify()
    assert (report.ok, report.first_bad_id, report.problem, report.entries) == (False, 4, ChainProblem.EDITED, 3)
    with pytest.raises(AuditChainBroken, match="4"):
        report.raise_if_broken()


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(chained: Ledger, url: str) -> None:
    _rewrite(url, 4, details={"n": 99, "text": "ok"}, rechain=False)
    report = chained.verify()
    assert (report.first_bad_id, report.problem) == (5, ChainProblem.BROKEN_LINK)


def test_a_deleted_middle_entry_is_found(chained: Ledger, url: str) -> None:
    with _raw(url) as raw:
        raw.execute("DELETE FROM audit_log WHERE id = 4")
    report = chained.verify()
    assert (report.first_bad_id, report.problem) == (5, ChainProblem.BROKEN_LINK)


def test_reordered_entries_are_found(chained: Ledger, url: str) -> None:
    with _raw(url) as raw:
        raw.execute("UPDATE audit_log SET id = -1 WHERE id = 4")
        raw.execute("UPDATE audit_log SET id = 4 WHERE id = 5")
        raw.execute("UPDATE audit_log SET id = 5 WHERE id = -1")
    report = chained.verify()
    assert (report.first_bad_id, report.problem) == (4, ChainProblem.EDITED)


def test_an_entry_slipped_in_after_the_head_is_found(chained: Ledger, url: str) -> None:
    last = chained.audit_entries()[-1]
    at = dt.datetime.now(dt.UTC)
    details = {"n": 1}
    digest = chain.entry_hash(
        last.hash, entry_id=9, at=at, station="bench-1", operator=None, action="x", subject="y", details=details
    )
    with _raw(url) as raw:
        raw.execute(
            "INSERT INTO audit_log (id, at, station, operator, action, subject, details, prev_hash, hash)"
            " VALUES (9, ?, 'bench-1', NULL, 'x', 'y', ?, ?, ?)",
            (at.replace(tzinfo=None).isoformat(sep=" "), json.dumps(details), last.hash, digest),
        )
    report = chained.verify()
    assert (report.first_bad_id, report.problem) == (9, ChainProblem.HEAD_MISMATCH)


def test_a_cut_off_tail_is_found_through_the_head_row(chained: Ledger, url: str) -> None:
    with _raw(url) as raw:
        raw.execute("DELETE FROM audit_log WHERE id >= 7")
    report = chained.verify()
    assert (report.first_bad_id, report.problem, report.entries) == (7, ChainProblem.HEAD_MISMATCH, 6)


def test_a_cut_off_tail_with_a_forged_head_needs_the_kept_head(chained: Ledger, url: str) -> None:
    kept = chained.head()
    with _raw(url) as raw:
        raw.execute("DELETE FROM audit_log WHERE id >= 7")
        six = raw.execute("SELECT hash FROM audit_log WHERE id = 6").fetchone()[0]
        raw.execute("UPDATE audit_head SET entry_id = 6, hash = ?", (six,))
    assert chained.verify().ok  # undetectable from inside the database alone
    report = chained.verify(anchor=kept)
    assert (report.ok, report.first_bad_id, report.problem) == (False, 7, ChainProblem.ANCHOR_MISSING)


def test_a_rewritten_chain_is_found_by_the_kept_head(chained: Ledger, url: str) -> None:
    kept = chained.head()
    _rewrite(url, 3, details={"n": 42, "text": "forged"}, rechain=True)
    assert chained.verify().ok
    report = chained.verify(anchor=kept)
    assert (report.first_bad_id, report.problem) == (8, ChainProblem.ANCHOR_MISMATCH)
    assert chained.verify(anchor=AuditHead(0, chain.GENESIS_HASH)).ok


def _rewrite(url: str, entry_id: int, *, details: dict[str, Any], rechain: bool) -> None:
    """Forge entry ``entry_id`` with valid-looking hashes, like an attacker who knows the scheme."""
    engine = create_ledger_engine(url)
    try:
        with engine.begin() as connection:
            rows = connection.execute(text("SELECT * FROM audit_log WHERE id >= :id ORDER BY id"), {"id": entry_id})
            prev = connection.execute(text("SELECT hash FROM audit_log WHERE id = :id"), {"id": entry_id - 1}).scalar()
            for row in rows.mappings().all():
                if row["id"] != entry_id and not rechain:
                    break
                new_details = details if row["id"] == entry_id else json.loads(row["details"])
                at = dt.datetime.fromisoformat(row["at"]).replace(tzinfo=dt.UTC)
                digest = chain.entry_hash(
                    str(prev),
                    entry_id=row["id"],
                    at=at,
                    station=row["station"],
                    operator=row["operator"],
                    action=row["action"],
                    subject=row["subject"],
                    details=new_details,
                )
                connection.execute(
                    text("UPDATE audit_log SET details = :d, prev_hash = :p, hash = :h WHERE id = :id"),
                    {"d": json.dumps(new_details), "p": prev, "h": digest, "id": row["id"]},
                )
                prev = digest
            if rechain:
                connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    finally:
        engine.dispose()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abcxyz"), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.dictionaries(st.sampled_from(["model", "count", "note", "kcv", "x"]), json_values, max_size=5))
def test_any_stored_details_read_back_to_the_same_hash(ledger: Ledger, details: dict[str, Any]) -> None:
    entry = ledger.audit("test.note", "note:h", details)
    (stored,) = ledger.audit_entries(limit=1)
    assert stored == entry
    recomputed = chain.entry_hash(
        stored.prev_hash,
        entry_id=stored.id,
        at=stored.at,
        station=stored.station,
        operator=stored.operator,
        action=stored.action,
        subject=stored.subject,
        details=stored.details,
    )
    assert recomputed == stored.hash


# -- concurrency ----------------------------------------------------------------------------------


def _hammer(ledger: Ledger, worker: int, rounds: int, errors: list[BaseException]) -> None:
    try:
        serial = f"SN{worker:04d}"
        ledger.device_seen(serial, "dragonfly-2", f"1-{worker}")
        for n in range(rounds):
            ledger.audit("test.note", f"note:{worker}", {"worker": worker, "n": n})
            with ledger.operation(serial, "reboot"):
                pass
    except BaseException as exc:
        errors.append(exc)


def _run_threads(targets: Sequence[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)


def test_concurrent_appends_from_threads_stay_one_chain(ledger: Ledger) -> None:
    errors: list[BaseException] = []
    workers, rounds = 6, 8
    _run_threads([partial(_hammer, ledger, w, rounds, errors) for w in range(workers)])
    assert errors == []
    expected = 1 + workers * (1 + rounds * 3)  # station, device seen, each round: note + start + finish
    report = ledger.verify()
    assert (report.ok, report.entries) == (True, expected)
    assert [e.id for e in ledger.audit_entries()] == list(range(1, expected + 1))


def test_concurrent_appends_from_separate_engines_stay_one_chain(url: str) -> None:
    ledgers = [Ledger.open(url, station=f"bench-{n}") for n in range(3)]
    try:
        errors: list[BaseException] = []
        targets = [partial(_hammer, lg, w, 6, errors) for w, lg in enumerate(ledgers * 2)]
        _run_threads(targets)
        assert errors == []
        report = ledgers[0].verify()
        assert report.ok and report.entries == 3 + 6 * (1 + 6 * 3)
        by_station = {lg.station: 0 for lg in ledgers}
        for entry in ledgers[1].audit_entries():
            by_station[entry.station] += 1
        assert by_station == {f"bench-{n}": 1 + 2 * (1 + 6 * 3) for n in range(3)}
    finally:
        for lg in ledgers:
            lg.close()


def test_stations_opening_a_fresh_database_at_once_migrate_it_once(url: str) -> None:
    opened: list[Ledger] = []
    errors: list[BaseException] = []

    def open_one(n: int) -> None:
        try:
            opened.append(Ledger.open(url, station=f"bench-{n}"))
        except BaseException as exc:
            errors.append(exc)

    _run_threads([partial(open_one, n) for n in range(4)])
    try:
        assert errors == []
        assert opened[0].verify().entries == 4
        with _raw(url) as raw:
            assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    finally:
        for lg in opened:
            lg.close()
