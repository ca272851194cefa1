"""Inject payment keys into units: attestation, identity, certificate, key session, key block, KCV, ledger.

For each unit, in this order (docs/keys.md, "Injection"):

1. the unit's attestation chain must lead to a trusted manufacturer root and name the unit: a counterfeit or
   damaged unit gets nothing, not even a certificate;
2. the unit makes a fresh identity key pair in its secure element and returns a CSR, signed by its attestation
   key together with the station's challenge: the identity key is this attested unit's, made now;
3. the station's provisioning CA (its key in the key store) certifies the identity key; the unit installs the
   certificate and pins the CA;
4. key session: ECDH P-256 between a fresh station key and the unit's identity key, with a nonce from each
   side; the unit signs the transcript with its identity key, the station signs what it sends with the CA key;
   HKDF gives a one-time AES-256 key block protection key (KBPK);
5. the ledger allocates the Initial Key ID in its own transaction (never issued again, whatever happens next);
   the key store derives the Initial Key and exports it only as a TR-31 version D block (usage B1, KS = the
   Initial Key ID) under the KBPK;
6. the unit unwraps the block and holds the key pending; it answers with the Initial Key ID, KSN and KCV; the
   station compares the KCV with the key store's and only then tells the unit to commit;
7. the ledger records Initial Key ID, KCV, certificate serial, operator and time.

A unit not in the authorised inventory is refused before anything is sent to it.  A step that fails leaves the
unit's old key set in place (the unit commits only on the station's signed word) and marks the Initial Key ID
as failed in the ledger, so a retry gets a new one.  No key leaves the key store in clear; the KBPK exists in
this process's memory for one unit's injection.

Progress goes out as :mod:`terminal.events` (step ``inject``, phases :class:`InjectPhase`), one worker per unit.
"""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from i18n import N_, _
from keys import session as key_session
from keys.attestation import check_csr, verify_chain
from keys.ca import DEFAULT_LABEL, ProvisioningCA
from keys.errors import SignatureInvalid
from keys.kcv import shown
from keys.selftest import require_selftest
from keys.store import KeyHandle, KeyStore
from keys.tr31 import Header
from terminal.errors import NaiadError, RemoteError
from terminal.events import Listener, Reporter
from terminal.secure_element import IdentityReply, KeySlot, LoadedKey, SecureElement, SessionReply

from .ledger.errors import UnitNotAuthorised
from .operators import OperatorSession, require_role
from .station import Station

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from terminal.client import ManagementClient

    from .ledger import InjectionRecord, Ledger, Reconciliation

LOG = logging.getLogger(__name__)

INJECT_STEP = "inject"
"""The step name of an injection in the event stream and the ledger's operation kind."""
CA_LABEL = DEFAULT_LABEL
ROLE = "operator"
CHALLENGE_BYTES = 32
STORE_WAIT = 120.0
"""Seconds a unit's worker waits for the key store while other units use it (one call at a time)."""


class InjectPhase(enum.StrEnum):
    ATTEST = "attest"
    IDENTITY = "identity"
    CERTIFY = "certify"
    SESSION = "session"
    LOAD = "load"
    VERIFY = "verify"
    COMMIT = "commit"


_LABELS = {
    InjectPhase.ATTEST: N_("checking the attestation chain"),
    InjectPhase.IDENTITY: N_("making the identity key"),
    InjectPhase.CERTIFY: N_("certifying the identity key"),
    InjectPhase.SESSION: N_("opening the key session"),
    InjectPhase.LOAD: N_("loading the key block"),
    InjectPhase.VERIFY: N_("comparing key check values"),
    InjectPhase.COMMIT: N_("committing the key"),
}


# --- errors -------------------------------------------------------------------------------------------


class InjectionError(NaiadError):
    pass


class BdkNotRegistered(InjectionError):
    message = N_("No BDK {label} is registered in the ledger")
    remedy = N_("Load it with 'naiad keys ceremony load-bdk' or list the BDKs with 'naiad keys bdk list'.")


class BdkNotInStore(InjectionError):
    message = N_("The key store holds no BDK {label} with the KCV the ledger registered ({kcv})")
    remedy = N_("Open the key store that holds this BDK (--keystore), or load the BDK into this one by ceremony.")


