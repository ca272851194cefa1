"""The client and the outbox against the sandbox platform: real HTTPS, real signatures both ways, and the
sandbox's fault knobs; a call whose reply is dropped after the platform did the work is done exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from platform_gateway import public_pem, rsa_key
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from enrollment.client import PlatformClient
from enrollment.errors import PlatformRefused, PlatformUnavailable
from enrollment.gateway import Method, rsa_signer
from enrollment.sandbox.faults import Faults
from enrollment.sandbox.models import Idempotency
from enrollment.sandbox.server import Sandbox
from provisioning.ledger import Ledger
from provisioning.outbox import Outbox, ResumeReport

STATION_KEY = rsa_key()
MERCHANT, STORE = "2088000000000001", "S0001"


@pytest.fixture(scope="module")
def sandbox_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox") / "platform.db"


@pytest.fixture(scope="module")
def sandbox(sandbox_db: Path) -> Iterator[Sandbox]:
    with Sandbox.start(sandbox_db) as running:
        running.set_app_key(running.station_config().app_id, public_pem(STATION_KEY))
        yield running


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[PlatformClient]:
    sandbox.faults = Faults()
    with PlatformClient(sandbox.station_config(), rsa_signer(STATION_KEY), attempts=8, sleep=lambda s: None) as made:
        yield made
    sandbox.faults = Faults()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1") as opened:
        yield opened


@pytest.fixture
def outbox(client: PlatformClient, ledger: Ledger) -> Outbox:
    return Outbox(ledger, client)


def devices(sandbox: Sandbox, tmp_path: Path) -> dict[str, dict[str, Any]]:
    ca = tmp_path / "sandbox-ca.pem"
    ca.write_text(sandbox.ca_certificate, encoding="ascii")
    listed = requests.get(f"{sandbox.base_url}/sandbox/devices", verify=str(ca), timeout=30).json()
    return {device["serial"]: device for device in listed}


def register(outbox: Outbox, sandbox: Sandbox, *serials: str) -> dict[str, Any]:
    supplier = sandbox.station_config().supplier_id
    units = [{"serial": serial, "model": "dragonfly-2"} for serial in serials]
    return outbox.call(Method.INVENTORY_REGISTER, {"supplier_id": supplier, "devices": units})


def bind(outbox: Outbox, sandbox: Sandbox, serial: str) -> dict[str, Any]:
    biz = {"serial": serial, "supplier_id": sandbox.station_config().supplier_id, "merchant_id": MERCHANT}
    return outbox.call(Method.DEVICE_BIND, {**biz, "store_id": STORE}, serial=serial)


def activate(outbox: Outbox, sandbox: Sandbox, serial: str) -> dict[str, Any]:
    return outbox.call(Method.DEVICE_ACTIVATE, {"serial": serial}, serial=serial)


def test_a_unit_is_registered_bound_and_activated_through_the_outbox(
    sandbox: Sandbox, outbox: Outbox, tmp_path: Path
) -> None:
    reply = register(outbox, sandbox, "SBX-OK-1")
    assert reply["results"] == [{"serial": "SBX-OK-1", "status": "registered"}]
    bind(outbox, sandbox, "SBX-OK-1")
    activate(outbox, sandbox, "SBX-OK-1")
    unit = devices(sandbox, tmp_path)["SBX-OK-1"]
    assert (unit["merchant_id"], unit["store_id"], unit["activated"]) == (MERCHANT, STORE, True)
    assert outbox.pending() == [] and outbox.done(Method.DEVICE_ACTIVATE, "SBX-OK-1") is not None


def test_a_refusal_of_the_sandbox_is_typed_and_marked(outbox: Outbox) -> None:
    with pytest.raises(PlatformRefused) as raised:
        outbox.call(Method.DEVICE_ACTIVATE, {"serial": "SBX-NEVER-SEEN"}, serial="SBX-NEVER-SEEN")
    assert raised.value.sub_code == "DEVICE_NOT_IN_INVENTORY" and outbox.pending() == []


def test_a_reply_dropped_after_the_work_is_sent_again_and_the_first_answer_kept(
    sandbox: Sandbox, outbox: Outbox, ledger: Ledger, tmp_path: Path
) -> None:
    sandbox.faults = Faults(drop_rate=1.0)  # every reply lost, the work committed
    with pytest.raises(PlatformUnavailable):
        register(outbox, sandbox, "SBX-DROP-1")
    (pending,) = outbox.pending()
    assert pending.attempts == 1 and "SBX-DROP-1" in devices(sandbox, tmp_path)  # the platform did it
    sandbox.faults = Faults()
    assert outbox.resume() == ResumeReport(1, 0, 0)
    done = ledger.platform_call(pending.request_no)
    assert done is not None and done.state == "done" and done.reply is not None and done.attempts == 2
    # the first answer, replayed for the same request number: a second registration would say already-registered
    assert done.reply["results"] == [{"serial": "SBX-DROP-1", "status": "registered"}]


def test_a_flaky_platform_delays_units_but_never_loses_or_doubles_one(
    sandbox: Sandbox, outbox: Outbox, ledger: Ledger, sandbox_db: Path, tmp_path: Path
) -> None:
    serials = [f"SBX-FLAKY-{n}" for n in range(5)]
    sandbox.faults = Faults(error_rate=0.3, drop_rate=0.2, seed=9)
    for serial in serials:
        for step in (register, bind, activate):
            try:
                step(outbox, sandbox, serial)
            except PlatformUnavailable:  # what 'naiad register resume' is for
                for _ in range(10):
                    if outbox.resume().pending == 0:
                        break
    sandbox.faults = Faults()
    seen = devices(sandbox, tmp_path)
    assert outbox.pending() == [] and sorted(s for s in seen if s.startswith("SBX-FLAKY-")) == serials
    assert all(seen[s]["activated"] for s in serials)
    assert all((seen[s]["merchant_id"], seen[s]["store_id"]) == (MERCHANT, STORE) for s in serials)
    # Never doubled: binding and activating again leave no trace in /sandbox/devices, so count the calls. Each
    # unit's bind and activation was written once and done once, and the platform did exactly those numbers.
    done: dict[str, str] = {}
    for serial in serials:
        entries = ledger.audit_entries(subject=f"device:{serial}")
        for action in ("platform.call.queued", "platform.call.done"):
            methods = Counter(e.details["method"] for e in entries if e.action == action)
            assert methods == {Method.DEVICE_BIND: 1, Method.DEVICE_ACTIVATE: 1}
        done |= {e.details["request_no"]: e.details["method"] for e in entries if e.action == "platform.call.done"}
    engine = create_engine(f"sqlite:///{sandbox_db}")
    with Session(engine) as platform:
        kept = platform.execute(
            select(Idempotency.request_no, Idempotency.method).where(
                Idempotency.method.in_([Method.DEVICE_BIND, Method.DEVICE_ACTIVATE]),
                Idempotency.response.contains("SBX-FLAKY-"),
            )
        )
        assert {number: method for number, method in kept} == done  # one number per unit and method, no other
    engine.dispose()
