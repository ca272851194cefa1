"""The software key store: BDKs in a passphrase-protected file, the embedded default when there is no HSM.

The file (JSON) holds a header and one AES-256-GCM ciphertext of the keys; the header (KDF parameters, salt,
passphrase check) is the GCM associated data, so changing any of it is detected (an altered KDF header or
check value reads as a wrong passphrase, since scrypt then yields another check value).  The GCM key and a passphrase
check value come from scrypt over the passphrase.  The file never holds a clear key; it is written atomically
(temporary file, fsync, rename) with mode 0600 in the station's data directory.  A wrong passphrase fails the
check value (:class:`KeyStoreLoginFailed`); a file that fails to parse or to authenticate is
:class:`KeyStoreFileDamaged`; either way no key is read.

Plainly: this store is software.  While it is open, the BDKs are in this process's memory in clear (in
``bytearray`` buffers wiped on :meth:`SoftwareKeyStore.close`, a best effort: Python may hold copies), and so
is each Initial Key from derivation until release, and the private key of each signing key (an EC P-256 or
RSA-2048 key in a ``cryptography`` object, which cannot be wiped).  Nothing here protects them from someone who can
read this process's memory: that is what an HSM is for, and why PCI PIN deployments use :mod:`keys.store_pkcs11`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from terminal.dirs import data_dir

from . import dukpt, kcv, tr31
from .errors import (
    KeyStoreClosed,
    KeyStoreFileDamaged,
    KeyStoreFileUnavailable,
    KeyStoreLabelInvalid,
    KeyStoreLabelUnknown,
    KeyStoreLoginFailed,
)
from .store import (
    RSA_BITS,
    RSA_PUBLIC_EXPONENT,
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

FILE_NAME = "keystore.json"
FORMAT = "naiad-keystore"
VERSION = 1
SCRYPT_N = 2**15
"""scrypt cost (N): about 0.1 s and 32 MiB per opening on a station, r=8, p=1 (RFC 7914 interactive use)."""
_SCRYPT_R, _SCRYPT_P = 8, 1
_MAX_SCRYPT_N = 2**20  # a file asking for more is refused as damaged rather than left to exhaust memory
_SALT_LENGTH, _NONCE_LENGTH = 16, 12
_Key = TypeVar("_Key")
_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_GENERATORS: dict[SigningAlgorithm, Callable[[], _SigningKey]] = {
    SigningAlgorithm.EC_P256: lambda: ec.generate_private_key(ec.SECP256R1()),
    SigningAlgorithm.RSA_2048: lambda: rsa.generate_private_key(RSA_PUBLIC_EXPONENT, RSA_BITS),
}


def default_path() -> Path:
    """``keystore.json`` in the station's data directory."""
    return data_dir() / FILE_NAME


