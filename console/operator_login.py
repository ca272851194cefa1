"""Operators log in to the console: who is at the bench decides which actions it offers.

:class:`OperatorLogin` holds the logged-in operator's session (GUI thread only) and its "Log in…" and
"Log out" actions; the password check (:func:`provisioning.operators.login`, scrypt and the ledger) runs as a
job on the console's workers, never on the GUI thread.  :class:`LoginDialog` asks for the name and the password
(echo hidden), shows a failed login's error and remedy, and forgets the password when it closes.  Logging out
forgets the session: a console login is a password session, with no token to end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _
from terminal.errors import NaiadError

from .unit_card import error_texts, repolish
from .workers import Job, StationProvider, Workers

if TYPE_CHECKING:
    from provisioning.operators import OperatorSession

LOG = logging.getLogger(__name__)

# The ledger's roles (provisioning.ledger.models.ROLES) as people read them.
ROLE_LABELS: dict[str, str] = {
    "installer": N_("installer"),
    "operator": N_("operator"),
    "custodian": N_("custodian"),
    "support": N_("support"),
    "admin": N_("admin"),
}


def role_text(role: str) -> str:
    msgid = ROLE_LABELS.get(role)
    return _(msgid) if msgid else role


class OperatorLogin(QObject):
    """Who is logged in at this console; ``changed`` whenever that changes (GUI thread only)."""

    changed = pyqtSignal()

    def __init__(self, workers: Workers, stations: StationProvider, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._window = parent
        self._workers = workers
        self._stations = stations
        self.session: OperatorSession | None = None
        self.dialog: LoginDialog | None = None
        self.login_action = QAction(self)
        self.login_action.setObjectName("logInAction")
        self.login_action.triggered.connect(lambda _checked=False: self.open_dialog())
        self.logout_action = QAction(self)
        self.logout_action.setObjectName("logOutAction")
        self.logout_action.triggered.connect(lambda _checked=False: self.log_out())
        self.status_label = QLabel()
        self.status_label.setObjectName("operatorStatus")
        self.retranslate()

    def has_role(self, role: str) -> bool:
        """Whether an operator with exactly ``role`` is logged in (roles do not nest)."""
        return self.session is not None and self.session.role == role

    def log_in(self, name: str, password: str) -> Job:
        """Check ``name``'s password on the workers; on success the session is this console's.

        Cancel the job returned (:meth:`Job.cancel`) and nobody is logged in, whatever the check finds."""
        stations, held = self._stations, [password]

        def check(_listener: object) -> OperatorSession:
            from provisioning.operators import login

            return login(stations.get().ledger, name, held.pop())  # the password is dropped once checked

        job = Job(check, name="operator login")
        job.succeeded.connect(self._on_logged_in)
        self._workers.start(job)
        return job

    def count_operators(self) -> Job:
        """Count the ledger's operators on the workers (the job's result: an int, None when they cannot be)."""
        stations = self._stations

        def count(_listener: object) -> int | None:
            try:
                return len(stations.get().ledger.operators())
            except Exception as exc:  # the log-in itself shows what is wrong with the ledger, in words
                LOG.debug("operators not counted (%s)", type(exc).__name__)
                return None

        job = Job(count, name="operator count")
        self._workers.start(job)
        return job

    def _on_logged_in(self, session: OperatorSession) -> None:
        previous, self.session = self.session, session
        if previous is not None and previous.operator != session.operator:  # another operator took over
            LOG.info("%s", _("Operator {operator} logged out", operator=previous.operator))
        LOG.info(
            "%s",
            _("Operator {operator} logged in ({role})", operator=session.operator, role=role_text(session.role)),
        )
        self.retranslate()
        self.changed.emit()

    def log_out(self) -> None:
        """Forget the session; actions that needed it disappear."""
        session, self.session = self.session, None
        if session is None:
            return
        LOG.info("%s", _("Operator {operator} logged out", operator=session.operator))
        self.retranslate()
        self.changed.emit()

    def open_dialog(self) -> LoginDialog:
        """Show the login dialog (one at a time)."""
        dialog = self.dialog
        if dialog is None:
            dialog = LoginDialog(self, self._window)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.finished.connect(lambda _result, dialog=dialog: self._forget_dialog(dialog))
            self.dialog = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    def _forget_dialog(self, dialog: LoginDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None

    def close_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.close()

    def retranslate(self) -> None:
        self.login_action.setText(_("Log in…"))
        self.login_action.setToolTip(_("Log in as an operator: what you may do depends on your role"))
        self.logout_action.setText(_("Log out"))
        self.login_action.setEnabled(self.session is None)
        self.logout_action.setEnabled(self.session is not None)
        session = self.session
        if session is None:
            self.status_label.setText(_("Not logged in"))
        else:
            self.status_label.setText(
                _("Operator: {operator} ({role})", operator=session.operator, role=role_text(session.role))
            )
        if self.dialog is not None:
            self.dialog.retranslate()


class LoginDialog(QDialog):
    """Operator name and password; "Log in" checks them on the workers and closes the dialog when they match."""

    def __init__(self, login: OperatorLogin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loginDialog")
        self._login = login
        self._error: BaseException | None = None
        self._job: Job | None = None  # the check under way
        self.checking = False
        self.name_caption, self.password_caption = QLabel(), QLabel()
        self.name_edit = QLineEdit()
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow(self.name_caption, self.name_edit)
        form.addRow(self.password_caption, self.password_edit)
        self.error_label = QLabel()
        self.error_label.setObjectName("cardStep")  # the style sheet's red for failed="true"
        self.error_label.setProperty("failed", True)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.buttons = QDialogButtonBox()
        login_button = self.buttons.addButton("", QDialogButtonBox.ButtonRole.AcceptRole)
        cancel = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        assert login_button is not None and cancel is not None
        self.login_button, self.cancel_button = login_button, cancel
        self.login_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self.reject)
        self.name_edit.returnPressed.connect(self.password_edit.setFocus)
        self.password_edit.returnPressed.connect(self.submit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.retranslate()
        self.setMinimumWidth(420)

    def submit(self) -> None:
        """Check the name and password on the workers; the dialog waits, then closes or shows why not."""
        name, password = self.name_edit.text().strip(), self.password_edit.text()
        if self.checking or not name or not password:
            return
        self._set_checking(True)
        self._job = job = self._login.log_in(name, password)
        job.succeeded.connect(self._on_succeeded)
        job.failed.connect(self._on_failed)

    def _on_succeeded(self, _session: object) -> None:
        self._job = None
        self._set_checking(False)
        self.accept()

    def _on_failed(self, error: BaseException) -> None:
        self._job = None
        self._set_checking(False)
        self._error = error
        self.password_edit.setText("")
        self.password_edit.setFocus()
        self._draw_error()

    def _set_checking(self, checking: bool) -> None:
        self.checking = checking
        for widget in (self.name_edit, self.password_edit, self.login_button):
            widget.setEnabled(not checking)

    def _draw_error(self) -> None:
        if self._error is None:
            self.error_label.hide()
            return
        message, remedy = error_texts(self._error)
        self.error_label.setText("\n".join(part for part in (message, remedy) if part))
        self.error_label.show()
        repolish(self.error_label)
        self.adjustSize()  # a wrapped label's height is not in the layout's minimum: grow to show it all

    def done(self, result: int) -> None:
        """Closing forgets the password typed (``setText`` also drops the field's undo history); closing while
        the password is checked (Cancel) logs nobody in, even if it matches."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
            self._set_checking(False)
        self.password_edit.setText("")
        super().done(result)

    def retranslate(self) -> None:
        self.setWindowTitle(_("Log in"))
        self.name_caption.setText(_("Operator:"))
        self.password_caption.setText(_("Password:"))
        self.login_button.setText(_("Log in"))
        self.cancel_button.setText(_("Cancel"))
        self._draw_error()


class LoginForm(QWidget):
    """Name, password and "Log in", for the shell's log-in and lock pages; checks them as a job, shows a failed
    login's error and remedy, and forgets the password once checked."""

    def __init__(self, login: OperatorLogin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._login = login
        self._error: BaseException | None = None
        self._job: Job | None = None
        self.checking = False
        self.name_caption, self.password_caption = QLabel(), QLabel()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("loginName")
        self.password_edit = QLineEdit()
        self.password_edit.setObjectName("loginPassword")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow(self.name_caption, self.name_edit)
        form.addRow(self.password_caption, self.password_edit)
        self.error_label = QLabel()
        self.error_label.setObjectName("cardStep")  # the style sheet's red for failed="true"
        self.error_label.setProperty("failed", True)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.login_button = QPushButton()
        self.login_button.setObjectName("loginButton")
        self.login_button.setDefault(True)
        self.login_button.clicked.connect(self.submit)
        self.name_edit.returnPressed.connect(self.password_edit.setFocus)
        self.password_edit.returnPressed.connect(self.submit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.login_button, 0, Qt.AlignmentFlag.AlignRight)
        self.setMinimumWidth(420)
        self.setMaximumWidth(560)
        self.retranslate()

    def submit(self) -> None:
        name, password = self.name_edit.text().strip(), self.password_edit.text()
        if self.checking or not name or not password:
            return
        self.password_edit.setText("")  # the job holds it until checked; the field forgets it now
        self._set_checking(True)
        self._job = job = self._login.log_in(name, password)
        job.succeeded.connect(self._on_succeeded)
        job.failed.connect(self._on_failed)

    def reset(self, name: str) -> None:
        """Start afresh for ``name`` (empty: anyone): no error, no password, a check under way forgotten."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
        self._set_checking(False)
        self._error = None
        self.name_edit.setText(name)
        self.password_edit.setText("")
        (self.password_edit if name else self.name_edit).setFocus()
        self._draw_error()

    def _on_succeeded(self, _session: object) -> None:
        self._job = None
        self._set_checking(False)
        self._error = None
        self._draw_error()

    def _on_failed(self, error: BaseException) -> None:
        self._job = None
        self._set_checking(False)
        self._error = error
        self.password_edit.setFocus()
        self._draw_error()

    def _set_checking(self, checking: bool) -> None:
        self.checking = checking
        for widget in (self.name_edit, self.password_edit, self.login_button):
            widget.setEnabled(not checking)

    def _draw_error(self) -> None:
        if self._error is None:
            self.error_label.hide()
            return
        message, remedy = error_texts(self._error)
        self.error_label.setText("\n".join(part for part in (message, remedy) if part))
        self.error_label.show()
        repolish(self.error_label)

    def retranslate(self) -> None:
        self.name_caption.setText(_("Operator:"))
        self.password_caption.setText(_("Password:"))
        self.login_button.setText(_("Log in"))
        self._draw_error()


class LoginPage(QWidget):
    """What the console shows before anyone logs in: the log-in form, and how to add the first operator when the
    ledger has none yet."""

    def __init__(self, login: OperatorLogin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loginPage")
        self._login = login
        self.operator_count: int | None = None  # unknown until counted
        self.title = QLabel()
        self.title.setObjectName("loginTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.form = LoginForm(login)
        self.hint = QLabel()
        self.hint.setObjectName("loginHint")
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint.hide()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.form, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.hint, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        self.retranslate()

    def refresh(self) -> Job | None:
        """Ask the ledger (as a job) whether it has an operator yet; the page says how to add one if not."""
        try:
            job = self._login.count_operators()
        except NaiadError as exc:  # the console is closing
            LOG.debug("operators not counted: %s", exc)
            return None
        job.succeeded.connect(self._on_counted)
        job.failed.connect(lambda error: LOG.debug("operators not counted: %s", error_texts(error)[0]))
        return job

    def _on_counted(self, count: object) -> None:
        self.operator_count = count if isinstance(count, int) else None
        self.retranslate()

    def prepare(self) -> None:
        self.form.reset("")

    def retranslate(self) -> None:
        self.title.setText(_("Log in to use the console: what you may do depends on your role."))
        if self.operator_count == 0:
            self.hint.setText(
                _(
                    "This station's ledger has no operator yet. Add the first one, an admin, in a terminal: "
                    "naiad operator add NAME --role admin; that admin then adds the others: "
                    "naiad --operator NAME operator add OTHER --role installer (see docs/operators.md)."
                )
            )
            self.hint.show()
        else:
            self.hint.hide()
        self.form.retranslate()
