"""``naiad register`` and ``naiad subsidy`` through click, on simulated units, against a running sandbox platform.

One sandbox and one simulator (three units) serve the module; each test has its own ledger (with an operator
of each role, logged in by token) and its own software key store holding the station's RSA key, whose public
key the sandbox is given.  Careless input, and an operator without the command's role, must be refused before
the key store is opened (its passphrase is withheld there, so opening it would fail differently) and before
anything reaches the platform.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_station import prepare_station
from click.testing import CliRunner, Result
from conftest import SimHandle

from console import cli_register
from console.cli import cli
from enrollment.sandbox.server import Faults, Sandbox
from keys.store import SigningAlgorithm
from keys.store_software import SoftwareKeyStore, default_path
from provisioning.ledger import Ledger
from provisioning.registration import STEP_BIND, STEP_INVENTORY, EnrollmentStepResult
from provisioning.station import Station as RealStation
from simulator import launcher
from terminal.discovery import Device

PASSPHRASE = "register-Secret-4417"
LABEL = "platform-test"
NOODLE_BAR = ("2088000000000001", "S0001")
GROCER = ("2088000000000002", "S0001")
ROLES = {"root": "admin", "olga": "operator", "ivy": "installer", "sam": "support", "cara": "custodian"}


@dataclass
class Bench:
    sandbox: Sandbox
    sim: SimHandle
    where: Path

    def view(self, name: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.sandbox.base_url}/sandbox/{name}", verify=str(self.where / "ca.pem"), timeout=10)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def device(self, serial: str) -> dict[str, Any] | None:
        return next((d for d in self.view("devices") if d["serial"] == serial), None)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    where = tmp_path_factory.mktemp("bench")
    launcher.start_detached(where / "sim", 3)
    try:
        with Sandbox.start(where / "sandbox.sqlite") as sandbox:
            (where / "ca.pem").write_text(sandbox.ca_certificate, encoding="utf-8")
            (where / "platform.toml").write_text(sandbox.station_config(LABEL).dumps(), encoding="utf-8")
            yield Bench(sandbox, SimHandle(where / "sim"), where)
    finally:
        launcher.stop(where / "sim")


@dataclass
class Station:
    bench: Bench
    ledger: str
    config: Path
    tokens: dict[str, str] = field(default_factory=dict)
    """A session token per operator name (``ROLES``)."""

    def naiad(self, *args: str, passphrase: str = PASSPHRASE, operator: str | None = "olga", **env: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["--ledger", self.ledger, *args],
            input="",
            env={
                "NAIAD_LANG": "en",
                "NAIAD_OPERATOR": self.tokens[operator] if operator else "",
                "NAIAD_SIM": str(self.bench.sim.state_dir),
                "NAIAD_KEYSTORE": "software",
                "NAIAD_KEYSTORE_PASSPHRASE": passphrase,
                "NAIAD_PLATFORM_CONFIG": str(self.config),
                **env,
            },
        )

    def json(self, *args: str, operator: str = "olga") -> Any:
        done = self.naiad(*args, "--json", operator=operator)
        assert "Traceback" not in done.output, done.output
        return json.loads(done.stdout)


@pytest.fixture
def station(bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Station]:
    """This test's ledger, platform configuration and key store (an RSA key the sandbox knows); a client that
    gives up after two attempts without sleeping, so an outage is quick to show."""
    url, path, tokens = prepare_station(
        bench.sandbox, tmp_path, monkeypatch, passphrase=PASSPHRASE, label=LABEL, roles=ROLES
    )
    yield Station(bench, url, path, tokens)
    bench.sandbox.faults = Faults()


def test_inventory_all_registers_every_attached_unit_with_its_model(station: Station, bench: Bench) -> None:
    answer = station.json("register", "inventory", "--all")
    serials = bench.sim.serials()
    assert answer["ok"] is True and answer["supplier_id"] == "2088000000000100"
    assert sorted(r["serial"] for r in answer["results"]) == sorted(serials)
    assert {r["status"] for r in answer["results"]} <= {"registered", "already-registered"}
    for terminal in bench.sim.terminals():
        held = bench.device(terminal["serial"])
        assert held is not None and held["inventory_owner"] == "2088000000000100"
        assert held["model"] == terminal["model"]


def test_a_unit_goes_live_from_its_qr_code_and_shows_in_the_subsidy_status(station: Station, bench: Bench) -> None:
    serial = bench.sim.serials()[0]
    shown = station.naiad("register", "inventory", "--device", serial)
    assert shown.exit_code == 0, shown.output
    assert serial in shown.stdout and "Inventory registration" in shown.stdout
    qr = next(s["qr_text"] for m in bench.view("merchants") for s in m["stores"] if m["merchant_id"] == NOODLE_BAR[0])
    live = station.json("register", "bind", serial, "--qr", qr)
    assert live["ok"] is True and live["not_done"] == []
    assert (live["merchant_id"], live["store_id"]) == NOODLE_BAR
    assert [s["step"] for s in live["steps"]] == ["bind", "activate", "subsidy-enroll"]
    held = bench.device(serial)
    assert held is not None and (held["merchant_id"], held["store_id"], held["activated"]) == (*NOODLE_BAR, True)

    table = station.naiad("subsidy", "status", serial)
    assert table.exit_code == 0, table.output
    assert "Month" in table.stdout and "Total" in table.stdout and "Cap left" in table.stdout
    merchant = station.json("subsidy", "status", "--merchant", NOODLE_BAR[0])
    unit = next(u for u in merchant["units"] if u["serial"] == serial)
    assert unit["program"] and unit["earned"] == "0.00" and unit["months_left"] == 5 and len(unit["months"]) == 5
    assert merchant["earned"] == "0.00"


def test_a_units_bar_ends_with_the_step_its_status_and_what_the_platform_answered() -> None:
    done = EnrollmentStepResult("DF2A00001", STEP_BIND, True, "done", "2088000000000001/S0001")
    assert cli_register._outcome(done) == "bind to the store: done (2088000000000001/S0001)"
    pending = EnrollmentStepResult("DF2A00001", STEP_INVENTORY, False, "pending")
    assert cli_register._outcome(pending) == "inventory: not answered: waiting in the outbox"


def test_a_refusal_exits_1_and_says_what_to_do(station: Station, bench: Bench) -> None:
    serial = bench.sim.serials()[1]
    station.naiad("register", "inventory", "--device", serial)
    refused = station.naiad("register", "bind", serial, "--merchant", "2088999999999999", "--store", "S0001")
    assert refused.exit_code == 1, refused.output
    assert "The platform knows no merchant 2088999999999999" in refused.stdout
    assert "scan the store's binding QR code again" in refused.stdout
    assert "Not done yet: bind to the store, activate, enrol in the subsidy." in refused.stdout


def test_a_call_an_outage_left_pending_is_sent_by_resume(station: Station, bench: Bench) -> None:
    serial = bench.sim.serials()[2]
    station.naiad("register", "inventory", "--device", serial)
    bench.sandbox.faults = Faults(error_rate=1.0)
    cut = station.naiad("register", "bind", serial, "--merchant", NOODLE_BAR[0], "--store", NOODLE_BAR[1], "--json")
    assert cut.exit_code == 1
    assert [(s["step"], s["status"]) for s in json.loads(cut.stdout)["steps"]] == [("bind", "pending")]
    assert "naiad register resume" in json.loads(cut.stdout)["steps"][0]["error"]["remedy"]
    bench.sandbox.faults = Faults()
    assert station.json("register", "resume") == {"ok": True, "done": 1, "refused": 0, "pending": 0}
    held = bench.device(serial)
    assert held is not None and (held["merchant_id"], held["store_id"]) == NOODLE_BAR
    finished = station.json("register", "bind", serial, "--merchant", NOODLE_BAR[0], "--store", NOODLE_BAR[1])
    assert [s["status"] for s in finished["steps"]] == ["already-done", "done", "done"]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("register", "inventory", "--device", "SERIAL", "--all"), 2, "either --device or --all"),
        (("register", "inventory"), 1, "No unit to register"),
        (("register", "inventory", "--device", "NOSUCH0001"), 1, "This station does not know unit NOSUCH0001"),
        (("register", "inventory", "--device", "bad/serial"), 1, "'bad/serial' is not a valid id"),
        (("register", "bind", "SERIAL", "--merchant", "2088000000000001", "--store", "S1", "--qr", "x"), 2, "one of"),
        (("register", "bind", "SERIAL"), 2, "one of the two"),
        (("register", "bind", "SERIAL", "--merchant", "2088000000000001"), 2, "go together"),
        (("register", "bind", "SERIAL", "--qr", "https://x.example/pay?id=1"), 1, "not a store's binding code"),
        (("register", "bind", "SERIAL", "--merchant", "a b", "--store", "S0001"), 1, "'a b' is not a valid id"),
        (("register", "bind", "NOSUCH0001", "--merchant", "2088000000000001", "--store", "S0001"), 1, "not know"),
        (("register", "bind", "SERIAL", "--qr", "{}"), 1, "not a store's binding code"),
        (("register", "bind", "SERIAL", "--qr", "https://[::1/bind?merchant_id=A&store_id=B"), 1, "binding code"),
        (
            ("register", "bind", "SERIAL", "--merchant", "2088000000000001", "--store", "S1", "--program", "../x"),
            1,
            "'../x'",
        ),
        (("register", "bind", "SERIAL", "--merchant", "2088000000000001", "--store", "S1"), 1, "logged-in operator"),
        (("register", "inventory", "--device", "SERIAL"), 1, "logged-in operator"),
        (("register", "resume"), 1, "logged-in operator"),
        (("register", "abandon", "R1"), 1, "logged-in operator"),
        (("register", "abandon", "a/b"), 1, "'a/b' is not a valid id"),
        (("subsidy", "status", "SERIAL"), 1, "logged-in operator"),
        (("subsidy", "status"), 2, "one of the two"),
        (("subsidy", "status", "SERIAL", "--merchant", "2088000000000001"), 2, "one of the two"),
    ],
)
def test_careless_input_is_refused_before_the_key_store_opens_and_nothing_is_sent(
    bench: Bench, args: tuple[str, ...], code: int, says: str
) -> None:
    """On a station with a ledger shared by these cases and no key store at all: none may get that far."""
    serial = bench.sim.serials()[0]
    before = bench.view("devices")
    careless = Station(bench, f"sqlite:///{bench.where / 'careless.sqlite'}", bench.where / "platform.toml")
    refused = careless.naiad(*(serial if a == "SERIAL" else a for a in args), passphrase="", operator=None)
    assert refused.exit_code == code, refused.output
    assert says in refused.output and "Traceback" not in refused.output and "passphrase" not in refused.output
    assert bench.view("devices") == before


def test_a_station_without_its_platform_key_or_configuration_is_told_how_to_get_them(
    station: Station, bench: Bench, tmp_path: Path
) -> None:
    serial = bench.sim.serials()[0]
    other = tmp_path / "other.toml"
    other.write_text(bench.sandbox.station_config("platform-missing").dumps(), encoding="utf-8")
    missing = station.naiad("register", "inventory", "--device", serial, "--platform-config", str(other))
    assert missing.exit_code == 1
    assert "no platform key platform-missing" in missing.output and "naiad platform keygen" in missing.output
    with SoftwareKeyStore(PASSPHRASE, default_path()) as store:
        store.generate_signing_key("platform-ec", SigningAlgorithm.EC_P256)
    other.write_text(bench.sandbox.station_config("platform-ec").dumps(), encoding="utf-8")
    ec = station.naiad("register", "resume", "--platform-config", str(other), "--json")
    assert ec.exit_code == 1 and json.loads(ec.stdout)["error"] == "PlatformKeyNotRsa"
    unconfigured = station.naiad("subsidy", "status", serial, NAIAD_PLATFORM_CONFIG="")
    assert unconfigured.exit_code == 1 and "No merchant platform is configured" in unconfigured.output


def test_each_command_needs_its_role_before_the_key_store_opens_and_names_the_operator(
    station: Station, bench: Bench
) -> None:
    serial = bench.sim.serials()[0]
    bind = ("register", "bind", serial, "--merchant", NOODLE_BAR[0], "--store", NOODLE_BAR[1])
    for operator, args in [("ivy", ("register", "inventory", "--device", serial)), ("sam", bind), ("cara", bind)]:
        refused = station.naiad(*args, operator=operator, passphrase="")
        assert refused.exit_code == 1 and "This needs one of the roles" in refused.output, refused.output
        assert "passphrase" not in refused.output
    assert station.naiad("register", "inventory", "--device", serial).exit_code == 0  # olga, the bench
    assert station.json(*bind, operator="ivy")["ok"] is True  # the installer
    assert station.naiad("subsidy", "status", serial, operator="sam").exit_code == 0  # support reads
    with Ledger.open(station.ledger) as ledger:
        settled = {e.details["method"]: e.operator for e in ledger.audit_entries() if e.action == "platform.call.done"}
        bound = ledger.find_platform_call("iot.device.bind", serial, state="done")
    assert settled["iot.device.inventory.register"] == "olga" and settled["iot.device.bind"] == "ivy"
    assert bound is not None and bound.operator == "ivy"


def test_a_corrected_merchant_waits_for_the_typo_to_be_dropped_with_abandon(station: Station, bench: Bench) -> None:
    serial = bench.sim.serials()[1]
    station.naiad("register", "inventory", "--device", serial)
    bench.sandbox.faults = Faults(error_rate=1.0)
    station.naiad("register", "bind", serial, "--merchant", GROCER[0], "--store", GROCER[1])  # the typo, pending
    bench.sandbox.faults = Faults()
    with Ledger.open(station.ledger) as ledger:
        (typo,) = ledger.pending_platform_calls()
    fixed = ("register", "bind", serial, "--merchant", NOODLE_BAR[0], "--store", NOODLE_BAR[1])
    stopped = station.naiad(*fixed, "--json")
    assert stopped.exit_code == 1
    (step,) = json.loads(stopped.stdout)["steps"]
    assert step["error"]["error"] == "StepCallWaiting" and "naiad register abandon" in step["error"]["remedy"]
    held = bench.device(serial)
    assert held is not None and held["merchant_id"] is None  # neither bind was sent
    dropped = station.json("register", "abandon", typo.request_no)
    assert dropped == {"ok": True, "request_no": typo.request_no, "method": "iot.device.bind", "serial": serial}
    again = station.naiad("register", "abandon", typo.request_no)
    assert again.exit_code == 1 and "Traceback" not in again.output
    assert station.json(*fixed)["ok"] is True
    held = bench.device(serial)
    assert held is not None and (held["merchant_id"], held["store_id"]) == NOODLE_BAR


def test_inventory_all_accounts_for_a_unit_whose_serial_cannot_be_read(
    station: Station, bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = RealStation.devices

    def with_a_locked_unit(self: RealStation) -> list[Device]:
        found = real(self)
        locked = dataclasses.replace(found[0], serial="", path="1-9", permission_denied=True)
        return [*found, locked]

    monkeypatch.setattr(RealStation, "devices", with_a_locked_unit)
    answer = station.naiad("register", "inventory", "--all", "--json")
    assert answer.exit_code == 1
    results = json.loads(answer.stdout)["results"]
    assert len(results) == len(bench.sim.serials()) + 1
    (locked,) = [r for r in results if not r["ok"]]
    assert locked["serial"] == "1-9" and locked["error"]["error"] == "UsbAccessDenied" and locked["error"]["remedy"]
