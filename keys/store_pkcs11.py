"""The PKCS#11 key store: BDKs in an HSM (SoftHSM2 in tests and demos), through python-pkcs11.

Inside the token:

- a BDK is a token object, ``CKA_SENSITIVE=True``, ``CKA_EXTRACTABLE=False``, usable only to derive
  (``CKA_DERIVE``) and to sign its KCV; it never leaves the token, wrapped or clear;
- an Initial Key is derived from it with ``CKM_AES_ECB_ENCRYPT_DATA`` over the X9.24-3 derivation data
  (:func:`keys.dukpt.initial_key_derivation_data`) as a session object, ``CKA_SENSITIVE=True``,
  ``CKA_EXTRACTABLE=True``: its value cannot be read, only wrapped;
- both KCVs are ``CKM_AES_CMAC`` signatures of one zero block, first 5 bytes.

What touches host memory in clear, and why: the TR-31 version D MAC is an AES-CMAC over the header *and the
clear key data*, and no standard PKCS#11 mechanism computes a MAC over a key object's value.  So the block is
assembled on the host: the one-time KBPK (already in host memory: the station computed it in the key
agreement) is imported as a session object, the Initial Key is wrapped under it with ``CKM_AES_KEY_WRAP_PAD``
(RFC 5649), and the wrapped key is unwrapped on the host and passed to :func:`keys.tr31.wrap`.  The Initial
Key of the one unit being injected is thus in host memory for the duration of that call; the BDK never is.
An HSM with a native TR-31 export can take over :meth:`Pkcs11KeyStore.wrap_tr31` without changing callers.

Signing keys are key pairs made in the token: EC P-256 (the provisioning CA's) with ``CKM_EC_KEY_PAIR_GEN`` and
RSA-2048 (the station's platform key) with ``CKM_RSA_PKCS_KEY_PAIR_GEN``; the private key a token object,
``CKA_SENSITIVE=True``, ``CKA_EXTRACTABLE=False``, ``CKA_SIGN`` only.  An EC signature is ``CKM_ECDSA`` over a
SHA-256 digest computed on the host (SoftHSM2 does not offer ``CKM_ECDSA_SHA256``; the digest of public data is
no secret); the token's raw ``r || s`` is returned as DER.  An RSA signature is ``CKM_SHA256_RSA_PKCS`` (the token
hashes and pads).  A certificate is a ``CKO_CERTIFICATE`` token object with the key's label.

Components of a ceremony are typed by custodians, so each is in host memory anyway; SoftHSM2 has no
``CKM_XOR_BASE_AND_KEY``, so they are XORed on the host in one buffer that is wiped after the BDK object is
made (the ``bytes`` copy python-pkcs11 is handed cannot be wiped).  The user PIN comes from the caller and is
neither logged nor kept after login.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pkcs11
import pkcs11.exceptions
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from i18n import N_

from . import tr31
from .dukpt import initial_key_derivation_data
from .errors import (
    KeyStoreClosed,
    KeyStoreLabelTaken,
    KeyStoreLabelUnknown,
    KeyStoreLoginFailed,
    KeyStoreOperationFailed,
    KeyStoreUnavailable,
)
from .kcv import AES_CMAC_KCV_LENGTH
from .store import (
    RSA_BITS,
    KeyHandle,
    KeyStore,
    SigningAlgorithm,
    check_bdk_length,
    check_certificate,
    check_components,
    check_free,
    check_label,
    held,
    new_ref,
    wipe,
    xor_into,
)

MODULE_ENV = "NAIAD_PKCS11_MODULE"
TOKEN_ENV = "NAIAD_PKCS11_TOKEN"
AES_MECHANISMS = ("AES_KEY_GEN", "AES_ECB_ENCRYPT_DATA", "AES_CMAC", "AES_KEY_WRAP_PAD")
"""What the BDKs and Initial Keys use."""
EC_MECHANISMS = ("EC_KEY_PAIR_GEN", "ECDSA")
"""What the EC signing keys (the provisioning CA) use."""
RSA_MECHANISMS = ("RSA_PKCS_KEY_PAIR_GEN", "SHA256_RSA_PKCS")
"""What the RSA signing keys (the station's merchant platform key) use."""
REQUIRED_MECHANISMS = AES_MECHANISMS + EC_MECHANISMS + RSA_MECHANISMS
"""What this store uses; ``naiad doctor`` checks the token has each."""
_CURVE = "secp256r1"
_SIGNING_TYPES = {KeyType.EC: SigningAlgorithm.EC_P256, KeyType.RSA: SigningAlgorithm.RSA_2048}

_BDK_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.DERIVE: True,
    Attribute.SIGN: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.MODIFIABLE: False,
}
_INITIAL_KEY_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: True,
    Attribute.SIGN: True,
    Attribute.DERIVE: False,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
}
_KBPK_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.WRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
}

