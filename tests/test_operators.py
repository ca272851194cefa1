"""Operators who log in: bootstrap, administration, passwords, lockout, sessions, roles and the audit trail."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from console.cli import cli
from provisioning import operators as ops
from provisioning.ledger import ChainProblem, Ledger, db
from provisioning.ledger import audit as chain
from provisioning.station import Station
from terminal.discovery import Discovery

ROOT_PW = "root-Secret-8731"
IVY_PW = "ivy-Secret-2290"


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests check behaviour, not cost: a small scrypt keeps them fast (stored with each hash)."""
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger.open(url, station="bench-1") as opened:
        yield opened


def naiad(url: str, *args: str, stdin: str = "", **env: str) -> Result:
    return CliRunner().invoke(
        cli, ["--ledger", url, *args], input=stdin, env={"NAIAD_LANG": "en", "NAIAD_OPERATOR": "", **env}
    )


def _root_and_ivy(url: str) -> tuple[Result, Result]:
    """Through the CLI: the bootstrap admin root, who then adds the installer ivy."""
    root = naiad(url, "operator", "add", "root", "--role", "admin", stdin=f"{ROOT_PW}\n{ROOT_PW}\n")
    ivy_stdin = f"{ROOT_PW}\n{IVY_PW}\n{IVY_PW}\n"
    return root, naiad(url, "--operator", "root", "operator", "add", "ivy", "--role", "installer", stdin=ivy_stdin)


def _admin(ledger: Ledger) -> ops.OperatorSession:
    ops.add_operator(ledger, None, "root", "admin", ROOT_PW)
    return ops.login(ledger, "root", ROOT_PW)


# -- bootstrap and administration -------------------------------------------------------------------


def test_the_first_admin_needs_no_login_and_then_adding_needs_one(url: str) -> None:
    first = naiad(url, "operator", "add", "root", "--role", "admin", stdin=f"{ROOT_PW}\n{ROOT_PW}\n")
    assert first.exit_code == 0, first.output
    second = naiad(url, "operator", "add", "eve", "--role", "admin", stdin=f"{IVY_PW}\n{IVY_PW}\n")
    assert second.exit_code == 1 and "needs a logged-in operator" in second.output
    with Ledger.open(url, station="bench-1") as ledger:
        assert [o.name for o in ledger.operators()] == ["root"]


def test_bootstrap_makes_only_an_admin(ledger: Ledger) -> None:
    with pytest.raises(ops.RoleRequired):
        ops.add_operator(ledger, None, "ivy", "installer", IVY_PW)
    assert ledger.operators() == []


def test_an_admin_adds_lists_changes_and_disables_operators(url: str) -> None:
    root, added = _root_and_ivy(url)
    assert root.exit_code == added.exit_code == 0, added.output
    as_root = ("--operator", "root")
    listed = json.loads(naiad(url, "operator", "list", "--json").output)["operators"]
    assert [(o["name"], o["role"], o["can_log_in"]) for o in listed] == [
        ("ivy", "installer", True),
        ("root", "admin", True),
    ]
    new_pw = "ivy-Changed-5512"
    changed = naiad(url, *as_root, "operator", "passwd", "ivy", stdin=f"{ROOT_PW}\n{new_pw}\n{new_pw}\n")
    assert changed.exit_code == 0, changed.output
    with Ledger.open(url, station="bench-1") as ledger:
        with pytest.raises(ops.BadCredentials):
            ops.login(ledger, "ivy", IVY_PW)
        assert ops.login(ledger, "ivy", new_pw).role == "installer"
    assert naiad(url, *as_root, "operator", "disable", "ivy", stdin=f"{ROOT_PW}\n").exit_code == 0
    refused = naiad(url, "operator", "login", "ivy", stdin=f"{new_pw}\n")
    assert refused.exit_code == 1 and "ivy is disabled" in refused.output
    listed = json.loads(naiad(url, "operator", "list", "--json").output)["operators"]
    assert listed[0]["disabled"] is True and listed[0]["can_log_in"] is False


def test_an_operator_changes_their_own_password_but_no_one_elses(ledger: Ledger) -> None:
    root = _admin(ledger)
    ops.add_operator(ledger, root, "ivy", "installer", IVY_PW)
    ops.add_operator(ledger, root, "otto", "operator", IVY_PW)
    ivy = ops.login(ledger, "ivy", IVY_PW)
    ops.change_password(ledger, ivy, "ivy", "ivy-Own-choice-1")
    assert ops.login(ledger, "ivy", "ivy-Own-choice-1").operator == "ivy"
    with pytest.raises(ops.RoleRequired):
        ops.change_password(ledger, ivy, "otto", "otto-Taken-over-1")


