"""The pipeline with fake steps: order, parallel units, failures, resume after a crash, once-steps, claims, replug,
events and the audit chain."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from provisioning import pipeline
from provisioning.ledger import Ledger, SecretRefused
from provisioning.operators import NotLoggedIn, OperatorSession, RoleRequired
from provisioning.pipeline import BatchRun, StepCrashed, StepInterrupted, UnitHeldElsewhere, UnitRun, run_recipe
from provisioning.recipes import Recipe, parse_recipe
from provisioning.station import Station
from provisioning.steps import STEPS, OnceStep, Resources, Step, StepOutcome, UnitJob, all_steps
from terminal.discovery import Device, Discovery
from terminal.errors import DeviceNotFound, NaiadError, TransportDisconnected
from terminal.events import Message, PhaseStarted, Progressed, Recorder, StepFinished
from terminal.models import RUN

# -- the fakes ---------------------------------------------------------------------------------------


@dataclass
class Script:
    """What the fake steps do, per (serial, step), and what they were asked, in order."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (serial, step, "run"|"done_before"|"settle")
    fail: set[tuple[str, str]] = field(default_factory=set)
    crash: set[tuple[str, str]] = field(default_factory=set)
    gone_once: set[tuple[str, str]] = field(default_factory=set)
    done_before: dict[tuple[str, str], StepOutcome] = field(default_factory=dict)
    settled: dict[tuple[str, str], StepOutcome | NaiadError | None] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    hook: Callable[[str, str], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, serial: str, step: str, what: str) -> None:
        with self.lock:
            self.calls.append((serial, step, what))

    def of(self, serial: str) -> list[tuple[str, str]]:
        return [(step, what) for s, step, what in self.calls if s == serial]


SCRIPT = Script()


class Unplugged(TransportDisconnected):
    pass


class _FakeRun:
    name: ClassVar[str]

    def run(self, job: UnitJob) -> StepOutcome:
        key = (job.serial, self.name)
        SCRIPT.note(job.serial, self.name, "run")
        if SCRIPT.hook is not None:
            SCRIPT.hook(job.serial, self.name)
        if key in SCRIPT.crash:
            raise RuntimeError("driver blew up with secret 1234")
        if key in SCRIPT.gone_once:
            SCRIPT.gone_once.discard(key)
            raise Unplugged(path="sim:x")
        if key in SCRIPT.fail:
            return StepOutcome(self.name, False, detail="no", error=NaiadError("the fake step failed"))
        earlier = sorted(job.earlier)
        return StepOutcome(self.name, True, detail=f"{self.name} done", data=SCRIPT.data.get(key, {"saw": earlier}))


class FakeA(_FakeRun, Step):
    name = "fake-a"
    label = "Fake step A"


class FakeB(_FakeRun, Step):
    name = "fake-b"
    label = "Fake step B"


class FakeOnce(_FakeRun, OnceStep):
    name = "fake-once"
    label = "Fake once-only step"

    def done_before(self, job: UnitJob) -> StepOutcome | None:
        SCRIPT.note(job.serial, self.name, "done_before")
        return SCRIPT.done_before.get((job.serial, self.name))

    def settle(self, job: UnitJob) -> StepOutcome | None:
        SCRIPT.note(job.serial, self.name, "settle")
        found = SCRIPT.settled.get((job.serial, self.name))
        if isinstance(found, NaiadError):
            raise found
        return found


class FakeRead(_FakeRun, Step):
    name = "fake-read"
    label = "Fake read-only step"
    read_only = True


class FakeRead2(_FakeRun, Step):
    name = "fake-read-2"
    label = "Another fake read-only step"
    read_only = True


class FakeAdmin(_FakeRun, Step):
    name = "fake-admin"
    label = "Fake admin step"
    roles = ("admin",)


class FakeRefuses(_FakeRun, Step):
    name = "fake-refuses"
    label = "Fake step that refuses to be made"

    def __init__(self, settings: Any, resources: Resources) -> None:
        raise NaiadError("no key store")


