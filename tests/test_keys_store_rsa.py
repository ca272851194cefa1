"""RSA-2048 signing keys (the station's merchant platform key) in both key stores, SoftHSM2 included."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import test_keys_store
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from test_keys_store import _forms, _pkcs11, _software

from enrollment import gateway
from keys.errors import KeyStoreFileDamaged, KeyStoreLabelTaken, SigningKeyAlgorithmWrong
from keys.store import KeyStore, SigningAlgorithm, ensure_signing_key

softhsm_token = test_keys_store.softhsm_token  # a throwaway SoftHSM2 token,
store = test_keys_store.store  # and each test run on both stores

RSA = SigningAlgorithm.RSA_2048
EC = SigningAlgorithm.EC_P256


def _rsa(public: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_der_public_key(public)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_rsa_key_is_rsa_2048_and_signs_pkcs1_v15_sha256(store: KeyStore) -> None:
    public = store.generate_signing_key("platform", RSA)
    key = _rsa(public)
    assert key.key_size == 2048 and key.public_numbers().e == 65537
    assert store.signing_algorithm("platform") is RSA and store.signing_public_key("platform") == public
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for data in (b"", b"app_id=2026000000000001&method=iot.device.bind", os.urandom(5000)):
        signature = store.sign("platform", data)
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        # what the gateway checks: RSA2 (RSA-SHA256) over the sign string, base64
        assert gateway.verify(gateway.load_public_key(pem), data, base64.b64encode(signature).decode())
    assert store.sign("platform", b"x") == store.sign("platform", b"x")  # PKCS#1 v1.5 is deterministic


def test_ec_and_rsa_keys_share_one_namespace_and_none_is_replaced(store: KeyStore) -> None:
    rsa_public, made = ensure_signing_key(store, "second", RSA)
    assert made and store.signing_algorithm("second") is RSA
    ec_public = store.generate_signing_key("first")  # the default stays EC P-256 (the provisioning CA's)
    store.generate_bdk("second")  # BDKs are a namespace apart
    for label, algorithm in (("first", RSA), ("first", EC), ("second", EC), ("second", RSA)):
        with pytest.raises(KeyStoreLabelTaken):
            store.generate_signing_key(label, algorithm)
    assert ensure_signing_key(store, "second", RSA) == (rsa_public, False)
    with pytest.raises(SigningKeyAlgorithmWrong) as refused:
        ensure_signing_key(store, "first", RSA)
    assert refused.value.params == {"label": "first", "algorithm": "ec-p256", "expected": "rsa-2048"}
    assert store.signing_labels() == ["first", "second"]
    assert store.signing_public_key("second") == rsa_public and store.signing_algorithm("second") is RSA
    assert store.signing_public_key("first") == ec_public and store.signing_algorithm("first") is EC
    key = serialization.load_der_public_key(ec_public)
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    key.verify(store.sign("first", b"statement"), b"statement", ec.ECDSA(hashes.SHA256()))


def test_a_reopened_software_store_keeps_its_rsa_key(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    with _software(path) as opened:
        public = opened.generate_signing_key("platform", RSA)
        opened.generate_signing_key("CA")
    with _software(path) as again:
        assert again.signing_labels() == ["CA", "platform"]
        assert again.signing_algorithm("platform") is RSA and again.signing_algorithm("CA") is EC
        assert again.signing_public_key("platform") == public
        _rsa(public).verify(again.sign("platform", b"x"), b"x", padding.PKCS1v15(), hashes.SHA256())


def test_pkcs11_rsa_key_stays_on_the_token_and_never_leaves_it(softhsm_token: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    with _pkcs11(softhsm_token) as opened:
        public_der = opened.generate_signing_key("platform", RSA)
    with _pkcs11(softhsm_token) as opened:  # a token object: the reopened store has it
        assert opened.signing_labels() == ["platform"] and opened.signing_algorithm("platform") is RSA
        assert opened.signing_public_key("platform") == public_der
        _rsa(public_der).verify(opened.sign("platform", b"x"), b"x", padding.PKCS1v15(), hashes.SHA256())
        session = opened._session  # type: ignore[attr-defined]
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, label="platform")
        assert private[Attribute.SENSITIVE] and private[Attribute.ALWAYS_SENSITIVE] and private[Attribute.TOKEN]
        assert not private[Attribute.EXTRACTABLE] and private[Attribute.NEVER_EXTRACTABLE]
        assert private[Attribute.SIGN] and not private[Attribute.DECRYPT] and not private[Attribute.UNWRAP]
        assert not private[Attribute.MODIFIABLE]
        for secret in (Attribute.PRIVATE_EXPONENT, Attribute.PRIME_1, Attribute.PRIME_2):
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                private[secret]
        wrapping = session.generate_key(KeyType.AES, 256, capabilities=pkcs11.MechanismFlag.WRAP)
        with pytest.raises(pkcs11.exceptions.PKCS11Error):  # not wrappable out either
            wrapping.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, label="platform")
        assert public[Attribute.MODULUS_BITS] == 2048 and public[Attribute.VERIFY] and not public[Attribute.ENCRYPT]


def test_software_file_holds_no_clear_rsa_key(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    with _software(path) as opened:
        opened.generate_signing_key("platform", RSA)
        private = opened._signing["platform"]
        assert isinstance(private, rsa.RSAPrivateKey)
        numbers = private.private_numbers()
        secrets = [n.to_bytes((n.bit_length() + 7) // 8, "big") for n in (numbers.d, numbers.p, numbers.q)]
        secrets.append(
            private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    content = path.read_bytes()
    for secret in secrets:
        for form in _forms(secret):
            assert form not in content


def test_software_file_with_an_rsa_key_of_another_size_is_damaged(tmp_path: Path) -> None:
    """Only RSA-2048 and EC P-256 keys are read back: anything else in the file was not written by a store."""
    path = tmp_path / "keystore.json"
    with _software(path) as opened:
        opened.generate_bdk("BDK")
        opened._signing["weak"] = rsa.generate_private_key(65537, 1024)
        opened._save()
    with pytest.raises(KeyStoreFileDamaged):
        _software(path)
