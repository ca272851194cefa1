"""The idle lock: a console left without a key press or a mouse event for a while locks itself.

:class:`IdleLock` watches the whole application's input through an event filter and restarts one single-shot
timer on it; when the timer runs out it emits ``idle`` and the shell covers the views with a :class:`LockPage`.
The page names who is logged in and asks for their password again (checked as a job, like any login); another
operator may log in instead, which logs the first out.  Work running on units goes on while the console is locked;
:class:`LockedWindows` keeps the console's other windows hidden meanwhile, those a job opens too.
"""

from __future__ import annotations

import logging

from PyQt6 import sip
from PyQt6.QtCore import QElapsedTimer, QEvent, QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QApplication, QLabel, QPushButton, QVBoxLayout, QWidget

from i18n import _

from .operator_login import LoginForm, OperatorLogin, role_text

LOG = logging.getLogger(__name__)

INPUT_EVENTS = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.Wheel,
        QEvent.Type.TouchBegin,
        QEvent.Type.MouseMove,
    }
)
MOVE_RESTART_MS = 250
"""A moving mouse restarts the timer at most this often (a move sends hundreds of events a second)."""


class IdleLock(QObject):
    """Emits ``idle`` once after ``seconds`` without input while armed (GUI thread only)."""

    idle = pyqtSignal()

    def __init__(self, seconds: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._expired)
        self._since_restart = QElapsedTimer()
        self._installed = False
        self.set_interval(seconds)

    def set_interval(self, seconds: float) -> None:
        """Lock after ``seconds`` without input from now on (restarts the count when armed)."""
        self._timer.setInterval(max(1, round(seconds * 1000)))
        if self._timer.isActive():
            self._restart()

    def interval_ms(self) -> int:
        return self._timer.interval()

    def armed(self) -> bool:
        return self._timer.isActive()

    def arm(self) -> None:
        """Start counting (someone logged in or unlocked)."""
        app = QApplication.instance()
        if app is not None and not self._installed:
            app.installEventFilter(self)
            self._installed = True
        self._restart()

    def disarm(self) -> None:
        """Stop counting (nobody logged in, or already locked) and stop watching input."""
        self._timer.stop()
        app = QApplication.instance()
        if app is not None and self._installed:
            app.removeEventFilter(self)
            self._installed = False

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        kind = None if event is None else event.type()
        if kind in INPUT_EVENTS and (kind != QEvent.Type.MouseMove or self._since_restart.elapsed() >= MOVE_RESTART_MS):
            self._restart()
        return False  # only watching: every event goes on to its widget

    def _restart(self) -> None:
        self._since_restart.start()
        self._timer.start()

    def _expired(self) -> None:
        self.disarm()
        self.idle.emit()


class LockedWindows(QObject):
    """The windows of ``owner`` (its dialogs and panels) hidden while the console is locked (GUI thread only).

    :meth:`hide` hides those open and, until :meth:`restore` or :meth:`close`, any that opens meanwhile (a job
    ending behind the lock); :meth:`restore` shows them again, :meth:`close` closes them.  A window deleted while
    hidden (a question the hiding ended, a dialog replaced) is skipped."""

    def __init__(self, owner: QWidget) -> None:
        super().__init__(owner)
        self._owner = owner
        self._windows: list[QWidget] = []
        self._watching = False

    def hide(self) -> None:
        self._windows = [w for w in QApplication.topLevelWidgets() if w.isVisible() and self._owns(w)]
        for window in self._windows:
            window.hide()
        app = QApplication.instance()
        if app is not None and not self._watching:
            app.installEventFilter(self)
            self._watching = True

    def restore(self) -> None:
        for window in self._take():
            window.show()

    def close(self) -> None:
        for window in self._take():
            window.close()

    def hidden(self) -> list[QWidget]:
        return [w for w in self._windows if not sip.isdeleted(w)]

    def _take(self) -> list[QWidget]:
        app = QApplication.instance()
        if app is not None and self._watching:
            app.removeEventFilter(self)
            self._watching = False
        windows, self._windows = self.hidden(), []
        return windows

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if (
            event is not None
            and event.type() == QEvent.Type.Show
            and isinstance(watched, QWidget)
            and watched.isWindow()
            and self._owns(watched)
        ):
            if watched not in self._windows:
                self._windows.append(watched)
            QTimer.singleShot(0, lambda window=watched: self._hide_later(window))  # not inside its own show
        return False

    def _hide_later(self, window: QWidget) -> None:
        if self._watching and not sip.isdeleted(window):
            window.hide()

    def _owns(self, widget: QWidget) -> bool:
        parent = widget.parentWidget()
        while parent is not None:
            if parent is self._owner:
                return True
            parent = parent.parentWidget()
        return False


class LockPage(QWidget):
    """What covers the views while locked: who is logged in, their password to unlock, or another operator."""

    def __init__(self, operator: OperatorLogin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lockPage")
        self._operator = operator
        self.title = QLabel()
        self.title.setObjectName("lockTitle")
        self.title.setWordWrap(True)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.form = LoginForm(operator)
        self.other_button = QPushButton()
        self.other_button.setObjectName("lockOtherOperator")
        self.other_button.clicked.connect(self.other_operator)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(self.form, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.other_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        self.retranslate()

    def prepare(self) -> None:
        """Ready the page for the operator logged in now: their name filled in, the password to type."""
        session = self._operator.session
        self.form.reset(session.operator if session is not None else "")
        self.retranslate()

    def other_operator(self) -> None:
        """Let another operator log in here (the first is logged out once they have)."""
        self.form.reset("")

    def retranslate(self) -> None:
        session = self._operator.session
        if session is None:
            self.title.setText(_("The console is locked."))
        else:
            self.title.setText(
                _(
                    "The console is locked. {operator} ({role}) is logged in: type the password to unlock. "
                    "Work on the units goes on meanwhile.",
                    operator=session.operator,
                    role=role_text(session.role),
                )
            )
        self.other_button.setText(_("Log in as another operator"))
        self.form.retranslate()
