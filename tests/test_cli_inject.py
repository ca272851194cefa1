"""``naiad keys inject``, ``naiad keys status`` and ``naiad keys inventory`` through click, on simulated units.

The ledger and the software key store are prepared as :mod:`keybench` does (operators, the test BDK registered
and loaded); the commands open the same store file from the data directory through NAIAD_KEYSTORE and its
passphrase, and the operator logs in with ``--operator NAME`` and a typed password or a NAIAD_OPERATOR token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import SimHandle
from keybench import BDK, BDK_ID, BDK_LABEL, PASSPHRASE, KeyBench, software_store
from test_keys_store import PIN, SOFTHSM_MODULE, _pkcs11, softhsm_token  # noqa: F401  (softhsm_token: a fixture)

import i18n
from console import cli_inject
from console.cli import cli
from keys import dukpt
from keys.kcv import aes_cmac_kcv, shown
from keys.store_software import default_path
from provisioning import operators as ops

PASSWORDS = {"otto": "otto-Secret-5521", "root": "root-Secret-8731"}


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)


@dataclass
class Line:
    """A simulator with units, a ledger with otto (operator) and root (admin), the test BDK in the key store."""

    sim: SimHandle
    url: str
    store_env: dict[str, str] = field(default_factory=lambda: {"NAIAD_KEYSTORE": "software"})

    def naiad(self, *args: str, operator: str | None = "otto", stdin: str | None = None, **env: str) -> Result:
        """``naiad --ledger URL [--operator NAME] ARGS``, the operator's password typed (or ``stdin``)."""
        login = ["--operator", operator] if operator else []
        return CliRunner().invoke(
            cli,
            ["--ledger", self.url, *login, *args],
            input=stdin if stdin is not None else f"{PASSWORDS.get(operator or '', '')}\n",
            env={
                "NAIAD_LANG": "en",
                "NAIAD_OPERATOR": "",
                "NAIAD_KEYSTORE_PASSPHRASE": PASSPHRASE,
                **self.store_env,
                **env,
            },
        )

    def inject(self, *args: str, operator: str | None = "otto", **env: str) -> Result:
        return self.naiad("keys", "inject", *args, operator=operator, **env)

    def status(self, serial: str) -> dict[str, Any]:
        shown_status = self.naiad("keys", "status", serial, "--json", operator=None)
        assert shown_status.exit_code == 0, shown_status.output
        answer: dict[str, Any] = json.loads(shown_status.stdout)
        return answer


@pytest.fixture
def line(sim_factory: Any, tmp_path: Path) -> Iterator[Any]:
    """``line(terminals, authorised=all, token=None)``: the bench prepared, then closed, so only the commands
    hold it; the key store is the software one, or the SoftHSM2 token ``token`` names."""

    def prepare(terminals: int, authorised: int | None = None, token: str | None = None) -> Line:
        sim: SimHandle = sim_factory(terminals=terminals)
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        store = software_store(default_path().parent) if token is None else _pkcs11(token)
        bench = KeyBench.open(sim.state_dir, url, store)
        try:
            for name, password in PASSWORDS.items():
                bench.ledger.as_operator("root").set_password(name, ops.hash_password(password))
            bench.authorise(sim.serials()[:authorised])
        finally:
            bench.close()
        if token is None:
            return Line(sim, url)
        return Line(
            sim,
            url,
            {
                "NAIAD_KEYSTORE": "pkcs11",
                "NAIAD_PKCS11_MODULE": SOFTHSM_MODULE,
                "NAIAD_PKCS11_TOKEN": token,
                "NAIAD_PKCS11_PIN": PIN,
            },
        )

    yield prepare


def _expected_kcv(initial_key_id: str) -> str:
    """The KCV the unit must report: the test BDK's own derivation, outside any key store."""
    return shown(aes_cmac_kcv(dukpt.initial_key(BDK, bytes.fromhex(initial_key_id))))


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_inject_json_prints_distinct_initial_key_ids_and_kcvs_of_the_test_bdk(line: Any) -> None:
    units: Line = line(2)
    first, second = units.sim.serials()
    run = units.inject("--device", first, "--device", second, "--json")
    assert run.exit_code == 0, run.output
    answer = json.loads(run.stdout)
    assert answer["bdk"] == BDK_LABEL and answer["ok"] is True
    results = answer["results"]
    assert [r["serial"] for r in results] == [first, second]
    ids, kcvs = [r["initial_key_id"] for r in results], [r["kcv"] for r in results]
    assert len(set(ids)) == 2 and len(set(kcvs)) == 2
    for result in results:
        assert result["ok"] and result["error"] is None
        assert result["initial_key_id"].startswith(BDK_ID.hex().upper())
        assert result["kcv"] == _expected_kcv(result["initial_key_id"])
    assert answer["reconciliation"]["refused"] == [] and answer["reconciliation"]["injected"] == 2


