"""The composition root: the one place that knows whether the units are real (USB) or simulated.

``--sim DIR`` or ``NAIAD_SIM`` are read here and nowhere else; every command and view gets a ready
:class:`Wiring` and asks it for a discovery or a station, so the core never learns which bus it is on:
for a simulator this module hands discovery the simulator's pyusb backend and port locator, and the
station a ready discovery.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from i18n import _

if TYPE_CHECKING:
    from collections.abc import Callable

    from provisioning.camera_steps import Jig
    from provisioning.facepay_steps import Presenter
    from provisioning.station import Station
    from terminal.camera import Board
    from terminal.discovery import Discovery

SIM_ENV = "NAIAD_SIM"
ROOTS_ENV = "NAIAD_MANUFACTURER_CA"
ROOTS_FILE = "manufacturer-ca.pem"


def chosen_sim_dir(sim_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The simulator directory asked for: the argument, else ``NAIAD_SIM`` (unset or empty: None), unchecked."""
    chosen = os.fspath(sim_dir) if sim_dir is not None else os.environ.get(SIM_ENV) or None
    return Path(chosen) if chosen else None


@dataclass(frozen=True)
class Wiring:
    """Where the units are: the real USB bus (``sim_dir`` None) or a simulator's state directory."""

    sim_dir: Path | None = None

    @classmethod
    def resolve(cls, sim_dir: str | os.PathLike[str] | None = None) -> Wiring:
        """The argument, else ``NAIAD_SIM``, else real USB; SimulatorNotFound when the directory is missing."""
        chosen = chosen_sim_dir(sim_dir)
        if chosen is None:
            return cls(None)
        if not chosen.is_dir():
            from simulator.locator import SimulatorNotFound

            raise SimulatorNotFound(path=str(chosen))
        return cls(chosen.resolve())

    def discovery(self) -> Discovery:
        """A new discovery over this bus (each watcher or command gets its own)."""
        from terminal.discovery import Discovery

        if self.sim_dir is None:
            return Discovery()
        from simulator.locator import usb_bus

        return Discovery(*usb_bus(self.sim_dir))

    def station(self, ledger_url: str | None = None) -> Station:
        """A station over this bus with the ledger at ``ledger_url`` (the default ledger when None)."""
        from provisioning.station import Station

        return Station(self.discovery(), ledger_url)

    def jig(self, board: Board | None = None) -> Jig:
        """The calibration jig: the simulator's scenes for simulated units, none on the real bus (a jig driver
        is configured per station; until then full calibration is refused and a field check needs none)."""
        if self.sim_dir is None:
            from provisioning.camera_steps import NoJig

            return NoJig()
        return _sim_jig(self.sim_dir, board)

    def presenter(self, ask: Callable[[str], None] | None = None) -> Presenter:
        """Who presents a face for the face-pay check: the simulator's scenes for simulated units; on the real
        bus a person, told what to hold up through ``ask`` (the CLI prompts, the console shows its own dialog;
        None: nobody is asked, the person is already there)."""
        if self.sim_dir is None:
            from provisioning.facepay_check import AskingPresenter

            return AskingPresenter(ask or (lambda text: None))
        return _sim_presenter(self.sim_dir)

    def manufacturer_roots(self) -> list[bytes]:
        """The manufacturer root certificates (DER) a unit's attestation chain must lead to.

        A simulator's own simulated manufacturer CA; on real USB the PEM file in ``NAIAD_MANUFACTURER_CA``, else
        ``manufacturer-ca.pem`` in the configuration directory (the terminal maker supplies it)."""
        from keys.attestation import load_roots

        if self.sim_dir is not None:
            from simulator.manufacturer import roots_path

            return load_roots(roots_path(self.sim_dir))
        from terminal.dirs import config_dir

        return load_roots(Path(os.environ.get(ROOTS_ENV) or config_dir() / ROOTS_FILE))

    def describe(self) -> str:
        """Where the units are, for people: "simulator PATH" or "the USB bus"."""
        if self.sim_dir is None:
            return _("the USB bus")
        return _("simulator {path}", path=str(self.sim_dir))


def _sim_jig(sim_dir: Path, board: Board | None) -> Jig:
    """A :class:`SimJig` (defined here, where sim and real meet, so the core never learns of the simulator)."""
    from provisioning.camera_steps import Jig
    from simulator.camera.jig import JIG_POSES
    from simulator.control import SimControl

    class SimJig(Jig):
        """The simulator's jig: each presentation is a ``scene`` control command on the unit."""

        planned = JIG_POSES

        def __init__(self) -> None:
            self.control = SimControl(sim_dir)

        def _scene(self, serial: str, scene: dict[str, object]) -> None:
            if board is not None and scene["kind"] == "board":
                scene = {**scene, "board": board.to_dict()}
            self.control.call("scene", serial=serial, scene=scene)

        def present_board(self, serial: str, index: int) -> None:
            self._scene(serial, {"kind": "board", "jig_pose": index})

        def present_aimed(self, serial: str, x_frac: float, y_frac: float) -> None:
            self._scene(serial, {"kind": "board", "aim": [x_frac, y_frac]})

        def present_wall(self, serial: str, distance_m: float, tilt_deg: tuple[float, float] = (0.0, 0.0)) -> None:
            self._scene(serial, {"kind": "wall", "distance_m": distance_m, "tilt_deg": list(tilt_deg)})

        def release(self, serial: str) -> None:
            self._scene(serial, {"kind": "default"})

    return SimJig()


def _sim_presenter(sim_dir: Path) -> Presenter:
    """A :class:`SimPresenter`: a live face or an attack is a ``scene`` control command on the unit."""
    from provisioning.facepay_steps import Presenter
    from simulator.control import SimControl

    class SimPresenter(Presenter):
        """The simulator's face scenes: ``face`` for a live face, else the attack's own kind."""

        def __init__(self) -> None:
            self.control = SimControl(sim_dir)

        def present(self, serial: str, presentation: str = "live") -> None:
            kind = "face" if presentation == "live" else presentation
            self.control.call("scene", serial=serial, scene={"kind": kind})

        def release(self, serial: str) -> None:
            self.control.call("scene", serial=serial, scene={"kind": "default"})

    return SimPresenter()