FAKES: tuple[type[Step], ...] = (FakeA, FakeB, FakeOnce, FakeRead, FakeRead2, FakeAdmin, FakeRefuses)


@pytest.fixture(autouse=True)
def fake_steps() -> Iterator[Script]:
    global SCRIPT
    SCRIPT = Script()
    all_steps()
    for cls in FAKES:
        STEPS[cls.name] = cls
    try:
        yield SCRIPT
    finally:
        for cls in FAKES:
            STEPS.pop(cls.name, None)


class FakeDiscovery(Discovery):
    """Units that are always attached in run mode, except while ``away[serial]`` counts down."""

    def __init__(self) -> None:
        super().__init__(backend=object())
        self.away: dict[str, int] = {}

    def find(self, serial: str) -> Device:
        if self.away.get(serial, 0) > 0:
            self.away[serial] -= 1
            raise DeviceNotFound(serial=serial)
        return Device(serial, "df2", "Dragonfly 2", RUN, "1-1", "/dev/null", 1, 2, 1, 3, None)


def _recipe(*steps: str, read_only: bool = False) -> Recipe:
    text = f'name = "fakes"\nread_only = {str(read_only).lower()}\n'
    text += "".join(f'\n[[step]]\nname = "{s}"\n' for s in steps)
    return parse_recipe(text, "fakes.toml", Path("."))


@dataclass
class Bench:
    url: str
    ledger: Ledger
    station: Station
    discovery: FakeDiscovery
    events: Recorder

    def resources(self, role: str = "operator", *, session: bool = True) -> Resources:
        who = OperatorSession("alice", role) if session else None
        return Resources(station=self.station, session=who, listener=self.events)

    def run(self, recipe: Recipe, serials: list[str], **kw: Any) -> BatchRun:
        return run_recipe(recipe, serials, self.resources(), **kw)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger.open(url, station="line-1")
    ledger.register_operator("alice", "operator")
    discovery = FakeDiscovery()
    with Station(discovery, ledger=ledger) as station:
        yield Bench(url, ledger, station, discovery, Recorder())


def _results(batch: BatchRun) -> dict[str, str]:
    return {u.serial: u.result for u in batch.units}


# -- tests -------------------------------------------------------------------------------------------


def test_each_unit_runs_the_steps_in_order_recorded_and_audited(bench: Bench, fake_steps: Script) -> None:
    recipe = _recipe("fake-a", "fake-once", "fake-b")
    batch = bench.run(recipe, ["SN1", "SN2", "SN1"])
    assert _results(batch) == {"SN1": "succeeded", "SN2": "succeeded"}
    for serial in ("SN1", "SN2"):
        assert fake_steps.of(serial) == [
            ("fake-a", "run"),
            ("fake-once", "done_before"),
            ("fake-once", "run"),
            ("fake-b", "run"),
        ]
        steps = bench.ledger.unit_steps(serial)
        assert [(s.name, s.status, s.position) for s in steps] == [
            ("fake-a", "succeeded", 0),
            ("fake-once", "succeeded", 1),
            ("fake-b", "succeeded", 2),
        ]
        assert steps[2].data == {"saw": ["fake-a", "fake-once"]}  # job.earlier held the steps before it
    unit = batch.units[0]
    assert unit.ok and unit.error is None and unit.run_id is not None and unit.station == "line-1"
    shown = unit.as_dict()
    assert {"serial", "name", "result", "steps", "run_id", "station"} <= shown.keys()
    assert [s["name"] for s in shown["steps"]] == ["fake-a", "fake-once", "fake-b"]
    assert batch.reconciliation.counts == {"succeeded": 2, "failed": 0, "already-done": 0, "held-elsewhere": 0}
    assert batch.as_dict()["reconciliation"]["counts"]["succeeded"] == 2
    (entry,) = bench.ledger.audit_entries(subject=f"batch:{batch.batch_id}")
    assert entry.action == "station.batch.reconciled" and entry.details["counts"]["succeeded"] == 2
    assert bench.ledger.verify().ok


