"""The station's provisioning CA: signs each unit's device certificate with a key that never leaves the key store.

The CA key is a signing key of the station's :class:`keys.store.KeyStore` (EC P-256; in an HSM with the PKCS#11
store); its self-signed certificate is kept beside it.  Certificates are assembled with asn1crypto and their
to-be-signed part handed to :meth:`KeyStore.sign`, so no private key is ever in host memory for this.

The same key signs the load and commit statements of a key session (:meth:`ProvisioningCA.sign`): a unit
pins the CA's public key when its device certificate is installed and checks those signatures against it.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from typing import Any, Self

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from i18n import N_

from .attestation import check_csr
from .errors import ProvisioningCAError, ProvisioningCAExpired
from .store import KeyStore

DEFAULT_LABEL = "naiad-provisioning-ca"
DEFAULT_COMMON_NAME = "Naiad provisioning CA"
CA_DAYS = 20 * 365
"""The CA certificate's lifetime: it outlives every device certificate it issues (a leaf never outlives it)."""
MAX_DAYS = 36500
"""The longest validity ``issue`` accepts (100 years): any longer is a mistake, and overflows a date."""
SERIAL_BITS = 127
_BACKDATE = datetime.timedelta(minutes=5)  # a unit's clock a little behind the station's still accepts a fresh cert
_SIGNATURE_ALGORITHM = {"algorithm": "sha256_ecdsa"}  # ecdsa-with-SHA256, parameters absent (RFC 5758)


@dataclass(frozen=True)
class IssuedCertificate:
    """A device certificate (DER) and its serial number as lower-case hex (what the ledger records)."""

    der: bytes
    serial_number: str


def new_serial() -> int:
    """A random positive serial of exactly 127 bits (126 random): unguessable, and 16 bytes in DER."""
    return secrets.randbits(SERIAL_BITS - 1) | 1 << (SERIAL_BITS - 1)


def serial_hex(serial: int) -> str:
    """How a certificate serial is shown and recorded: lower-case hex, no prefix, as a unit reports it."""
    return format(serial, "x")


class ProvisioningCA:
    """The CA whose key is ``label`` in ``store``; :meth:`ensure` creates it on first use."""

    def __init__(self, store: KeyStore, label: str = DEFAULT_LABEL) -> None:
        self._store = store
        self._label = label

    @classmethod
    def ensure(cls, store: KeyStore, label: str = DEFAULT_LABEL, common_name: str = DEFAULT_COMMON_NAME) -> Self:
        """The CA under ``label``, after making its key and self-signed certificate if either is missing."""
        if label not in store.signing_labels():
            store.generate_signing_key(label)
        if store.certificate(label) is None:  # also finishes a CA whose key was made but whose certificate was not
            public = asn1_keys.PublicKeyInfo.load(store.signing_public_key(label))
            name = asn1_x509.Name.build({"common_name": common_name})
            extensions = [
                _extension("basic_constraints", {"ca": True, "path_len_constraint": 0}, critical=True),
                _extension("key_usage", {"digital_signature", "key_cert_sign", "crl_sign"}, critical=True),
                _extension("key_identifier", public.sha1),
            ]
            now = _now()
            validity = (now - _BACKDATE, now + datetime.timedelta(days=CA_DAYS))
            store.set_certificate(label, _certificate(store, label, name, name, public, validity, extensions))
        return cls(store, label)

    @property
    def label(self) -> str:
        return self._label

    @property
    def certificate(self) -> bytes:
        """The CA's self-signed certificate (DER)."""
        certificate = self._store.certificate(self._label)
        if certificate is None:
            raise ProvisioningCAError(reason=N_("the CA's key has no certificate"))
        return certificate

    def issue(self, csr: bytes, serial: str, *, days: int = 3650) -> IssuedCertificate:
        """A device certificate for the key of ``csr`` (checked: :func:`keys.attestation.check_csr`), CN ``serial``.

        Leaf: not a CA; key usage digital signature (the unit's session signatures) and key agreement (ECDH);
        valid for ``days`` (1 to :data:`MAX_DAYS`) but never past the CA's own certificate.  Refused with
        :class:`ProvisioningCAError` when the CA's certificate is not a CA's that may sign certificates, and
        :class:`ProvisioningCAExpired` when it is not valid now (its leaf would end before it starts).
        """
        if not 1 <= days <= MAX_DAYS:
            raise ProvisioningCAError(reason=N_("a certificate must be valid for 1 to 36500 days"))
        key = check_csr(csr, serial)
        public = asn1_keys.PublicKeyInfo.load(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
        issuer = asn1_x509.Certificate.load(self.certificate)
        usage = issuer.key_usage_value
        if not issuer.ca or (usage is not None and "key_cert_sign" not in usage.native):
            raise ProvisioningCAError(reason=N_("the CA's certificate does not allow it to sign certificates"))
        now = _now()
        if not issuer.not_valid_before <= now < issuer.not_valid_after:
            raise ProvisioningCAExpired()
        not_after = min(now + datetime.timedelta(days=days), issuer.not_valid_after)
        extensions = [
            _extension("basic_constraints", {"ca": False}, critical=True),
            _extension("key_usage", {"digital_signature", "key_agreement"}, critical=True),
            _extension("key_identifier", public.sha1),
            _extension("authority_key_identifier", {"key_identifier": issuer.key_identifier}),
        ]
        serial_number = new_serial()
        der = _certificate(
            self._store,
            self._label,
            asn1_x509.Name.build({"common_name": serial}),
            issuer.subject,
            public,
            (now - _BACKDATE, not_after),
            extensions,
            serial_number=serial_number,
        )
        return IssuedCertificate(der, serial_hex(serial_number))

    def sign(self, data: bytes) -> bytes:
        """``data`` signed with the CA key (ECDSA P-256 SHA-256, DER), inside the key store."""
        return self._store.sign(self._label, data)


def _certificate(
    store: KeyStore,
    label: str,
    subject: asn1_x509.Name,
    issuer: asn1_x509.Name,
    public: asn1_keys.PublicKeyInfo,
    validity: tuple[datetime.datetime, datetime.datetime],
    extensions: list[dict[str, Any]],
    *,
    serial_number: int | None = None,
) -> bytes:
    """An X.509 v3 certificate whose signature the store's key ``label`` makes over the to-be-signed part."""
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial_number if serial_number is not None else new_serial(),
            "signature": _SIGNATURE_ALGORITHM,
            "issuer": issuer,
            "validity": {"not_before": _time(validity[0]), "not_after": _time(validity[1])},
            "subject": subject,
            "subject_public_key_info": public,
            "extensions": extensions,
        }
    )
    signature = store.sign(label, tbs.dump())
    return bytes(
        asn1_x509.Certificate(
            {"tbs_certificate": tbs, "signature_algorithm": _SIGNATURE_ALGORITHM, "signature_value": signature}
        ).dump()
    )


def _extension(name: str, value: object, *, critical: bool = False) -> dict[str, Any]:
    return {"extn_id": name, "critical": critical, "extn_value": value}


def _time(moment: datetime.datetime) -> asn1_x509.Time:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)."""
    return asn1_x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
