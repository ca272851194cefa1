"""The ledger's runs of recipes: claims across stations (SQLite and PostgreSQL), takeover, steps, the audit chain."""

from __future__ import annotations

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
)

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
    columns = "serial, recipe, digest, batch, status, station_id, host, pid, started, lease_seconds, heartbeat"
    now = "CURRENT_TIMESTAMP"
    values = f"'SN1', 'bulk', '{DIGEST}', 'x', 'running', 1, 'h', 1, {now}, 60, {now}"
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
