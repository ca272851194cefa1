"""No unit is ever bricked: random unplugs and power cuts during flashing, then a re-run that must finish.

Four simulated units flash in parallel, round after round, each round a new bundle version.  Every unit
gets one random moment per round (seeded: set NAIAD_FLASH_SEED to replay a failure): after its Nth flash
event plus a random delay, power is cut or the cable pulled (and put back shortly after, as a person
would), or an unplug is armed to fire after a random number of bytes on the unit's links.  Afterwards
every unit must boot (run mode, old or new slot, ``info`` answering), and a second flash must finish on
the new version, skipping every partition the interrupted flash had verified.  The test runs until 50
moments have really cut a unit.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import demo_tool

from console.composition import Wiring
from provisioning import flashing
from provisioning.flashing import FlashPhase, FlashResult, flash_units
from provisioning.station import Station
from terminal.events import Event, Listener, Message, PhaseStarted, Progressed, StepFinished

pytestmark = pytest.mark.slow(seconds=50)  # 50 cuts over rounds of 4 units flashing: 30-85 s

SEED = int(os.environ.get("NAIAD_FLASH_SEED", "20250611"))
MOMENTS = 50
UNITS = 4
MAX_ROUNDS = 40
EVENTS_PER_FLASH = 18  # phases, byte progress and messages of one unit's flash of the bundle below
MiB = 1 << 20


@dataclass
class Moment:
    """One planned interruption of one unit's flash."""

    serial: str
    kind: str  # "power_cut", "unplug" or "unplug_bytes"
    at_event: int  # the cut follows the unit's Nth event of the flash
    delay: float  # seconds after that event
    restore_after: float  # seconds until power or cable is back
    nbytes: int  # unplug_bytes: bytes that may still cross the unit's links
    fired: bool = False
    phase: str | None = None  # the phase the unit was in when the moment came
    finished: threading.Event = field(default_factory=threading.Event)


class Cutter(Listener):
    """Watches the flash events and interrupts each unit at its moment, on a thread of its own."""

    def __init__(self, sim: Any, moments: list[Moment]) -> None:
        self.sim = sim
        self.moments = {m.serial: m for m in moments}
        self.counts: Counter[str] = Counter()
        self.phases: dict[str, str] = {}
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def phase_started(self, event: PhaseStarted) -> None:
        self.phases[event.unit] = event.phase
        self._count(event)

    def progressed(self, event: Progressed) -> None:
        self._count(event)

    def message(self, event: Message) -> None:
        self._count(event)

    def finished(self, event: StepFinished) -> None:
        self.moments[event.unit].finished.set()

    def _count(self, event: Event) -> None:
        moment = self.moments[event.unit]
        phase = self.phases.get(event.unit)
        if phase == FlashPhase.CHECK:
            return  # still vetting the bundle: nothing has happened to the unit yet
        with self._lock:
            self.counts[event.unit] += 1
            if self.counts[event.unit] != moment.at_event:
                return
            moment.phase = phase
            thread = threading.Thread(target=self._cut, args=(moment,), name=f"cut {moment.serial}")
            self.threads.append(thread)
        thread.start()

    def _cut(self, moment: Moment) -> None:
        time.sleep(moment.delay)
        if moment.kind == "unplug_bytes":
            self.sim.call("faults", serial=moment.serial, unplug_after_bytes=moment.nbytes)
            while not moment.finished.is_set():
                if not self.sim.terminal(moment.serial)["plugged"]:
                    moment.fired = True
                    time.sleep(moment.restore_after)
                    self.sim.call("replug", serial=moment.serial)
                    return
                time.sleep(0.02)
            return
        self.sim.call(moment.kind, serial=moment.serial)
        moment.fired = True
        time.sleep(moment.restore_after)
        if moment.kind == "power_cut":
            self.sim.call("power_on", serial=moment.serial, mode="run")
        else:
            self.sim.call("replug", serial=moment.serial)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=30)


