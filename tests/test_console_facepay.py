"""The console's face-pay check page: opened from a unit's card by the roles that may run the check, the check run
off the GUI thread (a scripted engine sending the real event, observation and result types, with synthetic frames),
and what the page draws: RGB, IR and depth side by side with the face box, landmarks and liveness score, the stages
with ticks and times, the trade number and the refund, and a failure in plain words."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from helpers import IdleDiscovery, device
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QLabel, QPushButton
from test_console_keys import NOWHERE, PASSWORDS, ROLES, FakeStation, _cheap_scrypt, ledger, log_in  # noqa: F401

import i18n
from camera.faces import Decision, Face, FaceAnalysis, Liveness
from camera.observations import FACE, FaceObservation
from console.face_view import LANDMARK_COLOUR, LIVE_COLOUR, FaceFrameView
from console.facepay_page import ColouredFace, FacePayPage, outcome_text, refund_text
from console.facepay_run import (
    PASSED,
    WAITING,
    FaceColouring,
    FacePayCheckFailed,
    FacePayRoleNeeded,
    PresentationDeclined,
    PresentationNotConfirmed,
    PresentPrompt,
)
from console.main_window import MainWindow
from i18n import _
from provisioning.facepay_steps import FACEPAY_STEP, STAGES, FacePayCheckResult, Stage, stage_label
from provisioning.facepay_steps import ROLES as FACEPAY_ROLES
from provisioning.ledger import Ledger
from terminal.events import Listener, Observed, Recorder, Reporter

WAIT_MS = 5000
SERIAL = "DF2A00001"
SECRET = "plum-Passphrase-90417-zebra"
TRADE = "2026113022001400000001"
FAILURES = {
    "detect": "no face in the frames",
    "pay": "no reply in time",
    "refund": "the platform refused the refund (SYSTEM_ERROR)",
}
FACE_RGB = Face((120.0, 60.0, 200.0, 160.0), 0.98, ((140, 95), (180, 95), (160, 115), (145, 135), (175, 135)))
FACE_IR = Face((100.0, 50.0, 180.0, 150.0), 0.98, ((120, 85), (160, 85), (140, 105), (125, 125), (155, 125)))


def on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -- synthetic frame sets and results ------------------------------------------------------------------------


def frame_set(decision: Decision = Decision.LIVE, score: float = 0.97, detail: str = "") -> FaceObservation:
    ir = np.tile(np.linspace(20, 200, 320, dtype=np.uint8), (240, 1))
    rgb = np.dstack([ir, ir // 2, ir // 3]).astype(np.uint8)
    depth = np.full((240, 320), 600, np.uint16)
    depth[60:140, 110:170] = 560  # the face, nearer than the wall behind it
    depth[:, :20] = 0
    liveness = Liveness(decision is Decision.LIVE, score, 0.5)
    faces = (FACE_RGB,) if decision is not Decision.NO_FACE else ()
    analysis = FaceAnalysis(
        decision,
        faces,
        faces[0] if faces else None,
        FACE_IR if faces else None,
        None,
        liveness if faces else None,
        {"detect": 0.03},
        detail,
    )
    return FaceObservation(ir, rgb, depth, analysis)


def result(presentation: str = "live", failing: str | None = None, refunded: bool = True) -> FacePayCheckResult:
    """A check as the procedure ends it: every stage up to ``failing`` (which fails), none after."""
    stages = []
    for index, name in enumerate(STAGES):
        ok = name != failing
        detail = "" if ok else FAILURES[name]
        stages.append(Stage(name, ok, 0.1 * (index + 1), detail))
        if not ok:
            break
    attack = presentation != "live"
    paid = any(stage.name == "pay" and stage.ok for stage in stages)
    trade = TRADE if paid and not attack else None
    passed = failing is None
    return FacePayCheckResult(
        SERIAL, presentation, passed, tuple(stages), 2.345, trade, refunded and passed and not attack
    )


class ScriptedFacePay:
    """``run_facepay_check`` for one unit as the procedure behaves: stages, frame sets, then its result."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, str, bool]] = []  # serial, presentation, operator, secret, GUI
        self.release = threading.Event()
        self.release.set()
        self.outcome: FacePayCheckResult | None = None
        self.frames: list[FaceObservation] = [frame_set()]
        self.question: str | None = None  # what a real unit's check asks the operator to present

    def check(
        self, serial: str, presentation: str, session: Any, secret: str, listener: Listener, ask: Callable[[str], None]
    ) -> Any:
        self.calls.append((serial, presentation, getattr(session, "operator", None), secret, on_gui_thread()))
        self.release.wait(WAIT_MS / 1000)
        if self.question is not None:
            ask(self.question)
        report = Reporter(listener, serial, FACEPAY_STEP)
        report.phase("capture", stage_label("capture"))
        for frames in self.frames:
            report.observe(FACE, frames)
        done = self.outcome or result(presentation)
        for stage in STAGES[1:]:
            report.phase(stage, stage_label(stage))
        report.finished(done)
        return done


