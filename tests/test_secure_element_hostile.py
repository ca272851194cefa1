"""The simulated secure element against a hostile host: any request field of any type gets an error reply
(bad-request, or refused), never a crash or an ``internal`` error, and a refused request changes nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from se_station import Station, TestCA, key_block
from test_device_endpoint import reply_payload

from simulator.link import Faults
from simulator.secure_element import PENDING_SECONDS
from simulator.state import UnitStore
from simulator.unit import VirtualTerminal
from terminal.client import ManagementClient
from terminal.device import DeviceEndpoint, frame_for
from terminal.errors import RemoteError
from terminal.framing import FLAG_ERROR, encode_frame
from terminal.models import model_by_id
from terminal.protocol import ErrorCode, MessageType, Payload
from terminal.schema import Invalid, check_reply
from terminal.secure_element import SecureElement

SE_TYPES = [t for t in MessageType if t.name.startswith("SE_")]
FIELDS = [
    "challenge",
    "certificate",
    "ca_certificate",
    "station_public",
    "station_nonce",
    "session",
    "key_block",
    "signature",
    "kcv",
    "serial",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from([0, 5, 8, 16, 32, 65]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.binary(max_size=100),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


class Unit:
    """A virtual terminal's handler behind a device endpoint, in this process (no pty)."""

    def __init__(self, tmp_path: Path) -> None:
        store = UnitStore.create(tmp_path / "units", model_by_id("df2"))
        self.terminal = VirtualTerminal(store, 0, Faults(), lambda: None, tmp_path)
        self.endpoint = DeviceEndpoint(self.terminal.handle)
        self.seq = 0

    def request(self, type_: int, payload: Payload) -> tuple[bool, Payload]:
        self.seq = (self.seq + 1) & 0xFFFF
        flags, reply = reply_payload(self.endpoint.receive(encode_frame(frame_for(self.seq, type_, payload))))
        return bool(flags & FLAG_ERROR), reply


@pytest.fixture
def unit(tmp_path: Path) -> Unit:
    return Unit(tmp_path)


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        (MessageType.SE_IDENTITY, {}),
        (MessageType.SE_IDENTITY, {"challenge": "0" * 32}),
        (MessageType.SE_IDENTITY, {"challenge": bytes(31)}),
        (MessageType.SE_CERT_INSTALL, {"certificate": b"junk", "ca_certificate": b"junk"}),
        (MessageType.SE_KEY_SESSION, {"station_public": bytes(64), "station_nonce": bytes(32)}),
        (MessageType.SE_KEY_LOAD, {"session": bytes(16), "key_block": b"D0112", "signature": b""}),
        (MessageType.SE_KEY_COMMIT, {"session": bytes(16), "kcv": bytes(3), "signature": b""}),
        (MessageType.SE_ZEROISE, {"serial": 7}),
    ],
)
def test_a_malformed_field_answers_bad_request(unit: Unit, type_: int, payload: Payload) -> None:
    error, reply = unit.request(type_, payload)
    assert error and reply["code"] == ErrorCode.BAD_REQUEST


def test_a_point_off_the_curve_answers_bad_request_once_certified(unit: Unit) -> None:
    ca = TestCA()
    _, made = unit.request(MessageType.SE_IDENTITY, {"challenge": bytes(32)})
    certificate = ca.issue(made["csr"]).public_bytes(serialization.Encoding.DER)
    error, _ = unit.request(MessageType.SE_CERT_INSTALL, {"certificate": certificate, "ca_certificate": ca.certificate})
    assert not error
    error, reply = unit.request(
        MessageType.SE_KEY_SESSION, {"station_public": b"\4" + bytes(64), "station_nonce": bytes(32)}
    )
    assert error and reply["code"] == ErrorCode.BAD_REQUEST


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(type_=st.sampled_from(SE_TYPES), payload=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4))
def test_any_request_is_answered_and_never_crashes_the_unit(unit: Unit, type_: int, payload: dict[str, Any]) -> None:
    error, reply = unit.request(type_, payload)
    if error:
        assert reply["code"] in (ErrorCode.BAD_REQUEST, ErrorCode.REFUSED), reply
    _, info = unit.request(MessageType.SE_KEY_STATUS, {})  # and the unit still answers
    assert info["state"] in ("factory", "identity")