def test_events_follow_the_contract(bench: Bench) -> None:
    recipe = _recipe("fake-a", "fake-b")
    batch = bench.run(recipe, ["SN1"])
    events = [e for e in bench.events.events if e.unit == "SN1"]
    assert all(e.step == "fakes" for e in events)
    shape = [
        (type(e).__name__, getattr(e, "phase", None), getattr(e, "done", None), getattr(e, "total", None))
        for e in events
    ]
    assert shape == [
        ("PhaseStarted", "fake-a", None, None),
        ("Progressed", "fake-a", 0, 2),
        ("Progressed", "fake-a", 1, 2),
        ("PhaseStarted", "fake-b", None, None),
        ("Progressed", "fake-b", 1, 2),
        ("Progressed", "fake-b", 2, 2),
        ("StepFinished", None, None, None),
    ]
    assert [e.label for e in events if isinstance(e, PhaseStarted)] == ["Fake step A", "Fake step B"]
    assert all(e.counts == "items" for e in events if isinstance(e, Progressed))
    (finished,) = [e for e in events if isinstance(e, StepFinished)]
    assert finished.result is batch.units[0]


def test_units_run_in_parallel_each_in_its_own_worker(bench: Bench, fake_steps: Script) -> None:
    together = threading.Barrier(3)
    fake_steps.hook = lambda serial, step: together.wait(timeout=20) if step == "fake-b" else None
    batch = bench.run(_recipe("fake-a", "fake-b"), ["SN1", "SN2", "SN3"])
    assert set(_results(batch).values()) == {"succeeded"}  # all three were inside fake-b at once


def test_a_failed_step_stops_that_unit_only(bench: Bench, fake_steps: Script) -> None:
    fake_steps.fail.add(("SN2", "fake-once"))
    batch = bench.run(_recipe("fake-a", "fake-once", "fake-b"), ["SN1", "SN2"], workers=1)
    assert _results(batch) == {"SN1": "succeeded", "SN2": "failed"}
    assert fake_steps.of("SN2") == [("fake-a", "run"), ("fake-once", "done_before"), ("fake-once", "run")]
    failed = batch.units[1]
    assert not failed.ok and str(failed.error) == "the fake step failed"
    assert [s.step for s in failed.steps] == ["fake-a", "fake-once"]
    (run,) = bench.ledger.unit_runs("SN2")
    assert run.status == "failed"
    assert batch.reconciliation.counts["failed"] == 1


def test_a_crash_inside_a_step_is_a_typed_failure_without_its_text(bench: Bench, fake_steps: Script) -> None:
    fake_steps.crash.add(("SN1", "fake-a"))
    batch = bench.run(_recipe("fake-a", "fake-b"), ["SN1"])
    (unit,) = batch.units
    assert isinstance(unit.error, StepCrashed) and "RuntimeError" in str(unit.error)
    assert "1234" not in str(unit.as_dict())
    assert unit.error.__traceback__ is None
    (step,) = bench.ledger.unit_steps("SN1")
    assert step.status == "failed" and step.error is not None and step.error["error"] == "StepCrashed"
    assert "1234" not in str(step)


def test_a_unit_done_before_is_already_done_and_nothing_runs_again(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "INJECT_STEP", "fake-once")  # the key IDs come from the inject step's data
    recipe = _recipe("fake-a", "fake-once")
    fake_steps.data[("SN1", "fake-once")] = {"initial_key_id": "FFFF000000000001", "kcv": "A1B2C3"}
    first = bench.run(recipe, ["SN1"])
    assert first.units[0].kcv == "A1B2C3" and first.units[0].initial_key_id == "FFFF000000000001"
    calls = len(fake_steps.calls)
    again = run_recipe(recipe, ["SN1"], Resources(station=bench.station, session=OperatorSession("bob", "operator")))
    (unit,) = again.units
    assert unit.result == "already-done" and unit.ok and unit.run_id == first.units[0].run_id
    assert [s.step for s in unit.steps] == ["fake-a", "fake-once"]
    assert len(fake_steps.calls) == calls
    assert again.reconciliation.counts["already-done"] == 1


