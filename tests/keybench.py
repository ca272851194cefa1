"""A key-injection bench for tests and benches: a ledger with an operator, a BDK in a store, an inventory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from console.composition import Wiring
from keys.ca import ProvisioningCA
from keys.kcv import aes_cmac_kcv
from keys.store import KeyStore
from keys.store_software import SoftwareKeyStore
from provisioning.injection import InjectionRun, inject_units
from provisioning.ledger import Ledger
from provisioning.operators import OperatorSession
from provisioning.station import Station
from terminal.events import Listener

BDK_LABEL = "bdk-2026"
BDK_ID = bytes.fromhex("0A1B2C3D")
# two custodians' components of the test BDK: public test data, the scan test looks for them and their XOR
COMPONENTS = (bytes.fromhex("00112233445566778899AABBCCDDEEFF"), bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0"))
BDK = bytes(a ^ b for a, b in zip(*COMPONENTS, strict=True))
PASSPHRASE = "correct horse battery staple"
OPERATOR = OperatorSession("otto", "operator")
CUSTODIANS = ("cara", "carl")


def software_store(directory: Path) -> SoftwareKeyStore:
    return SoftwareKeyStore(PASSPHRASE, directory / "keystore.json", scrypt_n=2**10)


def prepare_ledger(ledger: Ledger) -> None:
    """The bench's operators and the test BDK's registration, once per ledger."""
    known = {o.name for o in ledger.operators()}
    for name, role in (("root", "admin"), (OPERATOR.operator, OPERATOR.role), *((c, "custodian") for c in CUSTODIANS)):
        if name not in known:
            ledger.register_operator(name, role)
    if ledger.bdk(BDK_LABEL) is None:
        ledger.as_operator(CUSTODIANS[0]).register_bdk(BDK_LABEL, BDK_ID, aes_cmac_kcv(BDK), "ceremony", CUSTODIANS)


def load_bdk(store: KeyStore) -> None:
    """The test BDK into ``store`` from its components, and the provisioning CA, as the ceremonies would."""
    if BDK_LABEL not in store.labels():
        assert store.combine_components(BDK_LABEL, list(COMPONENTS)) == aes_cmac_kcv(BDK)
    ProvisioningCA.ensure(store)


@dataclass
class KeyBench:
    """A station over a simulator with its ledger, a key store holding the test BDK and the manufacturer roots."""

    station: Station
    store: KeyStore
    roots: list[bytes]

    @classmethod
    def open(cls, sim_dir: Path, ledger_url: str, store: KeyStore, station_name: str = "bench-1") -> KeyBench:
        wiring = Wiring(sim_dir)
        ledger = Ledger.open(ledger_url, station=station_name)
        station = Station(wiring.discovery(), ledger=ledger)
        prepare_ledger(ledger)
        load_bdk(store)
        return cls(station, store, wiring.manufacturer_roots())

    @property
    def ledger(self) -> Ledger:
        return self.station.ledger

    def authorise(self, serials: Sequence[str]) -> None:
        self.ledger.as_operator("root").inventory_add(list(serials), "PO-4711")

    def inject(
        self,
        serials: Sequence[str],
        listener: Listener | None = None,
        *,
        session: OperatorSession | None = OPERATOR,
        max_workers: int | None = None,
    ) -> InjectionRun:
        return inject_units(
            self.station,
            self.store,
            session,
            BDK_LABEL,
            self.roots,
            serials,
            listener,
            max_workers=max_workers,
        )

    def close(self) -> None:
        self.station.close()
        self.store.close()


def station_main(sim_dir: str, ledger_url: str, store_dir: str, station_name: str) -> None:
    """One station process (``python keybench.py ...``): inject every unit of its simulator, print the results.

    Two of these on one PostgreSQL ledger are the test that Initial Key IDs are never shared across stations."""
    import json

    bench = KeyBench.open(Path(sim_dir), ledger_url, software_store(Path(store_dir)), station_name)
    try:
        serials = [d.serial for d in bench.station.devices() if d.serial]
        bench.authorise(serials)
        run = bench.inject(serials, max_workers=8)
        print(json.dumps(run.as_dict()))
    finally:
        bench.close()


if __name__ == "__main__":
    import sys

    station_main(*sys.argv[1:5])
