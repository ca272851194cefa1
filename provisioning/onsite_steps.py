"""The installer's steps: firmware-update, field-check, face-pay-check, bind, activate, subsidy-enroll
(docs/station-steps.md).

As the distributor's steps (:mod:`provisioning.bulk_steps`), each wraps its domain module's per-unit call and
refuses the batch in its constructor when something it needs is missing.  ``bind``, ``activate`` and
``subsidy-enroll`` are platform calls that must never be made twice (:class:`~provisioning.steps.OnceStep`): the
outbox says whether they were done, and sends a call cut off by a crash again with its own request number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from camera.faces import LIVE, PRESENTATIONS
from enrollment.config import Merchant
from firmware.manifest import version_key
from i18n import N_, _
from terminal.errors import NaiadError
from terminal.models import RUN

from .bulk_steps import BundleStep, camera_data, failure_detail, outcome, registration_data, require
from .calibration import UnitStep, field_checking
from .camera_steps import CHECK_ROLES
from .facepay_check import AnalyserFactory, default_analyser, run_facepay_check
from .facepay_steps import ROLES as FACEPAY_ROLES
from .facepay_steps import FacePayCheckResult
from .operators import require_role
from .registration import (
    LIVE_METHODS,
    ROLES_BIND,
    STEP_ACTIVATE,
    STEP_BIND,
    STEP_SUBSIDY,
    EnrollmentStepResult,
    live_step_done,
    run_live_step,
    settle_live_step,
)
from .steps import OnceStep, Resources, Setting, SettingKind, Step, StepError, StepOutcome, UnitJob, register

LOG = logging.getLogger(__name__)


# --- firmware-update ---------------------------------------------------------------------------------


@register
class FirmwareUpdateStep(BundleStep):
    """Read the unit's running firmware version; flash the bundle only when the unit runs an older one (a newer one
    is left alone unless the ``downgrade`` setting says otherwise)."""

    name = "firmware-update"
    needs = frozenset[str]()
    label = N_("Check and update the firmware")
    roles = ()  # as 'naiad flash': any logged-in operator
    settings = (
        *BundleStep.settings,
        Setting(
            "downgrade",
            SettingKind.BOOLEAN,
            False,
            N_("Flash the bundle even when the unit runs a newer version (a deliberate downgrade)"),
        ),
    )

    def run(self, job: UnitJob) -> StepOutcome:
        started = time.monotonic()
        wanted = self.verified.version
        try:
            before = self._running(job)
        except NaiadError as exc:
            return outcome(self, False, time.monotonic() - started, str(exc), {"after": None, "updated": False}, exc)
        if before == wanted:
            data = {"before": before, "after": before, "updated": False}
            detail = _("Already runs {version}: nothing to update", version=before)
            return outcome(self, True, time.monotonic() - started, detail, data)
        if before is not None and version_key(before) > version_key(wanted) and not self.config["downgrade"]:
            data = {"before": before, "after": before, "updated": False, "newer": True}
            detail = _(
                "Runs {running}, newer than the bundle's {version}: left alone (set downgrade = true to flash it)",
                running=before,
                version=wanted,
            )
            return outcome(self, True, time.monotonic() - started, detail, data)
        result = self.flash(job)
        data = {"before": before, "after": result.version, "updated": result.ok, **self.flashed(result)}
        detail = (
            _("Updated from {before} to {after}", before=before or "?", after=result.version)
            if result.ok
            else failure_detail(result.error)
        )
        return outcome(self, result.ok, time.monotonic() - started, detail, data, result.error)

    @staticmethod
    def _running(job: UnitJob) -> str | None:
        """The version the unit runs from its active slot; None when it is in its bootloader (a flash cut off)
        or does not say."""
        if job.station.find(job.serial).mode != RUN:
            return None
        info = job.station.info(job.serial)
        slots, active = info.get("slots"), info.get("active_slot")
        about = slots.get(active) if isinstance(slots, dict) and isinstance(active, str) else None
        version = about.get("version") if isinstance(about, dict) else None
        return version if isinstance(version, str) else None


# --- field-check -------------------------------------------------------------------------------------


class FieldCheckFailed(StepError):
    message = N_("Unit {serial} failed the field camera check: {verdict}")
    remedy = N_("Follow the check's advice: {advice}")


@register
class FieldCheckStep(Step):
    """Check the stored camera calibration against the board held up (or a flat wall); changes nothing on the
    unit (provisioning.calibration)."""

    name = "field-check"
    needs = frozenset[str]()
    label = N_("Check the camera in the field")
    settings = (
        Setting("wall", SettingKind.BOOLEAN, False, N_("Check on a flat wall filling the view instead of the board")),
        Setting("distance", SettingKind.NUMBER, 0, N_("The wall's taped distance in metres (0: not taped)"), minimum=0),
    )
    roles = CHECK_ROLES
    read_only = True

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        distance = float(self.config["distance"])
        self.one: UnitStep = field_checking(
            resources.station, resources.session, wall=bool(self.config["wall"]), wall_distance_m=distance or None
        )

    def run(self, job: UnitJob) -> StepOutcome:
        result = self.one(job.serial, job.resources.listener)
        error = result.error
        if not result.ok and error is None:
            error = FieldCheckFailed(serial=job.serial, verdict=result.verdict or "-", advice=result.advice or "-")
        detail = _("Passed: {verdict}", verdict=result.verdict) if result.ok else failure_detail(error)
        return outcome(self, result.ok, result.seconds, detail, camera_data(result), error)


# --- face-pay-check ----------------------------------------------------------------------------------


class FacePayCheckFailed(StepError):
    message = N_("Unit {serial} failed the face-pay check at the {stage} stage")
    remedy = N_("Look at the stage's detail in the report, then run the check again.")


@register
class FacePayCheckStep(Step):
    """A face before the camera, the station's and the unit's judgement, a 0.01 payment and its refund
    (provisioning.facepay_check).  The station's face models load once, in the constructor."""

    name = "face-pay-check"
    needs = frozenset({"outbox", "merchant", "presenter"})
    label = N_("Check face payment end to end")
    settings = (
        Setting(
            "presentation", SettingKind.STRING, LIVE, N_("What is presented: a live face or an attack"), PRESENTATIONS
        ),
        Setting("frame_sets", SettingKind.INTEGER, 3, N_("Frame sets the station judges"), minimum=1),
    )
    roles = FACEPAY_ROLES
    analyser_factory: ClassVar[Callable[[], AnalyserFactory]] = staticmethod(default_analyser)
    """Loads the station's analyser (models) once per batch; a seam for tests and benches."""

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        self.outbox = require(type(self), resources, "outbox")
        self.merchant: Merchant = require(type(self), resources, "merchant")
        self.presenter = require(type(self), resources, "presenter")
        require_role(resources.session, *FACEPAY_ROLES)
        self.analyser = type(self).analyser_factory()

    def run(self, job: UnitJob) -> StepOutcome:
        result: FacePayCheckResult = run_facepay_check(
            job.station,
            self.outbox,
            job.serial,
            self.presenter,
            job.resources.listener,
            merchant=self.merchant,
            session=job.resources.session,
            presentation=str(self.config["presentation"]),
            analyser=self.analyser,
            frame_sets=int(self.config["frame_sets"]),
        )
        failed = next((stage.name for stage in result.stages if not stage.ok), None)
        data = {
            "presentation": result.presentation,
            "passed": result.passed,
            "stages": {stage.name: round(stage.seconds, 3) for stage in result.stages},
            "failed_stage": failed,
            "total_seconds": round(result.total_seconds, 3),
            "trade_no": result.trade_no,
            "refunded": result.refunded,
        }
        error = result.error
        if not result.passed and error is None:
            error = FacePayCheckFailed(serial=job.serial, stage=failed or "-")
        if result.passed:
            detail = _("Passed in {seconds:.1f} s", seconds=result.total_seconds)
            if result.trade_no:
                detail += " " + _("(trade {trade_no} refunded)", trade_no=result.trade_no)
        else:
            detail = failure_detail(error)
        return outcome(self, result.passed, result.total_seconds, detail, data, error)


