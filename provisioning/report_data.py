"""What a unit's report holds, gathered from the ledger (``provisioning/reports.py`` writes it out).

Everything here is read through the ledger's own API and kept as plain JSON-safe data: the unit, its recipe
runs and steps, its payment key IDs and KCVs (never a key), its camera calibrations and checks, its face-pay
checks' stage times, its platform calls (method, state, request number; never a face token or an auth code)
and the latest diagnosis verdict.  Times are China time with the UTC offset shown.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from i18n import N_, _, get_language
from terminal.errors import NaiadError

from .facepay_steps import FACEPAY_STEP
from .history import unit_history
from .ledger import Ledger
from .ledger.audit import looks_secret
from .ledger.validate import serial as valid_serial

SCHEMA = "naiad.unit-report/1"
CHINA = dt.timezone(dt.timedelta(hours=8), "UTC+08:00")
"""Reports show China time with its offset (the product is used in China; a reader abroad sees the offset)."""
VERDICT_STEP = "verdict"
_TOKEN_NAMES = frozenset({"auth_code", "ftoken", "token", "face_token", "access_token", "biz"})
_DEPTH_KEY = re.compile(r"(?P<name>[a-z_]+)\.(?P<distance>\d+(?:\.\d+)?)m")
DEPTH_FIGURES = ("fill_rate", "plane_rms_mm", "z_error_mm", "z_error_pct", "subpixel_rms_px")
"""The depth-quality figures a report's table shows per distance, in this order."""


class ReportError(NaiadError):
    """A report or label that cannot be made as asked."""

    message = N_("The report could not be made: {detail}")


class UnitNotInLedger(ReportError):
    message = N_("The ledger has no unit {serial}")
    remedy = N_("Check the serial number, or the ledger the station uses (--ledger).")


def china_time(value: dt.datetime | None) -> str | None:
    """``value`` as ``2026-11-30 21:05:09 UTC+08:00`` (naive times are the ledger's UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S UTC+08:00")


def file_stem(name: str) -> str:
    """A serial or batch ID as part of a file or folder name (':' is not allowed in Windows names): the one
    rule for every report, label and unit folder."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def write_shared(temp: Path, target: Path) -> None:
    """Rename the finished ``temp`` to ``target`` with the mode a new file gets from the umask (``mkstemp`` makes
    0600: a label printer's service or another operator account could not read it)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)
    os.replace(temp, target)


def short_time(value: object) -> str:
    """A report time without its offset, for table cells (the page says once that times are UTC+08:00)."""
    return "–" if value is None else str(value).removesuffix(" UTC+08:00")


def scrubbed(value: Any) -> Any:
    """``value`` with every field named like a key, PIN, password or face token removed, however deep.

    The ledger already refuses such fields; a report applies the rule again because it is the thing that
    leaves the building."""
    if isinstance(value, Mapping):
        return {
            str(k): scrubbed(v)
            for k, v in value.items()
            if not (looks_secret(str(k)) or str(k).lower() in _TOKEN_NAMES)
        }
    if isinstance(value, list | tuple):
        return [scrubbed(item) for item in value]
    if isinstance(value, float) and value != value:  # NaN: not JSON
        return None
    return value


@dataclass
class UnitReport:
    """One unit's report: JSON-safe parts, each a list of plain dicts (see ``docs/reports.md``)."""

    serial: str
    model: str | None
    first_seen: str | None
    last_seen: str | None
    generated: str
    language: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    depth_quality: list[dict[str, Any]] = field(default_factory=list)
    field_checks: list[dict[str, Any]] = field(default_factory=list)
    face_pay_checks: list[dict[str, Any]] = field(default_factory=list)
    platform_calls: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated": self.generated,
            "language": self.language,
            "unit": {
                "serial": self.serial,
                "model": self.model,
                "first_seen": self.first_seen,
                "last_seen": self.last_seen,
            },
            "keys": self.keys,
            "runs": self.runs,
            "operations": self.operations,
            "calibrations": self.calibrations,
            "depth_quality": self.depth_quality,
            "field_checks": self.field_checks,
            "face_pay_checks": self.face_pay_checks,
            "platform_calls": self.platform_calls,
            "verdict": self.verdict,
        }

    def step_rows(self) -> list[dict[str, Any]]:
        """One row per step of every run, oldest first (the CSV's rows)."""
        return [
            {"run_id": run["run_id"], "recipe": run["recipe"], **step} for run in self.runs for step in run["steps"]
        ]


