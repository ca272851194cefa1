"""Issue 7 point 8: after a key ceremony, an injection and refused attacks, no clear key is found anywhere.

The test runs what a line does, through the command line, in both languages: two custodians load a BDK by
ceremony, an admin authorises the units, an operator injects them, then injects again through a key store that
tampers with the key block and one that reports a wrong KCV (both refused).  It then searches, for every key
involved (the two components, the BDK, each Initial Key, each one-time KBPK and each ECDH shared secret), in
raw bytes, hex (upper and lower case) and base64:

- every log record of every logger (the wire log included) and the text of the commands' output and errors;
- every table of the ledger (as SQL) and its database files;
- every file the station and the simulator wrote (the key store, the ledger, the simulator's state and logs,
  and SoftHSM2's token directory), which includes the secure elements' stores: they seal their keys.  The
  simulated flash partitions are left out: gigabytes of sparse firmware images no key step writes to.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_cli_ceremony import ADMIN_PW, CUSTODIAN_PW, CUSTODIANS, keystore  # noqa: F401  (keystore: a fixture)
from test_keys_store import softhsm_token  # noqa: F401  (a fixture keystore uses)

from console.cli import cli
from keys import dukpt, kcv, session
from keys.store_pkcs11 import Pkcs11KeyStore
from keys.store_software import SoftwareKeyStore
from provisioning import operators as ops
from provisioning.ledger import Ledger
from terminal.client import WIRE

COMPONENTS = (bytes.fromhex("7D1E2A2B3C4D5E6F708192A3B4C5D6E7"), bytes.fromhex("1122334455667788990011223344AABB"))
BDK = bytes(a ^ b for a, b in zip(*COMPONENTS, strict=True))
BDK_ID = "5EC0DE01"
OPERATOR_PW = "operator-Secret-2207"


def _forms(key: bytes) -> list[bytes]:
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]


class Secrets:
    """Every key of the run, by name, and where any of them turned up."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {"component 1": COMPONENTS[0], "component 2": COMPONENTS[1], "BDK": BDK}
        self.hits: list[str] = []

    def add(self, name: str, key: bytes) -> None:
        self.keys[f"{name} {len(self.keys)}"] = bytes(key)

    def scan(self, where: str, data: bytes) -> None:
        for name, key in self.keys.items():
            if any(form in data for form in _forms(key)):
                self.hits.append(f"{name} in {where}")


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Secrets:
    """Records each KBPK and ECDH shared secret the station computes, so the scan looks for them too."""
    found = Secrets()
    agree, derive = session.agree, session.derive_kbpk

    def recording_agree(*args: Any) -> bytes:
        shared = agree(*args)
        found.add("ECDH shared secret", shared)
        return shared

    def recording_derive(*args: Any) -> bytes:
        kbpk = derive(*args)
        found.add("KBPK", kbpk)
        return kbpk

    monkeypatch.setattr(session, "agree", recording_agree)
    monkeypatch.setattr(session, "derive_kbpk", recording_derive)
    return found


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    WIRE.addHandler(caplog.handler)  # the wire log is muted unless someone attaches a handler: attach one
    WIRE.setLevel(logging.DEBUG)
    yield caplog
    WIRE.removeHandler(caplog.handler)


def _ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with Ledger.open(url, station="bench-1") as ledger:
        ops.add_operator(ledger, None, "root", "admin", ADMIN_PW)
        root = ops.login(ledger, "root", ADMIN_PW)
        for name in CUSTODIANS[:2]:
            ops.add_operator(ledger, root, name, "custodian", CUSTODIAN_PW)
        ops.add_operator(ledger, root, "otto", "operator", OPERATOR_PW)
    return url


