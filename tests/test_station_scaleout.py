"""Two stations on one PostgreSQL ledger over one pool of 40 simulated units, both told ``--all``.

The recipe here is ``distributor-bulk`` without its camera steps (tests/stationcheck.py's ``quick-bulk``: flash,
inject, register-inventory, label): 40 full calibrations take many minutes of CPU on the suite's 2 cores, far over
its time budget, and they add nothing to what this test proves (claims, Initial Key IDs and registrations across
stations sharing one ledger).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from stationcheck import (
    QUICK_BULK_NAME,
    StationProcess,
    provisioned_once_problems,
    succeeded_runs,
    verify_problems,
    write_quick_bulk,
)

pytestmark = pytest.mark.slow(seconds=40)  # two station processes over 40 units: about 40 s

UNITS = 40
RECIPE_NAME = QUICK_BULK_NAME


@pytest.mark.timeout(600)
def test_two_stations_share_forty_units_each_provisioned_once(postgres_url: str, tmp_path: Path) -> None:
    from console.demo_world import DemoWorld

    with DemoWorld(tmp_path / "world", UNITS, firmware_mib=1, ledger_url=postgres_url) as world:
        recipe = write_quick_bulk(tmp_path / "quick-bulk.toml", world.bundle_path, world.bdk_label)
        serials = world.serials
        started = time.monotonic()
        stations = [
            StationProcess.start(
                ["provision", "--recipe", str(recipe), "--all", "--json"],
                {**world.env(), "NAIAD_STATION": name},
                tmp_path / "logs",
                name,
            )
            for name in ("line-1", "line-2")
        ]
        try:
            statuses = [station.wait(300) for station in stations]
        finally:
            for station in stations:
                if station.running():
                    station.kill()
        seconds = time.monotonic() - started
        assert statuses == [0, 0], [s.tail() for s in stations]
        batches = {name: station.json() for name, station in zip(("line-1", "line-2"), stations, strict=True)}

        with world.ledger("audit") as ledger:
            problems = provisioned_once_problems(
                ledger,
                serials,
                RECIPE_NAME,
                sim_dir=world.sim_dir,
                platform_devices=world.platform_view("devices"),
                supplier_id=world.supplier_id,
            )
            by_station = {serial: runs[0].station for serial, runs in succeeded_runs(ledger, RECIPE_NAME).items()}
            injections = ledger.injections()
            line = ledger.reconcile(serials)
        assert problems == []
        assert verify_problems(world.env()) == []

        # Every unit was provisioned by exactly one of the two stations, and each station's batch says which.
        assert sorted(by_station) == sorted(serials)
        reported = {
            u["serial"]: name for name, batch in batches.items() for u in batch["units"] if u["result"] == "succeeded"
        }
        assert reported == by_station
        for name, batch in batches.items():
            results = Counter(u["result"] for u in batch["units"])
            assert set(results) <= {"succeeded", "already-done", "held-elsewhere"}, (name, results)
            assert sum(results.values()) == UNITS
            counts = {result: n for result, n in batch["reconciliation"]["counts"].items() if n}
            assert counts == dict(results), batch["reconciliation"]
            # each station reconciles the units it worked: the other station's may still be half keyed then
            worked = results["succeeded"] + results["already-done"]
            assert batch["reconciliation"]["injected"] == worked and not batch["reconciliation"]["unconfirmed"]
        assert line.ok and line.injected == UNITS, line.as_dict()  # and the whole line, once both are done
        assert Counter(by_station.values()).keys() == {"line-1", "line-2"}, "one station did all the work"
        assert {i.serial: i.station for i in injections} == by_station
        print(f"scale-out: {UNITS} units, 2 stations, {seconds:.1f} s, per station {Counter(by_station.values())}")