def gather_unit(
    ledger: Ledger, serial: str, now: dt.datetime | None = None, *, writing: tuple[int, str] | None = None
) -> UnitReport:
    """The report of ``serial`` as the ledger has it now; :class:`UnitNotInLedger` when it never saw the unit.

    ``writing`` is ``(run id, step name)`` when a step of a run writes this report: that step, still running in
    the ledger, is shown as what it is by the time anyone reads the report, succeeded, "this report"."""
    valid_serial(serial)
    history = unit_history(ledger, serial)  # the one collector of a unit's records (naiad history's too)
    device = history.device
    if device is None:
        raise UnitNotInLedger(serial=serial)
    report = UnitReport(
        serial=serial,
        model=device.model,
        first_seen=china_time(device.first_seen),
        last_seen=china_time(device.last_seen),
        generated=china_time(now or dt.datetime.now(dt.UTC)) or "",
        language=get_language(),
    )
    report.keys = [_key(i) for i in history.injections]
    report.runs = _runs(history.steps, writing, report.generated)
    report.operations = [_operation(op) for op in history.operations]
    report.calibrations = [
        {"checksum": c["checksum"], "created": china_time(c["created"]), "station": c["station"],
         "figures": dict(c["figures"])}
        for c in history.calibrations
    ]  # fmt: skip
    report.depth_quality = [
        {
            "created": china_time(c["created"]),
            "passed": c["passed"],
            "calibration": c["calibration"],
            "distances": depth_rows(c["figures"]),
        }
        for c in history.camera_checks
        if c["kind"] == "depth-quality"
    ]
    report.field_checks = [
        {"created": china_time(c["created"]), "passed": c["passed"], "verdict": c["verdict"],
         "figures": dict(c["figures"])}
        for c in history.camera_checks
        if c["kind"] == "field-check"
    ]  # fmt: skip
    report.face_pay_checks = [_face_pay(op) for op in history.operations if op["kind"] == FACEPAY_STEP and op["result"]]
    report.platform_calls = [_platform_call(c) for c in history.platform_calls]
    report.verdict = _verdict(report.runs)
    return report


def depth_rows(figures: Mapping[str, float | int]) -> list[dict[str, Any]]:
    """The depth-quality figures ``name.<distance>m`` as one row per distance, nearest first."""
    by_distance: dict[float, dict[str, Any]] = {}
    for key, value in figures.items():
        found = _DEPTH_KEY.fullmatch(key)
        if found is None:
            continue
        distance = float(found["distance"])
        by_distance.setdefault(distance, {"distance_m": distance})[found["name"]] = value
    return [by_distance[d] for d in sorted(by_distance)]


def _key(injection: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "initial_key_id": injection["initial_key_id"].hex().upper(),
        "kcv": injection["kcv"],  # unit_history shows it as people compare it (keys.kcv.shown)
        "certificate_serial": injection["certificate_serial"],
        "bdk_label": injection["bdk_label"],
        "injected": china_time(injection["injected"]),
        "station": injection["station"],
        "operator": injection["operator"],
    }


def _runs(
    steps: Sequence[Mapping[str, Any]], writing: tuple[int, str] | None = None, now: str | None = None
) -> list[dict[str, Any]]:
    """The unit's recipe runs, each with its steps, oldest first (``writing``: see :func:`gather_unit`)."""
    runs: dict[int, dict[str, Any]] = {}
    for record in steps:
        step = SimpleNamespace(**record)
        run = runs.setdefault(
            step.run_id, {"run_id": step.run_id, "recipe": step.recipe, "steps": [], "this_report": False}
        )
        if writing == (step.run_id, step.name) and step.status == "running":
            run["this_report"] = True
            run["steps"].append(
                {
                    "name": step.name,
                    "status": "succeeded",
                    "started": china_time(step.started),
                    "finished": now,
                    "seconds": None,
                    "detail": _("this report"),
                    "already_done": False,
                    "data": {},
                    "error": None,
                }
            )
            continue
        run["steps"].append(
            {
                "name": step.name,
                "status": step.status,
                "started": china_time(step.started),
                "finished": china_time(step.finished),
                "seconds": None if step.seconds is None else round(float(step.seconds), 3),
                "detail": step.detail or "",
                "already_done": step.already_done,
                "data": scrubbed(step.data or {}),
                "error": None if step.error is None else str(step.error.get("error", "")) or None,
            }
        )
    return list(runs.values())


def _operation(op: Mapping[str, Any]) -> dict[str, Any]:
    seconds = None if op["ended"] is None else round((op["ended"] - op["started"]).total_seconds(), 3)
    return {
        "id": op["id"],
        "kind": op["kind"],
        "status": op["status"],
        "started": china_time(op["started"]),
        "ended": china_time(op["ended"]),
        "seconds": seconds,
        "station": op["station"],
        "operator": op["operator"],
        "result": scrubbed(op["result"]) if op["result"] is not None else None,
    }