class KcvMismatch(InjectionError):
    message = N_("Unit {serial} reports key check value {got}; the key store's is {expected}: the key was not kept")
    remedy = N_("Inject the unit again; if it happens again, set the unit aside for support: its secure element errs.")


class UnitKeyMismatch(InjectionError):
    message = N_("Unit {serial} reports {what} {got} instead of {expected}: the key was not kept")
    remedy = N_("Set the unit aside for support: its secure element does not do what it is told.")
    msgid_params = ("what",)


class CommitUnconfirmed(InjectionError):
    message = N_(
        "Unit {serial} did not confirm storing Initial Key ID {initial_key_id}, and its key status could not be read"
    )
    remedy = N_(
        "Run 'naiad keys status {serial}': if it shows Initial Key ID {initial_key_id}, the unit holds the key the "
        "ledger has as allocated but not recorded; report it to the security officer before injecting again."
    )


class KeyStoreBusy(InjectionError):
    message = N_("The key store stayed busy for {seconds} s while injecting {serial}")
    remedy = N_("Check the HSM (naiad doctor), then inject the unit again.")


class InjectionUnsettled(InjectionError):
    message = N_(
        "The injection into {serial} was cut off after Initial Key ID {initial_key_id} was allocated, and the "
        "unit's key status cannot be read: {detail}"
    )
    remedy = N_(
        "Check the unit's cable and power, then run again: the station reads the unit's key status first and "
        "keeps the key it holds or retires the ID. The key is never injected twice."
    )


class AllocationBdkNotInStore(InjectionError):
    message = N_(
        "Unit {serial} holds Initial Key ID {initial_key_id} of BDK {label}, allocated and never recorded, and this "
        "key store holds no BDK {label} to check it: the unit gets no other key"
    )
    remedy = N_(
        "Run again with the key store that holds BDK {label} (--keystore) so the station records the key the unit "
        "holds; or report it to the security officer."
    )


class InjectionCrashed(InjectionError):
    message = N_("Injecting keys into {serial} failed unexpectedly: {detail}")
    remedy = N_("The unit's old keys are kept. Send the station's log to support, then inject the unit again.")


class ProvisioningCANotMade(InjectionError):
    message = N_("The key store holds no provisioning CA ({label}): units cannot be certified")
    remedy = N_("Two custodians make it once per key store with 'naiad keys ceremony make-ca'.")


class NoUnitsSelected(InjectionError):
    message = N_("No unit to inject")
    remedy = N_("Name units with --device SERIAL, or use --all with units attached.")


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InjectionResult:
    """One unit's outcome; a :class:`terminal.events.StepResult`.  KCVs and IDs are not secret."""

    serial: str
    ok: bool
    seconds: float
    initial_key_id: bytes | None = None
    kcv: bytes | None = None
    certificate_serial: str | None = None
    error: NaiadError | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "ok": self.ok,
            "initial_key_id": self.initial_key_id.hex().upper() if self.initial_key_id else None,
            "kcv": shown(self.kcv) if self.kcv else None,
            "certificate_serial": self.certificate_serial,
            "seconds": round(self.seconds, 3),
            "error": self.error.as_dict() if self.error is not None else None,
        }


@dataclass(frozen=True)
class InjectionRun:
    results: list[InjectionResult]
    reconciliation: Reconciliation

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "results": [r.as_dict() for r in self.results],
            "reconciliation": self.reconciliation.as_dict(),
        }


# --- the station's side of the key session -----------------------------------------------------------


class _LockedStore:
    """The key store used from many unit workers: one call at a time (a PKCS#11 session is not thread-safe)."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._lock = threading.Lock()

    @contextmanager
    def held(self, serial: str) -> Iterator[KeyStore]:
        """The store, for one unit's worker; KeyStoreBusy when a hung call keeps it past STORE_WAIT."""
        if not self._lock.acquire(timeout=STORE_WAIT):
            raise KeyStoreBusy(seconds=int(STORE_WAIT), serial=serial)
        try:
            yield self.store
        finally:
            self._lock.release()