def test_a_read_only_recipe_runs_anew_each_time_and_reads_on_after_a_failure(bench: Bench, fake_steps: Script) -> None:
    look = _recipe("fake-read", "fake-read-2", read_only=True)
    fake_steps.fail.add(("SN1", "fake-read"))
    (unit,) = bench.run(look, ["SN1"]).units
    assert unit.result == "failed" and [s.ok for s in unit.steps] == [False, True]
    assert fake_steps.of("SN1") == [("fake-read", "run"), ("fake-read-2", "run")]
    fake_steps.fail.clear()
    assert bench.run(look, ["SN1"]).units[0].result == "succeeded"
    assert bench.run(look, ["SN1"]).units[0].result == "succeeded"  # never already-done: each look is new
    assert [r.status for r in bench.ledger.unit_runs("SN1")] == ["failed", "succeeded", "succeeded"]


def test_an_once_step_done_before_is_recorded_already_done_and_not_run(bench: Bench, fake_steps: Script) -> None:
    fake_steps.done_before[("SN1", "fake-once")] = StepOutcome("fake-once", True, detail="keyed before")
    batch = bench.run(_recipe("fake-once", "fake-b"), ["SN1"])
    assert batch.units[0].result == "succeeded"
    assert ("fake-once", "run") not in fake_steps.of("SN1")
    assert batch.units[0].steps[0].already_done
    assert bench.ledger.unit_steps("SN1")[0].already_done


def test_roles_and_constructors_refuse_the_batch_before_any_unit(bench: Bench, fake_steps: Script) -> None:
    with pytest.raises(RoleRequired):
        run_recipe(_recipe("fake-a", "fake-admin"), ["SN1"], bench.resources("operator"))
    with pytest.raises(NotLoggedIn):
        run_recipe(_recipe("fake-a"), ["SN1"], bench.resources(session=False))
    with pytest.raises(NaiadError, match="no key store"):
        run_recipe(_recipe("fake-a", "fake-refuses"), ["SN1"], bench.resources())
    with pytest.raises(pipeline.NoUnitsSelected):
        run_recipe(_recipe("fake-a"), [], bench.resources())
    assert fake_steps.calls == [] and bench.ledger.unit_runs() == []
    assert run_recipe(_recipe("fake-admin"), ["SN1"], bench.resources("admin")).ok


def test_a_unit_another_station_holds_is_left_alone(bench: Bench, fake_steps: Script) -> None:
    recipe = _recipe("fake-a")
    with Ledger.open(bench.url, station="line-2") as other:
        other.claim_unit_run("SN1", recipe.name, recipe.digest, "theirs")
        batch = bench.run(recipe, ["SN1", "SN2"])
    assert _results(batch) == {"SN1": "held-elsewhere", "SN2": "succeeded"}
    held = batch.units[0]
    assert isinstance(held.error, UnitHeldElsewhere) and held.station == "line-2" and not held.ok
    assert fake_steps.of("SN1") == []
    assert batch.ok  # the other station's batch accounts for SN1: on a line, `--all` meets such units every time


def test_secret_looking_data_fails_the_step_and_is_never_stored(bench: Bench, fake_steps: Script) -> None:
    fake_steps.data[("SN1", "fake-a")] = {"bdk": "00112233445566778899AABBCCDDEEFF"}
    batch = bench.run(_recipe("fake-a", "fake-b"), ["SN1"])
    (unit,) = batch.units
    assert unit.result == "failed" and isinstance(unit.error, SecretRefused)
    (step,) = bench.ledger.unit_steps("SN1")
    assert step.status == "failed" and step.data == {} and "00112233" not in str(step)


