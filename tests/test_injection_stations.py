"""Two stations sharing one PostgreSQL ledger, each injecting its own 20 units at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.timeout(600)
def test_two_stations_on_one_postgresql_ledger_never_share_an_initial_key_id(
    sim_factory: Any, postgres_url: str, tmp_path: Path
) -> None:
    from keybench import prepare_ledger

    from provisioning.ledger import Ledger

    sims = [sim_factory(terminals=20, name=f"sim-{i}") for i in (1, 2)]
    with Ledger.open(postgres_url, station="setup") as ledger:
        prepare_ledger(ledger)  # the line's operators and BDK, before its two stations start
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    env.pop("NAIAD_SIM", None)
    for i in (1, 2):
        (tmp_path / f"s{i}").mkdir()
    stations = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "keybench.py"),
                str(sim.state_dir),
                postgres_url,
                str(tmp_path / f"s{i}"),
                f"line-{i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i, sim in enumerate(sims, 1)
    ]
    runs = []
    for station in stations:
        out, err = station.communicate(timeout=540)
        assert station.returncode == 0, err[-2000:]
        runs.append(json.loads(out.strip().splitlines()[-1]))
    results = [r for run in runs for r in run["results"]]
    assert len(results) == 40 and all(r["ok"] for r in results), [r for r in results if not r["ok"]][:2]
    ids = [r["initial_key_id"] for r in results]
    assert len(set(ids)) == 40
    with Ledger.open(postgres_url, station="audit") as ledger:
        recorded = ledger.injections()
        assert sorted(r.initial_key_id.hex().upper() for r in recorded) == sorted(ids)
        assert {r.station for r in recorded} == {"line-1", "line-2"}
        assert ledger.verify().ok
