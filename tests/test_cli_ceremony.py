"""The key ceremony through the command line, as custodians type it, on the software store and on SoftHSM2.

Covers ``naiad keys ceremony load-bdk|generate-bdk`` and ``naiad keys bdk list``: dual control, each component
against its own KCV, an interrupted or refused ceremony leaving nothing, and no component anywhere after.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_keys_ceremony import combined
from test_keys_store import (  # noqa: F401  (softhsm_token: a fixture)
    PIN,
    SOFTHSM_MODULE,
    new_token,
    softhsm_token,
)
from test_keys_store_signing import _self_signed

from console.cli import cli
from console.keystore_option import open_key_store
from keys import dukpt, kcv
from keys.errors import KeyStoreOperationFailed
from keys.store import KeyStore
from keys.store_pkcs11 import Pkcs11KeyStore
from keys.store_software import SoftwareKeyStore
from provisioning import operators as ops
from provisioning.ledger import AuditRecord, BdkRecord, Ledger, LedgerUnavailable
from provisioning.ledger import ledger as ledger_module

ADMIN_PW, CUSTODIAN_PW = "root-Secret-8731", "custodian-Secret-4410"
PASSPHRASE = "the station's key store passphrase"
CUSTODIANS = ("alice", "bob", "carol")
BDK_ID = "0A1B2C3D"
IKID = bytes.fromhex("0A1B2C3D00000001")


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A ledger with an admin, three custodians and ivan, an operator (who injects keys but holds none)."""
    address = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(address, station="bench-1") as ledger:
        ops.add_operator(ledger, None, "root", "admin", ADMIN_PW)
        root = ops.login(ledger, "root", ADMIN_PW)
        for name in CUSTODIANS:
            ops.add_operator(ledger, root, name, "custodian", CUSTODIAN_PW)
        ops.add_operator(ledger, root, "ivan", "operator", CUSTODIAN_PW)
    return address