@pytest.mark.parametrize(
    ("type_", "reply", "field"),
    [
        (MessageType.SE_ATTESTATION, {"chain": ["PEM text"]}, "chain[0]"),
        (MessageType.SE_KEY_SESSION, {"session": bytes(15), "unit_nonce": bytes(32), "signature": b""}, "session"),
        (MessageType.SE_KEY_LOAD, {"initial_key_id": bytes(8), "ksn": bytes(12), "kcv": bytes(16)}, "kcv"),
        (
            MessageType.SE_KEY_STATUS,
            {"state": "keyed", "identity_serial_number": 5, "keys": []},
            "identity_serial_number",
        ),
        (
            MessageType.SE_KEY_STATUS,
            {"state": "keyed", "identity_serial_number": None, "keys": [{"name": "dukpt", "kcv": bytes(5)}]},
            "keys[0].initial_key_id",
        ),
    ],
)
def test_the_station_refuses_a_secure_element_reply_of_the_wrong_shape(type_: int, reply: Payload, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_reply(type_, reply)
    assert caught.value.field == field


def test_certificates_of_other_key_types_are_refused_not_a_crash(unit: Unit) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    unit.request(MessageType.SE_IDENTITY, {"challenge": bytes(32)})
    ca = TestCA()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])

    def certificate(public: Any, signer: Any) -> bytes:
        builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        builder = builder.serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for cert, ca_cert in (
        (certificate(p384.public_key(), ca.key), ca.certificate),  # a P-384 key where the identity key belongs
        (certificate(rsa_key.public_key(), rsa_key), certificate(rsa_key.public_key(), rsa_key)),  # RSA all along
    ):
        error, reply = unit.request(MessageType.SE_CERT_INSTALL, {"certificate": cert, "ca_certificate": ca_cert})
        assert error and reply["code"] == ErrorCode.REFUSED, reply


class InProcessClient:
    """What SecureElement needs of a ManagementClient, over the in-process unit: request() and info()."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit

    def request(self, type_: int, payload: Payload | None = None) -> Payload:
        error, reply = self.unit.request(type_, payload or {})
        if error:
            raise RemoteError(request=hex(type_), code=reply["code"], detail=reply.get("detail", ""))
        return reply


def test_a_crash_while_the_key_set_is_written_leaves_the_old_one(
    unit: Unit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = unit.terminal.serial
    st = Station(SecureElement(cast(ManagementClient, InProcessClient(unit))), serial, tmp_path, TestCA())
    st.certify()
    old = st.inject(bytes.fromhex("0123456789ABCDEF"), os.urandom(16))
    session = st.open_session()
    new = st.load(session, key_block(session.kbpk, bytes.fromhex("0123456789ABCDF0"), os.urandom(16)))

    def power_fails(*args: Any) -> None:
        raise OSError("power failed while renaming")

    monkeypatch.setattr(os, "replace", power_fails)  # simulator.state.replace_atomically renames with it
    with pytest.raises(RemoteError):
        st.commit(session, new.kcv)
    monkeypatch.undo()
    [slot] = st.se.status().keys
    assert (slot.initial_key_id, slot.kcv) == (old.initial_key_id, old.kcv)


def test_a_pending_key_not_committed_in_time_is_refused_and_nothing_is_stored(
    unit: Unit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = Station(SecureElement(cast(ManagementClient, InProcessClient(unit))), unit.terminal.serial, tmp_path, TestCA())
    st.certify()
    session = st.open_session()
    loaded = st.load(session, key_block(session.kbpk, bytes.fromhex("0123456789ABCDEF"), os.urandom(16)))
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + PENDING_SECONDS)
    with pytest.raises(RemoteError) as caught:
        st.commit(session, loaded.kcv)
    assert caught.value.params["code"] == ErrorCode.REFUSED
    status = st.se.status()
    assert (status.state, status.keys) == ("certified", [])
    assert "pending key expired" in (unit.terminal.store.directory / "logs" / "system.log").read_text(encoding="utf-8")


def test_a_malformed_signed_zeroise_answers_bad_request_and_keeps_the_session(unit: Unit, tmp_path: Path) -> None:
    st = Station(SecureElement(cast(ManagementClient, InProcessClient(unit))), unit.terminal.serial, tmp_path, TestCA())
    st.certify()
    session = st.open_session()
    for fields in ({"session": session.reply.session[:8]}, {"session": session.reply.session, "signature": "x"}):
        error, reply = unit.request(MessageType.SE_ZEROISE, {"serial": st.serial, **fields})
        assert error and reply["code"] == ErrorCode.BAD_REQUEST, reply
    st.se.zeroise(st.serial, session.reply.session, st.zeroise_signature(session))  # the session was not used up
    assert st.se.status().state == "factory"
