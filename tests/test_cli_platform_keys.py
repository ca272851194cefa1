"""``naiad platform keygen``: the station's RSA key for the merchant platform, made in the key store by an admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from console.cli import cli
from console.keystore_option import open_key_store
from enrollment.config import PlatformConfig
from keys.store import SigningAlgorithm
from provisioning import operators as ops
from provisioning.ledger import Ledger

PASSPHRASE = "the station's key store passphrase"
LABEL = "platform-2026000000000001"
PASSWORDS = {"root": "root-Secret-8731", "olga": "olga-Secret-2290"}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A platform configuration naming the key ``LABEL`` (the platform's own key: any RSA key will do here)."""
    platform_key = rsa.generate_private_key(65537, 2048).public_key()
    config = PlatformConfig(
        url="https://127.0.0.1:8443/gateway",
        app_id="2026000000000001",
        key_label=LABEL,
        supplier_id="2088000000000100",
        platform_public_key=platform_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    )
    path = tmp_path / "platform.toml"
    path.write_text(config.dumps(), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _software_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The software key store, and a ledger with the admin root and the operator olga (cheap scrypt)."""
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("NAIAD_KEYSTORE", raising=False)
    monkeypatch.delenv("NAIAD_PLATFORM_CONFIG", raising=False)
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url) as ledger:
        ops.add_operator(ledger, None, "root", "admin", PASSWORDS["root"])
        ops.add_operator(ledger, ops.login(ledger, "root", PASSWORDS["root"]), "olga", "operator", PASSWORDS["olga"])
    monkeypatch.setenv("NAIAD_LEDGER", url)


def naiad(*args: str, operator: str | None = "root", **env: str) -> Result:
    """``naiad platform keygen ARGS`` as ``operator`` (its password typed), by default the admin."""
    login = ["--operator", operator] if operator else []
    return CliRunner().invoke(
        cli,
        [*login, "platform", "keygen", *args],
        input=f"{PASSWORDS.get(operator or '', '')}\n",
        env={"NAIAD_LANG": "en", "NAIAD_OPERATOR": "", **env},
    )


def _verified(pem: str, keystore: str = "software", label: str = LABEL) -> None:
    """``pem`` is the RSA-2048 public key of the store's key under ``label``, and that key signs with it."""
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    with open_key_store(keystore) as store:
        assert store.signing_algorithm(label) is SigningAlgorithm.RSA_2048
        key.verify(store.sign(label, b"sign string"), b"sign string", padding.PKCS1v15(), hashes.SHA256())


def test_keygen_makes_the_configured_key_once_and_prints_its_public_key(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "station.pem"
    made = naiad("--platform-config", str(config_file), "--out", str(out))
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("-----BEGIN PUBLIC KEY-----") and out.read_text() == made.stdout
    assert "Made the RSA-2048 key platform-2026000000000001" in made.stderr
    _verified(made.stdout)
    again = naiad(NAIAD_PLATFORM_CONFIG=str(config_file))  # the configuration from the environment
    assert again.exit_code == 0, again.output
    assert again.stdout == made.stdout and "kept, not replaced" in again.stderr
    assert PASSPHRASE not in made.output + again.output


def test_keygen_needs_a_configuration_or_a_label() -> None:
    refused = naiad()
    assert refused.exit_code == 1 and "NAIAD_PLATFORM_CONFIG" in refused.stderr
    made = naiad("--label", "station-key")
    assert made.exit_code == 0, made.output
    _verified(made.stdout, label="station-key")


def test_keygen_refuses_a_label_that_holds_an_ec_key(config_file: Path) -> None:
    with open_key_store("software", create=True) as store:
        ec_public = store.generate_signing_key(LABEL)
    refused = naiad("--platform-config", str(config_file))
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "is a ec-p256 key, not rsa-2048" in refused.stderr
    with open_key_store("software") as store:
        assert store.signing_public_key(LABEL) == ec_public


@pytest.mark.parametrize(("operator", "says"), [(None, "logged-in operator"), ("olga", "needs the admin role")])
def test_only_an_admin_makes_the_key_and_the_key_store_is_not_opened_for_anyone_else(
    config_file: Path, operator: str | None, says: str
) -> None:
    refused = naiad("--platform-config", str(config_file), operator=operator)
    assert refused.exit_code == 1 and says in refused.stderr and refused.stdout == ""
    with open_key_store("software", create=True) as store:
        assert LABEL not in store.signing_labels()
