"""Careless input gets an answer, never a traceback or a hang: wrong paths, special files, unknown serials."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import ed25519
from helpers import sparse_image

import firmware.errors as fe
import i18n
from console.cli import cli
from console.cli_common import OutputDiskFull, atomic_output
from firmware.bundle import Bundle
from firmware.container import BundleLimits
from firmware.errors import NotABundleFile, SpecialBundleFile
from firmware.manifest import Manifest, canonical_json
from firmware.pack import ModelSpec, PartitionSource, pack_bundle
from firmware.signing import key_id
from terminal.dirs import NotADirectory, config_dir, data_dir


def naiad(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NAIAD_LANG": "en", **env})


def refused(result: Result) -> str:
    """The error text of a command that must have failed cleanly: exit 1, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


# --- special files given as a bundle ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_fifo_or_a_directory_is_refused_as_a_bundle_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "bundle.zip"
    os.mkfifo(fifo)  # nobody writes to it: reading it would wait for ever
    with pytest.raises(SpecialBundleFile) as special:
        Bundle.open(fifo, {})
    assert special.value.remedy_text and str(fifo) in str(special.value)
    with pytest.raises(NotABundleFile) as directory:
        Bundle.open(tmp_path, {})
    assert type(directory.value) is NotABundleFile
    for command in (["firmware", "inspect"], ["firmware", "verify"], ["flash", "--device", "NOSUCH"]):
        text = refused(naiad(*command, str(fifo)))
        assert "pipe, device or socket" in text and "bundle file itself" in text


@pytest.mark.timeout(30)
def test_a_fifo_given_as_a_key_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "release.pub"
    os.mkfifo(fifo)
    image = tmp_path / "boot.img"
    image.write_bytes(bytes(4096))
    pack = ["firmware", "pack", "--key", str(fifo), "--model", "df2", "--version", "1.0", "--security-version", "1"]
    for command in (["firmware", "trust", str(fifo)], [*pack, "--partition", f"boot={image}", "-o", "x.zip"]):
        assert "not a key file" in refused(naiad(*command))


# --- the simulator's control commands -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["unplug", "NOSUCH"],
        ["replug", "NOSUCH"],
        ["power-cut", "NOSUCH"],
        ["power-on", "NOSUCH"],
        ["faults", "--serial", "NOSUCH", "--ber", "0.1"],
    ],
)
def test_an_unknown_serial_is_named_with_the_known_ones(sim: Any, command: list[str]) -> None:
    text = refused(naiad("sim", *command, "--state", str(sim.state_dir)))
    assert "KeyError" not in text
    assert "NOSUCH" in text and sim.serials()[0] in text and "naiad sim status" in text


# --- configuration and data directories ---------------------------------------------------------------


@pytest.mark.parametrize("variable", ["NAIAD_CONFIG_DIR", "NAIAD_DATA_DIR"])
def test_a_config_or_data_dir_that_is_a_file_is_refused(tmp_path: Path, variable: str) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(variable, str(a_file))
        with pytest.raises(NotADirectory) as caught:
            (config_dir if variable == "NAIAD_CONFIG_DIR" else data_dir)()
    assert variable in str(caught.value) and str(a_file) in str(caught.value) and caught.value.remedy_text
    command = ["firmware", "trusted"] if variable == "NAIAD_CONFIG_DIR" else ["ledger", "head"]
    text = refused(naiad(*command, **{variable: str(a_file)}))
    assert variable in text and "not a directory" in text


# --- files named for output ---------------------------------------------------------------------------


def test_logs_to_a_missing_directory_or_a_full_device_say_why_and_what_to_do(sim: Any, tmp_path: Path) -> None:
    serial = sim.serials()[0]
    missing = tmp_path / "nonexistent" / "dir" / "x.log"
    text = refused(naiad("logs", serial, "-o", str(missing)))
    assert "does not exist" in text and "Create the directory" in text
    assert not missing.parent.exists()
    text = refused(naiad("logs", serial, "-o", "/dev/full"))
    assert "no space left" in text and "Free some space" in text
    written = tmp_path / "unit.log"
    assert naiad("logs", serial, "-o", str(written)).exit_code == 0
    assert "boot #1" in written.read_text(encoding="utf-8") and list(tmp_path.glob(".unit.log*")) == []


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.txt"
    target.write_text("the old report", encoding="utf-8")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputDiskFull), atomic_output(target) as fh:
        fh.write("half of a new report")
    assert target.read_text(encoding="utf-8") == "the old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_pack_and_keygen_refuse_unwritable_outputs_cleanly(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    text = refused(naiad("firmware", "keygen", "--no-passphrase", "--out", str(a_file / "keys")))
    assert "does not exist or is not a directory" in text
    keys = tmp_path / "keys"
    assert naiad("firmware", "keygen", "--no-passphrase", "--out", str(keys)).exit_code == 0
    image = tmp_path / "boot.img"
    image.write_bytes(os.urandom(4096))
    fifo = tmp_path / "out.zip"
    os.mkfifo(fifo)
    for output, extra, expected in (
        (tmp_path / "nonexistent" / "x.zip", (), "does not exist"),
        (fifo, ("--force",), "not a file"),
    ):
        pack = ["firmware", "pack", "--key", str(keys / "release.key"), "--model", "df2", "--version", "1.0"]
        pack += ["--security-version", "1", "--partition", f"boot={image}", "-o", str(output), *extra]
        assert expected in refused(naiad(*pack))
    assert fifo.is_fifo() and not (tmp_path / "nonexistent").exists()


