"""The simulated secure element end to end: a real unit over its pty, ManagementClient + SecureElement.

Every attack ends with a ``refused`` error and nothing stored; the station side is tests/se_station.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from se_station import Station, TestCA, check_attestation, key_block, stranger_csr

from keys.kcv import aes_cmac_kcv
from simulator import launcher
from simulator.manufacturer import roots_path
from terminal.client import ManagementClient
from terminal.errors import RemoteError
from terminal.protocol import ErrorCode, SecureElementState
from terminal.secure_element import SecureElement

IKID = bytes.fromhex("0123456789ABCDEF")


@contextmanager
def station(sim: Any, ca: TestCA | None = None) -> Iterator[Station]:
    serial = sim.serials()[0]
    with ManagementClient(f"serial:{sim.terminal(serial)['pty']}", expected_serial=serial) as client:
        yield Station(SecureElement(client), serial, sim.state_dir, ca or TestCA())


@contextmanager
def refused() -> Iterator[pytest.ExceptionInfo[RemoteError]]:
    """The block must end in the unit's ``refused`` error reply."""
    with pytest.raises(RemoteError) as caught:
        yield caught
    assert caught.value.params["code"] == ErrorCode.REFUSED, caught.value


def unit_dir(sim: Any) -> Path:
    return Path(sim.state_dir) / "units" / str(sim.serials()[0])


def test_a_unit_is_injected_the_stations_way(sim: Any) -> None:
    key = os.urandom(16)
    with station(sim) as st:
        assert st.se.status().state == SecureElementState.FACTORY
        cert_serial = st.certify()
        assert st.se.status().state == SecureElementState.CERTIFIED
        session = st.open_session()
        loaded = st.load(session, key_block(session.kbpk, IKID, key))
        assert (loaded.initial_key_id, loaded.ksn, loaded.kcv) == (IKID, IKID + bytes(4), aes_cmac_kcv(key))
        assert st.se.status().keys == []  # pending until the commit
        assert st.commit(session, loaded.kcv) == loaded
        status = st.se.status()
        info = st.se.client.info()
    assert status.state == SecureElementState.KEYED == info["secure_element"]["state"]
    assert st.certificate is not None and status.identity_serial_number == cert_serial
    assert cert_serial == format(st.certificate.serial_number, "x")
    [slot] = status.keys
    assert (slot.initial_key_id, slot.ksn, slot.kcv) == (IKID, loaded.ksn, loaded.kcv) and slot.loaded_at > 0
    log = (unit_dir(sim) / "logs" / "system.log").read_text(encoding="utf-8")
    for event in ("identity key generated", "certificate installed", "key session opened", "key set committed"):
        assert event in log
    assert f"key loaded pending (KSN {loaded.ksn.hex().upper()})" in log
    for secret in (key, session.kbpk):  # no file of the unit holds a clear key, the log included
        for path in unit_dir(sim).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret not in data and secret.hex().encode() not in data.lower()