_SIGNING_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DERIVE: False,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.MODIFIABLE: False,
}
_SIGNING_PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}


@dataclass(frozen=True)
class Pkcs11Config:
    """Where the token is: the module (shared library) path and the token label.  No PIN: that comes per login."""

    module: str
    token_label: str

    @classmethod
    def from_environment(cls) -> Pkcs11Config | None:
        """``$NAIAD_PKCS11_MODULE`` and ``$NAIAD_PKCS11_TOKEN``, or None when either is unset."""
        module, token = os.environ.get(MODULE_ENV), os.environ.get(TOKEN_ENV)
        return cls(module, token) if module and token else None


def open_token(config: Pkcs11Config) -> Any:
    """The configured token (not logged in): the module loads and holds a token with the configured label."""
    try:
        lib = pkcs11.lib(config.module)
    except (RuntimeError, OSError, pkcs11.exceptions.PKCS11Error):
        raise KeyStoreUnavailable(reason=N_("the PKCS#11 module does not load")) from None
    try:
        return lib.get_token(token_label=config.token_label)
    except pkcs11.exceptions.NoSuchToken:
        raise KeyStoreUnavailable(reason=N_("no token has the configured label")) from None
    except pkcs11.exceptions.MultipleTokensReturned:
        raise KeyStoreUnavailable(reason=N_("more than one token has the configured label")) from None


def missing_mechanisms(token: Any) -> list[str]:
    """The mechanisms of :data:`REQUIRED_MECHANISMS` the token's slot does not offer."""
    try:
        offered = {m.name for m in token.slot.get_mechanisms()}
    except pkcs11.exceptions.PKCS11Error:
        raise KeyStoreUnavailable(reason=N_("the token's mechanism list cannot be read")) from None
    return [name for name in REQUIRED_MECHANISMS if name not in offered]


