"""A station for the command-line tests against a sandbox platform (tests/test_cli_register.py,
tests/test_cli_facecheck.py): its ledger with an operator of each role logged in by session token, its platform
configuration, and a software key store holding the RSA key the sandbox is given; the platform client gives up
after two attempts without sleeping, so an outage is quick to show."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import enrollment.client
from enrollment.sandbox.server import Sandbox
from keys.store import SigningAlgorithm
from keys.store_software import SoftwareKeyStore, default_path
from provisioning import operators as ops
from provisioning.ledger import Ledger


def prepare_station(
    sandbox: Sandbox,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    passphrase: str,
    label: str,
    roles: dict[str, str],
) -> tuple[str, Path, dict[str, str]]:
    """The ledger's URL, the platform configuration's path and a session token per operator of ``roles`` (name:
    role; ``root`` the admin who adds the others), all in ``folder``; the key ``label`` in the default key store."""
    monkeypatch.setattr(
        enrollment.client,
        "PlatformClient",
        functools.partial(enrollment.client.PlatformClient, attempts=2, sleep=lambda seconds: None),
    )
    config = sandbox.station_config(label)
    path = folder / "platform.toml"
    path.write_text(config.dumps(), encoding="utf-8")
    with SoftwareKeyStore(passphrase, default_path(), scrypt_n=2**10) as store:
        public = store.generate_signing_key(label, SigningAlgorithm.RSA_2048)
    pem = serialization.load_der_public_key(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sandbox.set_app_key(config.app_id, pem.decode())
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    url = f"sqlite:///{folder / 'ledger.sqlite'}"
    tokens = {}
    with Ledger.open(url) as ledger:
        for name, role in roles.items():
            root = ops.login(ledger, "root", "root-Secret-8731") if name != "root" else None
            ops.add_operator(ledger, root, name, role, f"{name}-Secret-8731")
            tokens[name] = ops.open_session(ledger, name, f"{name}-Secret-8731")[1]
    return url, path, tokens
