"""Reports as PDF pages (reportlab): the unit's report on A4 portrait, a batch's on A4 landscape.

Latin text is set in Helvetica; any run of text beyond Latin-1 (Chinese headings, a detail in Chinese) in the
CID font ``STSong-Light`` that every PDF reader provides (Adobe-GB1; not embedded, so no font file is needed).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from functools import cache
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.charts.textlabels import Label
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

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
from .report_render import number, seconds_of, words

CJK_FONT = "STSong-Light"
BLUE = colors.HexColor("#2b6f8e")
GREY = colors.HexColor("#5f6b75")
RULE = colors.HexColor("#dde3e8")
HEAD = colors.HexColor("#eef3f6")
GREEN = colors.HexColor("#1e7b34")
RED = colors.HexColor("#b3261e")
_WIDE = re.compile(r"([^\x00-\xff]+)")


@cache
def _cjk_font() -> str:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    return CJK_FONT


def markup(text: object) -> str:
    """``text`` as Paragraph markup: escaped (a hostile ``<`` is shown, never parsed), runs beyond Latin-1 set in
    the CJK font."""
    escaped = escape("" if text is None else str(text))
    if not _WIDE.search(escaped):
        return escaped
    return _WIDE.sub(lambda m: f'<font name="{_cjk_font()}">{m[1]}</font>', escaped)


@cache
def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName="Helvetica", fontSize=8.5, leading=10.5)
    return {
        "body": base,
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.8, leading=9.4),
        "num": ParagraphStyle("num", parent=base, fontSize=7.8, leading=9.4, alignment=TA_RIGHT),
        "mono": ParagraphStyle("mono", parent=base, fontName="Courier", fontSize=7.2, leading=9.4),
        "head": ParagraphStyle("head", parent=base, fontName="Helvetica-Bold", fontSize=7.8, leading=9.4),
        "headnum": ParagraphStyle(
            "headnum", parent=base, fontName="Helvetica-Bold", fontSize=7.8, leading=9.4, alignment=TA_RIGHT
        ),
        "h1": ParagraphStyle("h1", parent=base, fontName="Helvetica-Bold", fontSize=17, leading=21, spaceAfter=4),
        "h2": ParagraphStyle(
            "h2", parent=base, fontName="Helvetica-Bold", fontSize=11.5, leading=14, textColor=BLUE, spaceBefore=9,
            spaceAfter=3, keepWithNext=1,
        ),
        "h3": ParagraphStyle(
            "h3", parent=base, fontName="Helvetica-Bold", fontSize=9, leading=11, spaceBefore=4, keepWithNext=1
        ),
        "note": ParagraphStyle("note", parent=base, textColor=GREY),
        "lead": ParagraphStyle("lead", parent=base, textColor=GREY, keepWithNext=1),
    }  # fmt: skip


@cache
def _cjk_style(style: str) -> ParagraphStyle:
    """``style`` breaking lines between any two characters, as Chinese text does (no spaces to break at)."""
    return ParagraphStyle(f"{style}-cjk", parent=_styles()[style], wordWrap="CJK")


def _p(text: object, style: str = "cell", colour: colors.Color | None = None) -> Paragraph:
    body = markup(text)
    if colour is not None:
        body = f'<font color="{colour.hexval()}">{body}</font>'
    return Paragraph(body, _cjk_style(style) if _WIDE.search(str(text)) else _styles()[style])


NEUTRAL_STATES = ("running", "pending")
"""Not over yet (the report step itself is ``running`` in its own report): neither green nor red."""


def _state(value: object) -> Paragraph:
    good = value in ("succeeded", "pass", "done", "already-done", True)
    return _p(status_label(value), "cell", GREEN if good else GREY if value in NEUTRAL_STATES else RED)


def _yes(value: object, w: dict[str, str]) -> Paragraph:
    if value is None:
        return _p("–")
    return _p(w["yes"] if value else w["no"], "cell", GREEN if value else RED)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[float], numeric: Sequence[int] = ()
) -> Table:
    """A ruled table: header cells bold on a tint, ``numeric`` columns right-aligned; plain values become
    Paragraphs so long text wraps inside its column."""
    head = [_p(h, "headnum" if i in numeric else "head") for i, h in enumerate(header)]
    body = [
        [c if isinstance(c, Flowable) else _p(c, "num" if i in numeric else "cell") for i, c in enumerate(row)]
        for row in rows
    ]
    table = Table([head, *body], colWidths=[w * mm for w in widths], repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), HEAD),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _meta(pairs: Sequence[tuple[str, object]], widths: tuple[float, float] = (35, 120)) -> Table:
    table = Table([[_p(k, "head"), _p(v)] for k, v in pairs], colWidths=[w * mm for w in widths], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return table


def _section(title: str, *content: Flowable) -> list[Flowable]:
    """A heading kept with the start of its content (``keepWithNext``: never alone at a page's foot)."""
    return [CondPageBreak(30 * mm), _p(title, "h2"), *content]


def depth_chart(rows: Sequence[dict[str, Any]], w: dict[str, str], width_mm: float = 120) -> Drawing | None:
    """Depth error (and plane RMS) per distance, a line each; None with fewer than one measured point."""
    error = [(r["distance_m"], r["z_error_mm"]) for r in rows if isinstance(r.get("z_error_mm"), int | float)]
    rms = [(r["distance_m"], r["plane_rms_mm"]) for r in rows if isinstance(r.get("plane_rms_mm"), int | float)]
    if not error and not rms:
        return None
    width, height = width_mm * mm, 62 * mm
    drawing = Drawing(width, height)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 16 * mm, 13 * mm, width - 22 * mm, height - 24 * mm
    series = [s for s in (error, rms) if s]
    plot.data = series
    for index, colour in enumerate((BLUE, colors.HexColor("#d98c1f"))[: len(series)]):
        plot.lines[index].strokeColor = colour
        plot.lines[index].strokeWidth = 1.4
        plot.lines[index].symbol = makeMarker("FilledCircle", size=4, fillColor=colour, strokeColor=colour)
    values = [v for s in series for _d, v in s]
    distances = [d for s in series for d, _v in s]
    plot.yValueAxis.valueMin = min(0.0, min(values))
    plot.yValueAxis.valueMax = max(values) * 1.15 if max(values) > 0 else 1.0
    plot.xValueAxis.valueMin = max(0.0, min(distances) - 0.1)
    plot.xValueAxis.valueMax = max(distances) + 0.1
    for axis in (plot.xValueAxis, plot.yValueAxis):
        axis.labels.fontName, axis.labels.fontSize = "Helvetica", 7
        axis.strokeColor = GREY
    plot.yValueAxis.gridStrokeColor, plot.yValueAxis.visibleGrid = RULE, True
    plot.xValueAxis.labelTextFormat = "%.2f"
    drawing.add(plot)
    drawing.add(_label(w["distance"], plot.x + plot.width / 2, 2 * mm, 0))
    drawing.add(_label(w["millimetres"], 4 * mm, plot.y + plot.height / 2, 90))
    legend_x = plot.x
    for text, colour, points in ((w["depth_error"], BLUE, error), (w["plane_rms"], colors.HexColor("#d98c1f"), rms)):
        if points:
            _add_legend(drawing, text, colour, legend_x, height - 6 * mm)
            legend_x += 55 * mm
    return drawing


def share_chart(steps: Sequence[dict[str, Any]], w: dict[str, str]) -> Drawing | None:
    """Each step's share of the batch's time as a horizontal bar (%), the steps top to bottom in recipe order."""
    if not steps or sum(s["seconds"] for s in steps) <= 0:
        return None
    from reportlab.graphics.charts.barcharts import HorizontalBarChart

    width, bar = 120 * mm, 6 * mm
    height = bar * len(steps) + 16 * mm
    drawing = Drawing(width, height)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 48 * mm, 8 * mm, width - 56 * mm, bar * len(steps)
    chart.data = [[round(s["share"] * 100, 1) for s in reversed(steps)]]
    chart.bars[0].fillColor, chart.bars[0].strokeColor = BLUE, None
    chart.valueAxis.valueMin, chart.valueAxis.valueMax = 0, 100
    chart.valueAxis.valueStep = 20
    chart.valueAxis.labels.fontName, chart.valueAxis.labels.fontSize = "Helvetica", 7
    chart.valueAxis.labelTextFormat = "%d %%"
    chart.valueAxis.visibleGrid, chart.valueAxis.gridStrokeColor = True, RULE
    names = [step_label(s["name"]) for s in reversed(steps)]
    chart.categoryAxis.categoryNames = names
    chart.categoryAxis.labels.fontName = _font_of("".join(names))
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.barLabelFormat = "%.1f"
    chart.barLabels.fontName, chart.barLabels.fontSize, chart.barLabels.boxAnchor = "Helvetica", 6.5, "w"
    chart.barLabels.dx = 2
    drawing.add(chart)
    drawing.add(_label(w["share"], chart.x + chart.width / 2, 1.5 * mm, 0))
    return drawing


def _font_of(text: str) -> str:
    return _cjk_font() if _WIDE.search(text) else "Helvetica"


def _label(text: str, x: float, y: float, angle: int) -> Label:
    label = Label()
    label.setOrigin(x, y)
    label.angle = angle
    label.setText(text)
    label.fontName, label.fontSize, label.fillColor = _font_of(text), 7.5, GREY
    return label


def _add_legend(drawing: Drawing, text: str, colour: colors.Color, x: float, y: float) -> None:
    from reportlab.graphics.shapes import Line

    drawing.add(Line(x, y + 2.5, x + 8 * mm, y + 2.5, strokeColor=colour, strokeWidth=1.6))
    drawing.add(String(x + 10 * mm, y, text, fontName=_font_of(text), fontSize=7.5, fillColor=GREY))


def _footer(text: str, generated: str) -> Any:
    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        line = f"{text} {generated}"
        canvas.setFont(_font_of(line), 7)
        canvas.setFillColor(GREY)
        canvas.drawString(doc.leftMargin, 9 * mm, line)
        canvas.drawRightString(doc.pagesize[0] - doc.rightMargin, 9 * mm, str(canvas.getPageNumber()))
        canvas.restoreState()

    return draw


def _build(story: list[Flowable], title: str, footer: str, generated: str, pagesize: tuple[float, float]) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=pagesize,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
        title=title,
        author="Naiad",
        invariant=True,
    )
    doc.build(story, onFirstPage=_footer(footer, generated), onLaterPages=_footer(footer, generated))
    return out.getvalue()