@pytest.fixture(params=["software", "pkcs11"])
def keystore(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which store the commands open, set up through the environment as a station would be."""
    monkeypatch.setenv("NAIAD_KEYSTORE", request.param)
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    if request.param == "pkcs11":
        monkeypatch.setenv("NAIAD_PKCS11_MODULE", SOFTHSM_MODULE)
        monkeypatch.setenv("NAIAD_PKCS11_TOKEN", request.getfixturevalue("softhsm_token"))
        monkeypatch.setenv("NAIAD_PKCS11_PIN", PIN)
    kind: str = request.param
    return kind


@pytest.fixture
def store(keystore: str) -> Iterator[KeyStore]:
    """The same store, opened by the test after the commands ran."""
    with open_key_store(keystore) as opened:
        yield opened


def naiad(url: str, *args: str, stdin: str | IO[bytes] = "", **env: str) -> Result:
    return CliRunner().invoke(
        cli, ["--ledger", url, *args], input=stdin, env={"NAIAD_LANG": "en", "NAIAD_OPERATOR": "", **env}
    )


def _turn(name: str, component: bytes | None = None, check_value: str | None = None) -> str:
    """What one custodian types: name, password, then the component (hex) and its KCV."""
    typed = f"{name}\n{CUSTODIAN_PW}\n"
    if component is not None:
        typed += f"{component.hex()}\n{check_value or kcv.shown(kcv.aes_cmac_kcv(component))}\n"
    return typed


def _load(url: str, label: str, turns: str | IO[bytes], count: int = 2, bdk_id: str = BDK_ID, **env: str) -> Result:
    """``load-bdk`` with what the custodians type; no ``--bdk-id`` when ``bdk_id`` is empty (a registered BDK)."""
    args = ["keys", "ceremony", "load-bdk", "--label", label, "--components", str(count)]
    return naiad(url, *args, *(("--bdk-id", bdk_id) if bdk_id else ()), stdin=turns, **env)


def _ledger_text(url: str) -> str:
    """Every table of the ledger, as SQL text."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as database:
        return "\n".join(database.iterdump())


def _audit(url: str, action: str) -> list[tuple[str | None, dict[str, object]]]:
    with Ledger.open(url, station="bench-1") as ledger:
        return [(e.operator, e.details) for e in ledger.audit_entries() if e.action == action]


def _nothing_left(url: str, keystore: str, label: str) -> None:
    with open_key_store(keystore) as opened:
        assert label not in opened.labels()
    with Ledger.open(url, station="bench-1") as ledger:
        assert ledger.bdk(label) is None


@pytest.mark.parametrize(("count", "length"), [(2, 16), (3, 32)])
def test_custodians_load_the_bdk_their_components_make(
    url: str, keystore: str, count: int, length: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    components = [os.urandom(length) for _ in range(count)]
    bdk = combined(components)
    turns = "".join(_turn(n, c) for n, c in zip(CUSTODIANS, components, strict=False))
    result = _load(url, "line BDK", turns, count)
    assert result.exit_code == 0, result.output
    assert kcv.shown(kcv.aes_cmac_kcv(bdk)) in result.output
    with open_key_store(keystore) as opened:
        assert opened.bdk_kcv("line BDK") == kcv.aes_cmac_kcv(bdk)
        handle = opened.derive_initial_key("line BDK", IKID)
        assert opened.initial_key_kcv(handle) == kcv.aes_cmac_kcv(dukpt.initial_key(bdk, IKID))
    with Ledger.open(url, station="bench-1") as ledger:
        record = ledger.bdk("line BDK")
        assert record is not None and ledger.verify().ok
    assert (record.kcv, record.origin, record.custodians) == (kcv.aes_cmac_kcv(bdk), "ceremony", CUSTODIANS[:count])
    [(operator, details)] = _audit(url, "bdk.registered")
    assert operator == "alice" and details["custodians"] == list(CUSTODIANS[:count])
    listed = naiad(url, "keys", "bdk", "list", "--json")
    [row] = json.loads(listed.output)["bdks"]
    assert (row["state"], row["bdk_id"], row["kcv"]) == ("ok", BDK_ID, kcv.aes_cmac_kcv(bdk).hex().upper())
    texts = [result.output, listed.output, naiad(url, "keys", "bdk", "list").output, _ledger_text(url), caplog.text]
    for secret in [*components, bdk]:
        for text in texts:
            assert secret.hex() not in text and secret.hex().upper() not in text


def test_one_custodian_cannot_enter_two_components(url: str, keystore: str) -> None:
    first = os.urandom(16)
    result = _load(url, "line BDK", _turn("alice", first) + _turn("alice", os.urandom(16)))
    assert result.exit_code == 1
    assert "alice has already taken part" in result.output
    assert "Component 2" not in result.output  # refused before the second component was asked
    _nothing_left(url, keystore, "line BDK")
    assert _audit(url, "bdk.ceremony_stopped") == [
        ("alice", {"custodians": ["alice"], "expected": 2, "reason": "CustodianRepeated"})
    ]
    assert first.hex() not in _ledger_text(url)


@pytest.mark.parametrize("name", ["ivan", "root"])
def test_an_operator_without_the_custodian_role_is_refused(url: str, keystore: str, name: str) -> None:
    typed = _turn(name).replace(CUSTODIAN_PW, ADMIN_PW) if name == "root" else _turn(name)
    result = _load(url, "line BDK", typed)
    assert result.exit_code == 1
    assert "needs the custodian role" in result.output and "Component 1" not in result.output
    _nothing_left(url, keystore, "line BDK")


def test_a_wrong_password_stops_the_ceremony(url: str, keystore: str) -> None:
    result = _load(url, "line BDK", _turn("alice").replace(CUSTODIAN_PW, "not-the-password"))
    assert result.exit_code == 1 and "Wrong operator name or password" in result.output
    _nothing_left(url, keystore, "line BDK")


@pytest.mark.parametrize("form", [3, 5])
def test_a_component_that_fails_its_kcv_is_refused(url: str, keystore: str, form: int) -> None:
    good, bad = os.urandom(16), os.urandom(16)
    wrong = kcv.aes_cmac_kcv(os.urandom(16))[:form].hex()
    result = _load(url, "line BDK", _turn("alice", good) + _turn("bob", bad, wrong))
    assert result.exit_code == 1
    assert "Component 2 does not match its key check value" in result.output
    _nothing_left(url, keystore, "line BDK")
    for secret in (good, bad):
        assert secret.hex() not in result.output and secret.hex() not in _ledger_text(url)


def test_components_of_different_lengths_are_refused(url: str, keystore: str) -> None:
    result = _load(url, "line BDK", _turn("alice", os.urandom(16)) + _turn("bob", os.urandom(32)))
    assert result.exit_code == 1 and "all must be the same length" in result.output
    _nothing_left(url, keystore, "line BDK")


def test_a_mistyped_component_is_refused_without_echo(url: str, keystore: str) -> None:
    mistyped = os.urandom(16).hex()[:-1] + "g"
    result = _load(url, "line BDK", f"alice\n{CUSTODIAN_PW}\n{mistyped}\n")
    assert result.exit_code == 1 and "32 or 64 hexadecimal digits" in result.output
    assert mistyped not in result.output and mistyped[:-1] not in result.output
    _nothing_left(url, keystore, "line BDK")


class _Interrupted(io.BytesIO):
    """Standard input on which Ctrl-C is pressed once what was typed has been read."""

    def read1(self, size: int | None = -1) -> bytes:
        data = super().read1(size)
        if not data and size != 0:  # click probes the stream with read(0)
            raise KeyboardInterrupt
        return data

    read = read1


@pytest.mark.parametrize("stop", ["end of input", "Ctrl-C"])
def test_a_ceremony_stopped_at_the_second_component_leaves_nothing(url: str, keystore: str, stop: str) -> None:
    first = os.urandom(16)
    typed = _turn("alice", first) + _turn("bob")  # bob logs in, then nothing comes
    stdin: str | IO[bytes] = _Interrupted(typed.encode()) if stop == "Ctrl-C" else typed
    result = _load(url, "line BDK", stdin)
    assert result.exit_code == 1, result.output
    assert "The key ceremony was stopped before the BDK was made" in result.output
    assert "Traceback" not in result.output
    _nothing_left(url, keystore, "line BDK")
    assert _audit(url, "bdk.ceremony_stopped") == [
        ("alice", {"custodians": ["alice", "bob"], "expected": 2, "reason": "interrupted"})
    ]
    assert first.hex() not in result.output + _ledger_text(url)


def test_a_label_or_bdk_id_already_taken_is_refused_before_anyone_types(url: str, keystore: str) -> None:
    with open_key_store(keystore, create=True) as opened:
        opened.generate_bdk("in the store")
    taken = _load(url, "in the store", _turn("alice", os.urandom(16)))
    assert taken.exit_code == 1 and "already holds a key labelled in the store" in taken.output
    assert "Custodian 1" not in taken.output

    components = [os.urandom(16), os.urandom(16)]
    assert _load(url, "line BDK", _turn("alice", components[0]) + _turn("bob", components[1])).exit_code == 0
    again = _load(url, "line BDK", _turn("alice", os.urandom(16)))  # registered: loaded, but this store has it
    assert again.exit_code == 1 and "already holds a key labelled line BDK" in again.output
    generated = naiad(url, "keys", "ceremony", "generate-bdk", "--label", "line BDK", "--bdk-id", "0A1B2C3E")
    assert generated.exit_code == 1 and "already has a BDK labelled line BDK" in generated.output
    same_id = _load(url, "other BDK", _turn("alice", os.urandom(16)))
    assert same_id.exit_code == 1 and f"BDK ID {BDK_ID} is already used" in same_id.output
    assert "Custodian 1" not in again.output + generated.output + same_id.output
    with open_key_store(keystore) as opened:
        assert opened.labels() == ["in the store", "line BDK"]
        assert opened.bdk_kcv("line BDK") == kcv.aes_cmac_kcv(combined(components))


def test_two_custodians_witness_a_generated_bdk(url: str, keystore: str) -> None:
    args = ["keys", "ceremony", "generate-bdk", "--label", "demo BDK", "--bdk-id", BDK_ID, "--algorithm", "AES-256"]
    alone = naiad(url, *args, stdin=_turn("alice") + _turn("alice"))
    assert alone.exit_code == 1 and "alice has already taken part" in alone.output
    _nothing_left(url, keystore, "demo BDK")
    result = naiad(url, *args, stdin=_turn("alice") + _turn("bob"))
    assert result.exit_code == 0, result.output
    with Ledger.open(url, station="bench-1") as ledger:
        record = ledger.bdk("demo BDK")
    assert record is not None and (record.origin, record.custodians) == ("generated", ("alice", "bob"))
    assert kcv.shown(record.kcv) in result.output
    with open_key_store(keystore) as opened:
        assert opened.bdk_kcv("demo BDK") == record.kcv


def test_bdk_list_shows_a_key_the_ledger_does_not_know(url: str, keystore: str) -> None:
    with open_key_store(keystore, create=True) as opened:
        shown = opened.generate_bdk("stray")
    listed = naiad(url, "keys", "bdk", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)["bdks"]
    assert (row["label"], row["state"], row["kcv"]) == ("stray", "not in the ledger", shown.hex().upper())
    assert "not in the ledger" in naiad(url, "keys", "bdk", "list").output


# --- a BDK the ledger does not record -----------------------------------------------------------------


def _make(url: str, command: str) -> Result:
    """``line BDK`` made by alice and bob: loaded from two random components, or generated."""
    if command == "load-bdk":
        return _load(url, "line BDK", _turn("alice", os.urandom(16)) + _turn("bob", os.urandom(16)))
    generate = ("keys", "ceremony", "generate-bdk", "--label", "line BDK", "--bdk-id", BDK_ID)
    return naiad(url, *generate, stdin=_turn("alice") + _turn("bob"))


@pytest.mark.parametrize("failure", ["outage", "label taken by another station"])
@pytest.mark.parametrize("command", ["load-bdk", "generate-bdk"])
def test_a_bdk_the_ledger_did_not_record_is_destroyed_again(
    url: str, keystore: str, monkeypatch: pytest.MonkeyPatch, command: str, failure: str
) -> None:
    register = Ledger.register_bdk

    def refused(ledger: Ledger, label: str, *args: Any) -> BdkRecord:
        if failure == "outage":
            raise LedgerUnavailable(url=ledger.url, detail="connection refused")
        with Ledger.open(url, station="bench-2") as other:  # wins the race for the label
            register(
                other.as_operator("carol"), label, bytes.fromhex("0B0B0B0B"), os.urandom(5), "generated", ["carol"]
            )
        return register(ledger, label, *args)

    monkeypatch.setattr(Ledger, "register_bdk", refused)
    result = _make(url, command)
    assert result.exit_code == 1
    assert "The ledger did not record the BDK line BDK, so the key store destroyed it again" in result.output
    assert ("connection refused" if failure == "outage" else "already has a BDK labelled line BDK") in result.output
    with open_key_store(keystore) as opened:
        assert opened.labels() == []
    with Ledger.open(url, station="bench-1") as ledger:
        other = ledger.bdk("line BDK")
    assert (other.station if other else None) == (None if failure == "outage" else "bench-2")


def test_a_bdk_the_store_cannot_destroy_again_is_named(
    url: str, keystore: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def outage(ledger: Ledger, *_args: Any) -> BdkRecord:
        raise LedgerUnavailable(url=ledger.url, detail="connection refused")

    def stuck(_store: KeyStore, _label: str) -> None:
        raise KeyStoreOperationFailed(operation="destroy a key", code="DeviceRemoved")

    monkeypatch.setattr(Ledger, "register_bdk", outage)
    for kind in (SoftwareKeyStore, Pkcs11KeyStore):
        monkeypatch.setattr(kind, "destroy_bdk", stuck)
    components = [os.urandom(16), os.urandom(16)]
    result = _load(url, "line BDK", _turn("alice", components[0]) + _turn("bob", components[1]))
    assert result.exit_code == 1
    shown = kcv.shown(kcv.aes_cmac_kcv(combined(components)))
    assert f"The BDK line BDK (KCV {shown}) had to be destroyed because the ledger did not record it" in result.output
    assert "but the key store could not" in result.output and "Do not use this key" in result.output


@pytest.mark.parametrize("command", ["load-bdk", "generate-bdk"])
def test_a_ceremony_stopped_while_the_ledger_records_the_bdk_keeps_nothing(
    url: str, keystore: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    def interrupted(_ledger: Ledger, *_args: Any) -> BdkRecord:
        raise KeyboardInterrupt  # Ctrl-C while the ledger writes

    monkeypatch.setattr(Ledger, "register_bdk", interrupted)
    result = _make(url, command)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "stopped before the ledger recorded the BDK, so the key store destroyed it again" in result.output
    _nothing_left(url, keystore, "line BDK")
    assert _audit(url, "bdk.ceremony_stopped") == [
        ("alice", {"custodians": ["alice", "bob"], "expected": 2, "reason": "interrupted"})
    ]


# --- a second station on the same ledger ---------------------------------------------------------------


def _second_station(keystore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the commands run at station bench-2: the same ledger, a key store (or HSM token) of its own."""
    monkeypatch.setattr(ledger_module, "default_station_name", lambda: "bench-2")
    monkeypatch.setenv("NAIAD_DATA_DIR", str(tmp_path / "bench-2"))
    if keystore == "pkcs11":
        monkeypatch.setenv("NAIAD_PKCS11_TOKEN", new_token())


def _inject_check(url: str, tmp_path: Path) -> str:
    """The error ``naiad keys inject`` gives for a unit outside the inventory: the run's, or the unit's own once
    the BDK check passed (the unit is refused before anything is sent to it)."""
    roots = tmp_path / "manufacturer-ca.pem"
    der = _self_signed(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    roots.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    args = ("--operator", "ivan", "keys", "inject", "--device", "UNLISTED-1", "--bdk", "line BDK", "--json")
    result = naiad(url, *args, stdin=f"{CUSTODIAN_PW}\n", NAIAD_MANUFACTURER_CA=str(roots))
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    return str(answer["error"] if "error" in answer else answer["results"][0]["error"]["error"])


def _registered(url: str) -> tuple[BdkRecord | None, list[AuditRecord]]:
    with Ledger.open(url, station="bench-1") as ledger:
        assert ledger.verify().ok
        return ledger.bdk("line BDK"), [e for e in ledger.audit_entries() if e.action.startswith("bdk.")]


def test_a_second_station_loads_a_registered_bdk_and_may_inject_with_it(
    url: str, keystore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    components = [os.urandom(32) for _ in range(3)]
    assert _load(url, "line BDK", "".join(map(_turn, CUSTODIANS, components)), 3).exit_code == 0
    registered, before = _registered(url)
    assert registered is not None and registered.kcv == kcv.aes_cmac_kcv(combined(components))
    _second_station(keystore, tmp_path, monkeypatch)
    assert _inject_check(url, tmp_path) == ("BdkNotInStore" if keystore == "pkcs11" else "SoftwareKeyStoreMissing")

    turns = _turn("carol", components[0]) + _turn("alice", components[1]) + _turn("bob", components[2])
    loaded = _load(url, "line BDK", turns, 3, bdk_id="")
    assert loaded.exit_code == 0, loaded.output
    assert kcv.shown(registered.kcv) in loaded.output and "the one the ledger registered" in loaded.output
    with open_key_store(keystore) as opened:
        assert opened.labels() == ["line BDK"] and opened.bdk_kcv("line BDK") == registered.kcv
    unchanged, after = _registered(url)
    assert unchanged == registered and after[: len(before)] == before
    [entry] = after[len(before) :]
    assert (entry.action, entry.station, entry.operator) == ("bdk.loaded", "bench-2", "carol")
    assert entry.details == {
        "bdk_id": BDK_ID,
        "kcv": registered.kcv.hex().upper(),
        "custodians": ["carol", "alice", "bob"],
    }
    assert _inject_check(url, tmp_path) == "ProvisioningCANotMade"  # the store's BDK is the ledger's
    made = naiad(url, "keys", "ceremony", "make-ca", stdin=_turn("carol") + _turn("alice"))
    assert made.exit_code == 0, made.output
    [created] = _audit(url, "ca.created")
    assert created[1]["custodians"] == ["carol", "alice"]
    assert _inject_check(url, tmp_path) == "UnitNotAuthorised"  # now each unit is checked, and refused
    again = naiad(url, "keys", "ceremony", "make-ca", stdin=_turn("carol") + _turn("alice"))
    assert again.exit_code == 1 and "already holds the provisioning CA" in again.output


def test_a_second_station_loading_other_components_keeps_nothing(
    url: str, keystore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _load(url, "line BDK", _turn("alice", os.urandom(16)) + _turn("bob", os.urandom(16))).exit_code == 0
    registered, before = _registered(url)
    assert registered is not None
    _second_station(keystore, tmp_path, monkeypatch)
    wrong = [os.urandom(16), os.urandom(16)]  # each matches its own KCV: only the BDK's KCV tells
    result = _load(url, "line BDK", _turn("alice", wrong[0]) + _turn("bob", wrong[1]), bdk_id="")
    assert result.exit_code == 1
    made = kcv.shown(kcv.aes_cmac_kcv(combined(wrong)))
    assert (
        f"The components make a BDK with KCV {made}, but the ledger registered line BDK with KCV "
        f"{kcv.shown(registered.kcv)}: the key store destroyed it again"
    ) in result.output
    assert "The components are not those of line BDK" in result.output
    with open_key_store(keystore) as opened:
        assert opened.labels() == []
    unchanged, after = _registered(url)
    assert unchanged == registered and [e.action for e in after[len(before) :]] == ["bdk.ceremony_stopped"]
    assert after[-1].details["reason"] == "BdkKcvDiffers" and after[-1].station == "bench-2"
    chinese = _load(url, "line BDK", _turn("alice", wrong[0]) + _turn("bob", wrong[1]), bdk_id="", NAIAD_LANG="zh_CN")
    assert chinese.exit_code == 1 and "密钥库已将其销毁" in chinese.output


def test_a_loading_the_ledger_did_not_audit_is_destroyed_again(
    url: str, keystore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = _turn("alice", os.urandom(16)) + _turn("bob", os.urandom(16))
    assert _load(url, "line BDK", turns).exit_code == 0
    _second_station(keystore, tmp_path, monkeypatch)
    audit = Ledger.audit

    def outage(ledger: Ledger, action: str, *args: Any) -> AuditRecord:
        if action == "bdk.loaded":
            raise LedgerUnavailable(url=ledger.url, detail="connection refused")
        return audit(ledger, action, *args)

    monkeypatch.setattr(Ledger, "audit", outage)
    result = _load(url, "line BDK", turns, bdk_id="")
    assert result.exit_code == 1
    assert "The ledger did not record the BDK line BDK, so the key store destroyed it again" in result.output
    with open_key_store(keystore) as opened:
        assert opened.labels() == []


def test_a_registered_bdk_is_loaded_under_its_own_id_and_a_new_one_needs_one(url: str, keystore: str) -> None:
    assert _load(url, "line BDK", _turn("alice", os.urandom(16)) + _turn("bob", os.urandom(16))).exit_code == 0
    other_id = _load(url, "line BDK", _turn("alice"), bdk_id="0B0B0B0B")
    assert other_id.exit_code == 1
    assert f"registered the BDK line BDK with BDK ID {BDK_ID}, not 0B0B0B0B" in other_id.output
    no_id = _load(url, "new BDK", _turn("alice"), bdk_id="")
    assert no_id.exit_code == 1 and "a new BDK needs its BDK ID (--bdk-id)" in no_id.output
    assert "Custodian 1" not in other_id.output + no_id.output


# --- opening the key store --------------------------------------------------------------------------


def test_a_wrong_passphrase_is_a_clear_error(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    with open_key_store("software", create=True):
        pass
    result = naiad(url, "keys", "bdk", "list", NAIAD_KEYSTORE_PASSPHRASE="a wrong passphrase")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "The key store refused the PIN or passphrase" in result.output
    typed = naiad(url, "keys", "bdk", "list", stdin="a wrong passphrase\n", NAIAD_KEYSTORE_PASSPHRASE="")
    assert typed.exit_code == 1 and "refused the PIN or passphrase" in typed.output
    assert "a wrong passphrase" not in typed.output
    chinese = naiad(url, "keys", "bdk", "list", NAIAD_KEYSTORE_PASSPHRASE="a wrong passphrase", NAIAD_LANG="zh_CN")
    assert chinese.exit_code == 1 and "密钥库拒绝了该 PIN 或口令" in chinese.output


def test_only_a_ceremony_creates_the_software_store_asking_twice_for_a_long_passphrase(
    url: str, tmp_path: Path
) -> None:
    listed = naiad(url, "keys", "bdk", "list", stdin=f"{PASSPHRASE}\n{PASSPHRASE}\n", NAIAD_KEYSTORE_PASSPHRASE="")
    assert listed.exit_code == 1 and "Traceback" not in listed.output
    assert "There is no software key store on this station yet" in listed.output and "load-bdk" in listed.output
    assert not (tmp_path / "data" / "keystore.json").exists()
    generate = ("keys", "ceremony", "generate-bdk", "--label", "demo BDK", "--bdk-id", BDK_ID)
    short = naiad(url, *generate, stdin="short\nshort\n", NAIAD_KEYSTORE_PASSPHRASE="")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert not (tmp_path / "data" / "keystore.json").exists()
    typed = f"{PASSPHRASE}\n{PASSPHRASE}\n" + _turn("alice") + _turn("bob")
    made = naiad(url, *generate, stdin=typed, NAIAD_KEYSTORE_PASSPHRASE="")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "data" / "keystore.json").exists()


def test_a_key_store_file_the_system_refuses_is_a_clear_error(url: str, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "keystore.json").mkdir()
    result = naiad(url, "keys", "bdk", "list", NAIAD_KEYSTORE_PASSPHRASE=PASSPHRASE)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot be read or written: Is a directory" in result.output and "may read and write" in result.output


def test_a_missing_or_unconfigured_pkcs11_module_is_a_clear_error(url: str, tmp_path: Path) -> None:
    unset = naiad(url, "keys", "bdk", "list", "--keystore", "pkcs11", NAIAD_PKCS11_MODULE="", NAIAD_PKCS11_TOKEN="")
    assert unset.exit_code == 1 and "NAIAD_PKCS11_MODULE and NAIAD_PKCS11_TOKEN are not set" in unset.output
    missing = naiad(
        url,
        "keys",
        "ceremony",
        "load-bdk",
        "--label",
        "line BDK",
        "--bdk-id",
        BDK_ID,
        "--keystore",
        "pkcs11",
        NAIAD_PKCS11_MODULE=str(tmp_path / "missing.so"),
        NAIAD_PKCS11_TOKEN="naiad",
    )
    assert missing.exit_code == 1 and "the PKCS#11 module does not load" in missing.output
    assert "Traceback" not in missing.output and "PIN" not in missing.output.split("Error")[0]
    chinese = naiad(
        url,
        "keys",
        "bdk",
        "list",
        "--keystore",
        "pkcs11",
        NAIAD_PKCS11_MODULE=str(tmp_path / "missing.so"),
        NAIAD_PKCS11_TOKEN="naiad",
        NAIAD_LANG="zh_CN",
    )
    assert chinese.exit_code == 1 and "无法使用 PKCS#11 密钥库：PKCS#11 模块无法加载" in chinese.output
