"""The enrollment flows end to end: the real outbox in a ledger, the real client, a running sandbox platform.

One sandbox serves the whole module (each test uses its own serials); each test has its own ledger, where the
operator olga runs the flows.  What the platform ended up holding is read from its inspection views, so "done
once" is the platform's word, not ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enrollment.client import PlatformClient
from enrollment.config import Merchant, PlatformConfig
from enrollment.errors import PlatformUnavailable
from enrollment.gateway import Method, Signer, rsa_signer
from enrollment.merchant_qr import parse_merchant_qr
from enrollment.sandbox.server import Faults, Sandbox
from provisioning.ledger import Ledger
from provisioning.operators import OperatorSession
from provisioning.outbox import Outbox, PendingCallDiffers
from provisioning.registration import (
    STEP_ACTIVATE,
    STEP_BIND,
    STEP_SUBSIDY,
    InventoryCallWaiting,
    MerchantNotFound,
    StoreNotFound,
    UnitNotInInventory,
    UnitNotOnPlatform,
    UnitToRegister,
    abandon_call,
    bring_live,
    register_inventory,
    subsidy_status,
)
from terminal.events import Message, Recorder, StepFinished

NOODLE_BAR = Merchant("2088000000000001", "S0001")
GROCER = Merchant("2088000000000002", "S0001")
OLGA = OperatorSession("olga", "operator")


@dataclass
class Platform:
    sandbox: Sandbox
    config: PlatformConfig
    signer: Signer
    ca_file: Path

    def view(self, name: str) -> list[dict[str, Any]]:
        """A sandbox inspection view (``/sandbox/NAME``), as the platform holds it now."""
        answer = requests.get(f"{self.sandbox.base_url}/sandbox/{name}", verify=str(self.ca_file), timeout=10)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def device(self, serial: str) -> dict[str, Any]:
        return next(d for d in self.view("devices") if d["serial"] == serial)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    where = tmp_path_factory.mktemp("platform")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with Sandbox.start(where / "sandbox.sqlite") as sandbox:
        config = sandbox.station_config()
        sandbox.set_app_key(config.app_id, public.decode())
        ca_file = where / "ca.pem"
        ca_file.write_text(sandbox.ca_certificate, encoding="utf-8")
        yield Platform(sandbox, config, rsa_signer(key), ca_file)


class CountingClient(PlatformClient):
    """The real client, counting the calls that reach it (the outbox's sends)."""

    sent: list[Method]

    def call(self, method: Method, biz: Any) -> dict[str, Any]:
        self.sent.append(method)
        return super().call(method, biz)


@pytest.fixture
def client(platform: Platform) -> Iterator[CountingClient]:
    """The real client, giving up after two quick attempts (an outage shows at once)."""
    client = CountingClient(platform.config, platform.signer, attempts=2, sleep=lambda seconds: None)
    client.sent = []
    with client:
        yield client
    platform.sandbox.faults = Faults()


@pytest.fixture
def outbox(client: CountingClient, tmp_path: Path) -> Iterator[Outbox]:
    """The station's outbox in this test's own ledger."""
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        ledger.register_operator(OLGA.operator, OLGA.role)
        yield Outbox(ledger, client)


def units(prefix: str, count: int) -> list[UnitToRegister]:
    return [UnitToRegister(f"{prefix}{n:04d}", "df2") for n in range(count)]


def test_inventory_registers_every_unit_once_and_a_second_run_finds_them_registered(
    platform: Platform, outbox: Outbox, client: CountingClient
) -> None:
    batch = units("INV", 5)
    events = Recorder()
    first = register_inventory(outbox, platform.config.supplier_id, batch, events, batch_size=2, session=OLGA)
    assert [(r.serial, r.status) for r in first] == [(u.serial, "registered") for u in batch]
    assert client.sent == [Method.INVENTORY_REGISTER] * 3
    assert len(events.of(StepFinished)) == 5
    owners = {d["serial"]: d["inventory_owner"] for d in platform.view("devices") if d["serial"].startswith("INV")}
    assert owners == {u.serial: platform.config.supplier_id for u in batch}
    again = register_inventory(outbox, platform.config.supplier_id, batch, session=OLGA)
    assert {r.status for r in again} == {"already-registered"} and all(r.ok for r in again)
    assert outbox.pending() == []


def test_bring_live_binds_activates_and_enrols_and_a_second_run_sends_nothing(
    platform: Platform, outbox: Outbox, client: CountingClient
) -> None:
    register_inventory(outbox, platform.config.supplier_id, units("LIVE", 1), session=OLGA)
    results = bring_live(outbox, platform.config.supplier_id, "LIVE0000", NOODLE_BAR, session=OLGA)
    assert [(r.step, r.status) for r in results] == [
        (STEP_BIND, "done"),
        (STEP_ACTIVATE, "done"),
        (STEP_SUBSIDY, "done"),
    ]
    held = platform.device("LIVE0000")
    assert (held["merchant_id"], held["store_id"], held["activated"]) == ("2088000000000001", "S0001", True)
    assert held["subsidy_program"] == results[2].detail
    before = len(client.sent)
    again = bring_live(outbox, platform.config.supplier_id, "LIVE0000", NOODLE_BAR, session=OLGA)
    assert [r.status for r in again] == ["already-done"] * 3 and all(r.ok for r in again)
    assert len(client.sent) == before  # nothing went to the platform


@pytest.mark.parametrize("fault", ["error_rate", "drop_rate"])
def test_a_run_cut_off_by_the_network_finishes_on_the_next_run_with_each_step_done_once(
    platform: Platform, outbox: Outbox, fault: str
) -> None:
    serial = f"CUT{fault[:4].upper()}"
    register_inventory(outbox, platform.config.supplier_id, [UnitToRegister(serial, "df2")], session=OLGA)
    # a 503 before any work, or the work done and the reply lost
    platform.sandbox.faults = Faults(error_rate=1.0) if fault == "error_rate" else Faults(drop_rate=1.0)
    (cut,) = bring_live(outbox, platform.config.supplier_id, serial, NOODLE_BAR, session=OLGA)
    assert (cut.step, cut.ok, cut.status) == (STEP_BIND, False, "pending")
    assert isinstance(cut.error, PlatformUnavailable) and cut.error.remedy_text
    assert [call.method for call in outbox.pending()] == [Method.DEVICE_BIND]
    platform.sandbox.faults = Faults()
    finished = bring_live(outbox, platform.config.supplier_id, serial, NOODLE_BAR, session=OLGA)
    assert [(r.step, r.status) for r in finished] == [
        (STEP_BIND, "done"),
        (STEP_ACTIVATE, "done"),
        (STEP_SUBSIDY, "done"),
    ]
    assert outbox.pending() == []
    held = platform.device(serial)
    assert (held["merchant_id"], held["store_id"], held["activated"]) == ("2088000000000001", "S0001", True)


def test_refusals_stop_the_run_with_what_to_do_and_leave_nothing_pending(platform: Platform, outbox: Outbox) -> None:
    supplier = platform.config.supplier_id
    (stranger,) = bring_live(outbox, supplier, "NOTREG0001", NOODLE_BAR, session=OLGA)
    assert isinstance(stranger.error, UnitNotInInventory) and "naiad register inventory" in str(
        stranger.error.remedy_text
    )
    register_inventory(outbox, supplier, units("REF", 1), session=OLGA)
    (merchant,) = bring_live(outbox, supplier, "REF0000", Merchant("2088999999999999", "S0001"), session=OLGA)
    assert merchant.status == "refused" and isinstance(merchant.error, MerchantNotFound)
    assert "QR" in str(merchant.error.remedy_text)
    (store,) = bring_live(outbox, supplier, "REF0000", Merchant(NOODLE_BAR.merchant_id, "S0999"), session=OLGA)
    assert isinstance(store.error, StoreNotFound) and "S0999" in str(store.error)
    assert outbox.pending() == []
    assert platform.device("REF0000")["merchant_id"] is None


def test_subsidy_status_per_unit_and_per_merchant(platform: Platform, outbox: Outbox) -> None:
    supplier = platform.config.supplier_id
    register_inventory(outbox, supplier, units("SUB", 2), session=OLGA)
    bring_live(outbox, supplier, "SUB0000", GROCER, program="2019", session=OLGA)
    bring_live(outbox, supplier, "SUB0001", GROCER, session=OLGA)
    (one,) = subsidy_status(outbox, serial="SUB0000", session=OLGA)
    assert (one.serial, one.merchant_id, one.store_id, one.program) == ("SUB0000", *vars(GROCER).values(), "2019")
    assert one.earned == Decimal("0.00") and one.users == 0
    assert one.cap_left == Decimal("1200.00") and one.months_left == 5
    grocer = {u.serial: u for u in subsidy_status(outbox, merchant_id=GROCER.merchant_id, session=OLGA)}
    assert {"SUB0000", "SUB0001"} <= set(grocer)
    assert grocer["SUB0001"].program == "2020" and grocer["SUB0001"].cap_left == Decimal("1600.00")
    with pytest.raises(UnitNotOnPlatform):
        subsidy_status(outbox, serial="NOSUCH0001", session=OLGA)
    with pytest.raises(MerchantNotFound):
        subsidy_status(outbox, merchant_id="2088999999999999", session=OLGA)


def test_every_store_qr_text_the_platform_prints_reads_as_its_merchant_and_store(platform: Platform) -> None:
    stores = [(m["merchant_id"], s) for m in platform.view("merchants") for s in m["stores"]]
    assert len(stores) == 3
    for merchant_id, store in stores:
        assert parse_merchant_qr(store["qr_text"]) == Merchant(merchant_id, store["store_id"])


def test_a_merchant_corrected_after_an_outage_is_not_replaced_by_the_pending_typo(
    platform: Platform, outbox: Outbox, client: CountingClient
) -> None:
    """The installer typed the grocer by mistake while the network was down, then the right merchant: neither
    bind is sent while the typo waits; once it is dropped (checked on the platform), the right one goes."""
    supplier = platform.config.supplier_id
    register_inventory(outbox, supplier, [UnitToRegister("TYPO0001", "df2")], session=OLGA)
    platform.sandbox.faults = Faults(error_rate=1.0)
    (cut,) = bring_live(outbox, supplier, "TYPO0001", GROCER, session=OLGA)
    assert cut.status == "pending"
    platform.sandbox.faults = Faults()
    (typo,) = outbox.pending()
    sent = len(client.sent)
    (stopped,) = bring_live(outbox, supplier, "TYPO0001", NOODLE_BAR, session=OLGA)
    assert not stopped.ok and isinstance(stopped.error, PendingCallDiffers)
    assert typo.request_no in str(stopped.error) and "naiad register abandon" in str(stopped.error.remedy_text)
    assert len(client.sent) == sent and platform.device("TYPO0001")["merchant_id"] is None  # nothing sent
    assert abandon_call(outbox, typo.request_no, session=OLGA).state == "abandoned"
    done = bring_live(outbox, supplier, "TYPO0001", NOODLE_BAR, session=OLGA)
    assert [(r.step, r.status) for r in done] == [(STEP_BIND, "done"), (STEP_ACTIVATE, "done"), (STEP_SUBSIDY, "done")]
    held = platform.device("TYPO0001")
    assert (held["merchant_id"], held["store_id"]) == (NOODLE_BAR.merchant_id, NOODLE_BAR.store_id)


def test_an_older_done_bind_does_not_hide_a_newer_pending_one_with_other_content(
    platform: Platform, outbox: Outbox, client: CountingClient
) -> None:
    """Bound to the noodle bar, moved to the grocer during an outage (pending), then run for the noodle bar again:
    the run stops at the pending grocer bind instead of saying "done already" over it, and sends nothing."""
    supplier = platform.config.supplier_id
    register_inventory(outbox, supplier, [UnitToRegister("MOVE0001", "df2")], session=OLGA)
    assert all(r.ok for r in bring_live(outbox, supplier, "MOVE0001", NOODLE_BAR, session=OLGA))
    platform.sandbox.faults = Faults(error_rate=1.0)
    assert bring_live(outbox, supplier, "MOVE0001", GROCER, session=OLGA)[0].status == "pending"
    platform.sandbox.faults = Faults()
    sent = len(client.sent)
    (stopped,) = bring_live(outbox, supplier, "MOVE0001", NOODLE_BAR, session=OLGA)
    assert (stopped.step, stopped.ok) == (STEP_BIND, False) and isinstance(stopped.error, PendingCallDiffers)
    assert len(client.sent) == sent
    told = str(stopped.error)  # the step as the installer knows it, not the platform's method
    assert "binding to the merchant's store" in told and str(Method.DEVICE_BIND) not in told
    assert "Send the waiting call" in str(stopped.error.remedy_text)  # the console's way out, with the CLI's
    assert stopped.error.params["method"] == Method.DEVICE_BIND  # for the console's actions


def test_running_inventory_again_after_an_outage_leaves_nothing_pending(platform: Platform, outbox: Outbox) -> None:
    batch = units("RERUN", 3)
    platform.sandbox.faults = Faults(drop_rate=1.0)  # the work done, the reply lost
    assert {r.status for r in register_inventory(outbox, platform.config.supplier_id, batch, session=OLGA)} == {
        "pending"
    }
    platform.sandbox.faults = Faults()
    events = Recorder()
    again = register_inventory(outbox, platform.config.supplier_id, batch, events, session=OLGA)
    assert all(r.ok for r in again) and outbox.pending() == []
    (told,) = events.of(Message, "")
    assert "1 done, 0 refused, 0 still waiting" in told.text


def test_inventory_run_again_during_an_outage_writes_no_second_call_for_the_same_units(
    platform: Platform, outbox: Outbox
) -> None:
    supplier, batch = platform.config.supplier_id, units("OUTAGE", 2)
    platform.sandbox.faults = Faults(error_rate=1.0)
    for _run in range(3):
        results = register_inventory(outbox, supplier, batch, session=OLGA)
        assert [r.status for r in results] == ["pending", "pending"]
    (waiting,) = outbox.pending(Method.INVENTORY_REGISTER)
    assert isinstance(results[0].error, InventoryCallWaiting) and waiting.request_no in str(results[0].error)
    mixed = register_inventory(outbox, supplier, [*batch, UnitToRegister("OUTAGE9999", "df2")], session=OLGA)
    assert [r.serial for r in mixed] == ["OUTAGE0000", "OUTAGE0001", "OUTAGE9999"]  # a new unit gets its own call
    assert len(outbox.pending(Method.INVENTORY_REGISTER)) == 2
    platform.sandbox.faults = Faults()
    assert all(r.ok for r in register_inventory(outbox, supplier, batch, session=OLGA)) and outbox.pending() == []


def test_every_call_is_written_as_the_operator_who_ran_the_flow(platform: Platform, outbox: Outbox) -> None:
    supplier = platform.config.supplier_id
    register_inventory(outbox, supplier, units("WHO", 1), session=OLGA)
    bring_live(outbox, supplier, "WHO0000", NOODLE_BAR, session=OLGA)
    for method in (Method.DEVICE_BIND, Method.DEVICE_ACTIVATE, Method.SUBSIDY_ENROLL):
        record = outbox.done(method, "WHO0000")
        assert record is not None and record.operator == "olga", method


def test_a_program_changed_after_an_outage_stops_at_the_enrolment_and_sends_nothing(
    platform: Platform, outbox: Outbox, client: CountingClient
) -> None:
    supplier = platform.config.supplier_id
    register_inventory(outbox, supplier, [UnitToRegister("PROG0001", "df2")], session=OLGA)
    assert bring_live(outbox, supplier, "PROG0001", GROCER, session=OLGA, program="2099")[-1].status == "refused"
    platform.sandbox.faults = Faults(error_rate=1.0)
    assert bring_live(outbox, supplier, "PROG0001", GROCER, session=OLGA, program="2019")[-1].status == "pending"
    platform.sandbox.faults = Faults()
    sent = len(client.sent)
    again = bring_live(outbox, supplier, "PROG0001", GROCER, session=OLGA)  # now the platform's current program
    assert [(r.step, r.status) for r in again] == [
        (STEP_BIND, "already-done"),
        (STEP_ACTIVATE, "already-done"),
        (STEP_SUBSIDY, "failed"),
    ]
    assert isinstance(again[-1].error, PendingCallDiffers) and len(client.sent) == sent
    assert platform.device("PROG0001")["subsidy_program"] is None
