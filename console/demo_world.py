"""The demo's world: simulated units, the sandbox platform, a software key store with demo keys, operators, a
signed firmware bundle the station trusts, and the units authorised in the inventory; all in one directory.

``naiad demo``, the tests and the benches share it.  It lives in ``console/`` because only the composition root
knows the units are simulated.  Every part is the real one the station uses, started the way its own command
starts it (``naiad sim start --detach``, ``naiad platform serve``, ``naiad platform keygen``, ``naiad keys
ceremony load-bdk`` and ``make-ca``, ``naiad operator add``, ``naiad keys inventory add``): nothing is faked.

Secrets (the key store's passphrase, the operators' passwords, the BDK's components) are made fresh for each
world and kept in memory; a ``naiad`` subprocess gets the passphrase and a session token through :meth:`env`,
as the existing design does (``NAIAD_KEYSTORE_PASSPHRASE``, ``NAIAD_OPERATOR``).  Leaving the ``with`` block,
by an error or Ctrl-C too, stops the simulator and the sandbox and closes everything.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from i18n import N_
from terminal.errors import NaiadError

from .composition import SIM_ENV, Wiring

if TYPE_CHECKING:
    from enrollment.config import Merchant, PlatformConfig
    from enrollment.sandbox.server import Sandbox
    from keys.store import KeyStore
    from provisioning.ledger import Ledger
    from provisioning.operators import OperatorSession
    from provisioning.outbox import Outbox
    from provisioning.station import Station
    from provisioning.steps import Resources
    from terminal.events import Listener

LOG = logging.getLogger(__name__)

MODEL = "df2"
BDK_LABEL = "demo-bdk"
BDK_ID = bytes.fromhex("DE110001")
"""The demo BDK's ID: the first half of every Initial Key ID it issues (a fresh BDK each world, under this ID)."""
FIRMWARE_VERSION = "2.0.0"
UPDATE_VERSION = "2.1.0"
PURCHASE_ORDER = "PO-DEMO"
OPERATORS = {
    "admin": "demo-admin",
    "operator": "demo-operator",
    "installer": "demo-installer",
    "support": "demo-support",
}
"""The demo's accounts by role; the custodians are :data:`CUSTODIANS`."""
CUSTODIANS = ("demo-custodian-1", "demo-custodian-2")
SESSION_MINUTES = 12 * 60
DATA_ENV, CONFIG_ENV, LEDGER_ENV = "NAIAD_DATA_DIR", "NAIAD_CONFIG_DIR", "NAIAD_LEDGER"
PASSPHRASE_ENV, KEYSTORE_ENV, TOKEN_ENV = "NAIAD_KEYSTORE_PASSPHRASE", "NAIAD_KEYSTORE", "NAIAD_OPERATOR"
PLATFORM_ENV = "NAIAD_PLATFORM_CONFIG"


class DemoWorldError(NaiadError):
    """The demo's world could not be set up or used as asked."""


class DemoWorldNotStarted(DemoWorldError):
    message = N_("The demo's world is not running")
    remedy = N_("Use it inside its 'with' block.")


class DemoSandboxDidNotStart(DemoWorldError):
    message = N_("The demo's sandbox platform did not start")
    remedy = N_("Read its log {log}.")


class DemoBdkMismatch(DemoWorldError):
    message = N_("The ledger already registers a BDK labelled {label} that this demo's key store does not hold")
    remedy = N_("Give the demo an empty ledger, or a fresh directory.")


def _secret() -> str:
    return secrets.token_urlsafe(24)


