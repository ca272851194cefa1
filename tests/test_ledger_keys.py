"""Payment keys in the ledger, on SQLite and on PostgreSQL: the BDK registry, Initial Key IDs allocated in
a transaction and never reissued, injections, and the authorised inventory with reconciliation."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from helpers import execute_sql
from sqlalchemy import create_engine, inspect, text

from provisioning.ledger import (
    BdkExists,
    BdkIdInUse,
    ChainProblem,
    DerivationIdsExhausted,
    InitialKeyIdOfAnotherUnit,
    InitialKeyIdUsed,
    InjectionAlreadyRecorded,
    InvalidLedgerInput,
    Ledger,
    LedgerError,
    LedgerOperatorDisabled,
    LedgerRoleRequired,
    LedgerRowTampered,
    NotInInventory,
    OperatorRequired,
    UnitNotAuthorised,
    UnknownBdk,
    UnknownInitialKeyId,
    UnknownOperator,
)

BDK_ID = bytes.fromhex("0123ABCD")
KCV = bytes.fromhex("A1B2C3D4E5")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    """Writing as carol (operator); ada is an admin, for the inventory (see :func:`admin`)."""
    with Ledger.open(url, station="bench-1") as opened:
        opened.register_operator("carol", "operator")
        opened.register_operator("ada", "admin")
        yield opened.as_operator("carol")


def admin(ledger: Ledger) -> Ledger:
    return ledger.as_operator("ada")


def test_a_registered_bdk_is_found_by_label_with_its_ids_and_custodians(ledger: Ledger) -> None:
    made = ledger.register_bdk("line-bdk", BDK_ID, KCV, "ceremony", ["alice", "bob"])
    assert (made.label, made.bdk_id, made.kcv, made.origin) == ("line-bdk", BDK_ID, KCV, "ceremony")
    assert (made.custodians, made.station, made.operator, made.issued) == (("alice", "bob"), "bench-1", "carol", 0)
    assert made.registered.utcoffset() == dt.timedelta(0)
    assert ledger.bdk("line-bdk") == made
    assert ledger.bdk("other") is None
    ledger.register_bdk("demo", bytes.fromhex("00000001"), KCV[:3], "generated", ["dave", "erin"])
    assert [b.label for b in ledger.bdks()] == ["demo", "line-bdk"]
    (entry,) = ledger.audit_entries(subject="bdk:line-bdk")
    assert (entry.action, entry.operator) == ("bdk.registered", "carol")
    assert entry.details == {
        "bdk_id": "0123ABCD",
        "kcv": "A1B2C3D4E5",
        "origin": "ceremony",
        "custodians": ["alice", "bob"],
    }
    assert "bdks:1" in entry.seals
    assert ledger.verify().ok


def test_labels_and_bdk_ids_are_never_reused(ledger: Ledger) -> None:
    ledger.register_bdk("line-bdk", BDK_ID, KCV, "ceremony", ["alice", "bob"])
    with pytest.raises(BdkExists):
        ledger.register_bdk("line-bdk", bytes(4), KCV, "ceremony", ["alice", "bob"])
    with pytest.raises(BdkIdInUse) as caught:
        ledger.register_bdk("second", BDK_ID, KCV, "generated", ["alice", "bob"])
    assert "line-bdk" in str(caught.value) and "0123ABCD" in str(caught.value)
    assert [b.label for b in ledger.bdks()] == ["line-bdk"]
    assert ledger.verify().ok


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("bdk_id", ("x", b"\x01\x02\x03", KCV, "ceremony", ["a", "b"])),
        ("bdk_id", ("x", "0123ABCD", KCV, "ceremony", ["a", "b"])),
        ("kcv", ("x", BDK_ID, bytes(16), "ceremony", ["a", "b"])),  # a key where a KCV belongs
        ("kcv", ("x", BDK_ID, bytes(2), "ceremony", ["a", "b"])),
        ("origin", ("x", BDK_ID, KCV, "imported", ["a", "b"])),
        ("custodians", ("x", BDK_ID, KCV, "ceremony", ["a", "a"])),
        ("custodians", ("x", BDK_ID, KCV, "ceremony", [])),
        ("custodians", ("x", BDK_ID, KCV, "ceremony", "ab")),
        ("label", ("", BDK_ID, KCV, "ceremony", ["a", "b"])),
    ],
)
def test_bad_registrations_are_refused_and_write_nothing(ledger: Ledger, field: str, args: tuple[object, ...]) -> None:
    with pytest.raises(InvalidLedgerInput) as caught:
        ledger.register_bdk(*args)  # type: ignore[arg-type]
    assert caught.value.params["field"] == field
    assert ledger.bdks() == [] and len(ledger.audit_entries()) == 3  # the station, carol and ada


# -- Initial Key IDs ------------------------------------------------------------------------------


@pytest.fixture
def keyed(ledger: Ledger) -> Ledger:
    """A ledger with a BDK and three authorised units."""
    ledger.register_bdk("line-bdk", BDK_ID, KCV, "ceremony", ["alice", "bob"])
    admin(ledger).inventory_add(["SN1", "SN2", "SN3"], "PO-4711")
    return ledger


def test_initial_key_ids_are_the_bdk_id_then_derivation_ids_counting_from_one(keyed: Ledger) -> None:
    ids = [keyed.allocate_initial_key_id("line-bdk", serial) for serial in ("SN1", "SN2", "SN1")]
    assert [i.hex().upper() for i in ids] == ["0123ABCD00000001", "0123ABCD00000002", "0123ABCD00000003"]
    record = keyed.bdk("line-bdk")
    assert record is not None and record.issued == 3
    allocated = keyed.allocations("SN1")
    assert [(a.initial_key_id, a.state, a.operator, a.station) for a in allocated] == [
        (ids[0], "allocated", "carol", "bench-1"),
        (ids[2], "allocated", "carol", "bench-1"),
    ]
    entry = keyed.audit_entries(subject="device:SN2")[-1]
    assert (entry.action, entry.operator) == ("keys.id_allocated", "carol")
    assert entry.details == {"initial_key_id": "0123ABCD00000002", "bdk_label": "line-bdk"}
    assert set(entry.seals) == {"bdks:1", "initial_key_ids:0123ABCD00000002"}
    assert keyed.verify().ok


def test_keys_and_the_inventory_are_recorded_only_under_an_authenticated_operator(keyed: Ledger, url: str) -> None:
    ikid = keyed.allocate_initial_key_id("line-bdk", "SN1")
    entries = len(keyed.audit_entries())
    with Ledger.open(url, station="bench-2") as anonymous:
        for write in (
            lambda: anonymous.allocate_initial_key_id("line-bdk", "SN2"),
            lambda: anonymous.record_injection("SN1", ikid, KCV, "01"),
            lambda: anonymous.allocation_failed(ikid, "unplugged"),
            lambda: anonymous.inventory_add(["SN9"], None),
            lambda: anonymous.inventory_remove("SN1"),
        ):
            with pytest.raises(OperatorRequired):
                write()
        assert [e.action for e in anonymous.audit_entries()[entries:]] == ["station.registered"]
    assert [(a.state, a.serial) for a in keyed.allocations()] == [("allocated", "SN1")]
    assert keyed.authorised("SN1") and not keyed.authorised("SN9")


def test_a_disabled_demoted_or_unknown_writer_gets_no_id_records_nothing_and_keeps_the_inventory(keyed: Ledger) -> None:
    ikid = keyed.allocate_initial_key_id("line-bdk", "SN1")
    keyed.register_operator("dave", "operator")
    dave = keyed.as_operator("dave")
    dave_ikid = dave.allocate_initial_key_id("line-bdk", "SN2")
    admin(keyed).disable_operator("carol")  # carol's view of the ledger was made before
    keyed.register_operator("dave", "installer")  # demoted
    entries = len(keyed.audit_entries())
    refusals: list[tuple[type[Exception], Callable[[], object]]] = [
        (LedgerOperatorDisabled, lambda: keyed.allocate_initial_key_id("line-bdk", "SN2")),
        (LedgerOperatorDisabled, lambda: keyed.record_injection("SN1", ikid, KCV, "01")),
        (LedgerRoleRequired, lambda: dave.allocate_initial_key_id("line-bdk", "SN3")),
        (LedgerRoleRequired, lambda: dave.record_injection("SN2", dave_ikid, KCV, "01")),
        (LedgerRoleRequired, lambda: admin(keyed).allocate_initial_key_id("line-bdk", "SN3")),  # an admin injects not
        (LedgerRoleRequired, lambda: keyed.as_operator("erin").inventory_add(["SN9"], None)),
        (UnknownOperator, lambda: keyed.as_operator("nobody").allocate_initial_key_id("line-bdk", "SN3")),
        (UnknownOperator, lambda: keyed.as_operator("nobody").inventory_remove("SN1")),
    ]
    keyed.register_operator("erin", "operator")  # an operator is no admin
    for error, write in refusals:
        with pytest.raises(error):
            write()
    assert len(keyed.audit_entries()) == entries + 1  # erin's registration only
    assert [a.state for a in keyed.allocations()] == ["allocated", "allocated"] and keyed.injections() == []
    admin(keyed).register_operator("ada", "admin")
    admin(keyed).disable_operator("ada")
    with pytest.raises(LedgerOperatorDisabled):
        admin(keyed).inventory_add(["SN9"], None)
    with pytest.raises(LedgerOperatorDisabled):
        admin(keyed).inventory_remove("SN1")
    assert not keyed.authorised("SN9") and keyed.authorised("SN1") and keyed.verify().ok


def test_a_unit_outside_the_inventory_or_an_unknown_bdk_gets_no_id(keyed: Ledger) -> None:
    entries = len(keyed.audit_entries())
    with pytest.raises(UnitNotAuthorised) as caught:
        keyed.allocate_initial_key_id("line-bdk", "SN9")
    assert "SN9" in str(caught.value) and caught.value.remedy_text
    with pytest.raises(UnknownBdk):
        keyed.allocate_initial_key_id("other-bdk", "SN1")
    assert keyed.allocations() == [] and len(keyed.audit_entries()) == entries
    record = keyed.bdk("line-bdk")
    assert record is not None and record.issued == 0


def test_a_failed_then_retried_allocation_gets_a_new_id_and_the_failed_one_is_never_reissued(keyed: Ledger) -> None:
    failed = keyed.allocate_initial_key_id("line-bdk", "SN1")
    keyed.allocation_failed(failed, "the unit returned a wrong KCV\n(step 6)")
    keyed.allocation_failed(failed, "again")  # already failed: nothing changes
    retried = keyed.allocate_initial_key_id("line-bdk", "SN1")
    assert retried != failed and int.from_bytes(retried[4:]) == int.from_bytes(failed[4:]) + 1
    (first, second) = keyed.allocations("SN1")
    assert (first.state, first.reason, first.ended is not None) == (
        "failed",
        "the unit returned a wrong KCV (step 6)",
        True,
    )
    assert second.state == "allocated"
    with pytest.raises(InitialKeyIdUsed):
        keyed.record_injection("SN1", failed, KCV, "1F")
    later = [keyed.allocate_initial_key_id("line-bdk", s) for s in ("SN2", "SN3", "SN1")]
    assert failed not in later and len({failed, retried, *later}) == 5
    assert [e.action for e in keyed.audit_entries(subject="device:SN1")].count("keys.id_failed") == 1
    with pytest.raises(UnknownInitialKeyId):
        keyed.allocation_failed(bytes(8), "never allocated")
    assert keyed.verify().ok


def test_a_counter_set_back_behind_the_ledger_s_back_never_reissues_an_id(keyed: Ledger, url: str) -> None:
    first = keyed.allocate_initial_key_id("line-bdk", "SN1")
    execute_sql(url, "UPDATE bdks SET last_derivation_id = 0")
    with pytest.raises(LedgerError):  # the unique initial_key_id refuses the second issue
        keyed.allocate_initial_key_id("line-bdk", "SN2")
    assert [a.initial_key_id for a in keyed.allocations()] == [first]
    assert keyed.verify().problem is ChainProblem.ROW_EDITED


def test_the_32_bit_derivation_id_space_runs_out_with_a_clear_error(keyed: Ledger, url: str) -> None:
    execute_sql(url, f"UPDATE bdks SET last_derivation_id = {0xFFFFFFFE}")
    assert keyed.allocate_initial_key_id("line-bdk", "SN1").hex().upper() == "0123ABCDFFFFFFFF"
    with pytest.raises(DerivationIdsExhausted) as caught:
        keyed.allocate_initial_key_id("line-bdk", "SN2")
    assert "line-bdk" in str(caught.value) and "4294967295" in str(caught.value)
    assert len(keyed.allocations()) == 1


def test_an_injection_is_recorded_once_for_the_unit_its_id_was_allocated_to(keyed: Ledger) -> None:
    ikid = keyed.allocate_initial_key_id("line-bdk", "SN1")
    with pytest.raises(InitialKeyIdOfAnotherUnit):
        keyed.record_injection("SN2", ikid, KCV, "1F")
    with pytest.raises(UnknownInitialKeyId) as unknown:
        keyed.record_injection("SN1", BDK_ID + bytes(4), KCV, "1F")
    assert type(unknown.value) is UnknownInitialKeyId  # never issued: not "of another unit"
    for kcv in (bytes(16), KCV[:3], KCV[:4]):  # a key where the KCV belongs; a TDES KCV; too short
        with pytest.raises(InvalidLedgerInput) as refused:
            keyed.record_injection("SN1", ikid, kcv, "1F")
        assert refused.value.params["field"] == "kcv"
    with pytest.raises(InvalidLedgerInput):
        keyed.record_injection("SN1", ikid, KCV, "not hex")
    recorded = keyed.record_injection("SN1", ikid, KCV, "7a3f")
    assert (recorded.serial, recorded.initial_key_id, recorded.kcv) == ("SN1", ikid, KCV)
    assert (recorded.certificate_serial, recorded.bdk_label, recorded.operator) == ("7A3F", "line-bdk", "carol")
    assert keyed.injections("SN1") == [recorded] and keyed.injections("SN2") == []
    with pytest.raises(InjectionAlreadyRecorded):
        keyed.record_injection("SN1", ikid, KCV, "7A3F")
    with pytest.raises(InjectionAlreadyRecorded):
        keyed.allocation_failed(ikid, "too late")
    (allocation,) = keyed.allocations("SN1")
    assert allocation.state == "injected"
    entry = keyed.audit_entries(subject="device:SN1")[-1]
    assert (entry.action, entry.operator) == ("keys.injected", "carol")
    assert entry.details == {
        "initial_key_id": ikid.hex().upper(),
        "kcv": "A1B2C3D4E5",
        "certificate_serial": "7A3F",
        "bdk_label": "line-bdk",
    }
    assert keyed.verify().ok


def test_verify_finds_an_edited_injection(keyed: Ledger, url: str) -> None:
    ikid = keyed.allocate_initial_key_id("line-bdk", "SN1")
    keyed.record_injection("SN1", ikid, KCV, "01")
    assert keyed.verify().ok
    execute_sql(url, "UPDATE key_injections SET kcv = '000000'")
    report = keyed.verify()
    assert (report.ok, report.problem, report.table, report.row) == (
        False,
        ChainProblem.ROW_EDITED,
        "key_injections",
        "1",
    )
    with pytest.raises(LedgerRowTampered):
        report.raise_if_broken()


# -- the authorised inventory and reconciliation --------------------------------------------------


def test_inventory_add_list_remove(ledger: Ledger) -> None:
    ledger = admin(ledger)
    assert ledger.inventory_add(["SN1", "SN2", "SN1"], "PO-4711") == 2
    assert ledger.inventory_add(["SN2", "SN3"], "PO-4712") == 1
    units = ledger.inventory()
    assert [(u.serial, u.reference, u.added_by) for u in units] == [
        ("SN1", "PO-4711", "ada"),
        ("SN2", "PO-4711", "ada"),
        ("SN3", "PO-4712", "ada"),
    ]
    assert all(u.added.utcoffset() == dt.timedelta(0) for u in units)
    assert ledger.authorised("SN2") and not ledger.authorised("SN9")
    ledger.inventory_remove("SN2")
    assert not ledger.authorised("SN2")
    with pytest.raises(NotInInventory):
        ledger.inventory_remove("SN2")
    with pytest.raises(InvalidLedgerInput):
        ledger.inventory_add(["SN4", "bad serial"], "PO")
    assert not ledger.authorised("SN4")  # all or none
    actions = [e.action for e in ledger.audit_entries()]
    assert actions[3:] == ["inventory.added", "inventory.added", "inventory.removed"]
    assert ledger.verify().ok


def test_a_large_inventory_is_audited_in_bounded_entries(ledger: Ledger) -> None:
    serials = [f"SN{n:05d}" for n in range(450)]
    assert admin(ledger).inventory_add(serials, None) == 450
    added = [e for e in ledger.audit_entries() if e.action == "inventory.added"]
    assert [len(e.details["serials"]) for e in added] == [200, 200, 50]
    assert [s for e in added for s in e.details["serials"]] == serials
    assert len(ledger.inventory()) == 450 and ledger.verify().ok


def test_reconcile_names_refused_missing_repeated_and_unauthorised_units(keyed: Ledger) -> None:
    admin(keyed).inventory_add(["SN4"], "PO-4711")

    def inject(serial: str) -> str:
        ikid = keyed.allocate_initial_key_id("line-bdk", serial)
        keyed.record_injection(serial, ikid, KCV, "01")
        return ikid.hex().upper()

    once = inject("SN1")
    twice = [inject("SN2"), inject("SN2")]
    gone = inject("SN4")
    admin(keyed).inventory_remove("SN4")  # keyed, then withdrawn from the inventory
    failed = keyed.allocate_initial_key_id("line-bdk", "SN3")
    keyed.allocation_failed(failed, "unit unplugged")

    line = keyed.reconcile()
    assert line.as_dict() == {
        "ok": False,
        "serials": None,
        "authorised": 3,
        "injected": 3,
        "refused": [],
        "not_injected": ["SN3"],
        "injected_more_than_once": {"SN2": twice},
        "not_in_inventory": {"SN4": [gone]},
        "unconfirmed": {},
        "failed": {"SN3": [failed.hex().upper()]},
    }
    run = keyed.reconcile(["SN1", "SN3", "SN9", "SN1"])
    assert run.as_dict() == {
        "ok": False,
        "serials": ["SN1", "SN3", "SN9"],
        "authorised": 2,
        "injected": 1,
        "refused": ["SN9"],
        "not_injected": ["SN3"],
        "injected_more_than_once": {},
        "not_in_inventory": {},
        "unconfirmed": {},
        "failed": {"SN3": [failed.hex().upper()]},
    }
    assert keyed.reconcile(["SN1"]).ok and keyed.reconcile(["SN1", "SN3"]).ok  # a unit still to key is no fault
    assert keyed.injections("SN1")[0].initial_key_id.hex().upper() == once
    json.dumps(line.as_dict())


def test_reconcile_names_ids_left_allocated_until_the_unit_is_checked_and_lists_failed_ones(keyed: Ledger) -> None:
    lost = keyed.allocate_initial_key_id("line-bdk", "SN1")  # the commit's reply was lost
    empty = keyed.allocate_initial_key_id("line-bdk", "SN2")
    burnt = keyed.allocate_initial_key_id("line-bdk", "SN3")
    keyed.allocation_failed(burnt, "wrong KCV")
    unconfirmed = {"SN1": (lost.hex().upper(),), "SN2": (empty.hex().upper(),)}
    line, run = keyed.reconcile(), keyed.reconcile(["SN1", "SN3"])
    assert (line.ok, dict(line.unconfirmed), dict(line.failed)) == (False, unconfirmed, {"SN3": (burnt.hex().upper(),)})
    assert (run.ok, dict(run.unconfirmed)) == (False, {"SN1": (lost.hex().upper(),)})
    assert json.loads(json.dumps(line.as_dict()))["unconfirmed"] == {s: list(i) for s, i in unconfirmed.items()}
    keyed.record_injection("SN1", lost, KCV, "01")  # 'naiad keys status' showed the key: settled
    keyed.allocation_failed(empty, "the unit holds no key")  # it showed none: burnt
    settled = keyed.reconcile()
    assert (settled.ok, dict(settled.unconfirmed), set(settled.failed)) == (True, {}, {"SN2", "SN3"})
    assert settled.not_injected == ("SN2", "SN3")


def test_a_refused_unit_is_on_record_and_the_whole_line_reconcile_names_it_until_authorised(
    keyed: Ledger, url: str
) -> None:
    with pytest.raises(UnitNotAuthorised):
        keyed.allocate_initial_key_id("line-bdk", "SN9")
    keyed.unit_refused("SN9", "not authorised")  # in its own transaction: the allocation's rolled back
    entry = keyed.audit_entries(subject="device:SN9")[-1]
    assert (entry.action, entry.operator, entry.details) == ("keys.unit_refused", "carol", {"reason": "not authorised"})
    found = keyed.reconcile()
    assert (found.ok, found.refused, found.as_dict()["refused"]) == (False, ("SN9",), ["SN9"])
    with Ledger.open(url, station="bench-1") as anonymous, pytest.raises(OperatorRequired):
        anonymous.unit_refused("SN8", "not authorised")
    with pytest.raises(InvalidLedgerInput):
        keyed.unit_refused("bad serial", "not authorised")
    admin(keyed).inventory_add(["SN9"], "PO-4713")  # it was ordered after all
    assert keyed.reconcile().refused == () and keyed.verify().ok


# -- two stations at once, and no key material anywhere -------------------------------------------

# A station in its own process: imports and opens first, then waits for the go line on stdin so that both
# stations allocate at the same moment; prints each unit's Initial Key ID.  Between allocating and recording
# the unit works (a short sleep here), which lets the other station in, as on a real line.
STATION_IN_A_PROCESS = """
import hashlib, sys, time
from provisioning.ledger import Ledger
url, station, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Ledger.open(url, station=station) as opened:
    ledger = opened.as_operator(station + "-op")
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(count):
        serial = f"{station}-{n:02d}"
        ikid = ledger.allocate_initial_key_id("line-bdk", serial)
        time.sleep(0.005)  # the unit's side of the injection, while the other station allocates
        ledger.record_injection(serial, ikid, hashlib.sha256(ikid).digest()[:5], ikid.hex())
        print(ikid.hex(), flush=True)