# -- the unit's report ---------------------------------------------------------------------------------------------


def unit_pdf(report: UnitReport) -> bytes:
    w, r = words(), report.as_dict()
    story: list[Flowable] = [Paragraph(f"{markup(w['unit_title'])}: {markup(report.serial)}", _styles()["h1"])]
    story.append(
        _meta(
            [
                (w["model"], report.model),
                (w["first_seen"], report.first_seen),
                (w["last_seen"], report.last_seen),
                (w["generated"], report.generated),
            ]
        )
    )
    story += _keys(r["keys"], w)
    story += _runs(r["runs"], w)
    story += _calibration(r["calibrations"], w)
    story += _depth(r["depth_quality"], w)
    story += _field_checks(r["field_checks"], w)
    story += _face_pay(r["face_pay_checks"], w)
    story += _platform(r["platform_calls"], w)
    story += _verdict(r["verdict"], w)
    story += _operations(r["operations"], w)
    return _build(story, f"{w['unit_title']} {report.serial}", w["footer"], report.generated, A4)


def _nothing(w: dict[str, str]) -> Paragraph:
    return _p(w["nothing"], "note")


def _keys(keys: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    note = _p(w["keys_note"], "lead")
    if not keys:
        return _section(w["payment_keys"], note, _nothing(w))
    rows = [
        [_p(k["initial_key_id"], "mono"), _p(k["kcv"], "mono"), _p(k["certificate_serial"], "mono"), k["bdk_label"],
         short_time(k["injected"]), k["station"], k["operator"] or "–"]
        for k in keys
    ]  # fmt: skip
    header = [w[n] for n in ("initial_key_id", "kcv", "certificate_serial", "bdk", "injected", "station", "operator")]
    return _section(w["payment_keys"], note, _table(header, rows, (32, 14, 34, 22, 32, 24, 22)))


RUN_WIDTHS = (44, 18, 32, 18, 68)
"""A run's table columns in mm: step, status, started, seconds (its bold heading on one line, in Chinese too),
detail."""


def _runs(runs: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not runs:
        return _section(w["runs"], _nothing(w))
    content: list[Flowable] = []
    for run in runs:
        rows = [
            [step_label(s["name"]), _state(s["status"]), short_time(s["started"]), number(s["seconds"], 1), s["detail"]]
            for s in run["steps"]
        ]
        header = [w["step"], w["status"], w["started"], w["seconds"], w["detail"]]
        ends = f" · {w['this_report']}" if run.get("this_report") else ""
        content += [
            _p(f"{w['run']} {run['run_id']}: {run['recipe']}{ends}", "h3"),
            _table(header, rows, RUN_WIDTHS, numeric=(3,)),
        ]
    return _section(w["runs"], *content)


def _calibration(calibrations: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not calibrations:
        return _section(w["calibration"], _nothing(w))
    c = calibrations[-1]
    line = _p(f"{w['checksum']}: {c['checksum']} · {c['created']} · {c['station']}", "lead")
    rows = [[figure_label(name), number(value, 4)] for name, value in ordered(c["figures"])]
    return _section(w["calibration"], line, _table([w["figure"], w["value"]], rows, (70, 30), numeric=(1,)))


def _depth(checks: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not checks:
        return _section(w["depth"], _nothing(w))
    d = checks[-1]
    line = Paragraph(f"{markup(d['created'])} · {markup(w['passed'])}: {_yes_text(d['passed'], w)}", _styles()["lead"])
    header = [w["distance"], *(figure_label(n) for n in DEPTH_FIGURES)]
    rows = [[f"{r['distance_m']:.2f}", *(number(r.get(n), 3) for n in DEPTH_FIGURES)] for r in d["distances"]]
    table = _table(header, rows, (24, 24, 27, 27, 27, 27), numeric=range(6))
    content: list[Flowable] = [line, table]
    chart = depth_chart(d["distances"], w)
    if chart is not None:
        content += [Spacer(1, 2 * mm), _p(w["depth_chart"], "h3"), chart]
    return _section(w["depth"], *content)


def _yes_text(value: object, w: dict[str, str]) -> str:
    colour = GREEN if value else RED
    return f'<font color="{colour.hexval()}">{markup(w["yes"] if value else w["no"])}</font>'


def _field_checks(checks: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not checks:
        return []
    rows = [
        [short_time(f["created"]), _yes(f["passed"], w), f["verdict"] or "–",
         "; ".join(f"{figure_label(k)} {number(v, 3)}" for k, v in ordered(f["figures"]))]
        for f in checks
    ]  # fmt: skip
    return _section(w["field_checks"], _table([w["started"], w["passed"], w["verdict"], w["figure"]], rows,
                                               (34, 16, 24, 106)))  # fmt: skip


def _face_pay(checks: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not checks:
        return _section(w["face_pay"], _nothing(w))
    content: list[Flowable] = []
    for f in checks:
        rows: list[list[Any]] = [
            [stage_name(s["name"]), _yes(s["ok"], w), number(s["seconds"], 3)] for s in f["stages"]
        ]
        rows.append([_p(w["total"], "head"), "", _p(number(f["total_seconds"], 3), "headnum")])
        result = f"{f['started']} · {status_label(f['result'])} · {status_label(f['presentation'])}"
        trade = (
            f"{markup(w['trade_no'])}: {markup(f['trade_no'] or '–')} · {markup(w['refunded'])}: "
            f"{_yes_text(f['refunded'], w) if f['refunded'] is not None else '–'}"
        )
        content.append(
            KeepTogether(
                [
                    _p(result, "h3"),
                    _table([w["stage"], w["passed"], w["seconds"]], rows, (60, 20, 24), numeric=(2,)),
                    Paragraph(trade, _styles()["note"]),
                ]
            )
        )  # a dozen rows at most: kept on one page
    return _section(w["face_pay"], *content)


def _platform(calls: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not calls:
        return _section(w["platform_calls"], _nothing(w))
    rows = [
        [_p(c["method"], "mono"), _p(c["request_no"], "mono"), _state(c["state"]), c["attempts"],
         short_time(c["updated"]), c["error"] or ""]
        for c in calls
    ]  # fmt: skip
    header = [w[n] for n in ("method", "request_no", "state", "attempts", "updated", "error")]
    return _section(w["platform_calls"], _table(header, rows, (40, 52, 14, 16, 30, 28), numeric=(3,)))


def _verdict(verdict: dict[str, Any] | None, w: dict[str, str]) -> list[Flowable]:
    if not verdict:
        return _section(w["diagnosis"], _nothing(w))
    return _section(
        w["diagnosis"],
        _meta(
            [
                (w["verdict"], verdict["verdict"]),
                (w["action"], verdict["action"]),
                (w["reasons"], "; ".join(verdict["reasons"]) or "–"),
                (w["started"], verdict["at"]),
            ]
        ),
    )


def _operations(operations: list[dict[str, Any]], w: dict[str, str]) -> list[Flowable]:
    if not operations:
        return _section(w["operations"], _nothing(w))
    rows = [
        [_p(op["kind"], "mono"), _state(op["status"]), short_time(op["started"]), number(op["seconds"], 2),
         op["station"], op["operator"] or "–"]
        for op in operations
    ]  # fmt: skip
    header = [w[n] for n in ("kind", "status", "started", "seconds", "station", "operator")]
    return _section(w["operations"], _table(header, rows, (34, 20, 36, 16, 38, 36), numeric=(3,)))


# -- the batch's report --------------------------------------------------------------------------------------------


def batch_pdf(report: BatchReport) -> bytes:
    w, data = words(), report.as_dict()
    totals = data["totals"]
    results = " · ".join(f"{status_label(name)} {count}" for name, count in totals["results"].items())
    story: list[Flowable] = [Paragraph(f"{markup(w['batch_title'])}: {markup(report.batch_id)}", _styles()["h1"])]
    story.append(
        _meta(
            [
                (w["recipe"], report.recipe),
                (w["units"], totals["units"]),
                (w["results"], results or "–"),
                (w["seconds"], number(report.seconds, 1)),
                (w["generated"], report.generated),
            ]
        )
    )
    steps = report.steps
    usable = 267.0 - 2 - 26 - 20 - 34 - 16  # landscape A4 less margins, serial, result, key ID, KCV
    step_width = min(28.0, max(12.0, usable / max(1, len(steps))))
    header = [w["serial"], w["result"], *(step_label(n) for n in steps), w["initial_key_id"], w["kcv"]]
    rows = [
        [_p(u["serial"], "mono"), _state(u["result"]), *(seconds_of(u, n) for n in steps),
         _p(u["initial_key_id"] or "–", "mono"), _p(u["kcv"] or "–", "mono")]
        for u in report.units
    ]  # fmt: skip
    widths = (26, 20, *([step_width] * len(steps)), 34, 16)
    story += _section(
        w["units"], _table(header, rows, widths, numeric=range(2, 2 + len(steps))), _p(w["time_per_step"], "note")
    )
    share_rows: list[list[Any]] = [
        [step_label(s["name"]), number(s["seconds"], 1), f"{s['share'] * 100:.1f} %", s["failed"]]
        for s in totals["steps"]
    ]
    share_rows.append([_p(w["total"], "head"), _p(number(totals["step_seconds"], 1), "headnum"), "100 %", ""])
    totals_table = _table([w["step"], w["seconds"], w["share"], w["failed"]], share_rows, (50, 24, 24, 18),
                          numeric=(1, 2, 3))  # fmt: skip
    chart = share_chart(totals["steps"], w)
    if chart is None:
        story += _section(w["totals"], totals_table)
    else:
        side_by_side = Table([[totals_table, chart]], colWidths=[122 * mm, 125 * mm], hAlign="LEFT")
        side_by_side.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        story += _section(w["totals"], side_by_side)
    failed = failures(report)
    if failed:
        rows = [[_p(serial, "mono"), step_label(s["name"]), s["detail"]] for serial, s in failed]
        story += _section(w["failed"], _table([w["serial"], w["step"], w["detail"]], rows, (30, 40, 190)))
    if report.reconciliation is not None:
        ok = bool(report.reconciliation.get("ok"))
        verdict = _p(w["reconciled"] if ok else w["not_reconciled"], "body", GREEN if ok else RED)
        lines = findings(report.reconciliation)
        content: list[Flowable] = [verdict]
        if lines:
            content.append(_table([w["finding"], w["units"]], lines, (80, 180)))
        story += _section(w["reconciliation"], *content)
    title = f"{w['batch_title']} {report.batch_id}"
    return _build(story, title, w["footer"], report.generated, landscape(A4))
