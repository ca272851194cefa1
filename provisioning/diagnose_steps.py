"""The support engineer's read-only steps, and the verdict drawn from them by rules kept as data.

Every step here only reads: INFO, the boot history, the slots' content hashes (``diag/slot-hashes``, no reboot),
the secure element's key status, camera captures (the projector is put back as it was), a loopback through the
scratch object ``diag/loopback`` (forgotten at the next boot) and the logs.  Only the ledger records the run.
Each step's data carries ``findings``: translated lines the verdict quotes as its reasons (docs/diagnose.md).
"""

from __future__ import annotations

import abc
import hmac
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from camera.fieldcheck import ADVICE, FieldVerdict
from camera.frames import decode_frame_set
from i18n import N_, _
from terminal.camera import Board
from terminal.camera_unit import CameraUnit
from terminal.client import ManagementClient
from terminal.diagnostics import loopback, read_slot_hashes
from terminal.errors import MalformedReply, NaiadError, RemoteError
from terminal.protocol import ErrorCode, SecureElementState
from terminal.secure_element import SecureElement

from .camera_steps import CHECK_ROLES
from .diagnose_checks import FlashedBundle, bundle_images, self_test
from .steps import Resources, Setting, SettingKind, Step, StepOutcome, UnitJob, register
from .verdicts import Rule, judge, load_rules

SUPPORT_ROLES = CHECK_ROLES
"""Who may diagnose: the roles that may check a unit's camera (support, operator, installer), as the recipe's
field-check allows; an admin manages accounts and handles no unit."""
FLASH_STEPS = ("flash", "firmware-update")
LOOPBACK_BYTES = 384 * 1024
"""Bytes written and read back by the link check: a few hundred frames, enough for a noisy cable to show."""
LOG_TAIL = 20
"""Lines of the unit's log kept in the step's data."""
LOG_LINE_CHARS = 200
"""Characters kept of each of those lines: a unit's log is untrusted and may hold lines of any length."""
LINK_ROUNDS = 2
"""Loopback rounds at most: a round that shows damage is repeated once, and the cable is blamed only when every
round shows it (a stalled unit or a busy host damages no frame; it only makes the client retransmit)."""
_UNSUPPORTED = frozenset({ErrorCode.NOT_FOUND.value, ErrorCode.UNKNOWN_TYPE.value})
_LOG_ALARMS = ("error", "failed", "refused", "tamper", "fault")


class DiagnoseStep(Step):
    """A read-only step on one unit: a management session, figures, findings."""

    read_only: ClassVar[bool] = True
    roles: ClassVar[tuple[str, ...]] = SUPPORT_ROLES
    needs: ClassVar[frozenset[str]] = frozenset()  # the unit alone: no key store, no platform
    fields: ClassVar[tuple[str, ...]] = ()
    """The data fields verdict rules may name (``findings`` is always there)."""

    def run(self, job: UnitJob) -> StepOutcome:
        started = time.monotonic()
        try:
            data, detail = self.check(job)
        except RemoteError as exc:
            if str(exc.params.get("code")) not in _UNSUPPORTED:
                return StepOutcome(self.name, False, time.monotonic() - started, str(exc), {"findings": []}, exc)
            # older firmware without this diagnostic object: the check cannot run, which proves no fault
            found = _("The unit's firmware does not support this check ({request})", request=exc.params["request"])
            data = {"supported": False, "findings": [found]}
            return StepOutcome(self.name, False, time.monotonic() - started, found, data, exc)
        except NaiadError as exc:
            return StepOutcome(self.name, False, time.monotonic() - started, str(exc), {"findings": []}, exc)
        return StepOutcome(self.name, self.passed(data), time.monotonic() - started, detail, data)

    def passed(self, data: dict[str, Any]) -> bool:
        """Whether the step passed: it ran to the end (what it found is for the verdict to judge)."""
        return True

    @abc.abstractmethod
    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        """The step's data (with ``findings``) and its one line for people."""

    @contextmanager
    def connect(self, job: UnitJob) -> Iterator[ManagementClient]:
        with job.station.connect(job.serial) as client:
            yield client


