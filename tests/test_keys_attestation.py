"""Attestation checks: a unit's chain must lead to a trusted root and name the unit; its CSR must be its own."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.attestation import check_csr, load_roots, verify_chain
from keys.errors import (
    AttestationChainBroken,
    AttestationChainUnknown,
    AttestationError,
    AttestationRootExpired,
    AttestationRootsInvalid,
    AttestationWrongUnit,
    CsrInvalid,
)

SERIAL = "NAIAD-0001"
NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
DER = serialization.Encoding.DER
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
NOT_P256 = pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 2048),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["P-384", "RSA", "Ed25519"],
)


@dataclass
class Issued:
    key: Key
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(DER)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    common_name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = True,
    path_length: int | None = None,
    key: Key | None = None,
    days: tuple[int, int] = (-1, 365),
    basic_constraints: bool = True,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """A certificate for ``common_name`` issued by ``issuer`` (self-signed when None), made with cryptography."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder(
        issuer_name=issuer.certificate.subject if issuer else _name(common_name),
        subject_name=_name(common_name),
        public_key=key.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=NOW + datetime.timedelta(days=days[0]),
        not_valid_after=NOW + datetime.timedelta(days=days[1]),
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    signer = issuer.key if issuer else key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(key, builder.sign(signer, algorithm))


@pytest.fixture
def maker() -> Issued:
    return _issue("Simulated manufacturer root CA")


def _leaf(issuer: Issued, serial: str = SERIAL, **options: object) -> Issued:
    return _issue(serial, issuer, ca=False, **options)  # type: ignore[arg-type]


def _usage(
    *, digital_signature: bool = False, key_agreement: bool = False, key_cert_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, False, False, key_agreement, key_cert_sign, False, False, False)


def test_a_good_chain_gives_the_attestation_key(maker: Issued) -> None:
    leaf = _leaf(maker)
    for chain in ([leaf.der], [leaf.der, maker.der]):  # with or without the root itself
        key = verify_chain(chain, [maker.der], SERIAL, now=NOW)
        assert key.public_bytes(
            DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == leaf.key.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_chain_through_an_intermediate_within_path_lengths(maker: Issued) -> None:
    root = _issue("root", path_length=1)
    intermediate = _issue("factory", root, path_length=0)
    leaf = _leaf(intermediate)
    assert verify_chain([leaf.der, intermediate.der], [maker.der, root.der], SERIAL, now=NOW)
    too_deep = _issue("line", intermediate, path_length=0)
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(too_deep).der, too_deep.der, intermediate.der], [root.der], SERIAL, now=NOW)


def test_an_unknown_root_is_refused(maker: Issued) -> None:
    counterfeit = _issue("Simulated manufacturer root CA")  # the same name, another key
    leaf = _leaf(counterfeit)
    with pytest.raises(AttestationChainUnknown):
        verify_chain([leaf.der, counterfeit.der], [maker.der], SERIAL, now=NOW)
    stranger = _issue("Someone else's CA")
    with pytest.raises(AttestationChainUnknown):
        verify_chain([_leaf(stranger).der], [maker.der], SERIAL, now=NOW)


def test_a_broken_signature_is_refused(maker: Issued) -> None:
    der = bytearray(_leaf(maker).der)
    der[-5] ^= 0x01  # inside the signature value
    for chain in ([bytes(der)], [bytes(der), maker.der]):
        with pytest.raises(AttestationChainBroken):
            verify_chain(chain, [maker.der], SERIAL, now=NOW)


def test_now_may_be_naive_utc_or_another_zone(maker: Issued) -> None:
    leaf = _leaf(maker, days=(-1, 1))
    for now in (NOW.replace(tzinfo=None), NOW.astimezone(datetime.timezone(datetime.timedelta(hours=8)))):
        assert verify_chain([leaf.der], [maker.der], SERIAL, now=now)
    with pytest.raises(AttestationChainBroken):
        verify_chain([leaf.der], [maker.der], SERIAL, now=(NOW + datetime.timedelta(days=2)).replace(tzinfo=None))


@pytest.mark.parametrize("days", [(-30, -1), (1, 30)], ids=["expired", "not yet valid"])
def test_a_leaf_outside_its_validity_is_refused(maker: Issued, days: tuple[int, int]) -> None:
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(maker, days=days).der], [maker.der], SERIAL, now=NOW)


@pytest.mark.parametrize("basic_constraints", [True, False], ids=["CA false", "no basic constraints"])
def test_an_issuer_that_is_not_a_ca_is_refused(maker: Issued, basic_constraints: bool) -> None:
    not_a_ca = _issue("unit 7", maker, ca=False, basic_constraints=basic_constraints)
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(not_a_ca).der, not_a_ca.der], [maker.der], SERIAL, now=NOW)


