"""``naiad keys inventory``: add and remove (admin), list and reconcile (any logged-in operator), through click."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from console.cli import cli
from console.cli_inventory import inventory_group
from console.cli_keys import keys_group
from provisioning import operators as ops
from provisioning.ledger import Ledger

ROOT_PW = "root-Secret-8731"
OLGA_PW = "olga-Secret-2290"


@pytest.fixture(autouse=True)
def _wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group as the lead registers it (``keys_group.add_command(inventory_group)``), and a cheap scrypt."""
    monkeypatch.setitem(keys_group.commands, "inventory", inventory_group)
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A ledger with the admin root and the operator olga."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url, station="bench-1") as ledger:
        ops.add_operator(ledger, None, "root", "admin", ROOT_PW)
        ops.add_operator(ledger, ops.login(ledger, "root", ROOT_PW), "olga", "operator", OLGA_PW)
    yield url


def naiad(url: str, *args: str, operator: str | None = None) -> Result:
    password = {"root": ROOT_PW, "olga": OLGA_PW}.get(operator or "", "")
    login = ["--operator", operator] if operator else []
    return CliRunner().invoke(
        cli,
        ["--ledger", url, *login, "keys", "inventory", *args],
        input=f"{password}\n",
        env={"NAIAD_LANG": "en", "NAIAD_OPERATOR": ""},
    )


def test_an_admin_adds_units_from_arguments_and_a_file_and_everyone_logged_in_lists_them(
    url: str, tmp_path: Path
) -> None:
    delivery = tmp_path / "po-4711.txt"
    delivery.write_text("# delivery note 4711\nSN0003\n\n  SN0004  \nSN0001\n", encoding="utf-8")
    added = naiad(url, "add", "SN0001", "SN0002", "--from", str(delivery), "--reference", "PO-4711", operator="root")
    assert added.exit_code == 0, added.output
    assert "4 units added to the authorised inventory; 0 were in it already." in added.output
    again = naiad(url, "add", "SN0002", "SN0005", operator="root")
    assert "1 units added to the authorised inventory; 1 were in it already." in again.output
    listed = naiad(url, "list", "--json", operator="olga")
    assert listed.exit_code == 0, listed.output
    units = json.loads(listed.stdout)["inventory"]
    assert [(u["serial"], u["reference"], u["added_by"]) for u in units] == [
        ("SN0001", "PO-4711", "root"),
        ("SN0002", "PO-4711", "root"),
        ("SN0003", "PO-4711", "root"),
        ("SN0004", "PO-4711", "root"),
        ("SN0005", None, "root"),
    ]
    shown = naiad(url, "list", operator="olga")
    assert shown.exit_code == 0 and "SN0004" in shown.output and "PO-4711" in shown.output
    with Ledger.open(url, station="bench-1") as ledger:
        assert {e.operator for e in ledger.audit_entries() if e.action == "inventory.added"} == {"root"}


def test_only_an_admin_changes_the_inventory_and_only_a_logged_in_operator_reads_it(url: str) -> None:
    refused = naiad(url, "add", "SN0001", operator="olga")
    assert refused.exit_code == 1 and "needs the admin role" in refused.output, refused.output
    naiad(url, "add", "SN0001", operator="root")
    assert naiad(url, "remove", "SN0001", operator="olga").exit_code == 1
    for args in (("list",), ("reconcile",), ("add", "SN0002")):
        anonymous = naiad(url, *args)
        assert anonymous.exit_code == 1 and "needs a logged-in operator" in anonymous.output, anonymous.output
    with Ledger.open(url, station="bench-1") as ledger:
        assert [u.serial for u in ledger.inventory()] == ["SN0001"]


def test_an_admin_removes_a_unit_and_an_unknown_one_is_a_clear_error(url: str) -> None:
    naiad(url, "add", "SN0001", operator="root")
    removed = naiad(url, "remove", "SN0001", operator="root")
    assert removed.exit_code == 0 and "SN0001 was removed" in removed.output
    missing = naiad(url, "remove", "SN0001", operator="root")
    assert missing.exit_code == 1 and "not in the authorised inventory" in missing.output
    assert "naiad keys inventory list" in missing.output  # the remedy


def test_add_needs_units_and_valid_serials(url: str) -> None:
    assert naiad(url, "add", operator="root").exit_code == 2
    bad = naiad(url, "add", "SN0001", "no spaces", operator="root")
    assert bad.exit_code == 1 and "serial" in bad.output
    with Ledger.open(url, station="bench-1") as ledger:
        assert ledger.inventory() == []


def test_reconcile_reports_the_findings_and_fails_on_a_refused_or_doubly_keyed_unit(url: str) -> None:
    naiad(url, "add", "SN0001", "SN0002", "SN0003", operator="root")
    with Ledger.open(url, station="bench-1") as opened:
        ledger = opened.as_operator("olga")
        ledger.register_bdk("line-bdk", bytes.fromhex("0123ABCD"), bytes(5), "generated", ["cara", "dan"])
        for serial in ("SN0001", "SN0002", "SN0002"):
            ikid = ledger.allocate_initial_key_id("line-bdk", serial)
            ledger.record_injection(serial, ikid, bytes(5), "01")
        expected = ledger.reconcile(["SN0001", "SN0002", "SN0009"]).as_dict()
    run = naiad(url, "reconcile", "SN0001", "SN0002", "SN0009", "--json", operator="olga")
    assert run.exit_code == 1 and json.loads(run.stdout) == expected
    assert expected["refused"] == ["SN0009"]
    assert expected["injected_more_than_once"] == {"SN0002": ["0123ABCD00000002", "0123ABCD00000003"]}
    shown = naiad(url, "reconcile", operator="olga")
    assert shown.exit_code == 1
    assert "keyed more than once" in shown.output and "0123ABCD00000003" in shown.output
    assert "not keyed yet" in shown.output and "SN0003" in shown.output
    clean = naiad(url, "reconcile", "SN0001", "SN0003", operator="olga")
    assert clean.exit_code == 0 and "Everything adds up." in clean.output, clean.output


def test_reconcile_shows_ids_left_allocated_and_failed_ones_and_fails_on_an_unconfirmed_one(url: str) -> None:
    naiad(url, "add", "SN0001", "SN0002", operator="root")
    with Ledger.open(url, station="bench-1") as opened:
        ledger = opened.as_operator("olga")
        ledger.register_bdk("line-bdk", bytes.fromhex("0123ABCD"), bytes(5), "generated", ["cara", "dan"])
        ledger.allocate_initial_key_id("line-bdk", "SN0001")  # the commit's reply was lost
        ledger.allocation_failed(ledger.allocate_initial_key_id("line-bdk", "SN0002"), "wrong KCV")
    found = naiad(url, "reconcile", "--json", operator="olga")
    assert found.exit_code == 1
    assert json.loads(found.stdout)["unconfirmed"] == {"SN0001": ["0123ABCD00000001"]}
    assert json.loads(found.stdout)["failed"] == {"SN0002": ["0123ABCD00000002"]}
    shown = naiad(url, "reconcile", operator="olga")
    assert shown.exit_code == 1 and "key unconfirmed" in shown.output and "0123ABCD00000001" in shown.output
    assert "Initial Key ID burnt" in shown.output and "0123ABCD00000002" in shown.output
    burnt_only = naiad(url, "reconcile", "SN0002", operator="olga")
    assert burnt_only.exit_code == 0 and "Everything adds up." in burnt_only.output, burnt_only.output