@register
class UnitInfo(DiagnoseStep):
    name = "unit-info"
    label = N_("Reading the unit's information")
    fields = (
        "model",
        "hardware_revision",
        "active_slot",
        "running_version",
        "security_version",
        "boot_count",
        "secure_element",
        "camera_module",
    )

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        with self.connect(job) as client:
            info = client.info()
        active = info["active_slot"]
        running = (info["slots"].get(active) or {}).get("version")
        data = {
            "model": info["model"],
            "hardware_revision": info["hardware_revision"],
            "active_slot": active,
            "running_version": running,
            "security_version": info["security_version"],
            "boot_count": info.get("boot_count"),
            "secure_element": (info.get("secure_element") or {}).get("state"),
            "camera_module": info.get("camera_module"),
            "findings": [],
        }
        return data, _("{model}, firmware {version} in slot {slot}", model=info["model"], version=running, slot=active)


@register
class BootHistory(DiagnoseStep):
    name = "boot-history"
    label = N_("Reading the boot history")
    fields = ("boots", "failed_attempts", "fell_back", "last_fell_back", "bootloader_boots")

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        with self.connect(job) as client:
            boots = client.boot_history()
        failed = sum(int(b.get("failed_attempts") or 0) for b in boots)
        fell_back = sum(1 for b in boots if b.get("fell_back"))
        stuck = sum(1 for b in boots if b.get("error"))
        last = boots[-1] if boots else {}
        findings = []
        if last.get("fell_back"):
            findings.append(
                _(
                    "The last boot fell back to slot {slot} after {failed} failed attempts",
                    slot=last.get("slot"),
                    failed=last.get("failed_attempts", 0),
                )
            )
        data = {
            "boots": len(boots),
            "failed_attempts": failed,
            "fell_back": fell_back,
            "last_fell_back": bool(last.get("fell_back")),
            "bootloader_boots": stuck,
            "last": {k: last.get(k) for k in ("boot", "mode", "slot", "version", "at")},
            "findings": findings,
        }
        return data, _("{boots} boots, {failed} failed attempts", boots=len(boots), failed=failed)


def _flashed_from_ledger(job: UnitJob) -> tuple[FlashedBundle | None, str | None]:
    """What the unit's newest successful flash wrote, by any path (a recipe, ``naiad flash``, the console: each
    writes a ``flash`` operation): its version, with a recipe step's image hashes only when that step flashed the
    same version (else None: the version alone is compared)."""
    version = None
    for op in reversed(job.station.ledger.operations(job.serial)):
        if op.kind == "flash" and op.status == "succeeded" and op.result and op.result.get("version"):
            version = str(op.result["version"])
            break
    if version is None:
        return None, None
    for record in reversed(job.station.ledger.unit_steps(job.serial)):
        data = record.data or {}
        flashed = record.name in FLASH_STEPS and record.status == "succeeded" and isinstance(data.get("images"), dict)
        if flashed and str(data.get("after") or data.get("version")) == version:
            return FlashedBundle(version, {str(k): str(v) for k, v in data["images"].items()}), version
    return None, version


