"""Release keys: generation, loading, manifest signatures and the station's trust store.

A release key is Ed25519 or ECDSA P-256.  Its id is the SHA-256 of the public key's DER
SubjectPublicKeyInfo, so the id names the key itself, not a file.  Signatures cover a fixed
domain-separation prefix plus the manifest bytes, so a release key signature can never be replayed
as anything but a firmware manifest.  The trust store is a directory of PEM public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from i18n import _
from terminal.dirs import config_dir

from .errors import (
    BadSignature,
    InvalidKeyFile,
    KeyFileExists,
    KeyFileNotFound,
    MalformedSignature,
    PassphraseRequired,
    SpecialKeyFile,
    UnknownSigningKey,
    WrongPassphrase,
)

LOG = logging.getLogger(__name__)

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"
ALGORITHMS = (ED25519, ECDSA_P256)
SIGNED_PREFIX = b"NAIAD-FIRMWARE-MANIFEST-V1\n"
PRIVATE_KEY_FILE = "release.key"
PUBLIC_KEY_FILE = "release.pub"
PASSPHRASE_ENV = "NAIAD_RELEASE_KEY_PASSPHRASE"
MAX_SIGNATURE_FILE = 4096


def key_id(public_key: PublicKey) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def short_key_id(kid: str) -> str:
    """The first 16 bytes of a key id, for people."""
    return kid[:32]


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return ED25519
    return ECDSA_P256


def _check_supported(key: object, path: Path) -> None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return
    raise InvalidKeyFile(
        path=str(path), detail=_("it holds a {kind} key, not Ed25519 or ECDSA P-256", kind=type(key).__name__)
    )


@dataclass(frozen=True)
class KeyPairFiles:
    private: Path
    public: Path
    key_id: str


def generate_release_key(out_dir: Path, passphrase: bytes | None = None, algorithm: str = ED25519) -> KeyPairFiles:
    """Create ``release.key`` (PKCS#8 PEM, encrypted when a passphrase is given) and ``release.pub``.

    Existing files are never overwritten; the private key file is created with mode 0600.
    """
    if algorithm not in ALGORITHMS:
        raise InvalidKeyFile(path=str(out_dir), detail=_("unknown algorithm {algorithm}", algorithm=algorithm))
    private_path = out_dir / PRIVATE_KEY_FILE
    public_path = out_dir / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileExists(path=str(path))
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if algorithm == ED25519 else ec.generate_private_key(ec.SECP256R1())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public = key.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        _write_new(private_path, private_pem, 0o600)
        _write_new(public_path, public_pem, 0o644)
    except OSError:  # a full disk, say: leave no half of a key pair behind
        private_path.unlink(missing_ok=True)
        raise
    kid = key_id(public)
    LOG.info("release key %s written to %s", short_key_id(kid), out_dir)
    return KeyPairFiles(private_path, public_path, kid)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileExists(path=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        path.unlink(missing_ok=True)
        raise


def private_key_is_encrypted(path: Path) -> bool:
    """True when the PEM at ``path`` needs a passphrase."""
    return b"ENCRYPTED" in _read_key_file(path)


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        if passphrase:
            raise InvalidKeyFile(
                path=str(path), detail=_("the key is not encrypted but a passphrase was given")
            ) from exc
        raise PassphraseRequired(path=str(path)) from exc
    except ValueError as exc:
        if passphrase and b"ENCRYPTED" in data:
            raise WrongPassphrase(path=str(path)) from exc
        raise InvalidKeyFile(path=str(path), detail=_("it is not a PEM private key")) from exc
    except UnsupportedAlgorithm as exc:
        raise InvalidKeyFile(path=str(path), detail=_("its key algorithm is not supported")) from exc
    _check_supported(key, path)
    assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    return key


def load_public_key(path: Path) -> PublicKey:
    return parse_public_key(_read_key_file(path), path)


def parse_public_key(data: bytes, path: Path) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyFile(path=str(path), detail=_("it is not a PEM public key")) from exc
    _check_supported(key, path)
    assert isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        about = path.stat()
        if not stat.S_ISREG(about.st_mode):
            raise SpecialKeyFile(path=str(path))  # reading a FIFO would wait for ever
        if about.st_size > 65536:
            raise InvalidKeyFile(path=str(path), detail=_("it is too large for a key file"))
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileNotFound(path=str(path)) from None
    except OSError as exc:
        raise InvalidKeyFile(
            path=str(path), detail=_("it could not be read: {reason}", reason=exc.strerror or exc)
        ) from exc


# --- signatures --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestSignature:
    """The content of ``manifest.sig``: which key signed, with which algorithm, and the signature."""

    algorithm: str
    key_id: str
    signature: bytes

    def encode(self) -> bytes:
        body = {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, path: str) -> ManifestSignature:
        try:
            body: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedSignature(path=path, detail=_("it is not JSON text: {reason}", reason=exc)) from exc
        if not isinstance(body, dict) or set(body) != {"algorithm", "key_id", "signature"}:
            raise MalformedSignature(path=path, detail=_("it must hold exactly algorithm, key_id and signature"))
        algorithm, kid, sig = body["algorithm"], body["key_id"], body["signature"]
        if algorithm not in ALGORITHMS:
            raise MalformedSignature(path=path, detail=_("unknown algorithm {algorithm}", algorithm=repr(algorithm)))
        if not isinstance(kid, str) or len(kid) != 64 or kid.strip("0123456789abcdef"):
            raise MalformedSignature(path=path, detail=_("its key_id is not 64 lowercase hex digits"))
        if not isinstance(sig, str):
            raise MalformedSignature(path=path, detail=_("its signature is not text"))
        try:
            raw = base64.b64decode(sig, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise MalformedSignature(
                path=path, detail=_("its signature is not valid base64: {reason}", reason=exc)
            ) from exc
        return cls(algorithm, kid, raw)


def sign_manifest(key: PrivateKey, manifest: bytes) -> ManifestSignature:
    message = SIGNED_PREFIX + manifest
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(message)
    else:
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return ManifestSignature(algorithm_of(key), key_id(key.public_key()), signature)


def verify_manifest(
    signature: ManifestSignature, manifest: bytes, trusted: dict[str, PublicKey], path: str
) -> PublicKey:
    """Check ``signature`` over ``manifest`` with the trusted key it names; returns that key."""
    public = trusted.get(signature.key_id)
    if public is None:
        raise UnknownSigningKey(path=path, key_id=short_key_id(signature.key_id))
    if algorithm_of(public) != signature.algorithm:
        raise BadSignature(path=path, key_id=short_key_id(signature.key_id))
    message = SIGNED_PREFIX + manifest
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature.signature, message)
        else:
            public.verify(signature.signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignature(path=path, key_id=short_key_id(signature.key_id)) from None
    return public


# --- the trust store ---------------------------------------------------------------------------------


class TrustStore:
    """The release public keys this station accepts: ``<config>/trusted-keys/<key id>.pem``."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir() / "trusted-keys"

    def add(self, public_key_file: Path) -> str:
        """Trust the public key in ``public_key_file``; returns its key id (adding twice is harmless)."""
        data = _read_key_file(public_key_file)
        public = parse_public_key(data, public_key_file)
        kid = key_id(public)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{kid}.pem"
        if not target.exists():
            pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(pem)
            os.replace(tmp, target)
            LOG.info("now trusting release key %s", short_key_id(kid))
        return kid

    def remove(self, kid: str) -> bool:
        """Stop trusting the key ``kid`` (every file in the store holding it); False when it was not trusted."""
        removed = False
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pem")):
                try:
                    found = key_id(load_public_key(path))
                except (InvalidKeyFile, KeyFileNotFound):
                    continue
                if found == kid:
                    path.unlink()
                    removed = True
        if removed:
            LOG.info("no longer trusting release key %s", short_key_id(kid))
        return removed

    def keys(self) -> dict[str, PublicKey]:
        """Every trusted key by id.  A file that is not a usable key is skipped with a warning."""
        found: dict[str, PublicKey] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.pem")):
            try:
                public = load_public_key(path)
            except (InvalidKeyFile, KeyFileNotFound) as exc:
                LOG.warning("ignoring %s in the trust store: %s", path, exc)
                continue
            found[key_id(public)] = public
        return found
