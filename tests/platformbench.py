"""A station enrolling units at a running sandbox, for the reliability test and bench/bench_platform.py.

The station is the real thing end to end: its RSA key made in a (software) key store and given to the sandbox's
seeded app, every request signed in the store, a :class:`PlatformClient` with short backoff, the ledger's
:class:`Outbox`, and the flows of :mod:`provisioning.registration` run by the bench's operator (:data:`OPERATOR`).
:meth:`PlatformBench.enroll` drives a batch to the end the way an operator would through a flaky network:
register the inventory, bring each unit live (several at once), and run again what is still pending until
nothing is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from enrollment.client import PlatformClient
from enrollment.config import Merchant, PlatformConfig
from enrollment.sandbox.server import Faults, Sandbox
from keys.store import SigningAlgorithm, ensure_signing_key
from keys.store_software import SoftwareKeyStore
from provisioning.ledger import Ledger
from provisioning.operators import OperatorSession
from provisioning.outbox import Outbox
from provisioning.registration import EnrollmentStepResult, UnitToRegister, bring_live, register_inventory

PASSPHRASE = "correct horse battery staple"
MERCHANT = Merchant("2088000000000001", "S0001")
OPERATOR = OperatorSession("otto", "operator")
"""The bench's operator: registers the inventory and brings units live (registered in the bench's ledger)."""
MODEL = "DF2"
MAX_ROUNDS = 20
"""Rounds of "send again what is pending" before a batch counts as stuck (a few suffice at 50 % faults)."""
FAULTS = Faults(latency_rate=0.03, latency_seconds=2.0, error_rate=0.3, drop_rate=0.2, seed=20261130)
"""Issue 9's faults: 30 % HTTP 503 before any work, 20 % of replies dropped after commit, some 2 s spikes."""


def units(prefix: str, count: int) -> list[UnitToRegister]:
    return [UnitToRegister(f"{prefix}{n:05d}", MODEL) for n in range(count)]


class Stuck(AssertionError):
    """A batch that did not finish in :data:`MAX_ROUNDS` rounds, or a step the platform refused."""


@dataclass
class Rounds:
    """How a batch went: rounds needed (1 = nothing had to be sent again), the seconds each stage took (the
    resending included) and the results of every round."""

    inventory: int = 0
    live: int = 0
    inventory_seconds: float = 0.0
    live_seconds: float = 0.0
    results: list[EnrollmentStepResult] = field(default_factory=list)


class PlatformBench:
    """A station (key store, ledger, client, outbox) talking to ``sandbox`` as its seeded app."""

    def __init__(
        self,
        sandbox: Sandbox,
        folder: Path,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.01,
        max_backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.config = sandbox.station_config()
        self.store = SoftwareKeyStore(PASSPHRASE, folder / "keystore.json", scrypt_n=2**10)
        public, _made = ensure_signing_key(self.store, self.config.key_label, SigningAlgorithm.RSA_2048)
        pem = load_der_public_key(public).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        sandbox.set_app_key(self.config.app_id, pem)
        self.ledger = Ledger.open(f"sqlite:///{folder / 'ledger.sqlite'}", station="bench-1")
        self.ledger.register_operator(OPERATOR.operator, OPERATOR.role)
        self._options: dict[str, Any] = {
            "attempts": attempts,
            "backoff_seconds": backoff_seconds,
            "max_backoff_seconds": max_backoff_seconds,
            **({"sleep": sleep} if sleep is not None else {}),
        }
        self.client = self.platform_client(self.config)
        self.outbox = Outbox(self.ledger, self.client)
        self._ca = folder / "platform-ca.pem"
        self._ca.write_text(sandbox.ca_certificate, encoding="ascii")

    def platform_client(self, config: PlatformConfig) -> PlatformClient:
        """A client for ``config`` signing with this station's key in the store."""
        label = config.key_label
        return PlatformClient(config, lambda data: self.store.sign(label, data), **self._options)

    def enroll(self, batch: Sequence[UnitToRegister], *, workers: int = 4) -> Rounds:
        """Register ``batch`` in the inventory, then bind, activate and enrol each unit, ``workers`` at once; what
        the platform did not answer is sent again until nothing is pending.  Raises :class:`Stuck`."""
        rounds = Rounds()
        started = time.monotonic()
        rounds.results += register_inventory(self.outbox, self.config.supplier_id, batch, session=OPERATOR)
        rounds.inventory = 1 + self.settle()
        rounds.inventory_seconds = time.monotonic() - started
        remaining = [unit.serial for unit in batch]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            while remaining:
                rounds.live += 1
                if rounds.live > MAX_ROUNDS:
                    raise Stuck(f"{len(remaining)} units not live after {MAX_ROUNDS} rounds")
                runs = list(pool.map(self._bring_live, remaining))
                for run in runs:
                    rounds.results += run
                    if run[-1].status == "refused":
                        raise Stuck(f"{run[-1].serial}: {run[-1].step} refused: {run[-1].error}")
                remaining = [run[-1].serial for run in runs if not all(step.ok for step in run)]
        self.settle()
        rounds.live_seconds = time.monotonic() - started - rounds.inventory_seconds
        return rounds

    def settle(self) -> int:
        """Send the pending calls again until there are none; how many rounds that took."""
        for round_number in range(MAX_ROUNDS + 1):
            if not self.outbox.pending():
                return round_number
            self.outbox.resume()
        raise Stuck(f"{len(self.outbox.pending())} calls still pending after {MAX_ROUNDS} rounds")

    def devices(self) -> list[dict[str, Any]]:
        """The sandbox's own view of the units (``GET /sandbox/devices``)."""
        response = requests.get(f"{self.sandbox.base_url}/sandbox/devices", timeout=30, verify=str(self._ca))
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def close(self) -> None:
        self.client.close()
        self.ledger.close()
        self.store.close()

    def _bring_live(self, serial: str) -> list[EnrollmentStepResult]:
        return bring_live(self.outbox, self.config.supplier_id, serial, MERCHANT, session=OPERATOR)
