"""The composition root: the one place that reads --sim / NAIAD_SIM and builds the bus the core is handed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from console.cli import cli
from console.composition import Wiring
from simulator.locator import SimPortLocator, SimulatorNotFound
from simulator.usb_backend import SimUsbBackend


def test_resolve_reads_the_argument_then_naiad_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAIAD_SIM", raising=False)
    assert Wiring.resolve().sim_dir is None
    monkeypatch.setenv("NAIAD_SIM", str(tmp_path))
    assert Wiring.resolve().sim_dir == tmp_path.resolve()
    other = tmp_path / "other"
    other.mkdir()
    assert Wiring.resolve(other).sim_dir == other.resolve()
    monkeypatch.setenv("NAIAD_SIM", "")
    assert Wiring.resolve().sim_dir is None


def test_a_missing_simulator_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SimulatorNotFound) as err:
        Wiring.resolve(tmp_path / "nope")
    assert "nope" in str(err.value) and "naiad sim start" in (err.value.remedy_text or "")


def test_the_simulators_bus_is_handed_to_discovery_and_station(tmp_path: Path) -> None:
    wiring = Wiring.resolve(tmp_path)
    discovery = wiring.discovery()
    assert isinstance(discovery.backend(), SimUsbBackend) and isinstance(discovery.locator(), SimPortLocator)
    assert not discovery.system_usb and not discovery.hotplug
    station = wiring.station(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert isinstance(station.discovery.backend(), SimUsbBackend)
    real = Wiring(None).discovery()
    assert real.system_usb and real.hotplug == real.system_usb


@pytest.mark.parametrize(
    "command", [["doctor"], ["devices"], ["ledger", "head"], ["fastboot", "X", "getvar", "product"]]
)
def test_commands_answer_a_missing_simulator_with_its_remedy(tmp_path: Path, command: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--sim", str(tmp_path / "gone"), *command])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # an answer, not a traceback
    assert "naiad sim start" in result.output