class Pkcs11KeyStore(KeyStore):
    """BDKs as non-extractable, sensitive AES keys on a PKCS#11 token; one logged-in R/W session."""

    def __init__(self, config: Pkcs11Config, user_pin: str) -> None:
        token = open_token(config)
        try:
            self._session = token.open(user_pin=user_pin, rw=True)
        except (pkcs11.exceptions.PinIncorrect, pkcs11.exceptions.PinInvalid, pkcs11.exceptions.PinLenRange):
            raise KeyStoreLoginFailed() from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyStoreOperationFailed(operation=N_("log in"), code=type(exc).__name__) from None
        self._initial_keys: dict[int, Any] = {}
        self._closed = False

    def labels(self) -> list[str]:
        return self._labels(ObjectClass.SECRET_KEY, KeyType.AES)

    def generate_bdk(self, label: str, length: int = 16) -> bytes:
        check_free(label, self.labels())
        check_bdk_length(length)
        with _refused(N_("generate a key")):
            key = self._opened().generate_key(
                KeyType.AES, 8 * length, label=label, store=True, capabilities=0, template=_BDK_TEMPLATE
            )
        return self._kept_kcv(key)

    def combine_components(self, label: str, components: Sequence[bytes]) -> bytes:
        check_free(label, self.labels())
        length = check_components(components)
        combined = bytearray(length)
        try:
            for component in components:
                xor_into(combined, component)
            template = {
                **_BDK_TEMPLATE,
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.LABEL: label,
                Attribute.VALUE: bytes(combined),
            }
            with _refused(N_("store a key")):
                key = self._opened().create_object(template)
        finally:
            wipe(combined)
        return self._kept_kcv(key)

    def destroy_bdk(self, label: str) -> None:
        key = self._bdk(label)
        with _refused(N_("destroy a key")):
            key.destroy()

    def bdk_kcv(self, label: str) -> bytes:
        return self._kcv(self._bdk(label))

    def _kept_kcv(self, key: Any) -> bytes:
        """The KCV of a BDK just made; a BDK whose KCV cannot be computed is destroyed again, not left unshown."""
        try:
            return self._kcv(key)
        except BaseException:
            with _refused(N_("destroy a key")):
                key.destroy()
            raise

    def derive_initial_key(self, label: str, initial_key_id: bytes) -> KeyHandle:
        bdk = self._bdk(label)
        length = _length(bdk)
        data = initial_key_derivation_data(length, initial_key_id)
        with _refused(N_("derive an Initial Key")):
            key = bdk.derive_key(
                KeyType.AES,
                8 * length,
                mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
                mechanism_param=data,
                capabilities=0,
                template=_INITIAL_KEY_TEMPLATE,
            )
        handle = KeyHandle(bdk_label=label, initial_key_id=bytes(initial_key_id), ref=new_ref())
        self._initial_keys[handle.ref] = key
        return handle

    def initial_key_kcv(self, handle: KeyHandle) -> bytes:
        return self._kcv(held(self._initial_keys, handle))

    def wrap_tr31(self, kbpk: bytes, header: tr31.Header, handle: KeyHandle) -> str:
        key = held(self._initial_keys, handle)
        tr31.check_wrap(kbpk, header, _length(key))  # refused before the key is exported at all
        with _refused(N_("import the key block protection key")):
            wrapping = self._opened().create_object(
                {
                    **_KBPK_TEMPLATE,
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.VALUE: kbpk,
                }
            )
        try:
            with _refused(N_("wrap the Initial Key")):
                wrapped = wrapping.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        finally:
            with _refused(N_("destroy the key block protection key")):
                wrapping.destroy()
        clear = bytearray(aes_key_unwrap_with_padding(kbpk, wrapped))
        try:
            return tr31.wrap(kbpk, header, bytes(clear))
        finally:
            wipe(clear)

    def release(self, handle: KeyHandle) -> None:
        key = self._initial_keys.pop(handle.ref, None)
        if key is not None:
            with _refused(N_("destroy an Initial Key")):
                key.destroy()

    def signing_labels(self) -> list[str]:
        return sorted(
            {label for key_type in _SIGNING_TYPES for label in self._labels(ObjectClass.PRIVATE_KEY, key_type)}
        )

    def generate_signing_key(self, label: str, algorithm: SigningAlgorithm = SigningAlgorithm.EC_P256) -> bytes:
        check_free(label, self.signing_labels())
        templates = {
            "label": label,
            "store": True,
            "capabilities": 0,
            "public_template": _SIGNING_PUBLIC_TEMPLATE,
            "private_template": _SIGNING_PRIVATE_TEMPLATE,
        }
        with _refused(N_("generate a signing key")):
            if SigningAlgorithm(algorithm) is SigningAlgorithm.RSA_2048:
                public, _private = self._opened().generate_keypair(KeyType.RSA, RSA_BITS, **templates)
                return _rsa_public_key(public)
            parameters = self._opened().create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE)}, local=True
            )
            public, _private = parameters.generate_keypair(**templates)
            return encode_ec_public_key(public)

    def signing_algorithm(self, label: str) -> SigningAlgorithm:
        return _SIGNING_TYPES[self._signing_key(ObjectClass.PRIVATE_KEY, label).key_type]

    def signing_public_key(self, label: str) -> bytes:
        public = self._signing_key(ObjectClass.PUBLIC_KEY, label)
        with _refused(N_("read a public key")):
            return _rsa_public_key(public) if public.key_type is KeyType.RSA else encode_ec_public_key(public)

    def sign(self, label: str, data: bytes) -> bytes:
        private = self._signing_key(ObjectClass.PRIVATE_KEY, label)
        if private.key_type is KeyType.RSA:
            with _refused(N_("sign with a signing key")):
                return bytes(private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
        digest = hashes.Hash(hashes.SHA256())
        digest.update(data)
        with _refused(N_("sign with a signing key")):
            raw = bytes(private.sign(digest.finalize(), mechanism=Mechanism.ECDSA))
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def certificate(self, label: str) -> bytes | None:
        self._signing_key(ObjectClass.PRIVATE_KEY, label)
        found = self._certificates(label)
        with _refused(N_("read a certificate")):
            return bytes(found[0][Attribute.VALUE]) if found else None

    def set_certificate(self, label: str, certificate: bytes) -> None:
        parsed = check_certificate(label, certificate, self.signing_public_key(label))
        earlier = self._certificates(label)
        with _refused(N_("store a certificate")):
            self._opened().create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.LABEL: label,
                    Attribute.SUBJECT: parsed.subject.public_bytes(),
                    Attribute.VALUE: bytes(certificate),
                }
            )
            for old in earlier:  # only once the new one is stored: a failure keeps the old certificate
                old.destroy()

    def close(self) -> None:
        """Destroy the Initial Keys still held, then close the session (which would end them anyway); the store
        refuses all use after this (:class:`KeyStoreClosed`) rather than reaching the token through a dead session."""
        if self._closed:
            return
        self._closed = True
        for key in self._initial_keys.values():
            with contextlib.suppress(pkcs11.exceptions.PKCS11Error):
                key.destroy()
        self._initial_keys.clear()
        with _refused(N_("close the session")):
            self._session.close()

    def _opened(self) -> Any:
        if self._closed:
            raise KeyStoreClosed()
        return self._session

    def _bdk(self, label: str) -> Any:
        return self._key(ObjectClass.SECRET_KEY, KeyType.AES, label)

    def _signing_key(self, object_class: ObjectClass, label: str) -> Any:
        """The EC or RSA key of ``object_class`` under ``label`` (one namespace for both algorithms)."""
        key = self._key(object_class, None, label)
        with _refused(N_("find a key")):
            key_type = key.key_type
        if key_type not in _SIGNING_TYPES:
            raise KeyStoreLabelUnknown(label=label)
        return key

    def _key(self, object_class: ObjectClass, key_type: KeyType | None, label: str) -> Any:
        check_label(label)
        try:
            return self._opened().get_key(object_class=object_class, key_type=key_type, label=label)
        except pkcs11.exceptions.NoSuchKey:
            raise KeyStoreLabelUnknown(label=label) from None
        except pkcs11.exceptions.MultipleObjectsReturned:
            raise KeyStoreLabelTaken(label=label) from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise KeyStoreOperationFailed(operation=N_("find a key"), code=type(exc).__name__) from None

    def _labels(self, object_class: ObjectClass, key_type: KeyType) -> list[str]:
        with _refused(N_("list the keys")):
            objects = self._opened().get_objects(
                {Attribute.CLASS: object_class, Attribute.TOKEN: True, Attribute.KEY_TYPE: key_type}
            )
            return sorted({str(o[Attribute.LABEL]) for o in objects})

    def _certificates(self, label: str) -> list[Any]:
        with _refused(N_("read a certificate")):
            return list(
                self._opened().get_objects(
                    {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.TOKEN: True, Attribute.LABEL: label}
                )
            )

    @staticmethod
    def _kcv(key: Any) -> bytes:
        with _refused(N_("compute a key check value")):
            return bytes(key.sign(bytes(16), mechanism=Mechanism.AES_CMAC))[:AES_CMAC_KCV_LENGTH]


def _rsa_public_key(public: Any) -> bytes:
    """An RSA public key object's DER SubjectPublicKeyInfo, built from its modulus and exponent."""
    exponent, modulus = (int.from_bytes(public[a], "big") for a in (Attribute.PUBLIC_EXPONENT, Attribute.MODULUS))
    return (
        rsa.RSAPublicNumbers(exponent, modulus)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


def _length(key: Any) -> int:
    """A key object's length in bytes, read from the token."""
    with _refused(N_("read a key's length")):
        return int(key[Attribute.VALUE_LEN])


class _refused:
    """Turns a token's refusal into :class:`KeyStoreOperationFailed` naming the operation and the error class.

    The PKCS#11 library's own text is not passed on: only the error class (e.g. ``MechanismInvalid``).
    """

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if isinstance(exc, pkcs11.exceptions.PKCS11Error):
            raise KeyStoreOperationFailed(operation=self._operation, code=type(exc).__name__) from None
        return False
