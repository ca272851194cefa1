"""``naiad platform serve``: the station configuration it writes, its stop on a signal, its refusals of bad input."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sandbox_station import APP_ID, SUPPLIER_ID, Station, public_pem

import console.cli_platform_serve as serve_module
from console.cli_root import cli
from enrollment import gateway
from enrollment.config import Merchant, PlatformConfig
from enrollment.sandbox.faults import Draw
from enrollment.sandbox.server import Faults, Sandbox

ROOT = Path(__file__).resolve().parent.parent
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def naiad(*args: str) -> Result:
    return CliRunner().invoke(cli, ["platform", "serve", *args], env={"NAIAD_LANG": "en"})


def test_serve_writes_a_station_config_and_accepts_the_app_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file, config_file = tmp_path / "station.pem", tmp_path / "platform.toml"
    key_file.write_text(public_pem(KEY), encoding="ascii")
    answers: list[dict[str, object]] = []

    def one_call_then_stop(
        stopped: threading.Event,
    ) -> None:  # while it serves: the station's first call with the written file
        config = PlatformConfig.read(config_file)
        (tmp_path / "ca.pem").write_text(config.ca_certificate or "", encoding="ascii")
        biz = {
            "out_request_no": "S1",
            "supplier_id": config.supplier_id,
            "devices": [{"serial": "CLI1", "model": "DF2"}],
        }
        params = gateway.request_parameters(
            config.app_id, gateway.Method.INVENTORY_REGISTER, biz, gateway.rsa_signer(KEY), gateway.now_timestamp()
        )
        body = requests.post(config.url, data=params, timeout=30, verify=str(tmp_path / "ca.pem")).content
        key = gateway.response_key(gateway.Method.INVENTORY_REGISTER)
        answers.append(gateway.decode_response(key, body, gateway.load_public_key(config.platform_public_key)))

    monkeypatch.setattr(serve_module, "serve_until", one_call_then_stop)
    args = ["--port", "0", "--db", str(tmp_path / "p.db"), "--station-config", str(config_file)]
    result = naiad(*args, "--app-key", str(key_file), "--error-rate", "0", "--seed", "3")
    assert result.exit_code == 0, result.output
    config = PlatformConfig.read(config_file)
    assert (config.app_id, config.supplier_id, config.key_label) == (APP_ID, SUPPLIER_ID, f"platform-{APP_ID}")
    assert config.test_merchant == Merchant("2088000000000001", "S0001")
    assert config.url in result.output and "stopped" in result.output
    assert answers[0]["results"] == [{"serial": "CLI1", "status": "registered"}]


def test_serve_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    environment = {**os.environ, "NAIAD_LANG": "en", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "from console.cli import main; main()", "platform", "serve", "--port", "0"]
    with subprocess.Popen(
        [*command, "--db", str(tmp_path / "p.db")],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "https://127.0.0.1:" in first
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def started_at_request(
    tmp_path: Path, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> tuple[Sandbox, Station, threading.Event]:
    """A sandbox with ``faults``, its station, and an event set once a request has drawn its faults."""
    arrived = threading.Event()
    sandbox = Sandbox.start(tmp_path / "p.db", faults=faults)
    station = Station(sandbox, tmp_path)
    draw = sandbox._plan.draw

    def drawn() -> Draw:
        try:
            return draw()
        finally:
            arrived.set()

    monkeypatch.setattr(sandbox._plan, "draw", drawn)
    return sandbox, station, arrived


def test_a_request_under_way_when_the_sandbox_stops_gets_its_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(latency_rate=1.0, latency_seconds=1.0)
    sandbox, station, arrived = started_at_request(tmp_path, faults, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(station.post, station.params(gateway.Method.SUBSIDY_QUERY, {"serial": "NONE1"}))
        assert arrived.wait(30)
        sandbox.stop()  # during the latency spike
        response = posted.result()
    station.close()
    assert response.status_code == 200
    assert station.reply(response, gateway.Method.SUBSIDY_QUERY)["sub_code"] == "DEVICE_NOT_FOUND"


def test_a_request_cut_short_by_a_stop_gets_no_reply_and_leaves_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(latency_rate=1.0, latency_seconds=30.0)
    sandbox, station, arrived = started_at_request(tmp_path, faults, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(station.post, station.params(gateway.Method.SUBSIDY_QUERY, {"serial": "NONE1"}))
        assert arrived.wait(30)
        sandbox.faults = Faults()  # no spike any more: the stop waits only GRACE_SECONDS
        sandbox.stop()
        with pytest.raises(requests.ConnectionError):
            posted.result()
    station.close()
    assert not any(record.exc_info for record in caplog.records)


def test_a_key_that_is_not_rsa_is_refused_with_a_remedy(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    key_file = tmp_path / "ec.pem"
    key_file.write_bytes(
        ec_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = naiad("--port", "0", "--db", str(tmp_path / "p.db"), "--app-key", str(key_file))
    assert result.exit_code == 1
    assert (
        "The app key for 2026000000000001 is not usable" in result.output and "naiad platform keygen" in result.output
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_port_in_use_is_refused_with_a_remedy(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = naiad("--port", str(port), "--db", str(tmp_path / "p.db"))
    assert result.exit_code == 1
    assert "cannot listen on 127.0.0.1" in result.output and "--port" in result.output


@pytest.mark.parametrize("option", ["--db", "--station-config"])
def test_a_path_that_cannot_be_written_is_refused_with_a_remedy(tmp_path: Path, option: str) -> None:
    paths = {"--db": str(tmp_path / "p.db"), "--station-config": str(tmp_path / "s.toml")}
    paths[option] = str(tmp_path / "missing" / "file")
    result = naiad("--port", "0", *(item for pair in paths.items() for item in pair))
    assert result.exit_code == 1, result.output
    assert str(tmp_path / "missing") in result.output and "Traceback" not in result.output


def test_a_restart_keeps_the_platform_keys_the_seeds_and_a_set_app_key(tmp_path: Path) -> None:

    with Sandbox.start(tmp_path / "p.db") as first:
        first.set_app_key(APP_ID, public_pem(KEY))
        before = first.station_config()
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)  # the sandbox's clock: timestamps are checked on it
    with Sandbox.start(tmp_path / "p.db", host="localhost", clock=lambda: ahead) as second:
        after = second.station_config()
        (tmp_path / "ca.pem").write_text(second.ca_certificate, encoding="ascii")
        key = gateway.load_public_key(after.platform_public_key)
        replies = []
        for at in (ahead, dt.datetime.now(dt.UTC)):
            biz = {"out_request_no": "K1", "serial": "NONE1"}
            params = gateway.request_parameters(
                APP_ID, gateway.Method.DEVICE_ACTIVATE, biz, gateway.rsa_signer(KEY), gateway.now_timestamp(at)
            )
            body = requests.post(second.url, data=params, timeout=30, verify=str(tmp_path / "ca.pem")).content
            replies.append(gateway.decode_response(gateway.response_key(gateway.Method.DEVICE_ACTIVATE), body, key))
    assert second.url.startswith("https://localhost:")
    assert (after.platform_public_key, after.ca_certificate) == (before.platform_public_key, before.ca_certificate)
    assert replies[0]["sub_code"] == "DEVICE_NOT_IN_INVENTORY"  # authenticated with the key set before the restart
    assert replies[1]["sub_code"] == gateway.SubCode.INVALID_TIMESTAMP  # 10 minutes behind the sandbox's clock