def test_a_replayed_key_load_is_refused_and_nothing_is_stored(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        session = st.open_session()
        block = key_block(session.kbpk, IKID, os.urandom(16))
        loaded = st.load(session, block)
        with refused():
            st.load(session, block)
        with refused():  # the replay also ended the load it copied
            st.commit(session, loaded.kcv)
        assert st.se.status().keys == []


def test_a_load_signed_by_another_ca_is_refused(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        session = st.open_session()
        with refused():
            st.load(session, key_block(session.kbpk, IKID, os.urandom(16)), signer=TestCA("Rogue CA"))
        assert st.se.status().state == SecureElementState.CERTIFIED


def test_a_tampered_key_block_is_refused(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        session = st.open_session()
        block = key_block(session.kbpk, IKID, os.urandom(16))
        tampered = block[:-40] + ("0" if block[-40] != "0" else "1") + block[-39:]  # key data, signed anew
        with refused() as caught:
            st.load(session, tampered)
        assert "KeyBlockAuthenticationFailed" in caught.value.params["detail"]
        assert st.se.status().keys == []


def test_a_key_block_under_another_kbpk_is_refused(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        session = st.open_session()
        with refused() as caught:
            st.load(session, key_block(os.urandom(32), IKID, os.urandom(16)))
        assert "KeyBlockAuthenticationFailed" in caught.value.params["detail"]
        assert st.se.status().keys == []


def test_a_commit_with_a_wrong_kcv_is_refused_and_nothing_is_stored(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        session = st.open_session()
        loaded = st.load(session, key_block(session.kbpk, IKID, os.urandom(16)))
        wrong = bytes([loaded.kcv[0] ^ 1]) + loaded.kcv[1:]
        with refused():
            st.commit(session, wrong)
        with refused():  # the pending key was dropped with the refusal
            st.commit(session, loaded.kcv)
        status = st.se.status()
    assert status.state == SecureElementState.CERTIFIED and status.keys == []


def test_a_power_cut_between_load_and_commit_leaves_the_old_key_set(sim: Any) -> None:
    serial = sim.serials()[0]
    ca = TestCA()
    with station(sim, ca) as st:
        st.certify()
        old = st.inject(IKID, os.urandom(16))
        session = st.open_session()
        new = st.load(session, key_block(session.kbpk, bytes.fromhex("0123456789ABCDF0"), os.urandom(16)))
        assert new.kcv != old.kcv
        sim.call("power_cut", serial=serial)
    sim.call("power_on", serial=serial)
    with station(sim, ca) as st:
        with refused():
            st.commit(session, new.kcv)
        [slot] = st.se.status().keys
    assert (slot.initial_key_id, slot.kcv) == (old.initial_key_id, old.kcv)


def test_the_secure_element_survives_a_simulator_restart(sim_factory: Any) -> None:
    sim = sim_factory(terminals=1)
    ca = TestCA()
    with station(sim, ca) as st:
        cert_serial = st.certify()
        loaded = st.inject(IKID, os.urandom(32))
        chain = st.se.attestation_chain()
    launcher.stop(sim.state_dir)
    sim = sim_factory(terminals=1)
    with station(sim, ca) as st:
        status = st.se.status()
        assert st.se.attestation_chain() == chain
    assert status.state == SecureElementState.KEYED and status.identity_serial_number == cert_serial
    assert [(k.initial_key_id, k.kcv) for k in status.keys] == [(IKID, loaded.kcv)]


def test_zeroise_wipes_identity_certificate_and_keys_but_not_attestation(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        st.inject(IKID, os.urandom(16))
        chain = st.se.attestation_chain()
        storage_key = (unit_dir(sim) / "se_storage.key").read_bytes()
        st.zeroise()
        assert (unit_dir(sim) / "se_storage.key").read_bytes() != storage_key  # old copies cannot be unsealed
        status = st.se.status()
        assert (status.state, status.identity_serial_number, status.keys) == (SecureElementState.FACTORY, None, [])
        assert st.se.attestation_chain() == chain
        with refused():  # no identity left to open a session with
            st.open_session()
        assert st.se.client.info()["secure_element"]["state"] == SecureElementState.FACTORY
        assert sim.terminal(st.serial)["secure_element"] == SecureElementState.FACTORY
        st.ca = TestCA("Second CA")  # the pin went with the rest: another CA may provision it now
        st.certify()
    assert "secure element: zeroised" in (unit_dir(sim) / "logs" / "system.log").read_text(encoding="utf-8")


def test_an_unsigned_zeroise_of_a_keyed_unit_is_refused_and_the_keys_remain(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        loaded = st.inject(IKID, os.urandom(16))
        with refused() as caught:  # the serial alone: anyone on the link knows it from HELLO
            st.se.zeroise(st.serial)
        assert "pinned" in caught.value.params["detail"]
        session = st.open_session()
        with refused():  # signed by another CA than the pinned one
            st.se.zeroise(st.serial, session.reply.session, st.zeroise_signature(session, TestCA("Rogue CA")))
        with refused():  # that try ended the session: the right signature comes too late
            st.se.zeroise(st.serial, session.reply.session, st.zeroise_signature(session))
        status = st.se.status()
    assert status.state == SecureElementState.KEYED
    assert [(k.initial_key_id, k.kcv) for k in status.keys] == [(IKID, loaded.kcv)]


def test_a_replayed_zeroise_is_refused(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        st.inject(IKID, os.urandom(16))
        session = st.open_session()
        signature = st.zeroise_signature(session)
        st.se.zeroise(st.serial, session.reply.session, signature)
        assert st.se.status().state == SecureElementState.FACTORY
        st.certify()  # provisioned again by the same CA
        loaded = st.inject(IKID, os.urandom(16))
        with refused():
            st.se.zeroise(st.serial, session.reply.session, signature)
        assert [k.kcv for k in st.se.status().keys] == [loaded.kcv]


def test_a_unit_with_no_pinned_ca_is_zeroised_by_its_serial_alone(sim: Any) -> None:
    with station(sim) as st:
        st.se.zeroise(st.serial)  # factory: nothing to protect
        st.se.new_identity(os.urandom(32))
        assert st.se.status().state == SecureElementState.IDENTITY
        st.se.zeroise(st.serial)
        assert st.se.status().state == SecureElementState.FACTORY


def test_zeroise_naming_another_serial_is_refused(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        with refused():
            st.se.zeroise("DF2DEADBEEF")
        assert st.se.status().state == SecureElementState.CERTIFIED


def test_a_certificate_from_another_ca_than_the_pinned_one_is_refused(sim: Any) -> None:
    with station(sim) as st:
        st.certify()
        made = st.se.new_identity(os.urandom(32))
        rogue = TestCA("Rogue CA")
        der = rogue.issue(made.csr).public_bytes(serialization.Encoding.DER)
        with refused():
            st.se.install_certificate(der, rogue.certificate)
        not_mine = st.ca.issue(stranger_csr(st.serial)).public_bytes(serialization.Encoding.DER)
        with refused():  # a certificate for some other key
            st.se.install_certificate(not_mine, st.ca.certificate)
        assert st.se.status().state == SecureElementState.IDENTITY


def test_the_counterfeit_and_broken_chain_faults_change_the_chain_served(sim: Any) -> None:
    serial = sim.serials()[0]
    root = x509.load_pem_x509_certificate(roots_path(sim.state_dir).read_bytes())
    with station(sim) as st:
        genuine = st.se.attestation_chain()
        check_attestation(genuine, sim.state_dir, serial)
        sim.call("faults", serial=serial, counterfeit=True)
        counterfeit = st.se.attestation_chain()
        assert x509.load_der_x509_certificate(counterfeit[-1]) != root
        with pytest.raises(ValueError):  # issued by a CA the station does not know
            check_attestation(counterfeit, sim.state_dir, serial)
        sim.call("faults", serial=serial, counterfeit=False, broken_chain=True)
        broken = st.se.attestation_chain()
        assert x509.load_der_x509_certificate(broken[-1]) == root
        with pytest.raises(InvalidSignature):  # names the real CA, whose key did not sign it
            check_attestation(broken, sim.state_dir, serial)
        sim.call("faults", serial=serial, broken_chain=False)
        assert st.se.attestation_chain() == genuine


def test_naiad_sim_faults_sets_and_clears_the_attestation_faults(sim: Any) -> None:
    from click.testing import CliRunner

    from console.cli import cli

    serial = sim.serials()[0]

    def naiad(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(cli, ["sim", "faults", "--state", str(sim.state_dir), "--serial", serial, *args])
        assert result.exit_code == 0, result.output
        faults: dict[str, Any] = sim.terminal(serial)["faults"]
        return faults

    faults = naiad("--counterfeit")
    assert (faults["counterfeit"], faults["broken_chain"]) == (True, False)
    faults = naiad("--broken-chain", "--genuine")
    assert (faults["counterfeit"], faults["broken_chain"]) == (False, True)
    faults = naiad("--intact-chain")
    assert (faults["counterfeit"], faults["broken_chain"]) == (False, False)
