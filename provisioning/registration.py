"""Enrollment flows: a distributor's inventory registration, an installer's bind-activate-enroll, subsidy status.

Every platform call goes through the ledger's :class:`~provisioning.outbox.Outbox` (written first, sent, marked
done), so a flaky network delays a registration but never loses or doubles it:

- :func:`register_inventory` registers units in batches of at most 100 per call; each unit gets its own result
  from the platform's per-unit answer ("already-registered" is as good as "registered");
- :func:`bring_live` binds a unit to a merchant's store, activates it and enrols it in the subsidy program, in
  that order; a step the outbox already holds as done (for the same merchant, store and program) is not sent
  again, so a run cut short by an unplug, a crash or an outage is finished by running it again;
- :func:`subsidy_status` reads what each unit has earned, per month, with the caps left;
- :func:`resume_calls` sends again the calls an outage or a crash left pending, :func:`abandon_call` drops one.

Each flow needs an operator with one of its roles (``ROLES_*``, checked before anything is sent) and writes its
calls as that operator.  A step's earlier call still pending with other content (a merchant corrected after an
outage) stops the run with :class:`~provisioning.outbox.PendingCallDiffers`: neither call is sent.

Progress goes out as :mod:`terminal.events`, one :class:`~terminal.events.Reporter` per unit and step
(``STEP_*``), a phase per step and a :class:`~terminal.events.StepFinished` with an
:class:`EnrollmentStepResult`.  The platform's refusals become typed errors whose remedies say what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from enrollment.errors import EnrollmentError, PlatformRefused, PlatformReplyInvalid, PlatformUnavailable
from enrollment.gateway import Method
from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Listener, Reporter

from .operators import ROLE_ADMIN, ROLE_OPERATOR, OperatorSession, require_role
from .outbox import PendingCallDiffers, settles

if TYPE_CHECKING:
    from enrollment.config import Merchant
    from provisioning.ledger import PlatformCallRecord

    from .outbox import Outbox, ResumeReport

LOG = logging.getLogger(__name__)

STEP_INVENTORY = "register-inventory"
STEP_BIND = "bind"
STEP_ACTIVATE = "activate"
STEP_SUBSIDY = "subsidy-enroll"
MAX_BATCH = 100
"""Units per inventory call: the platform's limit."""

ROLE_INSTALLER, ROLE_SUPPORT = "installer", "support"
ROLES_INVENTORY = (ROLE_OPERATOR, ROLE_ADMIN)
"""Who registers units in the distributor's inventory: the bench."""
ROLES_BIND = (ROLE_INSTALLER, ROLE_OPERATOR, ROLE_ADMIN)
"""Who binds, activates and enrols a unit: the installer on site, and the bench."""
ROLES_SUBSIDY = (ROLE_INSTALLER, ROLE_OPERATOR, ROLE_SUPPORT, ROLE_ADMIN)
"""Who reads a subsidy: whoever binds units, and support answering a merchant's question."""
ROLES_OUTBOX = (ROLE_INSTALLER, ROLE_OPERATOR, ROLE_ADMIN)
"""Who sends the pending calls again or drops one: whoever makes calls."""

# Statuses of a step's result (kept as they are in JSON; shown through _() at run time).
REGISTERED, ALREADY_REGISTERED = "registered", "already-registered"
DONE, ALREADY_DONE = "done", "already-done"
REFUSED, PENDING, FAILED = "refused", "pending", "failed"
STATUS_NAMES = {
    REGISTERED: N_("registered"),
    ALREADY_REGISTERED: N_("registered already"),
    DONE: N_("done"),
    ALREADY_DONE: N_("done already"),
    REFUSED: N_("refused"),
    PENDING: N_("not answered: waiting in the outbox"),
    FAILED: N_("failed"),
}


# --- errors -------------------------------------------------------------------------------------------


class RegistrationError(EnrollmentError):
    """A refusal of the platform, in words a distributor or installer can act on."""


class UnitOwnedElsewhere(RegistrationError):
    message = N_("Unit {serial} is in another distributor's inventory")
    remedy = N_("Check the serial on the unit's label; if the unit is yours, ask the platform's support to move it.")


