"""Key stores' signing keys (the provisioning CA's): made and used inside the store, on both stores."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import test_keys_store
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_keys_store import SOFTHSM_MODULE, _forms, _pkcs11, _software

from keys.errors import (
    KeyStoreCertificateInvalid,
    KeyStoreLabelTaken,
    KeyStoreLabelUnknown,
)
from keys.store import KeyStore

softhsm_token = test_keys_store.softhsm_token  # the key store tests' fixtures: a throwaway SoftHSM2 token,
store = test_keys_store.store  # and each test run on both stores


# --- signing keys (the provisioning CA's) -----------------------------------------------------------


def _self_signed(public_key: bytes, private: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """A certificate of ``public_key`` (DER SPKI) made with ``cryptography``, signed by a throwaway key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder(
        issuer_name=name,
        subject_name=name,
        public_key=serialization.load_der_public_key(public_key),  # type: ignore[arg-type]
        serial_number=x509.random_serial_number(),
        not_valid_before=now,
        not_valid_after=now + datetime.timedelta(days=1),
    )
    return builder.sign(private or ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(
        serialization.Encoding.DER
    )


def test_signing_keys_sign_verifiably_in_their_own_namespace(store: KeyStore) -> None:
    store.generate_bdk("CA")
    public = store.generate_signing_key("CA")
    store.generate_signing_key("other")
    assert store.signing_labels() == ["CA", "other"] and store.labels() == ["CA"]
    assert store.signing_public_key("CA") == public
    key = serialization.load_der_public_key(public)
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    for data in (b"", b"statement", os.urandom(5000)):
        signature = store.sign("CA", data)
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))  # DER, over SHA-256 of the data
    with pytest.raises(InvalidSignature):
        key.verify(store.sign("other", b"statement"), b"statement", ec.ECDSA(hashes.SHA256()))


def test_signing_labels_are_never_replaced_and_unknown_ones_refused(store: KeyStore) -> None:
    public = store.generate_signing_key("CA")
    with pytest.raises(KeyStoreLabelTaken):
        store.generate_signing_key("CA")
    assert store.signing_public_key("CA") == public
    store.generate_bdk("BDK")
    for call in (store.signing_public_key, store.certificate, lambda label: store.sign(label, b"x")):
        with pytest.raises(KeyStoreLabelUnknown):
            call("BDK")  # a BDK's label names no signing key
    with pytest.raises(KeyStoreLabelUnknown):
        store.set_certificate("absent", _self_signed(public))


def test_a_certificate_is_kept_beside_its_key_and_only_its_own(store: KeyStore) -> None:
    public = store.generate_signing_key("CA")
    other = store.generate_signing_key("other")
    assert store.certificate("CA") is None
    first, second = _self_signed(public), _self_signed(public)
    store.set_certificate("CA", first)
    assert store.certificate("CA") == first and store.certificate("other") is None
    store.set_certificate("CA", second)
    assert store.certificate("CA") == second
    for refused in (_self_signed(other), b"not a certificate", second[:-1]):
        with pytest.raises(KeyStoreCertificateInvalid):
            store.set_certificate("CA", refused)
    assert store.certificate("CA") == second


def test_signing_keys_and_certificates_persist(tmp_path: Path, softhsm_token: str) -> None:
    for reopen in (lambda: _software(tmp_path / "keystore.json"), lambda: _pkcs11(softhsm_token)):
        with reopen() as store:
            public = store.generate_signing_key("CA")
            certificate = _self_signed(public)
            store.set_certificate("CA", certificate)
        with reopen() as again:
            assert again.signing_labels() == ["CA"] and again.signing_public_key("CA") == public
            assert again.certificate("CA") == certificate
            serialization.load_der_public_key(public).verify(  # type: ignore[union-attr]
                again.sign("CA", b"x"), b"x", ec.ECDSA(hashes.SHA256())
            )


def test_pkcs11_signing_key_is_sensitive_non_extractable_and_on_the_token(softhsm_token: str) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    with _pkcs11(softhsm_token) as store:
        store.generate_signing_key("CA")
        store.set_certificate("CA", _self_signed(store.signing_public_key("CA")))
        session = store._session  # type: ignore[attr-defined]
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC, label="CA")
        assert private[Attribute.SENSITIVE] and private[Attribute.ALWAYS_SENSITIVE] and private[Attribute.TOKEN]
        assert not private[Attribute.EXTRACTABLE] and private[Attribute.NEVER_EXTRACTABLE]
        assert not private[Attribute.DERIVE] and not private[Attribute.UNWRAP]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[Attribute.VALUE]
        (certificate,) = session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: "CA"})
        assert certificate[Attribute.TOKEN]


def test_software_file_holds_no_clear_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    with _software(path) as store:
        store.generate_signing_key("CA")
        private = store._signing["CA"]  # type: ignore[attr-defined]
        scalar = private.private_numbers().private_value.to_bytes(32, "big")
        pkcs8 = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    content = path.read_bytes()
    for secret in (scalar, pkcs8):
        for form in _forms(secret):
            assert form not in content


def test_doctor_names_missing_ec_mechanisms(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token with the AES mechanisms but not those of the provisioning CA's signing key is a problem."""
    import keys.store_pkcs11
    from provisioning.doctor import Status, check_hsm_token

    offered = [SimpleNamespace(name=name) for name in keys.store_pkcs11.AES_MECHANISMS]
    token = SimpleNamespace(slot=SimpleNamespace(get_mechanisms=lambda: offered))
    monkeypatch.setenv("NAIAD_PKCS11_MODULE", SOFTHSM_MODULE)
    monkeypatch.setenv("NAIAD_PKCS11_TOKEN", "AES only")
    monkeypatch.setattr(keys.store_pkcs11, "open_token", lambda config: token)
    result = check_hsm_token()
    assert result.status is Status.PROBLEM and "EC_KEY_PAIR_GEN, ECDSA" in result.detail
