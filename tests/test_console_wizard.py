"""The installer wizard (console/wizard.py) driven with pytest-qt against a real simulated world (DemoWorld: one
simulated unit, the sandbox platform, the software key store, the demo's installer logged in): from Connect to Done
through an unplug in the middle of the update, the report written and the platform calls made once; a bad merchant QR
text refused; the wizard opened again for the finished unit starting at Done.  And the recipe parts it runs."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from facebench import store_truth

from console.console_settings import ConsoleSettings
from console.context import ConsoleContext
from console.demo_world import DemoWorld
from console.operator_login import OperatorLogin
from console.unit_card import Bench
from console.wizard import InstallerWizard
from console.wizard_pages import CAMERA, CONNECT, DONE, FACEPAY, FAILED, MERCHANT, SUBSIDY, SUCCEEDED, UPDATE
from console.workers import DeviceWatcher, StationProvider, Workers
from provisioning import pipeline
from provisioning.recipes import RecipePartInvalid, load_recipe, load_recipe_part
from provisioning.registration import UnitToRegister, register_inventory

LOG = logging.getLogger(__name__)
RECIPE = "installer-onsite"
STEP_MS = 90_000  # a generous bound for one page's part on a loaded machine (never a figure asserted)
LIVE_STEPS = ("bind", "activate", "subsidy-enroll")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """One simulated unit as the distributor leaves it: calibrated and in the platform's inventory."""
    with DemoWorld(tmp_path_factory.mktemp("wizard"), 1, firmware_mib=2) as made:
        [serial] = made.serials
        store_truth(made.sim_dir, serial, "df2")
        [registered] = register_inventory(
            made.outbox("operator"),
            made.supplier_id,
            [UnitToRegister(serial, "df2")],
            session=made.session("operator"),
        )
        assert registered.ok, registered.as_dict()
        yield made


@dataclass
class Console:
    """A console as the shell builds it, without the window: its context and the bus watcher feeding the bench."""

    context: ConsoleContext
    watcher: DeviceWatcher

    def close(self) -> None:
        self.watcher.stop()
        self.context.workers.shutdown()
        self.context.stations.close()


@pytest.fixture
def console(world: DemoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot: Any) -> Iterator[Console]:
    for name, value in world.env("installer").items():
        monkeypatch.setenv(name, value)
    wiring = world.wiring
    workers = Workers()
    stations = StationProvider(lambda: wiring.station(world.ledger_url))
    operator = OperatorLogin(workers, stations)
    bench = Bench()
    qtbot.addWidget(bench)
    settings = ConsoleSettings(reports_dir=str(world.reports_dir), recipe_settings={RECIPE: world.overrides(RECIPE)})
    context = ConsoleContext(wiring, workers, stations, operator, bench, settings, tmp_path / "console.json")
    watcher = DeviceWatcher(workers, wiring.discovery)
    watcher.device_added.connect(bench.device_added)
    watcher.device_removed.connect(bench.device_removed)
    watcher.start()
    operator.session = world.session("installer")  # as the login dialog leaves it
    operator.changed.emit()
    made = Console(context, watcher)
    try:
        yield made
    finally:
        made.close()


def open_wizard(console: Console, qtbot: Any) -> InstallerWizard:
    wizard = InstallerWizard(console.context)
    qtbot.addWidget(wizard)
    wizard.resize(1280, 800)
    wizard.show()
    return wizard


def press_next(wizard: InstallerWizard, qtbot: Any, to: str) -> None:
    qtbot.waitUntil(wizard.next_button.isEnabled, timeout=STEP_MS)
    wizard.next_button.click()
    qtbot.waitUntil(lambda: wizard.page_key == to, timeout=STEP_MS)


def run_page(wizard: InstallerWizard, qtbot: Any, key: str) -> None:
    page = wizard.pages[key]
    qtbot.waitUntil(page.start_button.isEnabled, timeout=STEP_MS)  # type: ignore[attr-defined]
    page.start_button.click()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: wizard.job is None and page.state != "running", timeout=STEP_MS)  # type: ignore[attr-defined]
    assert page.state == SUCCEEDED, page.status_label.text()  # type: ignore[attr-defined]


