"""The sandbox's terminal (vendor) app: its key kept in the database, face sessions on any supplier's units,
tokens the unit's owner pays with, nothing else it may do; and ``naiad platform serve --terminal-config``."""

from __future__ import annotations

import functools
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sandbox_station import SUPPLIER_ID, Station, public_pem, sandbox_fixture, station_fixture

import console.cli_platform_serve as serve_module
from console.cli_root import cli
from enrollment.gateway import Method
from enrollment.sandbox.seed import BUYER_FACE_ID, TERMINAL_APP_ID, TEST_MERCHANT
from enrollment.sandbox.server import Sandbox, SandboxAppKeyFixed

sandbox, station = sandbox_fixture, station_fixture  # the module's sandbox and station
MERCHANT, STORE = TEST_MERCHANT
_serials = iter(range(1, 1000))


def terminal_key(sandbox: Sandbox) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(sandbox.terminal_config()["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def as_terminal(station: Station, method: str, biz: dict[str, Any]) -> dict[str, Any]:
    return station.call(method, biz, key=terminal_key(station.sandbox), app_id=TERMINAL_APP_ID)


def registered_unit(station: Station) -> str:
    serial = f"TERM{next(_serials):04d}"
    biz = {
        "out_request_no": f"reg-{serial}",
        "supplier_id": SUPPLIER_ID,
        "devices": [{"serial": serial, "model": "df2"}],
    }
    assert station.call(Method.INVENTORY_REGISTER, biz)["code"] == "10000"
    return serial


def face_token(station: Station, serial: str, store: str = STORE, face_id: str = BUYER_FACE_ID) -> dict[str, Any]:
    opened = as_terminal(
        station,
        Method.FACE_SESSION_INITIALIZE,
        {"out_request_no": f"i-{serial}-{store}", "serial": serial, "merchant_id": MERCHANT, "store_id": store},
    )
    assert opened["code"] == "10000", opened
    return as_terminal(
        station,
        Method.FACE_SESSION_VERIFY,
        {
            "out_request_no": f"v-{serial}-{store}",
            "session_id": opened["session_id"],
            "serial": serial,
            "face_id": face_id,
        },
    )


def pay(station: Station, serial: str, token: str, number: str, store: str = STORE, **options: Any) -> dict[str, Any]:
    biz = {
        "out_trade_no": number,
        "scene": "face",
        "auth_code": token,
        "total_amount": "0.01",
        "subject": "face-pay check",
        "merchant_id": MERCHANT,
        "store_id": store,
        "serial": serial,
    }
    return station.call(Method.TRADE_PAY, biz, **options)


def test_terminal_config_holds_the_access_of_the_seeded_terminal_app(sandbox: Sandbox) -> None:
    config = sandbox.terminal_config()
    assert set(config) == {"url", "ca_certificate", "platform_public_key", "app_id", "private_key"}
    assert config["app_id"] == TERMINAL_APP_ID and config["url"] == sandbox.url
    assert config["ca_certificate"] == sandbox.ca_certificate
    assert config["platform_public_key"] == sandbox.platform_public_key
    assert terminal_key(sandbox).key_size >= 2048
    assert config["private_key"] not in repr(sandbox)


def test_the_terminal_app_key_is_made_once_and_kept(tmp_path: Path) -> None:
    with Sandbox.start(tmp_path / "p.db") as first:
        made = first.terminal_config()["private_key"]
    with Sandbox.start(tmp_path / "p.db") as again:
        assert again.terminal_config()["private_key"] == made


def test_a_token_of_the_terminal_app_pays_at_the_test_merchant_by_the_owners_app(station: Station) -> None:
    serial = registered_unit(station)
    verified = face_token(station, serial)
    assert verified["code"] == "10000" and verified["ftoken"]
    paid = pay(station, serial, verified["ftoken"], f"T-{serial}")
    assert paid["code"] == "10000" and paid["trade_status"] == "TRADE_SUCCESS"
    assert paid["buyer_logon_id"] == "138****0001"
    again = pay(station, serial, verified["ftoken"], f"T2-{serial}")  # single use
    assert again["sub_code"] == "AUTH_CODE_INVALID"


def test_a_terminal_token_pays_only_on_its_unit_and_store(station: Station) -> None:
    serial, other = registered_unit(station), registered_unit(station)
    token = face_token(station, serial)["ftoken"]
    assert pay(station, other, token, f"X-{serial}")["sub_code"] == "AUTH_CODE_INVALID"
    assert pay(station, serial, token, f"Y-{serial}", store="S0002")["sub_code"] == "AUTH_CODE_INVALID"
    assert pay(station, serial, token, f"Z-{serial}")["code"] == "10000"


def test_the_terminal_app_opens_sessions_only_for_units_in_an_inventory_and_at_their_bound_store(
    station: Station,
) -> None:
    refused = as_terminal(
        station,
        Method.FACE_SESSION_INITIALIZE,
        {"out_request_no": "i-unknown", "serial": "NOTREGISTERED1", "merchant_id": MERCHANT, "store_id": STORE},
    )
    assert refused["sub_code"] == "DEVICE_NOT_IN_INVENTORY"
    serial = registered_unit(station)
    bind = {
        "out_request_no": f"b-{serial}",
        "serial": serial,
        "supplier_id": SUPPLIER_ID,
        "merchant_id": MERCHANT,
        "store_id": STORE,
    }
    assert station.call(Method.DEVICE_BIND, bind)["code"] == "10000"
    elsewhere = as_terminal(
        station,
        Method.FACE_SESSION_INITIALIZE,
        {"out_request_no": f"i2-{serial}", "serial": serial, "merchant_id": MERCHANT, "store_id": "S0002"},
    )
    assert elsewhere["sub_code"] == "DEVICE_NOT_AT_STORE"


def test_an_unknown_face_is_not_recognised(station: Station) -> None:
    assert face_token(station, registered_unit(station), face_id="nobody")["sub_code"] == "FACE_NOT_RECOGNISED"


@pytest.mark.parametrize(
    ("method", "biz"),
    [
        (Method.TRADE_PAY, {"out_trade_no": "tp1"}),
        (Method.TRADE_QUERY, {"out_trade_no": "tp1"}),
        (Method.TRADE_REFUND, {"out_request_no": "rf1", "out_trade_no": "tp1", "refund_amount": "0.01"}),
        (Method.INVENTORY_REGISTER, {"out_request_no": "r1", "supplier_id": SUPPLIER_ID, "devices": []}),
        (Method.DEVICE_BIND, {"out_request_no": "b1", "serial": "X"}),
        (Method.SUBSIDY_QUERY, {"serial": "X"}),
    ],
    ids=lambda value: str(value) if isinstance(value, Method) else "",
)
def test_the_terminal_app_may_only_open_and_verify_face_sessions(
    station: Station, method: Method, biz: dict[str, Any]
) -> None:
    refused = as_terminal(station, method, biz)
    assert (refused["code"], refused["sub_code"]) == ("40006", "METHOD_NOT_PERMITTED")


def test_the_terminal_app_key_cannot_be_replaced(sandbox: Sandbox) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SandboxAppKeyFixed):
        sandbox.set_app_key(TERMINAL_APP_ID, public_pem(other))


@functools.cache
def station_app_key() -> str:
    return public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


# -- naiad platform serve --terminal-config --------------------------------------------------------------
def test_serve_writes_the_terminal_config_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "terminal.json"
    written: list[dict[str, Any]] = []

    def read_then_stop(stopped: threading.Event) -> None:
        written.append(json.loads(target.read_text(encoding="utf-8")))

    monkeypatch.setattr(serve_module, "serve_until", read_then_stop)
    args = ["platform", "serve", "--port", "0", "--db", str(tmp_path / "p.db"), "--terminal-config", str(target)]
    result = CliRunner().invoke(cli, args, env={"NAIAD_LANG": "en"})
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert written[0]["app_id"] == TERMINAL_APP_ID and "PRIVATE KEY" in written[0]["private_key"]
    assert written[0]["private_key"] not in result.output


@pytest.mark.parametrize("clash", ["db", "station", "station-hard-link", "app-key", "app-key-hard-link"])
def test_serve_refuses_a_terminal_config_over_another_file(
    tmp_path: Path, clash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve_module, "serve_until", lambda stopped: None)  # had it started, stop at once
    db, station_config, app_key = tmp_path / "p.db", tmp_path / "platform.toml", tmp_path / "app.pem"
    app_key.write_text(station_app_key())
    kept = app_key.read_bytes()
    target = {"db": db, "station": station_config, "app-key": app_key}.get(clash, tmp_path / "link")
    if clash.endswith("hard-link"):
        original = app_key if clash.startswith("app-key") else station_config
        original.touch(exist_ok=True)
        target.hardlink_to(original)
    args = ["platform", "serve", "--port", "0", "--db", str(db), "--station-config", str(station_config)]
    args += ["--app-key", str(app_key), "--terminal-config", str(target)]
    result = CliRunner().invoke(cli, args, env={"NAIAD_LANG": "en"})
    assert result.exit_code == 1
    assert "--terminal-config" in result.output and "Traceback" not in result.output
    assert not db.exists() and app_key.read_bytes() == kept
    assert not station_config.exists() or station_config.read_bytes() == b""


def test_serve_refuses_a_station_config_over_the_app_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_module, "serve_until", lambda stopped: None)  # had it started, stop at once
    app_key = tmp_path / "app.pem"
    app_key.write_text(station_app_key())
    kept = app_key.read_bytes()
    args = ["platform", "serve", "--port", "0", "--db", str(tmp_path / "p.db"), "--app-key", str(app_key)]
    result = CliRunner().invoke(cli, [*args, "--station-config", str(app_key)], env={"NAIAD_LANG": "en"})
    assert result.exit_code == 1 and "--app-key" in result.output and "Traceback" not in result.output
    assert app_key.read_bytes() == kept and not (tmp_path / "p.db").exists()