def _sabotage(kind: str, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SoftwareKeyStore if kind == "software" else Pkcs11KeyStore
    if how == "tamper":
        wrap = store.wrap_tr31

        def tampered(self: Any, *args: Any) -> str:
            block = wrap(self, *args)
            return block[:-20] + ("0" if block[-20] != "0" else "1") + block[-19:]

        monkeypatch.setattr(store, "wrap_tr31", tampered)
    else:
        kcv_of = store.initial_key_kcv
        monkeypatch.setattr(store, "initial_key_kcv", lambda self, handle: bytes(5) if kcv_of(self, handle) else b"")


@pytest.mark.timeout(300)
def test_no_clear_key_escapes_a_ceremony_and_an_injection(
    sim_factory: Any,
    tmp_path: Path,
    keystore: str,  # noqa: F811
    recorded: Secrets,
    every_log_record: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    sim = sim_factory(terminals=3)
    serials = sim.serials()
    url = _ledger(tmp_path)
    outputs: list[Result] = []

    def naiad(*args: str, stdin: str = "", language: str = "en") -> Result:
        result = CliRunner().invoke(
            cli, ["--ledger", url, *args], input=stdin, env={"NAIAD_LANG": language, "NAIAD_OPERATOR": ""}
        )
        outputs.append(result)
        return result

    turns = "".join(
        f"{name}\n{CUSTODIAN_PW}\n{c.hex()}\n{kcv.shown(kcv.aes_cmac_kcv(c))}\n"
        for name, c in zip(CUSTODIANS, COMPONENTS, strict=False)
    )
    ceremony = naiad("keys", "ceremony", "load-bdk", "--label", "line", "--bdk-id", BDK_ID, stdin=turns)
    assert ceremony.exit_code == 0, ceremony.output
    two = "".join(f"{name}\n{CUSTODIAN_PW}\n" for name in CUSTODIANS[:2])
    assert naiad("keys", "ceremony", "make-ca", stdin=two).exit_code == 0
    assert naiad("--operator", "root", "keys", "inventory", "add", *serials, stdin=f"{ADMIN_PW}\n").exit_code == 0
    injected = naiad("--operator", "otto", "keys", "inject", "--all", "--json", stdin=f"{OPERATOR_PW}\n")
    assert injected.exit_code == 0, injected.output
    answer = json.loads(injected.stdout)
    assert len({r["initial_key_id"] for r in answer["results"]}) == 3

    for how, language in (("tamper", "en"), ("wrong_kcv", "zh_CN")):
        with monkeypatch.context() as patched:
            _sabotage(keystore, how, patched)
            refused = naiad(
                "--operator",
                "otto",
                "keys",
                "inject",
                "--device",
                serials[0],
                stdin=f"{OPERATOR_PW}\n",
                language=language,
            )
            assert refused.exit_code == 1 and "Traceback" not in refused.output

    with Ledger.open(url, station="audit") as ledger:
        issued = ledger.bdk("line")
        assert issued is not None and issued.issued == 5  # 3 injected, 2 refused: every ID's key is looked for
    for derivation_id in range(1, issued.issued + 1):
        ikid = bytes.fromhex(BDK_ID) + derivation_id.to_bytes(4)
        recorded.add("Initial Key", dukpt.initial_key(BDK, ikid))
    assert sum(name.startswith("KBPK") for name in recorded.keys) >= 5  # and the self-test's known answers

    for i, result in enumerate(outputs):
        recorded.scan(f"command {i} output", result.output.encode() + result.stderr_bytes)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            recorded.scan(f"command {i} exception", repr(result.exception).encode())
    for record in every_log_record.records:
        recorded.scan(f"log record {record.name}", f"{record.getMessage()} {record.args!r}".encode())
    with sqlite3.connect(url.removeprefix("sqlite:///")) as database:
        recorded.scan("the ledger's tables", "\n".join(database.iterdump()).encode())
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != "partitions"]
    assert any(p.name == "secure_element.json" for p in files) and any(p.name == "system.log" for p in files)
    for path in files:
        recorded.scan(str(path.relative_to(tmp_path)), path.read_bytes())
    assert recorded.hits == []
