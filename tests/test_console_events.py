"""The console's listener: step events from pool threads become typed Qt signals on the GUI thread."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from PyQt6.QtCore import QThread
from PyQt6.QtWidgets import QApplication

from console.workers import Job, Workers
from terminal.events import Listener, Message, PhaseStarted, Progressed, Reporter, StepFinished

WAIT_MS = 5000


class Done:
    ok = True
    error = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True}


def test_every_kind_of_event_reaches_its_signal_on_the_gui_thread_before_the_result(qtbot: Any) -> None:
    workers = Workers()
    seen: list[tuple[str, object, bool]] = []
    gui = QApplication.instance().thread()  # type: ignore[union-attr]

    def note(name: str) -> Any:
        return lambda value: seen.append((name, value, QThread.currentThread() is gui))

    def work(listener: Listener) -> str:
        report = Reporter(listener, "DF2A00001", "calibration")
        report.phase("depth", "Calibrating the depth camera", "view 1")
        report.progress(1, 4, "view 1", counts="items")
        report.message("hold the target still")
        report.finished(Done())
        return "calibrated"

    job = Job(work, ("DF2A00001",), "calibration")
    for name in ("phase_started", "progressed", "message", "step_finished", "succeeded"):
        getattr(job, name).connect(note(name))
    workers.start(job)
    assert workers.busy("DF2A00001")
    qtbot.waitUntil(lambda: len(seen) == 5, timeout=WAIT_MS)
    assert [name for name, _value, _gui in seen] == [
        "phase_started",
        "progressed",
        "message",
        "step_finished",
        "succeeded",
    ]
    assert all(on_gui for _name, _value, on_gui in seen)
    kinds = [type(value) for _name, value, _gui in seen[:4]]
    assert kinds == [PhaseStarted, Progressed, Message, StepFinished] and seen[4][1] == "calibrated"
    assert not workers.busy("DF2A00001") and workers.shutdown()


def test_a_unit_is_free_once_its_step_finished_although_the_job_goes_on(qtbot: Any) -> None:
    workers = Workers()
    release = threading.Event()

    def work(listener: Listener) -> None:
        Reporter(listener, "A", "flash").finished(Done())
        release.wait(5)  # unit B is still being flashed

    job = workers.start(Job(work, ("A", "B"), "flash"))
    qtbot.waitUntil(lambda: not workers.busy("A"), timeout=WAIT_MS)
    assert workers.busy("B")
    with qtbot.waitSignal(job.succeeded, timeout=WAIT_MS):
        release.set()
    assert workers.busy_units() == set() and workers.shutdown()


def test_fine_progress_is_coalesced_so_many_units_cannot_flood_the_gui(qtbot: Any) -> None:
    workers = Workers()
    shown: list[Progressed] = []
    total = 1 << 20

    def work(listener: Listener) -> None:
        report = Reporter(listener, "DF2A00001", "flash")
        report.phase("write", "Writing system", "system")
        for done in range(0, total + 1, 64):
            report.progress(done, total, "system")

    job = Job(work, (), "flash")
    job.progressed.connect(shown.append)
    with qtbot.waitSignal(job.succeeded, timeout=WAIT_MS * 4):
        workers.start(job)
    assert len(shown) <= 1001 and shown[-1].done == total
    assert all(a.done <= b.done for a, b in itertools.pairwise(shown))
    assert workers.shutdown()