class DemoWorld:
    """The whole demo set-up under ``root`` with ``units`` simulated df2 units; use it as a context manager.

    ``firmware_mib``: the bundle's system image size; ``bandwidth_mbps``: the cap of every simulated link
    (None: none); ``ledger_url``: a shared ledger (PostgreSQL), else SQLite in the world's data directory;
    ``calibration_views``: fewer calibration views for quick runs (None: the step's default);
    ``sandbox_process``: run the sandbox platform as ``naiad platform serve`` in a child process, as a station
    sees a real platform (remote), instead of in a thread of this process; :attr:`sandbox` is then not available
    (its faults cannot be set from here).

    While it is open, this process's NAIAD_DATA_DIR and NAIAD_CONFIG_DIR point into ``root`` (the trust store and
    the key store are found there), so one process holds one world at a time."""

    def __init__(
        self,
        root: Path,
        units: int,
        *,
        firmware_mib: int = 8,
        bandwidth_mbps: float | None = None,
        ledger_url: str | None = None,
        calibration_views: int | None = None,
        sandbox_process: bool = False,
    ) -> None:
        self.root = Path(root).resolve()
        self.units = units
        self.firmware_mib = firmware_mib
        self.bandwidth_mbps = bandwidth_mbps
        self.calibration_views = calibration_views
        self.sandbox_process = sandbox_process
        self.data_dir = self.root / "data"
        self.config_dir = self.root / "config"
        self.sim_dir = self.root / "sim"
        self.reports_dir = self.root / "reports"
        self.platform_config_path = self.config_dir / "platform.toml"
        self.platform_dir = self.root / "platform"
        self.bundle_path = self.root / "firmware" / f"{MODEL}-{FIRMWARE_VERSION}.zip"
        self.update_path = self.root / "firmware" / f"{MODEL}-{UPDATE_VERSION}.zip"
        self.release_key_dir = self.root / "firmware" / "demo-release-key"
        self.ledger_url = ledger_url or f"sqlite:///{self.data_dir / 'ledger.sqlite'}"
        self.wiring = Wiring(self.sim_dir)
        self.serials: list[str] = []
        self.bdk_kcv: bytes | None = None
        self.platform: PlatformConfig | None = None
        self._passphrase = _secret()
        self._passwords = {name: _secret() for name in (*OPERATORS.values(), *CUSTODIANS)}
        self._tokens: dict[str, str] = {}
        self._stack = ExitStack()
        self._sim_thread: threading.Thread | None = None
        self._sim_error: BaseException | None = None
        self._started = False
        self._ledger: Ledger | None = None
        self._store: KeyStore | None = None
        self._sandbox: Sandbox | None = None
        self._sandbox_child: subprocess.Popen[bytes] | None = None
        self._stations: dict[str, Station] = {}
        self._outboxes: dict[str, Outbox] = {}

    def __repr__(self) -> str:  # no secret in a repr
        return f"DemoWorld(root={str(self.root)!r}, units={self.units}, started={self._started})"

    # --- life ----------------------------------------------------------------------------------------

    def __enter__(self) -> DemoWorld:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the simulator and the sandbox, close the stations, outboxes and key store; the directory stays."""
        try:
            self._stack.close()
        finally:
            self._started = False
            self._stations.clear()
            self._outboxes.clear()
            self._ledger = self._store = self._sandbox = None

    def _start(self) -> None:
        for folder in (self.data_dir, self.config_dir, self.reports_dir, self.bundle_path.parent, self.platform_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._point_dirs()
        self._start_simulator()
        self._open_ledger()
        self._add_operators()
        self._open_key_store()
        self._ceremonies()
        self._simulator_ready()
        self._start_sandbox()
        self._make_bundles()
        self._authorise()
        self._started = True

    def _point_dirs(self) -> None:
        """This process's data and configuration directories inside the world (given back on close): the trust
        store, the default key store and the ledger are looked up there."""
        wanted = {DATA_ENV: str(self.data_dir), CONFIG_ENV: str(self.config_dir)}
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)

        def give_back() -> None:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

        self._stack.callback(give_back)

    def _start_simulator(self) -> None:
        """Start the simulator in the background (``naiad sim start --detach``): it comes up while the ledger,
        the operators and the keys are made; :meth:`_simulator_ready` waits for it."""
        from simulator import launcher

        faults: dict[str, float] = {}
        if self.bandwidth_mbps:
            faults["bandwidth_mbps"] = self.bandwidth_mbps

        def start() -> None:
            try:
                status = launcher.start_detached(self.sim_dir, self.units, [MODEL], faults)
                self.serials = [t["serial"] for t in status["terminals"]]
            except BaseException as exc:  # handed to the main thread by _simulator_ready
                self._sim_error = exc

        self._sim_thread = threading.Thread(target=start, name="naiad-demo-sim", daemon=True)
        self._sim_thread.start()
        self._stack.callback(self._stop_simulator)

    def _simulator_ready(self) -> None:
        if self._sim_thread is not None:
            self._sim_thread.join()
        if self._sim_error is not None:
            raise self._sim_error

    def _stop_simulator(self) -> None:
        from simulator import launcher
        from simulator.control import SimControl

        if self._sim_thread is not None:
            self._sim_thread.join()  # start_detached gives up by itself after its timeout
        if SimControl(self.sim_dir).running():
            launcher.stop(self.sim_dir)

    def _open_ledger(self) -> None:
        from provisioning.ledger import Ledger

        self._ledger = self._stack.enter_context(Ledger.open(self.ledger_url))

    @property
    def _own(self) -> Ledger:
        if self._ledger is None:
            raise DemoWorldNotStarted()
        return self._ledger

    def ledger(self, station: str | None = None) -> Ledger:
        """A new connection to the world's ledger as station ``station`` (default: this machine's station name);
        close it (it is a context manager)."""
        from provisioning.ledger import Ledger

        return Ledger.open(self.ledger_url, station=station)

    def _add_operators(self) -> None:
        """The demo's admin (the bootstrap), then the others by the admin, each with a token session."""
        from provisioning import operators as ops

        ledger = self._own
        known = {o.name for o in ledger.operators()}
        admin = OPERATORS["admin"]
        if admin not in known:
            ops.add_operator(ledger, None, admin, ops.ROLE_ADMIN, self._passwords[admin])
        root = ops.login(ledger, admin, self._passwords[admin])
        wanted = {**{name: role for role, name in OPERATORS.items()}, **dict.fromkeys(CUSTODIANS, ops.ROLE_CUSTODIAN)}
        for name, role in wanted.items():
            if name not in known and name != admin:
                ops.add_operator(ledger, root, name, role, self._passwords[name])
        for role, name in OPERATORS.items():
            self._tokens[role] = ops.open_session(ledger, name, self._passwords[name], SESSION_MINUTES)[1]

    def _open_key_store(self) -> None:
        from keys.store_software import SoftwareKeyStore, default_path

        self._store = self._stack.enter_context(SoftwareKeyStore(self._passphrase, default_path()))

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            raise DemoWorldNotStarted()
        return self._store

    def _ceremonies(self) -> None:
        """The demo BDK loaded under dual control from two fresh random components, and the provisioning CA, each
        before the two demo custodians logged in: what 'naiad keys ceremony load-bdk' and 'make-ca' do."""
        import hashlib

        from keys.ca import DEFAULT_LABEL, ProvisioningCA
        from keys.ceremony import Ceremony
        from keys.kcv import SHOWN_LENGTH, aes_cmac_kcv
        from provisioning import operators as ops

        ledger, store = self._own, self.store
        registered = ledger.bdk(BDK_LABEL)
        if registered is not None:
            if BDK_LABEL not in store.labels() or store.bdk_kcv(BDK_LABEL) != registered.kcv:
                raise DemoBdkMismatch(label=BDK_LABEL)
            self.bdk_kcv = registered.kcv
        else:
            with Ceremony(BDK_LABEL, len(CUSTODIANS)) as ceremony:
                for custodian in CUSTODIANS:
                    session = ops.login(ledger, custodian, self._passwords[custodian])
                    ceremony.admit(ops.require_role(session, ops.ROLE_CUSTODIAN).operator)
                    component = bytearray(secrets.token_bytes(16))
                    ceremony.add(custodian, component, aes_cmac_kcv(bytes(component))[:SHOWN_LENGTH])
                kcv = ceremony.combine(store)
                try:
                    ledger.as_operator(CUSTODIANS[0]).register_bdk(BDK_LABEL, BDK_ID, kcv, "ceremony", CUSTODIANS)
                except BaseException:
                    ceremony.take_back(store, N_("the ledger did not record it"))
                    raise
                ceremony.recorded()
            self.bdk_kcv = kcv
        if DEFAULT_LABEL not in store.signing_labels() or store.certificate(DEFAULT_LABEL) is None:
            for custodian in CUSTODIANS:
                ops.require_role(ops.login(ledger, custodian, self._passwords[custodian]), ops.ROLE_CUSTODIAN)
            ProvisioningCA.ensure(store, DEFAULT_LABEL, f"Naiad provisioning CA ({ledger.station})")
            fingerprint = hashlib.sha256(store.signing_public_key(DEFAULT_LABEL)).hexdigest().upper()
            details = {"fingerprint": fingerprint, "custodians": list(CUSTODIANS)}
            ledger.as_operator(CUSTODIANS[0]).audit("ca.created", f"ca:{DEFAULT_LABEL}", details)

    def _start_sandbox(self) -> None:
        """The sandbox platform in a thread of this process (or, ``sandbox_process``, a child process), the
        station's RSA key registered with it (what 'naiad platform keygen' makes), its configuration written, and
        the units' face-pay app given access."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

        from enrollment.sandbox.server import Sandbox
        from keys.store import SigningAlgorithm, ensure_signing_key
        from simulator.control import SimControl

        if self.sandbox_process:
            self._serve_sandbox()
            return
        sandbox = self._sandbox = Sandbox.start(self.platform_dir / "sandbox.sqlite", port=0)
        self._stack.callback(sandbox.stop)
        config = self.platform = sandbox.station_config()
        public, _made = ensure_signing_key(self.store, config.key_label, SigningAlgorithm.RSA_2048)
        pem = load_der_public_key(public).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        sandbox.set_app_key(config.app_id, pem)
        self.platform_config_path.write_text(config.dumps(), encoding="utf-8")
        SimControl(self.sim_dir).call("platform", config=sandbox.terminal_config())

    def _serve_sandbox(self) -> None:
        """``naiad platform serve`` in a child process, given the station's key; it writes the station's and the
        units' configuration, which this waits for."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

        from enrollment.config import PlatformConfig
        from enrollment.sandbox.seed import APP_ID
        from keys.store import SigningAlgorithm, ensure_signing_key
        from simulator.control import SimControl

        public, _made = ensure_signing_key(self.store, f"platform-{APP_ID}", SigningAlgorithm.RSA_2048)
        key_path, terminal_path = self.platform_dir / "station-key.pem", self.platform_dir / "terminal.json"
        key_path.write_bytes(load_der_public_key(public).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
        for old in (self.platform_config_path, terminal_path):
            old.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "console.cli", "platform", "serve", "--port", "0"]
        argv += ["--db", str(self.platform_dir / "sandbox.sqlite"), "--app-key", str(key_path)]
        argv += ["--station-config", str(self.platform_config_path), "--terminal-config", str(terminal_path)]
        with open(self.platform_dir / "serve.log", "wb") as log:
            child = self._sandbox_child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._stack.callback(self._stop_sandbox_child)
        deadline = time.monotonic() + 60
        while not terminal_path.exists():  # written after the station's, each whole (atomic_output)
            if child.poll() is not None or time.monotonic() > deadline:
                raise DemoSandboxDidNotStart(log=str(self.platform_dir / "serve.log"))
            time.sleep(0.05)
        self.platform = PlatformConfig.read(self.platform_config_path)
        SimControl(self.sim_dir).call("platform", config=json.loads(terminal_path.read_text(encoding="utf-8")))

    def _stop_sandbox_child(self) -> None:
        child, self._sandbox_child = self._sandbox_child, None
        if child is None:
            return
        child.terminate()  # SIGTERM: 'naiad platform serve' stops the sandbox cleanly
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise DemoWorldNotStarted()
        return self._sandbox

    def _make_bundles(self) -> None:
        """The signed bundle the bulk recipe flashes and a newer one the on-site recipe updates to, signed with
        a demo release key the station's trust store (in the world's configuration directory) now holds."""
        from .demo_bundle import MiB, make_demo_bundle

        for path, version in ((self.bundle_path, FIRMWARE_VERSION), (self.update_path, UPDATE_VERSION)):
            if not path.exists():
                make_demo_bundle(
                    path,
                    version=version,
                    model=MODEL,
                    key_dir=self.release_key_dir,
                    system_size=self.firmware_mib * MiB,
                )

    def update_bundle(self, mib: int) -> Path:
        """A signed bundle of the newer version (:data:`UPDATE_VERSION`, same release key) with a system image of
        ``mib`` MiB, made on first use: what an on-site update of that size flashes."""
        from .demo_bundle import MiB, make_demo_bundle

        if mib == self.firmware_mib:
            return self.update_path
        path = self.update_path.with_name(f"{MODEL}-{UPDATE_VERSION}-{mib}mib.zip")
        if not path.exists():
            make_demo_bundle(
                path, version=UPDATE_VERSION, model=MODEL, key_dir=self.release_key_dir, system_size=mib * MiB
            )
        return path

    def _authorise(self) -> None:
        self._own.as_operator(OPERATORS["admin"]).inventory_add(self.serials, PURCHASE_ORDER)

    # --- what users of the world ask for -------------------------------------------------------------

    @property
    def supplier_id(self) -> str:
        """The distributor's supplier id at the sandbox platform (the owner of the units' inventory)."""
        if self.platform is None:
            raise DemoWorldNotStarted()
        return self.platform.supplier_id

    @property
    def bdk_label(self) -> str:
        return BDK_LABEL

    def platform_view(self, name: str) -> Any:
        """The sandbox's own view ``name`` (``devices``, ``trades``...: GET /sandbox/<name>) as JSON, to check
        what reached the platform."""
        import requests

        from enrollment.gateway import GATEWAY_PATH

        config = self.platform
        if config is None or config.ca_certificate is None:
            raise DemoWorldNotStarted()
        ca = self.platform_dir / "ca.pem"
        if not ca.exists():
            ca.write_text(config.ca_certificate, encoding="ascii")
        base_url = config.url.removesuffix(GATEWAY_PATH)
        answer = requests.get(f"{base_url}/sandbox/{name}", verify=str(ca), timeout=30)
        answer.raise_for_status()
        return answer.json()

    def token(self, role: str) -> str:
        """The session token of the demo's operator with ``role`` (for NAIAD_OPERATOR)."""
        return self._tokens[role]

    def session(self, role: str) -> OperatorSession:
        from provisioning import operators as ops

        return ops.resume_session(self._own, self.token(role))

    def station(self, role: str) -> Station:
        """The station over the world's units, its ledger writing as the demo's ``role`` operator (one per role)."""
        if not self._started:
            raise DemoWorldNotStarted()
        station = self._stations.get(role)
        if station is None:
            station = self._stations[role] = self.wiring.station(self.ledger_url)
            self._stack.callback(station.close)
            station.act_as(OPERATORS[role])
        return station

    def outbox(self, role: str) -> Outbox:
        """The platform's outbox of ``role``'s station (signing with the station's key in the key store)."""
        from .platform_option import open_outbox

        found = self._outboxes.get(role)
        if found is None:
            found = self._stack.enter_context(
                open_outbox(self.station(role), str(self.platform_config_path), self.store)
            )
            self._outboxes[role] = found
        return found

    def resources(
        self, role: str, listener: Listener | None = None, merchant: Merchant | None = None, **extra: Any
    ) -> Resources:
        """What the steps of a batch run by the demo's ``role`` operator get; ``merchant`` defaults to the
        sandbox's test merchant and store; ``extra`` sets other :class:`Resources` fields (``program``...)."""
        from .station_resources import build_resources

        config = self.platform
        assert config is not None
        return build_resources(
            self.wiring,
            self.station(role),
            self.session(role),
            listener=listener,
            store=self.store,
            outbox=self.outbox(role),
            supplier_id=config.supplier_id,
            merchant=merchant or config.test_merchant,
            reports_dir=self.reports_dir,
            **extra,
        )

    def overrides(self, recipe: str) -> dict[str, str]:
        """The ``--set`` values (``STEP.SETTING``: value) a built-in recipe needs in this world: the bundle, the
        BDK's label, and fewer calibration views when the world was asked for them."""
        values: dict[str, str] = {}
        if recipe == "distributor-bulk":
            values = {"flash.bundle": str(self.bundle_path), "inject.bdk": BDK_LABEL}
            if self.calibration_views is not None:
                values["calibrate.views"] = str(self.calibration_views)
        elif recipe == "installer-onsite":
            values = {"firmware-update.bundle": str(self.update_path)}
        return values

    def set_args(self, recipe: str) -> list[str]:
        """:meth:`overrides` as ``naiad provision`` arguments."""
        return [arg for key, value in self.overrides(recipe).items() for arg in ("--set", f"{key}={value}")]

    def env(self, role: str = "operator") -> dict[str, str]:
        """The variables a ``naiad`` subprocess needs to work in this world as the demo's ``role`` operator
        (add them to ``os.environ``).  They hold the key store's passphrase and a session token: hand them to
        a child process only, never print or write them."""
        return {
            DATA_ENV: str(self.data_dir),
            CONFIG_ENV: str(self.config_dir),
            SIM_ENV: str(self.sim_dir),
            LEDGER_ENV: self.ledger_url,
            PLATFORM_ENV: str(self.platform_config_path),
            KEYSTORE_ENV: "software",
            PASSPHRASE_ENV: self._passphrase,
            TOKEN_ENV: self.token(role),
        }

    def simulator(self, command: str, **arguments: Any) -> Any:
        """A control command to the world's simulator (``faults``, ``unplug``, ``scene``...)."""
        from simulator.control import SimControl

        return SimControl(self.sim_dir).call(command, **arguments)
