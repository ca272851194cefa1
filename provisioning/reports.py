"""Reports of a unit and of a batch, from the ledger: HTML and PDF for people, JSON and CSV for scripts.

- :func:`write_unit_report` / :func:`write_report`: one unit's report (device, recipe runs and steps, key IDs
  and KCVs, calibration and depth figures with a chart, face-pay stage times, platform calls, the latest
  diagnosis verdict);
- :func:`write_batch_report`: a pipeline batch, one row per unit (result, seconds per step, key ID, KCV), the
  totals and each step's share of the time.

Reports are written in the current language with China times; they never hold a key, a PIN, a face token or an
auth code (see ``docs/reports.md``).  Every file is written to a temporary file beside it and renamed, all of a
call's files only once each was made: a bad format or path raises a typed error and writes nothing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from i18n import N_, _

from .ledger import Ledger
from .report_batch import BatchReport, gather_batch
from .report_data import ReportError, UnitNotInLedger, UnitReport, file_stem, gather_unit, write_shared
from .report_render import as_json, batch_csv, batch_html, unit_csv, unit_html

if TYPE_CHECKING:
    from .pipeline import BatchRun

__all__ = [
    "FORMATS",
    "ReportError",
    "ReportFormatUnknown",
    "ReportNotWritten",
    "UnitNotInLedger",
    "write_batch_report",
    "write_report",
    "write_unit_report",
]

LOG = logging.getLogger(__name__)

FORMATS = ("html", "pdf", "json", "csv")


class ReportFormatUnknown(ReportError):
    message = N_("A report cannot be written as '{format}'")
    remedy = N_("Use one of: .html, .pdf, .json, .csv.")


class ReportNotWritten(ReportError):
    message = N_("The report could not be written to {path}: {reason}")
    remedy = N_("Choose a folder the station may write to, with free space.")


def _formats(formats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    chosen = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    for name in chosen:
        if name not in FORMATS:
            raise ReportFormatUnknown(format=name)
    if not chosen:
        raise ReportFormatUnknown(format="")
    return chosen


def _unit_bytes(report: UnitReport, fmt: str) -> bytes:
    if fmt == "json":
        return as_json(report.as_dict())
    if fmt == "csv":
        return unit_csv(report)
    from . import report_pdf  # reportlab's import costs: only when a PDF or a chart is wanted

    if fmt == "pdf":
        return report_pdf.unit_pdf(report)
    return unit_html(report, _chart_svg(report))


def _chart_svg(report: UnitReport) -> str | None:
    """The depth chart as inline SVG for the HTML report (the PDF draws the same Drawing)."""
    from reportlab.graphics import renderSVG

    from .report_pdf import depth_chart
    from .report_render import words

    if not report.depth_quality:
        return None
    drawing = depth_chart(report.depth_quality[-1]["distances"], words())
    if drawing is None:
        return None
    svg = str(renderSVG.drawToString(drawing))
    return svg[svg.index("<svg") :]


def _batch_bytes(report: BatchReport, fmt: str) -> bytes:
    if fmt == "json":
        return as_json(report.as_dict())
    if fmt == "csv":
        return batch_csv(report)
    if fmt == "pdf":
        from .report_pdf import batch_pdf

        return batch_pdf(report)
    return batch_html(report)


def write_unit_report(
    ledger: Ledger,
    serial: str,
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    *,
    writing: tuple[int, str] | None = None,
) -> list[Path]:
    """Write ``<serial>-report.<format>`` for each of ``formats`` into ``out_dir`` (made if missing);
    ``writing`` = ``(run id, step)`` when a run's step writes it (that step is shown as "this report")."""
    chosen = _formats(formats)
    report = gather_unit(ledger, serial, writing=writing)
    stem = f"{file_stem(serial)}-report"
    return _write_all(Path(out_dir), [(f"{stem}.{fmt}", partial(_unit_bytes, report, fmt)) for fmt in chosen])


def write_report(ledger: Ledger, serial: str, path: Path) -> Path:
    """Write the unit's report to ``path``, in the format its suffix names (.html .pdf .json .csv)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ReportFormatUnknown(format=path.suffix or path.name)
    report = gather_unit(ledger, serial)
    return _write_all(path.parent, [(path.name, partial(_unit_bytes, report, fmt))])[0]


def write_batch_report(batch: BatchRun, ledger: Ledger, out_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``batch-<batch id>.<format>`` for each of ``formats`` into ``out_dir`` (made if missing)."""
    chosen = _formats(formats)
    report = gather_batch(batch, ledger)
    stem = f"batch-{file_stem(report.batch_id)}"
    return _write_all(Path(out_dir), [(f"{stem}.{fmt}", partial(_batch_bytes, report, fmt)) for fmt in chosen])


def _write_all(folder: Path, files: Sequence[tuple[str, Callable[[], bytes]]]) -> list[Path]:
    """Make every file's bytes, write each to a temporary file in ``folder``, then rename them all into place;
    on any failure the temporary files are removed and nothing is left behind."""
    contents = [(folder / name, make()) for name, make in files]  # a report that cannot be made writes nothing
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportNotWritten(path=str(folder), reason=exc.strerror or str(exc)) from exc
    if not folder.is_dir():
        raise ReportNotWritten(path=str(folder), reason=_("not a folder"))
    temps: list[tuple[Path, Path]] = []
    target = folder
    try:
        for target, data in contents:
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
            temps.append((Path(name), target))
            with os.fdopen(handle, "wb") as out:
                out.write(data)
        for _part, target in temps:
            if target.is_dir():
                raise IsADirectoryError(21, os.strerror(21), str(target))
        for part, target in temps:
            write_shared(part, target)
    except OSError as exc:
        for part, _target in temps:
            part.unlink(missing_ok=True)
        raise ReportNotWritten(path=str(target), reason=exc.strerror or str(exc)) from exc
    LOG.info("report written: %s", ", ".join(str(target) for target, _data in contents))
    return [target for target, _data in contents]