def test_an_issuer_whose_key_usage_forbids_certificate_signing_is_refused(maker: Issued) -> None:
    signer = _issue("signer", maker, extensions=[(_usage(digital_signature=True), True)])
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(signer).der, signer.der], [maker.der], SERIAL, now=NOW)


def test_a_leaf_that_is_a_ca_is_refused(maker: Issued) -> None:
    with pytest.raises(AttestationChainBroken, match="CA certificate"):
        verify_chain([_issue(SERIAL, maker).der], [maker.der], SERIAL, now=NOW)


def test_a_leaf_without_basic_constraints_is_an_end_entity(maker: Issued) -> None:
    """RFC 5280 4.2.1.9 lets an end entity's certificate leave basicConstraints out: it is not a CA."""
    assert verify_chain([_leaf(maker, basic_constraints=False).der], [maker.der], SERIAL, now=NOW)


@pytest.mark.parametrize(
    "usage",
    [_usage(key_agreement=True), _usage(digital_signature=True, key_cert_sign=True), _usage(key_cert_sign=True)],
    ids=["no digitalSignature", "digitalSignature and keyCertSign", "keyCertSign only"],
)
def test_a_leaf_whose_key_usage_does_not_fit_a_signing_end_entity_is_refused(
    maker: Issued, usage: x509.KeyUsage
) -> None:
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(maker, extensions=[(usage, True)]).der], [maker.der], SERIAL, now=NOW)
    signing = _usage(digital_signature=True, key_agreement=True)
    assert verify_chain([_leaf(maker, extensions=[(signing, True)]).der], [maker.der], SERIAL, now=NOW)


_PRIVATE = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
_NAME_CONSTRAINTS = x509.NameConstraints(
    permitted_subtrees=[x509.DirectoryName(_name("elsewhere"))], excluded_subtrees=None
)


@pytest.mark.parametrize("extension", [_PRIVATE, _NAME_CONSTRAINTS], ids=["private", "name constraints"])
def test_a_critical_extension_the_check_does_not_process_is_refused(
    maker: Issued, extension: x509.ExtensionType
) -> None:
    """RFC 5280 4.2: a critical extension that is not processed refuses its certificate, wherever it is."""
    factory = _issue("factory", maker, path_length=0, extensions=[(extension, True)])
    with pytest.raises(AttestationChainBroken, match="critical extension"):
        verify_chain([_leaf(factory).der, factory.der], [maker.der], SERIAL, now=NOW)
    if isinstance(extension, x509.UnrecognizedExtension):  # a leaf's own; and not critical, it is ignored
        with pytest.raises(AttestationChainBroken, match="critical extension"):
            verify_chain([_leaf(maker, extensions=[(extension, True)]).der], [maker.der], SERIAL, now=NOW)
        assert verify_chain([_leaf(maker, extensions=[(extension, False)]).der], [maker.der], SERIAL, now=NOW)


def test_a_root_with_a_critical_extension_the_check_does_not_process_is_refused(tmp_path: Path) -> None:
    root = _issue("constrained root", extensions=[(_NAME_CONSTRAINTS, True)])
    with pytest.raises(AttestationRootsInvalid, match="critical extension"):
        verify_chain([_leaf(root).der], [root.der], SERIAL, now=NOW)
    path = tmp_path / "ca.pem"
    path.write_bytes(root.certificate.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(AttestationRootsInvalid, match="critical extension"):
        load_roots(path)


@pytest.mark.parametrize("days", [(-30, -1), (1, 30)], ids=["expired", "not yet valid"])
def test_a_trusted_root_outside_its_validity_anchors_nothing(days: tuple[int, int]) -> None:
    root = _issue("Simulated manufacturer root CA", days=days)
    leaf = _leaf(root, days=(-1, 365))  # the leaf itself is valid
    for chain in ([leaf.der], [leaf.der, root.der]):  # anchored by name, or the root sent by the unit
        with pytest.raises(AttestationRootExpired) as caught:
            verify_chain(chain, [root.der], SERIAL, now=NOW)
        assert isinstance(caught.value, AttestationRootsInvalid)
        assert caught.value.remedy_text is not None and "current root certificates" in caught.value.remedy_text


def test_a_chain_naming_another_unit_is_refused(maker: Issued) -> None:
    with pytest.raises(AttestationWrongUnit) as caught:
        verify_chain([_leaf(maker, "NAIAD-0002").der], [maker.der], SERIAL, now=NOW)
    assert "NAIAD-0002" not in str(caught.value) + repr(caught.value.params)


@NOT_P256
def test_keys_other_than_p256_are_refused(maker: Issued, key: Key) -> None:
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(maker, key=key).der], [maker.der], SERIAL, now=NOW)
    other_root = _issue("Simulated manufacturer root CA", key=key)
    with pytest.raises(AttestationChainBroken):
        verify_chain([_leaf(other_root).der, other_root.der], [other_root.der], SERIAL, now=NOW)


