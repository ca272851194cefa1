"""The distributor's bench actions on the merchant platform: register units in inventory, send waiting calls.

"Register in inventory…" (Bench menu) lists the bench's units, all ticked; Start runs
:func:`provisioning.registration.register_inventory` over the ticked ones as one job on the console's workers,
with the logged-in session (the ledger names the operator).  Each unit is claimed until its own answer comes, and
its card follows the run's events like any step's: waiting for its batch, registering, then registered or the
refusal with its remedy.  The log pane gets the run's summary.

"Send waiting platform calls…" sends the station's calls an outage left pending in the outbox
(:func:`provisioning.registration.resume_calls`), the console's ``naiad register resume``, and says what became
of them.  Both ask for the key store's passphrase or PIN (unless the environment holds it): it reaches only the
key store's constructor, on the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QAction, QResizeEvent
from PyQt6.QtWidgets import QDialog, QFormLayout, QLabel, QVBoxLayout, QWidget

from i18n import N_, _
from provisioning.registration import ALREADY_REGISTERED, REGISTERED, ROLES_INVENTORY, ROLES_OUTBOX, UnitToRegister
from terminal.errors import NaiadError

from .operator_login import OperatorLogin, role_text
from .platform_access import PlatformAccess, SecretField, fit_height
from .unit_card import Bench
from .unit_picker import BUSY, StartFoot, UnitChoice, UnitPicker
from .unit_runs import UnitRun, UnitRuns
from .workers import Job, Workers

if TYPE_CHECKING:
    from enrollment.config import PlatformConfig
    from provisioning.operators import OperatorSession
    from provisioning.outbox import Outbox, ResumeReport
    from provisioning.registration import EnrollmentStepResult

LOG = logging.getLogger(__name__)

WAITING = N_("Waiting to register in the distributor's inventory…")
NOT_STARTED = N_("Inventory registration did not start: {message}")
IN_INVENTORY = {
    REGISTERED: N_("Registered in the distributor's inventory"),
    ALREADY_REGISTERED: N_("In the distributor's inventory already"),
}
RESUMED = N_("Waiting platform calls: {done} done, {refused} refused, {pending} still waiting")


class InventoryRoleNeeded(NaiadError):
    message = N_("Registering units in the inventory needs a logged-in operator with one of the roles: {roles}")
    remedy = N_("Log in with one of those roles.")


class OutboxRoleNeeded(NaiadError):
    message = N_("Sending waiting platform calls needs a logged-in operator with one of the roles: {roles}")
    remedy = N_("Log in with one of those roles.")


class InventoryResultMissing(NaiadError):
    message = N_("Unit {serial} got no answer from the inventory registration")
    remedy = N_("Register it again: a unit the platform holds already is reported as registered.")


def allowed(session: OperatorSession | None, roles: Sequence[str]) -> bool:
    return session is not None and session.role in roles


def role_names(roles: Sequence[str]) -> str:
    return ", ".join(role_text(role) for role in roles)


@dataclass(frozen=True)
class InventoryRequest:
    """One press of Start: these units, the key store opened with ``secret``."""

    units: tuple[UnitToRegister, ...]
    secret: str = field(repr=False)


class SecretDialog(QDialog):
    """A dialog whose Start calls the platform: what it is about (``top``), the key store's passphrase or PIN, and
    the foot; closing it, by Start or Cancel, forgets the secret typed."""

    start: Callable[[], None]
    _refresh: Callable[[], None]

    def __init__(self, top: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.secret_caption = QLabel()
        self.secret_edit = SecretField()
        self.secret_edit.textChanged.connect(lambda _text: self._refresh())
        secret = QFormLayout()
        secret.addRow(self.secret_caption, self.secret_edit)
        self.foot = StartFoot()
        self.start_button, self.cancel_button = self.foot.start_button, self.foot.cancel_button
        self.start_button.clicked.connect(lambda _checked=False: self.start())
        self.cancel_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(top, 1)
        layout.addLayout(secret)
        layout.addWidget(self.foot)

    def done(self, result: int) -> None:
        self.secret_edit.forget()
        super().done(result)

    def retranslate(self) -> None:
        self.secret_caption.setText(self.secret_edit.caption())
        self.secret_edit.retranslate()


class InventoryDialog(SecretDialog):
    """Tick units, type the key store's secret, press Start: ``start_requested(request)``, and the dialog closes."""

    start_requested = pyqtSignal(object)

    def __init__(self, units: Sequence[UnitChoice] = (), parent: QWidget | None = None) -> None:
        self.picker = UnitPicker(lambda unit: BUSY if unit.busy else None)  # the serial and model suffice
        super().__init__(self.picker, parent)
        self.setObjectName("inventoryDialog")
        self.picker.changed.connect(self._refresh)
        self._units: list[UnitChoice] = []
        self.set_units(units)
        self.retranslate()
        self.resize(640, 480)

    def set_units(self, units: Sequence[UnitChoice]) -> None:
        self._units = list(units)
        self.picker.set_units(units)

    def blocker(self) -> str | None:
        """The msgid of why Start is off; None when it is on."""
        if not self.picker.selected_serials():
            return N_("Tick the units to register.")
        if self.secret_edit.missing():
            return N_("Enter the key store's passphrase or PIN.")
        return None

    def request(self) -> InventoryRequest:
        """What was chosen (call only when :meth:`blocker` is None)."""
        models = {unit.serial: unit.model for unit in self._units}
        units = tuple(UnitToRegister(serial, models[serial]) for serial in self.picker.selected_serials())
        return InventoryRequest(units, self.secret_edit.text())

    def start(self) -> None:
        if self.blocker() is not None:
            self._refresh()
            return
        self.start_requested.emit(self.request())
        self.accept()

    def _refresh(self) -> None:
        blocker = self.blocker()
        self.start_button.setEnabled(blocker is None)
        count = len(self.picker.selected_serials())
        self.foot.show_hint(_(blocker) if blocker else _("Ready to register {count} units.", count=count))

    def retranslate(self) -> None:
        super().retranslate()
        self.setWindowTitle(_("Register in the distributor's inventory"))
        self.picker.retranslate()
        self.start_button.setText(_("Register"))
        self.cancel_button.setText(_("Cancel"))
        self._refresh()


