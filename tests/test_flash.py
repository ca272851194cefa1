"""The flash procedure (firmware.flash, provisioning.flashing) and ``naiad flash``, against simulated units."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from helpers import Tap, demo_tool

from console.cli_flash import flash
from console.composition import Wiring
from firmware.bundle import Bundle
from firmware.errors import ModelMismatch, RollbackRefused, UnknownSigningKey
from firmware.flash import (
    ActiveSlotTarget,
    PartitionVerifyFailed,
    PieceReader,
    SingleSlotModel,
    UnslottedPartition,
    check_ab_flashable,
    flash_slot,
    plan_partition,
)
from firmware.pack import ModelSpec, PartitionSource, pack_bundle
from firmware.resparse import resparse
from firmware.signing import TrustStore, load_private_key
from firmware.sparse import expand
from provisioning import flashing
from provisioning.flashing import (
    PHASE_LABELS,
    DuplicateUnit,
    FlashPhase,
    NoUnitsSelected,
    RestartedInRunMode,
    flash_units,
    phase_label,
)
from provisioning.station import Station
from terminal.errors import DeviceNotFound
from terminal.events import Event, PhaseStarted, Progressed, Recorder, StepFinished
from terminal.fastboot import FastbootClient
from terminal.models import PACKAGED_TABLE, load_models, model_by_id, user_table_path

MiB = 1 << 20


@pytest.fixture
def make_bundle(tmp_path: Path) -> Any:
    tool = demo_tool()

    def make(version: str = "2.0.0", **options: Any) -> Path:
        made = tool.make_demo_bundle(tmp_path / "bundles" / f"{version}.zip", version=version, **options)
        return Path(made.path)

    return make


@pytest.fixture
def bench(sim_factory: Any) -> Any:
    """``bench(terminals, models)``: a running simulator and a station over it (closed after the test)."""
    stations: list[Station] = []

    def start(terminals: int = 1, models: list[str] | None = None) -> tuple[Any, Station]:
        sim = sim_factory(terminals=terminals, models=models or ["df2"])
        stations.append(Wiring(sim.state_dir).station())
        return sim, stations[-1]

    yield start
    for station in stations:
        station.close()


def partition_digests(sim: Any, serial: str) -> dict[str, str]:
    """A digest of each partition file's data extents: the files are sparse, and mostly holes."""
    parts = sim.state_dir / "units" / serial / "partitions"
    return {path.name: data_digest(path) for path in sorted(parts.glob("*.img"))}


def data_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        fd, size, position = fh.fileno(), os.fstat(fh.fileno()).st_size, 0
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            digest.update(f"@{start}".encode())
            fh.seek(start)
            while start < end:
                data = fh.read(min(MiB, end - start))
                digest.update(data)
                start += len(data)
            position = end
    return digest.hexdigest()


def slot_version(info: dict[str, Any], slot: str | None = None) -> str:
    return str(info["slots"][slot or info["active_slot"]]["version"])


# --- the plan and the pieces (no unit needed) ----------------------------------------------------------


def test_sparse_plan_covers_data_and_fill_but_not_the_hole(make_bundle: Any) -> None:
    with Bundle.open(make_bundle(system_size=4 * MiB)) as bundle:
        image = bundle.manifest.partition("system")
        assert image is not None and image.type == "sparse"
        plan = plan_partition(bundle, image)
        with tempfile.TemporaryFile() as raw, bundle.open_image("system") as sparse:
            expand(sparse, raw)
            # data (3/8) and fill (1/8) coalesce into one range; zeros (2/8) are the hole; data (2/8)
            assert [(r.offset, r.size) for r in plan.ranges] == [(0, 2 * MiB), (3 * MiB, 1 * MiB)]
            for expected in (*plan.ranges, plan.probe):
                assert expected is not None
                raw.seek(expected.offset)
                assert hashlib.sha256(raw.read(expected.size)).hexdigest() == expected.sha256
        boot = bundle.manifest.partition("boot")
        assert boot is not None
        boot_plan = plan_partition(bundle, boot)
        assert [(r.offset, r.size, r.sha256) for r in boot_plan.ranges] == [(0, boot.size, boot.sha256)]