# --- firmware messages ----------------------------------------------------------------------------------


def _manifest(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": 1,
        "version": "1.0",
        "security_version": 0,
        "compatible": [{"model": "df2", "hardware_revisions": ["A"]}],
        "partitions": [],
    }
    return {k: v for k, v in {**body, **fields}.items() if v is not None}


def test_the_manifest_field_errors_name_the_real_allowed_and_missing_fields() -> None:
    with pytest.raises(fe.UnexpectedManifestFields) as extra:
        Manifest.parse(canonical_json(_manifest(extra=1)), "x.zip")
    assert extra.value.params["unexpected"] == "extra"
    allowed = extra.value.params["allowed"].split(", ")
    assert set(allowed) == set(Manifest("1.0", 0, (), (), created="today").to_dict())  # what a writer writes
    assert "created" in allowed  # the optional field the old message left out
    with pytest.raises(fe.MissingManifestFields) as missing:
        Manifest.parse(canonical_json(_manifest(security_version=None)), "x.zip")
    assert missing.value.params["missing"] == "security_version"


def test_size_errors_quote_the_real_and_the_expanded_size(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    system = tmp_path / "system.simg"
    system.write_bytes(sparse_image(4096, [("raw", os.urandom(4096), 1), ("skip", b"", 255)]))
    stored, expanded = system.stat().st_size, 256 * 4096
    limits = BundleLimits(max_image_size=(stored + expanded) // 2)
    bundle = tmp_path / "fw.zip"
    options: dict[str, Any] = dict(key=key, models=[ModelSpec("df2")], version="1.0", security_version=0)
    options["partitions"] = [PartitionSource("system", system)]
    with pytest.raises(fe.OversizedImage) as packing:
        pack_bundle(bundle, compress=False, limits=limits, **options)
    pack_bundle(bundle, compress=False, **options)
    with pytest.raises(fe.OversizedImage) as opening:
        Bundle.open(bundle, {key_id(public): public}, limits=limits)
    for caught in (packing, opening):
        assert (caught.value.params["size"], caught.value.params["expanded_size"]) == (stored, expanded)
        assert f"is {stored} bytes ({expanded} bytes expanded)" in str(caught.value)


def test_partition_refusals_point_to_a_command_that_lists_the_models() -> None:
    too_large = fe.ImageTooLarge(partition="calib", size=5 << 20, model="df2", capacity=4 << 20)
    for error in (fe.UnknownPartition(model="df2", partition="recovery"), too_large):
        assert error.remedy_text and "'naiad models'" in error.remedy_text
    listed = naiad("models", "--json")
    assert listed.exit_code == 0, listed.output
    models = {m["id"]: m for m in json.loads(listed.output)["models"]}
    df2 = models["df2"]
    assert (df2["run_usb"], df2["bootloader_usb"], df2["slot_scheme"]) == ("3a6e:0201", "3a6e:0202", "ab")
    assert {"name": "calib", "size": 4 << 20, "slotted": False} in df2["partitions"]
    assert df2["camera_module"] and df2["name"]
    shown = naiad("models")
    assert shown.exit_code == 0 and "frog-pro" in shown.output and "calib" in shown.output
    assert "models" in naiad("--help").output


# --- click's own texts ----------------------------------------------------------------------------------


def test_usage_errors_and_help_read_in_the_chosen_language() -> None:
    def zh(msgid: str, **params: str) -> str:
        text = i18n.translate(msgid, "zh_CN")
        assert text != msgid, f"no Chinese for {msgid!r}"
        return text.format(**params)

    unknown_option = CliRunner().invoke(cli, ["--lang", "zh_CN", "flash", "--nosuch"])
    missing_argument = CliRunner().invoke(cli, ["--lang", "zh_CN", "logs"])
    for result in (unknown_option, missing_argument):
        assert result.exit_code == 2
        assert "Usage:" not in result.output and "Error:" not in result.output and "Try '" not in result.output
        assert zh("Usage:") in result.output and zh("Error: {message}", message="") in result.output
    assert zh("No such option {name!r}.", name="--nosuch") in unknown_option.output
    assert zh("Try '{command} {option}' for help.", command="naiad logs", option="--help") in missing_argument.output
    assert zh("Missing argument") in missing_argument.output
    shown = CliRunner().invoke(cli, ["--lang", "zh_CN", "--help"]).output
    assert zh("Show this message and exit.") in shown and zh("Options") in shown
    assert "Show this message" not in CliRunner().invoke(cli, ["--lang", "zh_CN", "models", "--help"]).output