class ResumeDialog(SecretDialog):
    """Send the outbox's waiting calls (``resume_requested(secret)``) and show what became of them."""

    resume_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        self.running = False
        self.report: ResumeReport | None = None
        self._error: BaseException | None = None
        self.about_label = QLabel()
        self.about_label.setWordWrap(True)
        self.about_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        super().__init__(self.about_label, parent)
        self.setObjectName("resumeDialog")
        self.retranslate()
        self.setMinimumWidth(520)

    def start(self) -> None:
        if not self.running and not self.secret_edit.missing():
            self.resume_requested.emit(self.secret_edit.text())

    def begin(self) -> None:
        self.running, self.report, self._error = True, None, None
        self._refresh()

    def end(self, report: ResumeReport | None, error: BaseException | None) -> None:
        self.running, self.report, self._error = False, report, error
        self._refresh()

    def _refresh(self) -> None:
        missing = self.secret_edit.missing()
        self.start_button.setEnabled(not self.running and not missing)
        self.secret_edit.setEnabled(not self.running)
        report = self.report
        if self.running:
            self.foot.show_hint(_("Sending the waiting calls…"))
        elif self._error is not None:
            self.foot.show_hint(_("The calls were not sent:"), self._error)
        elif report is not None:
            self.foot.show_hint(_(RESUMED, done=report.done, refused=report.refused, pending=report.pending))
        else:
            self.foot.show_hint(_("Enter the key store's passphrase or PIN.") if missing else "")
        fit_height(self.foot.hint_label)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        fit_height(self.foot.hint_label)

    def retranslate(self) -> None:
        super().retranslate()
        self.setWindowTitle(_("Send waiting platform calls"))
        self.about_label.setText(
            _(
                "Calls this station wrote to the platform and got no answer for (an outage, a crash) wait in the "
                "outbox. Sending them again is safe: the platform does each at most once."
            )
        )
        self.start_button.setText(_("Send"))
        self.cancel_button.setText(_("Close"))
        self._refresh()