def test_piece_reader_streams_each_piece_and_tells_its_size(make_bundle: Any) -> None:
    with (
        Bundle.open(make_bundle(system_size=4 * MiB, sparse_system=False)) as bundle,
        bundle.open_image("system", check_hash=False) as source,
    ):
        pieces = list(resparse(source, MiB))
        assert len(pieces) > 2
        for piece in pieces:
            reader = PieceReader(piece)
            assert reader.seek(0, io.SEEK_END) == piece.size  # how the client learns the size
            reader.seek(0)
            parts = []
            while data := reader.read(100_000):
                parts.append(data)
            streamed = b"".join(parts)
            assert streamed == b"".join(piece.iter_bytes()) and len(streamed) == piece.size
        backwards = PieceReader(pieces[0])
        backwards.read(10)
        backwards.seek(0)
        with pytest.raises(io.UnsupportedOperation):
            backwards.read(10)


def test_the_active_slot_is_never_a_target(make_bundle: Any) -> None:
    with Bundle.open(make_bundle()) as bundle:
        no_client = cast(FastbootClient, None)  # refused before the unit is asked anything
        with pytest.raises(ActiveSlotTarget):
            flash_slot(no_client, bundle, (), "a", active_slot="a")
        with pytest.raises(ActiveSlotTarget):
            flash_slot(no_client, bundle, (), "", active_slot=None)


def test_single_slot_models_and_unslotted_partitions_are_refused(tmp_path: Path, make_bundle: Any) -> None:
    df2 = model_by_id("df2")
    with Bundle.open(make_bundle()) as bundle:
        check_ab_flashable(bundle, df2)
        with pytest.raises(SingleSlotModel):
            check_ab_flashable(bundle, dataclasses.replace(df2, slot_scheme="single"))
    key = load_private_key(tmp_path / "bundles" / "demo-release-key" / "release.key")
    calib = tmp_path / "calib.img"
    calib.write_bytes(b"\x5a" * 8192)
    out = tmp_path / "calib.zip"
    pack_bundle(
        out,
        key=key,
        models=[ModelSpec("df2")],
        version="9.9",
        security_version=0,
        partitions=[PartitionSource("calib", calib)],
    )
    with Bundle.open(out) as bundle, pytest.raises(UnslottedPartition):
        check_ab_flashable(bundle, df2)


def test_phase_labels_read_with_and_without_a_partition() -> None:
    assert set(PHASE_LABELS) == set(FlashPhase)
    assert phase_label(FlashPhase.WRITE, "system") == "Writing system"
    for phase in FlashPhase:
        assert phase_label(phase) and "{" not in phase_label(phase)


# --- one unit ------------------------------------------------------------------------------------------


def test_a_unit_is_flashed_confirmed_and_recorded(bench: Any, make_bundle: Any) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    recorder = Recorder()
    [result] = flash_units(station, make_bundle("2.0.0"), [serial], recorder)
    assert result.error is None and result.ok
    assert (result.version, result.slot, result.written, result.skipped) == ("2.0.0", "b", ("boot", "system"), ())
    info = station.info(serial)
    assert info["active_slot"] == "b" and slot_version(info) == "2.0.0" and slot_version(info, "a") == "1.0.0"

    phases = [e.phase for e in recorder.of(PhaseStarted, serial)]
    order = [
        FlashPhase.CHECK,
        FlashPhase.REBOOT,
        FlashPhase.WRITE,
        FlashPhase.SWITCH,
        FlashPhase.BOOT,
        FlashPhase.CONFIRM,
    ]
    assert [p for p in phases if p in order] == [*order[:2], FlashPhase.WRITE, FlashPhase.WRITE, *order[3:]]
    written = [(e.phase, e.item) for e in recorder.of(PhaseStarted, serial) if e.phase == FlashPhase.WRITE]
    assert written == [(FlashPhase.WRITE, "boot"), (FlashPhase.WRITE, "system")]
    for partition in ("boot", "system"):
        sent = [e for e in recorder.of(Progressed, serial) if e.item == partition and e.phase == FlashPhase.WRITE]
        assert sent and sent[-1].done == sent[-1].total > 0
        assert all(a.done <= b.done for a, b in itertools.pairwise(sent))
    [finished] = recorder.of(StepFinished, serial)
    assert finished.result == result and finished.step == "flash"

    flashes = [op for op in station.ledger.operations(serial) if op.kind == "flash"]
    assert [op.status for op in flashes] == ["succeeded"]
    assert flashes[0].result == {"version": "2.0.0", "slot": "b", "written": ["boot", "system"], "skipped": []}