class UnitNotInInventory(RegistrationError):
    message = N_("Unit {serial} is not in the distributor's inventory at the platform")
    remedy = N_("Register it first: 'naiad register inventory --device {serial}'.")


class MerchantNotFound(RegistrationError):
    message = N_("The platform knows no merchant {merchant_id}")
    remedy = N_("Check the merchant id, or scan the store's binding QR code again.")


class StoreNotFound(RegistrationError):
    message = N_("Merchant {merchant_id} has no store {store_id}")
    remedy = N_("Check the store id, or scan the store's binding QR code again.")


class UnitBoundElsewhere(RegistrationError):
    message = N_("Unit {serial} is bound to another merchant or store already")
    remedy = N_(
        "Check that this is the right unit; to move it, the merchant unbinds it on the platform first. "
        "'naiad subsidy status {serial}' shows where it is bound."
    )


class UnitNotBound(RegistrationError):
    message = N_("Unit {serial} is not bound to a store yet")
    remedy = N_("Bind it: 'naiad register bind {serial} --merchant MERCHANT --store STORE'.")


class UnitNotActivated(RegistrationError):
    message = N_("Unit {serial} is not activated yet")
    remedy = N_("Run 'naiad register bind' for the unit again: it activates the unit before enrolling it.")


class SubsidyProgramNotFound(RegistrationError):
    message = N_("The platform has no subsidy program {program}")
    remedy = N_("Leave out --program to enrol the unit in the current program, or check the program's name.")


class UnitEnrolledElsewhere(RegistrationError):
    message = N_("Unit {serial} is enrolled in another subsidy program already")
    remedy = N_("A unit stays in its first program: 'naiad subsidy status {serial}' shows which.")


class UnitNotOnPlatform(RegistrationError):
    message = N_("The platform knows no unit {serial}")
    remedy = N_("Check the serial, or register the unit first: 'naiad register inventory --device {serial}'.")


class UnitRefused(RegistrationError):
    message = N_("The platform refused unit {serial}: {sub_code} {sub_msg}")
    remedy = N_("Check the unit's serial and model; 'naiad register inventory' may be run again for it.")


class StepCallWaiting(PendingCallDiffers):
    """:class:`~provisioning.outbox.PendingCallDiffers` told with the step's name (not the platform method's), and
    what to do in the console as on the command line; ``method`` stays in the params for the console's actions."""

    message = N_(
        "Unit {serial}: an earlier call ({step}, {request_no}) is still waiting with other content; it may "
        "already be done"
    )
    remedy = N_(
        "Send it ('Send the waiting call' in the console, 'naiad register resume' on the command line), or, once "
        "you have checked the platform, drop it ('Drop the waiting call', 'naiad register abandon {request_no}'); "
        "then run again."
    )
    msgid_params = ("step",)


class StepCallUnanswered(EnrollmentError):
    """A call cut off by a crash or an outage, sent again and still not answered: whether it was done is not known."""

    message = N_("Unit {serial}: the platform has not answered the earlier call ({step}, {request_no})")
    remedy = N_(
        "Run again once the platform can be reached: the waiting call is sent again with its own number, so the "
        "platform does it once."
    )
    msgid_params = ("step",)


class InventoryCallWaiting(EnrollmentError):
    """A unit an earlier inventory call still holds, the platform unreachable: no other call is written for it."""

    message = N_("Unit {serial} waits in an earlier inventory call ({request_no}) the platform has not answered")
    remedy = N_("Run again once the platform can be reached: the waiting call is sent then.")


REFUSALS: dict[str, type[RegistrationError]] = {
    "DEVICE_OWNED_ELSEWHERE": UnitOwnedElsewhere,
    "DEVICE_NOT_IN_INVENTORY": UnitNotInInventory,
    "MERCHANT_NOT_FOUND": MerchantNotFound,
    "STORE_NOT_FOUND": StoreNotFound,
    "DEVICE_BOUND_ELSEWHERE": UnitBoundElsewhere,
    "DEVICE_NOT_BOUND": UnitNotBound,
    "DEVICE_NOT_ACTIVATED": UnitNotActivated,
    "PROGRAM_NOT_FOUND": SubsidyProgramNotFound,
    "ALREADY_ENROLLED": UnitEnrolledElsewhere,
    "DEVICE_NOT_FOUND": UnitNotOnPlatform,
}
"""The platform's business sub-codes (docs/platform-api.md) with the error a person reads for each."""


