"""``naiad firmware``: the command line over keygen, pack, inspect, verify and trust."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from console.cli_firmware import firmware
from firmware.sparse_write import write_sparse

PASSPHRASE = "s3cr3t-Release-Pass"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"NAIAD_CONFIG_DIR": str(tmp_path / "config"), "NAIAD_LANG": "en"}


def run(env: dict[str, str], *args: str, input: str | None = None, **extra: str) -> Result:
    return CliRunner().invoke(firmware, list(args), env={**env, **extra}, input=input, catch_exceptions=False)


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    boot = tmp_path / "boot.img"
    boot.write_bytes(os.urandom(20_000) + bytes(20_000))
    system = tmp_path / "system.simg"
    with system.open("wb") as out:
        write_sparse(io.BytesIO(os.urandom(4096) + bytes(16384)), out)
    return {"boot": boot, "system": system}


def keygen(env: dict[str, str], out: Path) -> dict[str, Any]:
    result = run(env, "keygen", "--out", str(out), "--json", NAIAD_RELEASE_KEY_PASSPHRASE=PASSPHRASE)
    assert result.exit_code == 0, result.output
    return dict(as_json(result))


def pack(env: dict[str, str], key: Path, images: dict[str, Path], out: Path, *extra: str) -> Result:
    return run(
        env,
        "pack",
        "--key", str(key),
        "--model", "df2",
        "--model", "frog-pro:2.0",
        "--version", "3.1.0",
        "--security-version", "4",
        "--partition", f"boot={images['boot']}",
        "--partition", f"system={images['system']}",
        "-o", str(out),
        *extra,
        NAIAD_RELEASE_KEY_PASSPHRASE=PASSPHRASE,
    )  # fmt: skip


def test_keygen_pack_trust_inspect_verify(env: dict[str, str], images: dict[str, Path], tmp_path: Path) -> None:
    keys = keygen(env, tmp_path / "keys")
    assert keys["encrypted"] is True and keys["algorithm"] == "ed25519"
    assert b"ENCRYPTED" in Path(keys["private_key"]).read_bytes()
    bundle = tmp_path / "fw.zip"

    result = pack(env, Path(keys["private_key"]), images, bundle, "--compress-level", "1", "--json")
    assert result.exit_code == 0, result.output
    manifest = as_json(result)["manifest"]
    assert [p["name"] for p in manifest["partitions"]] == ["boot", "system"]
    assert [p["type"] for p in manifest["partitions"]] == ["raw", "sparse"]

    # not trusted yet: inspect says so, verify refuses
    inspected = as_json(run(env, "inspect", str(bundle), "--json"))
    assert inspected["signature"]["status"] == "unknown-key"
    refused = run(env, "verify", str(bundle), "--json")
    assert refused.exit_code == 1 and as_json(refused)["error"] == "UnknownSigningKey"

    trusted = run(env, "trust", keys["public_key"], "--json")
    assert as_json(trusted)["key_id"] == keys["key_id"]
    assert (tmp_path / "config" / "trusted-keys" / f"{keys['key_id']}.pem").exists()
    assert as_json(run(env, "trusted", "--json"))["key_ids"] == [keys["key_id"]]

    inspected = as_json(run(env, "inspect", str(bundle), "--json"))
    assert inspected["signature"] == {
        "algorithm": "ed25519",
        "key_id": keys["key_id"],
        "status": "trusted",
        "problem": None,
    }
    assert inspected["manifest"]["security_version"] == 4
    text = run(env, "inspect", str(bundle))
    assert text.exit_code == 0 and "3.1.0" in text.stdout and "system" in text.stdout

    verified = run(env, "verify", str(bundle), "--json")
    assert verified.exit_code == 0 and as_json(verified)["valid"] is True
    plain = run(env, "verify", str(bundle))
    assert plain.exit_code == 0 and "valid" in plain.stdout

    fits = run(env, "verify", str(bundle), "--model", "frog-pro", "--hardware-revision", "2.0", "--json")
    assert fits.exit_code == 0, fits.output
    rollback = run(
        env,
        "verify",
        str(bundle),
        "--model",
        "df2",
        "--hardware-revision",
        "A",
        "--unit-security-version",
        "9",
        "--json",
    )
    assert rollback.exit_code == 1 and as_json(rollback)["error"] == "RollbackRefused"
    assert as_json(rollback)["remedy"]


def test_the_passphrase_is_prompted_hidden_and_never_printed(
    env: dict[str, str], images: dict[str, Path], tmp_path: Path
) -> None:
    result = run(env, "keygen", "--out", str(tmp_path / "keys"), input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert result.exit_code == 0, result.output
    assert PASSPHRASE not in result.output
    key = tmp_path / "keys" / "release.key"
    assert b"ENCRYPTED" in key.read_bytes()
    packed = CliRunner().invoke(
        firmware,
        ["pack", "--key", str(key), "--model", "df2", "--version", "1", "--security-version", "0",
         "--partition", f"boot={images['boot']}", "-o", str(tmp_path / "fw.zip")],
        env=env,
        input=f"{PASSPHRASE}\n",
    )  # fmt: skip
    assert packed.exit_code == 0, packed.output
    assert PASSPHRASE not in packed.output
    wrong = CliRunner().invoke(
        firmware,
        ["pack", "--key", str(key), "--model", "df2", "--version", "1", "--security-version", "0",
         "--partition", f"boot={images['boot']}", "-o", str(tmp_path / "fw2.zip")],
        env=env,
        input="not-it\n",
    )  # fmt: skip
    assert wrong.exit_code == 1 and "passphrase" in wrong.output.lower()
    assert "not-it" not in wrong.output
    assert not (tmp_path / "fw2.zip").exists()


def test_keygen_without_passphrase_warns_and_never_overwrites(env: dict[str, str], tmp_path: Path) -> None:
    first = run(env, "keygen", "--out", str(tmp_path / "keys"), "--no-passphrase", "--algorithm", "ecdsa-p256")
    assert first.exit_code == 0 and "not protected" in first.stdout
    before = (tmp_path / "keys" / "release.key").read_bytes()
    second = run(env, "keygen", "--out", str(tmp_path / "keys"), "--no-passphrase", "--json")
    assert second.exit_code == 1 and as_json(second)["error"] == "KeyFileExists"
    assert (tmp_path / "keys" / "release.key").read_bytes() == before


def test_bad_pack_arguments_give_typed_errors_and_no_output(
    env: dict[str, str], images: dict[str, Path], tmp_path: Path
) -> None:
    keys = keygen(env, tmp_path / "keys")
    out = tmp_path / "fw.zip"
    cases = {
        "InvalidPartitionSpec": ["--partition", "boot"],
        "UnknownPartition": ["--partition", f"recovery={images['boot']}"],
        "UnknownModel": ["--model", "nope"],
        "InvalidModelSpec": ["--model", "df2:"],
        "InvalidRelease": ["--security-version", "-3"],
    }
    for error, bad in cases.items():
        args = ["pack", "--key", keys["private_key"], "--version", "1", "--security-version", "1", "-o", str(out)]
        if "--model" not in bad:
            args += ["--model", "df2"]
        if "--partition" not in bad:
            args += ["--partition", f"boot={images['boot']}"]
        result = run(env, *args, *bad, "--json", NAIAD_RELEASE_KEY_PASSPHRASE=PASSPHRASE)
        assert result.exit_code == 1, (error, result.output)
        assert as_json(result)["error"] == error
        assert not out.exists()


def test_errors_read_as_a_message_and_a_remedy(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "junk.zip").write_bytes(b"junk")
    result = run(env, "verify", str(tmp_path / "junk.zip"))
    assert result.exit_code == 1
    assert "damaged or not a bundle" in result.stderr
    assert "Download the bundle again" in result.stderr
    missing = run(env, "inspect", str(tmp_path / "none.zip"), "--json")
    assert missing.exit_code == 1 and as_json(missing)["error"] == "BundleNotFound"


def test_help_lists_every_command(env: dict[str, str]) -> None:
    result = run(env, "--help")
    for command in ("keygen", "pack", "inspect", "verify", "trust", "trusted"):
        assert command in result.stdout
    assert "--security-version" in run(env, "pack", "--help").stdout