"""


def _stations_allocate_at_once(url: str, stations: list[str], count: int) -> dict[str, list[bytes]]:
    processes = {
        station: subprocess.Popen(
            [sys.executable, "-c", STATION_IN_A_PROCESS, url, station, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for station in stations
    }
    for process in processes.values():
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes.values():
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = {station: process.communicate(timeout=300) for station, process in processes.items()}
    assert {s: p.returncode for s, p in processes.items()} == dict.fromkeys(stations, 0), outputs
    return {station: [bytes.fromhex(line) for line in out.split()] for station, (out, _err) in outputs.items()}


def test_two_stations_in_two_processes_never_share_an_initial_key_id(url: str) -> None:
    stations, count = ["line-a", "line-b"], 20
    with Ledger.open(url, station="line-0") as opened:
        for station in stations:
            opened.register_operator(station + "-op", "operator")
        opened.register_operator("ada", "admin")
        ledger = opened.as_operator("ada")
        ledger.register_bdk("line-bdk", BDK_ID, KCV, "ceremony", ["alice", "bob"])
        ledger.inventory_add([f"{s}-{n:02d}" for s in stations for n in range(count)], "PO-4711")
        issued = _stations_allocate_at_once(url, stations, count)
        every = [ikid for ids in issued.values() for ikid in ids]
        assert [len(ids) for ids in issued.values()] == [count, count]
        assert {ikid[:4] for ikid in every} == {BDK_ID}
        assert sorted(int.from_bytes(ikid[4:]) for ikid in every) == list(range(1, 2 * count + 1))
        record = ledger.bdk("line-bdk")
        assert record is not None and record.issued == 2 * count
        injections = ledger.injections()
        assert len({i.initial_key_id for i in injections}) == 2 * count
        assert {i.station for i in injections} == set(stations)
        assert ledger.reconcile().ok and ledger.reconcile().not_injected == ()
        assert ledger.verify().ok
    column = _columns_free_of_key_material(url, ())
    assert column["initial_key_ids", "initial_key_id"] == {ikid.hex().upper() for ikid in every}
    assert column["key_injections", "kcv"] == {hashlib.sha256(ikid).digest()[:5].hex().upper() for ikid in every}


def _kcv(key: bytes) -> bytes:
    """The AES-CMAC key check value (5 bytes), as the key store computes it."""
    mac = CMAC(algorithms.AES(key))
    mac.update(bytes(16))
    return mac.finalize()[:5]


def _every_value(url: str) -> list[tuple[str, str, object]]:
    """(table, column, value) of every column of every row of every table in the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found: list[tuple[str, str, object]] = []
            for table in inspect(connection).get_table_names():
                for row in connection.execute(text(f'SELECT * FROM "{table}"')).mappings():
                    found.extend((table, column, value) for column, value in row.items())
            return found
    finally:
        engine.dispose()


