"""A camera bench for tests and benches: a station over a simulator, its ledger with operators, the jig."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camera.calibrate import Calibration, CameraResult, StereoResult
from console.composition import Wiring
from provisioning.calibration import FirstPoses, calibrate_units, depth_quality
from provisioning.camera_steps import CameraStepResult, Jig
from provisioning.ledger import Ledger
from provisioning.operators import OperatorSession
from provisioning.station import Station
from terminal.camera import CameraCalibration, Extrinsics, Intrinsics, blob_checksum
from terminal.camera_unit import CameraUnit
from terminal.events import Listener

OPERATOR = OperatorSession("otto", "operator")
INSTALLER = OperatorSession("ina", "installer")
ADMIN = OperatorSession("root", "admin")


ShortJig = FirstPoses
"""A jig that presents only the first ``planned`` poses of another one (the station aims the rest): the station's
own :class:`provisioning.calibration.FirstPoses`, not a copy of it."""


@dataclass
class CameraBench:
    """A station over the simulator in ``sim_dir`` with a SQLite ledger, its operators and the simulator's jig."""

    station: Station
    jig: Jig
    sim_dir: Path

    @classmethod
    def open(cls, sim_dir: Path, ledger_url: str) -> CameraBench:
        wiring = Wiring(sim_dir)
        ledger = Ledger.open(ledger_url, station="bench-1")
        for session in (ADMIN, OPERATOR, INSTALLER):
            ledger.register_operator(session.operator, session.role)
        return cls(Station(wiring.discovery(), ledger=ledger), wiring.jig(), sim_dir)

    @property
    def ledger(self) -> Ledger:
        return self.station.ledger

    def calibrate(
        self,
        serials: Sequence[str],
        listener: Listener | None = None,
        *,
        mode: str = "full",
        session: OperatorSession | None = OPERATOR,
        jig: Jig | None = None,
    ) -> list[CameraStepResult]:
        return calibrate_units(self.station, jig or self.jig, serials, listener, mode=mode, session=session)

    def depth(self, serial: str, distances: Sequence[float] | None = None) -> CameraStepResult:
        return depth_quality(self.station, self.jig, serial, distances, session=INSTALLER)

    def stored(self, serial: str) -> bytes | None:
        with self.station.connect(serial) as client:
            return CameraUnit(client).read_calibration()

    def store_truth(self, serial: str, truth: dict[str, Any], model: str = "df2") -> CameraCalibration:
        """The unit's own ground truth as its stored calibration: a perfect calibration, without a jig run,
        recorded in the ledger as a full calibration would be."""
        blob = truth_blob(serial, truth, model)
        with self.station.connect(serial) as client:
            CameraUnit(client).write_calibration(blob.encode())
        self.ledger.record_calibration(serial, blob_checksum(blob.encode()), {})
        return blob

    def close(self) -> None:
        self.station.close()

    def __enter__(self) -> CameraBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def truth_blob(serial: str, truth: dict[str, Any], model: str = "df2") -> CameraCalibration:
    """The simulator's ``truth`` of a unit as the calibration blob a perfect calibration would store."""
    return CameraCalibration(
        serial,
        model,
        Intrinsics.from_dict(truth["ir"]),
        Intrinsics.from_dict(truth["rgb"]),
        Extrinsics.from_dict(truth["rgb_from_ir"]),
        time.time(),
    )


def truth_calibration(truth: dict[str, Any]) -> Calibration:
    """The simulator's truth as a solved calibration (for steps tested past the solve without a jig run)."""
    std = dict.fromkeys(("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3"), 0.01)
    cameras = [CameraResult(Intrinsics.from_dict(truth[name]), 0.1, std, [0.1], 20) for name in ("ir", "rgb")]
    stereo = StereoResult(Extrinsics.from_dict(truth["rgb_from_ir"]), 0.1, 20)
    return Calibration(cameras[0], cameras[1], stereo, 20)


def rotation_deg(a: Any, b: Any) -> float:
    """The angle of the rotation between two rotation matrices, in degrees."""
    trace = sum(a[k][i] * b[k][i] for i in range(3) for k in range(3))  # trace(A^T B)
    return math.degrees(math.acos(max(-1.0, min(1.0, (trace - 1) / 2))))