# -- the window ------------------------------------------------------------------------------------------------


@pytest.fixture
def engine() -> ScriptedFacePay:
    return ScriptedFacePay()


@pytest.fixture
def window(
    qtbot: Any,
    ledger: Ledger,  # noqa: F811 - the fixture of test_console_keys, imported above
    engine: ScriptedFacePay,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    monkeypatch.delenv("NAIAD_KEYSTORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("NAIAD_KEYSTORE", raising=False)
    caplog.set_level(logging.DEBUG)
    gui_calls: list[str] = []
    station = FakeStation(ledger, gui_calls)
    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, facepay=engine)
    qtbot.addWidget(win)
    win.start()
    win._on_device_added(device(SERIAL, 1))
    yield win
    engine.release.set()
    qtbot.waitUntil(lambda: not win.facepay.runs.running(), timeout=WAIT_MS)
    win.close()
    assert gui_calls == [] and not any(gui for *_rest, gui in engine.calls)  # the GUI thread ran no check


def open_page(window: MainWindow) -> FacePayPage:
    card = window.bench.card(SERIAL)
    button = None if card is None else card.platform_buttons["facepay"]
    assert button is not None and button.isVisibleTo(card) and button.isEnabled()
    button.click()
    page = window.facepay.pages.get(SERIAL)
    assert page is not None and page.isVisible()
    return page


def run_check(qtbot: Any, window: MainWindow, page: FacePayPage, presentation: str = "live") -> None:
    page.presentation_combo.setCurrentIndex(page.presentation_combo.findData(presentation))
    page.secret_edit.setText(SECRET)
    assert page.start_button.isEnabled()
    page.start_button.click()
    qtbot.waitUntil(lambda: not window.facepay.runs.running(), timeout=WAIT_MS)


def stage_rows(page: FacePayPage) -> list[tuple[str, str, str]]:
    table = page.stage_table
    return [tuple(table.item(row, col).text() for col in range(3)) for row in range(len(STAGES))]  # type: ignore[misc, union-attr]


@pytest.mark.parametrize("name", ["olga", "ivy", "cara", "root"])
def test_the_action_is_offered_only_to_the_roles_that_may_run_the_check(
    qtbot: Any, window: MainWindow, name: str
) -> None:
    card = window.bench.card(SERIAL)
    assert card is not None and not card.platform_buttons["facepay"].isVisibleTo(card)
    assert window.facepay.open_for(SERIAL) is None
    log_in(qtbot, window, name, PASSWORDS[name])
    allowed = ROLES[name] in FACEPAY_ROLES
    assert card.platform_buttons["facepay"].isVisibleTo(card) is allowed
    assert (window.facepay.open_for(SERIAL) is not None) is allowed
    if allowed:
        window.operator.log_out()  # the page goes with the role that opened it
        assert window.facepay.pages == {} and not card.platform_buttons["facepay"].isVisibleTo(card)


def test_a_live_check_draws_the_frames_the_face_the_stages_the_trade_and_the_refund(
    qtbot: Any, window: MainWindow, engine: ScriptedFacePay
) -> None:
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    page = open_page(window)
    assert not page.start_button.isEnabled()  # no passphrase yet, none in the environment
    engine.release.clear()
    page.secret_edit.setText(SECRET)
    page.start_button.click()
    card = window.bench.card(SERIAL)
    assert card is not None and card.in_job and card.step_label.text() == _(WAITING)
    assert page.running and not page.start_button.isEnabled() and page.outcome_label.text() == "Checking…"
    engine.release.set()
    qtbot.waitUntil(lambda: not window.facepay.runs.running(), timeout=WAIT_MS)

    assert engine.calls == [(SERIAL, "live", "olga", SECRET, False)]
    for stream in ("rgb", "ir", "depth"):
        size = page.views[stream].frame_size
        assert size is not None and (size.width(), size.height()) == (320, 240), stream
    assert page.views["rgb"].face == FACE_RGB  # the detector's face in RGB, the same face mapped to IR in IR and depth
    assert page.views["ir"].face == FACE_IR and page.views["depth"].face == FACE_IR
    assert page.views["rgb"].caption == "live · liveness 0.97"  # short on the frame, the threshold under them
    assert page.analysis_label.text() == "Station: live · liveness 0.97 (threshold 0.50)"
    rows = stage_rows(page)
    assert rows[0] == ("✓  Capturing frames", "0.10 s", "") and rows[-1] == ("✓  Querying the refund", "0.80 s", "")
    assert all(row[0].startswith("✓") for row in rows)
    assert page.trade_value.text() == TRADE and page.refund_value.text() == "Refunded (0.01 yuan)"
    assert page.total_value.text() == "2.35 s"
    assert page.outcome_label.text() == "Passed: paid 0.01 yuan with the face and refunded it, in 2.3 s"
    assert page.outcome_label.property("failed") is False
    assert card.step_label.text() == _(PASSED, presentation="Live face") and not card.in_job
    assert any(
        f"{SERIAL}: Face-pay check passed (Live face) · trade {TRADE}" in line for line in window.log_pane.lines()
    )
    assert SECRET not in "\n".join(window.log_pane.lines())
    page.close()
    assert page.secret_edit.text() == "" and page.views["rgb"].frame_size is None  # closing forgets both


def test_an_attack_is_chosen_and_its_refusal_reads_as_a_pass_without_a_trade(
    qtbot: Any, window: MainWindow, engine: ScriptedFacePay
) -> None:
    engine.frames = [frame_set(Decision.ATTACK, 0.08)]
    log_in(qtbot, window, "ivy", PASSWORDS["ivy"])
    page = open_page(window)
    run_check(qtbot, window, page, "mask")

    assert [call[1] for call in engine.calls] == ["mask"]
    assert page.views["ir"].caption == "attack · liveness 0.08"
    assert page.trade_value.text() == "—" and page.refund_value.text() == "No trade made: the attack was not paid with"
    assert page.refund_value.property("failed") is False
    assert page.outcome_label.text() == "Passed: the station and the unit refused the 3D mask; no trade was made"


def test_a_failed_refund_is_said_in_plain_words_on_the_page_and_the_card(
    qtbot: Any, window: MainWindow, engine: ScriptedFacePay
) -> None:
    engine.outcome = result(failing="refund", refunded=False)
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    page = open_page(window)
    run_check(qtbot, window, page)

    rows = stage_rows(page)
    assert rows[5][0] == "✓  Querying the trade"
    assert rows[6] == ("✗  Refunding the payment", "0.70 s", "the platform refused the refund (SYSTEM_ERROR)")
    assert rows[7] == ("○  Querying the refund", "—", "")  # never reached
    text = page.outcome_label.text()
    assert text == "Failed at “Refunding the payment”: the platform refused the refund (SYSTEM_ERROR)"
    assert page.outcome_label.property("failed") is True
    assert page.refund_value.text() == f"NOT refunded yet: the unit's next check refunds trade {TRADE}"
    assert page.refund_value.property("failed") is True
    card = window.bench.card(SERIAL)
    error = FacePayCheckFailed(stage="Refunding the payment", detail="the platform refused the refund (SYSTEM_ERROR)")
    assert card is not None and card.step_label.text() == str(error) and card.step_label.toolTip() == error.remedy_text


def test_a_payment_pending_is_not_called_no_trade() -> None:
    pending = dataclasses.replace(result(failing="pay"), extra={"payment_pending": "FP0001"})
    text, as_it_should_be = refund_text(pending)
    assert text == "Payment FP0001 pending: it may be taken; the next check settles and refunds it"
    assert not as_it_should_be
    assert refund_text(result(failing="pay")) == ("No trade made", False)


def test_no_face_shows_the_frames_without_a_box(qtbot: Any, window: MainWindow, engine: ScriptedFacePay) -> None:
    engine.frames = [frame_set(Decision.NO_FACE)]
    engine.outcome = result(failing="detect")
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    page = open_page(window)
    run_check(qtbot, window, page)
    assert page.views["rgb"].frame_size is not None and page.views["rgb"].face is None
    assert page.analysis_label.text() == "Station: no face"
    assert page.outcome_label.text() == "Failed at “Finding the face”: no face in the frames"
    assert page.trade_value.text() == "—" and page.refund_value.property("failed") is True


def test_a_role_not_allowed_is_refused_and_another_job_holds_the_start(
    qtbot: Any, window: MainWindow, engine: ScriptedFacePay
) -> None:
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    page = open_page(window)
    page.secret_edit.setText(SECRET)
    release = threading.Event()
    job = window.workers.run(lambda _listener: release.wait(WAIT_MS / 1000), (SERIAL,), "flash")
    assert not page.start_button.isEnabled()
    assert window.facepay.start(SERIAL, "live", SECRET) is None  # the unit is busy
    release.set()
    qtbot.waitUntil(job.returned.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.workers.busy(SERIAL), timeout=WAIT_MS)
    assert page.start_button.isEnabled()

    window.operator.session = None  # logged out behind the page's back: the run is refused, saying why
    assert window.facepay.start(SERIAL, "live", SECRET) is None
    error = FacePayRoleNeeded(roles="installer, operator, support")
    assert window.log_pane.lines()[-1].endswith(f"{error} — {error.remedy_text}")
    assert engine.calls == []


def test_a_real_unit_asks_the_operator_to_present_and_waits_for_the_answer(
    qtbot: Any, window: MainWindow, engine: ScriptedFacePay
) -> None:
    engine.question = "Hold the 3D mask up to the camera of unit DF2A00001."
    log_in(qtbot, window, "olga", PASSWORDS["olga"])
    page = open_page(window)
    page.secret_edit.setText(SECRET)
    page.start_button.click()
    qtbot.waitUntil(page.prompt_box.isVisible, timeout=WAIT_MS)
    assert page.prompt_label.text() == engine.question and window.facepay.runs.running()
    page.ready_button.click()  # it is there: the check goes on
    qtbot.waitUntil(lambda: not window.facepay.runs.running(), timeout=WAIT_MS)
    assert not page.prompt_box.isVisible() and page.outcome_label.text().startswith("Passed")

    page.secret_edit.setText(SECRET)
    page.start_button.click()
    qtbot.waitUntil(page.prompt_box.isVisible, timeout=WAIT_MS)
    page.decline_button.click()  # the operator declines: the check ends, saying so
    qtbot.waitUntil(lambda: not window.facepay.runs.running(), timeout=WAIT_MS)
    declined = PresentationDeclined()
    assert page.outcome_label.text() == f"{declined}\n{declined.remedy_text}"
    assert page.outcome_label.property("failed") is True

    page.secret_edit.setText(SECRET)
    page.start_button.click()
    qtbot.waitUntil(page.prompt_box.isVisible, timeout=WAIT_MS)
    page.close()  # nobody left to present: answered no, the worker is not left waiting
    qtbot.waitUntil(lambda: not window.facepay.runs.running(), timeout=WAIT_MS)
    card = window.bench.card(SERIAL)
    assert card is not None and card.step_label.text() == str(declined)


def test_a_prompt_nobody_answers_gives_up(qtbot: Any) -> None:
    prompt = PresentPrompt(timeout=0.01)
    asked: list[str] = []
    prompt.asked.connect(asked.append)
    with pytest.raises(PresentationNotConfirmed):
        prompt.ask("Show one live face")
    assert asked == ["Show one live face"]
    prompt.confirm()  # a late answer is not taken for the next question
    with pytest.raises(PresentationNotConfirmed):
        prompt.ask("Show one live face")


# -- the page and its views fed directly -------------------------------------------------------------------------


def test_depth_is_coloured_on_the_worker_and_a_plain_observation_still_shows(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    recorder = Recorder()
    Reporter(FaceColouring(recorder), SERIAL, FACEPAY_STEP).observe(FACE, frame_set())
    [event] = recorder.of(Observed)
    assert isinstance(event.data, ColouredFace) and event.data.depth_picture is not None
    assert event.data.depth_picture.shape == (240, 320, 3)

    page = FacePayPage(SERIAL)
    qtbot.addWidget(page)
    page.observed(Observed("DF2A00002", FACEPAY_STEP, FACE, event.data))  # another unit's: not drawn here
    assert page.views["rgb"].frame_size is None
    page.observed(Observed(SERIAL, FACEPAY_STEP, FACE, frame_set()))  # not coloured: RGB and IR, no depth
    assert page.views["rgb"].frame_size is not None and page.views["depth"].frame_size is None
    page.observed(event)
    assert page.views["depth"].frame_size is not None
    page.observed(Observed(SERIAL, FACEPAY_STEP, FACE, frame_set(Decision.ATTACK, 0.1, "Flat: a photo or a screen")))
    assert page.analysis_label.text() == "Station: Flat: a photo or a screen"  # the analysis's own words


def test_a_failed_stages_error_is_said_once_with_its_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "_language", "en")
    error = PresentationDeclined()
    stages = (Stage("capture", False, 0.01, str(error)),)
    failed = FacePayCheckResult(SERIAL, "live", False, stages, 0.02, error=error)
    assert outcome_text(failed).splitlines() == [f"Failed at “Capturing frames”: {error}", error.remedy_text]
    assert refund_text(failed) == ("No trade made", False)


def test_the_box_and_landmarks_are_drawn_where_the_face_is(qtbot: Any) -> None:
    view = FaceFrameView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show_frame(np.zeros((240, 320), np.uint8))  # twice the size on screen
    view.show_face(FACE_RGB, "", LIVE_COLOUR)
    shot = view.grab().toImage()

    def colour_at(x: float, y: float) -> QColor:
        point = view.to_widget(x, y)
        return shot.pixelColor(round(point.x()), round(point.y()))

    edge = colour_at(FACE_RGB.box[0] - 0.5, 110)  # the box's left edge, half-way down
    assert edge.green() > 150 and edge.red() < 100
    eye = colour_at(*FACE_RGB.landmarks[0])  # type: ignore[index]
    assert abs(eye.blue() - LANDMARK_COLOUR.blue()) < 40 and eye.blue() > eye.red()
    inside = colour_at(160, 80)  # inside the box, away from the landmarks: the frame
    assert (inside.red(), inside.green(), inside.blue()) == (0, 0, 0)


def test_the_page_fits_1280x800_in_chinese_without_clipping(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "_language", "zh_CN")
    monkeypatch.delenv("NAIAD_KEYSTORE_PASSPHRASE", raising=False)
    page = FacePayPage(SERIAL)
    qtbot.addWidget(page)
    page.set_allowed(True, True)
    page.observed(Observed(SERIAL, FACEPAY_STEP, FACE, frame_set()))
    page.end(result(failing="refund", refunded=False))
    page.ask("请将 3D 面具举到设备 DF2A00001 的摄像头前。" * 2)  # a real unit's question, with its two buttons
    hint = page.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 760  # the window frame and a task bar take the rest
    page.resize(1280, 760)
    page.show()
    qtbot.waitExposed(page)
    for button in page.findChildren(QPushButton):
        if button.isVisible():
            assert button.width() >= button.sizeHint().width(), button.text()
    for label in page.findChildren(QLabel):
        if label.isVisible() and not label.wordWrap():
            assert label.width() >= label.sizeHint().width(), label.text()
    table, last = page.stage_table, len(STAGES) - 1
    viewport = table.viewport()
    assert viewport is not None and table.rowViewportPosition(last) + table.rowHeight(last) <= viewport.height()
