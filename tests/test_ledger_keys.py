"""Payment keys in the ledger, on SQLite and on PostgreSQL: the BDK registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.ledger import (
    BdkExists,
    BdkIdInUse,
    InvalidLedgerInput,
    Ledger,
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
    with Ledger.open(url, station="bench-1") as opened:
        yield opened.as_operator("carol")


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
    assert ledger.bdks() == [] and len(ledger.audit_entries()) == 1