@register
class FirmwareSlots(DiagnoseStep):
    name = "firmware-slots"
    label = N_("Checking the firmware slots against the bundle flashed")
    settings = (
        Setting("bundle", SettingKind.FILE, "", N_("The bundle flashed (default: the one the ledger recorded)")),
    )
    fields = ("active_slot", "running_version", "expected_version", "source", "mismatched", "unbootable", "problems")

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        bundle = self.config.get("bundle") or ""
        self.bundle = bundle_images(Path(bundle)) if bundle else None  # a bad bundle refuses the batch

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        with self.connect(job) as client:
            info = client.info()
            hashes = read_slot_hashes(client)
        active = info["active_slot"]
        slots = info["slots"]
        running = (slots.get(active) or {}).get("version")
        expected, source = self.bundle, "bundle"
        version = expected.version if expected else None
        if expected is None:
            expected, version = _flashed_from_ledger(job)
            source = "ledger" if expected else ("ledger-version" if version else "none")
        findings = []
        unbootable = sorted(name for name, slot in slots.items() if not slot.get("bootable", True))
        for name in unbootable:
            findings.append(_("Slot {slot} does not boot", slot=name))
        if version is not None and running != version:
            findings.append(
                _(
                    "The unit runs {running} in slot {slot}, not {version} as flashed",
                    running=running,
                    slot=active,
                    version=version,
                )
            )
        mismatched = []
        held = hashes.get(active, {})
        if expected is not None and running == expected.version:
            for partition, digest in sorted(expected.images.items()):
                found = held.get(partition)
                if found is None or not hmac.compare_digest(found.sha256, digest):
                    mismatched.append(partition)
                    findings.append(
                        _(
                            "Partition {partition} of slot {slot} does not hold the image flashed",
                            partition=partition,
                            slot=active,
                        )
                    )
        elif expected is None:
            job.reporter(self.name).message(_("No record of the bundle flashed: the hashes are not compared"))
        data = {
            "active_slot": active,
            "running_version": running,
            "expected_version": version,
            "source": source,
            "slots": {name: dict(slot) for name, slot in slots.items()},
            "hashes": {s: {p: (h.sha256 if h else None) for p, h in parts.items()} for s, parts in hashes.items()},
            "mismatched": mismatched,
            "unbootable": unbootable,
            "problems": len(findings),
            "findings": findings,
        }
        return data, _("{count} problems in the firmware slots", count=len(findings))


def _provisioned_without_keys(job: UnitJob, state: str) -> str | None:
    """Why a unit holding no payment key (and none recorded by this ledger) should hold one: its secure element
    was enrolled, or the ledger recorded it flashed, calibrated or through a writing recipe; None when nothing says
    it was ever provisioned (a unit fresh from the factory)."""
    if state not in (SecureElementState.FACTORY.value, ""):
        return _("The unit holds no payment key, though its secure element is {state}", state=state)
    ledger = job.station.ledger
    if any(op.status == "succeeded" for op in ledger.operations(job.serial)) or ledger.calibrations(job.serial):
        return _("The unit holds no payment key, though the ledger recorded it provisioned")
    return None


@register
class KeyStatus(DiagnoseStep):
    name = "key-status"
    label = N_("Checking the payment keys against the ledger")
    fields = ("state", "keys", "recorded", "initial_key_id", "kcv", "problem")

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        with self.connect(job) as client:
            status = SecureElement(client).status()
        injections = job.station.ledger.injections(job.serial)
        recorded = injections[-1] if injections else None
        problem, findings = "", []
        if recorded is not None:
            slot = next((k for k in status.keys if k.initial_key_id == recorded.initial_key_id), None)
            if not status.keys:
                problem = "missing"
                findings.append(
                    _(
                        "The unit holds no payment key, but the ledger recorded key {key_id} injected",
                        key_id=recorded.initial_key_id.hex().upper(),
                    )
                )
            elif slot is None or not hmac.compare_digest(slot.kcv, recorded.kcv):
                problem = "mismatch"
                findings.append(
                    _(
                        "The unit's payment key is not key {key_id} the ledger recorded",
                        key_id=recorded.initial_key_id.hex().upper(),
                    )
                )
        elif status.keys:
            problem = "unrecorded"
            findings.append(_("The unit holds a payment key the ledger has no injection for"))
        elif (why := _provisioned_without_keys(job, str(status.state))) is not None:
            problem = "missing"
            findings.append(why)
        data = {
            "state": status.state,
            "keys": len(status.keys),
            "recorded": recorded is not None,
            "initial_key_id": recorded.initial_key_id.hex().upper() if recorded else None,
            "kcv": recorded.kcv.hex().upper() if recorded else None,
            "problem": problem,
            "findings": findings,
        }
        detail = _("Secure element {state}, {count} keys", state=status.state, count=len(status.keys))
        return data, detail