# --- bind, activate, subsidy-enroll ------------------------------------------------------------------


class LiveStep(OnceStep):
    """One of the platform calls that bring a unit live (provisioning.registration), through the outbox."""

    roles = ROLES_BIND
    needs = frozenset({"outbox"})  # and the merchant for bind and activate
    needs_merchant: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        self.outbox = require(type(self), resources, "outbox")
        self.merchant: Merchant | None = resources.merchant
        self.supplier_id = resources.supplier_id or "-"
        if self.needs_merchant:
            self.merchant = require(type(self), resources, "merchant")
            self.supplier_id = str(require(type(self), resources, "supplier_id"))
        require_role(resources.session, *ROLES_BIND)

    @property
    def program(self) -> str | None:
        return None

    def data(self, result: EnrollmentStepResult) -> dict[str, Any]:
        return {}

    def _outcome(self, job: UnitJob, result: EnrollmentStepResult, *, already_done: bool = False) -> StepOutcome:
        data = {**self.data(result), **registration_data(job.station, LIVE_METHODS[self.name], job.serial, result)}
        detail = result.status_text if result.ok else failure_detail(result.error)
        if result.ok and result.detail:
            detail = f"{detail}: {result.detail}"
        return outcome(self, result.ok, result.seconds, detail, data, result.error, already_done=already_done)

    def run(self, job: UnitJob) -> StepOutcome:
        result = run_live_step(
            self.outbox,
            self.supplier_id,
            job.serial,
            self.name,
            self.merchant,
            job.resources.listener,
            session=job.resources.session,
            program=self.program,
        )
        return self._outcome(job, result)

    def done_before(self, job: UnitJob) -> StepOutcome | None:
        """Done when the outbox holds the call as done for this unit (the same merchant, store and program) and
        none of its calls is pending."""
        found = live_step_done(self.outbox, job.serial, self.name, self.merchant, self.program)
        return None if found is None else self._outcome(job, found, already_done=True)

    def settle(self, job: UnitJob) -> StepOutcome | None:
        """A pending call for the unit is sent again with its own request number (the platform does it once and
        answers with its first answer); then as :meth:`done_before`."""
        found = settle_live_step(self.outbox, job.serial, self.name, self.merchant, self.program)
        return None if found is None else self._outcome(job, found, already_done=True)


@register
class BindStep(LiveStep):
    name = STEP_BIND
    label = N_("Bind to the merchant's store")
    needs_merchant = True

    def data(self, result: EnrollmentStepResult) -> dict[str, Any]:
        assert self.merchant is not None  # needs_merchant
        return {"merchant_id": self.merchant.merchant_id, "store_id": self.merchant.store_id}


@register
class ActivateStep(LiveStep):
    name = STEP_ACTIVATE
    label = N_("Activate on the platform")

    def data(self, result: EnrollmentStepResult) -> dict[str, Any]:
        return {"activated": result.detail}


@register
class SubsidyEnrollStep(LiveStep):
    name = STEP_SUBSIDY
    label = N_("Enrol in the subsidy program")
    settings = (
        Setting(
            "program",
            SettingKind.STRING,
            "",
            N_("The subsidy program (empty: the station's or the platform's current)"),
        ),
    )

    @property
    def program(self) -> str | None:
        return str(self.config.get("program") or "") or self.resources.program or None

    def data(self, result: EnrollmentStepResult) -> dict[str, Any]:
        return {"program": result.detail if result.ok and result.detail else self.program}
