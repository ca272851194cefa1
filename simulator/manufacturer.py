"""The simulated manufacturer: its CA, and each unit's factory attestation key and certificate.

A real terminal leaves the factory with an attestation key in its secure element and a certificate for it
(CN = the serial) from the manufacturer's CA; the station trusts that CA's certificate and so tells a genuine
unit from a counterfeit one.  Here the CA is made once per state directory (``DIR/manufacturer/ca.pem``, the
public root a station trusts, with its key beside it) and each unit's attestation at its first use
(``DIR/units/<serial>/attestation.pem`` and its key).  The faults ``counterfeit`` and ``broken-chain`` serve
a chain from an unknown CA, or a leaf whose signature does not verify.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .state import replace_atomically

CA_NAME = "Naiad Simulated Manufacturer CA"
COUNTERFEIT_CA_NAME = "Counterfeit Terminal CA"  # not the real CA's name: the chain is plainly unknown
ATTESTATION_YEARS = 20
_lock = threading.Lock()  # units of one simulator share the CA files


def roots_path(state_dir: str | Path) -> Path:
    """Where a station finds the simulated manufacturer's root certificate (PEM) for ``state_dir``."""
    return Path(state_dir) / "manufacturer" / "ca.pem"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * ATTESTATION_YEARS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(signer, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    replace_atomically(path, pem)


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _self_signed(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _certificate(common_name, key.public_key(), common_name, key, ca=True)


class Manufacturer:
    """The manufacturer CA of one state directory, made on first use and kept."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "manufacturer"
        self.cert_path = roots_path(state_dir)
        self.key_path = self.directory / "ca.key.pem"
        self._counterfeit: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None

    def ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        with _lock:
            if not (self.cert_path.exists() and self.key_path.exists()):
                self.directory.mkdir(parents=True, exist_ok=True)
                key, cert = _self_signed(CA_NAME)
                _write_key(self.key_path, key)
                replace_atomically(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
            return _read_key(self.key_path), x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def attestation(self, unit_dir: Path, serial: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """The unit's factory attestation key and certificate (CN = ``serial``), issued on first use."""
        key_path, cert_path = unit_dir / "attestation.key.pem", unit_dir / "attestation.pem"
        if not (key_path.exists() and cert_path.exists()):
            ca_key, _ = self.ca()
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _certificate(serial, key.public_key(), CA_NAME, ca_key, ca=False)
            _write_key(key_path, key)
            replace_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return _read_key(key_path), x509.load_pem_x509_certificate(cert_path.read_bytes())

    def chain(self, leaf: x509.Certificate, *, counterfeit: bool = False, broken: bool = False) -> list[bytes]:
        """The attestation chain a unit serves, leaf first, then its CA: genuine, or as a fault makes it."""
        public_key = leaf.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        serial = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert isinstance(serial, str)
        if counterfeit:  # the same unit key, certified by a CA no station trusts
            if self._counterfeit is None:
                self._counterfeit = _self_signed(COUNTERFEIT_CA_NAME)
            fake_key, root = self._counterfeit
            leaf = _certificate(serial, public_key, COUNTERFEIT_CA_NAME, fake_key, ca=False)
        else:
            root = self.ca()[1]
            if broken:  # names the real CA as issuer, but another key signed it
                leaf = _certificate(serial, public_key, CA_NAME, ec.generate_private_key(ec.SECP256R1()), ca=False)
        return [cert.public_bytes(serialization.Encoding.DER) for cert in (leaf, root)]
