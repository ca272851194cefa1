"""Reports as bytes: HTML (jinja2, autoescaped), JSON and CSV; PDF is ``report_pdf.py``'s.

Every heading comes from :func:`words` (translated through the catalogs), so the HTML and the PDF say the same
thing in the current language.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from i18n import N_, _

from .report_batch import BatchReport, failures, findings
from .report_data import (
    DEPTH_FIGURES,
    UnitReport,
    figure_label,
    ordered,
    short_time,
    stage_name,
    status_label,
    step_label,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"

WORDS: dict[str, str] = {
    "unit_title": N_("Unit report"),
    "batch_title": N_("Batch report"),
    "serial": N_("Serial number"),
    "model": N_("Model"),
    "first_seen": N_("First seen"),
    "last_seen": N_("Last seen"),
    "generated": N_("Generated"),
    "payment_keys": N_("Payment keys"),
    "keys_note": N_("Key IDs and check values only: keys never leave the key store and the unit."),
    "initial_key_id": N_("Initial Key ID"),
    "kcv": N_("KCV"),
    "certificate_serial": N_("Certificate serial"),
    "bdk": N_("BDK"),
    "injected": N_("Injected"),
    "station": N_("Station"),
    "operator": N_("Operator"),
    "runs": N_("Recipe runs"),
    "run": N_("Run"),
    "recipe": N_("Recipe"),
    "step": N_("Step"),
    "status": N_("Status"),
    "started": N_("Started"),
    "seconds": N_("Seconds"),
    "detail": N_("Detail"),
    "calibration": N_("Camera calibration"),
    "checksum": N_("Checksum"),
    "figure": N_("Figure"),
    "value": N_("Value"),
    "depth": N_("Depth quality"),
    "depth_chart": N_("Depth error per distance"),
    "distance": N_("Distance (m)"),
    "millimetres": N_("mm"),
    "this_report": N_("ends with this report"),
    "depth_error": N_("Depth error (mm)"),
    "plane_rms": N_("Plane RMS (mm)"),
    "passed": N_("Passed"),
    "failed": N_("Failed"),
    "field_checks": N_("Field checks"),
    "verdict": N_("Verdict"),
    "face_pay": N_("Face-pay check"),
    "stage": N_("Stage"),
    "total": N_("Total"),
    "trade_no": N_("Trade number"),
    "refunded": N_("Refunded"),
    "platform_calls": N_("Platform calls"),
    "method": N_("Method"),
    "request_no": N_("Request number"),
    "state": N_("State"),
    "attempts": N_("Attempts"),
    "updated": N_("Updated"),
    "error": N_("Error"),
    "diagnosis": N_("Latest diagnosis"),
    "action": N_("Suggested action"),
    "reasons": N_("Reasons"),
    "operations": N_("Ledger operations"),
    "kind": N_("Kind"),
    "nothing": N_("Nothing recorded."),
    "yes": N_("yes"),
    "no": N_("no"),
    "batch": N_("Batch"),
    "units": N_("Units"),
    "result": N_("Result"),
    "totals": N_("Totals"),
    "share": N_("Share of time"),
    "results": N_("Results"),
    "reconciliation": N_("Inventory reconciliation"),
    "finding": N_("Finding"),
    "reconciled": N_("Everything adds up."),
    "not_reconciled": N_("Report the findings to the security officer."),
    "time_per_step": N_("Time per step (s)"),
    "footer": N_("Naiad station report: times are China time (UTC+08:00)."),
}


def words() -> dict[str, str]:
    """The reports' headings in the current language."""
    return {key: _(msgid) for key, msgid in WORDS.items()}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is text, never markup: a hostile serial or detail shows as it is
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _html_lang(language: str) -> str:
    return "zh-CN" if language == "zh_CN" else "en"


def unit_html(report: UnitReport, chart_svg: str | None) -> bytes:
    data = report.as_dict()
    page = (
        _environment()
        .get_template("unit.html.j2")
        .render(
            r=data,
            w=words(),
            lang=_html_lang(report.language),
            step_label=step_label,
            figure_label=figure_label,
            depth_figures=DEPTH_FIGURES,
            chart_svg=markupsafe.Markup(chart_svg) if chart_svg else None,
            fmt=number,
            t=short_time,
            ordered=ordered,
            stage_name=stage_name,
            status_label=status_label,
        )
    )
    return page.encode("utf-8")


def batch_html(report: BatchReport) -> bytes:
    page = (
        _environment()
        .get_template("batch.html.j2")
        .render(
            r=report.as_dict(),
            w=words(),
            lang=_html_lang(report.language),
            step_label=step_label,
            fmt=number,
            seconds_of=seconds_of,
            status_label=status_label,
            failures=failures(report),
            findings=findings(report.reconciliation),
        )
    )
    return page.encode("utf-8")


def number(value: object, digits: int = 3) -> str:
    """A figure as people read it: at most ``digits`` decimals, no trailing zeros; '–' when not measured."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def seconds_of(unit: Mapping[str, Any], step: str) -> str:
    """The seconds ``unit`` spent in ``step`` ('–' when it did not reach it)."""
    for found in unit["steps"]:
        if found["name"] == step:
            return number(found["seconds"], 1)
    return "–"


def as_json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode("utf-8")


UNIT_CSV_COLUMNS = ("serial", "model", "run_id", "recipe", "step", "status", "started", "finished", "seconds", "detail")
BATCH_CSV_COLUMNS = (
    "batch_id",
    "recipe",
    "serial",
    "result",
    "step",
    "ok",
    "already_done",
    "seconds",
    "detail",
    "initial_key_id",
    "kcv",
)


def unit_csv(report: UnitReport) -> bytes:
    rows = [
        {
            "serial": report.serial,
            "model": report.model,
            "run_id": row["run_id"],
            "recipe": row["recipe"],
            "step": row["name"],
            "status": row["status"],
            "started": row["started"],
            "finished": row["finished"],
            "seconds": row["seconds"],
            "detail": row["detail"],
        }
        for row in report.step_rows()
    ]
    return _csv(UNIT_CSV_COLUMNS, rows)


def batch_csv(report: BatchReport) -> bytes:
    rows = [
        {"batch_id": report.batch_id, "recipe": report.recipe, "step": row["name"], **row} for row in report.step_rows()
    ]
    return _csv(BATCH_CSV_COLUMNS, rows)


def _csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """UTF-8 with a BOM (Excel then reads Chinese right), a header row; cells that a spreadsheet would run as a
    formula (=, +, -, @ first) are prefixed with ' so a hostile detail stays text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not _is_number(text)):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