@pytest.fixture
def small_download_buffer(tmp_path: Path) -> Any:
    """The user's model table gives df2 a 1 MiB download buffer (the simulator, its own process, reads it)."""
    rows = re.split(r"^(?=\[\[model\]\]$)", PACKAGED_TABLE.read_text(encoding="utf-8"), flags=re.M)
    df2_row = next(row for row in rows if 'id = "df2"' in row)
    assert "max_download_size = 268435456" in df2_row
    user_table = user_table_path()  # the station and the simulator it starts both read it
    user_table.parent.mkdir(parents=True, exist_ok=True)
    user_table.write_text(df2_row.replace("max_download_size = 268435456", "max_download_size = 1048576"))
    load_models.cache_clear()
    yield
    user_table.unlink()
    load_models.cache_clear()  # later tests must not see this table


def test_an_image_larger_than_the_download_buffer_goes_in_sparse_pieces(
    small_download_buffer: None, bench: Any, make_bundle: Any
) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    recorder = Recorder()
    [result] = flash_units(station, make_bundle("2.1.0", system_size=4 * MiB, sparse_system=False), [serial], recorder)
    assert result.ok and result.written == ("boot", "system"), result.error
    system = [e for e in recorder.of(Progressed, serial) if e.item == "system" and e.phase == FlashPhase.WRITE]
    # sparse pieces, not the raw 4 MiB: and more than the 1 MiB the unit takes at once, so several of them
    assert MiB < system[-1].total != 4 * MiB
    assert slot_version(station.info(serial)) == "2.1.0"


@pytest.mark.parametrize("cut", ["power_cut", "unplug"])
def test_an_interrupted_flash_resumes_and_skips_what_was_verified(cut: str, bench: Any, make_bundle: Any) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    bundle = make_bundle("2.2.0", system_size=8 * MiB)
    fired = threading.Event()

    def cut_halfway(event: Event) -> None:
        if (
            isinstance(event, Progressed)
            and event.phase == FlashPhase.WRITE
            and event.item == "system"
            and event.done * 2 >= event.total
            and not fired.is_set()
        ):
            fired.set()
            sim.call(cut, serial=serial)  # from the worker: the unit is gone before the next byte

    [first] = flash_units(station, bundle, [serial], Tap(cut_halfway))
    assert fired.is_set() and not first.ok
    assert first.written == ("boot",) and first.error is not None
    failed = [op for op in station.ledger.operations(serial) if op.kind == "flash"]
    assert failed[-1].status == "failed" and failed[-1].result["written"] == ["boot"]

    if cut == "power_cut":  # power returns: the unit boots its old slot, untouched
        sim.call("power_on", serial=serial, mode="run")
        station.wait_for(serial, "run", 10)
        info = station.info(serial)
        assert (info["active_slot"], slot_version(info)) == ("a", "1.0.0")
    else:  # plugged back in: it is still in its bootloader, and the flash goes on from there
        sim.call("replug", serial=serial)
        assert station.wait_for(serial, "bootloader", 10).mode == "bootloader"

    [again] = flash_units(station, bundle, [serial])
    assert again.ok, again.error
    assert (again.written, again.skipped, again.version, again.slot) == (("system",), ("boot",), "2.2.0", "b")


def test_a_flash_cut_after_the_switch_finishes_without_writing(bench: Any, make_bundle: Any) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    bundle = make_bundle("2.3.0")

    def cut_at_boot(event: Event) -> None:
        if isinstance(event, PhaseStarted) and event.phase == FlashPhase.BOOT:
            sim.call("power_cut", serial=serial)

    [first] = flash_units(station, bundle, [serial], Tap(cut_at_boot))
    assert not first.ok and first.written == ("boot", "system")
    sim.call("power_on", serial=serial, mode="bootloader")  # slot b is active and complete
    station.wait_for(serial, "bootloader", 10)
    [again] = flash_units(station, bundle, [serial])
    assert again.ok, again.error
    assert (again.written, again.skipped, again.slot, again.version) == ((), ("boot", "system"), "b", "2.3.0")


def lose_reboots_to_power_cuts(sim: Any, station: Station, monkeypatch: pytest.MonkeyPatch, lost: int) -> list[str]:
    """The first ``lost`` reboots into the bootloader are cut short by a power cut; power returns (run mode)
    once the station has seen the unit gone.  Returns the modes of every reboot the station sent."""
    sent: list[str] = []
    cut = threading.Event()
    reboot, find = station.reboot, station.discovery.find

    def reboot_during_a_power_cut(serial: str, mode: str, **options: Any) -> Any:
        sent.append(mode)
        if mode == "bootloader" and sent.count(mode) <= lost:
            sim.call("power_cut", serial=serial)
            cut.set()
            return None
        return reboot(serial, mode, **options)

    def find_then_restore_power(serial: str) -> Any:
        try:
            return find(serial)
        except DeviceNotFound:
            if cut.is_set():
                cut.clear()
                sim.call("power_on", serial=serial, mode="run")
            raise

    monkeypatch.setattr(station, "reboot", reboot_during_a_power_cut)
    monkeypatch.setattr(station.discovery, "find", find_then_restore_power)
    # a flash that waited this out would end in UnitDidNotReturn: the tests tell by the result, not by a clock
    monkeypatch.setattr(flashing, "REBOOT_TIMEOUT", 20.0)
    return sent


