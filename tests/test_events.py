"""The typed event stream (terminal/events.py), the CLI's listener and output that fits where it goes."""

from __future__ import annotations

import io
from typing import Any

import click
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.progress import Progress

from console.cli_common import out, table
from console.cli_progress import RichBars, transfer_bar
from terminal.errors import DeviceNotFound, NaiadError
from terminal.events import (
    Fanout,
    Listener,
    Message,
    PhaseStarted,
    Progressed,
    Recorder,
    Reporter,
    StepFinished,
)


class Result:
    """A StepResult of no step in particular."""

    def __init__(self, ok: bool, error: NaiadError | None = None) -> None:
        self.ok = ok
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok}


class Raising(Listener):
    def phase_started(self, event: PhaseStarted) -> None:
        raise RuntimeError("view broke")

    def progressed(self, event: Progressed) -> None:
        raise RuntimeError("view broke")

    def message(self, event: Message) -> None:
        raise RuntimeError("view broke")

    def finished(self, event: StepFinished) -> None:
        raise RuntimeError("view broke")


def test_progress_is_clamped_never_goes_back_and_restarts_per_phase_and_item() -> None:
    recorder = Recorder()
    report = Reporter(recorder, "DF2A00001", "keys")
    report.phase("inject", "Injecting keys", "pin")
    for done, total in ((50, 100), (30, 100), (150, 100), (-5, 100)):
        report.progress(done, total, "pin")
    report.progress(7, 0, "pin")  # unknown total: still never backwards
    report.progress(2, 10, "mac")  # another item starts again from zero
    report.phase("verify", "Verifying keys")
    report.progress(1, 3, counts="items")
    seen = [(e.done, e.total, e.item, e.phase, e.counts) for e in recorder.of(Progressed)]
    assert seen == [
        (50, 100, "pin", "inject", "bytes"),
        (50, 100, "pin", "inject", "bytes"),
        (100, 100, "pin", "inject", "bytes"),
        (100, 100, "pin", "inject", "bytes"),
        (100, 0, "pin", "inject", "bytes"),
        (2, 10, "mac", "inject", "bytes"),
        (1, 3, None, "verify", "items"),
    ]
    assert all(e.unit == "DF2A00001" and e.step == "keys" for e in recorder.events)


def send_every_kind(report: Reporter) -> None:
    report.phase("calibrate", "Calibrating")
    report.progress_callback("depth")(1, 2)
    report.message("hello")
    report.finished(Result(True))


def test_a_raising_listener_is_logged_and_never_breaks_the_step_or_the_other_views(
    caplog: pytest.LogCaptureFixture,
) -> None:
    send_every_kind(Reporter(Raising(), "DF2A00001", "camera"))
    assert sum("a listener of step camera failed" in r.getMessage() for r in caplog.records) == 4
    recorder = Recorder()
    send_every_kind(Reporter(Fanout([Raising(), recorder]), "DF2A00001", "camera"))
    assert [type(e) for e in recorder.events] == [PhaseStarted, Progressed, Message, StepFinished]
    send_every_kind(Reporter(None, "DF2A00001", "camera"))  # no listener: nothing to do


def rich_bars(verbose: bool = True, **options: Any) -> tuple[Progress, RichBars, io.StringIO]:
    sink = io.StringIO()
    progress = Progress(console=Console(file=sink, width=200, force_terminal=False), auto_refresh=False)
    return progress, RichBars(progress, verbose=verbose, **options), sink


def test_the_cli_bars_show_every_kind_of_event_for_any_step() -> None:
    progress, bars, sink = rich_bars(outcome=lambda result: "enrolled" if result.ok else "refused")
    first = Reporter(bars, "DF2A00001", "enrollment")
    second = Reporter(bars, "DF2A00002", "enrollment")
    first.phase("capture", "Capturing faces")
    second.phase("capture", "Capturing faces")
    first.progress(3, 5, counts="items")
    first.message("look at the camera")
    second.finished(Result(False, DeviceNotFound(serial="DF2A00002")))
    one, two = progress.tasks  # one bar per unit, made on its first event
    assert "DF2A00001" in one.description and "DF2A00002" in two.description
    assert "Capturing faces" in one.description
    assert (one.completed, one.total, one.fields["counts"]) == (3, 5, "items")
    assert "DF2A00001: look at the camera" in sink.getvalue()
    assert "✗" in two.description and "refused" in two.description and two.completed == two.total == 1
    first.finished(Result(True))
    assert "✓" in one.description and "enrolled" in one.description


def test_a_phase_without_a_count_pulses_and_quiet_bars_print_no_messages() -> None:
    progress, bars, sink = rich_bars(verbose=False)
    report = Reporter(bars, "DF2A00001", "flash")
    report.phase("write", "Writing boot", "boot")
    report.progress(512, 1024, "boot")
    report.phase("switch", "Switching to the new slot")
    report.message("(bootloader) hello")
    [task] = progress.tasks
    assert task.total is None and task.completed == 0 and task.fields["counts"] is None
    assert "hello" not in sink.getvalue()


def test_the_transfer_bar_is_the_same_listener_with_one_unnamed_unit() -> None:
    sink = io.StringIO()
    with transfer_bar(Console(file=sink, width=120, force_terminal=True), "Fetching the log") as update:
        update(100, 0)  # the size is not known yet
        update(400, 1000)
        update(300, 1000)  # a retried chunk does not move the bar back
    assert "Fetching the log" in sink.getvalue() and "0.4/1.0 kB" in sink.getvalue()


# --- output that fits where it goes -----------------------------------------------------------------------


LONG_SERIAL = "DF2A" + "0123456789" * 6
LONG_ERROR = DeviceNotFound(serial=LONG_SERIAL)


@click.command()
def summary() -> None:
    shown = table("Unit", "Result", "Problem", title="Firmware flash")
    shown.add_row(LONG_SERIAL, "succeeded", str(LONG_ERROR) + "\n" + (LONG_ERROR.remedy_text or ""))
    out().print(shown)


def test_a_piped_table_keeps_every_serial_result_and_error_whole() -> None:
    result = CliRunner().invoke(summary, env={"COLUMNS": "80"}, catch_exceptions=False)
    assert result.exit_code == 0
    assert LONG_SERIAL in result.stdout and "succeeded" in result.stdout and "…" not in result.stdout
    assert str(LONG_ERROR) in result.stdout and (LONG_ERROR.remedy_text or "-") in result.stdout


def test_one_type_catches_a_lost_unit_or_a_timeout_on_every_link() -> None:
    from terminal import errors
    from terminal.fastboot import errors as fastboot

    gone = [errors.TransportDisconnected(path="serial:/dev/ttyACM0"), fastboot.FastbootDisconnected(target="tcp:x:1")]
    late = [
        errors.TransportTimeout(path="serial:/dev/ttyACM0"),
        fastboot.FastbootTimeout(target="tcp:x:1", command="getvar", seconds=10),
    ]
    assert all(isinstance(e, errors.UnitGone) and not isinstance(e, errors.UnitTimeout) for e in gone)
    assert all(isinstance(e, errors.UnitTimeout) and not isinstance(e, errors.UnitGone) for e in late)
    wrong = fastboot.WrongUnit(target="tcp:x:1", actual="B", expected="A")
    assert isinstance(wrong, errors.WrongUnit) and "B" in str(wrong)