class InventoryRegistration(UnitRuns):
    """The Bench menu's "Register in inventory…" and "Send waiting platform calls…" (GUI thread only)."""

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        access: PlatformAccess,
        operator: OperatorLogin,
        units: Callable[[], list[UnitChoice]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(bench, workers, WAITING, InventoryResultMissing, parent)
        self._access = access
        self._operator = operator
        self._units = units
        self._window = parent
        self.dialog: InventoryDialog | None = None
        self.resume_dialog: ResumeDialog | None = None
        self.resume_job: Job | None = None
        """The resume running, if one is: one at a time, whichever dialog asked (a closed one's job runs on)."""
        self.action = QAction(self)
        self.action.setObjectName("registerInventoryAction")
        self.action.triggered.connect(lambda _checked=False: self.open_dialog())
        self.resume_action = QAction(self)
        self.resume_action.setObjectName("resumeCallsAction")
        self.resume_action.triggered.connect(lambda _checked=False: self.open_resume())
        operator.changed.connect(self._sync)
        self._sync()
        self.retranslate()

    def _sync(self) -> None:
        """Each action only for its roles; logging out closes its dialog."""
        session = self._operator.session
        for action, dialog, roles in (
            (self.action, self.dialog, ROLES_INVENTORY),
            (self.resume_action, self.resume_dialog, ROLES_OUTBOX),
        ):
            action.setVisible(allowed(session, roles))
            if dialog is not None and not allowed(session, roles):
                dialog.close()

    def set_units(self, units: list[UnitChoice]) -> None:
        self.action.setEnabled(bool(units))
        if self.dialog is not None:
            self.dialog.set_units(units)

    def close_dialogs(self) -> None:
        for dialog in (self.dialog, self.resume_dialog):
            if dialog is not None:
                dialog.close()

    # -- inventory ----------------------------------------------------------------------------------------

    def open_dialog(self) -> InventoryDialog | None:
        if not allowed(self._operator.session, ROLES_INVENTORY):
            return None
        dialog = self.dialog
        if dialog is None:
            dialog = self.dialog = InventoryDialog(self._units(), self._window)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.start_requested.connect(self.start)
            dialog.finished.connect(lambda _result, dialog=dialog: self._forget(dialog))
        dialog.show()
        dialog.raise_()
        return dialog

    def _forget(self, dialog: QDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        if self.resume_dialog is dialog:
            self.resume_dialog = None

    def start(self, request: InventoryRequest) -> UnitRun | None:
        """Register ``request.units`` off the GUI thread, as the logged-in operator; None (the reason logged) if
        refused."""
        session = self._operator.session
        if session is None or not allowed(session, ROLES_INVENTORY):  # logged out since the dialog opened
            self.log_refused(InventoryRoleNeeded(roles=role_names(ROLES_INVENTORY)), NOT_STARTED)
            return None
        units, access, held = request.units, self._access, [request.secret]
        run = UnitRun(self.next_number(), tuple(unit.serial for unit in units))

        def work(listener: Any) -> list[EnrollmentStepResult]:
            from provisioning.registration import register_inventory

            def use(outbox: Outbox, config: PlatformConfig) -> list[EnrollmentStepResult]:
                return register_inventory(outbox, config.supplier_id, units, listener, session=session)

            return access.call(held.pop(), use)

        try:
            self.launch(run, work, "register inventory")
        except NaiadError as exc:
            self.log_refused(exc, NOT_STARTED)
            return None
        LOG.info(
            "%s",
            _(
                "Registering {count} units in the distributor's inventory: {serials}",
                count=len(run.serials),
                serials=", ".join(run.serials),
            ),
        )
        return run

    def describe(self, result: Any) -> tuple[str, dict[str, object]] | None:
        if not getattr(result, "ok", False):
            return None
        return IN_INVENTORY.get(str(getattr(result, "status", "")), IN_INVENTORY[REGISTERED]), {}

    def summarise(self, run: UnitRun) -> None:
        if run.error is not None:  # the key store, the configuration or the role refused the run: nothing was sent
            self.log_refused(run.error, NOT_STARTED)
            return
        super().summarise(run)
        registered = sum(self.describe(run.results.get(serial)) is not None for serial in run.serials)
        text = _(
            "Inventory: {registered} of {count} units registered, {failed} not",
            registered=registered,
            count=len(run.serials),
            failed=len(run.serials) - registered,
        )
        (LOG.info if registered == len(run.serials) else LOG.error)("%s", text)
        self.summarised.emit(text)

    # -- waiting calls --------------------------------------------------------------------------------------

    def open_resume(self) -> ResumeDialog | None:
        if not allowed(self._operator.session, ROLES_OUTBOX):
            return None
        dialog = self.resume_dialog
        if dialog is None:
            dialog = self.resume_dialog = ResumeDialog(self._window)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.resume_requested.connect(lambda secret, dialog=dialog: self.resume(dialog, secret))
            dialog.finished.connect(lambda _result, dialog=dialog: self._forget(dialog))
            if self.resume_job is not None:  # reopened while the last one's calls are still being sent
                dialog.begin()
        dialog.show()
        dialog.raise_()
        return dialog

    def resume(self, dialog: ResumeDialog, secret: str) -> Job | None:
        """Send this station's waiting calls off the GUI thread, as the logged-in operator; None while another
        resume runs (the dialog shows that one's end)."""
        if self.resume_job is not None:
            dialog.begin()
            return None
        session = self._operator.session
        if session is None or not allowed(session, ROLES_OUTBOX):
            dialog.end(None, OutboxRoleNeeded(roles=role_names(ROLES_OUTBOX)))
            return None
        access, held = self._access, [secret]

        def work(_listener: Any) -> ResumeReport:
            from provisioning.registration import resume_calls

            return access.call(held.pop(), lambda outbox, _config: resume_calls(outbox, session=session))

        job = Job(work, (), "resume platform calls")
        job.succeeded.connect(lambda report: self._resumed(report, None))
        job.failed.connect(lambda error: self._resumed(None, error))
        try:
            self._workers.start(job)
        except NaiadError as exc:
            dialog.end(None, exc)
            return None
        self.resume_job = job
        dialog.begin()
        return job

    def _resumed(self, report: ResumeReport | None, error: BaseException | None) -> None:
        self.resume_job = None
        if error is not None:
            self.log_refused(error, N_("The waiting platform calls were not sent: {message}"))
        elif report is not None:
            text = _(RESUMED, done=report.done, refused=report.refused, pending=report.pending)
            (LOG.info if report.pending == 0 else LOG.warning)("%s", text)
            self.summarised.emit(text)
        if self.resume_dialog is not None:  # the one open now, were it reopened since
            self.resume_dialog.end(report, error)

    def retranslate(self) -> None:
        self.action.setText(_("Register in inventory…"))
        self.action.setToolTip(_("Register the bench's units in the distributor's inventory at the platform"))
        self.resume_action.setText(_("Send waiting platform calls…"))
        self.resume_action.setToolTip(
            _("Send again the platform calls an outage left waiting in the outbox ('naiad register resume')")
        )
        for dialog in (self.dialog, self.resume_dialog):
            if dialog is not None:
                dialog.retranslate()