@register
class CameraSelfTest(DiagnoseStep):
    name = "camera-self-test"
    label = N_("Testing the projector, the IR and the RGB cameras")
    fields = (
        "speckle_contrast",
        "speckle_gain",
        "depth_fill",
        "ir_mean",
        "ir_clipped",
        "ir_noise",
        "rgb_sharpness",
        "board_ir",
        "board_rgb",
        "projector_ok",
        "ir_ok",
        "rgb_ok",
        "judged",
    )

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        jig = job.resources.jig
        if jig is not None:  # the station's jig holds the board up; released whatever happens
            jig.present_board(job.serial, 0)
        else:  # the field check asked for the board already: the person keeps holding it
            job.reporter(self.name).message(_(ADVICE[FieldVerdict.NO_TARGET]))
        try:
            return self._check(job)
        finally:
            if jig is not None:
                try:
                    jig.release(job.serial)
                except NaiadError as exc:
                    job.reporter(self.name).message(str(exc))

    def _check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        with self.connect(job) as client:
            path = client.transport.path
            camera = CameraUnit(client)
            was_on = camera.projector()
            try:
                camera.projector(True)
                lit = decode_frame_set(camera.capture(("ir", "depth"), speckle=True))
                camera.projector(False)
                flood = decode_frame_set(camera.capture(("ir", "rgb")))
            except NaiadError:
                self._restore(job, was_on)  # on a fresh connection: this one may be what failed
                raise
            camera.projector(was_on)  # as it was: a diagnosis leaves the unit as it found it
        frames = {"ir": lit.ir, "depth": lit.depth, "flood-ir": flood.ir, "rgb": flood.rgb}
        got = {name: frame for name, frame in frames.items() if frame is not None}
        missing = sorted(set(frames) - set(got))
        if missing:  # a unit's capture is untrusted: a stream it left out is its fault, named
            raise MalformedReply(
                path=path, serial=job.serial, request="camera-capture", field=missing[0], expected=_("a frame")
            )
        test = self_test(got["ir"], got["depth"], got["flood-ir"], got["rgb"], Board())
        findings = []
        if not test.judged:  # never a fault on a scene that cannot show one: facing nothing, a wall, a face
            findings.append(
                _(
                    "No calibration board in view ({ir} IR, {rgb} RGB corners): the camera could be judged only in "
                    "part",
                    ir=test.board_ir,
                    rgb=test.board_rgb,
                )
            )
        if test.projector_ok is False:
            findings.append(
                _(
                    "The projector shows no dots: speckle gain {gain:.2f}, depth fill {fill:.0%}",
                    gain=test.speckle_gain,
                    fill=test.depth_fill,
                )
            )
        if test.ir_ok is False:
            findings.append(_("The IR frame is black or clipped: mean {mean:.0f}", mean=test.ir_mean))
        if test.rgb_ok is False:
            findings.append(
                _("The RGB camera is out of focus: sharpness {value:.1f}", value=test.rgb_sharpness)
                if test.rgb_sharpness is not None
                else _("The RGB camera does not resolve the board the IR camera sees: out of focus")
            )
        faults = [test.projector_ok, test.ir_ok, test.rgb_ok].count(False)
        return {**test.figures(), "findings": findings}, _("{count} camera faults", count=faults)

    def _restore(self, job: UnitJob, was_on: bool) -> None:
        """Put the projector back as it was over a new session; when even that fails, say so (the one state a
        diagnosis may leave changed, docs/diagnose.md)."""
        try:
            with self.connect(job) as client:
                CameraUnit(client).projector(was_on)
        except NaiadError as exc:
            job.reporter(self.name).message(
                _(
                    "The projector could not be switched back {state}: {problem}",
                    state=_("on") if was_on else _("off"),
                    problem=str(exc),
                )
            )


