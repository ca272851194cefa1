"""The cards' "Merchant…" action: one :class:`~console.merchant_form.MerchantForm` per unit, and its runs.

:class:`MerchantBinding` starts :func:`provisioning.registration.bring_live` (and the sending or dropping of a
waiting call the form offers) as jobs on the console's workers, keeps the unit busy until the job ends, and
shows the outcome on the form and on the unit's card.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QWidget,
)

from enrollment.gateway import Method
from i18n import N_, _
from provisioning.registration import ROLES_BIND
from terminal.errors import NaiadError

from .operator_login import OperatorLogin, role_text
from .platform_access import PlatformAccess, PlatformActions
from .unit_card import Bench, error_texts
from .workers import Job, Workers

if TYPE_CHECKING:
    from enrollment.config import PlatformConfig
    from provisioning.outbox import Outbox, ResumeReport
    from provisioning.registration import EnrollmentStepResult

from .merchant_form import CURRENT_PROGRAM, LIVE, STEPS, BindRequest, MerchantForm, WaitingCallRequest

LOG = logging.getLogger(__name__)
BINDING = N_("Binding to merchant {merchant}…")
SENT = N_("The waiting call was sent: {done} done, {refused} refused, {pending} still waiting. Run again.")
DROPPED = N_("The waiting call {request_no} was dropped: it is never sent. Run again.")


class BindRoleNeeded(NaiadError):
    message = N_("Binding a unit to a merchant needs a logged-in operator with one of the roles: {roles}")
    remedy = N_("Log in with one of those roles.")


class MerchantBinding(PlatformActions):
    """The cards' "Merchant…" action: one form per unit and its runs on the workers (GUI thread only)."""

    action = "merchant"
    roles = ROLES_BIND
    summarised = pyqtSignal(str)

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        access: PlatformAccess,
        operator: OperatorLogin,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(bench, workers, access, operator, parent)
        self.forms: dict[str, MerchantForm] = {}
        self._sync()

    def windows(self) -> list[QWidget]:
        return list(self.forms.values())

    def open_for(self, serial: str) -> MerchantForm | None:
        """Show ``serial``'s form (one per unit); None unless a role that may bind is logged in."""
        if not self.allowed():
            return None
        form = self.forms.get(serial)
        if form is None:
            form = MerchantForm(serial, self._window)
            form.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            form.start_requested.connect(self.start)
            form.waiting_requested.connect(self.settle_waiting)
            form.finished.connect(lambda _result, form=form: self._forget(form))
            self.forms[serial] = form
        form.show()
        form.raise_()
        return form

    def _forget(self, form: MerchantForm) -> None:
        if self.forms.get(form.serial) is form:
            del self.forms[form.serial]

    def start(self, request: BindRequest) -> Job | None:
        """Bring ``request.serial`` live off the GUI thread; None (the reason shown) if refused."""
        form = self.forms.get(request.serial)
        session = self._operator.session
        if session is None or not self.allowed():  # logged out, or another role, since the form opened
            self._not_started(request.serial, BindRoleNeeded(roles=", ".join(role_text(r) for r in ROLES_BIND)))
            return None
        access, held = self._access, [request.secret]
        request = replace(request, secret="")  # the job's closures and slots outlive the run: only `held` has it
        serial, merchant, program = request.serial, request.merchant, request.program

        def work(listener: Any) -> list[EnrollmentStepResult]:
            from provisioning.registration import bring_live

            def run(outbox: Outbox, config: PlatformConfig) -> list[EnrollmentStepResult]:
                supplier = config.supplier_id
                return bring_live(outbox, supplier, serial, merchant, listener, session=session, program=program)

            return access.call(held.pop(), run)

        job = Job(work, (serial,), "bring live", release_on="end")  # busy through all three steps
        self._bench.follow(job)
        if form is not None:
            job.phase_started.connect(form.phase_started)
            job.step_finished.connect(form.step_finished)
        if not self._launch(job, request.serial, lambda results, error: self._ended(request, results, error)):
            return None
        if form is not None:
            form.begin()
        card = self._bench.card(request.serial)
        if card is not None:
            card.begin_job()
            card.show_step(BINDING, merchant=request.merchant.merchant_id)
        LOG.info(
            "%s",
            _(
                "Binding {serial} to merchant {merchant}, store {store}; subsidy program {program}",
                serial=request.serial,
                merchant=request.merchant.merchant_id,
                store=request.merchant.store_id,
                program=request.program or _(CURRENT_PROGRAM),
            ),
        )
        return job

    def _ended(self, request: BindRequest, results: Any, error: BaseException | None) -> None:
        steps = list(results) if isinstance(results, list) else []
        failure = error or next((r.error or NaiadError() for r in steps if not r.ok), None)
        if failure is None and len(steps) != len(STEPS):
            failure = NaiadError()
        form = self.forms.get(request.serial)
        if form is not None:
            form.end(steps, error)
        card = self._bench.card(request.serial)
        merchant = request.merchant
        if failure is None:
            text = _(LIVE, merchant=merchant.merchant_id, store=merchant.store_id)
            LOG.info("%s", _("{serial}: {outcome}", serial=request.serial, outcome=text))
            if card is not None:
                card.show_result(LIVE, merchant=merchant.merchant_id, store=merchant.store_id)
            self.summarised.emit(text)
        else:
            if card is not None:
                card.show_error(failure, sticky=True)
            self._log_failure(request.serial, failure)
        if card is not None:
            card.end_job()

    def settle_waiting(self, request: WaitingCallRequest) -> Job | None:
        """Send or drop the call a run of ``request.serial`` stopped at, off the GUI thread; None if refused."""
        form = self.forms.get(request.serial)
        session = self._operator.session
        if session is None or not self.allowed():
            self._not_started(request.serial, BindRoleNeeded(roles=", ".join(role_text(r) for r in ROLES_BIND)))
            return None
        access, held = self._access, [request.secret]
        request = replace(request, secret="")

        def work(_listener: Any) -> ResumeReport | None:
            from provisioning.registration import abandon_call, resume_calls

            def use(outbox: Outbox, _config: PlatformConfig) -> ResumeReport | None:
                if request.drop:
                    abandon_call(outbox, request.request_no, session=session)
                    return None
                return resume_calls(outbox, session=session, method=Method(request.method), serial=request.serial)

            return access.call(held.pop(), use)

        job = Job(work, (request.serial,), "settle waiting call")
        if not self._launch(job, request.serial, lambda report, error: self._settled(request, report, error)):
            return None
        if form is not None:
            form.begin_waiting()
        return job

    def _settled(self, request: WaitingCallRequest, report: ResumeReport | None, error: BaseException | None) -> None:
        note: tuple[str, dict[str, object]] | None = None
        if error is not None:
            self._log_failure(request.serial, error)
        elif request.drop:
            note = (DROPPED, {"request_no": request.request_no})
        elif report is not None:
            note = (SENT, {"done": report.done, "refused": report.refused, "pending": report.pending})
        if note is not None:
            LOG.info("%s", _("{serial}: {outcome}", serial=request.serial, outcome=_(note[0], **note[1])))
        form = self.forms.get(request.serial)
        if form is not None:
            form.end_waiting(note, error)

    def _launch(self, job: Job, serial: str, ended: Callable[[Any, BaseException | None], None]) -> bool:
        """Start ``job``, ``ended(result, error)`` once it ends; False (the reason shown) if it was refused."""
        job.succeeded.connect(lambda result: ended(result, None))
        job.failed.connect(lambda error: ended(None, error))
        try:
            self._workers.start(job)
        except NaiadError as exc:
            self._not_started(serial, exc)
            return False
        return True

    def _not_started(self, serial: str, error: BaseException) -> None:
        """The run was refused before it started (the unit busy with another job, the role): its form says why; the
        card keeps showing what it shows (another job's progress, say)."""
        form = self.forms.get(serial)
        if form is not None:
            form.end([], error)
        self._log_failure(serial, error)

    def _log_failure(self, serial: str, error: BaseException) -> None:
        message, remedy = error_texts(error)
        text = _("{serial}: {message}", serial=serial, message=message)
        LOG.error("%s", text + (f" — {remedy}" if remedy else ""))
        self.summarised.emit(text)

    def retranslate(self) -> None:
        for form in self.forms.values():
            form.retranslate()