def test_a_short_password_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ops.WeakPassword):
        ops.add_operator(ledger, None, "root", "admin", "short")


# -- passwords, lockout, disabled ---------------------------------------------------------------------


def test_hashes_are_salted_with_their_parameters_and_a_bad_hash_never_matches() -> None:
    one, two = ops.hash_password(ROOT_PW), ops.hash_password(ROOT_PW)
    assert one != two and one.startswith(f"scrypt${2**8}$8$1$") and ROOT_PW not in one
    assert ops.check_password(ROOT_PW, one) and not ops.check_password(IVY_PW, one)
    for broken in (
        None,
        "",
        "scrypt$x",
        one.replace("scrypt", "bcrypt"),
        one[:-2],
        f"scrypt${2**30}$8$1$00$00",
        f"scrypt$3$8$1${'00' * 16}${'00' * 32}",
    ):
        assert not ops.check_password(ROOT_PW, broken)


def test_wrong_passwords_are_counted_and_lock_the_operator_until_an_admin_resets(ledger: Ledger) -> None:
    root = _admin(ledger)
    ops.add_operator(ledger, root, "ivy", "installer", IVY_PW)
    for _attempt in range(ops.MAX_FAILED_LOGINS - 1):
        with pytest.raises(ops.BadCredentials) as wrong:
            ops.login(ledger, "ivy", "guess-guess-guess")
        assert type(wrong.value) is ops.BadCredentials
    with pytest.raises(ops.OperatorLocked):
        ops.login(ledger, "ivy", "guess-guess-guess")
    with pytest.raises(ops.OperatorLocked):
        ops.login(ledger, "ivy", IVY_PW)  # even the right password, once locked
    ops.change_password(ledger, root, "ivy", IVY_PW)
    assert ops.login(ledger, "ivy", IVY_PW).operator == "ivy"
    failed = [e for e in ledger.audit_entries() if e.action == "operator.login_failed"]
    assert [e.details["failed_logins"] for e in failed] == list(range(1, ops.MAX_FAILED_LOGINS + 1))
    assert {e.operator for e in failed} == {None}  # nobody was authenticated; ivy is the subject


def test_an_unknown_operator_gets_the_same_answer_as_a_wrong_password(ledger: Ledger) -> None:
    _admin(ledger)
    with pytest.raises(ops.BadCredentials) as unknown:
        ops.login(ledger, "nobody", ROOT_PW)
    with pytest.raises(ops.BadCredentials) as wrong:
        ops.login(ledger, "root", "not-the-password")
    assert str(unknown.value) == str(wrong.value)


def test_a_disabled_operator_can_neither_log_in_nor_use_an_open_session(ledger: Ledger) -> None:
    root = _admin(ledger)
    ops.add_operator(ledger, root, "ivy", "installer", IVY_PW)
    _session, token, _expires = ops.open_session(ledger, "ivy", IVY_PW)
    ops.disable_operator(ledger, root, "ivy")
    with pytest.raises(ops.OperatorDisabled):
        ops.login(ledger, "ivy", IVY_PW)
    with pytest.raises(ops.NotLoggedIn):  # disabling ended the session
        ops.resume_session(ledger, token)


# -- sessions --------------------------------------------------------------------------------------------


def test_a_token_works_until_it_expires_or_is_ended(ledger: Ledger) -> None:
    _admin(ledger)
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    _s, token, expires = ops.open_session(ledger, "root", ROOT_PW, minutes=10, now=now)
    assert expires == now + dt.timedelta(minutes=10)
    assert ops.resume_session(ledger, token, now=now + dt.timedelta(minutes=9)).role == "admin"
    with pytest.raises(ops.SessionExpired):
        ops.resume_session(ledger, token, now=expires)
    live = ops.resume_session(ledger, token, now=now)
    ops.close_session(ledger, live)
    with pytest.raises(ops.SessionExpired):
        ops.resume_session(ledger, token, now=now)


@pytest.mark.parametrize("change", ["flip", "truncate", "extend", "empty"])
def test_a_tampered_token_is_refused(ledger: Ledger, change: str) -> None:
    _admin(ledger)
    _s, token, _e = ops.open_session(ledger, "root", ROOT_PW)
    tampered = {
        "flip": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "truncate": token[:-1],
        "extend": token + "x",
        "empty": "",
    }[change]
    with pytest.raises(ops.NotLoggedIn):
        ops.resume_session(ledger, tampered)