@register
class LinkCheck(DiagnoseStep):
    name = "link-check"
    label = N_("Testing the link with a loopback")
    fields = ("bytes", "rounds", "intact", "retransmissions", "damaged_frames", "throughput")

    def passed(self, data: dict[str, Any]) -> bool:
        return bool(data["intact"])  # a link that loses data failed its check

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        rounds = []
        with self.connect(job) as client:
            for _round in range(LINK_ROUNDS):
                rounds.append(loopback(client, LOOPBACK_BYTES))
                if rounds[-1].intact and not rounds[-1].damaged_frames:
                    break  # a clean round: the cable carries data whole
        # the cable is blamed only for what every round shows: a stall or a busy host is not repeated at will
        intact = any(r.intact for r in rounds)
        damaged = min(r.damaged_frames for r in rounds)
        result = rounds[-1]
        findings = []
        if not intact:
            findings.append(_("The loopback data did not come back whole"))
        if damaged:
            findings.append(_("{count} frames arrived damaged", count=damaged))
        retransmissions = sum(r.retransmissions for r in rounds)
        data = {
            "bytes": result.bytes,
            "rounds": len(rounds),
            "intact": intact,
            "retransmissions": retransmissions,
            "damaged_frames": damaged,
            "throughput": round(result.throughput),
            "findings": findings,
        }
        detail = _(
            "{kib} KiB round trip at {rate:.1f} MB/s, {count} retransmissions",
            kib=result.bytes // 1024,
            rate=result.throughput / 1e6,
            count=retransmissions,
        )
        return data, detail


@register
class Logs(DiagnoseStep):
    name = "logs"
    label = N_("Reading the unit's logs")
    fields = ("lines", "alarms", "tamper")

    def check(self, job: UnitJob) -> tuple[dict[str, Any], str]:
        with self.connect(job) as client:
            text = client.logs()
        lines = text.splitlines()
        alarms = [line for line in lines if any(word in line.lower() for word in _LOG_ALARMS)]
        tamper = any("tamper" in line.lower() for line in lines)
        findings = [_("The unit logged a tamper event")] if tamper else []
        data = {
            "lines": len(lines),
            "alarms": len(alarms),
            "tamper": tamper,
            "tail": [_cut(line) for line in lines[-LOG_TAIL:]],
            "alarm_lines": [_cut(line) for line in alarms[-LOG_TAIL:]],
            "findings": findings,
        }
        return data, _("{lines} lines, {alarms} alarms", lines=len(lines), alarms=len(alarms))


def _cut(line: str) -> str:
    """One of the unit's log lines as kept: at most LOG_LINE_CHARS characters, marked when cut."""
    return line if len(line) <= LOG_LINE_CHARS else line[: LOG_LINE_CHARS - 1] + "…"


def rule_fields() -> dict[str, frozenset[str]]:
    """Each step a verdict rule may name, and its data fields."""
    known = {cls.name: frozenset((*cls.fields, "findings", "supported")) for cls in DIAGNOSE_STEPS}
    known["field-check"] = frozenset(("verdict", "passed", "findings"))  # B's step (provisioning/onsite_steps.py)
    return known


@register
class VerdictStep(Step):
    name = "verdict"
    label = N_("Drawing the verdict")
    read_only: ClassVar[bool] = True
    roles: ClassVar[tuple[str, ...]] = SUPPORT_ROLES
    needs: ClassVar[frozenset[str]] = frozenset()  # the unit alone: no key store, no platform
    settings = (Setting("rules", SettingKind.FILE, "", N_("A verdict rules file (default: the built-in rules)")),)

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        path = self.config.get("rules") or ""
        self.rules: tuple[Rule, ...] = load_rules(rule_fields(), *([Path(path)] if path else []))

    def run(self, job: UnitJob) -> StepOutcome:
        started = time.monotonic()
        verdict = judge(self.rules, job.earlier)
        detail = _("{verdict}: {action}", verdict=verdict.text, action=verdict.action_text)
        return StepOutcome(self.name, True, time.monotonic() - started, detail, verdict.as_data())


DIAGNOSE_STEPS: tuple[type[DiagnoseStep], ...] = (
    UnitInfo,
    BootHistory,
    FirmwareSlots,
    KeyStatus,
    CameraSelfTest,
    LinkCheck,
    Logs,
)