def merchant_qr(world: DemoWorld) -> str:
    assert world.platform is not None
    wanted = world.platform.test_merchant
    for merchant in world.platform_view("merchants"):
        for store in merchant["stores"]:
            if (merchant["merchant_id"], store["store_id"]) == (wanted.merchant_id, wanted.store_id):
                return str(store["qr_text"])
    raise AssertionError("the sandbox lists no QR text for its test merchant")


# -- the recipe parts --------------------------------------------------------------------------------------------


def test_a_part_of_a_recipe_is_a_recipe_of_its_own_and_needs_only_its_own_settings(tmp_path: Path) -> None:
    bundle = tmp_path / "update.zip"
    bundle.write_bytes(b"not read here")
    overrides = {"firmware-update.bundle": str(bundle), "subsidy-enroll.program": "P-2026"}
    whole = load_recipe(RECIPE, overrides)
    part = whole.part("update", ["firmware-update"])
    assert part.name == "installer-onsite/update" and [s.name for s in part.steps] == ["firmware-update"]
    assert part.steps[0].settings == whole.steps[0].settings and part.digest != whole.digest
    assert load_recipe_part(RECIPE, "update", ["firmware-update"], overrides).digest == part.digest
    camera = load_recipe_part(RECIPE, "camera", ["field-check"])  # no bundle given: the camera still checks
    assert camera.name == "installer-onsite/camera" and [s.name for s in camera.steps] == ["field-check"]
    with pytest.raises(RecipePartInvalid):
        load_recipe_part(RECIPE, "x", ["flash"])
    with pytest.raises(RecipePartInvalid):
        whole.part("a/b", ["report"])


def test_the_update_is_counted_done_per_bundle_not_once_for_ever(tmp_path: Path) -> None:
    """A unit updated with one bundle is not "already done" when Settings name another: the update part's ledger
    name carries its settings' digest; the other parts keep their plain names."""
    from console.wizard import part_names, part_recipe

    first, second = tmp_path / "df2-1.0.naiadfw", tmp_path / "df2-1.1.naiadfw"
    for bundle in (first, second):
        bundle.write_bytes(b"not read here")
    one = part_recipe(UPDATE, {"firmware-update.bundle": str(first)})
    again = part_recipe(UPDATE, {"firmware-update.bundle": str(first)})
    other = part_recipe(UPDATE, {"firmware-update.bundle": str(second)})
    assert one.name == again.name and one.name.startswith("installer-onsite/update-") and len(one.name) <= 64
    assert other.name != one.name and [s.name for s in other.steps] == ["firmware-update"]
    names = part_names({"firmware-update.bundle": str(first)})
    assert names[UPDATE] == one.name and names[CAMERA] == "installer-onsite/camera"
    assert part_names({})[UPDATE] == "installer-onsite/update"  # no bundle: the update is skipped, never run


def test_a_refused_qr_text_changes_nothing_and_typing_the_ids_goes_on(qtbot: Any) -> None:
    from PyQt6.QtTest import QTest

    from console.wizard_pages import MerchantPage

    page = MerchantPage()
    qtbot.addWidget(page)
    page.set_merchant(None)
    page.qr_edit.setText("https://example.com/not-a-merchant\n")
    assert page.qr_message.text() and not page.merchant_edit.text() and not page.ready()
    QTest.keyClicks(page.merchant_edit, "M-100")  # as the remedy says: type the ids instead
    QTest.keyClicks(page.store_edit, "S-1")
    assert not page.qr_edit.text() and not page.qr_message.text() and page.ready()
    assert page.merchant() is not None and page.merchant().merchant_id == "M-100"  # type: ignore[union-attr]


