"""Both key stores against one contract: X9.24-3 Initial Keys, CMAC KCVs, TR-31 export, no clear key out."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import dukpt, kcv, tr31
from keys.dukpt_vectors import IKID, VECTORS
from keys.errors import (
    KeyBlockError,
    KeysError,
    KeyStoreClosed,
    KeyStoreComponentsInvalid,
    KeyStoreFileDamaged,
    KeyStoreFileUnavailable,
    KeyStoreHandleInvalid,
    KeyStoreKeyLength,
    KeyStoreLabelTaken,
    KeyStoreLabelUnknown,
    KeyStoreLoginFailed,
    KeyStoreOperationFailed,
    KeyStoreUnavailable,
)
from keys.store import KeyStore
from keys.store import wipe as store_wipe
from keys.store_software import SoftwareKeyStore

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN, SO_PIN, PASSPHRASE = "20261130", "11302026", "correct horse battery staple"
PUBLISHED_INITIAL_KEYS = [v for v in VECTORS if v.step == "initial key"]
B1 = tr31.Header(key_usage="B1", algorithm="A", mode_of_use="X", exportability="E")


def _split(key: bytes) -> list[bytes]:
    first = os.urandom(len(key))
    return [first, bytes(a ^ b for a, b in zip(key, first, strict=True))]


def _forms(key: bytes) -> list[bytes]:
    """Every way the key's bytes could show up in text or a file."""
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway SoftHSM2 token in its own config and token directory; its label.

    Stores from earlier tests must be closed first: reinitialising the module ends their sessions."""
    if not (shutil.which("softhsm2-util") and Path(SOFTHSM_MODULE).exists()):
        pytest.skip("SoftHSM2 is not installed (tools/setup-system.sh installs it)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    config = tmp_path / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(config))
    return new_token()


def new_token() -> str:
    """Another token beside :func:`softhsm_token`'s (a second station's HSM, say); its label.  Stores must be
    closed first, as for the fixture."""
    label = f"naiad-{uuid.uuid4().hex[:24]}"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN],
        check=True,
        capture_output=True,
    )
    import pkcs11

    pkcs11.lib(SOFTHSM_MODULE).reinitialize()  # python-pkcs11 keeps one module per process: make it read this config
    return label


def _pkcs11(token: str, pin: str = PIN) -> KeyStore:
    from keys.store_pkcs11 import Pkcs11Config, Pkcs11KeyStore

    return Pkcs11KeyStore(Pkcs11Config(SOFTHSM_MODULE, token), pin)


def _software(path: Path, passphrase: str = PASSPHRASE) -> SoftwareKeyStore:
    return SoftwareKeyStore(passphrase, path, scrypt_n=2**10)


@pytest.fixture(params=["software", "pkcs11"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "pkcs11":
        opened = _pkcs11(request.getfixturevalue("softhsm_token"))
    else:
        opened = _software(tmp_path / "keystore.json")
    yield opened
    opened.close()


# --- the contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", PUBLISHED_INITIAL_KEYS, ids=lambda v: v.name)
def test_initial_key_in_the_store_is_the_published_one(store: KeyStore, vector: object) -> None:
    bdk, ikid = bytes.fromhex(vector.bdk), bytes.fromhex(IKID)  # type: ignore[attr-defined]
    expected = bytes.fromhex(vector.expected)  # type: ignore[attr-defined]
    assert store.combine_components("test BDK", _split(bdk)) == kcv.aes_cmac_kcv(bdk)
    assert store.bdk_kcv("test BDK") == kcv.aes_cmac_kcv(bdk)
    handle = store.derive_initial_key("test BDK", ikid)
    assert store.initial_key_kcv(handle) == kcv.aes_cmac_kcv(expected)
    kbpk = os.urandom(32)
    with_kcv = tr31.Header("B1", "A", "X", optional_blocks=(("KC", "01" + kcv.aes_cmac_kcv(expected).hex().upper()),))
    block = store.wrap_tr31(kbpk, with_kcv, handle)
    header, key = tr31.unwrap(kbpk, block, expect_usage="B1")
    assert key == expected == dukpt.initial_key(bdk, ikid)
    assert header == with_kcv


@pytest.mark.parametrize("length", [16, 32])
def test_generated_bdk_is_listed_and_its_kcv_is_stable(store: KeyStore, length: int) -> None:
    shown = store.generate_bdk("BDK A", length)
    store.generate_bdk("BDK B")
    assert store.labels() == ["BDK A", "BDK B"]
    assert len(shown) == 5 and store.bdk_kcv("BDK A") == shown
    handle = store.derive_initial_key("BDK A", bytes.fromhex(IKID))
    _, key = tr31.unwrap(kbpk := os.urandom(32), store.wrap_tr31(kbpk, B1, handle))
    assert len(key) == length and kcv.aes_cmac_kcv(key) == store.initial_key_kcv(handle)


def test_labels_are_never_replaced_and_unknown_ones_refused(store: KeyStore) -> None:
    store.generate_bdk("BDK")
    before = store.bdk_kcv("BDK")
    with pytest.raises(KeyStoreLabelTaken):
        store.generate_bdk("BDK")
    with pytest.raises(KeyStoreLabelTaken):
        store.combine_components("BDK", _split(os.urandom(16)))
    assert store.bdk_kcv("BDK") == before
    with pytest.raises(KeyStoreLabelUnknown):
        store.derive_initial_key("other", bytes.fromhex(IKID))


def test_a_destroyed_bdk_is_gone_for_good_and_its_label_free_again(tmp_path: Path, softhsm_token: str) -> None:
    for reopen in (lambda: _software(tmp_path / "keystore.json"), lambda: _pkcs11(softhsm_token)):
        with reopen() as store:
            kept = store.generate_bdk("kept")
            store.combine_components("BDK", _split(os.urandom(16)))
            store.destroy_bdk("BDK")
            assert store.labels() == ["kept"]
            with pytest.raises(KeyStoreLabelUnknown):
                store.bdk_kcv("BDK")
            with pytest.raises(KeyStoreLabelUnknown):
                store.destroy_bdk("BDK")
        with reopen() as again:
            assert again.labels() == ["kept"] and again.bdk_kcv("kept") == kept
            bdk = os.urandom(32)
            assert again.combine_components("BDK", _split(bdk)) == kcv.aes_cmac_kcv(bdk)


def test_a_software_bdk_whose_removal_was_not_saved_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keys.store_software

    path = tmp_path / "keystore.json"
    store = _software(path)
    shown = store.generate_bdk("BDK")

    def disk_full(_path: Path, _data: bytes) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(KeyStoreFileUnavailable, match="No space left on device"):
        patched.setattr(keys.store_software, "_write_atomically", disk_full)
        store.destroy_bdk("BDK")
    assert store.labels() == ["BDK"] and store.bdk_kcv("BDK") == shown  # the store and its file still agree
    assert _software(path).bdk_kcv("BDK") == shown


@pytest.mark.parametrize(
    "components",
    [
        [bytes(range(16))],
        [bytes(16), bytes(32)],
        [bytes(range(16))] * 2,
        [bytes(range(16))] * 4,
        [bytes(8), bytes(range(8))],
    ],
    ids=["one", "lengths differ", "equal", "four", "too short"],
)
def test_bad_components_store_nothing(store: KeyStore, components: list[bytes]) -> None:
    with pytest.raises(KeyStoreComponentsInvalid if len(components[0]) == 16 else KeyStoreKeyLength):
        store.combine_components("BDK", components)
    assert store.labels() == []
    with pytest.raises(KeysError) as caught:
        store.combine_components("BDK", components)
    text = str(caught.value) + repr(caught.value.params) + str(caught.value.remedy_text)
    assert not any(form.decode("latin-1") in text for c in components for form in _forms(c) if c.strip(b"\0"))


def test_a_released_handle_is_refused(store: KeyStore) -> None:
    store.generate_bdk("BDK")
    handle = store.derive_initial_key("BDK", bytes.fromhex(IKID))
    store.release(handle)
    store.release(handle)
    for _ in range(3):  # later keys, which a reused reference could name
        store.derive_initial_key("BDK", bytes.fromhex(IKID))
    with pytest.raises(KeyStoreHandleInvalid):
        store.initial_key_kcv(handle)
    with pytest.raises(KeyStoreHandleInvalid):
        store.wrap_tr31(os.urandom(32), B1, handle)


def test_no_public_method_returns_a_clear_key_and_errors_name_none(store: KeyStore) -> None:
    bdk, ikid = bytes.fromhex("00112233445566778899AABBCCDDEEFF" * 2), bytes.fromhex(IKID)
    initial_key = dukpt.initial_key(bdk, ikid)
    weak_kbpk = os.urandom(16)
    outputs: list[object] = [store.combine_components("BDK", _split(bdk)), store.labels(), store.bdk_kcv("BDK")]
    handle = store.derive_initial_key("BDK", ikid)
    outputs += [handle, repr(handle), store.initial_key_kcv(handle), store.wrap_tr31(os.urandom(32), B1, handle)]
    errors: list[KeysError] = []
    for kbpk, header in [(weak_kbpk, B1), (bdk[:20], B1), (bdk, tr31.Header("B1", "A", "E"))]:
        with pytest.raises(KeyBlockError) as caught:  # AES-256 key under AES-128 KBPK; a bad KBPK; B1 for encryption
            store.wrap_tr31(kbpk, header, handle)
        errors.append(caught.value)
    text = repr(outputs) + "".join(str(e) + repr(e.params) + str(e.remedy_text) for e in errors)
    for key in (bdk, initial_key):
        for form in _forms(key):
            assert form.decode("latin-1") not in text


# --- the PKCS#11 store ------------------------------------------------------------------------------


def test_pkcs11_keys_are_sensitive_and_the_bdk_not_extractable(softhsm_token: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    store = _pkcs11(softhsm_token)
    store.generate_bdk("generated", 32)
    store.combine_components("combined", _split(os.urandom(16)))
    handle = store.derive_initial_key("generated", bytes.fromhex(IKID))
    session = store._session  # type: ignore[attr-defined]
    for label in ("generated", "combined"):
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        assert key[Attribute.SENSITIVE]
        assert not key[Attribute.EXTRACTABLE] and key[Attribute.TOKEN] and not key[Attribute.WRAP]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
    generated = session.get_key(object_class=ObjectClass.SECRET_KEY, label="generated")
    assert generated[Attribute.ALWAYS_SENSITIVE] and generated[Attribute.NEVER_EXTRACTABLE]
    derived = store._initial_keys[handle.ref]  # type: ignore[attr-defined]
    assert derived[Attribute.SENSITIVE] and not derived[Attribute.TOKEN]
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        derived[Attribute.VALUE]
    store.close()


def test_pkcs11_wrong_pin_token_and_module_are_refused(softhsm_token: str, tmp_path: Path) -> None:
    from keys.store_pkcs11 import Pkcs11Config, Pkcs11KeyStore

    with pytest.raises(KeyStoreLoginFailed) as caught:
        _pkcs11(softhsm_token, "99999999")
    assert "99999999" not in str(caught.value) + repr(caught.value.params)
    with pytest.raises(KeyStoreUnavailable):
        _pkcs11("no such token")
    with pytest.raises(KeyStoreUnavailable):
        Pkcs11KeyStore(Pkcs11Config(str(tmp_path / "missing.so"), softhsm_token), PIN)


def test_pkcs11_bdks_persist_and_initial_keys_do_not(softhsm_token: str) -> None:
    from pkcs11 import Attribute, ObjectClass

    with _pkcs11(softhsm_token) as store:
        shown = store.generate_bdk("BDK")
        store.derive_initial_key("BDK", bytes.fromhex(IKID))
    with _pkcs11(softhsm_token) as again:
        assert again.labels() == ["BDK"] and again.bdk_kcv("BDK") == shown
        keys = list(again._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}))  # type: ignore[attr-defined]
        assert [k[Attribute.LABEL] for k in keys] == ["BDK"]


# --- the software store -----------------------------------------------------------------------------


def test_software_file_is_0600_holds_no_clear_key_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "station" / "keystore.json"
    bdk = os.urandom(32)
    store = _software(path)
    store.combine_components("BDK", _split(bdk))
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keystore.json"]  # no temporary file left behind
    content = path.read_bytes()
    for form in _forms(bdk):
        assert form not in content
    again = _software(path)
    assert again.labels() == ["BDK"] and again.bdk_kcv("BDK") == kcv.aes_cmac_kcv(bdk)


def test_a_closed_software_store_refuses_use_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    store = _software(path)
    store.generate_bdk("A")
    store.close()
    with pytest.raises(KeyStoreClosed):
        store.generate_bdk("B")  # a save from the emptied store would have dropped A from the file
    with pytest.raises(KeyStoreClosed):
        store.bdk_kcv("A")
    assert _software(path).labels() == ["A"]


def test_software_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    _software(path).generate_bdk("BDK")
    with pytest.raises(KeyStoreLoginFailed) as caught:
        _software(path, "wrong horse")
    assert "wrong horse" not in str(caught.value)
    with pytest.raises(KeyStoreLoginFailed):
        _software(path, "")


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "kdf", "format", "truncated", "types"])
def test_software_tampered_file_is_refused(tmp_path: Path, field: str) -> None:
    path = tmp_path / "keystore.json"
    _software(path).generate_bdk("BDK")
    document = json.loads(path.read_text())
    if field == "truncated":
        path.write_text(path.read_text()[:-20])
    else:
        if field == "ciphertext":
            raw = bytearray(base64.b64decode(document[field]))
            raw[3] ^= 1
            document[field] = base64.b64encode(bytes(raw)).decode()
        elif field == "nonce":
            document[field] = base64.b64encode(bytes(12)).decode()
        elif field == "types":
            document.update(ciphertext=7, kdf={**document["kdf"], "salt": 7})
        elif field == "kdf":
            document[field]["n"] = 2**30
        else:
            document[field] = "other"
        path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreFileDamaged):
        _software(path)


# --- naiad doctor -----------------------------------------------------------------------------------


def test_doctor_says_not_configured_without_a_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from provisioning.doctor import Status, check_hsm_token

    monkeypatch.delenv("NAIAD_PKCS11_MODULE", raising=False)
    monkeypatch.delenv("NAIAD_PKCS11_TOKEN", raising=False)
    result = check_hsm_token()
    assert result.status is Status.OK and "not configured" in result.detail


def test_doctor_checks_module_token_and_mechanisms(
    softhsm_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioning.doctor import Status, check_hsm_token

    monkeypatch.setenv("NAIAD_PKCS11_MODULE", SOFTHSM_MODULE)
    monkeypatch.setenv("NAIAD_PKCS11_TOKEN", softhsm_token)
    result = check_hsm_token()
    assert result.status is Status.OK and softhsm_token in result.detail
    monkeypatch.setenv("NAIAD_PKCS11_TOKEN", "absent")
    result = check_hsm_token()
    assert result.status is Status.PROBLEM and "no token" in result.detail and result.remedy
    monkeypatch.setenv("NAIAD_PKCS11_MODULE", str(tmp_path / "missing.so"))
    assert check_hsm_token().status is Status.PROBLEM


def test_doctor_names_missing_mechanisms(softhsm_token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import keys.store_pkcs11
    from provisioning.doctor import Status, check_hsm_token

    monkeypatch.setenv("NAIAD_PKCS11_MODULE", SOFTHSM_MODULE)
    monkeypatch.setenv("NAIAD_PKCS11_TOKEN", softhsm_token)
    monkeypatch.setattr(keys.store_pkcs11, "REQUIRED_MECHANISMS", ("AES_CMAC", "SP800_108_COUNTER_KDF"))
    result = check_hsm_token()
    assert (
        result.status is Status.PROBLEM and "SP800_108_COUNTER_KDF" in result.detail and "AES_CMAC" not in result.detail
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), replacement=st.binary(min_size=0, max_size=8))
def test_software_file_altered_anywhere_is_refused_with_a_typed_error(
    tmp_path: Path, position: int, replacement: bytes
) -> None:
    path = tmp_path / "hostile.json"
    if not path.exists():
        _software(path).generate_bdk("BDK")
        (tmp_path / "original").write_bytes(path.read_bytes())
    original = (tmp_path / "original").read_bytes()
    at = position % len(original)
    altered = original[:at] + replacement + original[at + 1 :]
    path.write_bytes(altered)
    if _same_json(altered, original):  # whitespace only: the same document, which must still open
        assert _software(path).labels() == ["BDK"]
        return
    with pytest.raises((KeyStoreFileDamaged, KeyStoreLoginFailed)):
        _software(path)


def _same_json(one: bytes, other: bytes) -> bool:
    try:
        return bool(json.loads(one) == json.loads(other))
    except ValueError:
        return False


def test_a_handle_from_another_store_is_refused(store: KeyStore, tmp_path: Path) -> None:
    store.generate_bdk("BDK")
    store.derive_initial_key("BDK", bytes.fromhex(IKID))
    other = _software(tmp_path / "other.json")
    other.generate_bdk("BDK")
    foreign = other.derive_initial_key("BDK", bytes.fromhex(IKID))
    with pytest.raises(KeyStoreHandleInvalid):
        store.wrap_tr31(os.urandom(32), B1, foreign)
    other.close()


def _rewrite(store: SoftwareKeyStore, path: Path, content: object) -> None:
    """Write ``content`` to ``path`` encrypted under ``store``'s passphrase, as the store would have."""
    header = store._header  # type: ignore[attr-defined]
    nonce = os.urandom(12)
    ciphertext = AESGCM(store._file_key).encrypt(  # type: ignore[attr-defined]
        nonce, json.dumps(content).encode(), json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    )
    path.write_text(
        json.dumps(
            {**header, "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}
        )
    )


def test_a_software_file_from_before_signing_keys_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    with _software(path) as store:
        shown = store.generate_bdk("BDK")
        _rewrite(store, path, {"keys": {"BDK": bytes(store._bdks["BDK"]).hex()}})  # type: ignore[attr-defined]
    with _software(path) as again:
        assert again.bdk_kcv("BDK") == shown and again.signing_labels() == []
        again.generate_signing_key("CA")
    with _software(path) as third:
        assert third.labels() == ["BDK"] and third.signing_labels() == ["CA"]


def test_a_software_file_with_a_bad_label_is_damaged_and_what_was_read_wiped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keys.store_software

    path = tmp_path / "keystore.json"
    with _software(path) as store:
        _rewrite(store, path, {"keys": {"BDK": os.urandom(16).hex(), "x" * 65: os.urandom(16).hex()}})
    wiped: list[bytearray] = []

    def wipe(key: bytearray) -> None:
        store_wipe(key)
        wiped.append(key)

    monkeypatch.setattr(keys.store_software, "wipe", wipe)
    with pytest.raises(KeyStoreFileDamaged):
        _software(path)
    assert bytearray(16) in wiped  # the BDK read before the bad label


@pytest.mark.parametrize("where", ["a directory", "under a file"])
def test_a_software_file_the_system_refuses_is_a_typed_error(tmp_path: Path, where: str) -> None:
    path = tmp_path / "keystore.json"
    if where == "a directory":
        path.mkdir()
    else:
        path = tmp_path / "a file" / "keystore.json"
        path.parent.write_text("")
    with pytest.raises(KeyStoreFileUnavailable) as refused:
        _software(path)
    assert str(path) in str(refused.value) and refused.value.remedy


def test_a_pkcs11_store_refuses_use_once_closed_or_its_session_ended(softhsm_token: str) -> None:
    store = _pkcs11(softhsm_token)
    store.generate_bdk("BDK")
    store.generate_signing_key("CA")
    store.close()
    store.close()  # closing again is harmless
    for use in (store.labels, store.signing_labels, lambda: store.bdk_kcv("BDK"), lambda: store.certificate("CA")):
        with pytest.raises(KeyStoreClosed):
            use()
    ended = _pkcs11(softhsm_token)
    key = ended._bdk("BDK")  # type: ignore[attr-defined]
    ended._session.close()  # type: ignore[attr-defined]  # the token ended the session: a removed HSM, say
    with pytest.raises(KeyStoreOperationFailed, match="SessionHandleInvalid"):
        ended._kcv(key)  # type: ignore[attr-defined]
    with pytest.raises(KeyStoreOperationFailed, match="SessionHandleInvalid"):
        ended.close()


@pytest.mark.parametrize("make", ["generate", "combine"])
def test_a_pkcs11_bdk_whose_kcv_cannot_be_computed_is_destroyed_again(
    softhsm_token: str, monkeypatch: pytest.MonkeyPatch, make: str
) -> None:
    from keys.store_pkcs11 import Pkcs11KeyStore

    def refused(_key: object) -> bytes:
        raise KeyStoreOperationFailed(operation="compute a key check value", code="DeviceError")

    with _pkcs11(softhsm_token) as store:
        with monkeypatch.context() as patched, pytest.raises(KeyStoreOperationFailed):
            patched.setattr(Pkcs11KeyStore, "_kcv", staticmethod(refused))
            if make == "generate":
                store.generate_bdk("BDK")
            else:
                store.combine_components("BDK", _split(os.urandom(16)))
        assert store.labels() == []
