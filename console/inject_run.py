"""Injecting keys from the bench: the "Inject keys" action, shown only to a logged-in operator of role ``operator``.

A run is one job on the console's workers: it opens the key store there (never on the GUI thread), calls
:func:`provisioning.injection.inject_units` with the logged-in session, and its events drive the cards as any
step's do.  Each card then shows the unit's Initial Key ID and KCV, or the error and its remedy; the log pane
gets the run's summary and its reconciliation with the authorised inventory.  The key store's passphrase or
PIN reaches only the store's constructor: it is in no event, log line or error.

The key machinery is reached through :class:`KeyEngine` (tests pass a scripted one); :class:`EngineKeys`, the
real one, imports it on the worker at first use, so the console starts without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QMessageBox, QWidget

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Listener

from .composition import Wiring
from .console_settings import ConsoleSettings
from .inject_dialog import PKCS11, InjectDialog, InjectRequest, KeyStoreChoice
from .keystore_option import SoftwareKeyStoreMissing
from .operator_login import OperatorLogin, role_text
from .recipe_job import pkcs11_config
from .unit_card import Bench
from .unit_picker import UnitChoice
from .unit_runs import UnitRun, UnitRuns
from .workers import StationProvider, Workers

if TYPE_CHECKING:
    from keys.store import KeyStore
    from provisioning.ledger import Reconciliation
    from provisioning.operators import OperatorSession
    from provisioning.station import Station

LOG = logging.getLogger(__name__)

ROLE = "operator"
"""The role that injects keys (``provisioning.injection.ROLE``)."""
WAITING = N_("Waiting to inject keys…")
NOT_STARTED = N_("Key injection did not start: {message}")
INJECTED = N_("Initial Key ID {ikid}\nKCV {kcv}")


class KeyEngine(Protocol):
    """The key machinery as the bench calls it, always on a worker thread."""

    def bdk_labels(self, station: Station) -> list[str]: ...

    def open_store(self, choice: KeyStoreChoice) -> KeyStore: ...

    def inject(
        self,
        station: Station,
        store: KeyStore,
        session: OperatorSession,
        bdk_label: str,
        serials: Sequence[str],
        listener: Listener,
    ) -> Any: ...


class Pkcs11NotConfigured(NaiadError):
    message = N_("No PKCS#11 token is configured")
    remedy = N_("Set NAIAD_PKCS11_MODULE and NAIAD_PKCS11_TOKEN, restart the console and run 'naiad doctor'.")


class OperatorRoleNeeded(NaiadError):
    message = N_("Key injection needs a logged-in operator with the {role} role")
    remedy = N_("Log in as an operator with the {role} role.")


class InjectResultMissing(NaiadError):
    message = N_("Unit {serial} ended the injection without a result")
    remedy = N_("Inject the unit again: an Initial Key ID that was not recorded is never reused.")


def open_chosen_store(choice: KeyStoreChoice) -> KeyStore:
    """The key store the operator chose, opened with the secret typed (on a worker: scrypt or a token login).

    A software store that does not exist yet is refused, never made under a passphrase nobody confirmed."""
    if choice.kind == PKCS11:
        if choice.pkcs11 is None:
            raise Pkcs11NotConfigured()
        from keys.store_pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(choice.pkcs11, choice.secret)
    from keys.store_software import SoftwareKeyStore, default_path

    if not default_path().exists():
        raise SoftwareKeyStoreMissing(path=str(default_path()))
    return SoftwareKeyStore(choice.secret)


@dataclass(frozen=True)
class EngineKeys:
    """The real :class:`KeyEngine`: the ledger's BDKs, the key stores, :func:`provisioning.injection.inject_units`."""

    wiring: Wiring

    def bdk_labels(self, station: Station) -> list[str]:
        return [record.label for record in station.ledger.bdks()]

    def open_store(self, choice: KeyStoreChoice) -> KeyStore:
        return open_chosen_store(choice)

    def inject(
        self,
        station: Station,
        store: KeyStore,
        session: OperatorSession,
        bdk_label: str,
        serials: Sequence[str],
        listener: Listener,
    ) -> Any:
        from provisioning.injection import inject_units

        roots = self.wiring.manufacturer_roots()
        return inject_units(station, store, session, bdk_label, roots, serials, listener)


@dataclass(eq=False)
class InjectRun(UnitRun):
    """One press of "Inject keys": one BDK for some units, as one job."""

    bdk_label: str = ""
    reconciliation: Reconciliation | None = None