def plan_moments(rng: random.Random, serials: list[str]) -> list[Moment]:
    moments = []
    for serial in serials:
        kind = rng.choices(["power_cut", "unplug", "unplug_bytes"], weights=[4, 3, 3])[0]
        moments.append(
            Moment(
                serial,
                kind,
                at_event=rng.randint(1, EVENTS_PER_FLASH),
                delay=rng.uniform(0, 0.03),
                restore_after=rng.uniform(0.05, 0.3),
                nbytes=rng.randint(0, 6 * MiB),
            )
        )
    return moments


def settle(sim: Any, station: Station, moment: Moment) -> None:
    """Clear an unfired fault, put power and cable back, and have the unit boot: it must come up in run mode."""
    serial = moment.serial
    sim.call("faults", serial=serial, unplug_after_bytes=None)
    status = sim.terminal(serial)
    if not status["plugged"]:
        moment.fired = moment.fired or moment.kind == "unplug_bytes"
        sim.call("replug", serial=serial)
    if status["mode"] == "off":
        sim.call("power_on", serial=serial, mode="run")
    if sim.terminal(serial)["mode"] == "bootloader":
        sim.call("reboot", serial=serial, mode="run")  # power-cycle it: does it boot?
    station.wait_for(serial, "run", 15)


def test_random_cuts_during_flashing_never_brick_a_unit(
    sim_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a unit cut while rebooting comes back in the other mode: do not wait a real unit's minute for it
    monkeypatch.setattr(flashing, "REBOOT_TIMEOUT", 3.0)
    monkeypatch.setattr(flashing, "BOOT_TIMEOUT", 10.0)
    monkeypatch.setattr(flashing, "RECOVER_TIMEOUT", 5.0)
    tool = demo_tool()
    rng = random.Random(SEED)
    sim = sim_factory(terminals=UNITS, models=["df2"])
    serials = sim.serials()
    fired: list[Moment] = []
    previous = {serial: "1.0.0" for serial in serials}
    with Wiring(sim.state_dir).station() as station:
        for round_ in range(MAX_ROUNDS):
            if len(fired) >= MOMENTS:
                break
            version = f"5.{round_}"
            where = f"seed {SEED}, round {round_}"
            bundle = tool.make_demo_bundle(
                tmp_path / f"{version}.zip", version=version, system_size=8 * MiB, key_dir=tmp_path / "key"
            ).path
            moments = plan_moments(rng, serials)
            cutter = Cutter(sim, moments)
            first = flash_units(station, bundle, serials, cutter)
            cutter.join()
            for moment, result in zip(moments, first, strict=True):
                settle(sim, station, moment)
                info = station.info(moment.serial)
                running = info["slots"][info["active_slot"]]["version"]
                assert running in (previous[moment.serial], version), f"{where}: {moment} left {info}"
                assert info["slots"][info["active_slot"]]["successful"], f"{where}: {moment} left {info}"
                if moment.fired:
                    fired.append(moment)
                assert result.ok or moment.fired, f"{where}: {moment.serial} failed uncut: {result.error}"
            again = flash_units(station, bundle, serials)
            for before, after in zip(first, again, strict=True):
                assert_finished(before, after, version, where)
                previous[after.serial] = version
    assert len(fired) >= MOMENTS, f"seed {SEED}: only {len(fired)} moments cut a unit in {MAX_ROUNDS} rounds"
    kinds = Counter(m.kind for m in fired)
    assert set(kinds) == {"power_cut", "unplug", "unplug_bytes"}, kinds
    assert any(m.phase == FlashPhase.WRITE for m in fired), [m.phase for m in fired]


def assert_finished(before: FlashResult, after: FlashResult, version: str, where: str) -> None:
    assert after.ok, f"{where}: the re-run of {after.serial} failed: {after.error}"
    assert after.version == version, f"{where}: {after}"
    assert set(before.written) <= set(after.skipped), f"{where}: verified partitions were written again: {after}"
