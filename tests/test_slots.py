"""The simulated unit's flash: partitions, A/B metadata, the boot decision and its durability."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from helpers import sparse_image
from hypothesis import given
from hypothesis import strategies as st

from simulator import slots as slots_mod
from simulator.slots import (
    BOOT_HEADER_SIZE,
    DEFAULT_TRIES,
    ImageTooLarge,
    InvalidImage,
    InvalidSlot,
    NoBootableSlot,
    RangeOutOfBounds,
    SlotStore,
    SlotStoreError,
    UnknownPartition,
    build_boot_image,
    parse_boot_header,
)
from terminal.models import model_by_id


@pytest.fixture
def store(tmp_path: Path) -> SlotStore:
    return SlotStore.create(tmp_path / "unit", model_by_id("df2"), factory_version="1.0.0")


def _image(tmp_path: Path, data: bytes, name: str = "img") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _flash(store: SlotStore, partition: str, data: bytes, tmp_path: Path) -> None:
    with _image(tmp_path, data).open("rb") as fh:
        store.write_image(partition, fh)


def test_create_lays_out_sparse_partitions_of_the_table_sizes(store: SlotStore) -> None:
    parts = store.unit_dir / "partitions"
    names = sorted(p.name for p in parts.iterdir())
    assert names == [
        "boot_a.img",
        "boot_b.img",
        "calib.img",
        "system_a.img",
        "system_b.img",
        "vendor_a.img",
        "vendor_b.img",
    ]
    assert (parts / "system_a.img").stat().st_size == 1 << 30
    assert (parts / "system_a.img").stat().st_blocks * 512 < 1 << 20  # sparse on disk
    assert store.current_slot == "a"
    assert store.slot_version("a") == "1.0.0"
    assert store.slot_version("b") is None
    assert json.loads((store.unit_dir / "slots.json").read_text())["active"] == "a"


def test_create_refuses_an_existing_store_and_open_or_create_reopens(store: SlotStore) -> None:
    with pytest.raises(SlotStoreError):
        SlotStore.create(store.unit_dir, store.model)
    again = SlotStore.open_or_create(store.unit_dir, store.model)
    assert again.current_slot == "a" and again.slot_version("a") == "1.0.0"


def test_factory_boot_and_counters(store: SlotStore) -> None:
    result = store.boot()
    assert (result.slot, result.version, result.fell_back, result.failed_attempts) == ("a", "1.0.0", False, 0)
    assert store.slot_state("a").boots == 1
    assert SlotStore(store.unit_dir, store.model).slot_state("a").boots == 1  # persisted


def test_new_slot_boots_and_becomes_successful(store: SlotStore, tmp_path: Path) -> None:
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", os.urandom(10_000)), tmp_path)
    store.set_active("b")
    state = store.slot_state("b")
    assert (state.successful, state.tries_remaining) == (False, DEFAULT_TRIES)
    result = store.boot()
    assert (result.slot, result.version, result.fell_back) == ("b", "2.0.0", False)
    assert store.slot_state("b").successful


def test_corrupt_new_slot_falls_back_after_its_tries(store: SlotStore, tmp_path: Path) -> None:
    image = bytearray(build_boot_image("2.0.0", "df2", os.urandom(10_000)))
    image[BOOT_HEADER_SIZE + 500] ^= 0x01  # one flipped bit in the payload
    _flash(store, "boot_b", bytes(image), tmp_path)
    store.set_active("b")
    result = store.boot()
    assert (result.slot, result.version, result.fell_back) == ("a", "1.0.0", True)
    assert result.failed_attempts == DEFAULT_TRIES
    b = store.slot_state("b")
    assert b.unbootable and b.failed_boots == DEFAULT_TRIES and b.tries_remaining == 0
    assert store.current_slot == "a"


def test_forced_failures_use_tries_then_the_slot_boots(store: SlotStore, tmp_path: Path) -> None:
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"kernel"), tmp_path)
    store.set_active("b")
    store.fail_next_boots("b", 2)
    result = store.boot()
    assert (result.slot, result.failed_attempts, result.fell_back) == ("b", 2, False)
    assert store.slot_state("b").forced_failures == 0


def test_forced_failures_beyond_the_tries_fall_back(store: SlotStore, tmp_path: Path) -> None:
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"kernel"), tmp_path)
    store.set_active("b")
    store.fail_next_boots("b", DEFAULT_TRIES)
    assert store.boot().slot == "a"


def test_no_bootable_slot_raises_and_stays_in_the_bootloader(store: SlotStore) -> None:
    store.erase("boot_a")
    with pytest.raises(NoBootableSlot):
        store.boot()
    assert store.slot_state("a").unbootable and store.slot_state("b").unbootable


def test_boot_image_for_another_model_does_not_boot(store: SlotStore, tmp_path: Path) -> None:
    _flash(store, "boot_b", build_boot_image("2.0.0", "frog-pro", b"kernel"), tmp_path)
    assert store.slot_version("b") is None


def test_set_active_validates_the_slot(store: SlotStore) -> None:
    before = (store.unit_dir / "slots.json").read_bytes()
    for bad in ("c", "", "ab", "_c"):
        with pytest.raises(InvalidSlot):
            store.set_active(bad)
    assert (store.unit_dir / "slots.json").read_bytes() == before
    store.set_active("_b")
    assert store.current_slot == "b"


def test_resolve_names(store: SlotStore) -> None:
    assert store.resolve("boot").full_name == "boot_a"
    assert store.resolve("system_b").full_name == "system_b"
    assert store.resolve("calib").full_name == "calib"
    for bad in ("calib_a", "boot_c", "nope", "", "boot_"):
        with pytest.raises(UnknownPartition):
            store.resolve(bad)


def test_raw_image_too_large_leaves_the_partition_untouched(store: SlotStore, tmp_path: Path) -> None:
    before = store.sha256("calib")
    with pytest.raises(ImageTooLarge):
        _flash(store, "calib", b"\x55" * (4 * 1024 * 1024 + 1), tmp_path)
    assert store.sha256("calib") == before


def test_sparse_image_writes_raw_fills_and_keeps_dont_care(store: SlotStore, tmp_path: Path) -> None:
    old = os.urandom(64 * 1024)
    store.write("calib", old)
    raw1, raw2 = os.urandom(8192), os.urandom(4096)
    image = sparse_image(
        4096, [("raw", raw1, 0), ("skip", b"", 4), ("fill", b"\xde\xad\xbe\xef", 3), ("crc", b"", 0), ("raw", raw2, 0)]
    )
    _flash(store, "calib", image, tmp_path)
    got = store.read("calib", 0, 64 * 1024)
    assert got[:8192] == raw1
    assert got[8192 : 8192 + 16384] == old[8192 : 8192 + 16384]  # DONT_CARE: untouched
    assert got[24576 : 24576 + 12288] == b"\xde\xad\xbe\xef" * 3072
    assert got[36864 : 36864 + 4096] == raw2
    assert got[40960:] == old[40960:]  # past the image: untouched


@pytest.mark.parametrize("damage", ["truncated", "bad_chunk", "count", "block_size", "too_large"])
def test_bad_sparse_images_are_refused_before_any_write(store: SlotStore, tmp_path: Path, damage: str) -> None:
    store.write("calib", os.urandom(8192))
    before = store.sha256("calib")
    image = bytearray(sparse_image(4096, [("raw", os.urandom(8192), 0), ("skip", b"", 2)]))
    if damage == "truncated":
        image = image[:-100]
    elif damage == "bad_chunk":
        image[28:30] = struct.pack("<H", 0xCAFF)
    elif damage == "count":
        image[16:20] = struct.pack("<I", 7)  # total_blks disagrees with the chunks
    elif damage == "block_size":
        image[12:16] = struct.pack("<I", 4098)
    else:
        image = bytearray(sparse_image(4096, [("raw", os.urandom(8192), 0), ("skip", b"", 1024)]))
    with pytest.raises(ImageTooLarge if damage == "too_large" else InvalidImage):
        _flash(store, "calib", bytes(image), tmp_path)
    assert store.sha256("calib") == before


@given(st.binary(max_size=300))
def test_sparse_reader_never_crashes_on_garbage(garbage: bytes) -> None:
    import tempfile

    header = struct.pack("<IHHHHIIII", 0xED26FF3A, 1, 0, 28, 12, 4096, 2, 3, 0)
    with tempfile.TemporaryFile() as fh:
        fh.write(header + garbage)
        fh.flush()
        try:
            size, chunks = slots_mod._sparse_chunks(fh.fileno())
        except slots_mod.SparseImageError:
            return
        assert size == 2 * 4096 and all(c.out + c.length <= size for c in chunks)


def test_sha256_of_a_range_and_range_checks(store: SlotStore) -> None:
    data = os.urandom(5000)
    store.write("calib", data, offset=100)
    assert store.sha256("calib", 100, 5000) == hashlib.sha256(data).hexdigest()
    with pytest.raises(RangeOutOfBounds):
        store.sha256("calib", 4 * 1024 * 1024 - 10, 11)
    with pytest.raises(ImageTooLarge):
        store.write("calib", b"x" * 11, offset=4 * 1024 * 1024 - 10)


def test_erase_zeroes_the_partition(store: SlotStore) -> None:
    store.erase("boot_a")
    assert store.read("boot_a", 0, 4096) == bytes(4096)
    assert store.resolve("boot_a").path.stat().st_size == 64 * 1024 * 1024


def test_power_cut_during_set_active_keeps_the_old_slot(
    store: SlotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"k"), tmp_path)

    def cut(*args: object) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("simulator.slots.os.replace", cut)
    with pytest.raises(KeyboardInterrupt):
        store.set_active("b")
    monkeypatch.undo()
    reopened = SlotStore(store.unit_dir, store.model)  # what the unit finds after power returns
    assert reopened.current_slot == "a"
    assert reopened.boot().slot == "a"


def test_power_cut_during_a_flash_of_the_other_slot_keeps_booting(
    store: SlotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cut(*args: object) -> int:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(slots_mod, "_copy_range", cut)
    with pytest.raises(KeyboardInterrupt):
        _flash(store, "boot_b", build_boot_image("2.0.0", "df2", b"k" * 100_000), tmp_path)
    monkeypatch.undo()
    reopened = SlotStore(store.unit_dir, store.model)
    assert reopened.boot().slot == "a"


def test_damaged_metadata_is_a_typed_error(store: SlotStore) -> None:
    (store.unit_dir / "slots.json").write_text("{not json")
    with pytest.raises(SlotStoreError):
        SlotStore(store.unit_dir, store.model)


@given(st.text(min_size=1, max_size=40), st.binary(max_size=2000))
def test_boot_header_round_trip(version: str, payload: bytes) -> None:
    image = build_boot_image(version, "df2", payload)
    header = parse_boot_header(image[:BOOT_HEADER_SIZE])
    assert (header.version, header.model, header.payload_length) == (version, "df2", len(payload))
    assert header.payload_sha256 == hashlib.sha256(payload).digest()


@given(st.binary(max_size=300))
def test_boot_header_parser_rejects_garbage_cleanly(garbage: bytes) -> None:
    try:
        header = parse_boot_header((b"NAIADBOOT\x01" + garbage).ljust(BOOT_HEADER_SIZE, b"\0"))
    except ValueError:
        return
    assert isinstance(header.version, str) and isinstance(header.model, str)


def test_fail_next_boots_validates(store: SlotStore) -> None:
    with pytest.raises(ValueError):
        store.fail_next_boots("a", -1)
    with pytest.raises(InvalidSlot):
        store.fail_next_boots("z", 1)
