"""What a command loads decides how fast ``naiad`` starts: quick commands load no ledger and no database.

Each check runs the real entry point in a fresh interpreter and reads ``sys.modules`` at its end; the
times themselves are printed by ``bench/bench_cli.py``, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ("provisioning.ledger", "sqlalchemy", "alembic")

RUN = """
import gc, json, sys
sys.argv = ["naiad", *json.loads(sys.argv[1])]
from console.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\nMODULES " + json.dumps({"code": code, "modules": sorted(sys.modules), "frozen": gc.get_freeze_count()}))
"""


def naiad_result(*args: str) -> dict[str, Any]:
    """``naiad ARGS`` in a new interpreter: its output, exit code, loaded modules and frozen object count."""
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    output, marker, tail = done.stdout.rpartition("\nMODULES ")
    assert marker, done.stderr
    return {**json.loads(tail), "output": output}


def run_naiad(*args: str) -> tuple[str, int, set[str]]:
    """The output, exit code and loaded modules of ``naiad ARGS`` in a new interpreter."""
    result = naiad_result(*args)
    return result["output"], int(result["code"] or 0), set(result["modules"])


def loaded(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("args", [("--version",), ("--lang", "en", "--version")])
def test_version_loads_no_ledger_station_or_database(args: tuple[str, ...]) -> None:
    output, code, modules = run_naiad(*args)
    assert code == 0 and output.strip() == "naiad, version 0.1.0"
    assert loaded(modules, *LEDGER, "provisioning") == []


def test_bare_version_loads_not_even_click() -> None:
    _, _, modules = run_naiad("--version")
    assert loaded(modules, "click", "importlib.metadata", "rich") == []


def test_both_version_paths_print_the_distributions_version() -> None:
    from importlib.metadata import version

    import console

    assert console.__version__ == version("naiad")
    assert run_naiad("--version")[0] == run_naiad("--lang", "en", "--version")[0]


def bootloader(sim: Any, serial: str) -> None:
    sim.call("reboot", serial=serial, mode="bootloader")
    deadline = time.monotonic() + 30
    while sim.terminal(serial)["fastboot_tcp_port"] is None:
        assert time.monotonic() < deadline, "the unit did not reach its bootloader"
        time.sleep(0.05)


def test_fastboot_commands_open_no_ledger(sim: Any, tmp_path: Path) -> None:
    """A fastboot query records nothing, so it must not even import the ledger; nor does a raw flash,
    whose progress and result lines need no rich when nobody watches a terminal."""
    serial = sim.serials()[0]
    bootloader(sim, serial)
    output, code, modules = run_naiad("fastboot", serial, "getvar", "product")
    assert (code, output.strip()) == (0, "product: df2")
    assert loaded(modules, *LEDGER, "rich", "babel", "terminal.events") == []
    image = tmp_path / "boot.img"
    image.write_bytes(bytes(4096))
    _, code, modules = run_naiad("fastboot", serial, "flash", "boot_a", str(image))
    assert code == 0 and loaded(modules, *LEDGER, "rich", "babel") == []
    assert not (Path(os.environ["NAIAD_DATA_DIR"])).exists()  # no ledger file was created either


def test_a_direct_fastboot_target_reads_no_bus(sim: Any, tmp_path: Path) -> None:
    """``--target tcp:HOST:PORT`` names the link, as the stock client's ``-s`` does: nothing of discovery,
    pyusb, the model table or the station is loaded, and the unit is still checked by its serialno.  A
    flash sends the image without hashing it and without the event classes."""
    serial = sim.serials()[0]
    bootloader(sim, serial)
    target = f"tcp:127.0.0.1:{sim.terminal(serial)['fastboot_tcp_port']}"
    output, code, modules = run_naiad("fastboot", serial, "--target", target, "getvar", "product")
    assert (code, output.strip()) == (0, "product: df2")
    assert loaded(modules, "provisioning", "terminal.discovery", "terminal.models", "usb", "simulator") == []
    image = tmp_path / "boot.img"
    image.write_bytes(bytes(4096))
    _, code, modules = run_naiad("fastboot", serial, "--target", target, "flash", "boot_a", str(image))
    assert code == 0
    assert loaded(modules, "provisioning", "terminal.discovery", "terminal.events", "hashlib", "secrets") == []
    _, code, _ = run_naiad("fastboot", "DF2NOTTHIS1", "--target", target, "--json", "getvar", "product")
    assert code == 1


def test_a_command_ends_without_the_collectors_last_passes() -> None:
    """What a command loaded is frozen when it ends, so the interpreter's exit does not walk it all again."""
    result = naiad_result("--lang", "en", "--version")
    assert result["code"] in (0, None) and result["frozen"] > 0
