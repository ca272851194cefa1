"""A flash that fails before it reaches the unit is still a ``flash`` operation in the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from helpers import demo_tool

from provisioning.flashing import flash_units
from provisioning.ledger import Ledger
from provisioning.station import Station
from terminal.discovery import Device
from terminal.errors import DeviceNotFound


class EmptyBench:
    """A station whose units are all gone: discovery finds none, the ledger remembers them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def find(self, serial: str) -> Device:
        raise DeviceNotFound(serial=serial)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return Path(demo_tool().make_demo_bundle(tmp_path / "bundle.zip", version="2.0.0").path)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1")


def test_flashing_a_unit_that_is_gone_records_a_failed_flash(ledger: Ledger, bundle: Path) -> None:
    ledger.device_seen("DF2A00001", "dragonfly-2", "1-4.2")  # listed a moment ago, unplugged since
    [result] = flash_units(cast(Station, EmptyBench(ledger)), bundle, ["DF2A00001"])
    assert not result.ok and isinstance(result.error, DeviceNotFound)
    [flash] = [op for op in ledger.operations("DF2A00001") if op.kind == "flash"]
    assert flash.status == "failed" and flash.result is not None
    assert flash.result["error"]["type"] == "terminal.errors.DeviceNotFound"
    assert ledger.verify().ok
    ledger.close()


def test_a_serial_the_ledger_never_saw_fails_as_not_found(ledger: Ledger, bundle: Path) -> None:
    [result] = flash_units(cast(Station, EmptyBench(ledger)), bundle, ["DF2A00009"])
    assert not result.ok and isinstance(result.error, DeviceNotFound)  # not "the ledger has no unit"
    assert ledger.operations() == []
    ledger.close()
