"""The distributor's steps: flash, inject, calibrate, depth-quality, register-inventory (docs/station-steps.md).

Each step wraps its domain module's per-unit call: what the module checks once per run (the bundle's signature
and hashes, the key store and CA, the jig, the role) is done in the step's constructor, so a batch that cannot
succeed is refused before any unit is touched; :meth:`run` then does one unit.  ``inject`` and
``register-inventory`` must never be done twice (:class:`~provisioning.steps.OnceStep`): the ledger, the unit and
the outbox say whether they were, and what became of one cut off by a crash.

Outcome data is JSON and holds no secret: versions and hashes, Initial Key IDs and KCVs (never a key),
calibration and depth figures, the platform's status and request number.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from enrollment.gateway import Method
from i18n import N_, _
from keys.kcv import shown
from terminal.errors import NaiadError

from .calibration import UnitStep, depth_quality, full_calibration
from .camera_steps import CHECK_ROLES, ROLE, CameraStepResult, JigNotConfigured, TooFewDistances
from .diagnose_checks import content_sha256
from .flashing import FlashResult, VerifiedBundle, flash_unit, open_verified_bundle
from .injection import ROLE as INJECT_ROLE
from .injection import InjectionResult, Injector
from .ledger import InjectionRecord
from .operators import require_role
from .registration import ROLES_INVENTORY, EnrollmentStepResult, UnitToRegister, inventory_done, register_unit
from .registration import settle_inventory as settle_inventory_call
from .steps import OnceStep, Resources, Setting, SettingKind, Step, StepError, StepOutcome, UnitJob, register

LOG = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20


# --- shared by the station's steps -------------------------------------------------------------------


class MissingResource(StepError):
    """A step that needs something the station was not given: the whole batch is refused before any unit."""

    message = N_("The step {step} needs {what}, and this station was not given one")
    remedy = N_("{how}")
    msgid_params = ("what", "how")


NEEDS: dict[str, tuple[str, str]] = {
    "store": (
        N_("a key store holding the BDK and the provisioning CA"),
        N_("Open the key store with --keystore software|pkcs11 (or NAIAD_KEYSTORE) and run again."),
    ),
    "roots": (
        N_("the manufacturer's root certificates"),
        N_("Put them in NAIAD_MANUFACTURER_CA (or manufacturer-ca.pem in the configuration directory), or use --sim."),
    ),
    "outbox": (
        N_("a connection to the merchant platform"),
        N_("Give the platform configuration with --platform-config FILE (or NAIAD_PLATFORM_CONFIG) and run again."),
    ),
    "supplier_id": (
        N_("the distributor's supplier id"),
        N_("Give the platform configuration that names it (--platform-config FILE) and run again."),
    ),
    "jig": (
        N_("a calibration jig"),
        N_("Run this recipe on a station with a calibration jig (the simulator's with --sim), or leave the step out."),
    ),
    "merchant": (
        N_("the merchant and store"),
        N_("Name them with --merchant ID --store ID, or scan the store's QR code with --merchant-qr TEXT."),
    ),
    "presenter": (
        N_("someone to present a face to the camera"),
        N_("Run the check from the console or the command line, which ask the person at the unit to present it."),
    ),
}
"""For each resource of :class:`~provisioning.steps.Resources` a step may need: what it is and how to give it."""


def require(step: type[Step], resources: Resources, name: str) -> Any:
    """``resources.<name>``, or :class:`MissingResource` naming the step, the resource and how to give it."""
    value = getattr(resources, name)
    if value is None or (name == "roots" and not value):
        what, how = NEEDS[name]
        raise MissingResource(step=step.name, what=what, how=how)
    return value


def outcome(
    step: Step,
    ok: bool,
    seconds: float,
    detail: str,
    data: dict[str, Any],
    error: NaiadError | None = None,
    *,
    already_done: bool = False,
) -> StepOutcome:
    return StepOutcome(step.name, ok, seconds, detail, data, error, already_done)


def failure_detail(error: NaiadError | None) -> str:
    return str(error) if error is not None else _("failed")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- flash -------------------------------------------------------------------------------------------


class BundleStep(Step):
    """A step holding a firmware bundle opened and verified once per batch (signature and every hash)."""

    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("bundle", SettingKind.FILE, help=N_("The signed firmware bundle (.zip)")),
    )

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        path = Path(self.config["bundle"])
        self.verified: VerifiedBundle = open_verified_bundle(path)  # a bad bundle refuses the batch
        self._closing = weakref.finalize(self, self.verified.close)
        try:
            self.bundle_sha256 = file_sha256(path)
        except OSError as exc:
            self.close()
            raise MissingResource(step=self.name, what=N_("a readable bundle file"), how=str(exc)) from exc
        bundle = self.verified.bundle  # what each partition holds once flashed, as the unit hashes it (diagnosis)
        self.images = {image.name: content_sha256(bundle, image.name) for image in bundle.partitions}

    def close(self) -> None:
        """Close the bundle (the batch is over); also done when the step is collected."""
        self._closing()

    def flashed(self, result: FlashResult) -> dict[str, Any]:
        """What a flash leaves in the outcome: the version and slot confirmed, the bundle file's SHA-256 and each
        image's content SHA-256 (:func:`~provisioning.diagnose_checks.content_sha256`: a sparse image's data)."""
        return {
            "version": result.version,
            "slot": result.slot,
            "bundle_sha256": self.bundle_sha256,
            "images": dict(self.images),
            "written": list(result.written),
            "skipped": list(result.skipped),
        }

    def flash(self, job: UnitJob) -> FlashResult:
        return flash_unit(job.station, self.verified, job.serial, job.resources.listener)


@register
class FlashStep(BundleStep):
    """Flash the bundle into the unit's other slot, switch, boot and confirm (provisioning.flashing)."""

    name = "flash"
    needs = frozenset[str]()
    label = N_("Flash the firmware")
    roles = ()  # as 'naiad flash': any logged-in operator

    def run(self, job: UnitJob) -> StepOutcome:
        result = self.flash(job)
        detail = (
            _("{version} in slot {slot}", version=result.version, slot=result.slot)
            if result.ok
            else failure_detail(result.error)
        )
        return outcome(self, result.ok, result.seconds, detail, self.flashed(result), result.error)


