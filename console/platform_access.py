"""How the console's jobs reach the merchant platform, and the field that unlocks the station's platform key.

Every platform call is signed with the station's RSA key in the key store, so a form or panel that calls the
platform asks for the key store's passphrase (or PIN) in a :class:`SecretField`, unless the environment holds it
(``NAIAD_KEYSTORE_PASSPHRASE`` / ``NAIAD_PKCS11_PIN``, as for the ``naiad`` commands).  :meth:`PlatformAccess.call`
then opens the key store and the outbox (:func:`console.platform_option.open_outbox`) on the job's worker.  Which
key store and platform configuration are the console's settings' (:func:`follow_settings`; each falls back to the
environment when not set there).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from PyQt6.QtCore import QObject
from PyQt6.QtWidgets import QLabel, QLineEdit, QWidget

from i18n import _

from .console_settings import ConsoleSettings
from .inject_dialog import PKCS11, SOFTWARE, KeyStoreChoice
from .inject_run import open_chosen_store
from .keystore_option import PASSPHRASE_VARIABLE, PIN_VARIABLE
from .operator_login import OperatorLogin
from .unit_card import Bench
from .workers import StationProvider, Workers

if TYPE_CHECKING:
    from enrollment.config import PlatformConfig
    from provisioning.outbox import Outbox

T = TypeVar("T")

_settings: Callable[[], ConsoleSettings] = ConsoleSettings


def follow_settings(source: Callable[[], ConsoleSettings] | None) -> None:
    """Take the key store and the platform configuration from ``source()`` (the open console's settings); None:
    from the environment only, as before a console opened."""
    global _settings
    _settings = source if source is not None else ConsoleSettings


def current_settings() -> ConsoleSettings:
    return _settings()


def fit_height(label: QLabel) -> None:
    """Give a wrapped ``label`` the height its text needs at its width, and grow its window to show it: a layout
    does not ask a label its height for the width it gets, so a long message would be clipped."""
    height = label.heightForWidth(label.width())
    if height > 0 and height != label.minimumHeight():
        label.setMinimumHeight(height)
    window = label.window()
    if window is not None and window.isVisible():  # a wrapped label's minimum is for its narrowest width
        needed = max(window.minimumSizeHint().height(), window.heightForWidth(window.width()))
        if needed > window.height():
            window.resize(window.width(), needed)


@dataclass(frozen=True)
class PlatformAccess:
    """How a console job reaches the merchant platform: the station's outbox, the platform configuration
    (``config_path``, else the settings', else ``NAIAD_PLATFORM_CONFIG``) and the key store holding the station's
    RSA key (the settings', else ``NAIAD_KEYSTORE``: the software store by default)."""

    stations: StationProvider
    config_path: str | None = None

    @staticmethod
    def store_kind() -> str:
        return PKCS11 if current_settings().effective_keystore() == PKCS11 else SOFTWARE

    @classmethod
    def secret_in_environment(cls) -> bool:
        """Whether the key store's passphrase (or PIN) is set in the environment, so none need be typed."""
        return bool(os.environ.get(PIN_VARIABLE if cls.store_kind() == PKCS11 else PASSPHRASE_VARIABLE))

    def call(self, secret: str, use: Callable[[Outbox, PlatformConfig], T]) -> T:
        """``use(outbox, config)`` with the key store opened by ``secret`` (else the environment's); on a worker."""
        from enrollment.config import resolve

        from .platform_option import open_outbox
        from .recipe_job import pkcs11_config

        settings = current_settings()
        config_path = self.config_path or settings.effective_platform_config()
        config = resolve(config_path)

        kind = self.store_kind()
        secret = secret or os.environ.get(PIN_VARIABLE if kind == PKCS11 else PASSPHRASE_VARIABLE, "")
        pkcs11 = pkcs11_config(settings) if kind == PKCS11 else None
        with (
            open_chosen_store(KeyStoreChoice(kind, secret, pkcs11)) as store,
            open_outbox(self.stations.get(), config_path, store) as outbox,
        ):
            return use(outbox, config)


class SecretField(QLineEdit):
    """The key store's passphrase or PIN, hidden as typed; optional when the environment holds it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEchoMode(QLineEdit.EchoMode.Password)
        self.setObjectName("keyStoreSecret")

    def missing(self) -> bool:
        return not self.text() and not PlatformAccess.secret_in_environment()

    def caption(self) -> str:
        return _("Key store PIN:") if PlatformAccess.store_kind() == PKCS11 else _("Key store passphrase:")

    def retranslate(self) -> None:
        self.setPlaceholderText(_("Set in the environment") if PlatformAccess.secret_in_environment() else "")
        self.setToolTip(_("Unlocks the station's platform key, which signs every request to the platform"))

    def forget(self) -> None:
        self.setText("")  # also drops the field's undo history


class PlatformActions(QObject):
    """What a card action that calls the platform shares (GUI thread only): offered on the cards only while a role of
    ``roles`` is logged in, its windows closed when that ends.  A subclass names its ``action`` (of
    :data:`console.unit_card.PLATFORM_ACTIONS`), opens its window for a card (``open_for``) and lists the windows open.
    """

    action: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]
    open_for: Callable[[str], object]

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        access: PlatformAccess,
        operator: OperatorLogin,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._bench = bench
        self._workers = workers
        self._access = access
        self._operator = operator
        self._window = parent
        operator.changed.connect(self._sync)
        bench.platform_requested.connect(self._requested)

    def allowed(self) -> bool:
        session = self._operator.session
        return session is not None and session.role in self.roles

    def windows(self) -> list[QWidget]:
        """The windows open now (closed on logging out)."""
        return []

    def close_windows(self) -> None:
        for window in self.windows():
            window.close()

    def _requested(self, action: str, serial: str) -> None:
        if action == self.action:
            self.open_for(serial)

    def _sync(self) -> None:
        allowed = self.allowed()
        self._bench.allow_platform(self.action, allowed)
        if not allowed:
            self.close_windows()