@pytest.mark.parametrize("chain", [[], [b""], [b"\x30\x03\x02\x01\x01"], [b"garbage"] * 2], ids=str)
def test_empty_and_garbage_chains_are_refused(maker: Issued, chain: list[bytes]) -> None:
    with pytest.raises(AttestationChainBroken):
        verify_chain(chain, [maker.der], SERIAL, now=NOW)


def test_a_chain_longer_than_any_maker_uses_is_refused(maker: Issued) -> None:
    with pytest.raises(AttestationChainBroken):
        verify_chain([maker.der] * 9, [maker.der], SERIAL, now=NOW)


@settings(max_examples=200, deadline=None)
@given(chain=st.lists(st.binary(max_size=300), max_size=4), serial=st.text(max_size=12))
def test_random_bytes_as_a_chain_raise_only_attestation_errors(chain: list[bytes], serial: str) -> None:
    root = _ROOT.der
    with pytest.raises(AttestationError):
        verify_chain(chain, [root], serial, now=NOW)
    with pytest.raises(AttestationError):
        check_csr(chain[0] if chain else b"", serial)


@pytest.mark.filterwarnings("ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning")
@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.binary(min_size=0, max_size=4))
def test_a_good_chain_altered_anywhere_raises_only_attestation_errors(position: int, replacement: bytes) -> None:
    original = _ROOT_LEAF.der
    at = position % len(original)
    altered = original[:at] + replacement + original[at + 1 :]
    try:
        verify_chain([altered, _ROOT.der], [_ROOT.der], SERIAL, now=NOW)
    except AttestationError:
        return
    assert x509.load_der_x509_certificate(altered).tbs_certificate_bytes == _ROOT_LEAF.certificate.tbs_certificate_bytes


def test_a_certificate_of_an_unknown_x509_version_is_refused(maker: Issued) -> None:
    """Found by the property test above: a version byte of 1 (not v1, v2 or v3) raised InvalidVersion."""
    der = _leaf(maker).der
    version_3 = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2
    assert der.count(version_3) == 1
    with pytest.raises(AttestationChainBroken):
        verify_chain([der.replace(version_3, version_3[:-1] + b"\x01")], [maker.der], SERIAL, now=NOW)


_ROOT = _issue("hypothesis root")
_ROOT_LEAF = _leaf(_ROOT)


# --- trusted roots ----------------------------------------------------------------------------------


def test_roots_load_from_a_pem_file(maker: Issued, tmp_path: Path) -> None:
    other = _issue("second maker")
    path = tmp_path / "ca.pem"
    path.write_bytes(b"".join(i.certificate.public_bytes(serialization.Encoding.PEM) for i in (maker, other)))
    assert load_roots(path) == [maker.der, other.der]


@pytest.mark.parametrize(
    "content", [None, b"", b"not pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_unusable_roots_are_refused(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AttestationRootsInvalid):
        load_roots(path)


def test_no_roots_or_garbage_roots_refuse_every_chain(maker: Issued) -> None:
    for roots in ([], [b"garbage"]):
        with pytest.raises(AttestationRootsInvalid):
            verify_chain([_leaf(maker).der], roots, SERIAL, now=NOW)


# --- identity CSRs ----------------------------------------------------------------------------------


def _csr(serial: str = SERIAL, key: Key | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = x509.CertificateSigningRequestBuilder().subject_name(_name(serial)).sign(key, algorithm)
    return request.public_bytes(DER)


def test_a_good_csr_gives_its_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert check_csr(_csr(key=key), SERIAL).public_numbers() == key.public_key().public_numbers()


def test_a_csr_with_a_bad_signature_is_refused() -> None:
    der = bytearray(_csr())
    der[-5] ^= 0x01
    with pytest.raises(CsrInvalid):
        check_csr(bytes(der), SERIAL)


def test_a_csr_naming_another_unit_is_refused() -> None:
    with pytest.raises(CsrInvalid):
        check_csr(_csr("NAIAD-0002"), SERIAL)


@NOT_P256
def test_a_csr_with_a_key_other_than_p256_is_refused(key: Key) -> None:
    with pytest.raises(CsrInvalid):
        check_csr(_csr(key=key), SERIAL)