def test_all_injects_every_attached_unit_in_run_mode_and_the_table_shows_ids_kcvs_and_reconciliation(
    line: Any,
) -> None:
    units: Line = line(3)
    *running, resting = units.sim.serials()
    to_bootloader = units.naiad("reboot", resting, "--mode", "bootloader", operator=None)
    assert to_bootloader.exit_code == 0, to_bootloader.output

    run = units.inject("--all")
    assert run.exit_code == 0, run.output
    assert "Key injection" in run.output and "Reconciliation" in run.output and "Everything adds up." in run.output
    assert f"Left out {resting}: not reachable in run mode." in run.output  # said, and not part of --all
    assert resting not in run.output.split("Key injection", 1)[1]
    for serial in running:
        [key] = units.status(serial)["keys"]
        assert serial in run.output
        assert key["initial_key_id"] in run.output and key["kcv"] in run.output
    assert units.naiad("reboot", resting, "--mode", "run", operator=None).exit_code == 0
    assert units.status(resting)["state"] == "factory"


def test_a_unit_not_in_the_inventory_fails_the_run_and_is_listed_as_refused(line: Any) -> None:
    units: Line = line(2, authorised=1)
    allowed, stranger = units.sim.serials()
    run = units.inject("--device", allowed, "--device", stranger, "--json")
    assert run.exit_code == 1, run.output
    answer = json.loads(run.stdout)
    outcome = {r["serial"]: r for r in answer["results"]}
    assert outcome[allowed]["ok"] and not outcome[stranger]["ok"]
    assert "not in the authorised inventory" in outcome[stranger]["error"]["message"]
    assert answer["reconciliation"]["refused"] == [stranger]
    assert units.status(stranger)["keys"] == []

    table = units.inject("--device", stranger)
    assert table.exit_code == 1
    assert "refused: not in the inventory" in table.output and stranger in table.output
    assert "naiad keys inventory add" in table.output and stranger in table.output  # the remedy, beside the problem
    _no_traceback(table)


def test_device_and_all_together_is_a_usage_error(line: Any) -> None:
    units: Line = line(1)
    run = units.inject("--device", units.sim.serials()[0], "--all")
    assert run.exit_code == 2 and "either --device or --all" in run.output


def test_no_operator_a_wrong_password_or_another_role_is_a_clear_error_and_nothing_is_injected(line: Any) -> None:
    units: Line = line(1)
    [serial] = units.sim.serials()
    # the role is checked before the key store is opened: nobody is asked for its passphrase for nothing
    anonymous = units.inject("--device", serial, operator=None, NAIAD_KEYSTORE_PASSPHRASE="")
    assert anonymous.exit_code == 1 and "needs a logged-in operator" in anonymous.output, anonymous.output
    admin = units.inject("--device", serial, operator="root", NAIAD_KEYSTORE_PASSPHRASE="")
    assert admin.exit_code == 1 and "needs the operator role" in admin.output, admin.output
    assert "passphrase" not in anonymous.output + admin.output
    as_json = units.inject("--device", serial, "--json", operator="root")
    assert as_json.exit_code == 1 and "operator role" in json.loads(as_json.stdout)["message"]
    wrong = units.inject("--device", serial, stdin="not-the-password\n")
    assert wrong.exit_code == 1 and "password" in wrong.output.lower(), wrong.output
    for result in (anonymous, admin, as_json, wrong):
        _no_traceback(result)
    assert units.status(serial)["keys"] == []


def test_an_operator_token_from_operator_login_injects_and_status_matches_the_ledger(line: Any) -> None:
    units: Line = line(1)
    [serial] = units.sim.serials()
    login = units.naiad("operator", "login", "otto", operator=None, stdin=PASSWORDS["otto"] + "\n")
    assert login.exit_code == 0, login.output
    token = login.stdout.strip().splitlines()[0]
    run = units.inject("--device", serial, "--json", operator=None, NAIAD_OPERATOR=token)
    assert run.exit_code == 0, run.output
    [result] = json.loads(run.stdout)["results"]

    status = units.status(serial)
    assert status["state"] == "keyed" and status["identity_serial_number"]
    [key] = status["keys"]
    assert (key["initial_key_id"], key["kcv"]) == (result["initial_key_id"], result["kcv"])
    assert key["ksn"] == result["initial_key_id"] + "00000000"
    assert key["matches_ledger"] is True
    assert status["ledger"]["operator"] == "otto"
    assert status["ledger"]["certificate_serial"] == result["certificate_serial"].upper()

    shown_status = units.naiad("keys", "status", serial, operator=None)
    assert shown_status.exit_code == 0 and "keyed" in shown_status.output and key["kcv"] in shown_status.output


