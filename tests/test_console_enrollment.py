"""The console's merchant form and subsidy panel, with contract-shaped data: ids checked as typed, a QR text that
fills both ids (and a bad one that fills nothing), the steps ticked from the run's events, the cards' platform
actions offered by role, and the subsidy's table, totals and chart in both languages."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import IdleDiscovery, device
from hypothesis import given, settings
from hypothesis import strategies as st
from PyQt6.QtGui import QColor, QImage

import i18n
from console.composition import Wiring
from console.inject_run import WAITING
from console.inventory_run import ResumeDialog
from console.main_window import MainWindow
from console.merchant_binding import SENT
from console.merchant_form import CURRENT_PROGRAM, STEPS, BindRequest, MerchantForm
from console.platform_option import PlatformKeyMissing
from console.subsidy_chart import SubsidyChart, axis_text, nice_ceiling
from console.subsidy_panel import SubsidyPanel
from console.unit_card import Bench
from console.workers import EventSignals, Job, UnitsBusy, Workers
from enrollment.config import ID, Merchant
from enrollment.gateway import Method
from enrollment.merchant_qr import MerchantQrInvalid, merchant_qr_text
from i18n import _
from provisioning import operators as ops
from provisioning.ledger import Ledger
from provisioning.outbox import PendingCallDiffers, ResumeReport
from provisioning.registration import (
    STEP_ACTIVATE,
    STEP_BIND,
    STEP_INVENTORY,
    STEP_SUBSIDY,
    EnrollmentStepResult,
    StepCallWaiting,
    SubsidyMonth,
    UnitNotBound,
    UnitSubsidy,
)
from terminal.events import Listener, Message, PhaseStarted, Reporter, StepFinished

SERIAL = "DF2A00001"
PASSPHRASE = "plum-Passphrase-90417-zebra"


@pytest.fixture
def form(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> MerchantForm:
    monkeypatch.delenv("NAIAD_KEYSTORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("NAIAD_KEYSTORE", raising=False)
    dialog = MerchantForm(SERIAL)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_the_ids_are_checked_as_typed_and_start_waits_for_valid_ones(form: MerchantForm) -> None:
    assert not form.start_button.isEnabled() and not form.merchant_message.isVisible()
    assert form.foot.hint_label.text() == _("Enter the merchant id.")
    form.merchant_edit.setText("2088 0001")  # a space: not an id
    assert form.merchant_message.isVisible() and "Letters, digits" in form.merchant_message.text()
    assert not form.start_button.isEnabled()
    form.merchant_edit.setText("2088000000000001")
    form.store_edit.setText("-S1")  # must start with a letter or digit
    assert not form.merchant_message.isVisible() and form.store_message.isVisible()
    form.store_edit.setText("S0001")
    assert not form.store_message.isVisible() and not form.start_button.isEnabled()  # no passphrase yet
    form.secret_edit.setText(PASSPHRASE)
    assert form.start_button.isEnabled()
    asked: list[Any] = []
    form.start_requested.connect(asked.append)
    form.start_button.click()
    assert [(r.serial, r.merchant, r.program) for r in asked] == [
        (SERIAL, Merchant("2088000000000001", "S0001"), None)  # the platform's current program unless one is typed
    ]
    assert PASSPHRASE not in repr(asked[0])


def test_a_passphrase_in_the_environment_need_not_be_typed(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    dialog = MerchantForm(SERIAL)
    qtbot.addWidget(dialog)
    dialog.merchant_edit.setText("2088000000000001")
    dialog.store_edit.setText("S0001")
    assert dialog.start_button.isEnabled() and dialog.secret_edit.placeholderText() == _("Set in the environment")


def test_a_merchant_qr_text_fills_both_ids_and_a_bad_one_leaves_them_as_they_were(form: MerchantForm) -> None:
    form.qr_edit.setText(merchant_qr_text(Merchant("2088000000000002", "S0001")) + "\n")
    assert (form.merchant_edit.text(), form.store_edit.text()) == ("2088000000000002", "S0001")
    assert not form.qr_message.isVisible()
    form.qr_edit.setText("https://platform.example/bind?merchant_id=2088000000000001")  # no store
    assert (form.merchant_edit.text(), form.store_edit.text()) == ("2088000000000002", "S0001")
    assert form.qr_message.isVisible()
    assert form.qr_message.text().startswith(str(MerchantQrInvalid(reason="x")).split(":")[0])
    form.qr_edit.setText("")
    assert not form.qr_message.isVisible()


def test_no_typed_text_breaks_the_form_or_enables_start_with_a_bad_id(form: MerchantForm) -> None:
    form.secret_edit.setText(PASSPHRASE)
    form.store_edit.setText("S0001")

    @settings(max_examples=60, deadline=None)
    @given(st.text(max_size=80))
    def typed(text: str) -> None:
        before = (form.merchant_edit.text(), form.store_edit.text())
        form.qr_edit.setText(text)
        if form.qr_message.isVisible():  # a refused QR text leaves the ids as they were
            assert (form.merchant_edit.text(), form.store_edit.text()) == before
        form.merchant_edit.setText(text)
        valid = bool(ID.fullmatch(text)) and bool(ID.fullmatch(form.store_edit.text()))
        assert form.start_button.isEnabled() is valid

    typed()


def test_the_form_ticks_each_step_from_the_events_and_says_why_one_failed(form: MerchantForm) -> None:
    form.begin()
    assert [form.step_marks[step].text() for step, _n in STEPS] == ["○", "○", "○"]
    assert not form.start_button.isEnabled() and not form.merchant_edit.isEnabled()
    form.phase_started(PhaseStarted(SERIAL, STEP_BIND, STEP_BIND, "binding"))
    assert form.step_marks[STEP_BIND].text() == "…"
    bound = EnrollmentStepResult(SERIAL, STEP_BIND, True, "done", "bound 2026-11-30 15:00:00")
    form.step_finished(StepFinished(SERIAL, STEP_BIND, bound))
    form.step_finished(StepFinished("OTHER", STEP_ACTIVATE, bound))  # another unit's event: not this form's
    error = UnitNotBound(serial=SERIAL)
    failed = EnrollmentStepResult(SERIAL, STEP_ACTIVATE, False, "refused", error=error)
    form.step_finished(StepFinished(SERIAL, STEP_ACTIVATE, failed))
    form.end([bound, failed], None)
    assert [form.step_marks[step].text() for step, _n in STEPS] == ["✓", "✗", "—"]
    assert form.step_details[STEP_ACTIVATE].text() == f"{error}\n{error.remedy_text}"
    assert form.step_details[STEP_SUBSIDY].isVisible() and not form.step_details[STEP_BIND].isVisible()
    assert form.start_button.text() == _("Run again") and form.merchant_edit.isEnabled()


def test_the_program_is_the_platforms_current_unless_another_is_typed(
    form: MerchantForm, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert form.program_combo.currentIndex() == 0 and form.program_combo.currentText() == _(CURRENT_PROGRAM)
    assert form.program() is None  # no program is sent: the platform's default, whatever it is now
    form.merchant_edit.setText("2088000000000001")
    form.store_edit.setText("S0001")
    form.secret_edit.setText(PASSPHRASE)
    form.program_combo.setEditText("2031")  # a program the console never heard of
    assert form.program() == "2031" and form.request().program == "2031" and form.start_button.isEnabled()
    form.program_combo.setEditText("20/31")
    assert not form.start_button.isEnabled() and form.program_message.isVisible()
    form.program_combo.setCurrentIndex(0)
    assert form.program() is None and not form.program_message.isVisible()
    monkeypatch.setattr(i18n, "_language", "zh_CN")
    monkeypatch.setitem(i18n.catalog("zh_CN"), CURRENT_PROGRAM, "当前（平台默认）")
    form.retranslate()  # the first choice is translated and stays chosen
    assert form.program_combo.currentText() == "当前（平台默认）" and form.program() is None
    form.program_combo.setEditText("2019")
    monkeypatch.setattr(i18n, "_language", "en")
    form.retranslate()  # a typed program survives a language switch (it is sent as typed)
    assert form.program() == "2019" and form.request().program == "2019"


def test_a_unit_stays_busy_until_a_job_of_several_steps_on_it_ends(qtbot: Any) -> None:
    workers = Workers()
    release = threading.Event()
    bound = EnrollmentStepResult(SERIAL, STEP_BIND, True, "done")

    def work(listener: Listener) -> None:
        Reporter(listener, SERIAL, STEP_BIND).finished(bound)
        release.wait(5)  # activating: the unit is still this job's

    job = Job(work, (SERIAL,), "bring live", release_on="end")
    finished: list[StepFinished] = []
    job.step_finished.connect(finished.append)
    workers.start(job)
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert workers.busy(SERIAL)
    with pytest.raises(UnitsBusy):
        workers.start(Job(lambda _listener: None, (SERIAL,), "flash"))
    with qtbot.waitSignal(job.succeeded, timeout=5000):
        release.set()
    assert not workers.busy(SERIAL) and workers.shutdown()


def test_closing_the_form_forgets_the_passphrase(form: MerchantForm) -> None:
    form.secret_edit.setText(PASSPHRASE)
    form.close()
    assert form.secret_edit.text() == ""


# -- the subsidy panel and chart ----------------------------------------------------------------------------


def month(index: int, users: int, earned: str) -> SubsidyMonth:
    return SubsidyMonth(index, f"2026-0{index}-01 00:00:00", f"2026-0{index + 1}-01 00:00:00", users, Decimal(earned))


def unit_subsidy(serial: str = SERIAL, program: str | None = "2020") -> UnitSubsidy:
    months = (month(1, 1143, "800.00"), month(2, 310, "217.00"), month(3, 0, "0.00")) if program else ()
    earned = sum((m.earned for m in months), Decimal(0))
    return UnitSubsidy(
        serial=serial,
        merchant_id="2088000000000001",
        store_id="S0001",
        program=program,
        activated="2026-01-01 10:00:00" if program else None,
        window_end="2026-06-01 10:00:00" if program else None,
        months=months,
        users=sum(m.users for m in months),
        earned=earned,
        cap_left=Decimal(1600) - earned if program else Decimal(0),
        months_left=2 if program else 0,
    )


def test_the_panel_shows_a_units_months_totals_and_chart(qtbot: Any) -> None:
    panel = SubsidyPanel(SERIAL)
    qtbot.addWidget(panel)
    panel.show()
    panel.show_units([unit_subsidy()])
    table = panel.table
    rows = [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]  # type: ignore[union-attr]
    assert rows[0] == [_("Month {index}", index=1), "2026-01-01", "2026-02-01", "1143", "800.00"]
    assert [row[4] for row in rows] == ["800.00", "217.00", "0.00"]
    assert panel.totals_label.text() == _(
        "Earned {earned:.2f} yuan · cap left {cap_left:.2f} yuan · months left {months}",
        earned=Decimal("1017.00"),
        cap_left=Decimal("583.00"),
        months=2,
    )
    assert not panel.unit_combo.isVisible() and panel.chart.isVisible() and len(panel.chart.months) == 3


def test_a_merchants_units_get_a_chooser_and_the_merchants_total(qtbot: Any) -> None:
    panel = SubsidyPanel(None)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.show_button.isEnabled()
    panel.id_edit.setText("2088000000000001")
    panel.secret_edit.setText(PASSPHRASE)
    asked: list[tuple[str, ...]] = []
    panel.query_requested.connect(lambda *args: asked.append(args))
    panel.show_button.click()
    assert asked == [("merchant", "2088000000000001", PASSPHRASE)]
    panel.show_units([unit_subsidy(), unit_subsidy("DF2A00002", None)])
    assert panel.unit_combo.isVisible() and panel.unit_combo.count() == 2
    assert "1017.00" in panel.merchant_label.text()
    panel.unit_combo.setCurrentIndex(1)
    assert panel.status_label.text() == _("Unit {serial} is not enrolled in a subsidy program.", serial="DF2A00002")
    assert not panel.table.isVisible() and not panel.chart.isVisible() and not panel.totals_label.isVisible()


def test_a_bad_id_is_refused_inline(qtbot: Any) -> None:
    panel = SubsidyPanel(None)
    qtbot.addWidget(panel)
    panel.show()
    panel.id_edit.setText("2088/1")
    assert panel.id_message.isVisible() and not panel.show_button.isEnabled()


@given(st.just(0.0) | st.floats(min_value=0.01, max_value=1e9))
def test_an_axis_top_is_round_and_holds_the_value(value: float) -> None:
    top = nice_ceiling(value)
    assert top >= value * (1 - 1e-9) and (top == 1.0 if value == 0 else top < 10 * value)
    mantissa = top / 10 ** int(f"{top:e}".split("e")[1])
    assert any(abs(mantissa - step) < 1e-6 for step in (1.0, 2.0, 2.5, 5.0, 10.0))


@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=5))
def test_the_users_axis_counts_whole_users(users: list[int]) -> None:
    chart = SubsidyChart()
    chart.months = tuple(month(index, count, "0.00") for index, count in enumerate(users, 1))
    top = chart.users_top()
    assert top >= max(users) and top % SubsidyChart.TICKS == 0 and top <= max(4 * SubsidyChart.TICKS, 3 * max(users))


def test_the_yuan_ticks_read_as_their_value() -> None:
    assert [axis_text(5 * i / SubsidyChart.TICKS) for i in range(5)] == ["0", "1.25", "2.5", "3.75", "5"]


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_the_chart_paints_the_earnings_bars_and_the_users(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, language: str
) -> None:
    monkeypatch.setattr(i18n, "_language", language)
    chart = SubsidyChart()
    qtbot.addWidget(chart)
    chart.resize(520, 260)
    chart.show_months(unit_subsidy().months)
    assert chart.yuan_top() >= 800 and chart.users_top() >= 1143
    image = QImage(chart.size(), QImage.Format.Format_RGB32)
    chart.render(image)
    colours = {image.pixelColor(x, y).name() for x in range(0, 520, 2) for y in range(0, 260, 2)}
    assert QColor("#1565c0").name() in colours  # earnings bars
    assert QColor("#ef6c00").name() in colours  # users
    assert QColor("#c62828").name() not in colours  # no cap line: the console holds no program's terms


# -- the cards' actions, by role ----------------------------------------------------------------------------

ROLES = {"root": "admin", "olga": "operator", "ivy": "installer", "cara": "custodian", "sam": "support"}


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setattr(i18n, "_language", "en")
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1")
    ops.add_operator(ledger, None, "root", "admin", "root-Secret-8731")
    admin = ops.login(ledger, "root", "root-Secret-8731")
    for name, role in ROLES.items():
        if name != "root":
            ops.add_operator(ledger, admin, name, role, f"{name}-Secret-8731")
    from provisioning.station import Station

    station = Station(IdleDiscovery(), ledger=ledger)  # type: ignore[arg-type]
    win = MainWindow(Wiring(Path("/nonexistent-sim")), make_discovery=IdleDiscovery, make_station=lambda: station)
    qtbot.addWidget(win)
    win.start()
    win.bench.device_added(device(SERIAL, 1))
    yield win
    win.close()
    ledger.close()


def log_in(qtbot: Any, window: MainWindow, name: str) -> None:
    window.operator.login_action.trigger()
    dialog = window.operator.dialog
    assert dialog is not None
    dialog.name_edit.setText(name)
    dialog.password_edit.setText("root-Secret-8731" if name == "root" else f"{name}-Secret-8731")
    dialog.login_button.click()
    qtbot.waitUntil(lambda: window.operator.session is not None, timeout=5000)


@pytest.mark.parametrize("name", sorted(ROLES))
def test_the_cards_offer_binding_and_the_subsidy_by_role(qtbot: Any, window: MainWindow, name: str) -> None:
    card = window.bench.card(SERIAL)
    assert card is not None
    merchant, subsidy = card.platform_buttons["merchant"], card.platform_buttons["subsidy"]
    assert not merchant.isVisibleTo(card) and not subsidy.isVisibleTo(card)
    assert not window.subsidy.menu_action.isVisible()
    log_in(qtbot, window, name)
    binds = ROLES[name] in ("installer", "operator", "admin")
    reads = binds or ROLES[name] == "support"
    assert merchant.isVisibleTo(card) is binds and subsidy.isVisibleTo(card) is reads
    assert window.subsidy.menu_action.isVisible() is reads
    if binds:
        merchant.click()
        form = window.merchants.forms.get(SERIAL)
        assert form is not None and form.isVisible()
    window.operator.logout_action.trigger()
    assert not window.merchants.forms and not merchant.isVisibleTo(card)


def test_a_unit_busy_with_another_job_is_not_bound_and_its_card_keeps_that_job(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    log_in(qtbot, window, "ivy")
    release = threading.Event()
    window.workers.start(Job(lambda _listener: release.wait(5), (SERIAL,), "flash"))
    card = window.bench.card(SERIAL)
    assert card is not None
    card.show_step(WAITING)
    form = window.merchants.open_for(SERIAL)
    assert form is not None
    form.merchant_edit.setText("2088000000000001")
    form.store_edit.setText("S0001")
    form.start_button.click()
    release.set()
    busy = UnitsBusy(serials=SERIAL)
    assert not form.running and form.foot.hint_label.text() == f"{_('The run stopped:')} {busy} {busy.remedy_text}"
    assert card.step_label.text() == _(WAITING) and card.error is None  # the other job's card, untouched


def holders(text: str) -> list[object]:
    """The cells, containers and bind requests that still refer to ``text`` (strings themselves are not tracked)."""
    gc.collect()
    found: list[object] = []
    for obj in gc.get_objects():
        if type(obj).__name__ == "cell":
            try:
                values: Any = [obj.cell_contents]
            except ValueError:  # an empty cell
                continue
        elif isinstance(obj, BindRequest):
            values = [obj.secret]
        elif isinstance(obj, list | tuple):
            values = obj
        elif isinstance(obj, dict):
            values = obj.values()
        else:
            continue
        for value in values:  # a loop, not a generator: its closure's cell would hold ``text`` too
            if isinstance(value, str) and value == text:
                found.append(obj)
                break
    return found


def test_nothing_holds_the_passphrase_once_the_bind_ended(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(qtbot, window, "ivy")
    secret = f"plum-Passphrase-{uuid.uuid4().hex}"  # made here: no constant holds it
    fingerprint = hash(secret)
    arrived: list[bool] = []

    class Access:  # refuses as a station without its platform key would, after the secret reached it
        def call(self, typed: str, _use: Any) -> Any:
            arrived.append(hash(typed) == fingerprint)
            raise PlatformKeyMissing(label="platform-2026000000000001")

    window.merchants._access = Access()  # type: ignore[assignment]
    started: list[Job] = []
    start = window.workers.start

    def recorded(job: Job) -> Job:
        started.append(job)
        return start(job)

    monkeypatch.setattr(window.workers, "start", recorded)
    form = window.merchants.open_for(SERIAL)
    assert form is not None
    form.merchant_edit.setText("2088000000000001")
    form.store_edit.setText("S0001")
    form.secret_edit.setText(secret)
    form.start_button.click()
    qtbot.waitUntil(lambda: not form.running, timeout=5000)
    assert arrived == [True] and "platform-2026000000000001" in form.foot.hint_label.text()
    assert holders(secret) == []  # the job's slots keep the request: without its secret
    assert [job.release_on for job in started] == ["end"]  # the unit stays busy through bind, activate, enroll


def test_a_message_about_the_whole_run_is_logged_without_a_unit(qtbot: Any, caplog: pytest.LogCaptureFixture) -> None:
    bench = Bench()
    qtbot.addWidget(bench)
    signals = EventSignals()
    bench.follow(signals)
    text = "Earlier inventory calls sent again: 1 done, 0 refused, 0 still waiting."
    with caplog.at_level("INFO", logger="console.unit_card"):
        signals.message.emit(Message("", STEP_INVENTORY, text))  # register_inventory's word on the outbox
    assert [record.getMessage() for record in caplog.records] == [text]


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_the_resume_dialog_grows_to_show_a_long_error_whole(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, language: str
) -> None:
    monkeypatch.setattr(i18n, "_language", language)
    dialog = ResumeDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.end(None, PendingCallDiffers(method="iot.device.bind", serial=SERIAL, request_no="0" * 32))
    hint = dialog.foot.hint_label
    qtbot.waitUntil(
        lambda: hint.height() >= hint.heightForWidth(hint.width()), timeout=1000
    )  # not drawn over by the buttons
    assert dialog.height() >= dialog.heightForWidth(dialog.width())


def test_one_resume_at_a_time_and_a_reopened_dialog_shows_how_it_ended(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAIAD_KEYSTORE_PASSPHRASE", PASSPHRASE)
    log_in(qtbot, window, "ivy")
    release, calls = threading.Event(), []

    class Access:  # sends until released
        def call(self, _typed: str, _use: Any) -> Any:
            calls.append(1)
            release.wait(5)
            return ResumeReport(done=1, refused=0, pending=0)

    window.inventory._access = Access()  # type: ignore[assignment]
    first = window.inventory.open_resume()
    assert first is not None
    first.start_button.click()
    assert first.running
    first.close()  # its job runs on
    again = window.inventory.open_resume()
    assert again is not None and again is not first and again.running and not again.start_button.isEnabled()
    assert window.inventory.resume(again, PASSPHRASE) is None  # refused: one is running
    release.set()
    qtbot.waitUntil(lambda: not again.running, timeout=5000)
    assert calls == [1] and again.report == ResumeReport(done=1, refused=0, pending=0)


def test_a_run_stopped_by_a_differing_waiting_call_offers_to_send_or_drop_it(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(qtbot, window, "ivy")
    seen: list[tuple[object, ...]] = []

    class Outbox:  # what the console's actions ask of the station's outbox
        def as_operator(self, name: str) -> Outbox:
            seen.append(("as", name))
            return self

        def resume(self, method: Method | None = None, serial: str | None = None) -> ResumeReport:
            seen.append(("resume", method, serial))
            return ResumeReport(done=1, refused=0, pending=0)

        def abandon(self, request_no: str) -> None:
            seen.append(("abandon", request_no))

    class Access:
        def call(self, _typed: str, use: Any) -> Any:
            return use(Outbox(), None)

    window.merchants._access = Access()  # type: ignore[assignment]
    form = window.merchants.open_for(SERIAL)
    assert form is not None
    assert not form.send_waiting_button.isVisibleTo(form) and not form.drop_waiting_button.isVisibleTo(form)
    number = "0123456789abcdef0123456789abcdef"
    stopped = StepCallWaiting(method=str(Method.DEVICE_BIND), serial=SERIAL, request_no=number, step=STEPS[0][1])

    def stop() -> None:
        form.begin()
        form.end([EnrollmentStepResult(SERIAL, STEP_BIND, False, "failed", error=stopped)], None)

    stop()
    assert form.send_waiting_button.isVisibleTo(form) and not form.send_waiting_button.isEnabled()  # no secret yet
    assert str(Method.DEVICE_BIND) not in form.step_details[STEP_BIND].text()  # the step's name, translated
    form.merchant_edit.setText("2088000000000001")
    form.store_edit.setText("S0001")
    form.secret_edit.setText(PASSPHRASE)
    form.send_waiting_button.click()
    qtbot.waitUntil(lambda: not form.running, timeout=5000)
    assert seen == [("as", "ivy"), ("resume", Method.DEVICE_BIND, SERIAL)]
    assert form.foot.hint_label.text() == _(SENT, done=1, refused=0, pending=0)
    assert not form.send_waiting_button.isVisibleTo(form) and form.start_button.isEnabled()
    seen.clear()
    stop()
    monkeypatch.setattr(form, "confirm_drop", lambda _number: False)
    form.drop_waiting_button.click()
    assert seen == [] and form.waiting_call() is stopped  # not confirmed: nothing dropped
    monkeypatch.setattr(form, "confirm_drop", lambda _number: True)
    form.drop_waiting_button.click()
    qtbot.waitUntil(lambda: not form.running, timeout=5000)
    assert seen == [("as", "ivy"), ("abandon", number)] and number in form.foot.hint_label.text()
