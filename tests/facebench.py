"""A face-pay bench for the end-to-end tests and bench/bench_facecheck.py: a simulated unit with platform
access, a running sandbox, and a station whose outbox (its key known to the sandbox) pays there.

The unit is in the station app's inventory and holds the sandbox's terminal app credential (``platform``
control command), so its face-pay app opens face sessions itself; the simulator's scenes present the faces.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from camerabench import truth_blob
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from console.composition import Wiring
from enrollment.client import PlatformClient
from enrollment.config import PlatformConfig
from enrollment.gateway import Signer, rsa_signer
from enrollment.sandbox.server import Sandbox
from provisioning.facepay_check import AnalyserFactory, default_analyser, run_facepay_check
from provisioning.facepay_steps import FacePayCheckResult, Presenter
from provisioning.ledger import Ledger
from provisioning.operators import OperatorSession
from provisioning.outbox import Outbox
from provisioning.registration import UnitToRegister, register_inventory
from provisioning.station import Station
from simulator import launcher
from simulator.control import SimControl
from terminal.camera_unit import CameraUnit
from terminal.events import Listener

INSTALLER = OperatorSession("ina", "installer")
OPERATOR = OperatorSession("otto", "operator")


@dataclass
class FaceBench:
    sandbox: Sandbox
    config: PlatformConfig
    client: PlatformClient
    signer: Signer
    ca_file: Path
    sim_dir: Path
    station: Station
    outbox: Outbox
    serial: str
    analyser: AnalyserFactory | None = None

    @classmethod
    @contextmanager
    def open(cls, where: Path, *, calibrated: bool = False) -> Iterator[FaceBench]:
        """Start a simulator (one Dragonfly 2) and a sandbox under ``where``; stop both at the end.  With
        ``calibrated`` the unit stores its own ground truth as its calibration (else the station uses the
        model's nominal one)."""
        sim_dir = where / "sim"
        launcher.start_detached(sim_dir, 1, ["df2"])
        try:
            with Sandbox.start(where / "sandbox.sqlite") as sandbox:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                public = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                config = sandbox.station_config()
                sandbox.set_app_key(config.app_id, public.decode())
                ca_file = where / "ca.pem"
                ca_file.write_text(sandbox.ca_certificate, encoding="utf-8")
                SimControl(sim_dir).call("platform", config=sandbox.terminal_config())
                signer = rsa_signer(key)
                with (
                    PlatformClient(config, signer, attempts=2, sleep=lambda seconds: None) as client,
                    Ledger.open(f"sqlite:///{where / 'ledger.sqlite'}", station="bench-1") as ledger,
                ):
                    for session in (INSTALLER, OPERATOR):
                        ledger.register_operator(session.operator, session.role)
                    station = Station(Wiring(sim_dir).discovery(), ledger=ledger)
                    [device] = station.devices()
                    if calibrated:
                        store_truth(sim_dir, device.serial, device.model)
                    outbox = Outbox(ledger, client)
                    unit = UnitToRegister(device.serial, device.model)
                    [registered] = register_inventory(outbox, config.supplier_id, [unit], session=OPERATOR)
                    assert registered.ok, registered.as_dict()
                    yield cls(sandbox, config, client, signer, ca_file, sim_dir, station, outbox, device.serial)
        finally:
            launcher.stop(sim_dir)

    def check(
        self,
        presentation: str = "live",
        listener: Listener | None = None,
        *,
        presenter: Presenter | None = None,
        outbox: Outbox | None = None,
        analyser: AnalyserFactory | None = None,
        **options: Any,
    ) -> FacePayCheckResult:
        """The whole check of the unit; by default with the simulator's scene for ``presentation``, the station's
        own analyser (its models loaded once per bench) and the unit's own face-pay app."""
        if analyser is None:
            self.analyser = analyser = self.analyser or default_analyser()
        return run_facepay_check(
            self.station,
            outbox or self.outbox,
            self.serial,
            presenter or Wiring(self.sim_dir).presenter(),
            listener,
            merchant=self.config.test_merchant,
            session=INSTALLER,
            presentation=presentation,
            analyser=analyser,
            **options,
        )

    def trades(self) -> list[dict[str, Any]]:
        """The sandbox's trades of this unit (its ``/sandbox/trades`` view)."""
        answer = requests.get(f"{self.sandbox.base_url}/sandbox/trades", verify=str(self.ca_file), timeout=10)
        answer.raise_for_status()
        return [t for t in answer.json() if t["serial"] == self.serial]


def store_truth(sim_dir: Path, serial: str, model: str) -> None:
    """The unit's own ground truth as its stored calibration (as a calibration on the jig leaves it)."""
    from terminal.client import ManagementClient

    blob = truth_blob(serial, SimControl(sim_dir).call("truth", serial=serial), model)
    port = Wiring(sim_dir).discovery().find(serial).port
    with ManagementClient(f"serial:{port}", expected_serial=serial) as client:
        CameraUnit(client).write_calibration(blob.encode())