def test_the_token_is_stored_only_as_a_hash(url: str, ledger: Ledger) -> None:
    _admin(ledger)
    _s, token, _e = ops.open_session(ledger, "root", ROOT_PW)
    raw = Path(url.removeprefix("sqlite:///")).read_bytes() + Path(url.removeprefix("sqlite:///") + "-wal").read_bytes()
    assert token.encode() not in raw and ROOT_PW.encode() not in raw


# -- roles ------------------------------------------------------------------------------------------------


def test_require_role_names_what_is_missing() -> None:
    with pytest.raises(ops.NotLoggedIn):
        ops.require_role(None, ops.ROLE_OPERATOR)
    admin = ops.OperatorSession("root", "admin")
    with pytest.raises(ops.RoleRequired) as refused:
        ops.require_role(admin, ops.ROLE_CUSTODIAN)  # roles do not nest: dual control holds for admins too
    assert "custodian" in str(refused.value) and "root" in str(refused.value)
    assert ops.require_role(ops.OperatorSession("cara", "custodian"), ops.ROLE_CUSTODIAN).operator == "cara"


def test_an_installer_may_not_administer_operators(url: str) -> None:
    _root_and_ivy(url)
    token = naiad(url, "operator", "login", "ivy", stdin=f"{IVY_PW}\n").stdout.strip()
    for args, stdin in (
        (("add", "mallory", "--role", "admin"), f"{IVY_PW}\n{IVY_PW}\n"),
        (("passwd", "root"), f"{IVY_PW}\n{IVY_PW}\n"),
        (("disable", "root"), ""),
    ):
        refused = naiad(url, "operator", *args, stdin=stdin, NAIAD_OPERATOR=token)
        assert refused.exit_code == 1 and "needs the admin role" in refused.output, refused.output
        assert "New password" not in refused.output  # refused before any password is typed
    with Ledger.open(url, station="bench-1") as ledger:
        assert [(o.name, o.disabled) for o in ledger.operators()] == [("ivy", False), ("root", False)]
        assert ops.login(ledger, "root", ROOT_PW).role == "admin"


# -- the audit trail names the operator -----------------------------------------------------------------


def test_audit_entries_and_operations_name_the_authenticated_operator(url: str) -> None:
    naiad(url, "operator", "add", "root", "--role", "admin", stdin=f"{ROOT_PW}\n{ROOT_PW}\n")
    token = naiad(url, "operator", "login", "root", stdin=f"{ROOT_PW}\n").stdout.strip()
    naiad(url, "operator", "add", "ivy", "--role", "installer", stdin=f"{IVY_PW}\n{IVY_PW}\n", NAIAD_OPERATOR=token)
    with Ledger.open(url, station="bench-1") as ledger:
        (registered,) = ledger.audit_entries(subject="operator:ivy")
        assert registered.operator == "root"
        station = Station(Discovery(), ledger=ledger)  # the CLI's station, once --operator or a token is checked
        station.act_as("root")
        station.ledger.device_seen("DF2A00001", "dragonfly-2")
        with station.ledger.operation("DF2A00001", "flash"):
            pass
        assert ledger.audit_entries(subject="device:DF2A00001")[-1].operator == "root"
        assert ledger.operations("DF2A00001")[0].operator == "root"
    assert naiad(url, "ledger", "verify").exit_code == 0


def test_commands_without_a_login_keep_working(url: str) -> None:
    verified = naiad(url, "ledger", "verify")
    assert verified.exit_code == 0 and "intact" in verified.output


# -- existing ledgers ------------------------------------------------------------------------------------


def test_a_ledger_from_revision_0002_migrates_and_its_operators_still_verify(url: str) -> None:
    from alembic import command

    engine = db.create_ledger_engine(url)
    with engine.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0001")
    at, stored = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "2026-01-01 00:00:00.000000"
    digest = chain.entry_hash(
        chain.GENESIS_HASH, entry_id=1, at=at, station="bench-1", operator=None, action="a", subject="s", details={}
    )
    with engine.begin() as connection:
        for statement in (
            f"INSERT INTO stations VALUES (1, 'bench-1', 'host', '{stored}')",
            f"INSERT INTO operators VALUES (1, 'alice', 'operator', '{stored}')",
            "INSERT INTO audit_log (id, at, station, action, subject, details, prev_hash, hash)"
            f" VALUES (1, '{stored}', 'bench-1', 'a', 's', '{{}}', '{chain.GENESIS_HASH}', '{digest}')",
            f"UPDATE audit_head SET entry_id = 1, hash = '{digest}'",
        ):
            connection.exec_driver_sql(statement)
    with engine.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0002")
    engine.dispose()
    with Ledger.open(url, station="bench-1") as ledger:
        assert ledger.current_revision() == db.HEAD_REVISION
        assert ledger.verify().ok
        resealed = [e for e in ledger.audit_entries() if e.details.get("revision") == "0003"]
        assert len(resealed) == 1 and set(resealed[0].seals or {}) == {"operators:1"}
        (alice,) = ledger.operators()
        assert (alice.has_password, alice.disabled) == (False, False)
        with pytest.raises(ops.BadCredentials):
            ops.login(ledger, "alice", "anything-at-all")
        root = _admin(ledger)  # nobody could log in yet: the first admin may still be made
        ops.change_password(ledger, root, "alice", IVY_PW)
        assert ops.login(ledger, "alice", IVY_PW).role == "operator"
        assert ledger.verify().ok
        engine = db.create_ledger_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE operators SET password_hash = 'scrypt$2$1$1$00$00' WHERE name = 'root'")
        engine.dispose()
        report = ledger.verify()
        assert (report.problem, report.table) == (ChainProblem.ROW_EDITED, "operators")


