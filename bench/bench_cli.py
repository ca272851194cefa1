"""CLI start-up benchmark: what a person waits for before ``naiad`` does anything.

Starts a simulator in a temporary directory, prints one table and deletes everything, even on error.

    .venv/bin/python bench/bench_cli.py [--reps 21]

Each command runs as a subprocess, alternating, ``--reps`` times; the table shows process wall times and
the figures the targets are about:

- a bare interpreter start (``python -c pass``, the venv's interpreter ``naiad`` runs on, with the same
  ``site``) against ``naiad --version``: ratio of the medians, target at most 2.0;
- ``naiad fastboot SERIAL getvar product`` against a simulated unit in bootloader mode (``NAIAD_SIM``),
  target under 150 ms, with the stock ``fastboot -s tcp:...`` on the same unit for reference.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench_fastboot import bytecode_env, measure, naiad_command, print_times  # noqa: E402

from simulator import launcher  # noqa: E402
from simulator.control import SimControl  # noqa: E402
from terminal.models import BOOTLOADER  # noqa: E402

STOCK_FASTBOOT = "/usr/bin/fastboot"
VERSION_TARGET = 2.0  # naiad --version / bare interpreter, medians
GETVAR_TARGET = 0.150  # seconds


@contextlib.contextmanager
def bootloader_unit(work: Path) -> Iterator[tuple[Path, str, int]]:
    """A simulator with one unit in bootloader mode: its state directory, serial and fastboot-TCP port."""
    state = work / "sim"
    launcher.start_detached(state, 1, ["df2"])
    try:
        control = SimControl(state)
        serial = control.call("status")["terminals"][0]["serial"]
        control.call("reboot", serial=serial, mode=BOOTLOADER)
        unit = control.call("status")["terminals"][0]
        yield state, serial, int(unit["fastboot_tcp_port"])
    finally:
        with contextlib.suppress(Exception):
            launcher.stop(state)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=21, help="runs of each command")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="naiad-bench-cli-"))
    naiad = naiad_command()
    try:
        with bootloader_unit(work) as (state, serial, port):
            env = {
                **bytecode_env(),
                "NAIAD_SIM": str(state),
                "NAIAD_CONFIG_DIR": str(work / "config"),
                "NAIAD_DATA_DIR": str(work / "data"),
            }
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "naiad --version": [*naiad, "--version"],
                "naiad fastboot getvar": [*naiad, "fastboot", serial, "getvar", "product"],
            }
            if Path(STOCK_FASTBOOT).exists():
                commands["stock fastboot getvar"] = [STOCK_FASTBOOT, "-s", f"tcp:127.0.0.1:{port}", "getvar", "product"]
            times = measure(commands, env, args.reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = print_times("CLI start-up, process wall time (ms) and median CPU time (user + system, ms)", times, 1e-3)
    ratio = med["naiad --version"] / med["python -c pass"]
    print(f"\nnaiad --version / bare interpreter: {ratio:.2f} (medians); target <= {VERSION_TARGET}")
    getvar = med["naiad fastboot getvar"]
    print(
        f"naiad fastboot SERIAL getvar product: {getvar * 1000:.0f} ms (median), "
        f"{getvar / med['python -c pass']:.1f}x the bare interpreter; target < {GETVAR_TARGET * 1000:.0f} ms"
    )
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
