"""The station's pipeline: each unit runs a recipe's steps in a worker of its own, every step recorded in the ledger.

:func:`run_recipe` first makes every step of the recipe (the operator's role, each step's constructor: a refusal
there refuses the whole batch, no unit touched), then works the units in parallel, one worker each (at most
``workers``).  For each unit:

1. it claims the unit in the ledger (:meth:`~provisioning.ledger.Ledger.claim_unit_run`): a unit another live
   station holds is ``held-elsewhere``; one that already succeeded in this (writing) recipe is ``already-done``;
   an unfinished or failed run of the same recipe and digest is resumed: its succeeded steps are not run again,
   their outcomes are read back into ``job.earlier``;
2. each step is recorded ``running`` before it starts and ``succeeded``/``failed`` after; a step found
   ``running`` (the station died in it) is run again if it is repeatable, else :meth:`OnceStep.settle` finds out
   what became of it; an :class:`~provisioning.steps.OnceStep` is asked :meth:`~OnceStep.done_before` first;
3. the first failed step ends the unit's run (a read-only recipe reads on: its last steps judge what the others
   found), unless the unit went away (unplugged, timed out): then the worker waits up to :data:`REPLUG_SECONDS`
   for it to come back and goes on from that step;
4. a background heartbeat keeps every claim of the batch alive; a claim lost to another station stops its unit.

At the end the batch's units are reconciled against the authorised inventory, with counts per result, audited.

Events: each unit's reporter has step = the recipe's name; per step ``phase_started(phase=step name,
label=Step.title())`` and ``progressed(done=steps finished, total=steps, counts="items")``; then
``finished(UnitRun)``.  Inside a step the domain functions send their own events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from i18n import N_, _
from terminal.errors import DeviceNotFound, NaiadError, UnitGone, UnitTimeout
from terminal.events import Reporter
from terminal.models import BOOTLOADER, RUN

from .ledger import ClaimLost, InvalidLedgerInput, LedgerError, Reconciliation, validate
from .ledger.errors import UnitNotAuthorised
from .ledger.runs import ALREADY_DONE, HELD_ELSEWHERE, RUNNING, SUCCEEDED
from .ledger.runs import LEASE_SECONDS as LEDGER_LEASE_SECONDS
from .operators import NotLoggedIn, require_role
from .recipes import Recipe
from .station import UnitDidNotReturn
from .steps import OnceStep, Resources, Step, StepOutcome, UnitJob, step_class

if TYPE_CHECKING:
    from .ledger import Ledger, RunClaim, UnitStepRecord

LOG = logging.getLogger(__name__)

REPLUG_SECONDS = 120.0
"""How long a unit's worker waits for a unit that went away in a step to come back before its run fails."""
MAX_REPLUGS = 3
"""How many times one unit may go away and come back within one batch."""
LEASE_SECONDS = LEDGER_LEASE_SECONDS
"""How long a claim outlives the last heartbeat (whole seconds); the heartbeat beats four times as often."""

UNIT_RESULTS = ("succeeded", "failed", "already-done", "held-elsewhere")
INJECT_STEP = "inject"


# -- errors ------------------------------------------------------------------------------------------


class PipelineError(NaiadError):
    """Root of the pipeline's own errors."""


class NoUnitsSelected(PipelineError):
    message = N_("No units were selected")
    remedy = N_("Name units with --device SERIAL, or use --all for every attached unit.")


class StepSetupFailed(PipelineError):
    message = N_("Step {step} could not be prepared: unexpected {detail}")
    remedy = N_("The station's log has the details; report it with the recipe file.")


class StepCrashed(PipelineError):
    message = N_("Step {step} failed on unit {serial}: unexpected {detail}")
    remedy = N_("The station's log has the details; run the recipe on the unit again, and report it if it repeats.")


class PipelineCrashed(PipelineError):
    message = N_("The station failed on unit {serial}: unexpected {detail}")
    remedy = N_("The station's log has the details; run the recipe on the unit again (it resumes), and report it.")


class StepInterrupted(PipelineError):
    message = N_("Step {step} on unit {serial} was interrupted: the station stopped or lost the unit in the middle")
    remedy = N_("Nothing to do: the step runs again when the unit's run resumes.")