# -- no secret anywhere -------------------------------------------------------------------------------------


def test_no_password_hash_or_token_in_any_output(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = [
        *_root_and_ivy(url),
        naiad(url, "operator", "login", "ivy", stdin=f"{ROOT_PW}\n"),  # wrong password
        naiad(url, "operator", "list", "--json"),
        naiad(url, "operator", "list"),
    ]
    login = naiad(url, "operator", "login", "ivy", stdin=f"{IVY_PW}\n")
    token = login.stdout.strip()
    outputs += [
        naiad(url, "operator", "disable", "root", stdin="", NAIAD_OPERATOR=token),
        naiad(url, "ledger", "verify", "--json", NAIAD_OPERATOR=token),
        naiad(url, "operator", "logout", NAIAD_OPERATOR=token),
        naiad(url, "operator", "list", NAIAD_OPERATOR=token),  # an ended token
    ]
    assert json.loads(outputs[6].stdout)["ok"] is True
    with Ledger.open(url, station="bench-1") as ledger:
        hashes = [c.password_hash for n in ("root", "ivy") if (c := ledger.credentials(n)) and c.password_hash]
        audit = json.dumps([(e.operator, e.details, e.seals) for e in ledger.audit_entries()])
    secrets = [
        ROOT_PW,
        IVY_PW,
        token,
        *hashes,
        *(h.split("$")[-1] for h in hashes),
        *(h.split("$")[-2] for h in hashes),
    ]
    texts = [r.output for r in outputs] + [login.stderr, caplog.text, audit]
    for secret in secrets:
        assert len(secret) >= 10
        for text in texts:
            assert secret not in text


@pytest.mark.postgresql
def test_logins_sessions_and_lockout_on_postgresql(postgres_url: str) -> None:
    with Ledger.open(postgres_url, station="line-1") as ledger, Ledger.open(postgres_url, station="line-2") as other:
        root = _admin(ledger)
        with pytest.raises(ops.NotLoggedIn):  # the bootstrap is closed for every station on the database
            ops.add_operator(other, None, "eve", "admin", IVY_PW)
        ops.add_operator(ledger, root, "ivy", "installer", IVY_PW)
        for _attempt in range(ops.MAX_FAILED_LOGINS - 1):
            with pytest.raises(ops.BadCredentials):
                ops.login(other if _attempt % 2 else ledger, "ivy", "guess-guess-guess")
        with pytest.raises(ops.OperatorLocked):  # failures count across stations
            ops.login(other, "ivy", "guess-guess-guess")
        _s, token, _e = ops.open_session(ledger, "root", ROOT_PW)
        assert ops.resume_session(other, token).operator == "root"
        ops.disable_operator(other.as_operator("root"), ops.resume_session(other, token), "ivy")
        assert [e.operator for e in other.audit_entries(subject="operator:ivy")][-1] == "root"
        assert ledger.verify().ok


def test_a_stale_token_stops_only_the_commands_that_need_an_operator(url: str) -> None:
    _root_and_ivy(url)
    token = naiad(url, "operator", "login", "ivy", stdin=f"{IVY_PW}\n").stdout.strip()
    naiad(url, "operator", "logout", NAIAD_OPERATOR=token)
    verified = naiad(url, "ledger", "verify", "--json", NAIAD_OPERATOR=token)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"] is True
    assert "NAIAD_OPERATOR is not valid any more" in verified.stderr
    refused = naiad(url, "operator", "passwd", "ivy", NAIAD_OPERATOR=token)
    assert refused.exit_code == 1 and "NAIAD_OPERATOR is not valid any more" in refused.output