Reconnect = Callable[[], "AbstractContextManager[ManagementClient]"]
"""A new management connection to the unit, for reading its key status after a lost reply."""


@dataclass
class _Injection:
    """One unit's injection, from the attestation check to the ledger record."""

    keys: _LockedStore
    ca: ProvisioningCA
    ledger: Ledger
    bdk_label: str
    roots: Sequence[bytes]
    serial: str
    report: Reporter

    def run(self, se: SecureElement, reconnect: Reconnect) -> InjectionResult:
        started = time.monotonic()
        with self.ledger.operation(self.serial, INJECT_STEP) as op:  # refused units are on record too
            op.result = {}
            identity, identity_key = self._identify(se)

            self._phase(InjectPhase.CERTIFY)
            with self.keys.held(self.serial):
                issued = self.ca.issue(identity.csr, self.serial)
                ca_certificate = self.ca.certificate
            certificate_serial = issued.serial_number.upper()  # the ledger's form of hex
            op.result["certificate_serial"] = certificate_serial  # issued: on record even if a later step fails
            installed = se.install_certificate(issued.der, ca_certificate)
            if installed.upper() != certificate_serial:
                raise UnitKeyMismatch(
                    serial=self.serial, what=N_("certificate serial"), got=installed, expected=certificate_serial
                )

            self._phase(InjectPhase.SESSION)
            session, kbpk = self._key_session(se, identity_key)

            initial_key_id = self.ledger.allocate_initial_key_id(self.bdk_label, self.serial)
            op.result["initial_key_id"] = initial_key_id.hex().upper()
            try:
                kcv = self._deliver(se, session, kbpk, initial_key_id, reconnect)
            except CommitUnconfirmed:
                raise  # the unit may hold the key: the ID stays allocated, neither failed nor recorded
            except BaseException as exc:
                self._burn(initial_key_id, exc)
                raise
            self.ledger.record_injection(self.serial, initial_key_id, kcv, certificate_serial)
            op.result["kcv"] = shown(kcv)
        return InjectionResult(self.serial, True, time.monotonic() - started, initial_key_id, kcv, certificate_serial)

    def _identify(self, se: SecureElement) -> tuple[IdentityReply, ec.EllipticCurvePublicKey]:
        """The unit's attestation checked, then a fresh identity key it proves it made: its CSR and public key."""
        self._phase(InjectPhase.ATTEST)
        attestation_key = verify_chain(se.attestation_chain(), self.roots, self.serial)

        self._phase(InjectPhase.IDENTITY)
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        identity = se.new_identity(challenge)
        identity_key = check_csr(identity.csr, self.serial)
        statement = key_session.identity_statement(self.serial, challenge, identity.csr)
        if not key_session.verify(attestation_key, identity.signature, statement):
            raise SignatureInvalid(statement=N_("identity key and challenge"))
        return identity, identity_key

    def _burn(self, initial_key_id: bytes, exc: BaseException) -> None:
        """Mark the ID failed (never issued again); a ledger error here must not hide the step's own."""
        try:
            self.ledger.allocation_failed(initial_key_id, type(exc).__name__)
        except Exception as ledger_error:
            LOG.error(
                "%s: could not mark Initial Key ID %s failed: %s", self.serial, initial_key_id.hex(), ledger_error
            )

    def _key_session(self, se: SecureElement, identity_key: ec.EllipticCurvePublicKey) -> tuple[SessionReply, bytes]:
        private, station_public = key_session.ephemeral()
        station_nonce = secrets.token_bytes(CHALLENGE_BYTES)
        reply = se.key_session(station_public, station_nonce)
        unit_public = key_session.public_point(identity_key)
        statement = key_session.session_statement(
            self.serial, station_public, station_nonce, unit_public, reply.unit_nonce, reply.session
        )
        if not key_session.verify(identity_key, reply.signature, statement):
            raise SignatureInvalid(statement=N_("key session"))
        shared = key_session.agree(private, unit_public)
        kbpk = key_session.derive_kbpk(
            shared, self.serial, station_public, unit_public, station_nonce, reply.unit_nonce
        )
        return reply, kbpk

    def _deliver(
        self, se: SecureElement, session: SessionReply, kbpk: bytes, initial_key_id: bytes, reconnect: Reconnect
    ) -> bytes:
        """The Initial Key to the unit, compared and committed; its KCV."""
        self._phase(InjectPhase.LOAD)
        header = Header("B1", "A", "X", exportability="N", optional_blocks=(("KS", initial_key_id.hex().upper()),))
        handle: KeyHandle | None = None
        with self.keys.held(self.serial) as store:
            try:
                handle = store.derive_initial_key(self.bdk_label, initial_key_id)
                block = store.wrap_tr31(kbpk, header, handle)
                expected = store.initial_key_kcv(handle)
            finally:
                if handle is not None:
                    store.release(handle)
            signature = self.ca.sign(
                key_session.load_statement(self.serial, session.session, session.unit_nonce, block)
            )
        loaded = se.load_key(session.session, block, signature)

        self._phase(InjectPhase.VERIFY)
        self._check(loaded, initial_key_id, expected)

        self._phase(InjectPhase.COMMIT)
        with self.keys.held(self.serial):  # the store's KCV is signed, never the unit's word
            signature = self.ca.sign(key_session.commit_statement(self.serial, session.session, expected))
        try:
            committed = se.commit_key(session.session, expected, signature)
        except RemoteError:
            raise  # the unit answered and refused: it stored nothing
        except NaiadError as lost:  # no answer: the unit may or may not have stored the key
            committed = self._stored_after(se, lost, initial_key_id, reconnect)
        self._check(committed, initial_key_id, expected)
        return expected

    def _stored_after(
        self, se: SecureElement, lost: NaiadError, initial_key_id: bytes, reconnect: Reconnect
    ) -> LoadedKey:
        """What the unit stored when its commit reply was lost: its key status, asked on the same connection,
        then on a new one (a unit that went away and came back)."""
        LOG.info("%s: the commit's reply was lost (%s); reading the unit's key status", self.serial, lost)
        try:
            status = se.status()
        except NaiadError:
            try:
                with reconnect() as client:
                    status = SecureElement(client).status()
            except NaiadError as exc:
                raise CommitUnconfirmed(serial=self.serial, initial_key_id=initial_key_id.hex().upper()) from exc
        for slot in status.keys:
            if hmac.compare_digest(slot.initial_key_id, initial_key_id):
                return LoadedKey(slot.initial_key_id, slot.ksn, slot.kcv)
        raise lost  # the unit kept its old key set

    def _check(self, loaded: LoadedKey, initial_key_id: bytes, expected: bytes) -> None:
        """The unit's answer is the key the station sent: its ID, its first KSN and the store's KCV."""
        ksn = initial_key_id + bytes(4)
        for what, got, wanted in (
            (N_("Initial Key ID"), loaded.initial_key_id, initial_key_id),
            (N_("KSN"), loaded.ksn, ksn),
        ):
            if not hmac.compare_digest(got, wanted):
                raise UnitKeyMismatch(
                    serial=self.serial, what=what, got=got.hex().upper(), expected=wanted.hex().upper()
                )
        if not hmac.compare_digest(loaded.kcv, expected):
            raise KcvMismatch(serial=self.serial, got=shown(loaded.kcv), expected=shown(expected))

    def _phase(self, phase: InjectPhase) -> None:
        steps = list(InjectPhase)
        self.report.phase(phase, _(_LABELS[phase]))
        self.report.progress(steps.index(phase), len(steps), counts="items")


