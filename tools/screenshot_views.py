"""Screenshot every view of the console, in English and in Chinese, under Xvfb, on a real simulated world.

    .venv/bin/python tools/screenshot_views.py                 # docs/screens/<view>-<lang>.png
    .venv/bin/python tools/screenshot_views.py --lang zh_CN --out-dir /tmp/shots

One demo world (``console.demo_world.DemoWorld``: simulated units, the sandbox platform, a key store, operators) and
one console window (``console.main_window.MainWindow``) at 1280x800, driven as a person would: the log-in page; the
operator's bench running ``distributor-bulk`` on every unit (mid-run, then with the batch summary); the installer
wizard taking the first unit from Connect to Done (the face-pay check page after its check, and Done); the support
desk with the second unit's history and the verdict of a diagnosis (its projector made to fail); the lock page; and
Settings as the admin, whose station-wide fields are enabled.  Each language gets a world and a run of its own
(about a minute and a half each): a text made from a step's event or result is in the language it came in.  Xvfb
is started on a free display (``--no-xvfb``: the current display); each world's simulator and sandbox are stopped
when its run ends, whatever happens.

The key store's passphrase and the operators' session tokens stay in this process's environment (as for the
``naiad`` commands), so no field shows them; nothing here prints them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tools"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from screenshot_console import ScreenshotFailed, pump_until, settle, xvfb  # noqa: E402

SIZE = (1280, 800)
LANGUAGES = ("en", "zh_CN")
UNITS = 3
STEP_SECONDS = 180.0
"""A generous bound for one run (a recipe, a wizard page's part, a diagnosis) on a loaded machine."""
BULK = "distributor-bulk"
ONSITE = "installer-onsite"


class Shooter:
    """Grabs the window in each language into ``out_dir`` as ``<view>-<lang>.png``."""

    def __init__(self, app: Any, window: Any, out_dir: Path, languages: Sequence[str]) -> None:
        self.app, self.window, self.out_dir, self.languages = app, window, out_dir, languages
        self.taken: list[Path] = []

    def grab(self, view: str) -> None:
        import i18n

        self.out_dir.mkdir(parents=True, exist_ok=True)
        for language in self.languages:
            i18n.set_language(language)
            settle(self.app, 0.4)
            out = self.out_dir / f"{view}-{language}.png"
            if not self.window.grab().save(str(out)):
                raise ScreenshotFailed(f"could not write {out}")
            self.taken.append(out)
            print(out, flush=True)


def wait(app: Any, predicate: Callable[[], bool], what: str, timeout: float = STEP_SECONDS) -> None:
    pump_until(app, predicate, timeout, what)


def log_in(app: Any, window: Any, session: Any) -> None:
    """What the log-in page leaves behind once the password was right (the demo's passwords stay in the world)."""
    window.operator.session = session
    window.operator.retranslate()  # the status bar's "Operator: …"
    window.operator.changed.emit()
    settle(app, 0.2)


def run_bench(app: Any, window: Any, world: Any, shooter: Shooter) -> None:
    """``distributor-bulk`` on every unit from the bench view: grabbed mid-run and after the batch."""
    from console import access

    view = window.views[access.BENCH]
    window.show_view(access.BENCH)
    serials = list(world.serials)
    if callable(getattr(view, "start", None)) and callable(getattr(view, "choose", None)):
        view.choose(BULK)
        job = view.start()
        if job is None:
            raise ScreenshotFailed("the bench did not start distributor-bulk")

        def ended() -> bool:
            return view.job is None

    else:  # a bench view without a recipe bar: run the recipe as the console runs any, its cards following
        from console.recipe_job import RecipeRequest, recipe_job
        from provisioning.recipes import load_recipe

        recipe = load_recipe(BULK, window.context.settings.overrides(BULK))
        request = RecipeRequest(recipe, tuple(serials), "", reports_dir=world.reports_dir / BULK)
        job = recipe_job(window.context, request, name="screenshot bulk")
        done: list[object] = []
        job.succeeded.connect(done.append)
        job.failed.connect(done.append)
        window.bench.follow(job)
        window.workers.start(job)

        def ended() -> bool:
            if not done:
                return False
            for serial in serials:  # what the bench view does at a batch's end
                card = window.bench.card(serial)
                if card is not None:
                    card.clear_step()
            window.bench.changed.emit()
            if not getattr(done[0], "ok", False):
                raise ScreenshotFailed(f"{BULK} did not succeed: {done[0]!r}")
            return True

    def mid_run() -> bool:  # every card well into a step, its bar part-way
        bars = [getattr(window.bench.card(serial), "progress", None) for serial in serials]
        return ended() or all(
            bar is not None and bar.isVisible() and bar.maximum() > 0 and 0.2 <= bar.value() / bar.maximum() <= 0.8
            for bar in bars
        )

    wait(app, mid_run, "the bench mid-run")
    if not ended():
        shooter.grab("bench-running")
    wait(app, ended, "the bench's batch")
    outcome = getattr(view, "outcome", None)
    failed = [unit.serial for unit in getattr(getattr(outcome, "batch", None), "units", ()) if not unit.ok]
    if failed:
        raise ScreenshotFailed(f"{BULK} failed on {', '.join(failed)}: the wizard and the desk would have no unit")
    settle(app, 0.5)
    shooter.grab("bench")


def card_text(card: Any) -> str:
    from PyQt6.QtWidgets import QLabel

    return " ".join(label.text() for label in card.findChildren(QLabel))


def merchant_qr(world: Any) -> str:
    wanted = world.platform.test_merchant
    for merchant in world.platform_view("merchants"):
        for store in merchant["stores"]:
            if (merchant["merchant_id"], store["store_id"]) == (wanted.merchant_id, wanted.store_id):
                return str(store["qr_text"])
    raise ScreenshotFailed("the sandbox lists no QR text for its test merchant")


def run_wizard(app: Any, window: Any, world: Any, serial: str, shooter: Shooter) -> None:
    """The installer wizard from Connect to Done on ``serial``: the face-pay page after its check, and Done."""
    from PyQt6.QtCore import Qt

    from console import access
    from console.wizard_pages import CAMERA, DONE, FACEPAY, MERCHANT, SUBSIDY, SUCCEEDED, UPDATE

    wizard = window.views[access.WIZARD]
    window.show_view(access.WIZARD)
    units = wizard.connect_page.units_list

    def choose() -> bool:
        for row in range(units.count()):
            item = units.item(row)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == serial and item.isSelected() is False:
                item.setSelected(True)
        return bool(wizard.connect_page.chosen() == serial)

    wait(app, choose, f"unit {serial} in the wizard", 30)

    def next_to(key: str) -> None:
        wait(app, wizard.next_button.isEnabled, f"the wizard's Next towards {key}")
        wizard.next_button.click()
        wait(app, lambda: wizard.page_key == key, f"the wizard's page {key}")

    def run_page(key: str) -> None:
        page = wizard.pages[key]
        wait(app, page.start_button.isEnabled, f"the wizard's Start on {key}")
        page.start_button.click()
        wait(app, lambda: wizard.job is None and page.state != "running", f"the wizard's part {key}")
        if page.state != SUCCEEDED:
            raise ScreenshotFailed(f"the wizard's part {key} failed: {page.status_label.text()}")

    next_to(UPDATE)
    run_page(UPDATE)
    next_to(CAMERA)
    run_page(CAMERA)
    next_to(MERCHANT)
    wizard.merchant_page.qr_edit.setText(merchant_qr(world))
    next_to(FACEPAY)
    run_page(FACEPAY)
    shooter.grab("wizard-facepay")
    next_to(SUBSIDY)
    run_page(SUBSIDY)
    next_to(DONE)
    wait(app, lambda: wizard.done_page.report is not None, "the wizard's report")
    shooter.grab("wizard-done")


def run_support(app: Any, window: Any, world: Any, serial: str, shooter: Shooter) -> None:
    """The support desk on ``serial``: its history, then a diagnosis with its projector dead (a verdict to show)."""
    from console import access

    desk = window.views[access.SUPPORT]
    window.show_view(access.SUPPORT)
    if desk.find_unit(serial) is None:
        raise ScreenshotFailed(f"the support desk refused {serial}: {desk.status.text()}")
    wait(app, lambda: desk.history_data is not None and desk._history_job is None, "the unit's history")
    world.simulator("faults", serial=serial, dead_projector=True)
    try:
        job = desk.diagnose()
        if job is None:
            raise ScreenshotFailed(f"the support desk did not diagnose {serial}: {desk.status.text()}")
        ended: list[object] = []
        job.succeeded.connect(ended.append)
        job.failed.connect(ended.append)
        wait(app, lambda: bool(ended), "the diagnosis")
    finally:
        world.simulator("faults", serial=serial, dead_projector=False)
    wait(app, lambda: desk._history_job is None, "the history after the diagnosis", 30)
    shooter.grab("support")


def take_all(out_dir: Path, languages: Sequence[str], units: int) -> list[Path]:
    from PyQt6.QtWidgets import QApplication

    import i18n
    from console import access
    from console.app import show_info_records
    from console.console_settings import ConsoleSettings
    from console.demo_world import DemoWorld
    from console.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    i18n.set_language(languages[0])
    show_info_records()
    saved_env = dict(os.environ)
    with (
        tempfile.TemporaryDirectory(prefix="naiad-views-") as tmp,
        DemoWorld(Path(tmp) / "world", units, firmware_mib=1, calibration_views=12) as world,
    ):
        os.environ.update(world.env("operator"))  # the key store's passphrase: from the environment, never a field
        try:
            settings = ConsoleSettings(
                language=languages[0],
                ledger_url=world.ledger_url,
                platform_config=str(world.platform_config_path),
                reports_dir=str(world.reports_dir),
                recipe_settings={BULK: world.overrides(BULK), ONSITE: world.overrides(ONSITE)},
            )
            window = MainWindow(world.wiring, settings=settings, settings_path=Path(tmp) / "console.json")
            window.resize(*SIZE)
            window.start()
            window.show()
            shooter = Shooter(app, window, out_dir, languages)
            try:
                wait(app, lambda: all(window.bench.card(s) for s in world.serials), "every unit's card", 60)
                window.login_page.form.name_edit.setText("demo-operator")
                shooter.grab("login")
                log_in(app, window, world.session("operator"))
                run_bench(app, window, world, shooter)
                first, second = world.serials[0], world.serials[1 % len(world.serials)]
                run_wizard(app, window, world, first, shooter)
                run_support(app, window, world, second, shooter)
                window.lock()
                settle(app, 0.3)
                shooter.grab("lock")
                log_in(app, window, world.session("admin"))
                window.show_view(access.SETTINGS)
                shooter.grab("settings")
            finally:
                window.close()
                settle(app, 0.3)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
    return shooter.taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "screens")
    parser.add_argument("--lang", action="append", choices=LANGUAGES, help="a language (repeat; default: both)")
    parser.add_argument("--units", type=int, default=UNITS, help="simulated units (at least 2)")
    parser.add_argument("--no-xvfb", action="store_true", help="use the current display instead of Xvfb")
    args = parser.parse_args(argv)
    languages = args.lang or list(LANGUAGES)

    def take_each() -> None:
        for language in languages:  # a world each: texts made from events stay in the language they came in
            take_all(args.out_dir, [language], max(2, args.units))

    try:
        if args.no_xvfb:
            take_each()
        else:
            with xvfb((SIZE[0] + 40, SIZE[1] + 40)) as display:
                os.environ["DISPLAY"] = display
                os.environ["QT_QPA_PLATFORM"] = "xcb"
                take_each()
    except ScreenshotFailed as exc:
        print(f"screenshot_views: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