def translated(refusal: PlatformRefused, **context: Any) -> NaiadError:
    """The typed error for ``refusal`` (filled in with ``context``: serial, merchant_id, store_id, program), or the
    refusal itself when its sub-code has no words of ours (its own message names the code)."""
    kind = REFUSALS.get(refusal.sub_code or "")
    if kind is None:
        return refusal
    error = kind(**context)
    error.__cause__ = refusal
    return error


def _status_of(error: NaiadError) -> str:
    """``pending`` when the outbox keeps the call to send again (``naiad register resume``): no answer, or a
    refusal of the sending (the station's key or clock, the platform's own trouble) rather than of the request."""
    if isinstance(error, PlatformUnavailable | PlatformReplyInvalid):
        return PENDING
    if isinstance(error, PlatformRefused):
        return REFUSED if settles(error) else PENDING
    return REFUSED if isinstance(error, RegistrationError) else FAILED


def _acting(outbox: Outbox, session: OperatorSession | None, roles: Sequence[str]) -> Outbox:
    """``outbox`` writing as the operator of ``session``, once it is checked to hold one of ``roles``."""
    return outbox.as_operator(require_role(session, *roles).operator)


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitToRegister:
    serial: str
    model: str


@dataclass
class EnrollmentStepResult:
    """One step on one unit; a :class:`terminal.events.StepResult`.  ``status`` is one of ``STATUS_NAMES``."""

    serial: str
    step: str
    ok: bool
    status: str
    detail: str | None = None
    seconds: float = 0.0
    error: NaiadError | None = None

    @property
    def status_text(self) -> str:
        return _(STATUS_NAMES.get(self.status, self.status))

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "step": self.step,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            "error": self.error.as_dict() if self.error is not None else None,
        }


# --- inventory ----------------------------------------------------------------------------------------


def register_inventory(
    outbox: Outbox,
    supplier_id: str,
    units: Sequence[UnitToRegister],
    listener: Listener | None = None,
    *,
    session: OperatorSession | None,
    batch_size: int = MAX_BATCH,
) -> list[EnrollmentStepResult]:
    """Register ``units`` in ``supplier_id``'s inventory, ``batch_size`` units per platform call; a result per
    unit (a serial named twice counts once), in the order given.  A batch the platform did not answer stays in
    the outbox, its units ``pending``; the other batches go on.

    First the inventory calls an earlier run left pending are sent again (a distributor whose batch was cut runs
    the same command again), so none stays pending once the platform answers; what they got is told in a
    :class:`~terminal.events.Message` (unit ``""``).  Needs one of :data:`ROLES_INVENTORY`."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
    outbox = _acting(outbox, session, ROLES_INVENTORY)
    earlier = _resume_inventory(outbox, Reporter(listener, "", STEP_INVENTORY))
    held = _held_inventory(outbox) if earlier.pending else {}
    first: dict[str, UnitToRegister] = {}
    for unit in units:
        first.setdefault(unit.serial, unit)
    chosen = list(first.values())
    reporters = {unit.serial: Reporter(listener, unit.serial, STEP_INVENTORY) for unit in chosen}
    results: dict[str, EnrollmentStepResult] = {}
    for serial, reporter in reporters.items():
        if serial in held:  # a call of its own still waits: another one would only be sent again on recovery
            error = InventoryCallWaiting(serial=serial, request_no=held[serial])
            results[serial] = EnrollmentStepResult(serial, STEP_INVENTORY, False, PENDING, error=error)
            reporter.finished(results[serial])
        else:
            reporter.phase("wait", _("waiting for its batch"))
    fresh = [unit for unit in chosen if unit.serial not in held]
    for start in range(0, len(fresh), batch_size):
        batch = fresh[start : start + batch_size]
        for unit in batch:
            reporters[unit.serial].phase("register", _("registering in the distributor's inventory"))
        started = time.monotonic()
        answers = _register_batch(outbox, supplier_id, batch)
        for unit in batch:
            result = results[unit.serial] = answers[unit.serial]
            result.seconds = time.monotonic() - started
            reporters[unit.serial].finished(result)
    return [results[unit.serial] for unit in chosen]


def _resume_inventory(outbox: Outbox, reporter: Reporter) -> ResumeReport:
    """Send again this station's pending inventory calls, and say what they got."""
    earlier = outbox.resume(method=Method.INVENTORY_REGISTER)
    if earlier.done or earlier.refused or earlier.pending:
        LOG.info("earlier inventory calls sent again: %s", earlier)
        reporter.message(
            _(
                "Earlier inventory calls sent again: {done} done, {refused} refused, {pending} still waiting.",
                done=earlier.done,
                refused=earlier.refused,
                pending=earlier.pending,
            )
        )
    return earlier


