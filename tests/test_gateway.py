"""The gateway wire both sides share: the sign string, signed requests and replies, the configuration file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from enrollment import gateway
from enrollment.config import Merchant, PlatformConfig
from enrollment.errors import PlatformConfigInvalid

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = (
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)


def test_sign_string_sorts_skips_sign_and_empty_values() -> None:
    params = {"b": "2", "a": "1", "sign": "x", "c": "", "biz_content": '{"k":"v w"}'}
    assert gateway.sign_string(params) == b'a=1&b=2&biz_content={"k":"v w"}'


def test_a_signed_request_verifies_and_any_changed_parameter_does_not() -> None:
    params = gateway.request_parameters(
        "2026000000000001",
        gateway.Method.DEVICE_BIND,
        {"serial": "DF2A1"},
        gateway.rsa_signer(KEY),
        "2026-11-30 10:00:00",
    )
    assert gateway.verify(KEY.public_key(), gateway.sign_string(params), params["sign"])
    changed = {**params, "biz_content": '{"serial":"DF2A2"}'}
    assert not gateway.verify(KEY.public_key(), gateway.sign_string(changed), params["sign"])
    assert not gateway.verify(KEY.public_key(), gateway.sign_string(params), "not base64!")


def test_a_reply_round_trips_and_is_checked_over_its_bytes() -> None:
    key = gateway.response_key(gateway.Method.TRADE_PAY)
    assert key == "trade_pay_response"
    body = gateway.encode_response(key, {"code": "10000", "msg": "Success", "trade_no": "T1"}, gateway.rsa_signer(KEY))
    assert gateway.decode_response(key, body, KEY.public_key())["trade_no"] == "T1"
    with pytest.raises(gateway.BadSignature):
        gateway.decode_response(key, body, OTHER.public_key())
    with pytest.raises(gateway.BadSignature):
        gateway.decode_response(key, body.replace(b"T1", b"T2"), KEY.public_key())
    spaced = body.replace(b'"msg":', b'"msg": ')  # the same JSON value, other bytes than were signed
    with pytest.raises(gateway.BadSignature):
        gateway.decode_response(key, spaced, KEY.public_key())


def test_a_reply_with_a_second_response_object_is_refused() -> None:
    key = "trade_pay_response"
    body = gateway.encode_response(key, {"code": "10000"}, gateway.rsa_signer(KEY))
    doubled = body[:-1] + b',"trade_pay_response":{"code":"40004"}}'
    with pytest.raises(gateway.GatewayFormatError):
        gateway.decode_response(key, doubled, KEY.public_key())


@given(st.binary(max_size=300))
def test_any_bytes_as_a_reply_are_a_format_error_or_a_bad_signature(body: bytes) -> None:
    with pytest.raises((gateway.GatewayFormatError, gateway.BadSignature)):
        gateway.decode_response("trade_pay_response", body, KEY.public_key())


def test_a_reply_nested_past_the_parsers_depth_is_a_format_error() -> None:
    deep = b'{"trade_pay_response":' + b"[" * 100_000 + b"]" * 100_000 + b',"sign":"x"}'
    with pytest.raises(gateway.GatewayFormatError):
        gateway.decode_response("trade_pay_response", deep, KEY.public_key())


def config() -> PlatformConfig:
    return PlatformConfig(
        url="https://127.0.0.1:8443/gateway",
        app_id="2026000000000001",
        key_label="platform-2026000000000001",
        supplier_id="2088000000000100",
        platform_public_key=PEM,
        test_merchant=Merchant("2088000000000001", "S0001"),
    )


def test_the_configuration_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "platform.toml"
    path.write_text(config().dumps(), encoding="utf-8")
    assert PlatformConfig.read(path) == config()
    assert "PRIVATE" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("prefix", "text", "field"),
    [
        ("url = ", 'url = "http://127.0.0.1/gateway"', "url"),
        ("app_id = ", 'app_id = "no spaces allowed"', "app_id"),
        ("timeout_seconds = ", "timeout_seconds = 0", "timeout_seconds"),
        ("[test_merchant]", "[test_merchant]\ncolour = 1", "colour"),
    ],
)
def test_a_bad_setting_is_refused_with_its_line(tmp_path: Path, prefix: str, text: str, field: str) -> None:
    lines = "\n".join(text if line.startswith(prefix) else line for line in config().dumps().splitlines()).split("\n")
    path = tmp_path / "platform.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PlatformConfigInvalid) as caught:
        PlatformConfig.read(path)
    assert caught.value.params["line"] == next(n for n, line in enumerate(lines, 1) if line.startswith(field))


def test_a_missing_file_and_a_non_toml_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlatformConfigInvalid):
        PlatformConfig.read(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("[platform\n", encoding="utf-8")
    with pytest.raises(PlatformConfigInvalid) as caught:
        PlatformConfig.read(tmp_path / "bad.toml")
    assert caught.value.params["line"] == 1
    assert json.dumps(caught.value.as_dict())
