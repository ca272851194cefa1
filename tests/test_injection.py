"""Key injection end to end on simulated units: what the issue's "done when" asks, and each attack refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SimHandle
from keybench import BDK, BDK_LABEL, COMPONENTS, OPERATOR, KeyBench, software_store
from test_keys_store import _pkcs11, softhsm_token  # noqa: F401  (softhsm_token: a fixture)

from keys import dukpt
from keys.kcv import aes_cmac_kcv
from keys.store import KeyHandle, KeyStore
from keys.tr31 import Header
from provisioning.injection import CommitUnconfirmed, InjectPhase, KcvMismatch
from provisioning.ledger.errors import UnitNotAuthorised
from provisioning.operators import NotLoggedIn, OperatorSession, RoleRequired
from terminal.errors import RequestTimeout
from terminal.events import PhaseStarted, Recorder, StepFinished
from terminal.secure_element import SecureElement


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Any]:
    opened: list[KeyBench] = []

    def start(sim: SimHandle, store: KeyStore | None = None) -> KeyBench:
        made = KeyBench.open(
            sim.state_dir, f"sqlite:///{tmp_path / 'ledger.sqlite'}", store or software_store(tmp_path)
        )
        opened.append(made)
        return made

    yield start
    for made in opened:
        made.close()


@pytest.fixture
def one(sim: SimHandle, bench: Any) -> tuple[KeyBench, str]:
    """A bench with its one simulated unit authorised."""
    keys: KeyBench = bench(sim)
    [serial] = sim.serials()
    keys.authorise([serial])
    return keys, serial


def _unit_keys(bench: KeyBench, serial: str) -> Any:
    with bench.station.connect(serial) as client:
        return SecureElement(client).status()


def _expected_kcv(initial_key_id: bytes) -> bytes:
    return aes_cmac_kcv(dukpt.initial_key(BDK, initial_key_id))


def test_twenty_units_get_distinct_ids_and_kcvs_that_match_the_key_store(sim_factory: Any, bench: Any) -> None:
    sim = sim_factory(terminals=20)
    keys: KeyBench = bench(sim)
    serials = sim.serials()
    keys.authorise(serials)
    recorder = Recorder()
    run = keys.inject(serials, recorder)

    assert run.ok, [r.as_dict() for r in run.results if not r.ok]
    ids = [r.initial_key_id for r in run.results]
    kcvs = [r.kcv for r in run.results]
    assert len(set(ids)) == 20 and len(set(kcvs)) == 20
    for result in run.results:
        assert result.initial_key_id is not None and result.initial_key_id[:4] == bytes.fromhex("0A1B2C3D")
        assert result.kcv == _expected_kcv(result.initial_key_id)  # the BDK's own derivation, outside the store
        [slot] = _unit_keys(keys, result.serial).keys
        assert (slot.initial_key_id, slot.kcv) == (result.initial_key_id, result.kcv)
        assert slot.ksn == result.initial_key_id + bytes(4)
        [record] = keys.ledger.injections(result.serial)
        assert (record.initial_key_id, record.kcv) == (result.initial_key_id, result.kcv)
        assert record.operator == "otto" and record.certificate_serial == result.certificate_serial.upper()
    assert {e.unit for e in recorder.of(StepFinished)} == set(serials)
    assert {e.phase for e in recorder.of(PhaseStarted)} == set(InjectPhase)
    assert not run.reconciliation.refused
    assert keys.ledger.verify().ok


def test_a_unit_not_in_the_inventory_is_refused_and_gets_nothing(sim_factory: Any, bench: Any) -> None:
    sim = sim_factory(terminals=2)
    keys: KeyBench = bench(sim)
    allowed, stranger = sim.serials()
    keys.authorise([allowed])
    run = keys.inject([allowed, stranger])
    by_serial = {r.serial: r for r in run.results}
    assert by_serial[allowed].ok
    assert isinstance(by_serial[stranger].error, UnitNotAuthorised)
    assert _unit_keys(keys, stranger).state == "factory"  # not even an identity certificate
    assert stranger in run.reconciliation.refused
    [audited] = [e for e in keys.ledger.audit_entries() if e.action == "keys.reconciled"]
    assert audited.details["refused"] == [stranger] and audited.operator == "otto"
    [noted] = [e for e in keys.ledger.audit_entries() if e.action == "keys.unit_refused"]
    assert noted.subject == f"device:{stranger}" and stranger in keys.ledger.reconcile().refused
    assert keys.ledger.injections(stranger) == []


@pytest.mark.parametrize("session", [None, OperatorSession("ivy", "installer"), OperatorSession("cara", "custodian")])
def test_only_the_operator_role_injects(sim: SimHandle, bench: Any, session: OperatorSession | None) -> None:
    keys: KeyBench = bench(sim)
    keys.authorise(sim.serials())
    with pytest.raises(NotLoggedIn if session is None else RoleRequired):
        keys.inject(sim.serials(), session=session)
    assert _unit_keys(keys, sim.serials()[0]).state == "factory"
    assert keys.ledger.injections() == []


@pytest.mark.parametrize("fault", ["counterfeit", "broken_chain"])
def test_a_unit_with_an_untrusted_chain_gets_nothing(sim: SimHandle, one: tuple[KeyBench, str], fault: str) -> None:
    keys, serial = one
    sim.call("faults", serial=serial, **{fault: True})
    [result] = keys.inject([serial]).results
    assert not result.ok and type(result.error).__name__.startswith("Attestation")
    assert _unit_keys(keys, serial).state == "factory"
    assert keys.ledger.injections(serial) == []


def _sabotage(store: KeyStore, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``store`` lie one way: a changed key block, or another KCV than the key's."""
    wrap, kcv_of = store.wrap_tr31, store.initial_key_kcv

    def tampered(kbpk: bytes, header: Header, handle: KeyHandle) -> str:
        block = wrap(kbpk, header, handle)
        i = len(block) - 20
        return block[:i] + ("0" if block[i] != "0" else "1") + block[i + 1 :]

    def wrong_kcv(handle: KeyHandle) -> bytes:
        kcv = kcv_of(handle)
        return bytes([kcv[0] ^ 1]) + kcv[1:]

    if how == "tamper":
        monkeypatch.setattr(store, "wrap_tr31", tampered)
    else:
        monkeypatch.setattr(store, "initial_key_kcv", wrong_kcv)


