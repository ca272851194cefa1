"""A unit's history from the ledger: what was done to it, by whom, where and when (``naiad history SERIAL``).

Everything the ledger knows of one serial: the device, every recipe run and its steps, the operations (flash,
reboot, calibration ...), the key injections (Initial Key IDs and KCVs, never a key), the calibrations and camera
checks, the platform calls (face tokens left out, pending or not) and the audit entries about the unit.  Read only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from i18n import N_
from keys.kcv import shown
from terminal.errors import NaiadError

from .ledger import Ledger
from .ledger.audit import looks_secret
from .ledger.platform_calls import BLANKED_WHEN_SETTLED
from .ledger.records import DeviceRecord, PlatformCallRecord

DEVICE_SUBJECT = "device:{serial}"
CHINA = dt.timezone(dt.timedelta(hours=8), "UTC+08:00")
"""What people read: China time with its offset, as the reports (the product is used in China; a reader abroad
sees the offset).  JSON keeps ISO 8601 with the offset too."""


def china_time(value: dt.datetime | None) -> str | None:
    """``value`` as ``2026-11-30 21:05:09 UTC+08:00`` (naive times are the ledger's UTC)."""
    if value is None:
        return None
    return _utc(value).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S UTC+08:00")


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


KINDS = (
    N_("run"),
    N_("step"),
    N_("operation"),
    N_("injection"),
    N_("calibration"),
    N_("camera-check"),
    N_("platform-call"),
    N_("audit"),
)
"""The kinds of a timeline's events, marked for the catalogs (shown translated)."""
STATUSES = (
    N_("succeeded"),
    N_("failed"),
    N_("running"),
    N_("injected"),
    N_("stored"),
    N_("passed"),
    N_("done"),
    N_("pending"),
    N_("refused"),
)


SHOWN_ELSEWHERE = ("station.", "operation.", "keys.", "camera.", "platform.call.")
"""Audit actions whose event the timeline lists in its own row."""


class UnknownUnitHistory(NaiadError):
    message = N_("The ledger knows nothing of unit {serial}")
    remedy = N_("Check the serial on the unit's label, and that this station uses the line's ledger (--ledger).")


@dataclass(frozen=True)
class Event:
    """One line of a unit's timeline: when, what kind, what, and where and by whom."""

    at: dt.datetime | None
    kind: str  # run, step, operation, injection, calibration, camera-check, platform-call, audit
    what: str
    status: str
    station: str | None = None
    operator: str | None = None


@dataclass(frozen=True)
class UnitHistory:
    serial: str
    device: DeviceRecord | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    injections: list[dict[str, Any]] = field(default_factory=list)
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    camera_checks: list[dict[str, Any]] = field(default_factory=list)
    platform_calls: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.device is not None or any((self.operations, self.injections, self.runs, self.audit))

    def timeline(self, *, brief: bool = False) -> list[Event]:
        """Every event, oldest first; ``brief`` (``naiad history``'s table) leaves out the audit entries that only
        repeat a run, step, operation, injection, calibration, check or platform call listed already."""
        events = [
            Event(
                r.get("started"),
                "run",
                str(r.get("recipe")),
                str(r.get("status")),
                r.get("station"),
                r.get("operator"),
            )
            for r in self.runs
        ]
        events += [
            Event(s.get("started"), "step", f"{s.get('recipe')}: {s.get('name')}", str(s.get("status")))
            for s in self.steps
        ]
        events += [
            Event(o["started"], "operation", o["kind"], o["status"], o["station"], o["operator"])
            for o in self.operations
        ]
        events += [
            Event(
                i["injected"],
                "injection",
                f"{i['initial_key_id'].hex().upper()} KCV {i['kcv']}",
                "injected",
                i["station"],
                i["operator"],
            )
            for i in self.injections
        ]
        events += [
            Event(c["created"], "calibration", c["checksum"][:12], "stored", c["station"], c["operator"])
            for c in self.calibrations
        ]
        events += [
            Event(
                c["created"],
                "camera-check",
                c["kind"],
                ("passed" if c["passed"] else "failed"),
                c["station"],
                c["operator"],
            )
            for c in self.camera_checks
        ]
        events += [
            Event(p["created"], "platform-call", p["method"], p["state"], p["station"], p["operator"])
            for p in self.platform_calls
        ]
        events += [
            Event(a["at"], "audit", a["action"], "", a["station"], a["operator"])
            for a in self.audit
            if not (brief and a["action"].startswith(SHOWN_ELSEWHERE))
        ]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        return sorted(events, key=lambda e: _aware(e.at) or epoch)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: times as ISO 8601, bytes as hex."""
        plain: dict[str, Any] = _plain(
            {
                "serial": self.serial,
                "device": self.device,
                "runs": self.runs,
                "steps": self.steps,
                "operations": self.operations,
                "injections": self.injections,
                "calibrations": self.calibrations,
                "camera_checks": self.camera_checks,
                "platform_calls": self.platform_calls,
                "audit": self.audit,
            }
        )
        return plain


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, dt.datetime):
        return _utc(value).isoformat()
    return value


def _without_secrets(value: Any) -> Any:
    """A platform call's request or reply without its face tokens or anything named like a secret."""
    if isinstance(value, dict):
        return {
            k: _without_secrets(v) for k, v in value.items() if k not in BLANKED_WHEN_SETTLED and not looks_secret(k)
        }
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def unit_history(ledger: Ledger, serial: str) -> UnitHistory:
    """Everything ``ledger`` knows about unit ``serial``."""
    injections = [
        {**{k: v for k, v in asdict(i).items() if k != "serial"}, "kcv": shown(i.kcv)}
        for i in ledger.injections(serial)
    ]  # IDs and KCVs (in the form people compare, keys.kcv.shown): an InjectionRecord holds no key
    calls = [
        {**asdict(c), "biz": _without_secrets(c.biz), "reply": _without_secrets(c.reply)}
        for c in _platform_calls(ledger, serial)
    ]
    return UnitHistory(
        serial=serial,
        device=ledger.device(serial),
        runs=[asdict(r) for r in ledger.unit_runs(serial)],
        steps=[asdict(s) for s in ledger.unit_steps(serial)],
        operations=[asdict(o) for o in ledger.operations(serial)],
        injections=injections,
        calibrations=[asdict(c) for c in ledger.calibrations(serial)],
        camera_checks=[asdict(c) for c in ledger.camera_checks(serial)],
        platform_calls=sorted(calls, key=lambda c: c["created"]),
        audit=[asdict(a) for a in ledger.audit_entries(subject=DEVICE_SUBJECT.format(serial=serial))],
    )


def _platform_calls(ledger: Ledger, serial: str) -> list[PlatformCallRecord]:
    """The unit's platform calls, pending or settled, found by the request numbers its audit entries name."""
    calls: dict[str, PlatformCallRecord] = {}
    for entry in ledger.audit_entries(subject=DEVICE_SUBJECT.format(serial=serial)):
        request_no = entry.details.get("request_no")
        if isinstance(request_no, str) and request_no not in calls:
            call = ledger.platform_call(request_no)
            if call is not None and call.serial == serial:
                calls[request_no] = call
    return list(calls.values())
