"""Console responsiveness: the GUI event loop's latency while the bench runs ``distributor-bulk`` on simulated units.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_console_latency.py [--units 16] [--calibration-views N]
        [--firmware-mib 8] [--interval-ms 10] [--sandbox-in-process] [--diagnose]

A real :class:`console.bench_view.BenchView` (offscreen QApplication, 1280x800, shown, so cards are laid out and
painted) on a :class:`console.demo_world.DemoWorld` of ``--units`` simulated units, the demo's operator logged in
and the world's environment in ``os.environ`` (the key store's passphrase: no question asked), the bus watched by
the console's own :class:`~console.workers.DeviceWatcher`.  The sandbox platform runs in its own process
(``naiad platform serve``), as a station sees the real platform, remote; ``--sandbox-in-process`` puts it in a
thread of this process as the demo does, where its Python competes with the GUI thread.  The bench chooses
``distributor-bulk``, fills its site settings from the world, selects all and starts, exactly as an operator would.

The probe: a precise QTimer every ``--interval-ms`` on the GUI thread records how late each tick fires (its
distance from the previous tick, minus the interval); a tick that cannot fire because the loop is busy is late by
the stall.  From Start to the batch summary: p50, p99 and max lateness, the ticks later than 50 ms, the run's wall
time and units per hour.  ``--diagnose`` adds a watchdog thread that samples the GUI thread's Python stack while
the loop is stalled over 50 ms, and prints the places seen most (what held the loop, or where it waited for the
GIL), and the CPU time of this process's threads by kind (the GUI thread, the units' workers, the pool's, the
sandbox's...): what competes with the GUI thread for the interpreter.  Nothing is asserted: the goal (no stall
over 50 ms) is for the reader to compare.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL_MS = 50.0


class Probe:
    """Lateness of a periodic GUI-thread timer, and (``diagnose``) the GUI thread's stacks while it is stalled."""

    def __init__(self, interval_ms: int, diagnose: bool) -> None:
        from PyQt6.QtCore import Qt, QTimer

        self.interval = interval_ms / 1000
        self.late_ms: list[float] = []
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gui_thread = threading.get_ident()
        self.stalls: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, daemon=True) if diagnose else None
        self.cpu: dict[int, tuple[str, float]] = {}  # native thread id: (kind, CPU seconds seen last)

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()
        if self._watchdog is not None:
            self._watchdog.start()

    def stop(self) -> None:
        self.timer.stop()
        self._stop.set()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.late_ms.append(max(0.0, (now - self.last - self.interval) * 1000))
        self.last = now

    def _watch(self) -> None:
        last_cpu = 0.0
        while not self._stop.wait(0.005):
            if time.perf_counter() - last_cpu > 2.0:  # cheap: the sampler, too, needs the GIL
                last_cpu = time.perf_counter()
                self._sample_cpu()
            if (time.perf_counter() - self.last) * 1000 > GOAL_MS:
                frame = sys._current_frames().get(self.gui_thread)
                if frame is not None:
                    where = traceback.extract_stack(frame)[-6:]
                    self.stalls[
                        " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(where))
                    ] += 1

    def _sample_cpu(self) -> None:
        """Each live thread's CPU time so far (Linux: /proc/self/task), named by its Python name or its own."""
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        gui = threading.main_thread().native_id
        tick = os.sysconf("SC_CLK_TCK")
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as stat, open(f"/proc/self/task/{task}/comm") as own:
                    fields, comm = stat.read().rsplit(")", 1)[1].split(), own.read().strip()
            except OSError:
                continue
            tid = int(task)
            name = "GUI thread" if tid == gui else names.get(tid, comm)
            self.cpu[tid] = (thread_kind(name), (int(fields[11]) + int(fields[12])) / tick)

    def cpu_by_kind(self) -> list[tuple[str, float, int]]:
        totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
        for kind, seconds in self.cpu.values():
            totals[kind][0] += seconds
            totals[kind][1] += 1
        return sorted(((k, v[0], int(v[1])) for k, v in totals.items()), key=lambda row: -row[1])


