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

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QMessageBox, QWidget

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Listener, StepFinished

from .composition import Wiring
from .inject_dialog import PKCS11, InjectDialog, InjectRequest, KeyStoreChoice, pkcs11_from_environment
from .operator_login import OperatorLogin
from .unit_card import NO_VALUE, Bench, error_texts
from .unit_picker import UnitChoice
from .workers import Job, StationProvider, Workers

if TYPE_CHECKING:
    from keys.store import KeyStore
    from provisioning.operators import OperatorSession
    from provisioning.station import Station

LOG = logging.getLogger(__name__)

ROLE = "operator"
"""The role that injects keys (``provisioning.injection.ROLE``)."""
WAITING = N_("Waiting to inject keys…")
INJECTED = N_("Initial Key ID {ikid} · KCV {kcv}")


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


class NoSoftwareKeyStore(NaiadError):
    message = N_("There is no software key store on this station yet ({path})")
    remedy = N_("Load a BDK into it first with 'naiad keys ceremony load-bdk', then inject keys.")


class Pkcs11NotConfigured(NaiadError):
    message = N_("No PKCS#11 token is configured")
    remedy = N_("Set NAIAD_PKCS11_MODULE and NAIAD_PKCS11_TOKEN, restart the console and run 'naiad doctor'.")


class InjectResultMissing(NaiadError):
    message = N_("Unit {serial} ended the injection without a result")
    remedy = N_("Inject the unit again: an Initial Key ID that was not recorded is never reused.")


@dataclass(frozen=True)
class EngineKeys:
    """The real :class:`KeyEngine`: the ledger's BDKs, the key stores, :func:`provisioning.injection.inject_units`."""

    wiring: Wiring

    def bdk_labels(self, station: Station) -> list[str]:
        return [record.label for record in station.ledger.bdks()]

    def open_store(self, choice: KeyStoreChoice) -> KeyStore:
        if choice.kind == PKCS11:
            if choice.pkcs11 is None:
                raise Pkcs11NotConfigured()
            from keys.store_pkcs11 import Pkcs11KeyStore

            return Pkcs11KeyStore(choice.pkcs11, choice.secret)
        from keys.store_software import SoftwareKeyStore, default_path

        if not default_path().exists():  # opening would make an empty store under a passphrase nobody confirmed
            raise NoSoftwareKeyStore(path=str(default_path()))
        return SoftwareKeyStore(choice.secret)

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
class InjectRun:
    """One press of "Inject keys": one BDK for some units, as one job."""

    number: int
    bdk_label: str
    serials: tuple[str, ...]
    results: dict[str, Any] = field(default_factory=dict)
    reconciliation: dict[str, Any] | None = None
    error: BaseException | None = None
    """Set when the run itself was refused (key store, BDK, role): no unit has a result then."""
    shown: set[str] = field(default_factory=set)


