"""A station as the sandbox tests see it: its own RSA key, signed form posts with requests, checked replies."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enrollment import gateway
from enrollment.sandbox.seed import APP_ID, SUPPLIER_ID
from enrollment.sandbox.server import Sandbox

__all__ = ["APP_ID", "SUPPLIER_ID", "Station", "public_pem", "sandbox_fixture", "station_fixture"]


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class Station:
    """Signs requests with a software RSA key the sandbox's seeded app is given, and checks every reply."""

    def __init__(self, sandbox: Sandbox, folder: Path) -> None:
        self.sandbox = sandbox
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sandbox.set_app_key(APP_ID, public_pem(self.key))
        self.ca = folder / "ca.pem"
        self.ca.write_text(sandbox.ca_certificate, encoding="ascii")
        self.platform_key = gateway.load_public_key(sandbox.platform_public_key)
        self.http = requests.Session()

    def params(
        self,
        method: str,
        biz: dict[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        app_id: str = APP_ID,
        at: dt.datetime | None = None,
    ) -> dict[str, str]:
        return gateway.request_parameters(
            app_id, method, biz, gateway.rsa_signer(key or self.key), gateway.now_timestamp(at)
        )

    def resign(self, params: dict[str, str]) -> dict[str, str]:
        """``params`` (changed after signing) signed again with the station's key."""
        signature = gateway.rsa_signer(self.key)(gateway.sign_string(params))
        return {**params, "sign": base64.b64encode(signature).decode("ascii")}

    def post(self, data: Any, **options: Any) -> requests.Response:
        # verify on each call: a Session's own verify loses to REQUESTS_CA_BUNDLE in the environment
        return self.http.post(self.sandbox.url, data=data, timeout=30, verify=str(self.ca), **options)

    def reply(self, response: requests.Response, method: str) -> dict[str, Any]:
        """The checked response object of a reply (also of an error reply)."""
        return gateway.decode_response(gateway.response_key(method), response.content, self.platform_key)

    def call(self, method: str, biz: dict[str, Any], **options: Any) -> dict[str, Any]:
        response = self.post(self.params(method, biz, **options))
        assert response.status_code == 200
        return self.reply(response, method)

    def view(self, name: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.sandbox.base_url}/sandbox/{name}", timeout=30, verify=str(self.ca))
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    def device(self, serial: str) -> dict[str, Any] | None:
        return next((d for d in self.view("devices") if d["serial"] == serial), None)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module", name="sandbox")
def sandbox_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """``sandbox``: one sandbox per test module that imports this fixture."""
    with Sandbox.start(tmp_path_factory.mktemp("sandbox") / "platform.db") as running:
        yield running


@pytest.fixture(scope="module", name="station")
def station_fixture(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """``station``: a station whose key the module's sandbox knows."""
    station = Station(sandbox, tmp_path_factory.mktemp("station"))
    yield station
    station.close()
