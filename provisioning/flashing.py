"""Flash a firmware bundle onto units: the whole A/B procedure for one unit, and many units at once.

For each unit: check the bundle against what the unit reports (model, revision, anti-rollback), reboot
it into its bootloader, write every partition into the slot it does not boot (skipping what already
holds its image, verifying the rest by the unit's own hashes), make that slot active, reboot, wait for
run mode and confirm version and slot through ``info``.  Until the switch the unit boots its old slot
whatever happens; after it, a new slot that fails to boot falls back to the old one, which is reported
as :class:`FlashNotConfirmed`.  Running the same flash again resumes: verified partitions are skipped.

Progress goes out as :mod:`terminal.events` (step ``flash``, phases :class:`FlashPhase`, items the
partitions) from the worker threads, one worker per unit; one unit's failure never stops the others.
Every unit's flash is a ledger operation ``flash``.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.bundle import Bundle
from firmware.flash import (
    FlashStep,
    PartitionPlan,
    check_ab_flashable,
    flash_slot,
    plan_bundle,
    slot_holds,
)
from firmware.signing import TrustStore
from i18n import N_, _
from terminal.discovery import Device
from terminal.errors import NaiadError
from terminal.events import ItemProgressCallback, Listener, Reporter
from terminal.fastboot import FastbootClient, FastbootFailure
from terminal.models import BOOTLOADER, RUN, TerminalModel, model_by_id

from .station import Station

LOG = logging.getLogger(__name__)

REBOOT_TIMEOUT = 60.0
"""Seconds a unit may take to enumerate in bootloader mode after being told to reboot there."""
REBOOT_ATTEMPTS = 2
"""Reboots into the bootloader sent to a unit that keeps coming back in run mode (a power cut during the reboot)."""
BOOT_TIMEOUT = 120.0
"""Seconds a unit may take from the reboot after flashing until it answers in run mode."""
RECOVER_TIMEOUT = 30.0
"""Seconds to wait for a unit sent back to its old firmware after a failed flash."""


class FlashPhase(enum.StrEnum):
    CHECK = "check"
    REBOOT = "reboot"
    WRITE = "write"
    VERIFY = "verify"
    SWITCH = "switch"
    BOOT = "boot"
    CONFIRM = "confirm"


PHASE_LABELS: dict[FlashPhase, str] = {
    FlashPhase.CHECK: N_("Checking the unit and the bundle"),
    FlashPhase.REBOOT: N_("Rebooting into the bootloader"),
    FlashPhase.WRITE: N_("Writing {partition}"),
    FlashPhase.VERIFY: N_("Verifying {partition}"),
    FlashPhase.SWITCH: N_("Switching to the new slot"),
    FlashPhase.BOOT: N_("Booting the new firmware"),
    FlashPhase.CONFIRM: N_("Confirming the running version"),
}
"""Msgids for showing a phase; translate with :func:`phase_label` (``{partition}`` may be absent)."""


def phase_label(phase: FlashPhase, partition: str | None = None) -> str:
    """The phase in the current language, with the partition filled in where the label names one."""
    return _(PHASE_LABELS[phase], partition=partition or "").strip()


# --- errors ------------------------------------------------------------------------------------------


class FlashingError(NaiadError):
    message = N_("Flashing unit {serial} failed: {detail}")


class NoUnitsSelected(FlashingError):
    message = N_("No units were chosen to flash")
    remedy = N_("Name units with --device SERIAL, or use --all for every attached unit.")


class NoUnitsAttached(FlashingError):
    message = N_("No units are attached to flash")
    remedy = N_("Check the hub and the cables, then run 'naiad devices'.")


class DuplicateUnit(FlashingError):
    message = N_("Unit {serial} is listed more than once")
    remedy = N_("Name each unit once.")


class FlashNotConfirmed(FlashingError):
    message = N_("Unit {serial} came back running {running} in slot {running_slot}, not {version} in slot {slot}")
    remedy = N_(
        "The new firmware did not boot, and the unit fell back to its old firmware, which still runs. "
        "Check that the bundle is meant for this unit, then flash again; if it falls back again, send it for repair."
    )


class BootloaderUnidentified(FlashingError):
    message = N_("The bootloader of unit {serial} does not report its {variable}")
    remedy = N_("Reboot the unit into run mode ('naiad reboot {serial} --mode run') and flash it again.")


class UnreadableUnitReport(FlashingError):
    message = N_("Unit {serial} reports an unreadable {field}: {value}")
    remedy = N_("Reboot the unit and try again; if it persists, send the unit for repair.")


class RestartedInRunMode(FlashingError):
    message = N_("Unit {serial} restarted in run mode {attempts} times instead of entering its bootloader")
    remedy = N_(
        "Its power or cable was cut during the reboot: check the power supply, the cable and the hub port, "
        "then flash it again. Nothing was written."
    )


class FlashCrashed(FlashingError):
    message = N_("Flashing unit {serial} stopped on an unexpected error: {detail}")
    remedy = N_(
        "Run the flash again: it resumes where it stopped. Report the error with the station log if it repeats."
    )


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlashResult:
    """One unit's outcome; a :class:`terminal.events.StepResult`."""

    serial: str
    ok: bool
    version: str | None
    """The version the unit was confirmed running (None unless ``ok``)."""
    slot: str | None
    """The slot the unit was confirmed running from (None unless ``ok``)."""
    written: tuple[str, ...]
    """Partitions written (and verified) in this run."""
    skipped: tuple[str, ...]
    """Partitions that already held their image (a resumed or repeated flash)."""
    seconds: float
    error: NaiadError | None = None

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: the fields, with the error as its class, text and remedy."""
        return {
            "serial": self.serial,
            "ok": self.ok,
            "version": self.version,
            "slot": self.slot,
            "written": list(self.written),
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "error": self.error.as_dict() if self.error is not None else None,
        }


FLASH_STEP = "flash"
"""The step name of a flash in the event stream."""


def _phase(reporter: Reporter, phase: FlashPhase, partition: str | None = None) -> None:
    reporter.phase(phase, phase_label(phase, partition), partition)


# --- one unit ----------------------------------------------------------------------------------------


@dataclass
class _Identity:
    """What the unit says about itself before anything is written."""

    model: TerminalModel
    hardware_revision: str
    security_version: int
    running_version: str | None = None  # known in run mode only


@dataclass
class _UnitFlash:
    station: Station
    bundle: Bundle
    plans: tuple[PartitionPlan, ...]
    serial: str
    report: Reporter
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    client: FastbootClient | None = None
    sent_to_bootloader: bool = False

    def run(self) -> FlashResult:
        started = time.monotonic()
        try:
            if self.station.ledger.device(self.serial) is None:
                self.station.find(self.serial)  # never seen: record it, or fail with nothing to record against
            with self.station.ledger.operation(self.serial, "flash") as op:
                op.result = self._ledger_result(None, None)
                device = self.station.find(self.serial)  # a unit gone by now is a failed flash in the ledger
                version, slot = self._procedure(device, op.result)
                op.result = self._ledger_result(version, slot)
            result = FlashResult(
                self.serial, True, version, slot, tuple(self.written), tuple(self.skipped), time.monotonic() - started
            )
        except Exception as exc:
            error = exc if isinstance(exc, NaiadError) else FlashCrashed(serial=self.serial, detail=repr(exc))
            if not isinstance(exc, NaiadError):
                LOG.exception("%s: flash crashed", self.serial)
            else:
                LOG.info("%s: flash failed: %s", self.serial, exc)
            self._send_back()
            result = FlashResult(
                self.serial,
                False,
                None,
                None,
                tuple(self.written),
                tuple(self.skipped),
                time.monotonic() - started,
                error,
            )
        finally:
            self._close()
        self.report.finished(result)
        return result

    def _ledger_result(self, version: str | None, slot: str | None) -> dict[str, Any]:
        return {"version": version, "slot": slot, "written": list(self.written), "skipped": list(self.skipped)}

    # -- the procedure ------------------------------------------------------------------------------

    def _procedure(self, device: Device, record: dict[str, Any]) -> tuple[str, str]:
        if device.mode == RUN:
            identity = self._identify_in_run_mode()
            self._check(identity)
            _phase(self.report, FlashPhase.REBOOT)
            client = self._open(self._reboot_to_bootloader())
        else:
            client = self._open(device)
            identity = self._identify_in_bootloader(client)
            self._check(identity)
        model = identity.model
        current = client.getvar("current-slot").removeprefix("_")
        if current not in model.slots:
            raise BootloaderUnidentified(serial=self.serial, variable="current-slot")
        target = self._already_flashed_slot(client, identity, current)
        if target is None:
            target = next(s for s in model.slots if s != current)
            self._write(client, target, current, record)
            _phase(self.report, FlashPhase.SWITCH)
            client.set_active(target)
        _phase(self.report, FlashPhase.BOOT)
        client.reboot()
        self._close()
        self.station.wait_for(self.serial, RUN, BOOT_TIMEOUT)
        return self._confirm(target)

    def _reboot_to_bootloader(self) -> Device:
        """Send the unit to its bootloader.  One that restarts in run mode instead (power cut during the
        reboot) is sent once more, then refused: never waited on until REBOOT_TIMEOUT."""
        for attempt in range(REBOOT_ATTEMPTS):
            if attempt:
                LOG.warning("%s: restarted in run mode instead of the bootloader; sending it again", self.serial)
                self.report.message(_("The unit restarted in run mode instead of its bootloader; sending it again"))
            self.station.reboot(self.serial, BOOTLOADER, wait=False, on_info=self._info)
            self.sent_to_bootloader = True
            device = self.station.wait_for(self.serial, BOOTLOADER, REBOOT_TIMEOUT, unless_back_in=RUN)
            if device.mode == BOOTLOADER:
                return device
        raise RestartedInRunMode(serial=self.serial, attempts=REBOOT_ATTEMPTS)

    def _identify_in_run_mode(self) -> _Identity:
        info = self.station.info(self.serial)
        model = model_by_id(str(info.get("model")))
        revision = info.get("hardware_revision")
        if not isinstance(revision, str):
            raise UnreadableUnitReport(serial=self.serial, field="hardware_revision", value=repr(revision))
        active = info.get("active_slot")
        slots = info.get("slots")
        about = slots.get(active) if isinstance(slots, dict) else None
        running = about.get("version") if isinstance(about, dict) else None
        security = self._count(info.get("security_version", 0), "security_version")
        return _Identity(model, revision, security, running if isinstance(running, str) else None)

    def _identify_in_bootloader(self, client: FastbootClient) -> _Identity:
        product = self._getvar(client, "product")
        revision = self._getvar(client, "hw-revision")
        if product is None:
            raise BootloaderUnidentified(serial=self.serial, variable="product")
        if revision is None:
            raise BootloaderUnidentified(serial=self.serial, variable="hw-revision")
        security = self._getvar(client, "security-version")
        level = 0 if security is None else self._count(security, "security-version")
        return _Identity(model_by_id(product), revision, level)

    def _count(self, value: object, name: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        raise UnreadableUnitReport(serial=self.serial, field=name, value=repr(value))

    def _check(self, identity: _Identity) -> None:
        """Everything that must hold before the unit is touched: A/B, model, revision, rollback, sizes."""
        check_ab_flashable(self.bundle, identity.model)
        self.bundle.check_before_flash(identity.model, identity.hardware_revision, identity.security_version)

    def _already_flashed_slot(self, client: FastbootClient, identity: _Identity, current: str) -> str | None:
        """``current`` when it already holds the whole bundle (a flash that was cut after the switch)."""
        if identity.running_version is not None and identity.running_version != self.bundle.manifest.version:
            return None  # it runs another version: one short look would be wasted
        _phase(self.report, FlashPhase.VERIFY)
        if not slot_holds(client, self.plans, current):
            return None
        self.skipped[:] = [plan.name for plan in self.plans]
        self.report.message(_("Slot {slot} already holds this bundle; nothing to write", slot=current))
        return current

    def _write(self, client: FastbootClient, target: str, current: str, record: dict[str, Any]) -> None:
        def on_step(step: FlashStep, partition: str) -> None:
            if step is FlashStep.CHECK or step is FlashStep.VERIFY:
                _phase(self.report, FlashPhase.VERIFY, partition)
            elif step is FlashStep.WRITE:
                _phase(self.report, FlashPhase.WRITE, partition)
            elif step is FlashStep.VERIFIED:
                self.written.append(partition)
                record["written"] = list(self.written)
            else:
                self.skipped.append(partition)
                record["skipped"] = list(self.skipped)
                self.report.message(_("{partition} already holds its image; skipped", partition=partition), partition)

        flash_slot(
            client,
            self.bundle,
            self.plans,
            target,
            active_slot=current,
            on_step=on_step,
            progress=self.report.item_progress,
        )

    def _confirm(self, target: str) -> tuple[str, str]:
        _phase(self.report, FlashPhase.CONFIRM)
        info = self.station.info(self.serial)
        active = str(info.get("active_slot"))
        slots = info.get("slots")
        about = slots.get(active) if isinstance(slots, dict) else None
        running = str(about.get("version")) if isinstance(about, dict) else "?"
        version = self.bundle.manifest.version
        if active != target or running != version:
            raise FlashNotConfirmed(
                serial=self.serial, running=running, running_slot=active, version=version, slot=target
            )
        LOG.info("%s: confirmed %s in slot %s", self.serial, version, active)
        return version, active

    # -- the link -----------------------------------------------------------------------------------

    def _open(self, device: Device) -> FastbootClient:
        self.client = self.station.open_fastboot(device, self._info)
        return self.client

    @staticmethod
    def _getvar(client: FastbootClient, name: str) -> str | None:
        """A variable, or None when the bootloader does not know it."""
        try:
            value = client.getvar(name).strip()
        except FastbootFailure:
            return None
        return value or None

    def _info(self, line: str) -> None:
        LOG.debug("%s: (bootloader) %s", self.serial, line)
        if self.report.phase_now != FlashPhase.VERIFY:  # the answers to hash queries are no news
            self.report.message(_("(bootloader) {line}", line=line))

    def _close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def _send_back(self) -> None:
        """After a failure, send a unit this flash put into its bootloader back to run mode (best effort)."""
        client = self.client
        if client is None or not self.sent_to_bootloader:
            return
        try:
            client.reboot()
            self._close()
            self.station.wait_for(self.serial, RUN, RECOVER_TIMEOUT)
        except NaiadError as exc:
            LOG.info("%s: could not send the unit back to run mode: %s", self.serial, exc)


# --- many units --------------------------------------------------------------------------------------


def _check_serials(serials: Sequence[str]) -> list[str]:
    chosen = list(serials)
    if not chosen:
        raise NoUnitsSelected()
    seen: set[str] = set()
    for serial in chosen:
        if serial in seen:
            raise DuplicateUnit(serial=serial)
        seen.add(serial)
    return chosen


@dataclass
class VerifiedBundle:
    """A bundle opened with the station's trusted keys and verified (signature and every hash), with its plans:
    what every unit of a run is flashed with.  Close it (or use it as a context manager) when the run ends."""

    bundle: Bundle
    plans: tuple[PartitionPlan, ...]

    @property
    def version(self) -> str:
        return self.bundle.manifest.version

    @property
    def path(self) -> Path:
        return self.bundle.path

    def close(self) -> None:
        self.bundle.close()

    def __enter__(self) -> VerifiedBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_verified_bundle(
    bundle_path: str | os.PathLike[str], progress: ItemProgressCallback | None = None
) -> VerifiedBundle:
    """Open the bundle at ``bundle_path`` with the station's trusted keys, verify every image and plan them, once
    per run and before any unit is touched; a bad bundle raises its typed error and stays closed.  ``progress``
    gets (image, bytes hashed, total bytes)."""
    bundle = Bundle.open(Path(bundle_path), TrustStore())
    try:
        bundle.verify(progress)
        plans = plan_bundle(bundle)
    except BaseException:
        bundle.close()
        raise
    return VerifiedBundle(bundle, plans)


def flash_unit(
    station: Station, verified: VerifiedBundle, serial: str, listener: Listener | None = None
) -> FlashResult:
    """Flash one unit with a bundle :func:`open_verified_bundle` made: the whole A/B procedure, one ledger
    operation ``flash``; a failure is the result's ``error``, never raised.  Events go to ``listener`` (step
    ``flash``), ending with a ``StepFinished``."""
    return flash_one(station, verified, serial, Reporter(listener, serial, FLASH_STEP))


def flash_one(station: Station, verified: VerifiedBundle, serial: str, reporter: Reporter) -> FlashResult:
    """:func:`flash_unit` with the unit's own reporter (a run that told it the check phase already)."""
    return _UnitFlash(station, verified.bundle, verified.plans, serial, reporter).run()


