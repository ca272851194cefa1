"""The ledger's runs of recipes: claims across stations (SQLite and PostgreSQL), takeover, steps, the audit chain."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import execute_sql
from sqlalchemy.exc import IntegrityError

from provisioning.ledger import (
    ClaimLost,
    InvalidLedgerInput,
    Ledger,
    SecretRefused,
    default_station_name,
    runs,
)
from provisioning.ledger import ledger as ledger_module

DIGEST = "a" * 64
OTHER_DIGEST = "b" * 64


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


def _pair(url: str) -> Iterator[tuple[Ledger, Ledger]]:
    one, other = Ledger.open(url, station="line-1"), Ledger.open(url, station="line-2")
    try:
        yield one, other
    finally:
        one.close()
        other.close()


@pytest.fixture
def two(url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two stations on one database, SQLite and PostgreSQL: for what depends on the database."""
    yield from _pair(url)


@pytest.fixture
def pair(sqlite_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two stations on one SQLite database: for what the database does not change."""
    yield from _pair(sqlite_url)


def _age_heartbeats(url: str, seconds: int = 3600) -> None:
    """Make every running claim look silent for ``seconds`` (heartbeats are unsealed: no tampering)."""
    if url.startswith("sqlite"):
        execute_sql(url, f"UPDATE unit_runs SET heartbeat = datetime(heartbeat, '-{seconds} seconds')")
    else:
        execute_sql(url, f"UPDATE unit_runs SET heartbeat = heartbeat - interval '{seconds} seconds'")


def test_a_unit_is_claimed_by_one_station_and_held_from_the_others(two: tuple[Ledger, Ledger]) -> None:
    one, other = two
    claim = one.claim_unit_run("SN1", "bulk", DIGEST, "b1")
    assert (claim.outcome, claim.run.station, claim.run.status, claim.steps) == ("claimed", "line-1", "running", ())
    held = other.claim_unit_run("SN1", "bulk", DIGEST, "b2")
    assert (held.outcome, held.run.id, held.run.station) == ("held-elsewhere", claim.run.id, "line-1")
    assert other.claim_unit_run("SN1", "diagnose", DIGEST, "b3", read_only=True).outcome == "held-elsewhere"
    assert one.unit_run_heartbeat(claim.run.id)
    assert not other.unit_run_heartbeat(claim.run.id)  # not its claim
    with pytest.raises(ClaimLost):
        other.start_unit_step(claim.run.id, 0, "flash")
    one.finish_unit_run(claim.run.id, True)
    assert not one.unit_run_heartbeat(claim.run.id)  # ended: nothing to keep alive
    done = other.claim_unit_run("SN1", "bulk", DIGEST, "b4")
    assert (done.outcome, done.run.id) == ("already-done", claim.run.id)
    looked = other.claim_unit_run("SN1", "diagnose", DIGEST, "b5", read_only=True)
    assert looked.outcome == "claimed" and looked.run.station == "line-2"
    assert one.verify().ok


def test_racing_stations_claim_each_unit_exactly_once(two: tuple[Ledger, Ledger]) -> None:
    serials = [f"SN{n:03}" for n in range(12)]
    outcomes: dict[str, list[tuple[str, str]]] = {s: [] for s in serials}
    errors: list[BaseException] = []
    gate = threading.Barrier(4)

    def race(ledger: Ledger) -> None:
        try:
            gate.wait(timeout=30)
            for serial in serials:
                claim = ledger.claim_unit_run(serial, "bulk", DIGEST, f"b-{ledger.station}")
                outcomes[serial].append((claim.outcome, claim.run.station))
        except BaseException as exc:
            errors.append(exc)

    one, other = two
    threads = [threading.Thread(target=race, args=(ledger,)) for ledger in (one, other, one, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for serial, seen in outcomes.items():
        won = [station for outcome, station in seen if outcome == "claimed"]
        assert len(won) == 1, (serial, seen)
        # every loser saw the winner holding it (two threads of one station both lose to the other thread's claim)
        assert all(station == won[0] for outcome, station in seen if outcome == "held-elsewhere"), seen
        assert len(seen) == 4
    runs = one.unit_runs()
    assert len(runs) == len(serials) and {r.serial for r in runs} == set(serials)
    assert one.verify().ok


def test_the_database_itself_refuses_a_second_running_run_of_a_unit(two: tuple[Ledger, Ledger], url: str) -> None:
    one, _other = two
    one.claim_unit_run("SN1", "bulk", DIGEST, "b1")
    columns = "serial, recipe, digest, batch, status, station_id, host, pid, machine, nonce, started, lease_seconds"
    now = "CURRENT_TIMESTAMP"
    values = f"'SN1', 'bulk', '{DIGEST}', 'x', 'running', 1, 'h', 1, 'm', 'n', {now}, 60"
    columns, values = f"{columns}, heartbeat", f"{values}, {now}"
    with pytest.raises(IntegrityError):
        execute_sql(url, f"INSERT INTO unit_runs ({columns}) VALUES ({values})")
    execute_sql(url, f"INSERT INTO unit_runs ({columns}) VALUES ({values.replace('running', 'failed')})")


def test_steps_are_recorded_audited_and_read_back_in_order(pair: tuple[Ledger, Ledger]) -> None:
    one, other = pair
    run = one.claim_unit_run("SN1", "bulk", DIGEST, "b1").run
    first = one.start_unit_step(run.id, 0, "flash")
    one.finish_unit_step(first, True, seconds=1.25, detail="flashed 2.4.0", data={"version": "2.4.0"})
    second = one.start_unit_step(run.id, 1, "inject")
    error = {"error": "UnitGone", "message": "gone", "remedy": "re-plug"}
    one.finish_unit_step(second, False, seconds=0.5, detail="gone", error=error)
    with pytest.raises(InvalidLedgerInput):
        one.finish_unit_step(second, True)  # a finished attempt stays as it ended
    one.finish_unit_run(run.id, False)
    resumed = other.claim_unit_run("SN1", "bulk", DIGEST, "b2")
    assert resumed.outcome == "resumed" and resumed.run.id == run.id and resumed.run.station == "line-2"
    assert [(s.name, s.status) for s in resumed.steps] == [("flash", "succeeded"), ("inject", "failed")]
    third = other.start_unit_step(run.id, 1, "inject")
    other.finish_unit_step(third, True, data={"initial_key_id": "FFFF000000000001", "kcv": "A1B2C3"}, already_done=True)
    other.finish_unit_run(run.id, True)
    steps = one.unit_steps("SN1")
    assert [(s.name, s.status, s.recipe, s.run_id) for s in steps] == [
        ("flash", "succeeded", "bulk", run.id),
        ("inject", "failed", "bulk", run.id),
        ("inject", "succeeded", "bulk", run.id),
    ]
    assert (steps[0].seconds, steps[0].detail, steps[0].data) == (1.25, "flashed 2.4.0", {"version": "2.4.0"})
    assert steps[1].error == error and steps[2].already_done and not steps[0].already_done
    (record,) = one.unit_runs("SN1")
    assert record.status == "succeeded" and record.finished is not None
    actions = [e.action for e in one.audit_entries(subject="device:SN1")]
    assert actions == [
        "station.run.started",
        "station.step.started",
        "station.step.succeeded",
        "station.step.started",
        "station.step.failed",
        "station.run.failed",
        "station.run.resumed",
        "station.step.started",
        "station.step.succeeded",
        "station.run.succeeded",
    ]
    assert one.verify().ok


def test_a_run_under_another_digest_starts_afresh(pair: tuple[Ledger, Ledger]) -> None:
    one, _other = pair
    run = one.claim_unit_run("SN1", "bulk", DIGEST, "b1").run
    one.finish_unit_run(run.id, False)
    fresh = one.claim_unit_run("SN1", "bulk", OTHER_DIGEST, "b2")
    assert fresh.outcome == "claimed" and fresh.run.id != run.id


def test_no_secret_reaches_a_step_row(pair: tuple[Ledger, Ledger]) -> None:
    one, _other = pair
    run = one.claim_unit_run("SN1", "bulk", DIGEST, "b1").run
    step = one.start_unit_step(run.id, 0, "inject")
    with pytest.raises(SecretRefused):
        one.finish_unit_step(step, True, data={"bdk": "0123456789ABCDEF"})
    with pytest.raises(SecretRefused):
        one.finish_unit_step(step, False, error={"pin": "1234"})
    assert one.run_steps(run.id)[0].status == "running"  # nothing was written


def test_a_silent_claim_is_taken_over_after_its_lease_and_fences_the_old_holder(
    two: tuple[Ledger, Ledger], url: str
) -> None:
    one, other = two
    run = one.claim_unit_run("SN1", "bulk", DIGEST, "b1", lease=30).run
    step = one.start_unit_step(run.id, 0, "flash")
    assert other.claim_unit_run("SN1", "bulk", DIGEST, "b2").outcome == "held-elsewhere"
    _age_heartbeats(url, 31)
    taken = other.claim_unit_run("SN1", "bulk", DIGEST, "b2")
    assert (taken.outcome, taken.run.id, taken.taken_over, taken.run.station) == ("resumed", run.id, "line-1", "line-2")
    assert [(s.name, s.status) for s in taken.steps] == [("flash", "running")]
    assert not one.unit_run_heartbeat(run.id)  # the old holder learns it lost the unit
    with pytest.raises(ClaimLost) as caught:
        one.finish_unit_step(step, True)
    assert "line-2" in str(caught.value)
    with pytest.raises(ClaimLost):
        one.finish_unit_run(run.id, True)
    assert [e.action for e in one.audit_entries(subject="device:SN1")][-2:] == [
        "station.run.taken_over",
        "station.run.resumed",
    ]
    assert one.verify().ok


def test_a_taken_over_run_of_another_recipe_is_closed_and_a_new_one_started(
    pair: tuple[Ledger, Ledger], sqlite_url: str
) -> None:
    one, other = pair
    old = one.claim_unit_run("SN1", "bulk", DIGEST, "b1").run
    _age_heartbeats(sqlite_url)
    claim = other.claim_unit_run("SN1", "support", DIGEST, "b2", read_only=True)
    assert claim.outcome == "claimed" and claim.taken_over == "line-1"
    assert [(r.id, r.status) for r in one.unit_runs("SN1")] == [(old.id, "failed"), (claim.run.id, "running")]


_CLAIM_AND_DIE = """
import os, signal, sys
from provisioning.ledger import Ledger
ledger = Ledger.open(sys.argv[1], station=sys.argv[2])
run = ledger.claim_unit_run("SN1", "bulk", "a" * 64, "b1").run
ledger.finish_unit_step(ledger.start_unit_step(run.id, 0, "flash"), True, data={"version": "2.4.0"})
ledger.start_unit_step(run.id, 1, "inject")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_same_station_restarted_takes_its_dead_runs_back_at_once(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url, station="line-1") as ledger:
        pass  # migrated before the child runs
    died = subprocess.run([sys.executable, "-c", _CLAIM_AND_DIE, sqlite_url, "line-1"], timeout=60, check=False)
    assert died.returncode == -9
    with Ledger.open(sqlite_url, station="line-2") as other:
        assert other.claim_unit_run("SN1", "bulk", DIGEST, "b2").outcome == "held-elsewhere"  # its lease still runs
    with Ledger.open(sqlite_url, station="line-1") as ledger:
        back = ledger.claim_unit_run("SN1", "bulk", DIGEST, "b3")
        assert (back.outcome, back.taken_over) == ("resumed", "line-1")
        assert [(s.name, s.status) for s in back.steps] == [("flash", "succeeded"), ("inject", "running")]
        assert ledger.verify().ok


def test_bad_input_changes_nothing(pair: tuple[Ledger, Ledger]) -> None:
    one, _other = pair
    for args in (("SN 1", "bulk", DIGEST, "b"), ("SN1", "", DIGEST, "b"), ("SN1", "bulk", "xyz", "b")):
        with pytest.raises(InvalidLedgerInput):
            one.claim_unit_run(*args)
    with pytest.raises(InvalidLedgerInput):
        one.claim_unit_run("SN1", "bulk", DIGEST, "b", lease=0)
    run = one.claim_unit_run("SN1", "bulk", DIGEST, "b").run
    with pytest.raises(InvalidLedgerInput):
        one.start_unit_step(run.id, -1, "flash")
    with pytest.raises(InvalidLedgerInput):
        one.start_unit_step(run.id, 0, "Flash Step")
    assert one.run_steps(run.id) == [] and len(one.unit_runs()) == 1


def test_naiad_station_names_the_station(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("NAIAD_STATION", "line-7")
    assert default_station_name() == "line-7"
    with Ledger.open(sqlite_url) as ledger:
        assert ledger.station == "line-7"
    monkeypatch.setenv("NAIAD_STATION", "")
    assert default_station_name() != ""


def _dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def test_a_dead_holder_is_taken_back_at_once_only_from_this_machine_and_process(sqlite_url: str) -> None:
    # Runs are rewritten behind the ledger's back (sealed columns): this test never verifies the chain.
    with Ledger.open(sqlite_url, station="line-1") as ledger:
        ledger.claim_unit_run("SN1", "bulk", DIGEST, "b1")
        assert ledger.claim_unit_run("SN1", "bulk", DIGEST, "b2").outcome == "held-elsewhere"  # this very process
        # the same station name and host on another machine (a cloned disk), its pid unknown here: keep off
        execute_sql(sqlite_url, f"UPDATE unit_runs SET machine = 'f00d', nonce = 'old', pid = {_dead_pid()}")
        assert ledger.claim_unit_run("SN1", "bulk", DIGEST, "b2").outcome == "held-elsewhere"
        # on this machine, its process gone: taken back at once
        execute_sql(sqlite_url, f"UPDATE unit_runs SET machine = '{runs.machine_identity()}'")
        assert ledger.claim_unit_run("SN1", "bulk", DIGEST, "b3").outcome == "resumed"
        # a restarted station that got the dead one's pid (pid 1 in a container) is another process: at once too
        execute_sql(sqlite_url, f"UPDATE unit_runs SET nonce = 'old', pid = {os.getpid()}")
        assert ledger.claim_unit_run("SN1", "bulk", DIGEST, "b4").outcome == "resumed"
        # the claim is held by the process token, not the pid: the resumed run is this process's again
        (run,) = ledger.unit_runs("SN1")
        assert ledger.unit_run_heartbeat(run.id)
        execute_sql(sqlite_url, "UPDATE unit_runs SET nonce = 'someone-else'")
        assert not ledger.unit_run_heartbeat(run.id)  # same pid, other process: the claim is not ours


def test_the_machine_identity_is_a_hash_never_the_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n", encoding="ascii")
    monkeypatch.setattr(runs, "MACHINE_ID_FILES", (str(tmp_path / "none"), str(machine_id)))
    runs.machine_identity.cache_clear()
    try:
        found = runs.machine_identity()
        assert len(found) == 32 and "0123456789abcdef" not in found
        monkeypatch.setattr(runs, "MACHINE_ID_FILES", (str(tmp_path / "none"),))
        runs.machine_identity.cache_clear()
        assert runs.machine_identity() not in ("", found)  # no file: the node number, hashed
    finally:
        runs.machine_identity.cache_clear()


def test_leases_are_judged_by_the_databases_clock(
    two: tuple[Ledger, Ledger], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = two
    run = one.claim_unit_run("SN1", "bulk", DIGEST, "b1").run
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # the claiming station's clock runs 2 h ahead
    monkeypatch.setattr(runs, "_local_now", lambda: ahead)
    monkeypatch.setattr(ledger_module, "_now", lambda: ahead)
    claim = other.claim_unit_run("SN1", "bulk", DIGEST, "b2")
    if url.startswith("postgresql"):
        assert claim.outcome == "held-elsewhere"  # the database's clock says the claim is fresh
        assert one.unit_run_heartbeat(run.id)  # written with the database's clock, not the skewed one
        (row,) = one.unit_runs("SN1")
        assert abs(row.heartbeat - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=30)
    else:  # a SQLite ledger is a file on the station: its clock is the only clock there is
        assert claim.outcome == "resumed"


def test_a_station_taking_over_a_run_adopts_the_units_pending_calls(two: tuple[Ledger, Ledger], url: str) -> None:
    one, other = two
    one.claim_unit_run("SN1", "onsite", DIGEST, "b1")
    _queued, written = one.queue_platform_call("device.bind", "REQ-A-1", {"serial": "SN1"}, "SN1")
    assert written
    one.queue_platform_call("device.bind", "REQ-A-2", {"serial": "SN2"}, "SN2")  # another unit's: stays
    _age_heartbeats(url)
    assert other.claim_unit_run("SN1", "onsite", DIGEST, "b2").outcome == "resumed"
    assert [c.request_no for c in other.pending_platform_calls("device.bind", "SN1")] == ["REQ-A-1"]
    assert one.pending_platform_calls("device.bind", "SN1") == []
    assert [c.request_no for c in one.pending_platform_calls("device.bind")] == ["REQ-A-2"]
    again, written = other.queue_platform_call("device.bind", "REQ-B-1", {"serial": "SN1"}, "SN1")
    assert (again.request_no, written) == ("REQ-A-1", False)  # sent again with its own number, never a new one
    adopted = [e for e in other.audit_entries(subject="device:SN1") if e.action == "platform.call.adopted"]
    assert [(e.details["request_no"], e.details["from_station"]) for e in adopted] == [("REQ-A-1", "line-1")]
    assert other.verify().ok


def test_a_station_resuming_another_stations_failed_run_adopts_its_pending_calls(
    pair: tuple[Ledger, Ledger], sqlite_url: str
) -> None:
    one, other = pair
    run = one.claim_unit_run("SN1", "onsite", DIGEST, "b1").run
    one.queue_platform_call("device.activate", "REQ-A-9", {"serial": "SN1"}, "SN1")
    one.finish_unit_run(run.id, False)  # the platform did not answer: the run failed, its call still pending
    assert other.claim_unit_run("SN1", "onsite", DIGEST, "b2").outcome == "resumed"
    assert [c.request_no for c in other.pending_platform_calls("device.activate", "SN1")] == ["REQ-A-9"]
    assert other.verify().ok
