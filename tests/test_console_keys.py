"""The console's operator login and its "Inject keys" action: shown only to the operator role, the password
checked off the GUI thread, and an injection run (a scripted engine with the real event types) shown per unit
with its Initial Key ID and KCV, while the key store's passphrase appears nowhere."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import IdleDiscovery, device
from PyQt6.QtWidgets import QApplication, QLabel, QLineEdit

import i18n
from console.composition import Wiring
from console.inject_dialog import NOT_IN_RUN_MODE, PKCS11, SOFTWARE, InjectDialog, InjectRequest, KeyStoreChoice
from console.inject_run import (
    INJECTED,
    WAITING,
    EngineKeys,
    OperatorRoleNeeded,
    Pkcs11NotConfigured,
)
from console.keystore_option import SoftwareKeyStoreMissing
from console.main_window import MainWindow
from console.operator_login import LoginDialog
from console.workers import Job
from i18n import _
from keys.errors import KeyBlockAuthenticationFailed, KeyStoreLoginFailed
from keys.kcv import shown
from provisioning import operators as ops
from provisioning.ledger import Ledger, Reconciliation
from terminal.errors import NaiadError
from terminal.events import Listener, Reporter

WAIT_MS = 5000
NOWHERE = Wiring(Path("/nonexistent-sim"))
PASSWORDS = {
    "root": "root-Secret-8731",
    "olga": "olga-Secret-5521",
    "ivy": "ivy-Secret-2290",
    "cara": "cara-Secret-7710",
}
ROLES = {"root": "admin", "olga": "operator", "ivy": "installer", "cara": "custodian"}
PASSPHRASE = "plum-Passphrase-90417-zebra"
BDKS = ["demo-bdk", "spare-bdk"]


def on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -- a ledger and key machinery that note any call from the GUI thread ------------------------------------


class GuardedLedger:
    """The real ledger; every attribute fetched on the GUI thread is noted."""

    def __init__(self, inner: Ledger, gui_calls: list[str]) -> None:
        self._inner = inner
        self._gui_calls = gui_calls

    def __getattr__(self, name: str) -> Any:
        if on_gui_thread():
            self._gui_calls.append(f"ledger.{name}")
        return getattr(self._inner, name)


class FakeStation:
    def __init__(self, ledger: Ledger, gui_calls: list[str]) -> None:
        self._ledger = GuardedLedger(ledger, gui_calls)
        self._gui_calls = gui_calls

    @property
    def ledger(self) -> GuardedLedger:
        if on_gui_thread():
            self._gui_calls.append("station.ledger")
        return self._ledger

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class FakeResult:
    serial: str
    ok: bool
    initial_key_id: bytes | None = None
    kcv: bytes | None = None
    error: NaiadError | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "ok": self.ok}


@dataclass(frozen=True)
class FakeRun:
    results: list[FakeResult]
    reconciliation: Reconciliation


class FakeStore:
    def __init__(self, keys: ScriptedKeys) -> None:
        self.keys = keys

    def __enter__(self) -> FakeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.keys.note("store.close")
        self.keys.closed.append(True)


class ScriptedKeys:
    """``inject_units`` as the engine behaves: a thread per unit walking the phases through a Reporter."""

    def __init__(self, gui_calls: list[str], failures: dict[str, NaiadError] | None = None) -> None:
        self.gui_calls = gui_calls
        self.failures = failures or {}
        self.opened: list[str] = []
        self.closed: list[bool] = []
        self.runs: list[tuple[str, str, list[str]]] = []
        self.keys: dict[str, tuple[bytes, bytes]] = {}
        self.reconciliation: Reconciliation | None = None  # what the ledger finds; else the failed units not keyed

    def note(self, what: str) -> None:
        if on_gui_thread():
            self.gui_calls.append(what)

    def bdk_labels(self, station: Any) -> list[str]:
        self.note("bdk_labels")
        assert station.ledger.station == "bench-1"  # the real engine reads the ledger here
        return list(BDKS)

    def open_store(self, choice: KeyStoreChoice) -> FakeStore:
        self.note("open_store")
        self.opened.append(choice.kind)
        if choice.secret != PASSPHRASE:
            raise KeyStoreLoginFailed()
        return FakeStore(self)

    def inject(
        self,
        station: Any,
        store: Any,
        session: ops.OperatorSession,
        bdk_label: str,
        serials: Sequence[str],
        listener: Listener,
    ) -> FakeRun:
        self.note("inject")
        self.runs.append((session.operator, bdk_label, list(serials)))
        results: dict[str, FakeResult] = {}

        def one(index: int, serial: str) -> None:
            report = Reporter(listener, serial, "inject")
            for number, phase in enumerate(("attest", "identity", "certify", "session", "load", "verify", "commit")):
                report.phase(phase, f"phase {phase}")
                report.progress(number, 7, counts="items")
            report.message("attested by the simulated manufacturer")
            error = self.failures.get(serial)
            if error is not None:
                result = FakeResult(serial, False, error=error)
            else:
                ikid, kcv = (
                    bytes.fromhex(f"A1B2C3D4000000{index + 1:02X}"),
                    bytes([0x10 * (index + 1), 0xAB, 0xCD, 1, 2]),
                )
                self.keys[serial] = (ikid, kcv)
                result = FakeResult(serial, True, ikid, kcv)
            results[serial] = result
            report.finished(result)

        threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(serials)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        failed = tuple(s for s in serials if s in self.failures)
        found = self.reconciliation or Reconciliation(
            tuple(serials), len(serials), len(serials) - len(failed), (), failed, {}, {}
        )
        return FakeRun([results[s] for s in serials], found)


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1") as opened:
        ops.add_operator(opened, None, "root", "admin", PASSWORDS["root"])
        admin = ops.login(opened, "root", PASSWORDS["root"])
        for name in ("olga", "ivy", "cara"):
            ops.add_operator(opened, admin, name, ROLES[name], PASSWORDS[name])
        yield opened


@pytest.fixture
def gui_calls() -> list[str]:
    return []


@pytest.fixture
def keys(gui_calls: list[str]) -> ScriptedKeys:
    return ScriptedKeys(gui_calls, failures={"DF2A00002": KeyBlockAuthenticationFailed()})


@pytest.fixture
def window(
    qtbot: Any,
    ledger: Ledger,
    gui_calls: list[str],
    keys: ScriptedKeys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    caplog.set_level(logging.DEBUG)
    station = FakeStation(ledger, gui_calls)
    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, keys=keys)
    qtbot.addWidget(win)
    win.start()
    yield win
    qtbot.waitUntil(lambda: not win.key_injection.running(), timeout=WAIT_MS)
    win.close()
    assert gui_calls == []  # the GUI thread never touched the ledger or the key store


def log_in(qtbot: Any, window: MainWindow, name: str, password: str) -> LoginDialog:
    window.operator.login_action.trigger()
    dialog = window.operator.dialog
    assert dialog is not None
    dialog.name_edit.setText(name)
    dialog.password_edit.setText(password)
    dialog.login_button.click()
    qtbot.waitUntil(lambda: not dialog.checking, timeout=WAIT_MS)
    return dialog


def every_text(window: MainWindow) -> str:
    """Everything the window and its dialogs show or logged: labels, fields, tooltips, the log, the status bar."""
    parts = list(window.log_pane.lines())
    status = window.statusBar()
    if status is not None:
        parts.append(status.currentMessage())
    for widget in window.findChildren(QLabel):
        parts += [widget.text(), widget.toolTip()]
    for edit in window.findChildren(QLineEdit):
        parts.append(edit.text())
    return "\n".join(parts)


# -- logging in -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["olga", "ivy", "cara", "root"])
def test_inject_keys_is_shown_only_while_an_operator_of_role_operator_is_logged_in(
    qtbot: Any, window: MainWindow, name: str
) -> None:
    action = window.key_injection.action
    assert action in window.bench_menu.actions() and action in window.toolbar.actions()
    assert not action.isVisible() and window.operator.status_label.text() == _("Not logged in")
    assert window.key_injection.open_dialog() is None

    log_in(qtbot, window, name, PASSWORDS[name])
    session = window.operator.session
    assert session is not None and (session.operator, session.role) == (name, ROLES[name])
    assert window.operator.status_label.text() == _("Operator: {operator} ({role})", operator=name, role=ROLES[name])
    assert action.isVisible() is (ROLES[name] == "operator")
    assert window.operator.dialog is None  # closed on success
    assert any(f"Operator {name} logged in" in line for line in window.log_pane.lines())

    window.operator.logout_action.trigger()
    assert window.operator.session is None and not action.isVisible()
    assert window.operator.status_label.text() == _("Not logged in")
    assert window.operator.login_action.isEnabled() and not window.operator.logout_action.isEnabled()


def test_a_wrong_password_shows_the_error_and_its_remedy_and_logs_nobody_in(qtbot: Any, window: MainWindow) -> None:
    dialog = log_in(qtbot, window, "olga", "not-her-password")
    error = ops.BadCredentials()
    assert dialog.isVisible() and dialog.error_label.isVisible()
    assert dialog.error_label.text() == f"{error}\n{error.remedy_text}"
    assert dialog.password_edit.text() == ""  # typed again, not kept
    assert window.operator.session is None and not window.key_injection.action.isVisible()
    assert window.operator.status_label.text() == _("Not logged in")

    dialog.password_edit.setText(PASSWORDS["olga"])
    dialog.login_button.click()
    qtbot.waitUntil(lambda: window.operator.session is not None, timeout=WAIT_MS)
    assert window.key_injection.action.isVisible()


def spy_login_jobs(window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    """The jobs the login dialog starts, in order."""
    jobs: list[Job] = []
    original = window.operator.log_in

    def log_in(name: str, password: str) -> Job:
        jobs.append(original(name, password))
        return jobs[-1]

    monkeypatch.setattr(window.operator, "log_in", log_in)
    return jobs


def test_a_login_job_keeps_no_password_once_it_ends(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = spy_login_jobs(window, monkeypatch)
    dialog = log_in(qtbot, window, "olga", "not-her-password")
    assert dialog.password_edit.text() == ""
    left: list[str] = []
    dialog.finished.connect(lambda _result: left.append(dialog.password_edit.text()))
    dialog.password_edit.setText(PASSWORDS["olga"])
    dialog.login_button.click()
    qtbot.waitUntil(lambda: window.operator.session is not None, timeout=WAIT_MS)
    assert left == [""]  # the field, as the dialog closed
    for job in jobs:
        qtbot.waitUntil(job.returned.is_set, timeout=WAIT_MS)
    assert len(jobs) == 2 and all(job.work is None for job in jobs)  # nor the check's closure, nor the password


def test_cancel_while_the_password_is_checked_logs_nobody_in(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = spy_login_jobs(window, monkeypatch)
    release, login = threading.Event(), ops.login

    def slow_login(*args: Any) -> ops.OperatorSession:
        release.wait(WAIT_MS / 1000)
        return login(*args)

    monkeypatch.setattr(ops, "login", slow_login)
    window.operator.login_action.trigger()
    dialog = window.operator.dialog
    assert dialog is not None
    dialog.name_edit.setText("olga")
    dialog.password_edit.setText(PASSWORDS["olga"])
    dialog.login_button.click()
    assert dialog.checking and dialog.cancel_button.isEnabled()
    dialog.cancel_button.click()
    assert not dialog.isVisible() and dialog.password_edit.text() == ""
    release.set()
    qtbot.waitUntil(jobs[0].returned.is_set, timeout=WAIT_MS)
    QApplication.processEvents()  # the job's end, queued before it returned
    assert window.operator.session is None and not window.key_injection.action.isVisible()
    assert not any("logged in" in line for line in window.log_pane.lines())


def test_logging_out_closes_an_open_inject_dialog(qtbot: Any, window: MainWindow) -> None:
    assert not window.key_injection.action.isEnabled()  # no unit on the bench
    window._on_device_added(device("DF2A00001", 1))
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    window.key_injection.action.trigger()
    dialog = window.key_injection.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.secret_edit.setText(PASSPHRASE)
    window.operator.log_out()
    assert window.key_injection.dialog is None and not dialog.isVisible()
    assert dialog.secret_edit.text() == ""


# -- injecting ------------------------------------------------------------------------------------------------


def open_inject_dialog(qtbot: Any, window: MainWindow) -> InjectDialog:
    window.key_injection.action.trigger()
    dialog = window.key_injection.dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.bdks is not None, timeout=WAIT_MS)
    return dialog


def test_the_dialog_injects_the_ticked_units_and_each_card_shows_its_initial_key_id_and_kcv(
    qtbot: Any, window: MainWindow, keys: ScriptedKeys, caplog: pytest.LogCaptureFixture
) -> None:
    for dev in (device("DF2A00001", 1), device("DF2A00002", 2), device("DF2A00003", 3, mode="bootloader")):
        window._on_device_added(dev)
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    dialog = open_inject_dialog(qtbot, window)
    assert [dialog.bdk_combo.itemText(i) for i in range(dialog.bdk_combo.count())] == BDKS
    assert dialog.picker.selected_serials() == ["DF2A00001", "DF2A00002"]
    bootloader = dialog.picker.unit_tree.topLevelItem(2)
    assert bootloader is not None and bootloader.text(4) == _(NOT_IN_RUN_MODE)
    assert not dialog.start_button.isEnabled()  # no passphrase yet
    assert dialog.hint_label.text() == _("Enter the passphrase.")
    assert dialog.secret_edit.echoMode() is QLineEdit.EchoMode.Password

    dialog.bdk_combo.setCurrentIndex(1)
    dialog.secret_edit.setText(PASSPHRASE)
    assert dialog.start_button.isEnabled()
    dialog.start_button.click()
    assert dialog.secret_edit.text() == "" and window.key_injection.dialog is None
    card = window.bench.card("DF2A00001")
    assert card is not None and card.in_job
    qtbot.waitUntil(lambda: not window.key_injection.running(), timeout=WAIT_MS)

    assert keys.runs == [("olga", "spare-bdk", ["DF2A00001", "DF2A00002"])]
    assert keys.opened == ["software"] and keys.closed == [True]
    ikid, kcv = keys.keys["DF2A00001"]
    keyed, failed = window.bench.card("DF2A00001"), window.bench.card("DF2A00002")
    assert keyed is not None and failed is not None
    expected = _(INJECTED, ikid=ikid.hex().upper(), kcv=shown(kcv))
    assert keyed.step_label.text() == expected == "Initial Key ID A1B2C3D400000001\nKCV 10ABCD"
    error = KeyBlockAuthenticationFailed()
    assert failed.step_label.text() == str(error) and failed.step_label.toolTip() == error.remedy_text
    assert not keyed.in_job and not failed.in_job
    lines = "\n".join(window.log_pane.lines())
    assert "DF2A00001: Initial Key ID A1B2C3D400000001, KCV 10ABCD" in lines
    assert f"DF2A00002: {error} — {error.remedy_text}" in lines
    assert "spare-bdk: 1 of 2 units keyed, 1 failed" in lines and "refused" not in lines
    assert "Reconciliation: DF2A00002 not keyed yet" in lines and "DF2A00001 not keyed" not in lines
    assert "Reconciled with the authorised inventory: 2 authorised units, 1 keyed. Everything adds up." in lines
    assert "attested by the simulated manufacturer" in lines  # the run's messages reach the log

    assert PASSPHRASE not in every_text(window)
    assert all(PASSPHRASE not in record.getMessage() for record in caplog.records)


def test_a_wrong_passphrase_refuses_the_run_on_every_card_and_is_shown_nowhere(
    qtbot: Any, window: MainWindow, keys: ScriptedKeys, caplog: pytest.LogCaptureFixture
) -> None:
    window._on_device_added(device("DF2A00001", 1))
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    dialog = open_inject_dialog(qtbot, window)
    wrong = "wrong-" + PASSPHRASE
    dialog.secret_edit.setText(wrong)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not window.key_injection.running(), timeout=WAIT_MS)

    card = window.bench.card("DF2A00001")
    error = KeyStoreLoginFailed()
    assert card is not None and card.step_label.text() == str(error)
    assert keys.runs == [] and keys.opened == ["software"]
    assert any("Key injection did not start" in line for line in window.log_pane.lines())
    assert wrong not in every_text(window)
    assert all(wrong not in record.getMessage() for record in caplog.records)


def test_the_cards_show_the_runs_phases_and_waiting_units(qtbot: Any, window: MainWindow, keys: ScriptedKeys) -> None:
    window._on_device_added(device("DF2A00001", 1))
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    seen: list[str] = []
    card = window.bench.card("DF2A00001")
    assert card is not None
    original = card.show_phase
    card.show_phase = lambda label: (seen.append(label), original(label))  # type: ignore[method-assign]
    dialog = open_inject_dialog(qtbot, window)
    dialog.secret_edit.setText(PASSPHRASE)
    dialog.start_button.click()
    assert card.step_label.text() == _(WAITING)
    qtbot.waitUntil(lambda: not window.key_injection.running(), timeout=WAIT_MS)
    assert seen[0] == "phase attest" and seen[-1] == "phase commit"


# -- the real engine's key stores -----------------------------------------------------------------------------


def test_the_engine_opens_only_an_existing_software_store_with_its_passphrase() -> None:
    from keys import store_software

    engine = EngineKeys(NOWHERE)
    with pytest.raises(
        SoftwareKeyStoreMissing
    ):  # no store yet: a typo must not create one under an unconfirmed passphrase
        engine.open_store(KeyStoreChoice(SOFTWARE, PASSPHRASE))
    assert not store_software.default_path().exists()
    store_software.SoftwareKeyStore(PASSPHRASE, scrypt_n=2**8).close()
    with engine.open_store(KeyStoreChoice(SOFTWARE, PASSPHRASE)) as store:
        assert store.labels() == []
    with pytest.raises(KeyStoreLoginFailed) as refused:
        engine.open_store(KeyStoreChoice(SOFTWARE, "wrong-" + PASSPHRASE))
    assert PASSPHRASE not in str(refused.value) and PASSPHRASE not in repr(KeyStoreChoice(SOFTWARE, PASSPHRASE))
    with pytest.raises(Pkcs11NotConfigured):
        engine.open_store(KeyStoreChoice(PKCS11, "1234"))


def test_the_run_logs_each_finding_of_the_reconciliation_and_the_verdict(
    qtbot: Any, window: MainWindow, keys: ScriptedKeys
) -> None:
    keys.reconciliation = Reconciliation(
        serials=("DF2A00001",),
        authorised=1,
        injected=3,
        refused=(),
        not_injected=(),
        injected_more_than_once={"DF2A00001": ("A1B2C3D400000001", "A1B2C3D400000009")},
        not_in_inventory={"DF2A00077": ("A1B2C3D400000005",)},
    )
    window._on_device_added(device("DF2A00001", 1))
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    dialog = open_inject_dialog(qtbot, window)
    dialog.secret_edit.setText(PASSPHRASE)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not window.key_injection.running(), timeout=WAIT_MS)

    lines = window.log_pane.lines()
    found = [line for line in lines if "Reconcil" in line]
    assert found[0].endswith(
        "Reconciliation: DF2A00001 keyed more than once (Initial Key IDs A1B2C3D400000001, A1B2C3D400000009)"
    )
    assert found[1].endswith(
        "Reconciliation: DF2A00077 keyed, but not in the inventory (Initial Key IDs A1B2C3D400000005)"
    )
    assert found[2].endswith(
        "Reconciled with the authorised inventory: 1 authorised units, 3 keyed. "
        "Report the findings to the security officer."
    )
    assert len(found) == 3 and not any("serials" in line for line in lines)


def test_switching_the_key_store_forgets_the_secret_typed_for_the_other(
    qtbot: Any, window: MainWindow, keys: ScriptedKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAIAD_PKCS11_MODULE", "/nonexistent/libsofthsm2.so")
    monkeypatch.setenv("NAIAD_PKCS11_TOKEN", "naiad")
    window._on_device_added(device("DF2A00001", 1))
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    dialog = open_inject_dialog(qtbot, window)
    dialog.secret_edit.setText(PASSPHRASE)
    dialog.pkcs11_radio.setChecked(True)  # the passphrase is no PIN: sent, it would count toward the lockout
    assert dialog.secret_edit.text() == "" and not dialog.start_button.isEnabled()
    assert dialog.hint_label.text() == _("Enter the key store's PIN.")
    dialog.secret_edit.setText("1234")
    dialog.software_radio.setChecked(True)
    assert dialog.secret_edit.text() == "" and keys.opened == []


def test_a_run_refused_for_the_role_is_logged(qtbot: Any, window: MainWindow, keys: ScriptedKeys) -> None:
    window._on_device_added(device("DF2A00001", 1))
    request = InjectRequest("demo-bdk", ("DF2A00001",), KeyStoreChoice(SOFTWARE, PASSPHRASE))
    for name in (None, "ivy"):  # nobody logged in, then an installer
        if name is not None:
            log_in(qtbot, window, name, PASSWORDS[name])
        assert window.key_injection.start(request) is None
        lines = window.log_pane.lines()
        error = OperatorRoleNeeded(role="operator")
        assert lines[-1].endswith(
            f"{_('Key injection did not start: {message}', message=str(error))} — {error.remedy_text}"
        )
    assert keys.opened == [] and keys.runs == []