class KeyInjection(UnitRuns):
    """The bench's "Inject keys" action, its dialog and its runs (GUI thread only)."""

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        stations: StationProvider,
        operator: OperatorLogin,
        units: Callable[[], list[UnitChoice]],
        engine: KeyEngine,
        parent: QWidget | None = None,
        settings: Callable[[], ConsoleSettings] = ConsoleSettings,
    ) -> None:
        """``settings``: the console's settings now (the key store offered first and the PKCS#11 token; each
        falls back to the environment)."""
        super().__init__(bench, workers, WAITING, InjectResultMissing, parent)
        self._settings = settings
        self._stations = stations
        self._operator = operator
        self._units = units
        self._engine = engine
        self._window = parent
        self.dialog: InjectDialog | None = None
        self.action = QAction(self)
        self.action.setObjectName("injectKeysAction")
        self.action.triggered.connect(lambda _checked=False: self.open_dialog())
        operator.changed.connect(self._sync)
        self._sync()
        self.retranslate()

    def allowed(self) -> bool:
        """Whether the operator logged in may inject keys (role ``operator``)."""
        return self._operator.has_role(ROLE)

    def _sync(self) -> None:
        """Only an operator of role ``operator`` sees the action; logging out closes its dialog."""
        allowed = self.allowed()
        self.action.setVisible(allowed)
        if not allowed and self.dialog is not None:
            self.dialog.close()

    def set_units(self, units: list[UnitChoice]) -> None:
        self.action.setEnabled(bool(units))
        if self.dialog is not None:
            self.dialog.set_units(units)

    def open_dialog(self) -> InjectDialog | None:
        """Show the dialog (one at a time); None unless an operator of role ``operator`` is logged in."""
        if not self._operator.has_role(ROLE):
            return None
        dialog = self.dialog
        if dialog is None:
            engine, stations, settings = self._engine, self._stations, self._settings()
            dialog = InjectDialog(
                self._units(),
                self._window,
                workers=self._workers,
                load_bdks=lambda: engine.bdk_labels(stations.get()),
                pkcs11=pkcs11_config(settings),
                preferred=settings.effective_keystore(),
            )
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.start_requested.connect(self.start)
            dialog.finished.connect(lambda _result, dialog=dialog: self._forget_dialog(dialog))
            self.dialog = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    def _forget_dialog(self, dialog: InjectDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None

    def close_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.close()

    # -- a run ------------------------------------------------------------------------------------------

    def start(self, request: InjectRequest) -> InjectRun | None:
        """Inject ``request`` off the GUI thread; None (the reason logged and shown) if refused."""
        session = self._operator.session
        if session is None or session.role != ROLE:  # logged out, or another operator, since the dialog opened
            self.log_refused(OperatorRoleNeeded(role=role_text(ROLE)), NOT_STARTED)
            return None
        run = InjectRun(self.next_number(), request.serials, bdk_label=request.bdk_label)
        engine, stations, held = self._engine, self._stations, [request.store]

        def work(listener: Listener) -> Any:
            station = stations.get()
            with engine.open_store(held.pop()) as store:  # the secret is dropped once the store is open
                return engine.inject(station, store, session, run.bdk_label, run.serials, listener)

        try:
            self.launch(run, work, "inject")
        except NaiadError as exc:
            self.log_refused(exc, NOT_STARTED)
            return None
        LOG.info(
            "%s",
            _(
                "Injecting keys of BDK {label} into {count} units: {serials}",
                label=run.bdk_label,
                count=len(run.serials),
                serials=", ".join(run.serials),
            ),
        )
        return run

    def describe(self, result: Any) -> tuple[str, dict[str, object]] | None:
        """A keyed unit's Initial Key ID and shown KCV."""
        from keys.kcv import shown

        ikid, kcv = getattr(result, "initial_key_id", None), getattr(result, "kcv", None)
        if not getattr(result, "ok", False) or not isinstance(ikid, bytes) or not isinstance(kcv, bytes):
            return None
        return INJECTED, {"ikid": ikid.hex().upper(), "kcv": shown(kcv)}

    def collect(self, run: UnitRun, outcome: Any) -> None:
        """An :class:`provisioning.injection.InjectionRun`: its results and its reconciliation."""
        super().collect(run, getattr(outcome, "results", None))
        if isinstance(run, InjectRun):
            run.reconciliation = getattr(outcome, "reconciliation", None)

    def summarise(self, run: UnitRun) -> None:
        assert isinstance(run, InjectRun)
        if run.error is not None:  # the key store, the BDK or the role refused the run: no unit was touched
            self.log_refused(run.error, NOT_STARTED)
            return
        keyed = {serial: self.describe(run.results.get(serial)) for serial in run.serials}
        ok = [serial for serial, described in keyed.items() if described is not None]
        text = _(
            "Injected keys of BDK {label}: {ok} of {total} units keyed, {failed} failed",
            label=run.bdk_label,
            ok=len(ok),
            total=len(run.serials),
            failed=len(run.serials) - len(ok),
        )
        LOG.info("%s", text)
        for serial, described in keyed.items():
            if described is not None:
                LOG.info("%s", _("{serial}: Initial Key ID {ikid}, KCV {kcv}", serial=serial, **described[1]))
            else:
                self.log_failure(run, serial)
        found = run.reconciliation
        if found is not None:
            self.log_reconciliation(found)
        self.summarised.emit(text)

    @staticmethod
    def log_reconciliation(found: Reconciliation) -> None:
        """One line per unit reconcile named, then the counts and the verdict (a warning unless all adds up)."""
        level = logging.INFO if found.ok else logging.WARNING
        for finding, serial, ids in found.findings():
            if ids:
                line = _(
                    "Reconciliation: {serial} {finding} (Initial Key IDs {ids})",
                    serial=serial,
                    finding=finding.text(),
                    ids=", ".join(ids),
                )
            else:
                line = _("Reconciliation: {serial} {finding}", serial=serial, finding=finding.text())
            LOG.log(level, "%s", line)
        verdict = _(
            "Reconciled with the authorised inventory: {authorised} authorised units, {injected} keyed. {verdict}",
            authorised=found.authorised,
            injected=found.injected,
            verdict=found.verdict(),
        )
        LOG.log(level, "%s", verdict)

    def may_close(self, parent: QWidget) -> bool:
        """Whether the console may close now: no run, or the operator says to close anyway."""
        if not self.running():
            return True
        answer = QMessageBox.question(
            parent,
            _("Key injection is running"),
            _(
                "Keys are still being injected into: {serials}. A unit cut off before it commits keeps its old "
                "keys; inject it again. Close anyway?",
                serials=", ".join(self.running_units()),
            ),
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Close

    def retranslate(self) -> None:
        self.action.setText(_("Inject keys…"))
        self.action.setToolTip(_("Give units their own AES DUKPT Initial Key from a BDK (operator role)"))
        if self.dialog is not None:
            self.dialog.retranslate()
