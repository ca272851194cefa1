"""The station's runs in the ledger (revision 0007): each unit's run of a recipe and each step of it.

A unit's ``running`` run is its *claim*: the database holds at most one per unit, across every station sharing
it (a partial unique index), and the station, host, machine and process named in it hold the unit.  The process
is named by its pid and a random token of its own (a restarted station given the dead one's pid is another
process); the machine by a hash of its machine id (never the id itself).  The holder keeps its ``heartbeat``
fresh (unsealed: no audit entry per beat).  Another station may take the run over once the heartbeat is older
than the run's lease; the same station, restarted on the same host and machine, takes it back at once when the
process named in it is gone (kill -9, power cut).  Heartbeats are written and leases judged with the database's
clock (PostgreSQL's ``clock_timestamp()``; a SQLite ledger is a local file, so the station's clock is its
clock).  Every write of a run or a step names the claim it holds, so a station whose claim was taken over writes
nothing more for that unit (:class:`ClaimLost`).

A station that takes over (or resumes) another station's run of a unit adopts that station's pending platform
calls about the unit in the same transaction (audited ``platform.call.adopted``): its once-steps then settle
them with their own request numbers instead of sending the action again under a new one.

Claiming, starting and finishing runs and steps are audited (``station.run.*``, ``station.step.*``, subject
``device:SERIAL``) and the rows sealed, so ``naiad ledger verify`` covers them.  ``data`` and ``error`` are JSON
checked like every other ledger JSON: a field named like a key or a PIN is refused.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import secrets
import socket
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from i18n import N_, _

from . import audit as chain
from . import db, validate
from .errors import InvalidLedgerInput, LedgerError
from .models import ERROR_LENGTH, HASH_LENGTH, NAME_LENGTH, PlatformCall, Station, UnitRun, UnitStep
from .records import RunClaim, UnitRunRecord, UnitStepRecord

if TYPE_CHECKING:
    from .ledger import _Write

LEASE_SECONDS = 60
"""How long a run's claim outlives its holder's last heartbeat before another station may take the unit."""
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
CLAIMED, RESUMED, ALREADY_DONE, HELD_ELSEWHERE = "claimed", "resumed", "already-done", "held-elsewhere"
DEVICE = "device:"


class ClaimLost(LedgerError):
    """This station's run of a unit was taken over by another (its heartbeat stopped for longer than the lease)."""

    message = N_("Station {station} took over unit {serial} (run {run}); this station stopped working on it")
    remedy = N_("Check that this station's clock and its link to the ledger database are sound; see 'naiad history'.")


