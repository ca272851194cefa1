"""The calibration panel against a real simulator: a df2 unit's field check and full calibration, started from its
card through the real station, jig and ledger, show their verdict, views and results on the panel."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from camerabench import ADMIN, CameraBench, ShortJig
from conftest import SimHandle
from test_console_keys import PASSWORDS, _cheap_scrypt, log_in  # noqa: F401

from console.calibration_run import CALIBRATED, CameraEngine
from console.composition import Wiring
from console.main_window import MainWindow
from i18n import _
from provisioning import operators as ops
from provisioning.calibration import calibrate_units
from terminal.events import Listener

COLD_START_MS = 10_000
CHECK_MS = 60_000
CALIBRATION_MS = 240_000


@pytest.fixture
def df2(sim_factory: Any) -> SimHandle:
    handle: SimHandle = sim_factory(terminals=1, models=["df2"])
    return handle


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def cams(df2: SimHandle, ledger_url: str) -> Iterator[CameraBench]:
    """The test's own view of the units and the ledger the console's station writes."""
    with CameraBench.open(df2.state_dir, ledger_url) as opened:
        ops.add_operator(opened.ledger, ADMIN, "olga", "operator", PASSWORDS["olga"])
        ops.add_operator(opened.ledger, ADMIN, "ivy", "installer", PASSWORDS["ivy"])
        yield opened


@dataclass(frozen=True)
class ShortJigCamera:
    """The real step on the simulator's jig cut to its first poses (the station aims the rest): a quicker test."""

    wiring: Wiring
    planned: int = 14

    def calibrate(self, station: Any, serial: str, mode: str, session: Any, listener: Listener) -> Any:
        jig = ShortJig(self.wiring.jig(), self.planned)
        return calibrate_units(station, jig, [serial], listener, mode=mode, session=session)

    def jig_poses(self) -> int:
        return self.planned


@pytest.fixture
def open_window(qtbot: Any, df2: SimHandle, ledger_url: str) -> Iterator[Callable[..., MainWindow]]:
    """The console over the simulator, its station on the test's ledger; the unit's card on the bench."""
    wiring = Wiring(df2.state_dir)
    opened: list[MainWindow] = []

    def start(camera: CameraEngine | None = None) -> MainWindow:
        win = MainWindow(wiring, make_station=lambda: wiring.station(ledger_url), camera=camera)
        qtbot.addWidget(win)
        opened.append(win)
        win.start()
        [serial] = df2.serials()
        qtbot.waitUntil(lambda: win.bench.card(serial) is not None, timeout=COLD_START_MS)
        return win

    yield start
    for win in opened:
        qtbot.waitUntil(lambda win=win: not win.camera.running(), timeout=CALIBRATION_MS)
        win.close()


def test_a_field_check_from_the_card_shows_the_verdict(
    qtbot: Any, open_window: Callable[..., MainWindow], df2: SimHandle, cams: CameraBench
) -> None:
    window = open_window()  # the console's own camera engine and jig
    [serial] = df2.serials()
    cams.store_truth(serial, df2.call("truth", serial=serial))  # a perfectly calibrated unit
    log_in(qtbot, window, "ivy", PASSWORDS["ivy"])
    card = window.bench.card(serial)
    assert card is not None
    card.camera_button.click()
    panel = window.camera.panels[serial]
    assert not panel.full_button.isVisible()  # an installer checks; only an operator calibrates
    panel.check_button.click()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=CHECK_MS)

    assert panel.outcome_label.text().splitlines()[0] == _("Camera OK: no drift found"), panel.outcome_label.text()
    assert panel.outcome_label.property("failed") is False
    assert panel.depth_view.frame_size is not None  # the check's depth frame, in false colour
    assert all(frame.frame_size is not None for frame in panel.frame_views.values())  # the IR and RGB views
    assert panel.coverage_label.text().endswith(" board corners found"), panel.coverage_label.text()
    [record] = cams.ledger.camera_checks(serial, "field-check")
    assert record.passed and record.verdict == "ok"


def test_a_full_calibration_from_the_card_shows_views_and_results(
    qtbot: Any, open_window: Callable[..., MainWindow], df2: SimHandle, cams: CameraBench
) -> None:
    window = open_window(ShortJigCamera(Wiring(df2.state_dir)))
    [serial] = df2.serials()
    truth = df2.call("truth", serial=serial)
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    card = window.bench.card(serial)
    assert card is not None
    card.camera_button.click()
    panel = window.camera.panels[serial]
    qtbot.waitUntil(panel.full_button.isEnabled, timeout=COLD_START_MS)  # once a worker knows the jig
    panel.full_button.click()
    qtbot.waitUntil(lambda: not window.camera.running(), timeout=CALIBRATION_MS)

    [record] = cams.ledger.calibrations(serial)  # written, read back and recorded
    assert panel.outcome_label.property("failed") is False, panel.outcome_label.text()
    assert record.checksum[:12] in panel.outcome_label.text()
    for stream in ("ir", "rgb"):  # both cameras' views, each at its own size
        size = panel.frame_views[stream].frame_size
        assert size is not None and (size.width(), size.height()) == (truth[stream]["width"], truth[stream]["height"])
    assert panel.coverage_label.text().startswith("Coverage: ") and "views kept: 0" not in panel.coverage_label.text()
    fx = panel.camera_table.item(0, 0)
    assert fx is not None and " ± " in fx.text() and fx.text().endswith(" px")
    assert abs(float(fx.text().split(" ± ")[0]) / truth["ir"]["K"][0][0] - 1) < 0.003  # the solved fx, shown
    assert panel.stereo_label.text().startswith("IR to RGB: t = (")
    assert panel.depth_table.columnCount() >= 2  # the model's depth distances
    assert card.step_label.text() == _(CALIBRATED, checksum=record.checksum[:12])
