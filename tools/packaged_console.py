"""Entry point of the packaged ``naiad-console`` executable (build.spec): ``naiad console`` without a terminal.

On Windows it is built as a windowed program, so double-clicking it opens no console window.  Such a program
has no standard streams: what the command line would print (an error and its remedy) goes to ``console.log``
in the station's data directory instead.  Its arguments are those of ``naiad console`` (``--sim DIR``).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    if sys.stdout is None or sys.stderr is None:
        from terminal.dirs import data_dir

        folder = data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        log = (folder / "console.log").open("a", encoding="utf-8", buffering=1)
        sys.stdout = sys.stdout or log
        sys.stderr = sys.stderr or log
    sys.argv[1:] = ["console", *argv]
    from console.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main(sys.argv[1:])