# --- inject ------------------------------------------------------------------------------------------


def injected_data(initial_key_id: bytes, kcv: bytes, certificate_serial: str | None, bdk: str) -> dict[str, Any]:
    """An injection as outcome data: IDs and the KCV people compare (never a key)."""
    return {
        "initial_key_id": initial_key_id.hex().upper(),
        "kcv": shown(kcv),
        "certificate_serial": certificate_serial,
        "bdk_label": bdk,
    }


@register
class InjectStep(OnceStep):
    """Inject the unit's DUKPT Initial Key of the BDK ``bdk`` (provisioning.injection); never twice."""

    name = "inject"
    needs = frozenset({"store", "roots"})
    label = N_("Inject the payment keys")
    settings = (Setting("bdk", SettingKind.STRING, help=N_("The label of the BDK the Initial Keys derive from")),)
    roles = (INJECT_ROLE,)
    needs_authorised = True

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        store = require(type(self), resources, "store")
        roots = require(type(self), resources, "roots")
        self.bdk = str(self.config["bdk"])
        self.injector = Injector(resources.station, store, resources.session, self.bdk, roots)

    def run(self, job: UnitJob) -> StepOutcome:
        if self.injector.unsettled(job.serial):  # an earlier try (any BDK) may have left a key in the unit: look first
            started = time.monotonic()
            try:
                settled = self.settle(job)
            except NaiadError as exc:
                return outcome(self, False, time.monotonic() - started, str(exc), {}, exc)
            if settled is not None:
                return settled
        result: InjectionResult = self.injector.inject(job.serial, job.resources.listener)
        if not result.ok or result.initial_key_id is None or result.kcv is None:
            return outcome(self, False, result.seconds, failure_detail(result.error), {}, result.error)
        data = injected_data(result.initial_key_id, result.kcv, result.certificate_serial, self.bdk)
        detail = _("Initial Key ID {initial_key_id}, KCV {kcv}", **data)
        return outcome(self, True, result.seconds, detail, data)

    def _recorded(self, record: InjectionRecord | None) -> StepOutcome | None:
        if record is None:
            return None
        data = injected_data(record.initial_key_id, record.kcv, record.certificate_serial, record.bdk_label)
        detail = _("Already injected: Initial Key ID {initial_key_id}, KCV {kcv}", **data)
        return outcome(self, True, 0.0, detail, data, already_done=True)

    def done_before(self, job: UnitJob) -> StepOutcome | None:
        """Done when the ledger records an injection for the unit (by any station, under any BDK), or when the
        unit holds a key under an Initial Key ID allocated to it (under any BDK) and never recorded: settled first,
        so a new run (another BDK, another digest) never gives the unit a second key."""
        recorded = self.injector.recorded(job.serial)
        if recorded is None and self.injector.unsettled(job.serial):
            return self.settle(job)
        return self._recorded(recorded)

    def settle(self, job: UnitJob) -> StepOutcome | None:
        """The unit's key status settles each Initial Key ID allocated and never recorded: held with the store's
        KCV, it is recorded (adopted); not held, it is marked failed and the step runs again with a new one."""
        return self._recorded(self.injector.settle(job.serial))


# --- calibrate, depth-quality ------------------------------------------------------------------------