def _held_inventory(outbox: Outbox) -> dict[str, str]:
    """Serial -> request number of this station's inventory calls still pending."""
    calls = outbox.pending(Method.INVENTORY_REGISTER)
    return {device["serial"]: call.request_no for call in calls for device in call.biz.get("devices", ())}


def register_unit(
    outbox: Outbox, supplier_id: str, unit: UnitToRegister, *, session: OperatorSession | None
) -> EnrollmentStepResult:
    """Register one unit in ``supplier_id``'s inventory with a call of its own, written about the unit (so
    :func:`inventory_done` and :func:`settle_inventory` find it); its result, never raised.  A call of its own an
    earlier run left pending is sent again instead.  Needs one of :data:`ROLES_INVENTORY`."""
    outbox = _acting(outbox, session, ROLES_INVENTORY)
    started = time.monotonic()
    result = _register_batch(outbox, supplier_id, [unit], serial=unit.serial)[unit.serial]
    result.seconds = time.monotonic() - started
    return result


def inventory_done(outbox: Outbox, serial: str) -> EnrollmentStepResult | None:
    """The unit's registration, ``already-done``, when a call of its own is on record as done with the
    platform's answer that it is registered; None when none is."""
    recorded = outbox.done(Method.INVENTORY_REGISTER, serial)
    if recorded is None or recorded.reply is None:
        return None
    for entry in recorded.reply.get("results", ()):
        if isinstance(entry, dict) and entry.get("serial") == serial and entry.get("status") in _REGISTERED:
            return EnrollmentStepResult(serial, STEP_INVENTORY, True, ALREADY_DONE, str(entry["status"]))
    return None


def settle_inventory(outbox: Outbox, serial: str) -> EnrollmentStepResult | None:
    """After a registration of ``serial`` was cut off: its pending call sent again (its own request number, so
    the platform does it once), then :func:`inventory_done`.  Raises :class:`InventoryCallWaiting` while the
    platform does not answer."""
    return _settled(outbox, serial, Method.INVENTORY_REGISTER, lambda: inventory_done(outbox, serial))


def _settled(
    outbox: Outbox, serial: str, method: Method, done: Callable[[], EnrollmentStepResult | None]
) -> EnrollmentStepResult | None:
    """``done()`` once this station's pending calls of ``method`` about ``serial`` are sent again and answered."""
    if outbox.pending(method, serial):
        outbox.resume(method, serial)
        waiting = outbox.pending(method, serial)
        if waiting:
            request_no = waiting[0].request_no
            if method == Method.INVENTORY_REGISTER:
                raise InventoryCallWaiting(serial=serial, request_no=request_no)
            raise StepCallUnanswered(serial=serial, step=_STEP_LABELS[_STEP_OF[method]], request_no=request_no)
    return done()


def _register_batch(
    outbox: Outbox, supplier_id: str, batch: Sequence[UnitToRegister], serial: str | None = None
) -> dict[str, EnrollmentStepResult]:
    biz = {"supplier_id": supplier_id, "devices": [{"serial": u.serial, "model": u.model} for u in batch]}
    try:
        reply = outbox.call(Method.INVENTORY_REGISTER, biz, serial=serial)
    except NaiadError as exc:
        LOG.info("inventory batch of %d units not registered: %s", len(batch), exc)
        return {
            u.serial: EnrollmentStepResult(
                u.serial,
                STEP_INVENTORY,
                False,
                _status_of(exc),
                error=translated(exc, serial=u.serial) if isinstance(exc, PlatformRefused) else exc,
            )
            for u in batch
        }
    answered = {entry["serial"]: entry for entry in reply["results"]}  # the client checked: one per unit asked
    return {u.serial: _unit_answer(u.serial, answered[u.serial]) for u in batch}


