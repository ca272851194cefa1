"""Checks of what a unit presents before it gets anything: its attestation chain and its identity CSR.

A unit's certificates are hostile input: anything that does not parse, verify or fit is refused with a typed
:class:`keys.errors.AttestationError`, and nothing from the certificates is echoed in the error.  The chain is
walked here with ``cryptography`` rather than a general path builder, because the rules are narrow: leaf first,
each certificate issued by the next, every key ECDSA P-256, every issuer a CA within its path length, each
certificate valid now, the top anchored on one of the station's trusted manufacturer roots (the same
certificate, or a root of the issuer's name whose key verifies it), and the leaf naming the unit's serial (CN).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from i18n import N_

from .errors import (
    AttestationChainBroken,
    AttestationChainUnknown,
    AttestationRootsInvalid,
    AttestationWrongUnit,
    CsrInvalid,
)

MAX_CHAIN = 8
"""More certificates than any manufacturer chain has: a longer one is refused before any is parsed."""
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def verify_chain(
    chain: Sequence[bytes], roots: Sequence[bytes], serial: str, *, now: datetime.datetime | None = None
) -> ec.EllipticCurvePublicKey:
    """The attestation public key of the leaf of ``chain`` (DER, leaf first), once the chain checks out.

    Raises :class:`AttestationChainUnknown` when no trusted root anchors it, :class:`AttestationChainBroken`
    for a signature, validity, CA flag, path length, key type or encoding that fails, and
    :class:`AttestationWrongUnit` when the leaf's CN is not ``serial``.
    """
    if not chain:
        raise AttestationChainBroken(reason=N_("the unit sent no certificate"))
    if len(chain) > MAX_CHAIN:
        raise AttestationChainBroken(reason=N_("the chain has more certificates than allowed"))
    trusted = _parse_roots(roots)
    moment = _utc(now) if now is not None else datetime.datetime.now(datetime.UTC)
    try:
        certificates = [x509.load_der_x509_certificate(bytes(der)) for der in chain]
        path = [*certificates, *_anchor(certificates[-1], trusted)]
        for depth, certificate in enumerate(path):
            _check_key(certificate)
            if depth < len(certificates):
                _check_validity(certificate, moment)
            if depth > 0:
                _check_issuer(certificate, depth - 1)
                _verify_issued(path[depth - 1], certificate)
        leaf = certificates[0]
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        key = leaf.public_key()
    except _PARSE_ERRORS:
        raise AttestationChainBroken(reason=N_("a certificate is not valid DER X.509")) from None
    if len(names) != 1 or names[0].value != serial:
        raise AttestationWrongUnit(serial=serial)
    assert isinstance(key, ec.EllipticCurvePublicKey)  # _check_key
    return key


def check_csr(csr: bytes, serial: str) -> ec.EllipticCurvePublicKey:
    """The public key of ``csr`` (DER PKCS#10), if it is self-signed correctly, names ``serial`` and is P-256."""
    try:
        request = x509.load_der_x509_csr(bytes(csr))
        signed = request.is_signature_valid
        names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        key = request.public_key()
    except _PARSE_ERRORS:
        raise CsrInvalid(reason=N_("it is not a DER PKCS#10 request")) from None
    if not _is_p256(key):
        raise CsrInvalid(reason=N_("its key is not an ECDSA P-256 key"))
    if not signed:
        raise CsrInvalid(reason=N_("its signature does not verify"))
    if len(names) != 1 or names[0].value != serial:
        raise CsrInvalid(reason=N_("it names another unit"))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def load_roots(path: Path | str) -> list[bytes]:
    """The DER certificates of the PEM file ``path`` (one or more): the station's trusted manufacturer roots."""
    try:
        pem = Path(path).read_bytes()
    except OSError:
        raise AttestationRootsInvalid(reason=N_("the roots file cannot be read")) from None
    try:
        roots = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(pem)]
    except _PARSE_ERRORS:
        raise AttestationRootsInvalid(reason=N_("the roots file holds no PEM certificate")) from None
    _parse_roots(roots)
    return roots


def _parse_roots(roots: Sequence[bytes]) -> list[tuple[bytes, x509.Certificate]]:
    if not roots:
        raise AttestationRootsInvalid(reason=N_("no trusted root is configured"))
    try:
        return [(bytes(der), x509.load_der_x509_certificate(bytes(der))) for der in roots]
    except _PARSE_ERRORS:
        raise AttestationRootsInvalid(reason=N_("a trusted root is not a DER X.509 certificate")) from None


def _anchor(top: x509.Certificate, roots: list[tuple[bytes, x509.Certificate]]) -> list[x509.Certificate]:
    """What anchors the chain's top certificate: nothing more when it is a trusted root itself, else that root."""
    der = top.public_bytes(Encoding.DER)
    if any(der == root_der for root_der, _ in roots):
        return []
    if top.issuer == top.subject:  # a root, but not one of ours: a counterfeit maker's, even if named like ours
        raise AttestationChainUnknown()
    candidates = [root for _, root in roots if root.subject == top.issuer]
    if not candidates:
        raise AttestationChainUnknown()
    for root in candidates:
        try:
            _verify_issued(top, root)
        except AttestationChainBroken:
            continue
        return [root]
    raise AttestationChainBroken(reason=N_("a certificate's signature does not verify"))


def _verify_issued(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        raise AttestationChainBroken(reason=N_("a certificate's signature does not verify")) from None


def _check_key(certificate: x509.Certificate) -> None:
    if not _is_p256(certificate.public_key()):
        raise AttestationChainBroken(reason=N_("a certificate's key is not an ECDSA P-256 key"))


def _check_validity(certificate: x509.Certificate, moment: datetime.datetime) -> None:
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise AttestationChainBroken(reason=N_("a certificate is expired or not yet valid"))


def _check_issuer(certificate: x509.Certificate, below: int) -> None:
    """``certificate`` issued another with ``below`` CA certificates under it down to the leaf: it must be a CA
    (basicConstraints) allowed to sign certificates (keyUsage, when present) at that depth (pathLenConstraint)."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise AttestationChainBroken(reason=N_("an issuing certificate is not a CA")) from None
    if not constraints.ca:
        raise AttestationChainBroken(reason=N_("an issuing certificate is not a CA"))
    if constraints.path_length is not None and below > constraints.path_length:
        raise AttestationChainBroken(reason=N_("the chain is longer than an issuer's path length allows"))
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise AttestationChainBroken(reason=N_("an issuing certificate is not a CA"))


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC; a naive one is taken as UTC already (certificates carry UTC times)."""
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)


def _is_p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
