"""Host side of the secure element group (docs/protocol.md): typed requests to a unit's secure element.

Each method sends one request through a ``ManagementClient``, whose replies are already checked against
their shapes (``terminal.schema``); a unit that refuses answers with ``RemoteError`` carrying its code
(``refused`` for a failed signature, a used session, a wrong KCV or a key block that breaks policy).
The station's procedure (attestation check, certificate, key agreement, load, commit) is built on these.
"""

from __future__ import annotations

from dataclasses import dataclass

from .client import ManagementClient
from .protocol import MessageType, Payload


@dataclass(frozen=True)
class IdentityReply:
    csr: bytes  # DER PKCS#10 for the new identity key
    signature: bytes  # by the attestation key over keys.session.identity_statement(...)


@dataclass(frozen=True)
class SessionReply:
    session: bytes  # 16 bytes, one-time
    unit_nonce: bytes  # 32 bytes
    signature: bytes  # by the identity key over keys.session.session_statement(...)


@dataclass(frozen=True)
class LoadedKey:
    initial_key_id: bytes  # 8 bytes
    ksn: bytes  # 12 bytes: the Initial Key ID and a transaction counter
    kcv: bytes  # 5 bytes, AES-CMAC


@dataclass(frozen=True)
class KeySlot:
    name: str
    initial_key_id: bytes
    ksn: bytes
    kcv: bytes
    loaded_at: float  # UTC seconds


@dataclass(frozen=True)
class KeyStatus:
    state: str  # terminal.protocol.SecureElementState: factory, identity, certified, keyed
    identity_serial_number: str | None  # the device certificate's serial (hex), when one is installed
    keys: list[KeySlot]


def _loaded(reply: Payload) -> LoadedKey:
    return LoadedKey(reply["initial_key_id"], reply["ksn"], reply["kcv"])


class SecureElement:
    """The secure element of the unit behind ``client`` (an open ``ManagementClient``)."""

    def __init__(self, client: ManagementClient) -> None:
        self.client = client

    def attestation_chain(self) -> list[bytes]:
        """The unit's attestation certificates (DER), leaf first."""
        return list(self.client.request(MessageType.SE_ATTESTATION)["chain"])

    def new_identity(self, challenge: bytes) -> IdentityReply:
        """A new identity key pair in the unit: its CSR, attested over the station's 32-byte ``challenge``."""
        reply = self.client.request(MessageType.SE_IDENTITY, {"challenge": challenge})
        return IdentityReply(reply["csr"], reply["signature"])

    def install_certificate(self, certificate: bytes, ca_certificate: bytes) -> str:
        """Install the identity key's device certificate; returns its serial number (hex)."""
        reply = self.client.request(
            MessageType.SE_CERT_INSTALL, {"certificate": certificate, "ca_certificate": ca_certificate}
        )
        return str(reply["serial_number"])

    def key_session(self, station_public: bytes, station_nonce: bytes) -> SessionReply:
        """Open a one-time key session with the station's ephemeral P-256 point and nonce."""
        reply = self.client.request(
            MessageType.SE_KEY_SESSION, {"station_public": station_public, "station_nonce": station_nonce}
        )
        return SessionReply(reply["session"], reply["unit_nonce"], reply["signature"])

    def load_key(self, session: bytes, key_block: str, signature: bytes) -> LoadedKey:
        """Hand the unit a TR-31 key block; it holds the key pending a commit and answers its KCV."""
        reply = self.client.request(
            MessageType.SE_KEY_LOAD, {"session": session, "key_block": key_block, "signature": signature}
        )
        return _loaded(reply)

    def commit_key(self, session: bytes, kcv: bytes, signature: bytes) -> LoadedKey:
        """Tell the unit to store the pending key (the station saw its KCV match)."""
        reply = self.client.request(MessageType.SE_KEY_COMMIT, {"session": session, "kcv": kcv, "signature": signature})
        return _loaded(reply)

    def status(self) -> KeyStatus:
        reply = self.client.request(MessageType.SE_KEY_STATUS)
        slots = [KeySlot(k["name"], k["initial_key_id"], k["ksn"], k["kcv"], k["loaded_at"]) for k in reply["keys"]]
        return KeyStatus(reply["state"], reply["identity_serial_number"], slots)

    def zeroise(self, serial: str, session: bytes | None = None, signature: bytes | None = None) -> None:
        """Wipe the identity, certificate and keys (not the factory attestation); ``serial`` must be the unit's.

        Once a provisioning CA is pinned the unit also needs a current ``session`` (it ends it) and the pinned
        CA's ``signature`` over ``keys.session.zeroise_statement(serial, session, unit_nonce)``.
        """
        payload: Payload = {"serial": serial}
        if session is not None or signature is not None:
            payload |= {"session": session, "signature": signature}
        self.client.request(MessageType.SE_ZEROISE, payload)
