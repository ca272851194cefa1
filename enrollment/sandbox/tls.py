"""The platform's own credentials, made on first start and kept in the sandbox database (in clear: the
database file is owner-only for that reason, database.py).  A damaged row raises ValueError.

The RSA-2048 key signs every reply; a CA (EC P-256) issues the TLS certificate of the HTTPS endpoint for
``localhost``, ``127.0.0.1``, ``::1`` and the host it serves on.  Stations trust the CA (``ca_certificate``
in their configuration), so the sandbox needs no public CA and no change to the system's trust store.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CA_YEARS = 10
LEAF_YEARS = 2


class Credential(Base):
    """One PEM the platform keeps: its signing key, the CA's key and certificate, the TLS leaf's."""

    __tablename__ = "credentials"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    pem: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Credentials:
    signing_key: rsa.RSAPrivateKey
    ca_certificate: str
    tls_certificate: str
    """The leaf's certificate followed by the CA's (the chain the server presents)."""
    tls_key: str = field(repr=False)
    terminal_key: rsa.RSAPrivateKey = field(repr=False)
    """The key of the seeded terminal (vendor) app: a sandbox test credential that simulated units sign with."""

    @property
    def platform_public_key(self) -> str:
        return _public_pem(self.signing_key)

    @property
    def terminal_public_key(self) -> str:
        return _public_pem(self.terminal_key)

    @property
    def terminal_private_key(self) -> str:
        return _private_pem(self.terminal_key)


def credentials(session: Session, host: str) -> Credentials:
    """The stored credentials, made first where missing; a leaf that does not name ``host`` is issued again."""
    signing_key = _stored_key(session, "signing-key", lambda: rsa.generate_private_key(65537, 2048))
    terminal_key = _stored_key(session, "terminal-app-key", lambda: rsa.generate_private_key(65537, 2048))
    ca_key = _stored_key(session, "ca-key", lambda: ec.generate_private_key(ec.SECP256R1()))
    ca = session.get(Credential, "ca-certificate")
    if ca is None:
        ca = Credential(name="ca-certificate", pem=_pem(_ca_certificate(ca_key)))
        session.add(ca)
    ca_certificate = x509.load_pem_x509_certificate(ca.pem.encode())
    names = sorted({*LOCAL_NAMES, host} - {"0.0.0.0", "::", ""})
    leaf = session.get(Credential, "tls-certificate")
    leaf_key = _stored_key(session, "tls-key", lambda: ec.generate_private_key(ec.SECP256R1()))
    if leaf is None or _names(x509.load_pem_x509_certificate(leaf.pem.encode())) != set(names):
        pem = _pem(_leaf_certificate(leaf_key.public_key(), names, ca_certificate, ca_key))
        leaf = session.merge(Credential(name="tls-certificate", pem=pem))
    if not isinstance(signing_key, rsa.RSAPrivateKey) or not isinstance(terminal_key, rsa.RSAPrivateKey):
        raise ValueError("a stored signing key is not an RSA key")
    return Credentials(
        signing_key=signing_key,
        ca_certificate=ca.pem,
        tls_certificate=leaf.pem + ca.pem,
        tls_key=_private_pem(leaf_key),
        terminal_key=terminal_key,
    )


def _stored_key(session: Session, name: str, make: Callable[[], PrivateKey]) -> PrivateKey:
    row = session.get(Credential, name)
    if row is None:
        row = Credential(name=name, pem=_private_pem(make()))
        session.add(row)
    loaded = serialization.load_pem_private_key(row.pem.encode(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"the stored {name} is neither an RSA nor an EC key")
    return loaded


def _private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _validity(builder: x509.CertificateBuilder, years: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)  # the real clock: clients check certificates against it, not the sandbox's
    return builder.not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365 * years))


def _ca_certificate(key: PrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Naiad sandbox platform CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _validity(builder, CA_YEARS).sign(key, hashes.SHA256())


def _leaf_certificate(
    public_key: PublicKey, names: list[str], ca: x509.Certificate, ca_key: PrivateKey
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    return _validity(builder, LEAF_YEARS).sign(ca_key, hashes.SHA256())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names(certificate: x509.Certificate) -> set[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {*san.get_values_for_type(x509.DNSName), *(str(a) for a in san.get_values_for_type(x509.IPAddress))}
