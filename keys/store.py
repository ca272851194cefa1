"""The key store interface: where BDKs live and Initial Keys are derived, without a clear key on the way out.

Two stores implement it: :class:`keys.store_pkcs11.Pkcs11KeyStore` (an HSM, or SoftHSM2 in tests and demos) and
:class:`keys.store_software.SoftwareKeyStore` (a passphrase-protected file, the embedded default).

What crosses the interface:

- in: labels, Initial Key IDs, key components (typed by custodians, so in host memory by nature), and the
  key block protection key (KBPK);
- out: labels, AES-CMAC KCVs, opaque :class:`KeyHandle` objects and TR-31 version D key blocks.

No public method returns a BDK or an Initial Key in clear.

A store also holds **signing keys** (a namespace of their own): EC P-256 keys, such as the provisioning CA's, and
RSA-2048 keys, such as the station's key at the merchant platform (whose gateway signs RSA-SHA256).  Made inside
the store, never exported; out come the public key (DER SubjectPublicKeyInfo) and signatures: ECDSA P-256 SHA-256
(DER) or RSASSA-PKCS1-v1_5 SHA-256, by the key's own algorithm.  A certificate for a signing key can be kept
beside it.

The KBPK is the one-time AES key the station agrees with a unit over the authenticated key session
(ECDH with the unit's identity key, computed by the station in software): it exists in host memory for one
injection, is never stored, and a store uses it only to protect the Initial Key it exports.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from i18n import N_

from .errors import (
    KeyStoreCertificateInvalid,
    KeyStoreComponentsInvalid,
    KeyStoreHandleInvalid,
    KeyStoreKeyLength,
    KeyStoreLabelInvalid,
    KeyStoreLabelTaken,
    SigningKeyAlgorithmWrong,
)
from .tr31 import Header

BDK_LENGTHS = (16, 32)
"""AES-128 and AES-256 BDKs (AES-192 is allowed by X9.24-3 but not offered: no HSM ceremony uses it)."""
MIN_COMPONENTS = 2
MAX_COMPONENTS = 3
_MAX_LABEL = 64
_Key = TypeVar("_Key")


class SigningAlgorithm(StrEnum):
    """What a signing key is, and so how it signs: ECDSA-SHA256 (DER) or RSASSA-PKCS1-v1_5 SHA-256."""

    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"


RSA_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class KeyHandle:
    """An Initial Key inside a store: which BDK and Initial Key ID it came from, and the store's own reference.

    It carries no key bytes.  A handle is valid in the store that made it until :meth:`KeyStore.release`.
    """

    bdk_label: str
    initial_key_id: bytes
    ref: int = field(repr=False)


class KeyStore(abc.ABC):
    """Holds BDKs under labels, derives Initial Keys inside itself and lets them out only in TR-31 blocks."""

    @abc.abstractmethod
    def labels(self) -> list[str]:
        """The labels of the BDKs held, sorted."""

    @abc.abstractmethod
    def generate_bdk(self, label: str, length: int = 16) -> bytes:
        """A new random AES BDK of ``length`` bytes (16 or 32) under ``label``; returns its AES-CMAC KCV."""

    @abc.abstractmethod
    def combine_components(self, label: str, components: Sequence[bytes]) -> bytes:
        """The BDK made of ``components`` XORed together (split knowledge), stored under ``label``; its KCV.

        Each component is checked against its own KCV by the ceremony before it is passed here.  Nothing is
        stored unless the whole BDK is.
        """

    @abc.abstractmethod
    def destroy_bdk(self, label: str) -> None:
        """Destroy the BDK under ``label`` (:class:`~keys.errors.KeyStoreLabelUnknown` if none): a ceremony takes
        back a BDK the ledger did not record, or whose KCV is not the one the ledger registered for that label."""

    @abc.abstractmethod
    def bdk_kcv(self, label: str) -> bytes:
        """The AES-CMAC KCV (5 bytes) of the BDK under ``label``, computed inside the store."""

    @abc.abstractmethod
    def derive_initial_key(self, label: str, initial_key_id: bytes) -> KeyHandle:
        """The Initial Key of ``initial_key_id`` derived from the BDK under ``label`` inside the store (X9.24-3)."""

    @abc.abstractmethod
    def initial_key_kcv(self, handle: KeyHandle) -> bytes:
        """The AES-CMAC KCV (5 bytes) of the Initial Key behind ``handle``, computed inside the store."""

    @abc.abstractmethod
    def wrap_tr31(self, kbpk: bytes, header: Header, handle: KeyHandle) -> str:
        """The Initial Key behind ``handle`` in a TR-31 version D key block under ``kbpk``, bound to ``header``."""

    @abc.abstractmethod
    def release(self, handle: KeyHandle) -> None:
        """Forget the Initial Key behind ``handle``; releasing twice is harmless."""

    @abc.abstractmethod
    def signing_labels(self) -> list[str]:
        """The labels of the signing keys held, sorted (a namespace apart from the BDKs')."""

    @abc.abstractmethod
    def generate_signing_key(self, label: str, algorithm: SigningAlgorithm = SigningAlgorithm.EC_P256) -> bytes:
        """A new key pair of ``algorithm`` made inside the store under ``label`` (a label no signing key of either
        algorithm has); its public key (DER SubjectPublicKeyInfo)."""

    @abc.abstractmethod
    def signing_algorithm(self, label: str) -> SigningAlgorithm:
        """The algorithm of the signing key under ``label``."""

    @abc.abstractmethod
    def signing_public_key(self, label: str) -> bytes:
        """The public key (DER SubjectPublicKeyInfo) of the signing key under ``label``."""

    @abc.abstractmethod
    def sign(self, label: str, data: bytes) -> bytes:
        """The signature of ``data`` by the signing key under ``label``, made in the store, by the key's algorithm:
        ECDSA P-256 SHA-256 (DER) for an EC key, RSASSA-PKCS1-v1_5 SHA-256 for an RSA key."""

    @abc.abstractmethod
    def certificate(self, label: str) -> bytes | None:
        """The DER certificate kept beside the signing key under ``label``, or None when none was set."""

    @abc.abstractmethod
    def set_certificate(self, label: str, certificate: bytes) -> None:
        """Keep ``certificate`` beside the signing key under ``label``, replacing any earlier one.

        Refused unless it is a DER X.509 certificate of that key (:func:`check_certificate`)."""

    @abc.abstractmethod
    def close(self) -> None:
        """End the session with the store and forget every Initial Key still held."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_label(label: str) -> str:
    """``label`` if it is 1 to 64 printable ASCII characters: labels are shown, logged and used as file keys."""
    if not (0 < len(label) <= _MAX_LABEL and label.isascii() and label.isprintable()):
        raise KeyStoreLabelInvalid()
    return label


def check_free(label: str, taken: Collection[str]) -> None:
    """Refuse ``label`` unless it is valid and not one of ``taken``: a key in a store is never replaced."""
    if check_label(label) in taken:
        raise KeyStoreLabelTaken(label=label)


def new_ref() -> int:
    """A handle's reference: random, so a released handle never names a later key (PKCS#11 object handles and
    counters are reused or shared across stores) and a handle from another store names nothing here."""
    return secrets.randbits(64)


def held(initial_keys: Mapping[int, _Key], handle: KeyHandle) -> _Key:
    """The store's Initial Key behind ``handle``; refused when it was released or made by another store."""
    key = initial_keys.get(handle.ref)
    if key is None:
        raise KeyStoreHandleInvalid()
    return key