@pytest.mark.parametrize("sabotage", ["tamper", "wrong_kcv"])
def test_a_tampered_block_or_a_wrong_kcv_leaves_the_old_keys_and_burns_the_id(
    one: tuple[KeyBench, str], sabotage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, serial = one
    [first] = keys.inject([serial]).results  # the unit's current key set
    assert first.ok
    with monkeypatch.context() as patched:
        _sabotage(keys.store, sabotage, patched)
        [failed] = keys.inject([serial]).results
    assert not failed.ok
    if sabotage == "wrong_kcv":
        assert isinstance(failed.error, KcvMismatch)
    [slot] = _unit_keys(keys, serial).keys
    assert (slot.initial_key_id, slot.kcv) == (first.initial_key_id, first.kcv)  # the old set, whole
    assert [r.initial_key_id for r in keys.ledger.injections(serial)] == [first.initial_key_id]
    [retried] = keys.inject([serial]).results
    assert retried.ok and retried.initial_key_id is not None and first.initial_key_id is not None
    # the failed attempt's ID was burnt: the retry skips it
    assert int.from_bytes(retried.initial_key_id[4:]) == int.from_bytes(first.initial_key_id[4:]) + 2
    assert keys.ledger.verify().ok


def test_injection_on_softhsm(sim: SimHandle, bench: Any, softhsm_token: str) -> None:  # noqa: F811
    keys: KeyBench = bench(sim, _pkcs11(softhsm_token))
    keys.authorise(sim.serials())
    [result] = keys.inject(sim.serials()).results
    assert result.ok and result.initial_key_id is not None
    assert result.kcv == _expected_kcv(result.initial_key_id)


def test_a_bdk_the_ledger_does_not_know_is_refused_before_any_unit(sim: SimHandle, bench: Any) -> None:
    from provisioning.injection import BdkNotRegistered, inject_units

    keys: KeyBench = bench(sim)
    with pytest.raises(BdkNotRegistered):
        inject_units(keys.station, keys.store, OperatorSession("otto", "operator"), "other", keys.roots, sim.serials())
    assert BDK_LABEL in keys.store.labels()


def _lose_commit_reply(monkeypatch: pytest.MonkeyPatch, *, committed: bool) -> None:
    """The unit's answer to SE_KEY_COMMIT never arrives: after storing the key, or before."""
    commit = SecureElement.commit_key

    def lost(self: SecureElement, *args: Any) -> Any:
        if committed:
            commit(self, *args)
        raise RequestTimeout(serial=self.client.unit_name, path="-", request="se_key_commit")

    monkeypatch.setattr(SecureElement, "commit_key", lost)


def test_a_lost_commit_reply_is_settled_by_the_units_key_status(
    one: tuple[KeyBench, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, serial = one
    _lose_commit_reply(monkeypatch, committed=True)
    [result] = keys.inject([serial]).results
    assert result.ok and result.initial_key_id is not None  # the unit stored it: so does the ledger
    [slot] = _unit_keys(keys, serial).keys
    [record] = keys.ledger.injections(serial)
    assert slot.initial_key_id == record.initial_key_id == result.initial_key_id


def test_a_lost_commit_reply_of_a_unit_that_kept_its_old_keys_burns_the_id(
    one: tuple[KeyBench, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, serial = one
    _lose_commit_reply(monkeypatch, committed=False)
    [result] = keys.inject([serial]).results
    assert not result.ok and isinstance(result.error, RequestTimeout)
    assert _unit_keys(keys, serial).keys == [] and keys.ledger.injections(serial) == []
    [allocation] = keys.ledger.allocations(serial)
    assert allocation.state == "failed"


def test_an_unreadable_unit_after_a_lost_commit_reply_leaves_the_id_unconfirmed(
    one: tuple[KeyBench, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, serial = one
    _lose_commit_reply(monkeypatch, committed=True)

    def unreadable(self: SecureElement) -> Any:
        raise RequestTimeout(serial=serial, path="-", request="se_key_status")

    monkeypatch.setattr(SecureElement, "status", unreadable)
    [result] = keys.inject([serial]).results
    assert isinstance(result.error, CommitUnconfirmed)
    [allocation] = keys.ledger.allocations(serial)
    assert allocation.state == "allocated"  # neither burnt nor recorded: the officer must look at the unit
    assert result.error.remedy_text is not None and f"naiad keys status {serial}" in result.error.remedy_text


def test_a_refused_unit_is_on_record_with_its_error(sim: SimHandle, one: tuple[KeyBench, str]) -> None:
    keys, serial = one
    sim.call("faults", serial=serial, counterfeit=True)
    keys.inject([serial])
    [operation] = keys.ledger.operations(serial)
    assert operation.kind == "inject" and operation.status == "failed"
    assert operation.result is not None and "AttestationChainUnknown" in operation.result["error"]["type"]


def test_injection_needs_a_provisioning_ca_made_by_ceremony(sim: SimHandle, tmp_path: Path) -> None:
    from keybench import load_bdk, prepare_ledger

    from console.composition import Wiring
    from provisioning.injection import ProvisioningCANotMade, inject_units
    from provisioning.ledger import Ledger
    from provisioning.station import Station

    store = software_store(tmp_path)
    store.combine_components(BDK_LABEL, list(COMPONENTS))  # the BDK, but no CA
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1")
    prepare_ledger(ledger)
    wiring = Wiring(sim.state_dir)
    with Station(wiring.discovery(), ledger=ledger) as station, pytest.raises(ProvisioningCANotMade):
        inject_units(station, store, OPERATOR, BDK_LABEL, wiring.manufacturer_roots(), sim.serials())
    assert store.signing_labels() == []  # not made on the fly
    load_bdk(store)
    assert store.signing_labels() != []
    store.close()
