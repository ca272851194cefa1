"""The console's merchant form and subsidy panel against a real sandbox platform: an installer scans a store's QR
text (as the sandbox prints it), types the key store's passphrase and binds a unit, which the platform then holds
bound, activated and enrolled, while the unit's card followed the same steps; the subsidy panel then reads the
unit's subsidy from the platform.  One sandbox for the module; the station's RSA key in a software key store."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import shutil
import sqlite3
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from helpers import IdleDiscovery, device

import enrollment.sandbox.payments
import enrollment.sandbox.subsidy  # noqa: F401  # registers the subsidy handlers (the server serves what is registered)
import i18n
from console.composition import Wiring
from console.main_window import MainWindow
from console.merchant_form import LIVE
from console.platform_option import open_outbox
from enrollment.gateway import Method
from enrollment.sandbox.server import Sandbox
from i18n import _
from keys.store import SigningAlgorithm
from keys.store_software import SoftwareKeyStore, default_path
from provisioning import operators as ops
from provisioning.ledger import Ledger
from provisioning.registration import STEP_ACTIVATE, STEP_BIND, STEP_SUBSIDY, UnitToRegister, register_inventory
from provisioning.station import Station

SERIAL = "DF2A00077"
PASSPHRASE = "plum-Passphrase-90417-zebra"
PASSWORD = "ivy-Secret-2290"
OPERATOR_PASSWORD = "olga-Secret-2290"
WAIT_MS = 20000


@dataclass
class Platform:
    sandbox: Sandbox
    config: Path
    keystore: Path

    def view(self, name: str) -> Any:
        """A read-only view of the sandbox (``/sandbox/NAME``), over its own TLS."""
        context = ssl.create_default_context(cadata=self.sandbox.ca_certificate)
        with urllib.request.urlopen(f"{self.sandbox.base_url}/sandbox/{name}", context=context, timeout=10) as reply:
            return json.load(reply)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    sandbox = Sandbox.start(root / "sandbox.sqlite")
    try:
        config = sandbox.station_config()
        keystore = root / "keystore.json"
        with SoftwareKeyStore(PASSPHRASE, keystore, scrypt_n=2**8) as store:
            der = store.generate_signing_key(config.key_label, SigningAlgorithm.RSA_2048)
        public = serialization.load_der_public_key(der)
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        sandbox.set_app_key(config.app_id, pem.decode())
        (root / "platform.toml").write_text(config.dumps(), encoding="utf-8")
        yield Platform(sandbox, root / "platform.toml", keystore)
    finally:
        sandbox.stop()


@pytest.fixture
def window(qtbot: Any, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    monkeypatch.setenv("NAIAD_PLATFORM_CONFIG", str(platform.config))
    monkeypatch.delenv("NAIAD_KEYSTORE", raising=False)
    monkeypatch.delenv("NAIAD_KEYSTORE_PASSPHRASE", raising=False)
    default_path().parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(platform.keystore, default_path())  # the station's own store, in this test's data directory
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1")
    ops.add_operator(ledger, None, "root", "admin", "root-Secret-8731")
    admin = ops.login(ledger, "root", "root-Secret-8731")
    ops.add_operator(ledger, admin, "ivy", "installer", PASSWORD)
    ops.add_operator(ledger, admin, "olga", "operator", OPERATOR_PASSWORD)
    station = Station(IdleDiscovery(), ledger=ledger)  # type: ignore[arg-type]
    with SoftwareKeyStore(PASSPHRASE) as store, open_outbox(station, None, store) as outbox:  # the distributor's
        units = [UnitToRegister(SERIAL, "DF2")]
        (registered,) = register_inventory(outbox, "2088000000000100", units, session=admin)
    assert registered.ok
    win = MainWindow(Wiring(Path("/nonexistent-sim")), make_discovery=IdleDiscovery, make_station=lambda: station)
    qtbot.addWidget(win)
    win.start()
    win.bench.device_added(device(SERIAL, 1))
    win.operator.login_action.trigger()
    dialog = win.operator.dialog
    assert dialog is not None
    dialog.name_edit.setText("ivy")
    dialog.password_edit.setText(PASSWORD)
    dialog.login_button.click()
    qtbot.waitUntil(lambda: win.operator.session is not None, timeout=WAIT_MS)
    yield win
    win.close()
    ledger.close()


def test_an_installer_binds_activates_and_enrolls_a_unit_from_its_card(
    qtbot: Any, window: MainWindow, platform: Platform
) -> None:
    card = window.bench.card(SERIAL)
    assert card is not None
    phases: list[str] = []
    show_phase = card.show_phase

    def shown(label: str) -> None:
        phases.append(label)
        show_phase(label)

    card.show_phase = shown  # type: ignore[method-assign]
    card.platform_buttons["merchant"].click()
    form = window.merchants.forms[SERIAL]
    noodle_bar = next(m for m in platform.view("merchants") if m["merchant_id"] == "2088000000000001")
    form.qr_edit.setText(noodle_bar["stores"][1]["qr_text"])  # as scanned at the store S0002
    assert (form.merchant_edit.text(), form.store_edit.text()) == ("2088000000000001", "S0002")
    form.program_combo.setEditText("2019")  # typed: the console keeps no list of the platform's programs
    assert not form.start_button.isEnabled()  # the passphrase is not in the environment: it must be typed
    form.secret_edit.setText(PASSPHRASE)
    form.start_button.click()
    assert form.running and card.in_job
    qtbot.waitUntil(lambda: not form.running, timeout=WAIT_MS)

    assert form.succeeded(), form.foot.hint_label.text()
    assert [form.step_marks[step].text() for step in (STEP_BIND, STEP_ACTIVATE, STEP_SUBSIDY)] == ["✓", "✓", "✓"]
    assert len(phases) == 3  # the card followed the same three steps
    assert not card.in_job and card.step_label.text() == _(LIVE, merchant="2088000000000001", store="S0002")
    (unit,) = [d for d in platform.view("devices") if d["serial"] == SERIAL]
    assert (unit["merchant_id"], unit["store_id"], unit["activated"], unit["subsidy_program"]) == (
        "2088000000000001",
        "S0002",
        True,
        "2019",
    )
    assert PASSPHRASE not in "\n".join(window.log_pane.lines())
    ledger = window.stations.get().ledger
    for method in (Method.DEVICE_BIND, Method.DEVICE_ACTIVATE, Method.SUBSIDY_ENROLL):
        call = ledger.find_platform_call(method, SERIAL, state="done")
        assert call is not None and call.operator == "ivy"  # the installer logged in, not nobody

    form.close()
    window.merchants.open_for(SERIAL)
    assert window.merchants.forms[SERIAL].secret_edit.text() == ""  # a new form: the passphrase is not kept

    # a buyer pays by face at the unit: under the 2019 program that is 0.70 yuan of subsidy in its first month
    with SoftwareKeyStore(PASSPHRASE) as store, open_outbox(window.stations.get(), None, store) as outbox:
        at = {"serial": SERIAL, "merchant_id": "2088000000000001", "store_id": "S0002"}
        session = outbox.call(Method.FACE_SESSION_INITIALIZE, at, serial=SERIAL)
        face = {"session_id": session["session_id"], "serial": SERIAL, "face_id": "sandbox-buyer-1"}
        token = outbox.call(Method.FACE_SESSION_VERIFY, face, serial=SERIAL)["ftoken"]
        sale = {"scene": "face", "auth_code": token, "total_amount": "12.00", "subject": "Noodles", **at}
        outbox.call(Method.TRADE_PAY, sale, serial=SERIAL)

    # the subsidy panel, from the same card, reads what the platform now holds (passphrase from the environment)
    os.environ["NAIAD_KEYSTORE_PASSPHRASE"] = PASSPHRASE
    try:
        card.platform_buttons["subsidy"].click()
        (panel,) = window.subsidy.panels
        qtbot.waitUntil(lambda: panel.answered or panel.status_label.property("failed") is True, timeout=WAIT_MS)
    finally:
        del os.environ["NAIAD_KEYSTORE_PASSPHRASE"]
    (status,) = panel.units
    assert (status.serial, status.program, status.merchant_id, status.store_id) == (
        SERIAL,
        "2019",
        "2088000000000001",
        "S0002",
    )
    assert (status.users, status.earned, status.cap_left, status.months_left) == (
        1,
        Decimal("0.70"),
        Decimal("1199.30"),
        5,
    )
    assert "program 2019" in panel.status_label.text() and panel.chart.isVisible()
    assert panel.table.rowCount() == len(status.months)
    first = [panel.table.item(0, column).text() for column in (3, 4)]
    assert first == ["1", "0.70"]
    assert panel.totals_label.text() == _(
        "Earned {earned:.2f} yuan · cap left {cap_left:.2f} yuan · months left {months}",
        earned=Decimal("0.70"),
        cap_left=Decimal("1199.30"),
        months=5,
    )


def test_the_subsidy_panel_reads_a_merchants_units(qtbot: Any, window: MainWindow, monkeypatch: Any) -> None:
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    window.subsidy.menu_action.trigger()
    (panel,) = window.subsidy.panels
    panel.id_edit.setText("2088000000000002")  # the grocer: no unit bound there
    panel.show_button.click()
    qtbot.waitUntil(lambda: panel.answered, timeout=WAIT_MS)
    assert panel.units == [] and panel.status_label.text() == _("The platform knows no unit of this merchant.")
    panel.id_edit.setText("2088000000000999")
    panel.show_button.click()
    qtbot.waitUntil(lambda: not panel.loading, timeout=WAIT_MS)
    assert panel.status_label.isVisible() and panel.status_label.property("failed") is True


def log_in_as(qtbot: Any, window: MainWindow, name: str, password: str) -> None:
    window.operator.logout_action.trigger()
    window.operator.login_action.trigger()
    dialog = window.operator.dialog
    assert dialog is not None
    dialog.name_edit.setText(name)
    dialog.password_edit.setText(password)
    dialog.login_button.click()
    qtbot.waitUntil(lambda: window.operator.session is not None, timeout=WAIT_MS)


def test_an_operator_registers_the_bench_in_inventory_and_each_card_shows_its_answer(
    qtbot: Any, window: MainWindow, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not window.inventory.action.isVisible()  # an installer registers no inventory
    log_in_as(qtbot, window, "olga", OPERATOR_PASSWORD)
    assert window.inventory.action.isVisible() and window.inventory.resume_action.isVisible()
    for port, serial in enumerate(("DF2A00201", "DF2A00202"), 2):
        window.bench.device_added(device(serial, port))
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    dialog = window.inventory.open_dialog()
    assert dialog is not None and dialog.start_button.isEnabled()
    assert dialog.picker.selected_serials() == [SERIAL, "DF2A00201", "DF2A00202"]  # every card, ticked
    runs: list[Any] = []
    window.inventory.run_finished.connect(runs.append)
    dialog.start_button.click()
    assert all(window.workers.busy(serial) for serial in ("DF2A00201", "DF2A00202"))  # one job, a claim per unit
    qtbot.waitUntil(lambda: bool(runs), timeout=WAIT_MS)
    assert {serial: result.status for serial, result in runs[0].results.items()} == {
        SERIAL: "already-registered",  # the distributor registered it in the fixture
        "DF2A00201": "registered",
        "DF2A00202": "registered",
    }
    card = window.bench.card("DF2A00201")
    assert card is not None and not card.in_job and not window.workers.busy_units()
    assert card.step_label.text() == _("Registered in the distributor's inventory")
    owners = {unit["serial"]: unit["inventory_owner"] for unit in platform.view("devices")}
    assert owners["DF2A00201"] == owners["DF2A00202"] == "2088000000000100"
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        rows = db.execute("SELECT operator, state FROM platform_calls WHERE method = ?", (Method.INVENTORY_REGISTER,))
        assert sorted(rows) == [("olga", "done"), ("root", "done")]  # the console's call names olga; the fixture's root


def test_calls_an_outage_left_waiting_are_sent_from_the_console(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = window.stations.get().ledger
    number = uuid.uuid4().hex
    biz = {
        "out_request_no": number,
        "supplier_id": "2088000000000100",
        "devices": [{"serial": "DF2A00301", "model": "DF2"}],
    }
    ledger.add_platform_call(Method.INVENTORY_REGISTER, number, biz)  # written, never answered: the network was down
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    dialog = window.inventory.open_resume()  # the installer may send what waits
    assert dialog is not None and dialog.start_button.isEnabled()
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    assert dialog.report is not None, dialog.foot.hint_label.text()
    assert (dialog.report.done, dialog.report.refused, dialog.report.pending) == (1, 0, 0)
    record = ledger.platform_call(number)
    assert record is not None and record.state == "done"
    assert dialog.foot.hint_label.text() == _(
        "Waiting platform calls: {done} done, {refused} refused, {pending} still waiting", done=1, refused=0, pending=0
    )
