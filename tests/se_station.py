"""The station's side of an injection, done by hand for the secure-element tests (tests/ is on sys.path).

The provisioning CA here is a test-only one made with ``cryptography``; the station's real CA lives in a key
store (keys/ca.py).  Every step checks what the unit answers exactly as the station must.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keys import session as ks
from keys import tr31
from simulator.manufacturer import roots_path
from terminal.secure_element import LoadedKey, SecureElement, SessionReply


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """A provisioning CA for tests: a P-256 key in memory and its self-signed certificate."""

    __test__ = False

    def __init__(self, name: str = "Test Provisioning CA") -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )

    def issue(self, csr_der: bytes) -> x509.Certificate:
        csr = x509.load_der_x509_csr(csr_der)
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(_name(self.name))
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def sign(self, statement: bytes) -> bytes:
        return ks.sign(self.key, statement)


def stranger_csr(common_name: str) -> bytes:
    """A CSR for a key that is nobody's identity key."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def check_attestation(chain: list[bytes], state_dir: Path, serial: str) -> ec.EllipticCurvePublicKey:
    """The attestation key of a chain that the simulated manufacturer's root signed for ``serial``."""
    root = x509.load_pem_x509_certificate(roots_path(state_dir).read_bytes())
    leaf = x509.load_der_x509_certificate(chain[0])
    leaf.verify_directly_issued_by(root)  # ValueError or InvalidSignature for a wrong chain
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == serial
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public


@dataclass
class Session:
    reply: SessionReply
    kbpk: bytes


class Station:
    """One station injecting one unit through ``se``, step by step."""

    def __init__(self, se: SecureElement, serial: str, state_dir: Path, ca: TestCA) -> None:
        self.se, self.serial, self.state_dir, self.ca = se, serial, state_dir, ca
        self.identity: ec.EllipticCurvePublicKey | None = None
        self.certificate: x509.Certificate | None = None

    def certify(self) -> str:
        """Attestation, identity with CSR, device certificate: the installed certificate's serial number."""
        attestation = check_attestation(self.se.attestation_chain(), self.state_dir, self.serial)
        challenge = os.urandom(32)
        made = self.se.new_identity(challenge)
        assert ks.verify(attestation, made.signature, ks.identity_statement(self.serial, challenge, made.csr))
        csr = x509.load_der_x509_csr(made.csr)
        assert csr.is_signature_valid
        self.certificate = self.ca.issue(made.csr)
        public = self.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        self.identity = public
        return self.se.install_certificate(
            self.certificate.public_bytes(serialization.Encoding.DER), self.ca.certificate
        )

    def open_session(self) -> Session:
        assert self.identity is not None
        private, point = ks.ephemeral()
        nonce = os.urandom(32)
        reply = self.se.key_session(point, nonce)
        unit_public = ks.public_point(self.identity)
        statement = ks.session_statement(self.serial, point, nonce, unit_public, reply.unit_nonce, reply.session)
        assert ks.verify(self.identity, reply.signature, statement)
        shared = ks.agree(private, unit_public)
        return Session(reply, ks.derive_kbpk(shared, self.serial, point, unit_public, nonce, reply.unit_nonce))

    def load(self, session: Session, block: str, signer: TestCA | None = None) -> LoadedKey:
        statement = ks.load_statement(self.serial, session.reply.session, session.reply.unit_nonce, block)
        return self.se.load_key(session.reply.session, block, (signer or self.ca).sign(statement))

    def commit(self, session: Session, kcv: bytes) -> LoadedKey:
        signature = self.ca.sign(ks.commit_statement(self.serial, session.reply.session, kcv))
        return self.se.commit_key(session.reply.session, kcv, signature)

    def zeroise_signature(self, session: Session, signer: TestCA | None = None) -> bytes:
        statement = ks.zeroise_statement(self.serial, session.reply.session, session.reply.unit_nonce)
        return (signer or self.ca).sign(statement)

    def zeroise(self) -> None:
        """Wipe a unit with a pinned CA the station's way: a fresh session and the CA's signature."""
        session = self.open_session()
        self.se.zeroise(self.serial, session.reply.session, self.zeroise_signature(session))

    def inject(self, initial_key_id: bytes, key: bytes) -> LoadedKey:
        session = self.open_session()
        loaded = self.load(session, key_block(session.kbpk, initial_key_id, key))
        return self.commit(session, loaded.kcv)


def key_block(kbpk: bytes, initial_key_id: bytes, key: bytes) -> str:
    """The Initial Key as the station sends it: TR-31 version D, usage B1, its Initial Key ID in block KS."""
    header = tr31.Header("B1", "A", "X", exportability="N", optional_blocks=(("KS", initial_key_id.hex().upper()),))
    return tr31.wrap(kbpk, header, key)
