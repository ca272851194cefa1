"""The provisioning CA on both key stores: certificates built with asn1crypto, checked with cryptography."""

from __future__ import annotations

import datetime

import pytest
import test_keys_store
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keys import ca as ca_module
from keys.attestation import verify_chain
from keys.ca import CA_DAYS, DEFAULT_LABEL, MAX_DAYS, SERIAL_BITS, ProvisioningCA
from keys.errors import CsrInvalid, ProvisioningCAError, ProvisioningCAExpired
from keys.store import KeyStore

SERIAL = "NAIAD-0001"
softhsm_token = test_keys_store.softhsm_token  # the key store tests' fixtures: a throwaway SoftHSM2 token,
store = test_keys_store.store  # and each test run on both stores
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _csr(key: ec.EllipticCurvePrivateKey, serial: str = SERIAL) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.DER)


def test_the_ca_certificate_is_self_signed_by_the_stores_key(store: KeyStore) -> None:
    ca = ProvisioningCA.ensure(store, common_name="Station 7 provisioning CA")
    certificate = x509.load_der_x509_certificate(ca.certificate)
    certificate.verify_directly_issued_by(certificate)
    assert certificate.public_key().public_bytes(*SPKI) == store.signing_public_key(DEFAULT_LABEL)
    assert certificate.subject.rfc4514_string() == "CN=Station 7 provisioning CA" == certificate.issuer.rfc4514_string()
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and usage.value.digital_signature
    assert certificate.signature_hash_algorithm is not None and certificate.signature_hash_algorithm.name == "sha256"
    assert store.signing_labels() == [DEFAULT_LABEL]


def test_ensure_keeps_an_existing_ca_and_finishes_a_half_made_one(store: KeyStore) -> None:
    first = ProvisioningCA.ensure(store).certificate
    assert ProvisioningCA.ensure(store).certificate == first and ProvisioningCA(store).certificate == first
    store.generate_signing_key("half made")  # a CA whose key was made, then the station stopped
    with pytest.raises(ProvisioningCAError):
        _ = ProvisioningCA(store, "half made").certificate
    finished = ProvisioningCA.ensure(store, "half made").certificate
    assert x509.load_der_x509_certificate(finished).public_key().public_bytes(*SPKI) == store.signing_public_key(
        "half made"
    )


def test_an_issued_certificate_verifies_and_says_what_it_is_for(store: KeyStore) -> None:
    ca = ProvisioningCA.ensure(store)
    unit = ec.generate_private_key(ec.SECP256R1())
    issued = ca.issue(_csr(unit), SERIAL, days=30)
    certificate = x509.load_der_x509_certificate(issued.der)
    ca_certificate = x509.load_der_x509_certificate(ca.certificate)
    certificate.verify_directly_issued_by(ca_certificate)
    assert certificate.public_key().public_bytes(*SPKI) == unit.public_key().public_bytes(*SPKI)
    assert certificate.subject.rfc4514_string() == f"CN={SERIAL}"
    assert issued.serial_number == format(certificate.serial_number, "x")  # as the unit reports it
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_agreement
    assert not usage.value.key_cert_sign and not usage.value.key_encipherment
    authority = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    subject_key = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == subject_key.digest
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=30) <= lifetime <= datetime.timedelta(days=30, minutes=10)
    assert verify_chain([issued.der], [ca.certificate], SERIAL) == certificate.public_key()


def test_serials_are_random_positive_127_bit_and_distinct(store: KeyStore) -> None:
    ca = ProvisioningCA.ensure(store)
    unit = ec.generate_private_key(ec.SECP256R1())
    serials = [x509.load_der_x509_certificate(ca.issue(_csr(unit), SERIAL).der).serial_number for _ in range(20)]
    assert len(set(serials)) == len(serials)
    assert all(s.bit_length() == SERIAL_BITS for s in serials)


def test_a_leaf_never_outlives_the_ca(store: KeyStore) -> None:
    ca = ProvisioningCA.ensure(store)
    issued = ca.issue(_csr(ec.generate_private_key(ec.SECP256R1())), SERIAL, days=100 * 365)
    ca_end = x509.load_der_x509_certificate(ca.certificate).not_valid_after_utc
    assert x509.load_der_x509_certificate(issued.der).not_valid_after_utc == ca_end


def test_a_bad_csr_gets_no_certificate(store: KeyStore) -> None:
    ca = ProvisioningCA.ensure(store)
    with pytest.raises(CsrInvalid):
        ca.issue(_csr(ec.generate_private_key(ec.SECP256R1()), "NAIAD-0002"), SERIAL)


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1, 10**9], ids=str)
def test_a_validity_outside_1_to_max_days_is_refused(store: KeyStore, days: int) -> None:
    ca = ProvisioningCA.ensure(store)
    with pytest.raises(ProvisioningCAError, match="1 to 36500 days"):
        ca.issue(_csr(ec.generate_private_key(ec.SECP256R1())), SERIAL, days=days)
    assert ca.issue(_csr(ec.generate_private_key(ec.SECP256R1())), SERIAL, days=MAX_DAYS)


@pytest.mark.parametrize("shift", [CA_DAYS + 30, -1], ids=["expired", "not yet valid"])
def test_a_ca_outside_its_validity_issues_nothing(store: KeyStore, monkeypatch: pytest.MonkeyPatch, shift: int) -> None:
    ca = ProvisioningCA.ensure(store)
    now = ca_module._now()
    monkeypatch.setattr(ca_module, "_now", lambda: now + datetime.timedelta(days=shift))
    with pytest.raises(ProvisioningCAExpired) as caught:
        ca.issue(_csr(ec.generate_private_key(ec.SECP256R1())), SERIAL)
    assert caught.value.remedy_text is not None and "make a new provisioning CA" in caught.value.remedy_text


@pytest.mark.parametrize(
    "extensions",
    [
        [{"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}}],
        [
            {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": True}},
            {"extn_id": "key_usage", "critical": True, "extn_value": {"digital_signature"}},
        ],
        [],
    ],
    ids=["not a CA", "no keyCertSign", "no extensions"],
)
def test_a_ca_whose_certificate_may_not_sign_certificates_issues_nothing(
    store: KeyStore, extensions: list[dict[str, object]]
) -> None:
    ca = ProvisioningCA.ensure(store)
    public = asn1_keys.PublicKeyInfo.load(store.signing_public_key(DEFAULT_LABEL))
    name = asn1_x509.Name.build({"common_name": "not a CA"})
    now = ca_module._now()
    validity = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    store.set_certificate(
        DEFAULT_LABEL, ca_module._certificate(store, DEFAULT_LABEL, name, name, public, validity, extensions)
    )
    with pytest.raises(ProvisioningCAError, match="does not allow it to sign certificates"):
        ca.issue(_csr(ec.generate_private_key(ec.SECP256R1())), SERIAL)


def test_the_ca_signs_statements_a_unit_verifies_with_the_certificate(store: KeyStore) -> None:
    ca = ProvisioningCA.ensure(store)
    public = x509.load_der_x509_certificate(ca.certificate).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(ca.sign(b"load statement"), b"load statement", ec.ECDSA(hashes.SHA256()))