def check_bdk_length(length: int) -> int:
    if length not in BDK_LENGTHS:
        raise KeyStoreKeyLength(length=length)
    return length


def check_components(components: Sequence[bytes]) -> int:
    """The common length of ``components`` after checking their count and lengths; their bytes are never shown."""
    if not MIN_COMPONENTS <= len(components) <= MAX_COMPONENTS:
        raise KeyStoreComponentsInvalid(reason=N_("a BDK is made of two or three components"))
    lengths = {len(c) for c in components}
    if len(lengths) != 1:
        raise KeyStoreComponentsInvalid(reason=N_("the components differ in length"))
    if len(set(components)) != len(components):
        raise KeyStoreComponentsInvalid(reason=N_("two components are equal"))
    return check_bdk_length(lengths.pop())


def xor_into(target: bytearray, component: bytes) -> None:
    """``target ^= component`` in place, so the combined key is only ever in one wipeable buffer."""
    for i, byte in enumerate(component):
        target[i] ^= byte


def wipe(buffer: bytearray) -> None:
    """Overwrite ``buffer`` with zeros: a best effort, Python may hold copies of what went into it."""
    buffer[:] = bytes(len(buffer))


def check_certificate(label: str, certificate: bytes, public_key: bytes) -> x509.Certificate:
    """``certificate`` parsed, if it is a DER X.509 certificate whose key is ``public_key`` (DER SPKI).

    A certificate kept beside a signing key must be that key's: one for another key would be handed out as if
    it described this one."""
    try:
        parsed = x509.load_der_x509_certificate(certificate)
        spki = parsed.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyStoreCertificateInvalid(label=label, reason=N_("it is not a DER X.509 certificate")) from None
    if spki != public_key:
        raise KeyStoreCertificateInvalid(label=label, reason=N_("it certifies another key")) from None
    return parsed


def ensure_signing_key(store: KeyStore, label: str, algorithm: SigningAlgorithm) -> tuple[bytes, bool]:
    """The public key (DER SPKI) of the signing key under ``label``, made with ``algorithm`` when there is none;
    and whether it was made now.  A key of another algorithm under ``label`` is refused, never replaced."""
    if label not in store.signing_labels():
        return store.generate_signing_key(label, algorithm), True
    found = store.signing_algorithm(label)
    if found != algorithm:
        raise SigningKeyAlgorithmWrong(label=label, algorithm=str(found), expected=str(algorithm))
    return store.signing_public_key(label), False