@pytest.mark.timeout(120)
def test_a_unit_back_in_run_mode_after_a_power_cut_is_sent_to_its_bootloader_again(
    bench: Any, make_bundle: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    sent = lose_reboots_to_power_cuts(sim, station, monkeypatch, lost=1)
    [result] = flash_units(station, make_bundle("2.5.0"), [serial])
    assert result.ok, result.error
    assert sent == ["bootloader", "bootloader"]
    assert "restarted in run mode" in caplog.text


@pytest.mark.timeout(120)
def test_a_unit_that_keeps_restarting_in_run_mode_fails_at_once_untouched(
    bench: Any, make_bundle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    sent = lose_reboots_to_power_cuts(sim, station, monkeypatch, lost=2)
    [result] = flash_units(station, make_bundle("2.5.0"), [serial])
    assert not result.ok and isinstance(result.error, RestartedInRunMode), result.error
    assert result.error.remedy_text and result.written == ()
    assert sent == ["bootloader", "bootloader"]
    assert station.wait_for(serial, "run", 10).mode == "run"


def test_a_corrupted_write_fails_verification_and_the_old_slot_still_boots(bench: Any, make_bundle: Any) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    sim.call("faults", serial=serial, corrupt_writes=1)  # the simulator damages the next write
    [result] = flash_units(station, make_bundle("2.4.0"), [serial])
    assert not result.ok and isinstance(result.error, PartitionVerifyFailed)
    assert result.error.params["partition"] == "boot_b" and result.error.remedy_text
    assert result.written == ()
    # the flash sent the unit back: run mode, the old slot, the old version
    device = station.wait_for(serial, "run", 10)
    info = station.info(serial)
    assert device.mode == "run" and (info["active_slot"], slot_version(info)) == ("a", "1.0.0")
    assert json.loads((sim.state_dir / "units" / serial / "slots.json").read_text())["active"] == "a"


def test_refusals_come_before_the_unit_is_touched(bench: Any, make_bundle: Any) -> None:
    sim, station = bench()
    serial = sim.serials()[0]
    [first] = flash_units(station, make_bundle("3.0.0", security_version=3), [serial])
    assert first.ok, first.error
    assert station.info(serial)["security_version"] == 3
    before = partition_digests(sim, serial)
    boots = sim.terminal(serial)["boot_count"]
    [old] = flash_units(station, make_bundle("2.9.0", security_version=2), [serial])
    assert isinstance(old.error, RollbackRefused) and not old.ok and old.written == ()
    [other] = flash_units(station, make_bundle("3.1.0", model="frog-pro", security_version=3), [serial])
    assert isinstance(other.error, ModelMismatch)
    assert partition_digests(sim, serial) == before
    assert sim.terminal(serial)["boot_count"] == boots and sim.terminal(serial)["mode"] == "run"
    statuses = [op.status for op in station.ledger.operations(serial) if op.kind == "flash"]
    assert statuses == ["succeeded", "failed", "failed"]


def test_a_bad_bundle_or_unit_list_raises_before_any_unit_is_touched(bench: Any, make_bundle: Any) -> None:
    sim, station = bench(2)
    serials = sim.serials()
    boots = {s: sim.terminal(s)["boot_count"] for s in serials}
    untrusted = make_bundle("5.0.0", key_dir=Path(tempfile.mkdtemp()) / "other-key", trust=False)
    recorder = Recorder()
    with pytest.raises(UnknownSigningKey):
        flash_units(station, untrusted, serials, recorder)
    for serial in serials:
        [finished] = recorder.of(StepFinished, serial)
        assert finished.result is not None and isinstance(finished.result.error, UnknownSigningKey)
    with pytest.raises(NoUnitsSelected):
        flash_units(station, untrusted, [])
    with pytest.raises(DuplicateUnit):
        flash_units(station, untrusted, [serials[0], serials[0]])
    assert {s: sim.terminal(s)["boot_count"] for s in serials} == boots
    assert not TrustStore().keys()  # the bundle's key was never trusted


def test_a_listener_that_raises_does_not_break_a_flash(bench: Any, make_bundle: Any) -> None:
    sim, station = bench()
    serial = sim.serials()[0]

    def broken_view(event: Event) -> None:
        raise RuntimeError("the view broke")

    tap = Tap(broken_view)
    [result] = flash_units(station, make_bundle("2.5.0"), [serial], tap)
    assert result.ok and result.written == ("boot", "system"), result.error
    assert {type(e) for e in tap.events} >= {PhaseStarted, Progressed, StepFinished}  # every event still went out


# --- many units, and the command line ------------------------------------------------------------------


def test_all_units_flash_in_parallel_and_one_failure_stops_no_other(sim_factory: Any, make_bundle: Any) -> None:
    sim = sim_factory(terminals=3, models=["df2", "frog-pro"])  # df2, frog-pro, df2
    models = {t["serial"]: t["model"] for t in sim.terminals()}
    frog = next(s for s, m in models.items() if m == "frog-pro")
    frog_before = partition_digests(sim, frog)
    bundle = make_bundle("4.0.0")
    result = CliRunner().invoke(flash, [str(bundle), "--all", "--json"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and len(report["results"]) == 3
    by_serial = {r["serial"]: r for r in report["results"]}
    assert set(by_serial) == set(models)
    for serial, row in by_serial.items():
        if serial == frog:
            assert row["ok"] is False and row["error"]["error"] == "ModelMismatch" and row["error"]["remedy"]
        else:
            assert row["ok"] is True and (row["version"], row["slot"]) == ("4.0.0", "b")
            assert row["written"] == ["boot", "system"] and row["error"] is None
    assert partition_digests(sim, frog) == frog_before


def test_the_command_prints_a_summary_table(sim_factory: Any, make_bundle: Any) -> None:
    sim = sim_factory(terminals=2, models=["df2"])
    serials = sim.serials()
    bundle = make_bundle("4.1.0")
    args = [str(bundle)] + [arg for serial in serials for arg in ("--device", serial)]
    result = CliRunner().invoke(flash, args, env={"COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Firmware flash" in result.stdout and "Written" in result.stdout
    assert table_row(result.stdout, serials[0])[:6] == [serials[0], "succeeded", "4.1.0", "b", "boot, system", "-"]
    assert table_row(result.stdout, serials[1])[:6] == [serials[1], "succeeded", "4.1.0", "b", "boot, system", "-"]
    again = CliRunner().invoke(flash, args, env={"COLUMNS": "200"}, catch_exceptions=False)
    assert again.exit_code == 0  # the same bundle again: nothing to write, everything skipped
    assert table_row(again.stdout, serials[0])[:6] == [serials[0], "succeeded", "4.1.0", "b", "-", "boot, system"]


def test_the_piped_summary_keeps_a_long_serial_and_its_error_whole(sim_factory: Any, make_bundle: Any) -> None:
    sim_factory(terminals=1, models=["df2"])
    missing = "DF2X" + "0123456789" * 5  # on no bench: its row says why, in full
    args = [str(make_bundle("4.3.0")), "--device", missing]
    result = CliRunner().invoke(flash, args, env={"COLUMNS": "80"}, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert table_row(result.stdout, missing)[:2] == [missing, "failed"]
    error = DeviceNotFound(serial=missing)
    assert str(error) in result.stdout and (error.remedy_text or "") in result.stdout


def table_row(text: str, serial: str) -> list[str]:
    """The cells of the summary table's row for ``serial`` (Unit, Result, Version, Slot, Written, Skipped ...)."""
    line = next(line for line in text.splitlines() if serial in line)
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def test_the_command_refuses_conflicting_or_missing_units(tmp_path: Path, make_bundle: Any) -> None:
    bundle = make_bundle("4.2.0")
    both = CliRunner().invoke(flash, [str(bundle), "--all", "--device", "DF2X"])
    assert both.exit_code == 2 and "--device" in both.output
    none = CliRunner().invoke(flash, [str(bundle), "--json"], catch_exceptions=False)
    assert none.exit_code == 1 and json.loads(none.stdout)["error"] == "NoUnitsSelected"
    missing = CliRunner().invoke(
        flash, [str(tmp_path / "nope.zip"), "--device", "DF2X", "--json"], catch_exceptions=False
    )
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"] == "BundleNotFound"
