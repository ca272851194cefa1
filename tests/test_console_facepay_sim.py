"""The face-pay check page end to end: a simulated unit's card, its page, the real engine and procedure, the
simulator's live face scene, the station's detector and liveness, the unit's face-pay app and a sandbox platform
that takes the 0.01 test payment and refunds it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

import i18n
from console.composition import Wiring
from console.facepay_run import EngineFacePay
from console.main_window import MainWindow
from console.platform_access import PlatformAccess
from console.workers import StationProvider
from provisioning.facepay_steps import STAGES
from tools.screenshot_console import facepay_bench

CHECK_MS = 60_000
T = TypeVar("T")


@dataclass(frozen=True)
class BenchAccess(PlatformAccess):
    """The platform as the bench reaches it: its outbox and configuration, no key store to open."""

    outbox: Any = None
    config: Any = None

    def call(self, secret: str, use: Callable[[Any, Any], T]) -> T:
        return use(self.outbox, self.config)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[Any, Any, Any, str, Any]]:
    with facepay_bench(tmp_path) as opened:
        yield opened


def test_a_live_face_is_paid_with_and_refunded_from_the_page(
    qtbot: Any, tmp_path: Path, bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    station, outbox, config, serial, session = bench
    wiring = Wiring(tmp_path / "sim")
    stations = StationProvider(lambda: station)
    engine = EngineFacePay(wiring, BenchAccess(stations, None, outbox, config))
    window = MainWindow(wiring, make_station=lambda: station, facepay=engine)
    qtbot.addWidget(window)
    window.start()
    try:
        qtbot.waitUntil(lambda: window.bench.card(serial) is not None, timeout=CHECK_MS)
        window.operator._on_logged_in(session)  # an operator, as the login dialog would leave it
        page = window.facepay.open_for(serial)
        assert page is not None
        page.secret_edit.setText("unused: the bench's outbox is open")
        qtbot.waitUntil(page.start_button.isEnabled, timeout=CHECK_MS)
        page.start_button.click()
        qtbot.waitUntil(lambda: page.last_result is not None or page.last_error is not None, timeout=CHECK_MS)

        result = page.last_result
        assert result is not None, page.outcome_label.text()
        assert result.passed, page.outcome_label.text()
        assert [stage.name for stage in result.stages] == list(STAGES)
        assert page.trade_value.text() == result.trade_no and result.refunded
        assert page.views["rgb"].face is not None and page.views["ir"].face is not None  # drawn from the check
        assert page.views["depth"].frame_size is not None
        assert page.outcome_label.text().startswith("Passed")
    finally:
        window.close()
