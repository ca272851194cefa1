"""A station takes over a dead station's unit mid-way through a once-only step: the pending platform call is sent
again with its own request number (never a second call), and a key ID allocated and never recorded is settled
before any new key, whichever BDK the new run injects."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from facebench import INSTALLER, FaceBench
from helpers import execute_sql
from keybench import BDK, BDK_LABEL, COMPONENTS, CUSTODIANS, OPERATOR, KeyBench, software_store

from console.composition import Wiring
from enrollment.gateway import Method
from enrollment.sandbox.server import Faults
from keys import dukpt
from keys.ca import ProvisioningCA
from keys.kcv import aes_cmac_kcv
from provisioning.bulk_steps import InjectStep
from provisioning.injection import AllocationBdkNotInStore
from provisioning.ledger import Ledger
from provisioning.onsite_steps import BindStep
from provisioning.outbox import Outbox
from provisioning.pipeline import run_digest, run_recipe
from provisioning.recipes import Recipe, parse_recipe
from provisioning.station import Station
from provisioning.steps import Resources, UnitJob
from terminal.errors import RequestTimeout
from terminal.secure_element import SecureElement

OTHER_LABEL = "bdk-2027"
OTHER_COMPONENTS = (bytes.fromhex("1F" * 16), bytes.fromhex("E2" * 16))
OTHER_BDK = bytes(a ^ b for a, b in zip(*OTHER_COMPONENTS, strict=True))


def _recipe(text: str) -> Recipe:
    return parse_recipe(text, "takeover.toml", Path("."))


def _age_heartbeats(url: str) -> None:
    execute_sql(url, "UPDATE unit_runs SET heartbeat = datetime(heartbeat, '-3600 seconds')")


# -- a pending platform call ------------------------------------------------------------------------


def test_a_bind_a_dead_station_left_pending_reaches_the_platform_under_one_request_number(tmp_path: Path) -> None:
    recipe = _recipe('name = "bind-only"\n[[step]]\nname = "bind"\n')
    with FaceBench.open(tmp_path / "face") as bench:
        url = f"sqlite:///{tmp_path / 'face' / 'ledger.sqlite'}"
        res_a = Resources(
            station=bench.station,
            session=INSTALLER,
            outbox=bench.outbox,
            supplier_id=bench.config.supplier_id,
            merchant=bench.config.test_merchant,
        )
        ledger_a = bench.station.ledger.as_operator(INSTALLER.operator)
        # station A claims the unit and starts the bind; the platform binds it but the reply is lost; A dies
        run = ledger_a.claim_unit_run(bench.serial, recipe.name, run_digest(recipe, res_a), "batch-a").run
        ledger_a.start_unit_step(run.id, 0, "bind")
        bench.sandbox.faults = Faults(drop_rate=1.0)
        try:
            assert not BindStep({}, res_a).run(UnitJob(bench.serial, res_a, run.id)).ok
        finally:
            bench.sandbox.faults = Faults()
        [pending] = ledger_a.pending_platform_calls(Method.DEVICE_BIND, bench.serial)
        _age_heartbeats(url)  # A's lease runs out

        with Ledger.open(url, station="bench-2") as ledger_b:
            station_b = Station(Wiring(bench.sim_dir).discovery(), ledger=ledger_b)
            try:
                res_b = dataclasses.replace(res_a, station=station_b, outbox=Outbox(ledger_b, bench.client))
                batch = run_recipe(recipe, [bench.serial], res_b)
                (unit,) = batch.units
                assert unit.result == "succeeded", unit.as_dict()
                assert unit.steps[0].already_done and unit.steps[0].data["request_no"] == pending.request_no
                assert ledger_b.pending_platform_calls() == [] and ledger_a.pending_platform_calls() == []
                entries = ledger_b.audit_entries(f"device:{bench.serial}")
                assert any(e.action == "platform.call.adopted" for e in entries)
                assert ledger_b.verify().ok
            finally:
                station_b.close()
        with sqlite3.connect(tmp_path / "face" / "sandbox.sqlite") as platform:
            numbers = [n for (n,) in platform.execute("SELECT request_no FROM idempotency WHERE method LIKE '%bind%'")]
        assert numbers == [pending.request_no]  # the platform saw the bind once, under A's number


# -- an allocated Initial Key ID -----------------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[KeyBench, str, list[str]]]:
    """A key bench over two fresh units (one simulator), with a second BDK registered and in the store."""
    from simulator import launcher

    launcher.start_detached(tmp_path / "sim", 2, ["df2"])
    try:
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        bench = KeyBench.open(tmp_path / "sim", url, software_store(tmp_path))
        serials = [d.serial for d in bench.station.devices() if d.serial]
        bench.authorise(serials)
        bench.ledger.as_operator(CUSTODIANS[0]).register_bdk(
            OTHER_LABEL, bytes.fromhex("0B1C2D3E"), aes_cmac_kcv(OTHER_BDK), "ceremony", CUSTODIANS
        )
        bench.store.combine_components(OTHER_LABEL, list(OTHER_COMPONENTS))
        try:
            yield bench, url, serials
        finally:
            bench.close()
    finally:
        launcher.stop(tmp_path / "sim")


def _lose_the_commit_and_the_status(monkeypatch: pytest.MonkeyPatch, serial: str) -> None:
    """The unit stores the key, the commit's reply is lost and its status cannot be read: the station stops
    with the Initial Key ID allocated and never recorded."""
    commit = SecureElement.commit_key

    def lost(self: SecureElement, *args: Any) -> Any:
        commit(self, *args)
        raise RequestTimeout(serial=serial, path="-", request="se_key_commit")

    def unreadable(self: SecureElement) -> Any:
        raise RequestTimeout(serial=serial, path="-", request="se_key_status")

    monkeypatch.setattr(SecureElement, "commit_key", lost)
    monkeypatch.setattr(SecureElement, "status", unreadable)


def _keys_in(bench: KeyBench, serial: str) -> list[Any]:
    with bench.station.connect(serial) as client:
        return list(SecureElement(client).status().keys)


def _cut_injection(bench: KeyBench, serial: str, monkeypatch: pytest.MonkeyPatch, run_id: int = 1) -> bytes:
    res = Resources(station=bench.station, session=OPERATOR, store=bench.store, roots=bench.roots)
    with monkeypatch.context() as cut:
        _lose_the_commit_and_the_status(cut, serial)
        assert not InjectStep({"bdk": BDK_LABEL}, res).run(UnitJob(serial, res, run_id)).ok
    [allocation] = bench.ledger.allocations(serial)
    assert allocation.state == "allocated" and len(_keys_in(bench, serial)) == 1
    return allocation.initial_key_id


def test_a_station_taking_over_with_another_bdk_adopts_the_key_the_unit_holds(
    keyed: tuple[KeyBench, str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bench, url, (serial, _other) = keyed
    first = _recipe(f'name = "keying"\n[[step]]\nname = "inject"\nbdk = "{BDK_LABEL}"\n')
    res = Resources(station=bench.station, session=OPERATOR, store=bench.store, roots=bench.roots)
    ledger_a = bench.ledger.as_operator(OPERATOR.operator)
    run = ledger_a.claim_unit_run(serial, first.name, run_digest(first, res), "batch-a").run
    ledger_a.start_unit_step(run.id, 0, "inject")
    cut = _cut_injection(bench, serial, monkeypatch, run.id)  # then station A is killed
    _age_heartbeats(url)

    second = _recipe(f'name = "keying"\n[[step]]\nname = "inject"\nbdk = "{OTHER_LABEL}"\n')  # another digest
    with Ledger.open(url, station="bench-2") as ledger_b:
        station_b = Station(Wiring(tmp_path / "sim").discovery(), ledger=ledger_b)
        try:
            batch = run_recipe(second, [serial], dataclasses.replace(res, station=station_b))
        finally:
            station_b.close()
    (unit,) = batch.units
    assert unit.result == "succeeded", unit.as_dict()
    (inject,) = unit.steps
    assert inject.already_done and inject.data["initial_key_id"] == cut.hex().upper()
    assert inject.data["bdk_label"] == BDK_LABEL  # the key the unit holds, not a second one under the new BDK
    assert [a.state for a in bench.ledger.allocations(serial)] == ["injected"]
    assert len(_keys_in(bench, serial)) == 1
    assert batch.ok and bench.ledger.verify().ok
    text = str(batch.as_dict())
    for secret in (BDK, OTHER_BDK, *COMPONENTS, dukpt.initial_key(BDK, cut)):
        assert secret.hex() not in text.lower()


def test_a_held_key_of_a_bdk_the_store_lacks_is_refused_naming_the_id(
    keyed: tuple[KeyBench, str, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bench, _url, (_serial, serial) = keyed
    cut = _cut_injection(bench, serial, monkeypatch)
    store = software_store(tmp_path / "other-store")
    try:
        store.combine_components(OTHER_LABEL, list(OTHER_COMPONENTS))  # BDK B only, not the unit's BDK A
        ProvisioningCA.ensure(store)
        res = Resources(station=bench.station, session=OPERATOR, store=store, roots=bench.roots)
        step = InjectStep({"bdk": OTHER_LABEL}, res)
        unit = UnitJob(serial, res, 2)
        with pytest.raises(AllocationBdkNotInStore) as refused:
            step.done_before(unit)
        outcome = step.run(unit)
    finally:
        store.close()
    assert not outcome.ok and isinstance(outcome.error, AllocationBdkNotInStore)
    for shown in (str(refused.value), outcome.detail):
        assert cut.hex().upper() in shown and BDK_LABEL in shown
        assert dukpt.initial_key(BDK, cut).hex() not in shown.lower() and BDK.hex() not in shown.lower()
    assert [a.state for a in bench.ledger.allocations(serial)] == ["allocated"]  # nothing changed
    assert len(_keys_in(bench, serial)) == 1  # nothing injected