def test_an_unplugged_unit_is_waited_for_and_goes_on_from_that_step(bench: Bench, fake_steps: Script) -> None:
    fake_steps.gone_once.add(("SN1", "fake-b"))
    bench.discovery.away["SN1"] = 3
    batch = bench.run(_recipe("fake-a", "fake-b"), ["SN1"])
    assert batch.units[0].result == "succeeded"
    assert fake_steps.of("SN1") == [("fake-a", "run"), ("fake-b", "run"), ("fake-b", "run")]
    assert [(s.name, s.status) for s in bench.ledger.unit_steps("SN1")] == [
        ("fake-a", "succeeded"),
        ("fake-b", "failed"),
        ("fake-b", "succeeded"),
    ]
    assert any("went away" in e.text for e in bench.events.of(Message, "SN1"))


def test_a_unit_that_stays_away_fails_after_the_replug_time(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "REPLUG_SECONDS", 0.3)
    fake_steps.gone_once.add(("SN1", "fake-b"))
    bench.discovery.away["SN1"] = 10**6
    (unit,) = bench.run(_recipe("fake-a", "fake-b"), ["SN1"]).units
    assert unit.result == "failed" and isinstance(unit.error, TransportDisconnected)
    assert fake_steps.of("SN1") == [("fake-a", "run"), ("fake-b", "run")]


def test_a_claim_taken_over_mid_step_stops_the_unit_and_writes_nothing_more(bench: Bench, fake_steps: Script) -> None:
    from helpers import execute_sql

    recipe = _recipe("fake-a", "fake-b")
    taken: list[str] = []

    def take_over(serial: str, step: str) -> None:
        if step == "fake-a":
            execute_sql(bench.url, "UPDATE unit_runs SET heartbeat = datetime(heartbeat, '-3600 seconds')")
            with Ledger.open(bench.url, station="line-2") as other:
                taken.append(other.claim_unit_run(serial, recipe.name, recipe.digest, "theirs").outcome)

    fake_steps.hook = take_over
    (unit,) = bench.run(recipe, ["SN1"]).units
    assert taken == ["resumed"]
    assert unit.result == "failed" and "line-2" in str(unit.error)
    assert fake_steps.of("SN1") == [("fake-a", "run")]
    (run,) = bench.ledger.unit_runs("SN1")
    assert (run.status, run.station) == ("running", "line-2")
    assert bench.ledger.verify().ok


# -- resuming after the station died ------------------------------------------------------------------

_DIE_IN_STEP = """
import os, signal, sys
from provisioning.ledger import Ledger
url, names, dying, digest = sys.argv[1:5]
ledger = Ledger.open(url, station="line-1")
run = ledger.claim_unit_run("SN1", "fakes", digest, "b0").run
steps = names.split(",")
for position, name in enumerate(steps):
    step = ledger.start_unit_step(run.id, position, name)
    if name == dying:
        os.kill(os.getpid(), signal.SIGKILL)
    ledger.finish_unit_step(step, True, detail="before the crash", data={"position": position})
"""


def _die_in(bench: Bench, recipe: Recipe, step: str) -> None:
    """A station process that ran ``recipe`` on SN1 and was killed (SIGKILL) inside ``step``."""
    names = ",".join(s.name for s in recipe.steps)
    code = textwrap.dedent(_DIE_IN_STEP)
    died = subprocess.run([sys.executable, "-c", code, bench.url, names, step, recipe.digest], timeout=60, check=False)
    assert died.returncode == -9
    (run,) = bench.ledger.unit_runs("SN1")
    assert run.status == "running"


def test_after_a_crash_the_unit_resumes_after_its_last_completed_step(bench: Bench, fake_steps: Script) -> None:
    recipe = _recipe("fake-a", "fake-b", "fake-once")
    _die_in(bench, recipe, "fake-b")
    batch = bench.run(recipe, ["SN1"])
    (unit,) = batch.units
    assert unit.result == "succeeded"
    # fake-a is not run again: its outcome is read back; fake-b (repeatable, found running) runs again
    assert fake_steps.of("SN1") == [("fake-b", "run"), ("fake-once", "done_before"), ("fake-once", "run")]
    assert unit.steps[0].data == {"position": 0} and unit.steps[0].detail == "before the crash"
    steps = bench.ledger.unit_steps("SN1")
    assert [(s.name, s.status) for s in steps] == [
        ("fake-a", "succeeded"),
        ("fake-b", "failed"),
        ("fake-b", "succeeded"),
        ("fake-once", "succeeded"),
    ]
    assert steps[1].error is not None and steps[1].error["error"] == StepInterrupted.__name__
    assert steps[3].data == {"saw": ["fake-a", "fake-b"]}
    assert len(bench.ledger.unit_runs("SN1")) == 1
    assert bench.ledger.verify().ok


