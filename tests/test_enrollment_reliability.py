"""Issue 9's reliability tests: a flaky platform delays enrollment but never loses or doubles it, and a reply
the platform did not sign is never taken as done.

Through the sandbox's fault knobs (30 % HTTP 503 before any work, 20 % of replies dropped after the work was
committed, 2 s latency spikes), 50 units are registered in the inventory and brought live (bound, activated,
enrolled), four at once, by the real station: key store, client, outbox in the ledger, flows.  The sandbox then
holds exactly 50 inventory records and 50 bindings, the ledger one done call per unit and step, and the outbox
is empty.  The faults are seeded, so a run is repeatable in what it draws (threads may take the draws in
another order).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from platformbench import FAULTS, MERCHANT, OPERATOR, PlatformBench, units

from enrollment.errors import PlatformSignatureInvalid
from enrollment.gateway import Method
from enrollment.sandbox.server import Faults, Sandbox
from provisioning.outbox import Outbox
from provisioning.registration import bring_live, register_inventory

UNITS = 50
STEPS = (Method.DEVICE_BIND, Method.DEVICE_ACTIVATE, Method.SUBSIDY_ENROLL)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(tmp_path_factory.mktemp("sandbox") / "platform.db") as running:
        yield running


@pytest.fixture
def station(sandbox: Sandbox, tmp_path: Path) -> Iterator[PlatformBench]:
    # attempts: the client gives up on a call now and then (0.44 ** 5: 2 % of calls), so the outbox's resending
    # is exercised too; backoff in milliseconds keeps the test short
    bench = PlatformBench(sandbox, tmp_path, attempts=5, backoff_seconds=0.005, max_backoff_seconds=0.05)
    yield bench
    sandbox.faults = Faults()
    bench.close()


def test_fifty_units_through_the_fault_knobs_end_registered_and_bound_exactly_once(
    sandbox: Sandbox, station: PlatformBench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="enrollment.client")
    batch = units("REL", UNITS)
    serials = {unit.serial for unit in batch}
    sandbox.faults = FAULTS
    station.enroll(batch, workers=4)
    sandbox.faults = Faults()

    ours = [d for d in station.devices() if d["serial"] in serials]
    assert len(ours) == UNITS and len({d["serial"] for d in ours}) == UNITS  # 50 inventory records, no duplicate
    assert all(d["inventory_owner"] == station.config.supplier_id for d in ours)
    bound = [d for d in ours if (d["merchant_id"], d["store_id"]) == (MERCHANT.merchant_id, MERCHANT.store_id)]
    assert len(bound) == UNITS  # 50 bindings
    assert all(d["activated"] and d["subsidy_program"] for d in ours)
    assert station.outbox.pending() == []
    for serial in serials:  # the station's side: each step done by exactly one call, never twice
        done = Counter(
            entry.details["method"]
            for entry in station.ledger.audit_entries(subject=f"device:{serial}")
            if entry.action == "platform.call.done"
        )
        assert done == Counter({str(method): 1 for method in STEPS}), serial
    # the faults did happen (else this proves nothing): the client met 503s and replies dropped after commit
    retried = " ".join(r.getMessage() for r in caplog.records if r.name == "enrollment.client")
    assert "server error" in retried and "dropped" in retried


def test_a_reply_with_a_bad_platform_signature_is_refused_and_its_call_stays_pending(
    sandbox: Sandbox, station: PlatformBench
) -> None:
    (unit,) = units("SIG", 1)
    supplier = station.config.supplier_id
    assert register_inventory(station.outbox, supplier, [unit], session=OPERATOR)[0].ok
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    wrong_key = impostor.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    misled = station.platform_client(replace(station.config, platform_public_key=wrong_key.decode()))
    bind = {"serial": unit.serial, "supplier_id": supplier, **MERCHANT.__dict__}
    try:
        with pytest.raises(PlatformSignatureInvalid):
            Outbox(station.ledger, misled).call(Method.DEVICE_BIND, bind, serial=unit.serial)
    finally:
        misled.close()
    (pending,) = station.outbox.pending()
    assert (pending.method, pending.serial, pending.state) == (Method.DEVICE_BIND, unit.serial, "pending")
    assert station.outbox.done(Method.DEVICE_BIND, unit.serial) is None
    # the station that trusts the platform's real key sends that same call again and goes on: done once
    results = bring_live(station.outbox, supplier, unit.serial, MERCHANT, session=OPERATOR)
    assert [(r.step, r.status) for r in results] == [("bind", "done"), ("activate", "done"), ("subsidy-enroll", "done")]
    assert station.outbox.pending() == []
    assert station.outbox.done(Method.DEVICE_BIND, unit.serial).request_no == pending.request_no  # type: ignore[union-attr]