class KeyInjection(QObject):
    """The bench's "Inject keys" action, its dialog and its runs (GUI thread only)."""

    summarised = pyqtSignal(str)
    run_finished = pyqtSignal(object)

    def __init__(
        self,
        bench: Bench,
        workers: Workers,
        stations: StationProvider,
        operator: OperatorLogin,
        units: Callable[[], list[UnitChoice]],
        engine: KeyEngine,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._bench = bench
        self._workers = workers
        self._stations = stations
        self._operator = operator
        self._units = units
        self._engine = engine
        self._window = parent
        self._numbers = itertools.count(1)
        self._runs: set[InjectRun] = set()
        self.dialog: InjectDialog | None = None
        self.action = QAction(self)
        self.action.setObjectName("injectKeysAction")
        self.action.triggered.connect(lambda _checked=False: self.open_dialog())
        operator.changed.connect(self._sync)
        self._sync()
        self.retranslate()

    def running(self) -> bool:
        return bool(self._runs)

    def _sync(self) -> None:
        """Only an operator of role ``operator`` sees the action; logging out closes its dialog."""
        allowed = self._operator.has_role(ROLE)
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
            engine, stations = self._engine, self._stations
            dialog = InjectDialog(
                self._units(),
                self._window,
                workers=self._workers,
                load_bdks=lambda: engine.bdk_labels(stations.get()),
                pkcs11=pkcs11_from_environment(),
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

    # -- a run ------------------------------------------------------------------------------------------

    def start(self, request: InjectRequest) -> InjectRun | None:
        """Inject ``request`` off the GUI thread; None (the reason logged and shown) if refused."""
        session = self._operator.session
        if session is None or session.role != ROLE:
            return None
        run = InjectRun(next(self._numbers), request.bdk_label, request.serials)
        engine, stations, held = self._engine, self._stations, [request.store]

        def work(listener: Listener) -> Any:
            station = stations.get()
            with engine.open_store(held.pop()) as store:  # the secret is dropped once the store is open
                return engine.inject(station, store, session, run.bdk_label, run.serials, listener)

        job = Job(work, run.serials, "inject")
        self._bench.follow(job)
        job.step_finished.connect(lambda event: self._on_unit_finished(run, event))
        job.succeeded.connect(lambda outcome: self._on_run_ended(run, outcome, None))
        job.failed.connect(lambda error: self._on_run_ended(run, None, error))
        try:
            self._workers.start(job)
        except NaiadError as exc:
            message, remedy = error_texts(exc)
            LOG.error("%s", message + (f" — {remedy}" if remedy else ""))
            self.summarised.emit(message)
            return None
        self._runs.add(run)
        for serial in run.serials:
            card = self._bench.card(serial)
            if card is not None:
                card.begin_job()
                card.show_step(WAITING)
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

    def _on_unit_finished(self, run: InjectRun, event: StepFinished) -> None:
        if event.unit in run.serials:
            run.results[event.unit] = event.result
            self._show_outcome(run, event.unit)

    def _on_run_ended(self, run: InjectRun, outcome: Any, error: BaseException | None) -> None:
        for result in getattr(outcome, "results", None) or []:
            run.results.setdefault(str(getattr(result, "serial", "")), result)
        reconciliation = getattr(outcome, "reconciliation", None)
        if reconciliation is not None:
            run.reconciliation = reconciliation.as_dict()
        run.error = error
        for serial in run.serials:
            if serial not in run.shown:
                self._show_outcome(run, serial)
        self._runs.discard(run)
        self._summarise(run)
        self.run_finished.emit(run)

    def _error_of(self, run: InjectRun, serial: str) -> BaseException:
        result = run.results.get(serial)
        return getattr(result, "error", None) or run.error or InjectResultMissing(serial=serial)

    def _show_outcome(self, run: InjectRun, serial: str) -> None:
        run.shown.add(serial)
        card = self._bench.card(serial)
        if card is None:
            return
        keyed = _keyed(run.results.get(serial))
        if keyed is not None:
            card.show_result(INJECTED, ikid=keyed[0], kcv=keyed[1])
        else:
            card.show_error(self._error_of(run, serial), sticky=True)
        card.end_job()

    def _summarise(self, run: InjectRun) -> None:
        if run.error is not None:  # the key store, the BDK or the role refused the run: no unit was touched
            message, remedy = error_texts(run.error)
            text = _("Key injection did not start: {message}", message=message)
            LOG.error("%s", text + (f" — {remedy}" if remedy else ""))
            self.summarised.emit(text)
            return
        keyed = {serial: _keyed(run.results.get(serial)) for serial in run.serials}
        ok = [serial for serial, key in keyed.items() if key is not None]
        text = _(
            "Injected keys of BDK {label}: {ok} of {total} units keyed, {failed} failed",
            label=run.bdk_label,
            ok=len(ok),
            total=len(run.serials),
            failed=len(run.serials) - len(ok),
        )
        LOG.info("%s", text)
        for serial, key in keyed.items():
            if key is not None:
                LOG.info("%s", _("{serial}: Initial Key ID {ikid}, KCV {kcv}", serial=serial, ikid=key[0], kcv=key[1]))
            else:
                message, remedy = error_texts(self._error_of(run, serial))
                LOG.error(
                    "%s", _("{serial}: {message}", serial=serial, message=message) + (f" — {remedy}" if remedy else "")
                )
        if run.reconciliation is not None:
            found = [
                f"{key}: {', '.join(map(str, value))}"
                for key, value in run.reconciliation.items()
                if isinstance(value, list) and value
            ]
            LOG.info(
                "%s",
                _("Reconciled with the authorised inventory: {found}", found="; ".join(found) or NO_VALUE),
            )
        self.summarised.emit(text)

    def may_close(self, parent: QWidget) -> bool:
        """Whether the console may close now: no run, or the operator says to close anyway."""
        if not self._runs:
            return True
        serials = sorted({serial for run in self._runs for serial in run.serials})
        answer = QMessageBox.question(
            parent,
            _("Key injection is running"),
            _(
                "Keys are still being injected into: {serials}. A unit cut off before it commits keeps its old "
                "keys; inject it again. Close anyway?",
                serials=", ".join(serials),
            ),
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Close

    def close_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.close()

    def retranslate(self) -> None:
        self.action.setText(_("Inject keys…"))
        self.action.setToolTip(_("Give units their own AES DUKPT Initial Key from a BDK (operator role)"))
        if self.dialog is not None:
            self.dialog.retranslate()


def _keyed(result: object) -> tuple[str, str] | None:
    """A unit's Initial Key ID and shown KCV when it was keyed, else None."""
    from keys.kcv import shown

    ikid, kcv = getattr(result, "initial_key_id", None), getattr(result, "kcv", None)
    if not getattr(result, "ok", False) or not isinstance(ikid, bytes) or not isinstance(kcv, bytes):
        return None
    return ikid.hex().upper(), shown(kcv)