class UnknownUnitRun(LedgerError):
    message = N_("There is no run {run} in the ledger")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still exists (a process we may not signal exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    return socket.gethostname()[:255] or "host"


MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


@functools.cache
def machine_identity() -> str:
    """This machine, as a hash of its machine id (else of its network node number): two machines cloned with one
    host name are still two.  Only the hash is stored or shown, never the id."""
    raw = ""
    for path in MACHINE_ID_FILES:
        try:
            with open(path, encoding="ascii", errors="replace") as file:
                raw = file.read(256).strip()
        except OSError:
            continue
        if raw:
            break
    if not raw:
        raw = f"node:{uuid.getnode():012x}"
    return hashlib.sha256(b"naiad-station-machine\0" + raw.encode()).hexdigest()[:32]


_NONCE: tuple[int, str] = (0, "")


def process_nonce() -> str:
    """A random token of this process (new after a fork): a restarted station that got the dead one's pid is
    told apart from it."""
    global _NONCE
    pid = os.getpid()
    if _NONCE[0] != pid:
        _NONCE = (pid, secrets.token_hex(16))
    return _NONCE[1]


def _local_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(at: dt.datetime) -> dt.datetime:
    """A time read back from the database, in UTC (SQLite gives it back without its zone)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _run_record(row: UnitRun, station: str) -> UnitRunRecord:
    return UnitRunRecord(
        id=row.id,
        serial=row.serial,
        recipe=row.recipe,
        digest=row.digest,
        batch=row.batch,
        status=row.status,
        station=station,
        host=row.host,
        pid=row.pid,
        operator=row.operator,
        started=row.started,
        finished=row.finished,
        heartbeat=row.heartbeat,
        lease_seconds=row.lease_seconds,
    )


def _step_record(row: UnitStep, recipe: str, station: str) -> UnitStepRecord:
    return UnitStepRecord(
        id=row.id,
        run_id=row.run_id,
        recipe=recipe,
        position=row.position,
        name=row.name,
        status=row.status,
        started=row.started,
        finished=row.finished,
        seconds=None if row.milliseconds is None else row.milliseconds / 1000,
        detail=row.detail or "",
        data=dict(row.data or {}),
        error=None if row.error is None else dict(row.error),
        already_done=bool(row.already_done),
        station=station,
    )


def _runs() -> Select[UnitRun, str]:
    return select(UnitRun, Station.name).join(Station, UnitRun.station_id == Station.id)


def _hex64(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) != HASH_LENGTH or any(c not in "0123456789abcdef" for c in value):
        raise InvalidLedgerInput(field=field, detail=_("must be 64 lower-case hexadecimal digits"))
    return value


def _name(value: object, field: str) -> str:
    return validate.kind(value) if field == "kind" else validate.label(value, field)


class UnitRuns:
    """The part of :class:`~provisioning.ledger.Ledger` that keeps the station's runs of recipes."""

    if TYPE_CHECKING:
        _station: str
        _station_id: int
        _engine: Engine
        _url: str

        def _writing(self) -> AbstractContextManager[_Write]: ...

        def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Session]: ...

        def _check_open(self) -> None: ...

    # -- claiming ------------------------------------------------------------------------------------

    def claim_unit_run(
        self,
        serial: str,
        recipe: str,
        digest: str,
        batch: str,
        *,
        read_only: bool = False,
        lease: int = LEASE_SECONDS,
    ) -> RunClaim:
        """Claim ``serial`` for a run of ``recipe`` (its ``digest``: the recipe as run, overrides applied).

        In one transaction under the chain lock: a unit whose running run a live holder keeps is
        ``held-elsewhere``; a dead holder's run (its process gone from this same station and host, or its
        heartbeat older than its lease) is taken over: resumed when it is a run of the same recipe and digest,
        else closed ``failed``.  Then a writing recipe the unit already succeeded in is ``already-done``; a failed
        run of the same recipe and digest is ``resumed``; else a new run is ``claimed``.  A read-only recipe's
        run is always new."""
        serial = validate.serial(serial)
        recipe = validate.label(recipe, "recipe")
        digest = _hex64(digest, "digest")
        batch = validate.label(batch, "batch")
        if not 1 <= lease <= 24 * 3600:
            raise InvalidLedgerInput(field="lease", detail=_("must be 1 to 86400 seconds"))
        try:
            with self._writing() as write:
                return self._claim(write, serial, recipe, digest, batch, read_only, lease)
        except LedgerError as exc:
            # Two stations inserting a running run of one unit at once: the partial unique index refuses the
            # second (the chain lock orders them first, so this is the database's last word, not the usual way).
            if isinstance(exc.__cause__, IntegrityError):
                with self._reading() as session:
                    found = session.execute(_runs().where(UnitRun.serial == serial, UnitRun.status == RUNNING))
                    row = found.first()
                if row is not None:
                    return RunClaim(HELD_ELSEWHERE, _run_record(row[0], row[1]))
            raise

    def _db_now(self, session: Session) -> dt.datetime:
        """The database's clock (PostgreSQL), else this station's (SQLite: a local file)."""
        if self._engine.dialect.name == "postgresql":
            now = session.scalar(select(func.clock_timestamp()))
            if isinstance(now, dt.datetime):
                return now
        return _local_now()

    def _heartbeat_now(self) -> Any:
        """What a heartbeat writes: the database's clock where it has one."""
        return func.clock_timestamp() if self._engine.dialect.name == "postgresql" else _local_now()

    def _claim(
        self, write: _Write, serial: str, recipe: str, digest: str, batch: str, read_only: bool, lease: int
    ) -> RunClaim:
        session, host, pid = write.session, _host(), os.getpid()
        now = self._db_now(session)
        subject = f"{DEVICE}{serial}"
        taken_over: str | None = None
        resume: UnitRun | None = None
        found = session.execute(_runs().where(UnitRun.serial == serial, UnitRun.status == RUNNING)).first()
        if found is not None:
            row, holder = found
            if not self._holder_gone(row, holder, now, host):
                return RunClaim(HELD_ELSEWHERE, _run_record(row, holder))
            taken_over = holder
            same = row.recipe == recipe and row.digest == digest and not read_only
            details = {"run": row.id, "recipe": row.recipe, "from_station": holder, "from_pid": row.pid}
            if same:
                resume = row
                write.audit("station.run.taken_over", subject, details)
            else:
                row.status, row.finished = FAILED, write.at
                write.audit("station.run.abandoned", subject, details)
            if not read_only:
                self._adopt_calls(write, serial, row.station_id, holder)
        if resume is None and not read_only:
            done = session.execute(
                _runs()
                .where(UnitRun.serial == serial, UnitRun.recipe == recipe, UnitRun.status == SUCCEEDED)
                .order_by(UnitRun.finished.desc(), UnitRun.id.desc())
                .limit(1)
            ).first()
            if done is not None:
                return RunClaim(ALREADY_DONE, _run_record(done[0], done[1]), self._steps_of(session, done[0], done[1]))
            resume = session.scalars(
                select(UnitRun)
                .where(
                    UnitRun.serial == serial,
                    UnitRun.recipe == recipe,
                    UnitRun.digest == digest,
                    UnitRun.status == FAILED,
                )
                .order_by(UnitRun.id.desc())
                .limit(1)
            ).first()
        if resume is not None:
            if resume.station_id != self._station_id:  # another station's run (failed, or just taken over)
                other = session.get(Station, resume.station_id)
                self._adopt_calls(write, serial, resume.station_id, other.name if other else "?")
            resume.status, resume.finished, resume.batch = RUNNING, None, batch
            resume.station_id, resume.host, resume.pid, resume.operator = self._station_id, host, pid, write.operator
            resume.machine, resume.nonce = machine_identity(), process_nonce()
            resume.lease_seconds, resume.heartbeat = lease, now
            session.flush()
            write.audit("station.run.resumed", subject, {"run": resume.id, "recipe": recipe, "batch": batch})
            steps = self._steps_of(session, resume, self._station)
            return RunClaim(RESUMED, _run_record(resume, self._station), steps, taken_over)
        row = UnitRun(
            serial=serial,
            recipe=recipe,
            digest=digest,
            batch=batch,
            status=RUNNING,
            station_id=self._station_id,
            host=host,
            pid=pid,
            machine=machine_identity(),
            nonce=process_nonce(),
            operator=write.operator,
            started=write.at,
            finished=None,
            lease_seconds=lease,
            heartbeat=now,
        )
        session.add(row)
        session.flush()
        write.audit("station.run.started", subject, {"run": row.id, "recipe": recipe, "digest": digest, "batch": batch})
        return RunClaim(CLAIMED, _run_record(row, self._station), (), taken_over)

    def _holder_gone(self, row: UnitRun, holder: str, now: dt.datetime, host: str) -> bool:
        """Whether the run's holder is dead: silent for longer than the lease, or this very station (name, host
        and machine) restarted and the process named in it gone (its pid ours now, or no such process here)."""
        if now - _aware(row.heartbeat) > dt.timedelta(seconds=row.lease_seconds):
            return True
        own = holder == self._station and row.host == host and row.machine == machine_identity()
        if not own or row.nonce == process_nonce():
            return False
        return row.pid == os.getpid() or not _pid_alive(row.pid)

    def _adopt_calls(self, write: _Write, serial: str, station_id: int, station: str) -> None:
        """Move the unit's pending platform calls of station ``station_id`` (whose run this station takes) to this
        station: its once-steps settle them with their own request numbers, never a second call."""
        if station_id == self._station_id:
            return
        calls = write.session.scalars(
            select(PlatformCall)
            .where(PlatformCall.serial == serial, PlatformCall.station_id == station_id)
            .where(PlatformCall.state == "pending")
            .order_by(PlatformCall.id)
        )
        for call in calls:
            call.station_id, call.updated = self._station_id, write.at
            write.audit(
                "platform.call.adopted",
                f"{DEVICE}{serial}",
                {"request_no": call.request_no, "method": call.method, "from_station": station},
            )

    @staticmethod
    def _steps_of(session: Session, run: UnitRun, station: str) -> tuple[UnitStepRecord, ...]:
        rows = session.scalars(select(UnitStep).where(UnitStep.run_id == run.id).order_by(UnitStep.id))
        return tuple(_step_record(s, run.recipe, station) for s in rows)

    def _held(self, session: Session, run_id: int) -> UnitRun:
        """The run ``run_id``, refused unless this station's process still holds it."""
        row = session.get(UnitRun, run_id)
        if row is None:
            raise UnknownUnitRun(run=run_id)
        if row.status != RUNNING or row.station_id != self._station_id or row.nonce != process_nonce():
            holder = session.get(Station, row.station_id)
            raise ClaimLost(station=holder.name if holder else "?", serial=row.serial, run=run_id)
        return row

    def unit_run_heartbeat(self, run_id: int) -> bool:
        """Keep this station's claim of run ``run_id`` alive; False when it holds it no more (taken over or ended).

        A plain update outside the chain lock: a heartbeat changes no sealed column and is no audit event."""
        self._check_open()
        query = (
            update(UnitRun)
            .where(
                UnitRun.id == run_id,
                UnitRun.status == RUNNING,
                UnitRun.station_id == self._station_id,
                UnitRun.nonce == process_nonce(),
            )
            .values(heartbeat=self._heartbeat_now())
        )
        with db.translate_errors(self._url), db.write_session(self._engine) as session:
            return bool(getattr(session.execute(query), "rowcount", 0))

    def finish_unit_run(self, run_id: int, succeeded: bool, details: Mapping[str, Any] | None = None) -> UnitRunRecord:
        """End this station's run ``run_id``: ``succeeded`` or ``failed``; the claim on the unit ends with it."""
        extra = chain.clean_json(dict(details or {}), "details")
        with self._writing() as write:
            row = self._held(write.session, run_id)
            row.status, row.finished = (SUCCEEDED if succeeded else FAILED), write.at
            write.audit(
                f"station.run.{row.status}", f"{DEVICE}{row.serial}", {"run": row.id, "recipe": row.recipe, **extra}
            )
            return _run_record(row, self._station)

    # -- steps ---------------------------------------------------------------------------------------

    def start_unit_step(self, run_id: int, position: int, name: str) -> int:
        """Record that step ``name`` (at ``position`` in the recipe) starts on this station's run; its row id."""
        name = _name(name, "kind")
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < 1000:
            raise InvalidLedgerInput(field="position", detail=_("must be 0 to 999"))
        with self._writing() as write:
            run = self._held(write.session, run_id)
            row = UnitStep(
                run_id=run.id,
                position=position,
                name=name,
                status=RUNNING,
                started=write.at,
                finished=None,
                milliseconds=None,
                detail=None,
                data=None,
                error=None,
                already_done=0,
            )
            write.session.add(row)
            write.session.flush()
            write.audit(
                "station.step.started",
                f"{DEVICE}{run.serial}",
                {"run": run.id, "recipe": run.recipe, "step": name, "position": position, "id": row.id},
            )
            return row.id

    def finish_unit_step(
        self,
        step_id: int,
        ok: bool,
        *,
        seconds: float = 0.0,
        detail: str = "",
        data: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        already_done: bool = False,
    ) -> UnitStepRecord:
        """End step ``step_id`` of this station's run: ``succeeded`` (``ok``) or ``failed``, with its seconds, its
        one-line ``detail``, its ``data`` and its ``error`` (JSON, no secret: refused like any ledger JSON)."""
        clean_data = chain.clean_json(dict(data or {}), "data")
        clean_error = None if error is None else chain.clean_json(dict(error), "error")
        shown = " ".join(str(detail).split())[:ERROR_LENGTH]
        if not (0 <= seconds < 10**7):
            raise InvalidLedgerInput(field="seconds", detail=_("must be 0 to 10^7"))
        with self._writing() as write:
            row = write.session.get(UnitStep, step_id)
            if row is None:
                raise InvalidLedgerInput(field="step", detail=_("no such step"))
            run = self._held(write.session, row.run_id)
            if row.status != RUNNING:
                raise InvalidLedgerInput(field="step", detail=_("already finished"))
            row.status, row.finished = (SUCCEEDED if ok else FAILED), write.at
            row.milliseconds, row.detail = round(seconds * 1000), shown or None
            row.data, row.error, row.already_done = clean_data, clean_error, int(already_done)
            details: dict[str, Any] = {"run": run.id, "step": row.name, "id": row.id, "seconds": round(seconds, 3)}
            if already_done:
                details["already_done"] = True
            if clean_error is not None:
                details["error"] = str(clean_error.get("error", ""))[:NAME_LENGTH]
            write.audit(f"station.step.{row.status}", f"{DEVICE}{run.serial}", details)
            return _step_record(row, run.recipe, self._station)

    # -- reading -------------------------------------------------------------------------------------

    def unit_run(self, run_id: int) -> UnitRunRecord | None:
        with self._reading() as session:
            found = session.execute(_runs().where(UnitRun.id == run_id)).first()
            return None if found is None else _run_record(found[0], found[1])

    def unit_runs(self, serial: str | None = None) -> list[UnitRunRecord]:
        """Runs of recipes, oldest first; only those of ``serial`` when given."""
        query = _runs().order_by(UnitRun.started, UnitRun.id)
        if serial is not None:
            query = query.where(UnitRun.serial == validate.serial(serial))
        with self._reading() as session:
            return [_run_record(row, station) for row, station in session.execute(query)]

    def unit_steps(self, serial: str) -> list[UnitStepRecord]:
        """Every step of every run of the unit ``serial``, oldest first (runs in order, attempts in order)."""
        query = (
            select(UnitStep, UnitRun.recipe, Station.name)
            .join(UnitRun, UnitStep.run_id == UnitRun.id)
            .join(Station, UnitRun.station_id == Station.id)
            .where(UnitRun.serial == validate.serial(serial))
            .order_by(UnitRun.started, UnitRun.id, UnitStep.id)
        )
        with self._reading() as session:
            return [_step_record(row, recipe, station) for row, recipe, station in session.execute(query)]

    def run_steps(self, run_id: int) -> list[UnitStepRecord]:
        """The steps of run ``run_id``, in the order they started."""
        with self._reading() as session:
            found = session.execute(_runs().where(UnitRun.id == run_id)).first()
            if found is None:
                raise UnknownUnitRun(run=run_id)
            return list(self._steps_of(session, found[0], found[1]))
