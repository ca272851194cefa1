"""Entry point of the packaged ``naiad`` executable (build.spec): the command line, and the simulator it starts.

In the packaged folder ``sys.executable`` is this program, not a Python interpreter, so the simulator that
``naiad sim start --detach`` launches as ``[sys.executable, "-m", "simulator", ...]`` (simulator/launcher.py)
arrives here and is run as ``python -m simulator`` would run it.  Everything else is ``console.cli.main``.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv[:2] == ["-m", "simulator"]:
        from simulator.process import main as run_simulator

        return run_simulator(argv[2:])
    from console.cli import main as run_cli

    run_cli()  # click ends the process itself with the command's status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
