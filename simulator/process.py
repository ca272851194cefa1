"""The simulator process: N virtual terminals, their bus and the control channel.

Run in the foreground with ``python -m simulator --state DIR --terminals N`` or through
``naiad sim start``; it stops on SIGTERM, SIGINT or the control command ``stop``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from terminal.models import RUN, load_models, model_by_id

from .bus import VirtualBus
from .control import ControlServer, UnknownTerminal
from .face_pay_platform import PlatformStore
from .link import Faults, InvalidFault
from .state import UnitStore, existing_units, write_json_atomically
from .unit import VirtualTerminal

LOG = logging.getLogger(__name__)


class Simulator:
    def __init__(self, state_dir: Path, terminals: int, models: Sequence[str] = (), faults: Faults | None = None):
        self.state_dir = state_dir
        self.stopped = threading.Event()
        self.bus = VirtualBus(state_dir)
        units_dir = state_dir / "units"
        stores = existing_units(units_dir)
        cycle = list(models) or list(load_models())
        while len(stores) < terminals:
            stores.append(UnitStore.create(units_dir, model_by_id(cycle[len(stores) % len(cycle)])))
        base = faults or Faults()
        # Unix socket paths are short-lived and must stay under 108 bytes: not in the state directory
        self.usb_dir = Path(tempfile.mkdtemp(prefix="naiad-usb-"))
        self.platforms = PlatformStore(state_dir)  # the face-pay app's platform access, shared by every unit
        self.units = [
            VirtualTerminal(store, i, dataclasses.replace(base), self.publish, self.usb_dir, self.platforms)
            for i, store in enumerate(stores[:terminals])
        ]
        self.control = ControlServer(self.commands())

    def publish(self) -> None:
        self.bus.publish(self.units)

    def unit(self, serial: str) -> VirtualTerminal:
        for unit in self.units:
            if unit.serial == serial:
                return unit
        raise UnknownTerminal(serial=serial, known=", ".join(u.serial for u in self.units))

    def _targets(self, serial: str | None) -> list[VirtualTerminal]:
        return [self.unit(serial)] if serial else list(self.units)

    # -- control commands ------------------------------------------------------------------------------
    def commands(self) -> dict[str, Any]:
        return {
            "ping": lambda: "pong",
            "status": self.status,
            "faults": self.set_faults,
            "unplug": lambda serial: self.unit(serial).unplug(),
            "replug": lambda serial: self.unit(serial).replug(),
            "power_cut": lambda serial: self.unit(serial).power_cut(),
            "power_on": lambda serial, mode=RUN: self.unit(serial).power_on(mode),
            "reboot": lambda serial, mode=RUN: self.unit(serial).reboot(mode),
            "executions": lambda serial: self.unit(serial).execution_counts(),
            "fail_boots": lambda serial, slot, count: self.unit(serial).flash.fail_next_boots(slot, count),
            "corrupt_partition": self.corrupt_partition,
            "zeroise": lambda serial: self.unit(serial).secure_element.tamper(),
            "scene": lambda serial, scene: self.unit(serial).camera.set_scene(scene),
            "truth": lambda serial: self.unit(serial).camera.physical().to_dict(),
            "platform": self.platforms.set,
            "stop": self.stopped.set,
        }

    def corrupt_partition(self, serial: str, partition: str, count: int = 8) -> list[int]:
        """Fault: damage ``count`` bytes of the image flashed to ``partition`` (``system`` is the active slot's,
        ``system_b`` names the slot); the offsets damaged."""
        unit = self.unit(serial)
        return unit.flash.corrupt_image(partition, unit.faults.rng, count)

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "state": str(self.state_dir), "terminals": [u.status() for u in self.units]}

    def set_faults(self, serial: str | None = None, **faults: float | int | None) -> dict[str, Any]:
        """Change faults of one unit (or all); a bad name or value raises InvalidFault and changes nothing.

        Returns each targeted unit's faults after the change."""
        targets = self._targets(serial)
        Faults().update(**faults)  # check everything before any unit changes
        for unit in targets:
            unit.faults.update(**faults)
        return {unit.serial: unit.faults.as_dict() for unit in targets}

    # -- lifecycle -----------------------------------------------------------------------------------
    def run(self) -> None:
        for unit in self.units:
            unit.power_on(RUN)
        self.publish()
        self.control.serve_in_background()
        write_json_atomically(self.state_dir / "sim.json", {"pid": os.getpid(), "control_port": self.control.port})
        LOG.info("%d terminals up in %s", len(self.units), self.state_dir)
        try:
            self.stopped.wait()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.control.shutdown()
        self.control.server_close()
        for unit in self.units:
            unit.shutdown()
        self.publish()
        shutil.rmtree(self.usb_dir, ignore_errors=True)
        (self.state_dir / "sim.json").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--terminals", type=int, default=1)
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--ber", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--bandwidth-mbps", type=float, default=None, help="cap of every link, 10^6 bytes/s")
    parser.add_argument("--corrupt-writes", type=int, default=0, help="damage the next N fastboot writes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.state.mkdir(parents=True, exist_ok=True)
    try:
        faults = Faults(
            ber=args.ber,
            drop=args.drop,
            latency_ms=args.latency_ms,
            bandwidth_mbps=args.bandwidth_mbps or None,
            corrupt_writes=args.corrupt_writes,
        )
    except InvalidFault as exc:
        parser.error(str(exc))
    sim = Simulator(args.state, args.terminals, args.model, faults)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sim.stopped.set())
    sim.run()
    # Everything the imports made (numpy, OpenCV, ...) goes to the permanent generation: the interpreter's exit
    # then skips one last collection over all of it, which took 0.5-1 s of every simulator stop.
    gc.freeze()
    return 0