def test_no_key_material_reaches_any_table(ledger: Ledger, url: str) -> None:
    bdk, initial_keys = os.urandom(16), {f"SN{n}": os.urandom(16) for n in range(3)}
    kbpk = os.urandom(32)
    ledger.register_bdk("line-bdk", BDK_ID, _kcv(bdk), "ceremony", ["alice", "bob"])
    admin(ledger).inventory_add(list(initial_keys), "PO-4711")
    allocated, kcvs = [], {_kcv(bdk).hex().upper()}
    for serial, key in initial_keys.items():
        failed = ledger.allocate_initial_key_id("line-bdk", serial)
        ledger.allocation_failed(failed, "the unit went away")
        ikid = ledger.allocate_initial_key_id("line-bdk", serial)
        ledger.record_injection(serial, ikid, _kcv(key), "7A3F" + serial.encode().hex())
        allocated += [failed.hex().upper(), ikid.hex().upper()]
        kcvs.add(_kcv(key).hex().upper())
    ledger.reconcile()
    assert ledger.verify().ok

    column = _columns_free_of_key_material(url, (bdk, kbpk, *initial_keys.values()))
    assert column["initial_key_ids", "initial_key_id"] == set(allocated)
    assert column["key_injections", "initial_key_id"] == set(allocated[1::2])
    assert column["key_injections", "kcv"] | column["bdks", "kcv"] == kcvs


