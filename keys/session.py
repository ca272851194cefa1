"""The key session between the station and a unit's secure element: signed statements, ECDH and the KBPK.

Pure functions over ``cryptography``, shared by the station and the simulator (docs/protocol.md, secure
element group).  Each step of an injection is bound by a signature over a *statement*: a domain tag naming
the step, then every field, each length-prefixed, so no two different field lists give the same bytes and a
signature for one step never verifies as another.  The key block protection key (KBPK) is HKDF-SHA256 over
the ECDH secret of the station's ephemeral key and the unit's identity key, bound to the serial, both public
points and both nonces: a fresh, one-time AES-256 key for every session.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from i18n import N_

from .errors import PublicPointInvalid, SessionInputInvalid
from .kat import KnownAnswer

SESSION_VERSION = b"naiad-se-v1"
PUBLIC_POINT_LENGTH = 65  # uncompressed SEC1 P-256 point: 0x04, X, Y
NONCE_LENGTH = 32
CHALLENGE_LENGTH = 32
SESSION_ID_LENGTH = 16
SHARED_SECRET_LENGTH = 32
KBPK_LENGTH = 32  # AES-256
KCV_LENGTH = 5
_UNCOMPRESSED = 0x04


def _sized(field: str, value: bytes, expected: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != expected:
        length = len(value) if isinstance(value, bytes) else 0
        raise SessionInputInvalid(field=field, length=length, expected=expected)
    return value


def _statement(step: bytes, *fields: bytes | str) -> bytes:
    """``SESSION_VERSION/step`` then each field, every one prefixed with its length (4 bytes, big-endian)."""
    out = bytearray()
    for field in (SESSION_VERSION + b"/" + step, *fields):
        data = field.encode("utf-8") if isinstance(field, str) else bytes(field)
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def identity_statement(serial: str, challenge: bytes, csr: bytes) -> bytes:
    """What the attestation key signs: this unit made the identity key in ``csr`` now, for ``challenge``."""
    return _statement(b"identity", serial, _sized(N_("challenge"), challenge, CHALLENGE_LENGTH), csr)


def session_statement(
    serial: str, station_public: bytes, station_nonce: bytes, unit_public: bytes, unit_nonce: bytes, session: bytes
) -> bytes:
    """What the identity key signs: the unit takes part in this key agreement, as session ``session``."""
    return _statement(
        b"session",
        serial,
        _sized(N_("station public key"), station_public, PUBLIC_POINT_LENGTH),
        _sized(N_("station nonce"), station_nonce, NONCE_LENGTH),
        _sized(N_("unit public key"), unit_public, PUBLIC_POINT_LENGTH),
        _sized(N_("unit nonce"), unit_nonce, NONCE_LENGTH),
        _sized(N_("session"), session, SESSION_ID_LENGTH),
    )


def load_statement(serial: str, session: bytes, unit_nonce: bytes, key_block: str) -> bytes:
    """What the provisioning CA signs: this key block is for this unit, in this session only."""
    return _statement(
        b"load",
        serial,
        _sized(N_("session"), session, SESSION_ID_LENGTH),
        _sized(N_("unit nonce"), unit_nonce, NONCE_LENGTH),
        key_block,
    )


def commit_statement(serial: str, session: bytes, kcv: bytes) -> bytes:
    """What the provisioning CA signs: the station saw this KCV match, so the unit may store the key."""
    return _statement(
        b"commit", serial, _sized(N_("session"), session, SESSION_ID_LENGTH), _sized(N_("KCV"), kcv, KCV_LENGTH)
    )


def zeroise_statement(serial: str, session: bytes, unit_nonce: bytes) -> bytes:
    """What the provisioning CA signs: wipe this unit, once, in this session (a unit with a pinned CA only)."""
    return _statement(
        b"zeroise",
        serial,
        _sized(N_("session"), session, SESSION_ID_LENGTH),
        _sized(N_("unit nonce"), unit_nonce, NONCE_LENGTH),
    )


def derive_kbpk(
    shared_secret: bytes,
    serial: str,
    station_public: bytes,
    unit_public: bytes,
    station_nonce: bytes,
    unit_nonce: bytes,
) -> bytes:
    """The session's AES-256 KBPK: HKDF-SHA256, salt = the two nonces, info = a statement of everything else."""
    _sized(N_("shared secret"), shared_secret, SHARED_SECRET_LENGTH)
    salt = _sized(N_("station nonce"), station_nonce, NONCE_LENGTH) + _sized(N_("unit nonce"), unit_nonce, NONCE_LENGTH)
    info = _statement(
        b"kbpk",
        serial,
        _sized(N_("station public key"), station_public, PUBLIC_POINT_LENGTH),
        _sized(N_("unit public key"), unit_public, PUBLIC_POINT_LENGTH),
    )
    return HKDF(algorithm=hashes.SHA256(), length=KBPK_LENGTH, salt=salt, info=info).derive(shared_secret)