_REGISTERED = (REGISTERED, ALREADY_REGISTERED)


def _unit_answer(serial: str, entry: Mapping[str, Any]) -> EnrollmentStepResult:
    status = entry["status"]
    if status in _REGISTERED:
        return EnrollmentStepResult(serial, STEP_INVENTORY, True, status)
    sub_code, sub_msg = entry.get("sub_code") or "", entry.get("sub_msg") or ""
    kind = REFUSALS.get(sub_code, UnitRefused)
    error = kind(serial=serial, sub_code=sub_code, sub_msg=sub_msg)
    return EnrollmentStepResult(serial, STEP_INVENTORY, False, REFUSED, detail=sub_code or None, error=error)


# --- bind, activate, enrol ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One call of :func:`bring_live`: its method, its content, and whether a call on record did the same."""

    name: str
    method: Method
    biz: dict[str, Any]
    same: Callable[[Mapping[str, Any]], bool]
    """True for the reply of a call on record that did what this step asks."""
    detail: Callable[[Mapping[str, Any]], str | None]


_STEP_LABELS = {
    STEP_BIND: N_("binding to the merchant's store"),
    STEP_ACTIVATE: N_("activating"),
    STEP_SUBSIDY: N_("enrolling in the subsidy program"),
}


LIVE_STEPS = (STEP_BIND, STEP_ACTIVATE, STEP_SUBSIDY)
"""The calls that bring a unit live, in the order they must be done."""
LIVE_METHODS = {
    STEP_BIND: Method.DEVICE_BIND,
    STEP_ACTIVATE: Method.DEVICE_ACTIVATE,
    STEP_SUBSIDY: Method.SUBSIDY_ENROLL,
}
"""The platform method of each of :data:`LIVE_STEPS`."""
_STEP_OF = {method: name for name, method in LIVE_METHODS.items()}


def _step(name: str, supplier_id: str, serial: str, merchant: Merchant | None, program: str | None) -> _Step:
    """The call ``name`` of :data:`LIVE_STEPS` for ``serial`` (a bind needs the ``merchant``)."""
    if name == STEP_BIND:
        if merchant is None:
            raise ValueError("a bind needs a merchant")
        where = {"merchant_id": merchant.merchant_id, "store_id": merchant.store_id}
        return _Step(
            STEP_BIND,
            Method.DEVICE_BIND,
            {"serial": serial, "supplier_id": supplier_id, **where},
            lambda r: all(r.get(k) == v for k, v in where.items()),
            lambda r: f"{r.get('merchant_id')}/{r.get('store_id')}",
        )
    if name == STEP_ACTIVATE:
        return _Step(
            STEP_ACTIVATE, Method.DEVICE_ACTIVATE, {"serial": serial}, lambda r: True, lambda r: r.get("activated")
        )
    if name == STEP_SUBSIDY:
        enrol = {"serial": serial, **({"program": program} if program else {})}
        return _Step(
            STEP_SUBSIDY,
            Method.SUBSIDY_ENROLL,
            enrol,
            lambda r: program is None or r.get("program") == program,
            lambda r: r.get("program"),
        )
    raise ValueError(f"no live step {name}")


def _context(serial: str, merchant: Merchant | None, program: str | None) -> dict[str, Any]:
    """What a refusal's message is filled in with."""
    return {
        "serial": serial,
        "merchant_id": merchant.merchant_id if merchant is not None else "-",
        "store_id": merchant.store_id if merchant is not None else "-",
        "program": program or "-",
    }