def thread_kind(name: str) -> str:
    """A thread's name without its number (``unit_3`` -> ``unit``)."""
    return name.rstrip("0123456789").rstrip("_- ") or name


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--calibration-views", type=int, default=None, help="calibration poses (default: the step's)")
    parser.add_argument("--firmware-mib", type=int, default=8)
    parser.add_argument("--interval-ms", type=int, default=10)
    parser.add_argument(
        "--sandbox-in-process", action="store_true", help="the sandbox platform in a thread of this process"
    )
    parser.add_argument(
        "--sim-nice", type=int, default=0, help="run the simulator (the units' own work) at this niceness (Linux)"
    )
    parser.add_argument("--diagnose", action="store_true", help="sample the GUI thread's stack during stalls")
    args = parser.parse_args(argv)

    from PyQt6.QtCore import QEventLoop
    from PyQt6.QtWidgets import QApplication

    found = QApplication.instance()
    app = found if isinstance(found, QApplication) else QApplication([])
    from console.bench_view import BenchView
    from console.console_settings import ConsoleSettings
    from console.context import ConsoleContext
    from console.demo_world import DemoWorld
    from console.operator_login import OperatorLogin
    from console.style import stylesheet
    from console.unit_card import Bench
    from console.workers import DeviceWatcher, StationProvider, Workers

    app.setStyleSheet(stylesheet())
    views = args.calibration_views
    print(
        f"distributor-bulk on {args.units} simulated units in the console's bench view: {args.firmware_mib} MiB "
        f"firmware, {views or 'default'} calibration views, probe every {args.interval_ms} ms; {os.cpu_count()} cores; "
        f"sandbox platform {'in this process' if args.sandbox_in_process else 'in its own process'}; "
        f"simulator at nice {args.sim_nice}"
    )
    with tempfile.TemporaryDirectory(prefix="naiad-bench-latency-") as folder:
        where = Path(folder)
        with DemoWorld(
            where / "world",
            args.units,
            firmware_mib=args.firmware_mib,
            calibration_views=views,
            sandbox_process=not args.sandbox_in_process,
        ) as world:
            os.environ.update(world.env("operator"))
            if args.sim_nice:  # the simulated units' own work shares these cores, as real units' does not
                pid = int(world.simulator("status")["pid"])
                for task in os.listdir(f"/proc/{pid}/task"):  # Linux: each thread has its own
                    os.setpriority(os.PRIO_PROCESS, int(task), args.sim_nice)
            workers = Workers()
            bench = Bench()
            stations = StationProvider(lambda: world.station("operator"))
            operator = OperatorLogin(workers, stations)
            settings = ConsoleSettings(reports_dir=str(where / "reports"))
            context = ConsoleContext(world.wiring, workers, stations, operator, bench, settings, where / "console.json")
            view = BenchView(context)
            view.resize(1280, 800)
            view.show()
            watcher = DeviceWatcher(workers, world.wiring.discovery)
            watcher.device_added.connect(bench.device_added)
            watcher.device_removed.connect(bench.device_removed)
            watcher.start()
            operator.session = world.session("operator")
            operator.changed.emit()
            deadline = time.monotonic() + 60
            while len(bench.attached()) < args.units and time.monotonic() < deadline:
                app.processEvents()
                time.sleep(0.01)
            view.choose("distributor-bulk")
            view.form.set_values(world.overrides("distributor-bulk"))
            bench.select_all()
            probe = Probe(args.interval_ms, args.diagnose)
            probe.start()
            started = time.monotonic()
            job = view.start()
            if job is None:
                raise SystemExit(f"the bench did not start: {view.recipe_error.text()}")
            loop = QEventLoop()
            job.succeeded.connect(lambda _outcome: loop.quit())  # after the view's own slots: it has the outcome
            job.failed.connect(lambda _error: loop.quit())
            loop.exec()
            wall = time.monotonic() - started
            probe.stop()
            watcher.stop()
            workers.shutdown(60_000)
            outcome = view.outcome
            if outcome is None:
                raise SystemExit(f"the run was refused: {view.summary.title.text()}")
            done = sum(1 for u in outcome.batch.units if u.result == "succeeded")
            late = probe.late_ms
            over = [v for v in late if v > GOAL_MS]
            print(
                f"event loop lateness over {len(late)} ticks: p50 {percentile(late, 0.5):.1f} ms, "
                f"p99 {percentile(late, 0.99):.1f} ms, max stall {max(late, default=0):.1f} ms "
                f"(mean {statistics.fmean(late) if late else 0:.1f} ms); {len(over)} ticks over {GOAL_MS:.0f} ms"
            )
            print(
                f"run: {done} of {args.units} units succeeded in {wall:.1f} s = {done / wall * 3600:.0f} units/hour "
                f"(reconciliation: {'ok' if outcome.batch.reconciliation.ok else 'NOT ok'})"
            )
            for unit in outcome.batch.units:
                if unit.result == "failed":
                    print(f"  failed: {unit.serial}: {unit.error}")
            print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
            if probe.cpu:
                used = resource.getrusage(resource.RUSAGE_SELF)
                print(f"CPU of this process: {used.ru_utime + used.ru_stime:.1f} s; by thread kind (threads):")
                for kind, seconds, count in probe.cpu_by_kind():
                    print(f"  {seconds:7.1f} s  {kind} ({count})")
            if probe.stalls:
                print("GUI thread during stalls (samples, innermost first):")
                for place, count in probe.stalls.most_common(12):
                    print(f"  {count:5d}  {place}")


if __name__ == "__main__":
    main()