def load_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of an uncompressed point; PublicPointInvalid for anything else or a point off the curve."""
    if not isinstance(point, bytes) or len(point) != PUBLIC_POINT_LENGTH or point[0] != _UNCOMPRESSED:
        raise PublicPointInvalid()
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise PublicPointInvalid() from None


def public_point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed SEC1 point (65 bytes) of a P-256 key, private or public."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public.curve, ec.SECP256R1):
        raise PublicPointInvalid()
    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def ephemeral() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fresh P-256 key pair for one session: the private key and its 65-byte public point."""
    private = ec.generate_private_key(ec.SECP256R1())
    return private, public_point(private)


def agree(private: ec.EllipticCurvePrivateKey, peer_public: bytes) -> bytes:
    """ECDH: the 32-byte shared secret of ``private`` and the peer's point (refused unless on P-256)."""
    return private.exchange(ec.ECDH(), load_point(peer_public))


def sign(private: ec.EllipticCurvePrivateKey, statement: bytes) -> bytes:
    """ECDSA P-256 SHA-256 over ``statement``, DER-encoded (the unit's side; the station signs in its key store)."""
    return private.sign(statement, ec.ECDSA(hashes.SHA256()))


def verify(public_key: ec.EllipticCurvePublicKey, signature: bytes, statement: bytes) -> bool:
    """True when ``signature`` is a valid ECDSA P-256 SHA-256 signature of ``statement`` by ``public_key``."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        return False
    if not isinstance(signature, bytes) or not isinstance(statement, bytes):
        return False
    try:
        public_key.verify(signature, statement, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# --- known answers -----------------------------------------------------------------------------------

_RFC5869_A1 = (  # IKM, salt, info, OKM (42 bytes) of RFC 5869 appendix A.1
    "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    "000102030405060708090a0b0c",
    "f0f1f2f3f4f5f6f7f8f9",
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
)
_KBPK_EXAMPLE = (  # station scalar, unit scalar, serial, KBPK: the example of docs/protocol.md (nonces 00..3f)
    0x1F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A7988,
    0x0A1B2C3D4E5F60710A1B2C3D4E5F60710A1B2C3D4E5F60710A1B2C3D4E5F6071,
    "DF20A1B2C3D",
    "0cf2639460e21c3383eeb43eb7e9faa27a82063e47b2fafef29a6aa4d57eb30e",
)


def _hkdf_answers() -> bool:
    ikm, salt, info, okm = (bytes.fromhex(h) for h in _RFC5869_A1)
    return HKDF(algorithm=hashes.SHA256(), length=len(okm), salt=salt, info=info).derive(ikm) == okm


def _kbpk_answers() -> bool:
    """Both ends of the documented example agree, and on the documented KBPK."""
    station_scalar, unit_scalar, serial, kbpk = _KBPK_EXAMPLE
    station = ec.derive_private_key(station_scalar, ec.SECP256R1())
    unit = ec.derive_private_key(unit_scalar, ec.SECP256R1())
    station_public, unit_public = public_point(station), public_point(unit)
    nonces = bytes(range(NONCE_LENGTH)), bytes(range(NONCE_LENGTH, 2 * NONCE_LENGTH))
    at_station = derive_kbpk(agree(station, unit_public), serial, station_public, unit_public, *nonces)
    at_unit = derive_kbpk(agree(unit, station_public), serial, station_public, unit_public, *nonces)
    return at_station == at_unit == bytes.fromhex(kbpk)


def known_answers() -> list[KnownAnswer]:
    """The key session's known answers, for :mod:`keys.selftest`."""
    return [
        KnownAnswer(N_("HKDF-SHA256 test case 1"), N_("RFC 5869 appendix A.1"), _hkdf_answers),
        KnownAnswer(
            N_("Key session KBPK: ECDH P-256 and HKDF-SHA256, both ends"),
            N_("docs/protocol.md, secure element group (the key block protection key's known answer)"),
            _kbpk_answers,
        ),
    ]