def test_inject_with_the_softhsm2_token_as_key_store(line: Any, softhsm_token: str) -> None:  # noqa: F811
    units: Line = line(2, token=softhsm_token)
    run = units.inject("--all", "--json")
    assert run.exit_code == 0, run.output
    results = json.loads(run.stdout)["results"]
    assert len({r["initial_key_id"] for r in results}) == 2
    for result in results:
        assert result["kcv"] == _expected_kcv(result["initial_key_id"])
        assert units.status(result["serial"])["keys"][0]["matches_ledger"] is True


def test_status_of_a_factory_unit_shows_no_keys(line: Any) -> None:
    units: Line = line(1)
    [serial] = units.sim.serials()
    status = units.status(serial)
    assert status["state"] == "factory" and status["keys"] == [] and status["ledger"] is None
    shown_status = units.naiad("keys", "status", serial, operator=None)
    assert shown_status.exit_code == 0 and f"Secure element of {serial}: factory: attestation key only" in (
        shown_status.output
    )


def test_inventory_add_list_inject_and_reconcile_round_trip(line: Any) -> None:
    units: Line = line(2, authorised=0)
    serials = units.sim.serials()
    added = units.naiad("keys", "inventory", "add", *serials, "--reference", "PO-5150", operator="root")
    assert added.exit_code == 0, added.output
    listed = json.loads(units.naiad("keys", "inventory", "list", "--json").stdout)["inventory"]
    assert [(u["serial"], u["reference"]) for u in listed] == [(s, "PO-5150") for s in serials]
    before = units.naiad("keys", "inventory", "reconcile", "--json")
    assert before.exit_code == 0 and json.loads(before.stdout)["not_injected"] == serials
    assert units.inject("--all").exit_code == 0
    after = units.naiad("keys", "inventory", "reconcile")
    assert after.exit_code == 0 and "2 authorised units, 2 keyed." in after.output, after.output


def test_help_table_and_status_follow_the_language(line: Any) -> None:
    units: Line = line(1)
    [serial] = units.sim.serials()

    def chinese(message: str) -> str:
        return i18n.translate(message, "zh_CN")

    helped = units.naiad("keys", "inject", "--help", operator=None, NAIAD_LANG="zh_CN")
    assert helped.exit_code == 0 and "--device" in helped.output
    assert chinese("Inject every attached unit in run mode.") in helped.output
    run = units.inject("--device", serial, NAIAD_LANG="zh_CN")
    assert run.exit_code == 0, run.output
    for heading in ("Key injection", "Initial Key ID", "Reconciliation", "Everything adds up.", "succeeded"):
        assert chinese(heading) in run.output, run.output
    status = units.naiad("keys", "status", serial, operator=None, NAIAD_LANG="zh_CN")
    assert status.exit_code == 0 and chinese("In the ledger") in status.output, status.output


def test_a_narrow_terminal_folds_the_ids_and_cuts_none(line: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from console import cli_common

    units: Line = line(2, authorised=1)
    allowed, stranger = units.sim.serials()
    monkeypatch.setattr(cli_common, "PIPED_WIDTH", 100)  # the width of a terminal the tables must fit
    run = units.inject("--device", allowed, "--device", stranger)
    assert run.exit_code == 1
    assert "…" not in run.output, run.output
    again = units.inject("--device", allowed)
    status = units.naiad("keys", "status", allowed, operator=None)
    assert "…" not in again.output + status.output, again.output + status.output
    [key] = units.status(allowed)["keys"]
    assert key["initial_key_id"] in again.output and key["kcv"] in status.output


def test_a_rekeyed_unit_succeeds_but_the_run_exits_1_with_the_reconciliation_finding(line: Any) -> None:
    units = line(1)
    [serial] = units.sim.serials()
    assert units.inject("--device", serial, stdin=f"{PASSWORDS['otto']}\n").exit_code == 0
    again = units.inject("--device", serial, "--json", stdin=f"{PASSWORDS['otto']}\n")
    answer = json.loads(again.stdout)
    assert again.exit_code == 1 and answer["ok"] and not answer["reconciliation"]["ok"]
    assert serial in answer["reconciliation"]["injected_more_than_once"]


def test_an_unknown_bdk_is_refused_before_the_key_store_is_opened(line: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    units = line(1)
    opened: list[str] = []
    monkeypatch.setattr(cli_inject, "open_key_store", opened.append)
    refused = units.inject("--device", units.sim.serials()[0], "--bdk", "nosuch", stdin=f"{PASSWORDS['otto']}\n")
    _no_traceback(refused)
    assert refused.exit_code == 1 and "No BDK nosuch is registered" in refused.output
    assert opened == []