class SoftwareKeyStore(KeyStore):
    """BDKs and signing keys in an scrypt + AES-GCM protected file.  Opening an absent file creates an empty one."""

    def __init__(self, passphrase: str, path: Path | None = None, *, scrypt_n: int = SCRYPT_N) -> None:
        if not passphrase:
            raise KeyStoreLoginFailed()
        self._path = path if path is not None else default_path()
        self._bdks: dict[str, bytearray] = {}
        self._signing: dict[str, _SigningKey] = {}
        self._certificates: dict[str, bytes] = {}
        self._closed = False
        self._initial_keys: dict[int, bytearray] = {}
        with _file_access(self._path):
            exists = self._path.exists()
        if exists:
            self._header, self._file_key = self._load(passphrase)
        else:
            salt = os.urandom(_SALT_LENGTH)
            kdf = {"name": "scrypt", "n": scrypt_n, "r": _SCRYPT_R, "p": _SCRYPT_P, "salt": _b64(salt)}
            self._file_key, check = _derive(passphrase, kdf)
            self._header = {"format": FORMAT, "version": VERSION, "kdf": kdf, "check": _b64(check)}
            self._save()

    def labels(self) -> list[str]:
        return sorted(self._bdks)

    def generate_bdk(self, label: str, length: int = 16) -> bytes:
        check_free(label, self._bdks)
        return self._add(label, bytearray(os.urandom(check_bdk_length(length))))

    def combine_components(self, label: str, components: Sequence[bytes]) -> bytes:
        check_free(label, self._bdks)
        combined = bytearray(check_components(components))
        for component in components:
            xor_into(combined, component)
        return self._add(label, combined)

    def destroy_bdk(self, label: str) -> None:
        """Remove the BDK from the file (saved atomically: the old file or the new one), then wipe it.

        Only from the current file: a copy of an older file (a backup, a snapshot) still holds the BDK under the
        same passphrase: destroying a key for good means destroying those copies too."""
        key = self._bdk(label)
        del self._bdks[label]
        self._save_or_undo(lambda: self._bdks.update({label: key}))
        wipe(key)

    def bdk_kcv(self, label: str) -> bytes:
        return kcv.aes_cmac_kcv(bytes(self._bdk(label)))

    def derive_initial_key(self, label: str, initial_key_id: bytes) -> KeyHandle:
        key = bytearray(dukpt.initial_key(bytes(self._bdk(label)), initial_key_id))
        handle = KeyHandle(bdk_label=label, initial_key_id=bytes(initial_key_id), ref=new_ref())
        self._initial_keys[handle.ref] = key
        return handle

    def initial_key_kcv(self, handle: KeyHandle) -> bytes:
        return kcv.aes_cmac_kcv(bytes(held(self._initial_keys, handle)))

    def wrap_tr31(self, kbpk: bytes, header: tr31.Header, handle: KeyHandle) -> str:
        return tr31.wrap(kbpk, header, bytes(held(self._initial_keys, handle)))

    def signing_labels(self) -> list[str]:
        return sorted(self._signing)

    def generate_signing_key(self, label: str, algorithm: SigningAlgorithm = SigningAlgorithm.EC_P256) -> bytes:
        self._check_open()
        check_free(label, self._signing)
        self._signing[label] = _GENERATORS[SigningAlgorithm(algorithm)]()
        self._save_or_undo(lambda: self._signing.pop(label))
        return self.signing_public_key(label)

    def signing_algorithm(self, label: str) -> SigningAlgorithm:
        key = self._signing_key(label)
        return SigningAlgorithm.RSA_2048 if isinstance(key, rsa.RSAPrivateKey) else SigningAlgorithm.EC_P256

    def signing_public_key(self, label: str) -> bytes:
        public = self._signing_key(label).public_key()
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, label: str, data: bytes) -> bytes:
        key = self._signing_key(label)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def certificate(self, label: str) -> bytes | None:
        self._signing_key(label)
        return self._certificates.get(label)

    def set_certificate(self, label: str, certificate: bytes) -> None:
        check_certificate(label, certificate, self.signing_public_key(label))
        earlier = self._certificates.get(label)
        self._certificates[label] = bytes(certificate)

        def undo() -> None:
            if earlier is None:
                self._certificates.pop(label)
            else:
                self._certificates[label] = earlier

        self._save_or_undo(undo)

    def release(self, handle: KeyHandle) -> None:
        key = self._initial_keys.pop(handle.ref, None)
        if key is not None:
            wipe(key)

    def close(self) -> None:
        """Wipe every key held; the store refuses all use after this (a save now would drop the file's keys)."""
        self._closed = True
        for key in [*self._initial_keys.values(), *self._bdks.values()]:
            wipe(key)
        self._initial_keys.clear()
        self._bdks.clear()
        self._signing.clear()
        self._certificates.clear()

    def _add(self, label: str, key: bytearray) -> bytes:
        check_value = kcv.aes_cmac_kcv(bytes(key))  # before the key is kept: nothing can fail after the save
        self._bdks[label] = key
        self._save_or_undo(lambda: wipe(self._bdks.pop(label)))
        return check_value

    def _save_or_undo(self, undo: Callable[[], object]) -> None:
        """Save the file, or undo the change just made when that fails: nothing is kept that the file does not hold."""
        try:
            self._save()
        except BaseException:
            undo()
            raise

    def _signing_key(self, label: str) -> _SigningKey:
        return self._labelled(self._signing, label)

    def _bdk(self, label: str) -> bytearray:
        return self._labelled(self._bdks, label)

    def _labelled(self, keys: dict[str, _Key], label: str) -> _Key:
        self._check_open()
        key = keys.get(check_label(label))
        if key is None:
            raise KeyStoreLabelUnknown(label=label)
        return key

    def _load(self, passphrase: str) -> tuple[dict[str, Any], bytes]:
        damaged = KeyStoreFileDamaged(path=str(self._path))
        with _file_access(self._path):
            raw = self._path.read_bytes()
        try:
            document = json.loads(raw)
            header = {k: document[k] for k in ("format", "version", "kdf", "check")}
            nonce, ciphertext = _unb64(document["nonce"]), _unb64(document["ciphertext"])
            _check_header(header)
            expected_check = _unb64(header["check"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise damaged from None
        file_key, check = _derive(passphrase, header["kdf"])
        if not hmac.compare_digest(check, expected_check):
            raise KeyStoreLoginFailed()
        try:
            plain = bytearray(AESGCM(file_key).decrypt(nonce, ciphertext, _aad(header)))
        except (InvalidTag, ValueError):
            raise damaged from None
        readable = True
        try:
            content = json.loads(plain)
            for label, value in content["keys"].items():
                self._bdks[check_label(label)] = bytearray(bytes.fromhex(value))
            for label, entry in content.get("signing", {}).items():  # absent from files written before signing keys
                self._signing[check_label(label)] = _private_key(bytes.fromhex(entry["key"]))
                if entry["certificate"] is not None:
                    self._certificates[label] = bytes.fromhex(entry["certificate"])
        except (ValueError, KeyError, TypeError, AttributeError, UnsupportedAlgorithm, KeyStoreLabelInvalid):
            readable = False  # raised below, outside this handler: the parser's error quotes the clear text
        finally:
            wipe(plain)
        if not readable:
            for key in self._bdks.values():
                wipe(key)
            self._bdks.clear()
            self._signing.clear()
            self._certificates.clear()
            raise damaged
        return header, file_key

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreClosed()

    def _save(self) -> None:
        self._check_open()
        signing = {
            label: {
                "key": key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).hex(),
                "certificate": certificate.hex() if (certificate := self._certificates.get(label)) else None,
            }
            for label, key in self._signing.items()
        }
        plain = bytearray(
            json.dumps({"keys": {k: v.hex() for k, v in self._bdks.items()}, "signing": signing}).encode()
        )
        nonce = os.urandom(_NONCE_LENGTH)
        try:
            ciphertext = AESGCM(self._file_key).encrypt(nonce, bytes(plain), _aad(self._header))
        finally:
            wipe(plain)
        document = {**self._header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
        with _file_access(self._path):
            _write_atomically(self._path, json.dumps(document, indent=1).encode())


@contextmanager
def _file_access(path: Path) -> Iterator[None]:
    """The operating system's refusal (unreadable, a directory, disk full, read-only) as a typed error."""
    try:
        yield
    except OSError as exc:
        raise KeyStoreFileUnavailable(path=str(path), reason=exc.strerror or type(exc).__name__) from exc


def _derive(passphrase: str, kdf: dict[str, Any]) -> tuple[bytes, bytes]:
    """(AES-256-GCM file key, passphrase check value) from scrypt's 64 bytes: a hash of the second half checks."""
    material = Scrypt(salt=_unb64(kdf["salt"]), length=64, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(
        passphrase.encode()
    )
    return material[:32], hashlib.sha256(material[32:]).digest()


def _private_key(der: bytes) -> _SigningKey:
    """A signing key read from the decrypted file (PKCS#8 says which kind): EC P-256 or RSA-2048, or the file is
    damaged."""
    key = serialization.load_der_private_key(der, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size == RSA_BITS:
        return key
    raise ValueError


def _check_header(header: dict[str, Any]) -> None:
    kdf = header["kdf"]
    if header["format"] != FORMAT or header["version"] != VERSION or kdf["name"] != "scrypt":
        raise ValueError
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    if not all(isinstance(v, int) for v in (n, r, p)) or not (2 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0):
        raise ValueError
    if (r, p) != (_SCRYPT_R, _SCRYPT_P) or len(_unb64(kdf["salt"])) != _SALT_LENGTH:
        raise ValueError


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _write_atomically(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a 0600 temporary file in the same directory, fsynced, then renamed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
