"""Screenshot the console's bench under Xvfb, against a real simulator, for the docs.

    .venv/bin/python tools/screenshot_console.py --out docs/console.png
    .venv/bin/python tools/screenshot_console.py --sim /tmp/sim --lang zh_CN --out docs/console-zh.png

Without ``--sim`` it starts a simulator of ``--terminals`` units in a temporary directory, reboots one
into bootloader mode and unplugs another after the console has seen it, so the picture shows each
card state the bench can have at rest; it stops that simulator afterwards.  Xvfb is started on a free
display unless ``--no-xvfb`` is given (then the current ``DISPLAY`` or ``QT_QPA_PLATFORM`` is used).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class ScreenshotFailed(RuntimeError):
    """A tool-level failure (no Xvfb, the console never showed the units); exit status 1."""


@contextmanager
def xvfb(size: tuple[int, int]) -> Iterator[str]:
    """Run Xvfb on a display it picks itself (``-displayfd``) and yield that display's name."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise ScreenshotFailed("Xvfb is not installed (Debian: apt install xvfb)") from exc
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            number = pipe.readline().strip().decode()
        if not number:
            raise ScreenshotFailed("Xvfb did not report a display")
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def simulator(sim_dir: Path | None, terminals: int) -> Iterator[tuple[Path, bool]]:
    """The simulator to show: the given directory, or a fresh one started (and stopped) here."""
    if sim_dir is not None:
        if not sim_dir.is_dir():
            raise ScreenshotFailed(f"no simulator state directory at {sim_dir}")
        yield sim_dir, False
        return
    from simulator import launcher

    with tempfile.TemporaryDirectory(prefix="naiad-shot-") as tmp:
        state = Path(tmp) / "sim"
        launcher.start_detached(state, terminals)
        try:
            yield state, True
        finally:
            launcher.stop(state)


def pump_until(app: Any, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the Qt event loop until ``predicate`` holds; ScreenshotFailed after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ScreenshotFailed(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def settle(app: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def take(sim_dir: Path, staged: bool, out: Path, language: str, size: tuple[int, int]) -> None:
    from PyQt6.QtWidgets import QApplication

    import i18n
    from console.app import show_info_records
    from console.composition import Wiring
    from console.main_window import MainWindow
    from console.style import UnitState
    from simulator.control import SimControl

    app = QApplication.instance() or QApplication([sys.argv[0]])
    i18n.set_language(language)
    show_info_records()
    window = MainWindow(Wiring(sim_dir))
    window.resize(*size)
    window.start()
    window.show()
    try:
        control = SimControl(sim_dir)
        serials = [t["serial"] for t in control.call("status")["terminals"]] if staged else []
        if staged:
            pump_until(app, lambda: all(window.bench.card(s) for s in serials), 30, "every unit's card")
            if len(serials) >= 2:
                control.call("reboot", serial=serials[1], mode="bootloader")
            if len(serials) >= 3:
                control.call("unplug", serial=serials[-1])

            def staged_states() -> bool:
                states = {s: c.state for s in serials if (c := window.bench.card(s)) is not None}
                wanted_boot = len(serials) < 2 or states.get(serials[1]) is UnitState.BOOTLOADER
                wanted_gone = len(serials) < 3 or states.get(serials[-1]) is UnitState.DISCONNECTED
                return wanted_boot and wanted_gone

            pump_until(app, staged_states, 30, "the bootloader and disconnected cards")
        else:
            pump_until(app, lambda: bool(window.bench.cards()), 30, "a unit's card")
        settle(app, 0.5)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(out)):
            raise ScreenshotFailed(f"could not write {out}")
    finally:
        window.close()
        app.processEvents()


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", type=Path, help="state directory of a running simulator")
    parser.add_argument("--terminals", type=int, default=5, help="units of the simulator started here")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    parser.add_argument("--lang", default="en", choices=["en", "zh_CN"])
    parser.add_argument("--size", type=parse_size, default=(1280, 860), help="window size, WIDTHxHEIGHT")
    parser.add_argument("--no-xvfb", action="store_true", help="use the current display instead of Xvfb")
    args = parser.parse_args(argv)
    try:
        with simulator(args.sim, args.terminals) as (sim_dir, staged):
            if args.no_xvfb:
                take(sim_dir, staged, args.out, args.lang, args.size)
            else:
                with xvfb((args.size[0] + 40, args.size[1] + 40)) as display:
                    os.environ["DISPLAY"] = display
                    os.environ["QT_QPA_PLATFORM"] = "xcb"
                    take(sim_dir, staged, args.out, args.lang, args.size)
    except ScreenshotFailed as exc:
        print(f"screenshot_console: {exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
