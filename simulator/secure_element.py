"""A unit's secure element: attestation, identity key and CSR, certificate, key session, TR-31 load, zeroise.

What persists lives in ``DIR/units/<serial>/secure_element.json``, replaced atomically, so a power cut leaves
the old key set or the new one, never a mix.  The secrets in it (the identity key, the Initial Keys) are sealed
with AES-GCM under the unit's storage key (``se_storage.key``, standing in for a key fused into the chip and
renewed at zeroise), so no clear key lies in any file.  The session and a loaded key waiting for its commit
live in RAM only: a reboot, a power cut, a new session or any load forgets them, and a pending key expires
``PENDING_SECONDS`` after its load.  Once a provisioning CA is pinned, zeroise needs the CA's signature.
The log names events, KSNs, serial numbers and session IDs, never key bytes.  docs/protocol.md (secure
element group) is the specification.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from keys.errors import KeysError
from keys.kcv import aes_cmac_kcv
from keys.session import (
    CHALLENGE_LENGTH,
    KCV_LENGTH,
    NONCE_LENGTH,
    PUBLIC_POINT_LENGTH,
    SESSION_ID_LENGTH,
    agree,
    commit_statement,
    derive_kbpk,
    identity_statement,
    load_statement,
    public_point,
    session_statement,
    sign,
    verify,
    zeroise_statement,
)
from keys.tr31 import KEY_SET_ID, unwrap
from terminal.device import RequestRejected
from terminal.protocol import ErrorCode, MessageType, Payload, SecureElementState

from .link import Faults
from .manufacturer import Manufacturer
from .state import UnitStore, replace_atomically, write_json_atomically

PAYMENT_KEY = "dukpt"  # the name of the AES DUKPT Initial Key's slot
INITIAL_KEY_ID_LENGTH = 8
STATE_VERSION = 1
PENDING_SECONDS = 30.0  # a loaded key not committed within this is dropped (the station commits at once)


def _empty() -> dict[str, Any]:
    return {"version": STATE_VERSION, "identity_key": None, "certificate": None, "ca_public_key": None, "keys": []}


def _field(payload: Payload, name: str, kind: type[Any], size: int | None = None) -> Any:
    """Field ``name`` of the request, of type ``kind`` (and ``size`` bytes); bad-request otherwise."""
    value = payload.get(name)
    if not isinstance(value, kind) or (size is not None and len(value) != size):
        shape = kind.__name__ if size is None else f"{kind.__name__}[{size}]"
        raise RequestRejected(ErrorCode.BAD_REQUEST, f"{name} must be {shape}")
    return value


def _spki(key: Any) -> bytes:
    """A public key as DER SubjectPublicKeyInfo: comparable whatever its type."""
    data: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


def _refuse(detail: str) -> RequestRejected:
    return RequestRejected(ErrorCode.REFUSED, detail)


@dataclass(frozen=True)
class _Session:
    id: bytes
    unit_nonce: bytes
    kbpk: bytes


@dataclass(frozen=True)
class _Pending:
    session: bytes
    initial_key_id: bytes
    ksn: bytes
    kcv: bytes
    key: bytes
    loaded: float  # time.monotonic() at the load


class SimSecureElement:
    """The secure element of one virtual terminal; ``handle`` answers the SE_* requests."""

    def __init__(self, store: UnitStore, serial: str, manufacturer: Manufacturer, faults: Faults) -> None:
        self.store, self.serial, self.manufacturer, self.faults = store, serial, manufacturer, faults
        self.path = store.directory / "secure_element.json"
        self._attestation_key, self._attestation_cert = manufacturer.attestation(store.directory, serial)
        self._storage_path = store.directory / "se_storage.key"
        if not self._storage_path.exists():
            self._new_storage_key()
        self._sealer = AESGCM(self._storage_path.read_bytes())
        self._session: _Session | None = None
        self._pending: _Pending | None = None
        self._lock = threading.Lock()

    # -- persistence ---------------------------------------------------------------------------------
    def _new_storage_key(self) -> None:
        key = AESGCM.generate_key(bit_length=256)
        replace_atomically(self._storage_path, key)
        self._sealer = AESGCM(key)

    def _seal(self, purpose: str, secret: bytes) -> str:
        nonce = secrets.token_bytes(12)
        return (nonce + self._sealer.encrypt(nonce, secret, f"{self.serial}/{purpose}".encode())).hex()

    def _unseal(self, purpose: str, sealed: str) -> bytes:
        data = bytes.fromhex(sealed)
        return self._sealer.decrypt(data[:12], data[12:], f"{self.serial}/{purpose}".encode())

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return _empty()
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _save(self, data: dict[str, Any]) -> None:
        write_json_atomically(self.path, data)

    def _identity_key(self, data: dict[str, Any]) -> ec.EllipticCurvePrivateKey | None:
        if data["identity_key"] is None:
            return None
        key = serialization.load_der_private_key(self._unseal("identity", data["identity_key"]), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def _pinned_ca(self, data: dict[str, Any]) -> ec.EllipticCurvePublicKey:
        if data["ca_public_key"] is None:
            raise _refuse("no provisioning CA is pinned: install a certificate first")
        key = serialization.load_der_public_key(bytes.fromhex(data["ca_public_key"]))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    # -- what the unit reports -----------------------------------------------------------------------
    def state(self) -> SecureElementState:
        data = self._load()
        if data["keys"]:
            return SecureElementState.KEYED
        if data["certificate"]:
            return SecureElementState.CERTIFIED
        return SecureElementState.IDENTITY if data["identity_key"] else SecureElementState.FACTORY

    def forget(self) -> None:
        """RAM is lost (reboot, power cut): the session and any key waiting for its commit are gone."""
        with self._lock:
            self._session, self._pending = None, None

    def handle(self, type_: int, payload: Payload) -> Payload:
        with self._lock:
            if self._pending is not None and time.monotonic() - self._pending.loaded >= PENDING_SECONDS:
                self._pending = None  # expired: no later request, a commit included, may find it
                self.store.log("secure element: pending key expired")
            return self._HANDLERS[type_](self, payload)

    # -- requests ------------------------------------------------------------------------------------
    def _attestation(self, payload: Payload) -> Payload:
        chain = self.manufacturer.chain(
            self._attestation_cert, counterfeit=self.faults.counterfeit, broken=self.faults.broken_chain
        )
        return {"chain": chain}

    def _identity(self, payload: Payload) -> Payload:
        challenge = _field(payload, "challenge", bytes, CHALLENGE_LENGTH)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.serial)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        csr_der = csr.public_bytes(serialization.Encoding.DER)
        signature = sign(self._attestation_key, identity_statement(self.serial, challenge, csr_der))
        private = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        data = self._load()
        data["identity_key"], data["certificate"] = self._seal("identity", private), None
        self._save(data)
        self._session, self._pending = None, None  # a session of the old identity ends with it
        self.store.log("secure element: identity key generated")
        return {"csr": csr_der, "signature": signature}

    def _cert_install(self, payload: Payload) -> Payload:
        certificate_der = _field(payload, "certificate", bytes)
        ca_der = _field(payload, "ca_certificate", bytes)
        try:
            certificate = x509.load_der_x509_certificate(certificate_der)
            ca = x509.load_der_x509_certificate(ca_der)
            ca_public = ca.public_key()
            subject_public = certificate.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise RequestRejected(ErrorCode.BAD_REQUEST, "not a DER X.509 certificate of a known key type") from None
        data = self._load()
        identity = self._identity_key(data)
        if identity is None:
            raise _refuse("no identity key: request one first")
        if _spki(subject_public) != _spki(identity.public_key()):
            raise _refuse("the certificate is not for this unit's identity key")
        if not isinstance(ca_public, ec.EllipticCurvePublicKey) or not isinstance(ca_public.curve, ec.SECP256R1):
            raise _refuse("the CA key is not a P-256 key")
        try:
            constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
            certificate.verify_directly_issued_by(ca)
        except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise _refuse("the certificate is not issued by the CA certificate given") from None
        if not constraints.ca:
            raise _refuse("the CA certificate is not a CA")
        pin = _spki(ca_public).hex()
        if data["ca_public_key"] not in (None, pin):
            raise _refuse("another provisioning CA than the pinned one")
        data["certificate"], data["ca_public_key"] = certificate_der.hex(), pin
        self._save(data)
        serial_number = format(certificate.serial_number, "x")
        self.store.log(f"secure element: certificate installed (serial {serial_number})")
        return {"serial_number": serial_number}

    def _key_session(self, payload: Payload) -> Payload:
        station_public = _field(payload, "station_public", bytes, PUBLIC_POINT_LENGTH)
        station_nonce = _field(payload, "station_nonce", bytes, NONCE_LENGTH)
        data = self._load()
        identity = self._identity_key(data)
        if identity is None or data["certificate"] is None:
            raise _refuse("no certified identity key")
        try:
            shared = agree(identity, station_public)
        except KeysError:
            raise RequestRejected(ErrorCode.BAD_REQUEST, "station_public is not a P-256 point") from None
        session, unit_nonce = secrets.token_bytes(SESSION_ID_LENGTH), secrets.token_bytes(NONCE_LENGTH)
        unit_public = public_point(identity)
        kbpk = derive_kbpk(shared, self.serial, station_public, unit_public, station_nonce, unit_nonce)
        statement = session_statement(self.serial, station_public, station_nonce, unit_public, unit_nonce, session)
        self._session, self._pending = _Session(session, unit_nonce, kbpk), None
        self.store.log(f"secure element: key session opened (session {session.hex()})")
        return {"session": session, "unit_nonce": unit_nonce, "signature": sign(identity, statement)}

    def _key_load(self, payload: Payload) -> Payload:
        session = _field(payload, "session", bytes, SESSION_ID_LENGTH)
        key_block = _field(payload, "key_block", str)
        signature = _field(payload, "signature", bytes)
        active, self._session, self._pending = self._session, None, None  # one try per session, whatever comes
        try:
            if active is None or not hmac.compare_digest(active.id, session):
                raise _refuse("unknown or used key session")
            statement = load_statement(self.serial, session, active.unit_nonce, key_block)
            if not verify(self._pinned_ca(self._load()), signature, statement):
                raise _refuse("the key load is not signed by the pinned provisioning CA")
            try:
                header, key = unwrap(active.kbpk, key_block, expect_usage="B1", expect_algorithm="A", expect_mode="X")
            except KeysError as exc:
                raise _refuse(f"the key block is refused ({type(exc).__name__})") from None
            initial_key_id = header.block(KEY_SET_ID)
            if initial_key_id is None or len(initial_key_id) != 2 * INITIAL_KEY_ID_LENGTH:
                raise _refuse("the key block names no Initial Key ID (optional block KS)")
        except RequestRejected as exc:
            self.store.log(f"secure element: key load refused: {exc.detail}")
            raise
        ikid = bytes.fromhex(initial_key_id)
        pending = _Pending(
            session, ikid, ikid + bytes(4), aes_cmac_kcv(key), key, time.monotonic()
        )  # counter 0: no transaction yet
        self._pending = pending
        self.store.log(f"secure element: key loaded pending (KSN {pending.ksn.hex().upper()})")
        return {"initial_key_id": pending.initial_key_id, "ksn": pending.ksn, "kcv": pending.kcv}

    def _key_commit(self, payload: Payload) -> Payload:
        session = _field(payload, "session", bytes, SESSION_ID_LENGTH)
        kcv = _field(payload, "kcv", bytes, KCV_LENGTH)
        signature = _field(payload, "signature", bytes)
        pending, self._pending = self._pending, None  # one try: a refused commit drops the key
        data = self._load()
        try:
            if pending is None or not hmac.compare_digest(pending.session, session):
                raise _refuse("no key is pending for this session")
            if not verify(self._pinned_ca(data), signature, commit_statement(self.serial, session, kcv)):
                raise _refuse("the commit is not signed by the pinned provisioning CA")
            if not hmac.compare_digest(pending.kcv, kcv):
                raise _refuse("the KCV does not match the loaded key: nothing was stored")
        except RequestRejected as exc:
            self.store.log(f"secure element: key commit refused: {exc.detail}")
            raise
        slot = {
            "name": PAYMENT_KEY,
            "initial_key_id": pending.initial_key_id.hex(),
            "ksn": pending.ksn.hex(),
            "kcv": pending.kcv.hex(),
            "loaded_at": time.time(),
            "key": self._seal(f"key/{PAYMENT_KEY}", pending.key),
        }
        data["keys"] = [s for s in data["keys"] if s["name"] != PAYMENT_KEY] + [slot]
        self._save(data)  # the whole key set in one atomic replace
        self.store.log(f"secure element: key set committed (KSN {pending.ksn.hex().upper()})")
        return {"initial_key_id": pending.initial_key_id, "ksn": pending.ksn, "kcv": pending.kcv}

    def _key_status(self, payload: Payload) -> Payload:
        data = self._load()
        certificate = data["certificate"]
        serial_number = (
            format(x509.load_der_x509_certificate(bytes.fromhex(certificate)).serial_number, "x")
            if certificate
            else None
        )
        keys = [
            {
                "name": slot["name"],
                "initial_key_id": bytes.fromhex(slot["initial_key_id"]),
                "ksn": bytes.fromhex(slot["ksn"]),
                "kcv": bytes.fromhex(slot["kcv"]),
                "loaded_at": slot["loaded_at"],
            }
            for slot in data["keys"]
        ]
        return {"state": str(self.state()), "identity_serial_number": serial_number, "keys": keys}

    def _zeroise(self, payload: Payload) -> Payload:
        serial = _field(payload, "serial", str)
        data = self._load()
        pinned = data["ca_public_key"] is not None  # without a pin there is nothing to protect: the serial suffices
        proof = None
        if pinned and ("session" in payload or "signature" in payload):
            proof = _field(payload, "session", bytes, SESSION_ID_LENGTH), _field(payload, "signature", bytes)
        active, self._session, self._pending = self._session, None, None  # one try per session, whatever comes
        try:
            if serial != self.serial:
                raise _refuse("the serial named is not this unit's")
            if pinned:
                if proof is None:
                    raise _refuse("a provisioning CA is pinned: zeroise needs its signature in a key session")
                session, signature = proof
                if active is None or not hmac.compare_digest(active.id, session):
                    raise _refuse("unknown or used key session")
                statement = zeroise_statement(self.serial, session, active.unit_nonce)
                if not verify(self._pinned_ca(data), signature, statement):
                    raise _refuse("the zeroise is not signed by the pinned provisioning CA")
        except RequestRejected as exc:
            self.store.log(f"secure element: zeroise refused: {exc.detail}")
            raise
        self._save(_empty())  # the factory attestation stays: it is the unit's, not the station's
        self._new_storage_key()  # and any copy of the old file can no longer be unsealed
        self.store.log("secure element: zeroised")
        return {}

    def tamper(self) -> None:
        """A tamper event (the case opened, the mesh cut): the chip wipes its identity, certificate, pinned CA and
        key set at once, with no request and no signature, as a tamper response does; the factory attestation
        stays.  The simulator's ``zeroise`` control command (``naiad sim zeroise SERIAL``)."""
        with self._lock:
            self._session, self._pending = None, None
            self._save(_empty())
            self._new_storage_key()
        self.store.log("secure element: tamper detected; keys zeroised")

    _HANDLERS: ClassVar[dict[int, Callable[[SimSecureElement, Payload], Payload]]] = {
        MessageType.SE_ATTESTATION: _attestation,
        MessageType.SE_IDENTITY: _identity,
        MessageType.SE_CERT_INSTALL: _cert_install,
        MessageType.SE_KEY_SESSION: _key_session,
        MessageType.SE_KEY_LOAD: _key_load,
        MessageType.SE_KEY_COMMIT: _key_commit,
        MessageType.SE_KEY_STATUS: _key_status,
        MessageType.SE_ZEROISE: _zeroise,
    }
    REQUESTS: ClassVar[frozenset[int]] = frozenset(_HANDLERS)