def _columns_free_of_key_material(url: str, keys: tuple[bytes, ...]) -> dict[tuple[str, str], set[str]]:
    """Every column's values as text, after checking that no table holds ``keys`` (raw, or hex in either case),
    any binary value, or any long hex run but the ledger's own SHA-256 chain (entry hashes, row seals)."""
    values = _every_value(url)
    texts = [(t, c, v if isinstance(v, str) else json.dumps(v, default=str)) for t, c, v in values]
    assert not [(t, c) for t, c, v in values if isinstance(v, bytes | bytearray | memoryview)]
    for key in keys:
        for shown in (key.hex(), key.hex().upper(), key.decode("latin-1")):
            assert not [(t, c) for t, c, v in texts if shown in v]
    hashes = {v for t, c, v in texts if (t, c) in {("audit_log", "hash"), ("audit_log", "prev_hash")}}
    hashes |= {d for t, c, v in values if (t, c) == ("audit_log", "seals") and v for d in _seal_digests(v)}
    stray = [(t, c, run) for t, c, v in texts for run in re.findall(r"[0-9A-Fa-f]{32,}", v) if run not in hashes]
    assert stray == []
    column: dict[tuple[str, str], set[str]] = defaultdict(set)
    for t, c, v in texts:
        column[t, c].add(v)
    return column


