"""Careless input gets an answer, never a traceback or a hang: wrong paths, special files, unknown serials."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from console.cli import cli
from console.cli_common import OutputDiskFull, atomic_output
from firmware.bundle import Bundle
from firmware.errors import NotABundleFile, SpecialBundleFile
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