def test_an_once_step_found_running_is_settled_never_run_again(bench: Bench, fake_steps: Script) -> None:
    recipe = _recipe("fake-a", "fake-once", "fake-b")
    _die_in(bench, recipe, "fake-once")
    fake_steps.settled[("SN1", "fake-once")] = StepOutcome("fake-once", True, detail="it was done", already_done=True)
    (unit,) = bench.run(recipe, ["SN1"]).units
    assert unit.result == "succeeded"
    assert fake_steps.of("SN1") == [("fake-once", "settle"), ("fake-b", "run")]
    steps = bench.ledger.unit_steps("SN1")
    assert [(s.name, s.status, s.already_done) for s in steps] == [
        ("fake-a", "succeeded", False),
        ("fake-once", "succeeded", True),
        ("fake-b", "succeeded", False),
    ]


def test_an_once_step_settled_as_not_done_runs_and_one_that_cannot_tell_waits(bench: Bench, fake_steps: Script) -> None:
    recipe = _recipe("fake-a", "fake-once")
    _die_in(bench, recipe, "fake-once")
    fake_steps.settled[("SN1", "fake-once")] = NaiadError("the platform does not answer")
    (unit,) = bench.run(recipe, ["SN1"]).units
    assert unit.result == "failed" and str(unit.error) == "the platform does not answer"
    assert [(s.name, s.status) for s in bench.ledger.unit_steps("SN1")][-1] == ("fake-once", "running")
    fake_steps.settled[("SN1", "fake-once")] = None  # certainly not done: now it runs
    (unit,) = bench.run(recipe, ["SN1"]).units
    assert unit.result == "succeeded"
    assert fake_steps.of("SN1") == [("fake-once", "settle"), ("fake-once", "settle"), ("fake-once", "run")]
    assert bench.ledger.verify().ok


