"""Checks of what a unit presents before it gets anything: its attestation chain and its identity CSR.

A unit's certificates are hostile input: anything that does not parse, verify or fit is refused with a typed
:class:`keys.errors.AttestationError`, and nothing from the certificates is echoed in the error.  The chain is
walked here with ``cryptography`` rather than a general path builder, because the rules are narrow: leaf first,
each certificate issued by the next, every key ECDSA P-256, every issuer a CA within its path length, each
certificate valid now, the top anchored on one of the station's trusted manufacturer roots (the same
certificate, or a root of the issuer's name whose key verifies it) that is valid now too, and the leaf an end
entity whose key may sign (it signs the identity statement) naming the unit's serial (CN).  A critical extension
other than basicConstraints and keyUsage (the two enforced here) refuses its certificate (RFC 5280 4.2).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from i18n import N_

from .errors import (
    AttestationChainBroken,
    AttestationChainUnknown,
    AttestationRootExpired,
    AttestationRootsInvalid,
    AttestationWrongUnit,
    CsrInvalid,
)

MAX_CHAIN = 8
"""More certificates than any manufacturer chain has: a longer one is refused before any is parsed."""
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)
_PROCESSED = frozenset({x509.BasicConstraints.oid, x509.KeyUsage.oid})
"""The only extensions a certificate here may mark critical: the ones this module enforces."""
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)


def verify_chain(
    chain: Sequence[bytes], roots: Sequence[bytes], serial: str, *, now: datetime.datetime | None = None
) -> ec.EllipticCurvePublicKey:
    """The attestation public key of the leaf of ``chain`` (DER, leaf first), once the chain checks out.

    Raises :class:`AttestationChainUnknown` when no trusted root anchors it, :class:`AttestationRootExpired` when
    the root that does is outside its validity, :class:`AttestationChainBroken` for a signature, validity, CA
    flag, path length, leaf constraint, critical extension, key type or encoding that fails, and
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
        if not _is_valid(path[-1], moment):
            raise AttestationRootExpired()
        _check_leaf(path[0])
        for depth, certificate in enumerate(path):
            _check_key(certificate)
            if _has_unprocessed_critical(certificate):
                reason = N_("a certificate has a critical extension this station does not process")
                raise AttestationChainBroken(reason=reason)
            if not _is_valid(certificate, moment):
                raise AttestationChainBroken(reason=N_("a certificate is expired or not yet valid"))
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
        parsed = [(bytes(der), x509.load_der_x509_certificate(bytes(der))) for der in roots]
        unprocessed = any(_has_unprocessed_critical(root) for _, root in parsed)
    except _PARSE_ERRORS:
        raise AttestationRootsInvalid(reason=N_("a trusted root is not a DER X.509 certificate")) from None
    if unprocessed:
        raise AttestationRootsInvalid(
            reason=N_("a trusted root has a critical extension this station does not process")
        )
    return parsed


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


def _is_valid(certificate: x509.Certificate, moment: datetime.datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _has_unprocessed_critical(certificate: x509.Certificate) -> bool:
    """A critical extension this module does not enforce (NameConstraints, policies, a maker's own): ignoring it
    would accept what its issuer meant to forbid, so its certificate is refused (RFC 5280 4.2)."""
    return any(extension.critical and extension.oid not in _PROCESSED for extension in certificate.extensions)


def _check_leaf(certificate: x509.Certificate) -> None:
    """The leaf is an end entity (basicConstraints absent, as RFC 5280 allows, or not a CA) whose key may sign
    the identity statement: with a keyUsage, digitalSignature and no keyCertSign."""
    constraints = _extension(certificate, x509.BasicConstraints)
    usage = _extension(certificate, x509.KeyUsage)
    if (constraints is not None and constraints.ca) or (usage is not None and usage.key_cert_sign):
        raise AttestationChainBroken(reason=N_("the unit's certificate is a CA certificate"))
    if usage is not None and not usage.digital_signature:
        raise AttestationChainBroken(reason=N_("the unit's certificate does not allow its key to sign"))


def _check_issuer(certificate: x509.Certificate, below: int) -> None:
    """``certificate`` issued another with ``below`` CA certificates under it down to the leaf: it must be a CA
    (basicConstraints) allowed to sign certificates (keyUsage, when present) at that depth (pathLenConstraint)."""
    constraints = _extension(certificate, x509.BasicConstraints)
    usage = _extension(certificate, x509.KeyUsage)
    if constraints is None or not constraints.ca or (usage is not None and not usage.key_cert_sign):
        raise AttestationChainBroken(reason=N_("an issuing certificate is not a CA"))
    if constraints.path_length is not None and below > constraints.path_length:
        raise AttestationChainBroken(reason=N_("the chain is longer than an issuer's path length allows"))


def _extension(certificate: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    """The value of ``certificate``'s extension of type ``kind``, or None when it has none."""
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC; a naive one is taken as UTC already (certificates carry UTC times)."""
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)


def _is_p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
