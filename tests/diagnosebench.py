"""One provisioned simulated unit for the diagnosis tests (tests/test_diagnose.py, tests/test_cli_diagnose.py).

Quick and through the station's own paths: a small signed bundle flashed and the payment keys injected by a
recipe run (so the ledger holds the flash step's image hashes and the injection), and the unit's ground truth
stored as its calibration.  A support engineer with a password and a session token for the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from camerabench import truth_blob
from conftest import SimHandle
from helpers import demo_tool
from keybench import BDK_LABEL, OPERATOR, KeyBench, software_store

from provisioning import operators as ops
from provisioning.operators import OperatorSession
from provisioning.pipeline import run_recipe
from provisioning.recipes import load_recipe
from provisioning.steps import Resources
from simulator import launcher
from terminal.camera import blob_checksum
from terminal.camera_unit import CameraUnit
from terminal.diagnostics import read_slot_hashes
from terminal.secure_element import SecureElement

SUPPORT = OperatorSession("sue", "support")
SUPPORT_PASSWORD = "sue-Secret-8731"


@dataclass
class Provisioned:
    sim: SimHandle
    bench: KeyBench
    serial: str
    bundle: Path
    root: Path
    token: str

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.root / 'ledger.db'}"

    def resources(self, session: OperatorSession = SUPPORT) -> Resources:
        return Resources(station=self.bench.station, session=session, store=self.bench.store, roots=self.bench.roots)

    def snapshot(self) -> dict[str, Any]:
        """What a diagnosis must not change: INFO, the key status, the slots' hashes and the calibration blob."""
        with self.bench.station.connect(self.serial) as client:
            return {
                "info": client.info(),
                "keys": SecureElement(client).status(),
                "hashes": read_slot_hashes(client),
                "calibration": CameraUnit(client).read_calibration(),
            }


PREP_RECIPE = """name = "bench-prep"
description = "Flash and key a unit for the diagnosis tests"
read_only = false

[[step]]
name = "flash"
bundle = "bundle.zip"

[[step]]
name = "inject"
bdk = "{bdk}"
"""


@contextmanager
def provisioned_unit(root: Path) -> Iterator[Provisioned]:
    """A simulator with one df2 unit in ``root``, flashed, keyed and calibrated; stopped on exit."""
    with provisioned_units(root, 1) as [unit]:
        yield unit


@contextmanager
def provisioned_units(root: Path, count: int) -> Iterator[list[Provisioned]]:
    """A simulator with ``count`` df2 units in ``root``, each flashed, keyed and calibrated by one recipe run
    (a test that damages a unit takes one of its own); stopped on exit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NAIAD_CONFIG_DIR", str(root / "config"))
        patch.setenv("NAIAD_DATA_DIR", str(root / "data"))
        patch.setenv("NAIAD_LANG", "en")
        patch.setattr(ops, "SCRYPT_N", 2**8)
        state = root / "sim"
        launcher.start_detached(state, count, ["df2"] * count, {})
        sim = SimHandle(state)
        try:
            bench = KeyBench.open(state, f"sqlite:///{root / 'ledger.db'}", software_store(root))
            serials = sim.serials()
            ops.add_operator(bench.ledger, OperatorSession("root", "admin"), SUPPORT.operator, SUPPORT.role,
                             SUPPORT_PASSWORD)  # fmt: skip
            token = ops.open_session(bench.ledger, SUPPORT.operator, SUPPORT_PASSWORD)[1]
            bundle = Path(demo_tool().make_demo_bundle(root / "bundle.zip", version="2.0.0").path)
            (root / "prep.toml").write_text(PREP_RECIPE.format(bdk=BDK_LABEL), encoding="utf-8")
            bench.authorise(serials)
            units = [Provisioned(sim, bench, serial, bundle, root, token) for serial in serials]
            batch = run_recipe(load_recipe(str(root / "prep.toml")), serials, units[0].resources(OPERATOR))
            assert all(u.ok for u in batch.units), batch.as_dict()
            for serial in serials:
                blob = truth_blob(serial, sim.call("truth", serial=serial)).encode()
                with bench.station.connect(serial) as client:
                    CameraUnit(client).write_calibration(blob)
                bench.ledger.record_calibration(serial, blob_checksum(blob), {})
            yield units
            bench.close()
        finally:
            launcher.stop(state)
