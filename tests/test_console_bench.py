"""The bench view end to end on a demo world of four simulated units (console/demo_world.py): choose
``distributor-bulk``, give its site settings, select all, Start; the cards, the batch summary and the report files.
A unit with a counterfeit secure element fails at the keys and says so on its card in plain words.  An installer
is not offered the bulk recipe; a wrong recipe file shows its line and starts nothing."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication

from console.batch_summary import failed_step_label
from console.bench_view import BenchView
from console.console_settings import ConsoleSettings
from console.context import ConsoleContext
from console.demo_world import DemoWorld
from console.operator_login import OperatorLogin
from console.unit_card import Bench
from console.workers import DeviceWatcher, StationProvider, Workers
from i18n import _
from terminal.errors import NaiadError

RUN_MS = 120_000
UNITS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    with DemoWorld(tmp_path_factory.mktemp("world"), UNITS, firmware_mib=1, calibration_views=12) as made:
        yield made


@dataclass
class Console:
    view: BenchView
    context: ConsoleContext
    watcher: DeviceWatcher


@pytest.fixture
def console(world: DemoWorld, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """A bench view on the world, the demo's operator logged in, every unit's card on the bench."""
    for name, value in world.env("operator").items():
        monkeypatch.setenv(name, value)
    workers = Workers()
    bench = Bench()
    stations = StationProvider(lambda: world.station("operator"))
    operator = OperatorLogin(workers, stations)
    settings = ConsoleSettings(reports_dir=str(tmp_path / "reports"))
    context = ConsoleContext(world.wiring, workers, stations, operator, bench, settings, tmp_path / "console.json")
    view = BenchView(context)
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    qtbot.waitExposed(view)
    view.activateWindow()
    watcher = DeviceWatcher(workers, world.wiring.discovery, interval=0.1)
    watcher.device_added.connect(bench.device_added)
    watcher.device_removed.connect(bench.device_removed)
    watcher.start()
    log_in(context, world, "operator")
    qtbot.waitUntil(lambda: len(bench.attached()) == UNITS, timeout=15_000)
    yield Console(view, context, watcher)
    watcher.stop()
    workers.shutdown(30_000)


def log_in(context: ConsoleContext, world: DemoWorld, role: str) -> None:
    context.operator.session = world.session(role)
    context.operator.changed.emit()


def offered(view: BenchView) -> list[str]:
    return [view.recipe_box.itemData(i) for i in range(view.recipe_box.count())]


def test_a_bulk_run_of_four_units_shows_each_card_the_summary_and_the_reports(
    console: Console, world: DemoWorld, qtbot: Any
) -> None:
    view, bench = console.view, console.context.bench
    faulty = world.serials[-1]
    world.simulator("faults", serial=faulty, counterfeit=True)
    try:
        view.choose("distributor-bulk")
        assert view.form.missing() == ["flash.bundle", "inject.bdk"]  # the site's settings come first
        assert not view.start_button.isEnabled()
        view.form.set_values(world.overrides("distributor-bulk"))
        assert view.start_button.isEnabled()
        assert view.start_button.text() == _("Start on all {count} attached units", count=UNITS)
        view.select_all_button.setFocus()
        qtbot.keyClick(view.select_all_button, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)  # Select all
        assert bench.selected() == bench.attached()
        assert view.start_button.text() == _("Start on {count} ticked units", count=UNITS)
        job = view.start()
        assert job is not None
        card = bench.card(world.serials[0])
        assert card is not None and card.in_job and card.elapsed_label.isVisible()
        qtbot.waitUntil(lambda: view.outcome is not None, timeout=RUN_MS)
    finally:
        world.simulator("faults", serial=faulty, counterfeit=False)
    outcome = view.outcome
    assert outcome is not None
    for serial in world.serials[:-1]:
        card = bench.card(serial)
        assert card is not None and not card.in_job and card.error is None
        assert card.step_label.text() == _("Done: {recipe}", recipe="distributor-bulk")
        assert card.elapsed_label.isVisibleTo(card) and card.elapsed_label.text() != ""
    failed = bench.card(faulty)
    [unit] = [u for u in outcome.batch.units if u.serial == faulty]
    step = failed_step_label(unit)
    assert failed is not None and failed.error is not None and unit.result == "failed" and step is not None
    assert failed.step_label.isVisibleTo(failed) and failed.remedy_label.isVisibleTo(failed)  # on the card itself
    words = _("Failed at “{step}”: {message}", step=_(step), message=str(failed.error))
    assert failed.step_label.text() == words
    assert (
        isinstance(failed.error, NaiadError)
        and failed.error.remedy_text
        and failed.error.remedy_text in failed.remedy_label.text()
    )
    summary = view.summary
    assert summary.isVisible()
    assert summary.counts() == {"succeeded": UNITS - 1, "failed": 1, "already-done": 0, "held-elsewhere": 0}
    assert faulty in summary.problems.text()
    inventory = outcome.batch.reconciliation.inventory
    assert inventory is not None and inventory.verdict() in summary.reconciliation.text()
    assert summary.table.rowCount() == UNITS
    assert outcome.report_error is None and outcome.files and all(f.exists() for f in outcome.files)
    assert outcome.folder.parent == Path(console.context.settings.reports_dir or "")
    assert console.context.settings.overrides("distributor-bulk") == world.overrides("distributor-bulk")


def test_an_installer_is_not_offered_the_bulk_recipe(console: Console, world: DemoWorld) -> None:
    assert "distributor-bulk" in offered(console.view)
    log_in(console.context, world, "installer")
    assert "distributor-bulk" not in offered(console.view)
    assert "installer-onsite" in offered(console.view)


def test_a_wrong_recipe_file_shows_its_line_and_starts_nothing(console: Console, tmp_path: Path) -> None:
    path = tmp_path / "wrong.toml"
    path.write_text('name = "wrong"\n\n[[step]]\nname = "flash"\nbundel = "x.zip"\n', encoding="utf-8")
    view = console.view
    view.open_recipe_file(str(path))
    assert view.source() == str(path.resolve())
    assert view.recipe_error.isVisibleTo(view)
    assert _("{source}, line {line}", source=str(path.resolve()), line=5) in view.recipe_error.text()
    assert not view.start_button.isEnabled()
    assert view.start() is None
    assert not console.context.workers.busy_units()


def test_the_key_store_secret_is_asked_when_the_environment_has_none(
    console: Console, world: DemoWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = console.view
    monkeypatch.delenv("NAIAD_KEYSTORE_PASSPHRASE")
    asked: list[bool] = []

    def cancel() -> None:
        asked.append(True)

    view.ask_secret = cancel
    view.choose("distributor-bulk")
    view.form.set_values(world.overrides("distributor-bulk"))
    assert view.start() is None  # cancelled at the question: nothing starts
    assert asked == [True] and not console.context.workers.busy_units()


def test_the_shortcuts_are_there(console: Console) -> None:
    names = {action.objectName(): action.shortcut().toString() for action in console.view.actions()}
    assert names["bench:start"] == "Ctrl+Return"
    assert names["bench:select_none"] == "Ctrl+Shift+A"
    app = QApplication.instance()
    assert app is not None