class UnitHeldElsewhere(PipelineError):
    message = N_("Unit {serial} is being worked by station {station}")
    remedy = N_(
        "Let that station finish it; if that station stopped, its claim expires {lease} s after its last heartbeat "
        "(at once when the same station restarts)."
    )


# -- results -----------------------------------------------------------------------------------------


@dataclass
class UnitRun:
    """How one unit's run of a recipe ended; ``result`` is one of :data:`UNIT_RESULTS`."""

    serial: str
    recipe: str
    result: str
    steps: list[StepOutcome]
    run_id: int | None
    station: str
    problem: NaiadError | None = None
    """Why the run ended when no step's error says it (held elsewhere, claim lost, the ledger failed)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result in ("succeeded", "already-done")

    @property
    def error(self) -> NaiadError | None:
        if self.problem is not None:
            return self.problem
        return next((s.error for s in self.steps if not s.ok and s.error is not None), None)

    def _inject_data(self, key: str) -> str | None:
        for outcome in self.steps:
            if outcome.step == INJECT_STEP and outcome.ok:
                value = outcome.data.get(key)
                return value if isinstance(value, str) else None
        return None

    @property
    def initial_key_id(self) -> str | None:
        return self._inject_data("initial_key_id")

    @property
    def kcv(self) -> str | None:
        return self._inject_data("kcv")

    def as_dict(self) -> dict[str, Any]:
        error = self.error
        return {
            "serial": self.serial,
            "name": self.recipe,
            "result": self.result,
            "steps": [s.as_dict() for s in self.steps],
            "run_id": self.run_id,
            "station": self.station,
            "seconds": round(self.seconds, 3),
            "error": None if error is None else error.as_dict(),
        }


@dataclass(frozen=True)
class BatchReconciliation:
    """The batch's units reconciled against the authorised inventory, and how many ended in each result.

    ``inventory`` is None (and ``error`` says why) when the ledger could not be read at the end of the batch:
    the units' results stand, the reconciliation is for ``naiad inventory reconcile`` to do later."""

    inventory: Reconciliation | None
    counts: dict[str, int]
    error: NaiadError | None = None

    @property
    def ok(self) -> bool:
        return self.inventory is not None and self.inventory.ok

    def as_dict(self) -> dict[str, Any]:
        found = self.inventory.as_dict() if self.inventory is not None else {"ok": False}
        error = None if self.error is None else self.error.as_dict()
        return {**found, "counts": dict(self.counts), "error": error}


@dataclass
class BatchRun:
    batch_id: str
    recipe: Recipe
    units: list[UnitRun]
    reconciliation: BatchReconciliation
    seconds: float

    @property
    def ok(self) -> bool:
        """Every unit ok (or held by another station, whose own batch accounts for it: the normal case of
        ``--all`` on a line of stations) and, for a recipe that keys or registers units, the reconciliation too (a
        unit keyed twice, an unconfirmed Initial Key ID or a unit outside the inventory fails the batch)."""
        if not all(u.ok or u.result == "held-elsewhere" for u in self.units):
            return False
        return self.reconciliation.ok or not needs_inventory(self.recipe)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "recipe": self.recipe.name,
            "digest": self.recipe.digest,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "units": [u.as_dict() for u in self.units],
            "reconciliation": self.reconciliation.as_dict(),
        }


def needs_inventory(recipe: Recipe) -> bool:
    """Whether a writing ``recipe`` holds a step that may only be done to a unit of the authorised inventory."""
    return not recipe.read_only and any(step_class(s.name).needs_authorised for s in recipe.steps)


def reconciliation_lines(batch: BatchRun) -> list[str]:
    """The batch's reconciliation for people, translated: one line per finding, the counts and the verdict (none
    for a recipe that neither keys nor registers units: the inventory is not its business)."""
    if not needs_inventory(batch.recipe):
        return []
    found = batch.reconciliation.inventory
    if found is None:
        error = batch.reconciliation.error
        why = str(error) if error is not None else ""
        return [
            _("The batch could not be reconciled: {error}", error=why),
            _("Run 'naiad inventory reconcile' when the ledger is back."),
        ]
    lines = [
        _("{serial}: {finding} {ids}", serial=serial, finding=finding.text(), ids=", ".join(ids)).rstrip()
        for finding, serial, ids in found.findings()
    ]
    counts = {"authorised": found.authorised, "injected": found.injected}
    lines.append(_("{authorised} authorised units, {injected} keyed.", **counts))
    lines.append(found.verdict())
    return lines