def bring_live(
    outbox: Outbox,
    supplier_id: str,
    serial: str,
    merchant: Merchant,
    listener: Listener | None = None,
    *,
    session: OperatorSession | None,
    program: str | None = None,
) -> list[EnrollmentStepResult]:
    """Bind ``serial`` to ``merchant``'s store, activate it and enrol it in the subsidy ``program`` (default: the
    platform's current one).  A step the outbox holds as done for the same merchant, store and program is not sent
    again; the first step that fails ends the run: its result, with the error, is the last in the list.

    A step whose earlier call is still pending with other content fails with
    :class:`~provisioning.outbox.PendingCallDiffers` and sends nothing.  Needs one of :data:`ROLES_BIND`."""
    outbox = _acting(outbox, session, ROLES_BIND)
    results: list[EnrollmentStepResult] = []
    for index, name in enumerate(LIVE_STEPS):
        result = _live_step(outbox, supplier_id, serial, name, merchant, program, listener, index)
        results.append(result)
        if not result.ok:
            break
    return results


def run_live_step(
    outbox: Outbox,
    supplier_id: str,
    serial: str,
    name: str,
    merchant: Merchant | None,
    listener: Listener | None = None,
    *,
    session: OperatorSession | None,
    program: str | None = None,
) -> EnrollmentStepResult:
    """One call of :func:`bring_live` (``name``: ``bind``, ``activate`` or ``subsidy-enroll``) for ``serial``,
    with the same rules: not sent again when the outbox holds it as done for the same merchant, store and
    program; a pending call of its own sent again.  Its result, never raised.  Needs one of :data:`ROLES_BIND`."""
    outbox = _acting(outbox, session, ROLES_BIND)
    return _live_step(outbox, supplier_id, serial, name, merchant, program, listener, LIVE_STEPS.index(name))


def _live_step(
    outbox: Outbox,
    supplier_id: str,
    serial: str,
    name: str,
    merchant: Merchant | None,
    program: str | None,
    listener: Listener | None,
    index: int,
) -> EnrollmentStepResult:
    step = _step(name, supplier_id, serial, merchant, program)
    reporter = Reporter(listener, serial, step.name)
    reporter.phase(step.name, _(_STEP_LABELS[step.name]))
    reporter.progress(index, len(LIVE_STEPS), counts="items")
    started = time.monotonic()
    result = _run_step(outbox, serial, step, _context(serial, merchant, program))
    result.seconds = time.monotonic() - started
    reporter.progress(index + 1, len(LIVE_STEPS), counts="items")
    reporter.finished(result)
    return result


def live_step_done(
    outbox: Outbox, serial: str, name: str, merchant: Merchant | None, program: str | None = None
) -> EnrollmentStepResult | None:
    """The call ``name`` for ``serial``, ``already-done``, when the outbox holds it as done (for the same merchant,
    store and program) and none of its calls is pending; None otherwise."""
    step = _step(name, "-", serial, merchant, program)
    if outbox.pending(step.method, serial):
        return None
    recorded = outbox.done(step.method, serial)
    if recorded is not None and recorded.reply is not None and step.same(recorded.reply):
        return EnrollmentStepResult(serial, step.name, True, ALREADY_DONE, step.detail(recorded.reply))
    return None


def settle_live_step(
    outbox: Outbox, serial: str, name: str, merchant: Merchant | None, program: str | None = None
) -> EnrollmentStepResult | None:
    """After the call ``name`` for ``serial`` was cut off (a crash, an outage): its pending call sent again (with
    its own request number: the platform does it once), then :func:`live_step_done`.  None when it is neither
    pending nor done (or was refused: run it again to hear why).  Raises :class:`StepCallUnanswered` while the
    platform does not answer."""
    method = LIVE_METHODS[name]
    return _settled(outbox, serial, method, lambda: live_step_done(outbox, serial, name, merchant, program))


def _run_step(outbox: Outbox, serial: str, step: _Step, context: Mapping[str, Any]) -> EnrollmentStepResult:
    # a pending call of this step goes first: an older done one must not hide it (outbox.call resends it, or
    # raises PendingCallDiffers when it asks something else)
    recorded = None if outbox.pending(step.method, serial) else outbox.done(step.method, serial)
    if recorded is not None and recorded.reply is not None and step.same(recorded.reply):
        LOG.info("%s: %s was done already (request %s)", serial, step.name, recorded.request_no)
        return EnrollmentStepResult(serial, step.name, True, ALREADY_DONE, step.detail(recorded.reply))
    try:  # a pending call of this step with other content raises PendingCallDiffers: nothing is sent
        reply = outbox.call(step.method, step.biz, serial=serial)
    except NaiadError as exc:
        error = translated(exc, **context) if isinstance(exc, PlatformRefused) else exc
        if isinstance(exc, PendingCallDiffers):
            error = StepCallWaiting(**{**exc.params, "serial": serial, "step": _STEP_LABELS[step.name]})
        LOG.info("%s: %s not done: %s", serial, step.name, exc)
        return EnrollmentStepResult(serial, step.name, False, _status_of(error), error=error)
    return EnrollmentStepResult(serial, step.name, True, DONE, step.detail(reply))


