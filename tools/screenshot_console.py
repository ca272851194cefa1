"""Screenshot the console's bench under Xvfb, against a real simulator, for the docs.

    .venv/bin/python tools/screenshot_console.py --out docs/console.png
    .venv/bin/python tools/screenshot_console.py --sim /tmp/sim --lang zh_CN --out docs/console-zh.png
    .venv/bin/python tools/screenshot_console.py --facepay --out docs/facepay.png

With ``--facepay`` it shows one unit's face-pay check page instead, after a real check
(``provisioning.facepay_check.run_facepay_check``) of a live face on a simulated unit of its own, paid and
refunded against a sandbox platform of its own (see ``take_facepay``).

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


def save_grab(app: Any, widget: Any, out: Path) -> None:
    """Let ``widget`` settle, then write its picture to ``out``."""
    settle(app, 0.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(out)):
        raise ScreenshotFailed(f"could not write {out}")


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
        save_grab(app, window, out)
    finally:
        window.close()
        app.processEvents()


@contextmanager
def facepay_bench(where: Path) -> Iterator[tuple[Any, Any, Any, str, Any]]:
    """A simulated unit that may pay with its face against a sandbox: ``(station, outbox, config, serial,
    session)``, the session an operator's.

    The station's app gets a fresh RSA key; the unit is in the station's inventory (so it may open face sessions)
    and holds the sandbox's terminal app (``platform`` control command)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from console.composition import Wiring
    from enrollment.client import PlatformClient
    from enrollment.gateway import rsa_signer
    from enrollment.sandbox.server import Sandbox
    from provisioning.ledger import Ledger
    from provisioning.operators import OperatorSession
    from provisioning.outbox import Outbox
    from provisioning.registration import UnitToRegister, register_inventory
    from provisioning.station import Station
    from simulator import launcher
    from simulator.control import SimControl

    session = OperatorSession("shot", "operator")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sim_dir = where / "sim"
    launcher.start_detached(sim_dir, 1)
    try:
        with Sandbox.start(where / "sandbox.sqlite") as sandbox:
            config = sandbox.station_config()
            sandbox.set_app_key(config.app_id, public.decode())
            client = PlatformClient(config, rsa_signer(key), attempts=2)
            with Ledger.open(f"sqlite:///{where / 'ledger.sqlite'}", station="shot-1") as ledger:
                ledger.register_operator(session.operator, session.role)
                station = Station(Wiring(sim_dir).discovery(), ledger=ledger)
                [device] = station.devices()
                outbox = Outbox(ledger, client)
                unit = [UnitToRegister(device.serial, device.model)]
                [registered] = register_inventory(outbox, config.supplier_id, unit, session=session)
                if not registered.ok:
                    raise ScreenshotFailed(f"the sandbox did not take {device.serial} into the inventory")
                SimControl(sim_dir).call("platform", config=sandbox.terminal_config())
                try:
                    yield station, outbox, config, device.serial, session
                finally:
                    station.close()
                    client.close()
    finally:
        launcher.stop(sim_dir)


def take_facepay(out: Path, language: str, size: tuple[int, int]) -> None:
    """The face-pay check page after a real check of a live face, run as the console runs it: one job on the
    console's workers, its events (depth coloured on the worker) drawn by the page as they come."""
    from PyQt6.QtWidgets import QApplication

    import i18n
    from console.composition import Wiring
    from console.facepay_page import FacePayPage
    from console.facepay_run import FaceColouring
    from console.style import stylesheet
    from console.workers import Job, Workers
    from provisioning.facepay_check import run_facepay_check

    app = QApplication.instance() or QApplication([sys.argv[0]])
    i18n.set_language(language)
    with tempfile.TemporaryDirectory(prefix="naiad-shot-") as tmp, facepay_bench(Path(tmp)) as bench:
        station, outbox, config, serial, session = bench
        page = FacePayPage(serial)
        page.setStyleSheet(stylesheet())
        page.set_allowed(True, True)
        page.resize(*size)
        page.show()
        presenter = Wiring(Path(tmp) / "sim").presenter()

        def work(listener: Any) -> Any:
            return run_facepay_check(
                station,
                outbox,
                serial,
                presenter,
                FaceColouring(listener),
                merchant=config.test_merchant,
                session=session,
            )

        workers = Workers()
        job = Job(work, (serial,), "face-pay check")
        ended: list[object] = []
        job.phase_started.connect(page.phase_started)
        job.message.connect(page.message)
        job.observed.connect(page.observed)

        def end(result: Any = None, error: BaseException | None = None) -> None:
            page.end(result, error)
            ended.append(result or error)

        job.succeeded.connect(end)
        job.failed.connect(lambda error: end(None, error))
        page.begin()
        workers.start(job)
        try:
            pump_until(app, lambda: bool(ended), 120, "the face-pay check")
            save_grab(app, page, out)
        finally:
            page.close()
            workers.shutdown()
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
    parser.add_argument("--size", type=parse_size, help="window size, WIDTHxHEIGHT (1280x860; the page 1280x760)")
    parser.add_argument("--no-xvfb", action="store_true", help="use the current display instead of Xvfb")
    parser.add_argument("--facepay", action="store_true", help="a face-pay check page after a real check")
    args = parser.parse_args(argv)
    args.size = args.size or ((1280, 760) if args.facepay else (1280, 860))
    if args.facepay:
        return shoot(lambda: take_facepay(args.out, args.lang, args.size), args.size, args.no_xvfb, args.out)

    def take_bench() -> None:
        with simulator(args.sim, args.terminals) as (sim_dir, staged):
            take(sim_dir, staged, args.out, args.lang, args.size)

    return shoot(take_bench, args.size, args.no_xvfb, args.out)


def shoot(take_it: Callable[[], None], size: tuple[int, int], no_xvfb: bool, out: Path) -> int:
    """Run ``take_it`` under a fresh Xvfb (or the current display); the exit status of the tool."""
    try:
        if no_xvfb:
            take_it()
        else:
            with xvfb((size[0] + 40, size[1] + 40)) as display:
                os.environ["DISPLAY"] = display
                os.environ["QT_QPA_PLATFORM"] = "xcb"
                take_it()
    except ScreenshotFailed as exc:
        print(f"screenshot_console: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