def run_digest(recipe: Recipe, resources: Resources) -> str:
    """The digest a unit's run is claimed under: the recipe's, with what the once-steps act on (merchant, store,
    program, supplier) when the station gives any, so a run resumed for another store is a new run."""
    merchant = resources.merchant
    acts_on = {
        "merchant": None if merchant is None else merchant.merchant_id,
        "store": None if merchant is None else merchant.store_id,
        "program": resources.program,
        "supplier": resources.supplier_id,
    }
    if all(v is None for v in acts_on.values()):
        return recipe.digest
    text = json.dumps({"recipe": recipe.digest, **acts_on}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- the batch ---------------------------------------------------------------------------------------


def _make_steps(recipe: Recipe, resources: Resources) -> list[Step]:
    """Every step of the recipe, made with its settings: refused (typed) before any unit is touched."""
    classes = [step_class(s.name) for s in recipe.steps]
    for cls in classes:
        if cls.roles:
            require_role(resources.session, *cls.roles)
        elif resources.session is None:
            raise NotLoggedIn()
    made: list[Step] = []
    for recipe_step, cls in zip(recipe.steps, classes, strict=True):
        try:
            made.append(cls(recipe_step.settings, resources))
        except NaiadError:
            raise
        except Exception as exc:
            LOG.exception("step %s could not be made", recipe_step.name)
            raise StepSetupFailed(step=recipe_step.name, detail=type(exc).__name__) from None
    return made


def _new_batch_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_recipe(recipe: Recipe, serials: Sequence[str], resources: Resources, *, workers: int | None = None) -> BatchRun:
    """Run ``recipe`` on every unit of ``serials``, one worker per unit (at most ``workers``)."""
    started = time.monotonic()
    chosen = list(dict.fromkeys(validate.serial(s) for s in serials))
    if not chosen:
        raise NoUnitsSelected()
    steps = _make_steps(recipe, resources)
    ledger = resources.station.ledger
    session = resources.session
    if session is not None and ledger.operator != session.operator:
        ledger = ledger.as_operator(session.operator)
    batch_id = _new_batch_id()
    heartbeat = _Heartbeat(ledger, max(0.05, LEASE_SECONDS / 4))

    def one(serial: str) -> UnitRun:
        try:
            return _UnitWorker(recipe, steps, resources, ledger, batch_id, heartbeat, serial).run()
        except Exception as exc:  # a bug of the pipeline's own: this unit fails, the others go on
            LOG.error("%s: the pipeline crashed", serial, exc_info=exc)
            crashed = PipelineCrashed(serial=serial, detail=type(exc).__name__)
            return UnitRun(serial, recipe.name, "failed", [], None, ledger.station, problem=crashed)

    heartbeat.start()
    try:
        count = max(1, min(workers or len(chosen), len(chosen)))
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="unit") as pool:
            units = list(pool.map(one, chosen))
    finally:
        heartbeat.stop()
        _close_steps(steps)
    counts = Counter(u.result for u in units)
    # a unit another station holds is that station's to reconcile: here it may still be half keyed
    ours = [u.serial for u in units if u.result != "held-elsewhere"]
    return BatchRun(
        batch_id, recipe, units, _reconcile(ledger, recipe, batch_id, ours, counts), time.monotonic() - started
    )


def _reconcile(
    ledger: Ledger, recipe: Recipe, batch_id: str, serials: list[str], counts: Counter[str]
) -> BatchReconciliation:
    """The batch's units against the inventory, with the counts per result, put on record in the audit chain."""
    per_result = {r: counts.get(r, 0) for r in UNIT_RESULTS}
    try:
        reconciliation = BatchReconciliation(ledger.reconcile(serials), per_result)
        details = {"recipe": recipe.name, "digest": recipe.digest, "batch": batch_id, **reconciliation.as_dict()}
        ledger.audit("station.batch.reconciled", f"batch:{batch_id}", details)
    except NaiadError as exc:
        LOG.error("batch %s could not be reconciled: %s", batch_id, exc)
        return BatchReconciliation(None, per_result, exc)
    return reconciliation