def test_unit_run_satisfies_the_step_result_protocol() -> None:
    unit = UnitRun("SN1", "fakes", "failed", [StepOutcome("inject", False, error=NaiadError("x"))], 1, "line-1")
    assert not unit.ok and str(unit.error) == "x" and unit.kcv is None and unit.initial_key_id is None
    assert unit.as_dict()["error"]["message"] == "x"


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_two_stations_on_one_ledger_work_each_unit_once(
    database: str, tmp_path: Path, request: pytest.FixtureRequest, fake_steps: Script
) -> None:
    url = f"sqlite:///{tmp_path / 'line.sqlite'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    serials = [f"SN{n}" for n in range(8)]
    recipe = _recipe("fake-a", "fake-once", "fake-b")
    together = threading.Barrier(2)
    batches: dict[str, BatchRun] = {}
    errors: list[BaseException] = []

    def station(name: str) -> None:
        try:
            with Ledger.open(url, station=name) as ledger, Station(FakeDiscovery(), ledger=ledger) as bench:
                together.wait(timeout=30)
                session = OperatorSession("alice", "operator")
                batches[name] = run_recipe(recipe, serials, Resources(station=bench, session=session), workers=4)
        except BaseException as exc:
            errors.append(exc)

    Ledger.open(url, station="line-0").close()  # migrated once, before the race
    threads = [threading.Thread(target=station, args=(name,)) for name in ("line-1", "line-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for serial in serials:
        results = sorted(b.units[serials.index(serial)].result for b in batches.values())
        assert results.count("succeeded") == 1, (serial, results)
        assert set(results) <= {"succeeded", "held-elsewhere", "already-done"}
        assert [what for step, what in fake_steps.of(serial) if step == "fake-once"] == ["done_before", "run"]
    with Ledger.open(url, station="line-0") as ledger:
        runs = ledger.unit_runs()
        assert sorted(r.serial for r in runs) == serials and {r.status for r in runs} == {"succeeded"}
        assert ledger.verify().ok


def test_a_ledger_that_fails_at_the_end_keeps_the_units_results(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioning.ledger import LedgerUnavailable, Reconciliation

    def unavailable(self: Ledger, serials: list[str] | None = None) -> Reconciliation:
        raise LedgerUnavailable(url="sqlite:///x", detail="gone")

    monkeypatch.setattr(Ledger, "reconcile", unavailable)
    batch = bench.run(_recipe("fake-a"), ["SN1"])
    assert _results(batch) == {"SN1": "succeeded"}
    assert not batch.reconciliation.ok and isinstance(batch.reconciliation.error, LedgerUnavailable)
    shown = batch.as_dict()["reconciliation"]
    assert shown["ok"] is False and shown["counts"]["succeeded"] == 1 and shown["error"]["error"] == "LedgerUnavailable"


def test_a_bug_in_one_units_worker_fails_that_unit_only(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline._UnitWorker._run

    def buggy(self: Any) -> UnitRun:
        if self.serial == "SN2":
            raise KeyError("oops")
        return real(self)

    monkeypatch.setattr(pipeline._UnitWorker, "_run", buggy)
    batch = bench.run(_recipe("fake-a"), ["SN1", "SN2"])
    assert _results(batch) == {"SN1": "succeeded", "SN2": "failed"}
    assert isinstance(batch.units[1].error, pipeline.PipelineCrashed) and "KeyError" in str(batch.units[1].error)


def test_the_heartbeat_keeps_a_claim_and_notices_when_it_is_taken(bench: Bench) -> None:
    from helpers import execute_sql

    age = "UPDATE unit_runs SET heartbeat = datetime(heartbeat, '-3600 seconds')"
    run = bench.ledger.claim_unit_run("SN1", "fakes", "a" * 64, "b1").run
    heartbeat = pipeline._Heartbeat(bench.ledger, interval=3600)
    lost = heartbeat.watch(run.id)
    with Ledger.open(bench.url, station="line-2") as other:
        execute_sql(bench.url, age)
        heartbeat.beat()  # fresh again: the other station must keep off
        assert other.claim_unit_run("SN1", "fakes", "a" * 64, "b2").outcome == "held-elsewhere"
        assert not lost.is_set()
        execute_sql(bench.url, age)  # silent for longer than the lease: taken over
        assert other.claim_unit_run("SN1", "fakes", "a" * 64, "b2").outcome == "resumed"
        heartbeat.beat()
        assert lost.is_set()
    heartbeat.forget(run.id)


def test_a_failed_read_only_step_reaches_the_judging_steps(bench: Bench, fake_steps: Script) -> None:
    # The verdict step of support-diagnose judges what failed: a failed outcome must be in job.earlier too.
    fake_steps.fail.add(("SN1", "fake-read"))
    (unit,) = bench.run(_recipe("fake-read", "fake-read-2", read_only=True), ["SN1"]).units
    assert [s.ok for s in unit.steps] == [False, True]
    assert unit.steps[1].data["saw"] == ["fake-read"]


def test_a_pipeline_crash_after_the_claim_closes_the_run(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline._UnitWorker._steps

    def buggy(self: Any, claim: Any, lost: Any) -> Any:
        raise KeyError("oops")

    monkeypatch.setattr(pipeline._UnitWorker, "_steps", buggy)
    crashed = bench.run(_recipe("fake-a"), ["SN1"])
    assert isinstance(crashed.units[0].error, pipeline.PipelineCrashed)
    assert [r.status for r in bench.ledger.unit_runs("SN1")] == ["failed"]
    monkeypatch.setattr(pipeline._UnitWorker, "_steps", real)
    assert _results(bench.run(_recipe("fake-a"), ["SN1"])) == {"SN1": "succeeded"}  # not held by itself


class FakeKeyed(_FakeRun, Step):
    name = "fake-keyed"
    label = "Fake step for authorised units only"
    needs_authorised = True


def _authorise(bench: Bench, *serials: str) -> None:
    bench.ledger.register_operator("root", "admin")
    bench.ledger.as_operator("root").inventory_add(list(serials), "PO-1")


def test_a_unit_outside_the_inventory_is_refused_before_any_step(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioning.ledger.errors import UnitNotAuthorised

    monkeypatch.setitem(STEPS, FakeKeyed.name, FakeKeyed)
    _authorise(bench, "SN2")
    batch = bench.run(_recipe("fake-a", "fake-keyed"), ["SN1", "SN2"])
    assert _results(batch) == {"SN1": "failed", "SN2": "succeeded"}
    assert isinstance(batch.units[0].error, UnitNotAuthorised) and batch.units[0].steps == []
    assert fake_steps.of("SN1") == [] and bench.ledger.unit_runs("SN1") == []  # nothing ran, nothing claimed
    assert any(e.action == "keys.unit_refused" and e.subject == "device:SN1" for e in bench.ledger.audit_entries())
    assert batch.reconciliation.inventory is not None and batch.reconciliation.inventory.refused == ("SN1",)
    # a read-only recipe or one without such a step does not look at the inventory
    assert _results(bench.run(_recipe("fake-a"), ["SN1"])) == {"SN1": "succeeded"}


def test_a_batch_is_ok_only_when_its_reconciliation_is(
    bench: Bench, fake_steps: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(STEPS, FakeKeyed.name, FakeKeyed)
    _authorise(bench, "SN1")
    batch = bench.run(_recipe("fake-keyed"), ["SN1"])
    assert batch.ok and pipeline.reconciliation_lines(batch)[-1] == "Everything adds up."
    found = batch.reconciliation.inventory
    assert found is not None
    twice = dataclasses.replace(found, injected_more_than_once={"SN1": ("AB01", "AB02")})
    bad = dataclasses.replace(batch, reconciliation=dataclasses.replace(batch.reconciliation, inventory=twice))
    assert all(u.ok for u in bad.units) and not bad.ok
    lines = pipeline.reconciliation_lines(bad)
    assert "SN1: keyed more than once AB01, AB02" in lines
    assert lines[-1] == "Report the findings to the security officer."
    broken = dataclasses.replace(batch, reconciliation=pipeline.BatchReconciliation(None, {}, NaiadError("down")))
    assert not broken.ok and "down" in pipeline.reconciliation_lines(broken)[0]
    plain = bench.run(_recipe("fake-a"), ["SN1"])  # no step of the inventory: nothing to reconcile against
    assert pipeline.reconciliation_lines(plain) == []


def test_the_run_digest_holds_what_the_once_steps_act_on(bench: Bench, fake_steps: Script) -> None:
    from enrollment.config import Merchant

    recipe = _recipe("fake-a")
    plain = bench.resources()
    assert pipeline.run_digest(recipe, plain) == recipe.digest
    store_1 = dataclasses.replace(plain, merchant=Merchant("M1", "S1"))
    store_2 = dataclasses.replace(plain, merchant=Merchant("M1", "S2"))
    digests = {
        pipeline.run_digest(recipe, r)
        for r in (
            plain,
            store_1,
            store_2,
            dataclasses.replace(store_1, program="P1"),
            dataclasses.replace(store_1, supplier_id="SUP"),
        )
    }
    assert len(digests) == 5
    fake_steps.fail.add(("SN1", "fake-a"))
    assert run_recipe(recipe, ["SN1"], store_1).units[0].result == "failed"
    fake_steps.fail.clear()
    run_recipe(recipe, ["SN1"], store_2)  # another store: a new run, not the failed one resumed
    assert [r.status for r in bench.ledger.unit_runs("SN1")] == ["failed", "succeeded"]