def flash_units(
    station: Station,
    bundle_path: str | os.PathLike[str],
    serials: Sequence[str],
    listener: Listener | None = None,
    *,
    max_workers: int | None = None,
) -> list[FlashResult]:
    """Flash the bundle at ``bundle_path`` onto every unit in ``serials``, in parallel; results in that order.

    The bundle is opened with the station's trusted keys and verified once (signature and every hash)
    before any unit is touched; a bundle that fails raises its typed error, after a ``StepFinished``
    for every unit.  ``listener`` gets every unit's events, from worker threads.  A unit found in
    bootloader mode is flashed from there (a flash resumed after an unplug).
    """
    chosen = _check_serials(serials)
    reporters = {serial: Reporter(listener, serial, FLASH_STEP) for serial in chosen}
    for reporter in reporters.values():
        _phase(reporter, FlashPhase.CHECK)
    started = time.monotonic()
    try:
        verified = open_verified_bundle(
            bundle_path, lambda partition, done, total: _bundle_progress(reporters, partition, done, total)
        )
    except NaiadError as exc:
        _refuse_all(reporters, exc, started)
        raise
    with verified:
        LOG.info("flashing %s (%s) onto %d units", bundle_path, verified.version, len(chosen))
        workers = max(1, min(max_workers or len(chosen), len(chosen)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flash") as pool:
            futures = [pool.submit(flash_one, station, verified, serial, reporters[serial]) for serial in chosen]
            return [future.result() for future in futures]


def _bundle_progress(reporters: dict[str, Reporter], partition: str, done: int, total: int) -> None:
    for reporter in reporters.values():
        reporter.item_progress(partition, done, total)


def _refuse_all(reporters: dict[str, Reporter], error: NaiadError, started: float) -> None:
    seconds = time.monotonic() - started
    for serial, reporter in reporters.items():
        reporter.finished(FlashResult(serial, False, None, None, (), (), seconds, error))