def _close_steps(steps: Sequence[Step]) -> None:
    """Let steps that hold something for the batch (an open firmware bundle) let go of it."""
    for step in steps:
        close = getattr(step, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                LOG.exception("step %s did not close cleanly", step.name)


class _Heartbeat:
    """One thread that keeps every claim of a batch alive, and marks the claims another station took over."""

    def __init__(self, ledger: Ledger, interval: float) -> None:
        self._ledger = ledger
        self._interval = interval
        self._runs: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, run_id: int) -> threading.Event:
        """Keep ``run_id`` alive; the event is set once its claim is lost."""
        with self._lock:
            return self._runs.setdefault(run_id, threading.Event())

    def forget(self, run_id: int) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()

    def beat(self) -> None:
        """Refresh every watched claim once; mark those this process holds no more."""
        with self._lock:
            runs = list(self._runs.items())
        for run_id, lost in runs:
            try:
                if not self._ledger.unit_run_heartbeat(run_id):
                    lost.set()
            except NaiadError as exc:  # the database hiccuped: the next beat tries again
                LOG.warning("heartbeat of run %s failed: %s", run_id, exc)


# -- one unit ----------------------------------------------------------------------------------------


def _went_away(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is the unit going away: unplugged, rebooted, silent."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, UnitGone | UnitTimeout | DeviceNotFound | UnitDidNotReturn):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _outcome_of(record: UnitStepRecord) -> StepOutcome:
    """A succeeded step's outcome as the ledger recorded it (a resumed run's ``job.earlier``)."""
    return StepOutcome(
        step=record.name,
        ok=record.status == SUCCEEDED,
        seconds=record.seconds or 0.0,
        detail=record.detail,
        data=dict(record.data),
        already_done=record.already_done,
    )


def _latest(records: Sequence[UnitStepRecord]) -> dict[str, UnitStepRecord]:
    """Each step's last attempt."""
    latest: dict[str, UnitStepRecord] = {}
    for record in sorted(records, key=lambda r: r.id):
        latest[record.name] = record
    return latest


def _failed(step: str, error: NaiadError) -> StepOutcome:
    error.__traceback__ = None  # its frames may hold key material: outcomes outlive the step
    return StepOutcome(step, False, detail=str(error), error=error)


class _UnitWorker:
    def __init__(
        self,
        recipe: Recipe,
        steps: list[Step],
        resources: Resources,
        ledger: Ledger,
        batch_id: str,
        heartbeat: _Heartbeat,
        serial: str,
    ) -> None:
        self.recipe, self.steps, self.resources, self.ledger = recipe, steps, resources, ledger
        self.batch_id, self.heartbeat, self.serial = batch_id, heartbeat, serial
        self.report = Reporter(resources.listener, serial, recipe.name)
        self.total = len(steps)

    def run(self) -> UnitRun:
        started = time.monotonic()
        unit = self._run()
        unit.seconds = time.monotonic() - started
        self.report.finished(unit)
        return unit

    def _unit(self, result: str, steps: list[StepOutcome], run_id: int | None, station: str, **kw: Any) -> UnitRun:
        return UnitRun(self.serial, self.recipe.name, result, steps, run_id, station, **kw)

    def _run(self) -> UnitRun:
        station = self.ledger.station
        try:
            if needs_inventory(self.recipe) and not self.ledger.authorised(self.serial):
                self.ledger.unit_refused(self.serial, "not authorised")  # on record: the reconciliation lists it
                refused = UnitNotAuthorised(serial=self.serial)
                LOG.warning("%s: refused before any step: %s", self.serial, refused)
                return self._unit("failed", [], None, station, problem=refused)
            claim = self.ledger.claim_unit_run(
                self.serial,
                self.recipe.name,
                run_digest(self.recipe, self.resources),
                self.batch_id,
                read_only=self.recipe.read_only,
                lease=max(1, int(LEASE_SECONDS)),
            )
        except NaiadError as exc:
            LOG.warning("%s: could not be claimed: %s", self.serial, exc)
            return self._unit("failed", [], None, station, problem=exc)
        run = claim.run
        if claim.outcome == HELD_ELSEWHERE:
            held = UnitHeldElsewhere(serial=self.serial, station=run.station, lease=run.lease_seconds)
            return self._unit(HELD_ELSEWHERE, [], run.id, run.station, problem=held)
        if claim.outcome == ALREADY_DONE:
            done = sorted(
                (_outcome_of(r) for r in _latest(claim.steps).values() if r.status == SUCCEEDED),
                key=lambda o: self._names.index(o.step) if o.step in self._names else len(self._names),
            )
            self.report.progress(self.total, self.total, counts="items")
            return self._unit(ALREADY_DONE, done, run.id, run.station)
        if claim.taken_over:
            LOG.info("%s: took over run %s from station %s", self.serial, run.id, claim.taken_over)
        lost = self.heartbeat.watch(run.id)
        problem: NaiadError | None
        closed = False
        try:
            outcomes, problem = self._steps(claim, lost)
            closed = True
        finally:
            self.heartbeat.forget(run.id)
            if not closed:  # a bug of the pipeline's own: close the claim, or this very station holds the unit
                self._close_crashed(run.id)
        succeeded = problem is None and len(outcomes) == self.total and all(o.ok for o in outcomes)
        if not isinstance(problem, ClaimLost):
            try:
                self.ledger.finish_unit_run(run.id, succeeded, {"batch": self.batch_id})
            except NaiadError as exc:
                LOG.warning("%s: run %s could not be closed: %s", self.serial, run.id, exc)
                problem, succeeded = problem or exc, False
        return self._unit("succeeded" if succeeded else "failed", outcomes, run.id, station, problem=problem)

    def _close_crashed(self, run_id: int) -> None:
        try:
            self.ledger.finish_unit_run(run_id, False, {"batch": self.batch_id, "crashed": True})
        except NaiadError as exc:
            LOG.warning("%s: run %s could not be closed after a crash: %s", self.serial, run_id, exc)

    @property
    def _names(self) -> list[str]:
        return [s.name for s in self.recipe.steps]

    def _steps(self, claim: RunClaim, lost: threading.Event) -> tuple[list[StepOutcome], NaiadError | None]:
        """Run the recipe's steps from the first not yet succeeded; the outcomes, and what stopped the run."""
        latest = _latest(claim.steps)
        earlier = {name: _outcome_of(r) for name, r in latest.items() if r.status == SUCCEEDED}
        job = UnitJob(self.serial, self.resources, claim.run.id, earlier=dict(earlier))
        outcomes: list[StepOutcome] = []
        position, replugs = 0, 0
        while position < self.total:
            recipe_step, step = self.recipe.steps[position], self.steps[position]
            if lost.is_set():
                return outcomes, self._claim_lost(claim.run.id)
            self.report.phase(recipe_step.name, step.title())
            self.report.progress(position, self.total, counts="items")
            if recipe_step.name in earlier:
                outcomes.append(earlier.pop(recipe_step.name))
                position += 1
                self.report.progress(position, self.total, counts="items")
                continue
            try:
                outcome = self._step(position, step, job, latest)
            except ClaimLost as exc:
                return outcomes, exc
            except LedgerError as exc:  # the step could not be recorded: the unit stops here, to resume later
                LOG.warning("%s: step %s not recorded: %s", self.serial, recipe_step.name, exc)
                return outcomes, exc
            if outcome.ok:
                outcomes.append(outcome)
                job.earlier[recipe_step.name] = outcome
                position += 1
                self.report.progress(position, self.total, counts="items")
                continue
            gone = _went_away(outcome.error)
            if gone and replugs < MAX_REPLUGS:
                replugs += 1
                if self._came_back(recipe_step.name):
                    continue  # the same step again, recorded as a new attempt
            outcomes.append(outcome)
            if not self.recipe.read_only or gone:
                return outcomes, None
            job.earlier[recipe_step.name] = outcome  # the judging steps must see what failed, not only what passed
            position += 1  # a read-only recipe reads on: its last steps judge what the failed ones found
            self.report.progress(position, self.total, counts="items")
        return outcomes, None

    def _claim_lost(self, run_id: int) -> ClaimLost:
        try:
            now = self.ledger.unit_run(run_id)
        except NaiadError:
            now = None
        return ClaimLost(station=now.station if now else "?", serial=self.serial, run=run_id)

    def _came_back(self, step: str) -> bool:
        self.report.message(
            _(
                "Unit {serial} went away in {step}; waiting up to {seconds} s for it to come back",
                serial=self.serial,
                step=step,
                seconds=int(REPLUG_SECONDS),
            )
        )
        try:
            self.resources.station.wait_for(self.serial, RUN, REPLUG_SECONDS, unless_back_in=BOOTLOADER)
        except NaiadError as exc:
            LOG.info("%s: did not come back: %s", self.serial, exc)
            return False
        return True

    def _step(self, position: int, step: Step, job: UnitJob, latest: dict[str, UnitStepRecord]) -> StepOutcome:
        """One step on the unit, recorded; ``latest`` holds each step's last attempt in this run (a resumed run's)."""
        name = step.name
        last = latest.get(name)
        settled_not_done = False
        if last is not None and last.status == RUNNING:  # the station stopped in the middle of it
            if isinstance(step, OnceStep):
                settled_not_done = True
                settled, raised = self._call(name, lambda: step.settle(job))
                if raised and settled is not None:
                    return settled  # cannot be known yet: that attempt stays running, to be settled later
                if settled is not None:
                    latest.pop(name)
                    return self._record(last.id, settled)
            interrupted = StepInterrupted(step=name, serial=self.serial)
            self.ledger.finish_unit_step(last.id, False, detail=str(interrupted), error=interrupted.as_dict())
        latest.pop(name, None)
        step_id = self.ledger.start_unit_step(job.run_id, position, name)
        if isinstance(step, OnceStep) and not settled_not_done:  # settle said: certainly not done
            before, raised = self._call(name, lambda: step.done_before(job))
            if before is not None:
                before.already_done = before.already_done or not raised
                return self._record(step_id, before)
        outcome, _raised = self._call(name, lambda: step.run(job))
        if outcome is None:
            outcome = _failed(name, StepCrashed(step=name, serial=self.serial, detail=_("it returned no outcome")))
        return self._record(step_id, outcome)

    def _call(self, name: str, call: Callable[[], StepOutcome | None]) -> tuple[StepOutcome | None, bool]:
        """``call()``'s outcome, timed, and whether it raised: anything raised becomes a failed outcome (a typed
        error kept as it is, anything else a :class:`StepCrashed`, logged with its traceback, never shown)."""
        started = time.monotonic()
        raised = True
        try:
            outcome = call()
            raised = False
        except NaiadError as exc:
            LOG.info("%s: step %s refused: %s", self.serial, name, exc)
            outcome = _failed(name, exc)
        except Exception as exc:
            LOG.error("%s: step %s crashed", self.serial, name, exc_info=exc)
            outcome = _failed(name, StepCrashed(step=name, serial=self.serial, detail=type(exc).__name__))
        if outcome is None:
            return None, False
        if not isinstance(outcome, StepOutcome):
            outcome = _failed(name, StepCrashed(step=name, serial=self.serial, detail=type(outcome).__name__))
            raised = True
        outcome.step = name
        if outcome.seconds <= 0:
            outcome.seconds = time.monotonic() - started
        return outcome, raised

    def _record(self, step_id: int, outcome: StepOutcome) -> StepOutcome:
        """Finish the step's row with ``outcome``; data the ledger refuses fails the step with the ledger's error."""
        error = None if outcome.error is None else outcome.error.as_dict()
        try:
            self.ledger.finish_unit_step(
                step_id,
                outcome.ok,
                seconds=outcome.seconds,
                detail=outcome.detail,
                data=outcome.data,
                error=error,
                already_done=outcome.already_done,
            )
        except InvalidLedgerInput as exc:
            LOG.error("%s: step %s handed the ledger what it refuses: %s", self.serial, outcome.step, exc)
            refused = _failed(outcome.step, exc)
            refused.seconds = outcome.seconds
            self.ledger.finish_unit_step(step_id, False, seconds=outcome.seconds, error=exc.as_dict())
            return refused
        return outcome


__all__ = [
    "LEASE_SECONDS",
    "MAX_REPLUGS",
    "REPLUG_SECONDS",
    "UNIT_RESULTS",
    "BatchReconciliation",
    "BatchRun",
    "NoUnitsSelected",
    "PipelineCrashed",
    "PipelineError",
    "StepCrashed",
    "StepInterrupted",
    "StepSetupFailed",
    "UnitHeldElsewhere",
    "UnitRun",
    "needs_inventory",
    "reconciliation_lines",
    "run_digest",
    "run_recipe",
]