def _seal_digests(value: object) -> list[str]:
    seals = json.loads(value) if isinstance(value, str) else value
    assert isinstance(seals, dict)
    return [d for d in seals.values() if d is not None]


@pytest.mark.postgresql
def test_a_station_stuck_holding_a_bdks_counter_makes_the_others_fail_in_time(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import create_engine, text

    from provisioning.ledger import LedgerUnavailable, db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)
    with Ledger.open(postgres_url, station="bench-1") as opened:
        opened.register_operator("carol", "operator")
        opened.register_operator("ada", "admin")
        ledger = opened.as_operator("carol")
        ledger.register_bdk("line-bdk", BDK_ID, KCV, "ceremony", ["alice", "bob"])
        admin(ledger).inventory_add(["DF2A00001"], "PO-1")
        stuck = create_engine(postgres_url)
        try:
            with stuck.connect() as other, other.begin():  # another station, hung inside its transaction
                other.execute(text("SELECT 1 FROM bdks WHERE label = 'line-bdk' FOR UPDATE"))
                with pytest.raises(LedgerUnavailable):
                    ledger.allocate_initial_key_id("line-bdk", "DF2A00001")
        finally:
            stuck.dispose()
        assert ledger.allocate_initial_key_id("line-bdk", "DF2A00001") == BDK_ID + (1).to_bytes(4)