def camera_data(result: CameraStepResult) -> dict[str, Any]:
    """A camera step's figures as outcome data (plain numbers; None where not measured)."""
    data: dict[str, Any] = {"passed": result.ok, "figures": dict(result.figures), "checksum": result.checksum}
    if result.depth:
        data["depth"] = list(result.depth)
    if result.verdict is not None:  # a field check: its verdict and what led to it, even when nothing did
        data["verdict"] = result.verdict
        data["findings"] = list(result.findings)
    if result.advice:
        data["advice"] = result.advice
    return data


@register
class CalibrateStep(Step):
    """Calibrate the 3D camera in full on the jig, with the depth quality at the model's distances, write the
    calibration to the unit and record it (provisioning.calibration)."""

    name = "calibrate"
    needs = frozenset({"jig"})
    label = N_("Calibrate the camera")
    settings = (
        Setting(
            "views",
            SettingKind.INTEGER,
            40,
            N_("Jig poses of the planned sequence to use (at most the jig's own)"),
            minimum=12,
        ),
    )
    roles = (ROLE,)

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        jig = require(type(self), resources, "jig")
        self.one: UnitStep = full_calibration(
            resources.station, jig, resources.session, poses=int(self.config["views"])
        )

    def run(self, job: UnitJob) -> StepOutcome:
        result = self.one(job.serial, job.resources.listener)
        detail = (
            _("Calibration {checksum} written and recorded", checksum=(result.checksum or "")[:12])
            if result.ok
            else failure_detail(result.error)
        )
        return outcome(self, result.ok, result.seconds, detail, camera_data(result), result.error)


@register
class DepthQualityStep(Step):
    """Measure the depth quality on the jig's wall at each distance and record it (provisioning.calibration)."""

    name = "depth-quality"
    needs = frozenset({"jig"})
    label = N_("Measure the depth quality")
    settings = (Setting("distances", SettingKind.NUMBERS, [], N_("Wall distances in metres (none: the model's)")),)
    roles = CHECK_ROLES

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        self.jig = require(type(self), resources, "jig")
        if self.jig.planned <= 0:
            raise JigNotConfigured(serial="-")
        self.distances = [float(d) for d in self.config["distances"]]
        if len(self.distances) == 1:
            raise TooFewDistances(count=1)
        require_role(resources.session, *CHECK_ROLES)

    def run(self, job: UnitJob) -> StepOutcome:
        result = depth_quality(
            job.station,
            self.jig,
            job.serial,
            self.distances or None,
            job.resources.listener,
            session=job.resources.session,
        )
        detail = _("Depth within the model's limits") if result.ok else failure_detail(result.error)
        return outcome(self, result.ok, result.seconds, detail, camera_data(result), result.error)


# --- register-inventory ------------------------------------------------------------------------------


def registration_data(station: Any, method: Method, serial: str, result: EnrollmentStepResult) -> dict[str, Any]:
    """A platform step's status and the request number of its latest call (any station's) about the unit."""
    call = station.ledger.find_platform_call(method, serial)
    return {"status": result.status, "request_no": call.request_no if call is not None else None}


@register
class RegisterInventoryStep(OnceStep):
    """Register the unit in the distributor's inventory at the platform, through the outbox; never twice."""

    name = "register-inventory"
    needs = frozenset({"outbox", "supplier_id"})
    label = N_("Register in the distributor's inventory")
    roles = ROLES_INVENTORY
    needs_authorised = True

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        self.outbox = require(type(self), resources, "outbox")
        self.supplier_id = str(require(type(self), resources, "supplier_id"))
        require_role(resources.session, *ROLES_INVENTORY)

    def _outcome(self, job: UnitJob, result: EnrollmentStepResult, *, already_done: bool = False) -> StepOutcome:
        data = registration_data(job.station, Method.INVENTORY_REGISTER, job.serial, result)
        detail = result.status_text if result.ok else failure_detail(result.error)
        return outcome(self, result.ok, result.seconds, detail, data, result.error, already_done=already_done)

    def run(self, job: UnitJob) -> StepOutcome:
        started = time.monotonic()
        known = job.station.ledger.device(job.serial)
        model = known.model if known is not None else job.station.find(job.serial).model
        unit = UnitToRegister(job.serial, model)
        result = register_unit(self.outbox, self.supplier_id, unit, session=job.resources.session)
        result.seconds = time.monotonic() - started
        return self._outcome(job, result)

    def done_before(self, job: UnitJob) -> StepOutcome | None:
        """Done when a call of the unit's own is on record as done and the platform said it is registered."""
        found = inventory_done(self.outbox, job.serial)
        return None if found is None else self._outcome(job, found, already_done=True)

    def settle(self, job: UnitJob) -> StepOutcome | None:
        """The unit's pending call sent again with its own request number, then as :meth:`done_before`."""
        found = settle_inventory_call(self.outbox, job.serial)
        return None if found is None else self._outcome(job, found, already_done=True)