def test_step_details_and_errors_from_a_unit_are_shown_as_text(qtbot: Any) -> None:
    from PyQt6.QtCore import Qt
    from PyQt6.QtWidgets import QLabel

    from console.wizard_pages import CameraPage
    from provisioning.steps import StepOutcome
    from terminal.errors import NaiadError

    hostile = 'x <img src="file:///etc/naiad.png"><h1>FAKE OK</h1>'
    page = CameraPage()
    qtbot.addWidget(page)
    page.end([StepOutcome("field-check", False, detail=hostile)], NaiadError(hostile))
    assert hostile in page.step_details["field-check"].text()
    for label in page.findChildren(QLabel):
        if label.objectName().startswith("wizard"):
            assert label.textFormat() == Qt.TextFormat.PlainText, label.objectName()


# -- the wizard on a simulated unit ------------------------------------------------------------------------------


def test_the_wizard_takes_a_unit_from_connect_to_done_through_an_unplug(
    world: DemoWorld, console: Console, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    [serial] = world.serials
    wizard = open_wizard(console, qtbot)
    started = time.monotonic()
    qtbot.waitUntil(lambda: wizard.connect_page.chosen() == serial, timeout=STEP_MS)  # the only unit: chosen
    press_next(wizard, qtbot, UPDATE)

    # The cable comes out half way through the update; the page says so, and the update goes on once it is back.
    page = wizard.update_page
    world.simulator("faults", serial=serial, unplug_after_bytes=1 << 20)
    qtbot.waitUntil(page.start_button.isEnabled, timeout=STEP_MS)
    page.start_button.click()
    qtbot.waitUntil(wizard.banner.isVisible, timeout=STEP_MS)
    assert "plug it back in" in wizard.banner.text()
    assert not wizard.next_button.isEnabled()
    world.simulator("replug", serial=serial)
    qtbot.waitUntil(lambda: wizard.job is None, timeout=STEP_MS)
    assert page.state == SUCCEEDED, page.status_label.text()
    assert not wizard.banner.isVisible()
    press_next(wizard, qtbot, CAMERA)

    # Unplugged during the camera check and not back in time: the part fails, says what to do, and "Try again"
    # (once the unit is back) resumes the same run from its failed step.
    monkeypatch.setattr(pipeline, "REPLUG_SECONDS", 0.5)
    camera = wizard.camera_page
    qtbot.waitUntil(camera.start_button.isEnabled, timeout=STEP_MS)
    camera.start_button.click()
    world.simulator("unplug", serial=serial)
    qtbot.waitUntil(lambda: wizard.job is None, timeout=STEP_MS)
    assert camera.state == FAILED and camera.error is not None
    assert "Try again" in camera.status_label.text() and camera.start_button.text() == "Try again"
    assert wizard.banner.isVisible() and not camera.start_button.isEnabled()
    world.simulator("replug", serial=serial)
    qtbot.waitUntil(lambda: not wizard.banner.isVisible(), timeout=STEP_MS)
    run_page(wizard, qtbot, CAMERA)
    press_next(wizard, qtbot, MERCHANT)

    # A text that is no merchant's QR code is refused where it was typed; the page does not advance.
    wizard.merchant_page.qr_edit.setText("https://example.com/not-a-merchant")
    assert wizard.merchant_page.qr_message.isVisible() and wizard.merchant_page.qr_message.text()
    assert not wizard.next_button.isEnabled()
    wizard.next_button.click()
    assert wizard.page_key == MERCHANT
    wizard.merchant_page.qr_edit.setText(merchant_qr(world))
    assert world.platform is not None
    assert wizard.merchant_page.merchant() == world.platform.test_merchant
    press_next(wizard, qtbot, FACEPAY)
    run_page(wizard, qtbot, FACEPAY)
    views = wizard.facepay_page.views
    assert views["rgb"].face is not None and views["ir"].face is not None and views["depth"].frame_size is not None
    press_next(wizard, qtbot, SUBSIDY)
    run_page(wizard, qtbot, SUBSIDY)
    press_next(wizard, qtbot, DONE)
    qtbot.waitUntil(lambda: wizard.done_page.report is not None, timeout=STEP_MS)
    LOG.warning("installer wizard, Connect to Done on a simulated unit: %.1f s", time.monotonic() - started)

    report = wizard.done_page.report
    assert report is not None and report.is_file() and report.is_relative_to(world.reports_dir)
    opened: list[str] = []
    monkeypatch.setattr("console.wizard.QDesktopServices.openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    wizard.done_page.open_button.click()
    assert opened == [str(report)]
    copy = world.root / "copy-for-the-merchant" / report.name
    copy.parent.mkdir()
    monkeypatch.setattr("console.wizard.QFileDialog.getSaveFileName", lambda *args: (str(copy.parent), ""))
    wizard.done_page.save_button.click()  # a folder: refused in plain words, with what to do
    qtbot.waitUntil(lambda: wizard.done_page.error is not None, timeout=STEP_MS)
    refused = wizard.done_page.status_label.text()
    assert "could not be written" in refused and "Error" not in refused and "Save a copy" in refused, refused
    monkeypatch.setattr("console.wizard.QFileDialog.getSaveFileName", lambda *args: (str(copy), ""))
    wizard.done_page.save_button.click()
    qtbot.waitUntil(copy.is_file, timeout=STEP_MS)
    assert copy.read_bytes() == report.read_bytes()

    with world.ledger() as ledger:
        steps = ledger.unit_steps(serial)
        runs = {run.recipe for run in ledger.unit_runs(serial) if run.status == "succeeded"}
    assert runs >= {f"{RECIPE}/{part}" for part in ("camera", "face-pay", "subsidy", "report")}
    assert any(run.startswith(f"{RECIPE}/update-") for run in runs)  # named after its bundle's settings
    with world.ledger() as ledger:
        [camera_run] = [run for run in ledger.unit_runs(serial) if run.recipe == f"{RECIPE}/camera"]
        assert [s.status for s in ledger.run_steps(camera_run.id)][-1] == "succeeded"  # the one run, resumed
    update = [s.status for s in steps if s.name == "firmware-update"]
    assert update[0] == "failed" and update[-1] == "succeeded"  # cut off by the unplug, then done
    for name in LIVE_STEPS:
        done = [s for s in steps if s.name == name and s.status == "succeeded"]
        assert len(done) == 1 and not done[0].already_done, (name, done)
    [device] = [d for d in world.platform_view("devices") if d["serial"] == serial]
    merchant = world.platform.test_merchant
    assert (device["merchant_id"], device["store_id"]) == (merchant.merchant_id, merchant.store_id)
    assert device["activated"] and device["subsidy_program"]
    paid = [t for t in world.platform_view("trades") if t["serial"] == serial]
    assert len(paid) == 1 and paid[0]["refunded"]


def test_the_wizard_opened_again_for_a_finished_unit_starts_at_done(
    world: DemoWorld, console: Console, qtbot: Any
) -> None:
    """After a console restart (a new context, a new wizard), the ledger says every page was done."""
    [serial] = world.serials
    with world.ledger() as ledger:
        if not any(r.recipe == f"{RECIPE}/report" and r.status == "succeeded" for r in ledger.unit_runs(serial)):
            pytest.skip("needs the unit finished by the test before it")
    wizard = open_wizard(console, qtbot)
    assert wizard.page_key == CONNECT
    qtbot.waitUntil(lambda: wizard.connect_page.chosen() == serial, timeout=STEP_MS)
    press_next(wizard, qtbot, DONE)
    qtbot.waitUntil(lambda: wizard.done_page.report is not None, timeout=STEP_MS)
    assert wizard.done_page.report is not None and wizard.done_page.report.is_file()
    assert world.platform is not None and wizard.merchant == world.platform.test_merchant
    for key in (UPDATE, CAMERA, FACEPAY, SUBSIDY):
        assert wizard.pages[key].state == SUCCEEDED  # type: ignore[attr-defined]
    with world.ledger() as ledger:
        steps = ledger.unit_steps(serial)
    for name in LIVE_STEPS:  # nothing was done again
        assert len([s for s in steps if s.name == name]) == 1
    wizard.back_button.click()
    assert wizard.page_key == SUBSIDY and wizard.next_button.isEnabled()
    wizard.back_button.click()
    wizard.back_button.click()
    assert wizard.page_key == MERCHANT and wizard.merchant_page.merchant() == world.platform.test_merchant
    assert wizard.merchant_page.merchant_edit.isReadOnly()  # bound: the store cannot change here any more