def _face_pay(op: Mapping[str, Any]) -> dict[str, Any]:
    result = op["result"] or {}
    stages = [
        {"name": str(s.get("name", "")), "ok": bool(s.get("ok")), "seconds": _number(s.get("seconds"))}
        for s in result.get("stages", [])
        if isinstance(s, Mapping)
    ]
    return {
        "started": china_time(op["started"]),
        "result": result.get("result"),
        "presentation": result.get("presentation"),
        "trade_no": result.get("trade_no"),
        "refunded": result.get("refunded"),
        "stages": stages,
        "total_seconds": round(sum(float(s["seconds"] or 0.0) for s in stages), 3),
    }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _platform_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A platform call of the unit: what was asked and how it ended, never the request's or the reply's content
    (face tokens, auth codes)."""
    return {
        "request_no": call["request_no"],
        "method": call["method"],
        "state": call["state"],
        "attempts": call["attempts"],
        "created": china_time(call["created"]),
        "updated": china_time(call["updated"]),
        "error": call["error"],
        "station": call["station"],
    }


def _verdict(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The latest diagnosis verdict (the ``verdict`` step's data), None when the unit was never diagnosed."""
    latest = None
    for run in runs:
        for step in run["steps"]:
            if step["name"] == VERDICT_STEP and step["status"] == "succeeded":
                data = step["data"]
                reasons = data.get("reasons") if isinstance(data.get("reasons"), list) else []
                latest = {
                    "verdict": data.get("verdict"),
                    "action": data.get("action"),
                    "reasons": [str(r) for r in reasons],
                    "at": step["finished"],
                }
    return latest


def step_label(name: str) -> str:
    """A step's name as people read it (the registered step's title), the name itself when unknown."""
    from .steps import STEPS  # registered lazily by all_steps(); no import cycle at load time

    cls = STEPS.get(name)
    return cls.title() if cls is not None else name


def figure_label(name: str) -> str:
    """A figure's name for people; unknown ones are shown as they are."""
    return _(FIGURE_LABELS[name]) if name in FIGURE_LABELS else name


FIGURE_LABELS: dict[str, str] = {
    "ir_rms_px": N_("IR reprojection RMS (px)"),
    "rgb_rms_px": N_("RGB reprojection RMS (px)"),
    "stereo_rms_px": N_("Stereo RMS (px)"),
    "views_used": N_("Views used"),
    "distance_m": N_("Distance (m)"),
    "fill_rate": N_("Fill rate"),
    "plane_rms_mm": N_("Plane RMS (mm)"),
    "z_error_mm": N_("Depth error (mm)"),
    "z_error_pct": N_("Depth error (%)"),
    "subpixel_rms_px": N_("Subpixel RMS (px)"),
    "ir_std_fx": N_("IR fx standard deviation (px)"),
    "ir_std_fy": N_("IR fy standard deviation (px)"),
    "ir_std_cx": N_("IR cx standard deviation (px)"),
    "ir_std_cy": N_("IR cy standard deviation (px)"),
    "rgb_std_fx": N_("RGB fx standard deviation (px)"),
    "rgb_std_fy": N_("RGB fy standard deviation (px)"),
    "rgb_std_cx": N_("RGB cx standard deviation (px)"),
    "rgb_std_cy": N_("RGB cy standard deviation (px)"),
    "reprojection_rms_px": N_("Reprojection RMS (px)"),
    "depth_bias_pct": N_("Depth bias (%)"),
    "board_distance_m": N_("Board distance (m)"),
    "ir_blur_px": N_("IR blur (px)"),
    "rgb_blur_px": N_("RGB blur (px)"),
    "speckle_dots": N_("Speckle dots"),
    "misalignment_px": N_("IR-RGB misalignment (px)"),
}


def ordered(figures: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``figures`` in the order of :data:`FIGURE_LABELS` (related figures together), unknown ones after, by name."""
    rank = {name: i for i, name in enumerate(FIGURE_LABELS)}
    return sorted(figures.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


STATUS_LABELS: dict[str, str] = {
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "running": N_("running"),
    "already-done": N_("already done"),
    "held-elsewhere": N_("held by another station"),
    "pending": N_("pending"),
    "done": N_("done"),
    "refused": N_("refused"),
    "abandoned": N_("abandoned"),
    "pass": N_("passed"),
    "fail": N_("did not pass"),
    "live": N_("live face"),
}


def status_label(value: object) -> str:
    """A status or result word for people; unknown ones are shown as they are."""
    text = "–" if value is None else str(value)
    return _(STATUS_LABELS[text]) if text in STATUS_LABELS else text


def stage_name(name: str) -> str:
    """A face-pay check stage for people (its translated label), the name itself when unknown."""
    from .facepay_steps import STAGE_LABELS

    return _(STAGE_LABELS[name]) if name in STAGE_LABELS else name