# --- many units ---------------------------------------------------------------------------------------


def _check_serials(serials: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(serials))
    if not chosen:
        raise NoUnitsSelected()
    return chosen


class Injector:
    """An injection run: the checks made once (role, self-test, BDK in ledger and store, provisioning CA), then
    one unit at a time (:meth:`inject`), from any number of worker threads sharing the key store one call at a
    time.  Its constructor refuses the run (typed error, nothing sent) exactly as :func:`inject_units` does."""

    def __init__(
        self, station: Station, store: KeyStore, session: OperatorSession | None, bdk_label: str, roots: Sequence[bytes]
    ) -> None:
        acting = require_role(session, ROLE)
        require_selftest()
        ledger = station.ledger
        if ledger.operator != acting.operator:
            ledger = ledger.as_operator(acting.operator)
        bdk = ledger.bdk(bdk_label)
        if bdk is None:
            raise BdkNotRegistered(label=bdk_label)
        if bdk_label not in store.labels() or not hmac.compare_digest(store.bdk_kcv(bdk_label), bdk.kcv):
            raise BdkNotInStore(label=bdk_label, kcv=shown(bdk.kcv))
        if CA_LABEL not in store.signing_labels() or store.certificate(CA_LABEL) is None:
            raise ProvisioningCANotMade(label=CA_LABEL)  # made under dual control, never on the fly by an operator
        self.station, self.ledger, self.bdk_label, self.roots = station, ledger, bdk_label, tuple(roots)
        self.store = store
        self.ca = ProvisioningCA(store, CA_LABEL)
        self.keys = _LockedStore(store)

    def inject(self, serial: str, listener: Listener | None = None) -> InjectionResult:
        """One unit's injection (refused unless it is in the authorised inventory); its result, never raised.
        Events go to ``listener`` (step ``inject``), ending with a ``StepFinished``."""
        return self.inject_reporting(serial, Reporter(listener, serial, INJECT_STEP))

    def inject_reporting(self, serial: str, reporter: Reporter) -> InjectionResult:
        started = time.monotonic()
        try:
            if not self.ledger.authorised(serial):
                self.ledger.unit_refused(serial, "not authorised")  # reported in the audit trail, not only here
                raise UnitNotAuthorised(serial=serial)
            injection = _Injection(self.keys, self.ca, self.ledger, self.bdk_label, self.roots, serial, reporter)
            with self.station.connect(serial) as client:
                result = injection.run(SecureElement(client), lambda: self.station.connect(serial))
        except Exception as exc:
            error = exc if isinstance(exc, NaiadError) else InjectionCrashed(serial=serial, detail=type(exc).__name__)
            if isinstance(exc, NaiadError):
                LOG.info("%s: injection refused: %s", serial, exc)
            else:
                LOG.error("%s: injection crashed: %s", serial, type(exc).__name__)
            error.__traceback__ = None  # its frames hold the KBPK and the session's keys: results outlive them
            result = InjectionResult(serial, False, time.monotonic() - started, error=error)
        reporter.finished(result)
        return result

    def recorded(self, serial: str) -> InjectionRecord | None:
        """The latest injection the ledger recorded for ``serial`` (by any station), None if none."""
        found = self.ledger.injections(serial)
        return found[-1] if found else None

    def unsettled(self, serial: str) -> list[bytes]:
        """Initial Key IDs allocated to ``serial`` under ANY BDK and neither recorded nor failed (an injection cut
        off, or whose commit reply was lost with the unit out of reach), oldest first: the unit may hold any of
        them, so none of them may be left behind for a new key, whichever BDK this run injects."""
        return [initial_key_id for initial_key_id, _label in self._open(serial)]

    def _open(self, serial: str) -> list[tuple[bytes, str]]:
        return [
            (allocation.initial_key_id, allocation.bdk_label)
            for allocation in self.ledger.allocations(serial)
            if allocation.state == "allocated"
        ]

    def _can_derive(self, label: str, serial: str) -> bool:
        """Whether the key store holds BDK ``label`` as the ledger registered it."""
        if label == self.bdk_label:
            return True
        bdk = self.ledger.bdk(label)
        with self.keys.held(serial) as store:
            return bdk is not None and label in store.labels() and hmac.compare_digest(store.bdk_kcv(label), bdk.kcv)

    def settle(self, serial: str) -> InjectionRecord | None:
        """After an injection into ``serial`` was cut off (a crash, an unplug), what became of the Initial Key IDs
        the ledger allocated to it under any BDK and never recorded: the unit's key status decides.  An ID the unit
        holds, with the key store's KCV, is recorded (adopted: the key is never injected twice, even when this run
        injects another BDK); an ID it does not hold is marked failed (never issued again).  An ID the unit holds
        under a BDK this key store lacks is refused with :class:`AllocationBdkNotInStore` before anything changes.

        Returns the injection recorded (now or before), None when the unit holds none (inject it again).  Raises
        :class:`InjectionUnsettled` when the unit's status cannot be read (nothing is changed: settle again
        later), :class:`KcvMismatch` or :class:`UnitKeyMismatch` when the unit holds the ID with another key."""
        open_ids = self._open(serial)
        if not open_ids:
            return self.recorded(serial)
        try:
            with self.station.connect(serial) as client:
                status = SecureElement(client).status()
        except NaiadError as exc:
            shown_ids = ", ".join(i.hex().upper() for i, _label in open_ids)
            raise InjectionUnsettled(serial=serial, initial_key_id=shown_ids, detail=str(exc)) from exc
        decided: list[tuple[bytes, str, KeySlot | None]] = []
        for initial_key_id, label in open_ids:
            held = next((k for k in status.keys if hmac.compare_digest(k.initial_key_id, initial_key_id)), None)
            if held is not None and not self._can_derive(label, serial):  # refused before anything is changed
                raise AllocationBdkNotInStore(serial=serial, initial_key_id=initial_key_id.hex().upper(), label=label)
            decided.append((initial_key_id, label, held))
        for initial_key_id, label, held in decided:
            if held is None:
                LOG.info("%s: Initial Key ID %s not held after a cut injection: failed", serial, initial_key_id.hex())
                self.ledger.allocation_failed(initial_key_id, "not held by the unit after a cut injection")
                continue
            self._adopt(serial, initial_key_id, held, status.identity_serial_number, label)
        return self.recorded(serial)

    def _adopt(
        self, serial: str, initial_key_id: bytes, held: KeySlot, certificate_serial: str | None, label: str
    ) -> None:
        """Record a key the unit holds under an allocated ID of BDK ``label`` once its KCV is the store's."""
        with self.keys.held(serial) as store:
            handle = store.derive_initial_key(label, initial_key_id)
            try:
                expected = store.initial_key_kcv(handle)
            finally:
                store.release(handle)
        if not hmac.compare_digest(held.ksn[: len(initial_key_id)], initial_key_id):
            raise UnitKeyMismatch(
                serial=serial, what=N_("KSN"), got=held.ksn.hex().upper(), expected=initial_key_id.hex().upper()
            )
        if not hmac.compare_digest(held.kcv, expected):
            raise KcvMismatch(serial=serial, got=shown(held.kcv), expected=shown(expected))
        if certificate_serial is None:
            raise UnitKeyMismatch(serial=serial, what=N_("certificate serial"), got="-", expected="?")
        LOG.info("%s: adopting Initial Key ID %s the unit holds after a cut injection", serial, initial_key_id.hex())
        self.ledger.record_injection(serial, initial_key_id, expected, certificate_serial.upper())

    def reconcile(self, serials: Sequence[str]) -> Reconciliation:
        """The inventory reconciliation of ``serials``, on record in the audit trail (``keys.reconciled``)."""
        reconciliation = self.ledger.reconcile(list(serials))
        self.ledger.audit("keys.reconciled", f"bdk:{self.bdk_label}", reconciliation.as_dict())  # each run on record
        return reconciliation


def inject_units(
    station: Station,
    store: KeyStore,
    session: OperatorSession | None,
    bdk_label: str,
    roots: Sequence[bytes],
    serials: Sequence[str],
    listener: Listener | None = None,
    *,
    max_workers: int | None = None,
) -> InjectionRun:
    """Inject Initial Keys of the BDK ``bdk_label`` into every unit of ``serials``, in parallel.

    Refused as a whole (typed error, nothing sent to any unit) unless ``session`` has the operator role, the
    cryptographic self-test passes, and the BDK is registered and held by ``store``.  Each unit not in the
    authorised inventory is refused on its own.  ``roots`` are the trusted manufacturer root certificates
    (DER).  The run is reconciled against the inventory at the end.
    """
    chosen = _check_serials(serials)
    injector = Injector(station, store, session, bdk_label, roots)
    workers = max(1, min(max_workers or len(chosen), len(chosen)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inject") as pool:
        results = list(pool.map(lambda serial: injector.inject(serial, listener), chosen))
    return InjectionRun(results, injector.reconcile(chosen))