# --- subsidy status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubsidyMonth:
    index: int
    start: str
    end: str
    users: int
    earned: Decimal


@dataclass(frozen=True)
class UnitSubsidy:
    serial: str
    merchant_id: str
    store_id: str
    program: str | None
    activated: str | None
    window_end: str | None
    months: tuple[SubsidyMonth, ...]
    users: int
    earned: Decimal
    cap_left: Decimal
    months_left: int

    def as_dict(self) -> dict[str, Any]:
        """For JSON: money as text with two decimals, as the platform sends it."""
        return {
            "serial": self.serial,
            "merchant_id": self.merchant_id,
            "store_id": self.store_id,
            "program": self.program,
            "activated": self.activated,
            "window_end": self.window_end,
            "months": [
                {"index": m.index, "start": m.start, "end": m.end, "users": m.users, "earned": str(m.earned)}
                for m in self.months
            ],
            "users": self.users,
            "earned": str(self.earned),
            "cap_left": str(self.cap_left),
            "months_left": self.months_left,
        }


def subsidy_status(
    outbox: Outbox, *, session: OperatorSession | None, serial: str | None = None, merchant_id: str | None = None
) -> list[UnitSubsidy]:
    """The subsidy of one unit (``serial``) or of every unit of a merchant (``merchant_id``): exactly one.
    Needs one of :data:`ROLES_SUBSIDY`."""
    if (serial is None) == (merchant_id is None):
        raise ValueError("name exactly one of serial and merchant_id")
    require_role(session, *ROLES_SUBSIDY)
    biz = {"serial": serial} if serial is not None else {"merchant_id": merchant_id}
    try:
        reply = outbox.read(Method.SUBSIDY_QUERY, biz)
    except PlatformRefused as exc:
        raise translated(exc, serial=serial or "-", merchant_id=merchant_id or "-") from exc
    return [_unit_subsidy(unit) for unit in reply["units"]]


def _unit_subsidy(unit: Mapping[str, Any]) -> UnitSubsidy:
    """A unit of a subsidy reply, which the client checked field by field (amounts are "0.00" text)."""
    months = tuple(
        SubsidyMonth(m["index"], m["start"], m["end"], m["users"], Decimal(m["earned"])) for m in unit["months"]
    )
    return UnitSubsidy(
        serial=unit["serial"],
        merchant_id=unit["merchant_id"],
        store_id=unit["store_id"],
        program=unit["program"],
        activated=unit["activated"],
        window_end=unit["window_end"],
        months=months,
        users=unit["users"],
        earned=Decimal(unit["earned"]),
        cap_left=Decimal(unit["cap_left"]),
        months_left=unit["months_left"],
    )


# --- the outbox's pending calls -----------------------------------------------------------------------


def resume_calls(
    outbox: Outbox, *, session: OperatorSession | None, method: Method | None = None, serial: str | None = None
) -> ResumeReport:
    """Send again every call of this station still pending (of ``method``, about ``serial`` when given), oldest
    first.  Needs one of :data:`ROLES_OUTBOX`."""
    return _acting(outbox, session, ROLES_OUTBOX).resume(method, serial)


def abandon_call(outbox: Outbox, request_no: str, *, session: OperatorSession | None) -> PlatformCallRecord:
    """Drop this station's pending call ``request_no`` (once someone checked on the platform that it is not
    wanted): it is never sent again, and the next run writes a new call.  Needs one of :data:`ROLES_OUTBOX`."""
    return _acting(outbox, session, ROLES_OUTBOX).abandon(request_no)
