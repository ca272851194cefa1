"""keys.session: the statements each injection step signs, the ECDH key agreement and the KBPK derivation."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import session as ks
from keys.errors import PublicPointInvalid, SessionInputInvalid

SERIAL = "DF20A1B2C3D"
# fixed P-256 scalars and nonces: a known answer the station and a unit written from docs/protocol.md must meet
STATION_SCALAR = 0x1F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A79881F2E3D4C5B6A7988
UNIT_SCALAR = 0x0A1B2C3D4E5F60710A1B2C3D4E5F60710A1B2C3D4E5F60710A1B2C3D4E5F6071
STATION_NONCE = bytes(range(32))
UNIT_NONCE = bytes(range(32, 64))
KNOWN_KBPK = "0cf2639460e21c3383eeb43eb7e9faa27a82063e47b2fafef29a6aa4d57eb30e"


def key(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP256R1())


def hkdf_sha256(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 by hand, to check derive_kbpk against the construction docs/protocol.md gives."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def field(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return len(raw).to_bytes(4, "big") + raw


def test_both_sides_derive_the_same_kbpk_and_it_is_the_documented_one() -> None:
    station, unit = key(STATION_SCALAR), key(UNIT_SCALAR)
    station_public, unit_public = ks.public_point(station), ks.public_point(unit)
    at_station = ks.derive_kbpk(
        ks.agree(station, unit_public), SERIAL, station_public, unit_public, STATION_NONCE, UNIT_NONCE
    )
    at_unit = ks.derive_kbpk(
        ks.agree(unit, station_public), SERIAL, station_public, unit_public, STATION_NONCE, UNIT_NONCE
    )
    assert at_station == at_unit and len(at_station) == 32
    info = field(b"naiad-se-v1/kbpk") + field(SERIAL) + field(station_public) + field(unit_public)
    shared = ks.agree(station, unit_public)
    assert at_station == hkdf_sha256(shared, STATION_NONCE + UNIT_NONCE, info, 32)
    assert at_station.hex() == KNOWN_KBPK


def test_the_kbpk_depends_on_every_input() -> None:
    station, unit = key(STATION_SCALAR), key(UNIT_SCALAR)
    args = (ks.agree(station, ks.public_point(unit)), SERIAL, ks.public_point(station), ks.public_point(unit))
    base = ks.derive_kbpk(*args, STATION_NONCE, UNIT_NONCE)
    other_point = ks.public_point(key(3))
    variants = [
        (bytes(32), *args[1:], STATION_NONCE, UNIT_NONCE),
        (args[0], "DF20A1B2C3E", *args[2:], STATION_NONCE, UNIT_NONCE),
        (args[0], SERIAL, other_point, args[3], STATION_NONCE, UNIT_NONCE),
        (*args[:3], other_point, STATION_NONCE, UNIT_NONCE),
        (*args, UNIT_NONCE, STATION_NONCE),
    ]
    assert base not in {ks.derive_kbpk(*v) for v in variants}


def test_a_statement_is_its_tag_then_every_field_length_prefixed() -> None:
    session, kcv = bytes(range(16)), bytes.fromhex("0A0B0C0D0E")
    assert ks.commit_statement(SERIAL, session, kcv) == (
        field(b"naiad-se-v1/commit") + field(SERIAL) + field(session) + field(kcv)
    )
    nonce = bytes(range(32, 64))
    assert ks.zeroise_statement(SERIAL, session, nonce) == (
        field(b"naiad-se-v1/zeroise") + field(SERIAL) + field(session) + field(nonce)
    )


Statement = Callable[..., bytes]
STATEMENTS: dict[str, tuple[Statement, tuple[bytes | str, ...]]] = {
    "identity": (ks.identity_statement, (SERIAL, bytes(32), b"csr")),
    "session": (ks.session_statement, (SERIAL, b"\4" + bytes(64), bytes(32), b"\4" + bytes(64), bytes(32), bytes(16))),
    "load": (ks.load_statement, (SERIAL, bytes(16), bytes(32), "D0112B1AX00N0100KS18...")),
    "commit": (ks.commit_statement, (SERIAL, bytes(16), bytes(5))),
    "zeroise": (ks.zeroise_statement, (SERIAL, bytes(16), bytes(32))),
}


@pytest.mark.parametrize("name", list(STATEMENTS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_field_change_changes_the_statement(name: str, data: st.DataObject) -> None:
    make, fields = STATEMENTS[name]
    index = data.draw(st.integers(0, len(fields) - 1))
    original = fields[index]
    if isinstance(original, str):
        changed: bytes | str = data.draw(st.text(max_size=40).filter(lambda t: t != original))
    else:
        fixed = name != "identity" or index != 2  # the CSR has any length; the rest are sized
        size = st.just(len(original)) if fixed else st.integers(0, 40)
        changed = data.draw(size.flatmap(lambda n: st.binary(min_size=n, max_size=n)).filter(lambda b: b != original))
    altered = (*fields[:index], changed, *fields[index + 1 :])
    assert make(*altered) != make(*fields)


def test_statements_of_different_steps_never_coincide() -> None:
    made = {make(*fields) for make, fields in STATEMENTS.values()}
    assert len(made) == len(STATEMENTS)


def test_a_field_of_the_wrong_size_is_refused_naming_only_its_length() -> None:
    with pytest.raises(SessionInputInvalid) as caught:
        ks.commit_statement(SERIAL, bytes(16), bytes(16))
    assert caught.value.params == {"field": "KCV", "length": 16, "expected": 5}
    with pytest.raises(SessionInputInvalid):
        ks.derive_kbpk(bytes(31), SERIAL, b"\4" + bytes(64), b"\4" + bytes(64), bytes(32), bytes(32))


@pytest.mark.parametrize(
    "point",
    [
        b"",
        bytes(65),  # not uncompressed
        b"\4" + bytes(64),  # (0, 0) is not on the curve
        ks.public_point(key(5))[:64] + b"\0",  # off the curve
        b"\2" + ks.public_point(key(5))[1:33],  # compressed: refused, the protocol sends 65 bytes
    ],
)
def test_agree_refuses_a_point_that_is_not_an_uncompressed_p256_point(point: bytes) -> None:
    with pytest.raises(PublicPointInvalid):
        ks.agree(key(7), point)


def test_verify_takes_only_a_valid_signature_of_that_statement() -> None:
    signer = key(11)
    statement = ks.commit_statement(SERIAL, bytes(16), bytes(5))
    signature = ks.sign(signer, statement)
    assert ks.verify(signer.public_key(), signature, statement)
    assert not ks.verify(signer.public_key(), signature, statement + b"x")
    assert not ks.verify(key(12).public_key(), signature, statement)
    assert not ks.verify(signer.public_key(), b"not DER", statement)
    assert not ks.verify(ec.generate_private_key(ec.SECP384R1()).public_key(), signature, statement)


def test_ephemeral_keys_are_fresh_p256_points() -> None:
    (first, point), (_, other) = ks.ephemeral(), ks.ephemeral()
    assert len(point) == 65 and point[0] == 4 and point != other
    assert ks.public_point(first) == point == ks.public_point(first.public_key())
    assert ks.load_point(point).public_numbers() == first.public_key().public_numbers()


def test_the_selftest_runs_the_key_sessions_known_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from keys import selftest

    names = {answer.name for answer in ks.known_answers()}
    report = selftest.run_selftest()
    assert report.passed and names <= {r.name for r in report.results}
    monkeypatch.setattr(ks, "derive_kbpk", lambda *args: bytes(32))  # a derivation gone wrong fails it
    assert {r.name for r in selftest.run_selftest().failed} == {
        "Key session KBPK: ECDH P-256 and HKDF-SHA256, both ends"
    }
