"""``naiad console``: create the Qt application and the console window, and run the event loop.

The console opens on its log-in page (:class:`~console.operator_login.LoginPage`); the language saved in its settings
wins over the system's (Chinese on a Chinese system: :func:`apply_language`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from PyQt6.QtCore import QLocale, QMessageLogContext, QTimer, QtMsgType, qInstallMessageHandler
from PyQt6.QtWidgets import QApplication

import i18n

from .composition import Wiring
from .console_settings import ConsoleSettings
from .main_window import MainWindow

LOG = logging.getLogger(__name__)
QT_LOG = logging.getLogger("console.qt")
LANGUAGE_VARIABLES = ("NAIAD_LANG", "LC_ALL", "LANG")
"""What i18n reads for the language before Python's locale (the same order)."""


def run_console(sim_dir: str | None = None, argv: list[str] | None = None) -> int:
    """Open the console on ``sim_dir`` (or the real USB bus), at its log-in page, and run until it is closed.

    Raises SimulatorNotFound, before any window opens, when ``sim_dir`` is not a directory.
    """
    wiring = Wiring.resolve(sim_dir)
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Naiad")
    app.setOrganizationName("Naiad")
    show_info_records()

    settings = ConsoleSettings.load()
    apply_language(settings)
    window = MainWindow(wiring, settings=settings)
    with _qt_messages_to_logging(), _close_on_interrupt(window):
        window.start()
        window.show()
        code = app.exec()
    window.shutdown()
    window.deleteLater()
    return int(code)


def apply_language(settings: ConsoleSettings, system_languages: Sequence[str] | None = None) -> None:
    """The language saved in the settings, if any, wins over the system's.  The system's is ``NAIAD_LANG``,
    ``LC_ALL`` or ``LANG`` when one is set (i18n reads them), else the display language Qt reads from the system
    (``system_languages``, else ``QLocale.system().uiLanguages()``): Windows and a Finder-started macOS app set no
    LANG, and their regional format, which Python's locale gives, need not be their display language."""
    if settings.language is not None:
        i18n.set_language(settings.language)
        return
    if any(os.environ.get(name) for name in LANGUAGE_VARIABLES):
        return
    languages = list(system_languages if system_languages is not None else QLocale.system().uiLanguages())
    if languages:
        i18n.set_language(languages[0])  # zh-CN, zh-Hans-CN ... -> zh_CN; any other -> English


def show_info_records() -> None:
    """Let INFO records through the root logger (its default is WARNING) so the log pane shows them."""
    root = logging.getLogger()
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)


@contextmanager
def _qt_messages_to_logging() -> Iterator[None]:
    """Route Qt's own warnings into the log (and so into the log pane) while the console runs."""
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind: QtMsgType, _context: QMessageLogContext, text: str | None) -> None:
        QT_LOG.log(levels.get(kind, logging.WARNING), "%s", text)

    previous = qInstallMessageHandler(handler)
    try:
        yield
    finally:
        qInstallMessageHandler(previous)


@contextmanager
def _close_on_interrupt(window: MainWindow) -> Iterator[None]:
    """Ctrl+C in the terminal closes the window cleanly instead of being swallowed by Qt's loop."""
    if sys.platform == "win32" or not _on_main_thread():
        yield
        return

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        window.close()

    previous = signal.signal(signal.SIGINT, on_sigint)
    # Python runs signal handlers only between bytecodes: wake the interpreter now and then.
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(250)
    try:
        yield
    finally:
        ticker.stop()
        signal.signal(signal.SIGINT, previous)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
