"""Reports of a unit and of a batch from a real ledger (SQLite, filled through the ledger's own methods): the
HTML escapes hostile text, the PDF renders to pages with ink (Chinese as glyphs, not boxes), JSON and CSV parse
back, no secret ever appears, and a bad format or path is refused with nothing written."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from PIL import Image

import i18n
from provisioning.ledger import Ledger
from provisioning.operators import OperatorSession
from provisioning.recipes import parse_recipe
from provisioning.report_data import gather_unit
from provisioning.report_pdf import unit_pdf
from provisioning.report_render import BATCH_CSV_COLUMNS, UNIT_CSV_COLUMNS
from provisioning.report_steps import ReportsFolderUnusable
from provisioning.reports import (
    ReportFormatUnknown,
    ReportNotWritten,
    UnitNotInLedger,
    write_batch_report,
    write_report,
    write_unit_report,
)
from provisioning.steps import Resources
from terminal.errors import DeviceNotFound

SERIAL = "DF2-0001"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
BDK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # a known key: it must appear nowhere
FACE_TOKEN = "FT-0f9e8d7c6b5a-face-token"
AUTH_CODE = "AC-5566778899-auth-code"
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="pdftoppm/pdftotext (poppler-utils) are not installed",
)


def kcv_of(key: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(bytes(16))
    return mac.finalize()[:5]


def fill(ledger: Ledger, serial: str = SERIAL, model: str = "df2") -> Ledger:
    """A unit through a whole life, written as the station writes it."""
    op = ledger.as_operator("carol")
    if op.bdk("demo") is None:
        op.register_bdk("demo", bytes.fromhex("0123ABCD"), kcv_of(BDK), "ceremony", ["alice", "bob"])
    ledger.as_operator("ada").inventory_add([serial])
    op.device_seen(serial, model)
    claim = op.claim_unit_run(serial, "distributor-bulk", "ab" * 32, "batch-1")
    run = claim.run.id

    def step(position: int, name: str, ok: bool, seconds: float, detail: str, data: dict[str, Any]) -> None:
        op.finish_unit_step(op.start_unit_step(run, position, name), ok, seconds=seconds, detail=detail, data=data)

    step(0, "flash", True, 41.5, "Flashed 2.0.0 to slot a", {"version": "2.0.0", "slot": "a"})
    with op.operation(serial, "inject") as handle:
        key_id = op.allocate_initial_key_id("demo", serial)
        op.record_injection(serial, key_id, bytes.fromhex("0F1E2D3C4B"), "1A2B3C")
        handle.result = {"initial_key_id": key_id.hex().upper(), "kcv": "0F1E2D"}
    step(1, "inject", True, 3.25, "Keyed", {"initial_key_id": key_id.hex().upper(), "kcv": "0F1E2D"})
    checksum = hashlib.sha256(serial.encode()).hexdigest()
    op.record_calibration(serial, checksum, {"ir_rms_px": 0.21, "rgb_rms_px": 0.34, "views_used": 40})
    figures: dict[str, float] = {}
    for distance, error in ((0.4, 0.8), (0.6, 1.5), (1.0, 4.6)):
        figures |= {f"z_error_mm.{distance:g}m": error, f"plane_rms_mm.{distance:g}m": error / 2}
        figures |= {f"fill_rate.{distance:g}m": 0.98}
    op.record_camera_check(serial, "depth-quality", True, figures, calibration=checksum)
    step(2, "calibrate", True, 95.0, "Calibrated", {"checksum": checksum})
    with op.operation(serial, "face-pay-check") as handle:
        handle.result = {
            "result": "pass",
            "presentation": "live",
            "trade_no": "T0001",
            "refunded": True,
            "auth_code": AUTH_CODE,  # what a careless writer might keep: the report drops it
            "stages": [{"name": "capture", "ok": True, "seconds": 1.25}, {"name": "pay", "ok": True, "seconds": 0.5}],
        }
    step(3, "register-inventory", False, 0.75, HOSTILE, {"request_no": f"R1-{serial}", "ftoken": FACE_TOKEN})
    op.add_platform_call("merchant.device.register", f"R1-{serial}", {"sn": serial, "auth_code": AUTH_CODE}, serial)
    op.add_platform_call("merchant.device.bind", f"R2-{serial}", {"sn": serial}, serial, sending=True)
    op.settle_platform_call(f"R2-{serial}", "refused", error=f"40004 {HOSTILE}")
    op.finish_unit_run(run, False)
    return op


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", station="bench-1") as opened:
        opened.register_operator("carol", "operator")
        opened.register_operator("ada", "admin")
        yield fill(opened)


def everything(folder: Path) -> str:
    return "\n".join(p.read_text("utf-8", errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


def pdf_text(path: Path) -> str:
    done = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=60)
    return done.stdout.decode("utf-8")


def pages(path: Path, folder: Path, dpi: int = 50) -> list[np.ndarray]:
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(path), str(folder / "page")], check=True, timeout=60)
    found = []
    for page in sorted(folder.glob("page*.png")):
        with Image.open(page) as image:
            found.append(np.array(image.convert("L")))
        page.unlink()
    return found


def test_every_format_is_written_and_the_html_shows_hostile_text_as_text(ledger: Ledger, tmp_path: Path) -> None:
    written = write_unit_report(ledger, SERIAL, tmp_path / "out")
    assert [p.name for p in written] == [f"{SERIAL}-report.{f}" for f in ("html", "pdf", "json", "csv")]
    page = written[0].read_text("utf-8")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "onerror=alert(1)&gt;" in page
    assert "0123ABCD00000001" in page and "0F1E2D" in page  # the key ID and the KCV
    assert "<svg" in page  # the depth chart
    for heading in ("Payment keys", "Recipe runs", "Camera calibration", "Depth quality", "Face-pay check"):
        assert f"<h2>{heading}</h2>" in page


def test_json_holds_the_runs_keys_figures_and_stage_times(ledger: Ledger, tmp_path: Path) -> None:
    path = write_report(ledger, SERIAL, tmp_path / "r.json")
    report = json.loads(path.read_text("utf-8"))
    assert report["schema"] == "naiad.unit-report/1"
    assert report["unit"] == {**report["unit"], "serial": SERIAL, "model": "df2"}
    assert report["generated"].endswith("UTC+08:00")
    (key,) = report["keys"]
    assert (key["initial_key_id"], key["kcv"], key["certificate_serial"]) == ("0123ABCD00000001", "0F1E2D", "1A2B3C")
    (run,) = report["runs"]
    assert [s["name"] for s in run["steps"]] == ["flash", "inject", "calibrate", "register-inventory"]
    assert run["steps"][0]["seconds"] == 41.5 and run["steps"][3]["status"] == "failed"
    assert [r["distance_m"] for r in report["depth_quality"][0]["distances"]] == [0.4, 0.6, 1.0]
    assert report["depth_quality"][0]["distances"][2]["z_error_mm"] == 4.6
    (check,) = report["face_pay_checks"]
    assert [(s["name"], s["seconds"]) for s in check["stages"]] == [("capture", 1.25), ("pay", 0.5)]
    assert check["total_seconds"] == 1.75
    assert [(c["method"], c["state"]) for c in report["platform_calls"]] == [
        ("merchant.device.register", "pending"),
        ("merchant.device.bind", "refused"),
    ]
    assert report["verdict"] is None


def test_csv_is_one_row_per_step_with_a_bom_for_excel(ledger: Ledger, tmp_path: Path) -> None:
    raw = write_report(ledger, SERIAL, tmp_path / "r.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert tuple(rows[0]) == UNIT_CSV_COLUMNS
    assert [(r["step"], r["status"], r["seconds"]) for r in rows] == [
        ("flash", "succeeded", "41.5"),
        ("inject", "succeeded", "3.25"),
        ("calibrate", "succeeded", "95.0"),
        ("register-inventory", "failed", "0.75"),
    ]
    assert rows[3]["detail"] == HOSTILE  # '<' is no formula: kept as it is


def test_no_secret_appears_in_any_report(ledger: Ledger, tmp_path: Path) -> None:
    write_unit_report(ledger, SERIAL, tmp_path / "out")
    text = everything(tmp_path / "out")
    if shutil.which("pdftotext"):
        text += pdf_text(tmp_path / "out" / f"{SERIAL}-report.pdf")
    for secret in (BDK.hex(), BDK.hex().upper(), FACE_TOKEN, AUTH_CODE):
        assert secret not in text
    assert "0123ABCD00000001" in text


@needs_poppler
def test_the_pdf_renders_to_pages_with_ink_and_its_text_is_the_reports(ledger: Ledger, tmp_path: Path) -> None:
    path = write_report(ledger, SERIAL, tmp_path / "r.pdf")
    rendered = pages(path, tmp_path)
    assert len(rendered) >= 2  # the unit's sections do not fit one A4 page
    for page in rendered:
        assert (page < 128).mean() > 0.002  # ink on every page: no blank page
    text = pdf_text(path)
    for expected in ("Unit report: DF2-0001", "0123ABCD00000001", "Depth error per distance", "UTC+08:00", HOSTILE):
        assert expected in text


@needs_poppler
def test_a_zh_cn_report_draws_chinese_glyphs(ledger: Ledger, tmp_path: Path) -> None:
    i18n.set_language("zh_CN")
    report = gather_unit(ledger, SERIAL)
    path = write_report(ledger, SERIAL, tmp_path / "zh.pdf")
    text = pdf_text(path)
    assert "采集图像" in text  # the face-pay stage "Capturing frames" as the catalog has it
    # Same report, the refused call's error in two different Chinese texts or none: boxes for missing glyphs
    # would look alike, and missing text would look like none.
    images = []
    for error in ("门店已关闭营业", "设备尚未激活过", ""):
        variant = copy.deepcopy(report)
        variant.platform_calls[1]["error"] = error
        variant_path = tmp_path / f"variant-{len(images)}.pdf"
        variant_path.write_bytes(unit_pdf(variant))
        images.append(np.concatenate([p.ravel() for p in pages(variant_path, tmp_path, dpi=100)]))
    first, second, blank = images
    assert first.shape == second.shape == blank.shape
    assert (first != blank).sum() > 200 and (second != blank).sum() > 200
    assert (first != second).sum() > 200


@pytest.mark.parametrize("name", ["r.txt", "r.PDFX", "report", "r.html.bak"])
def test_an_unknown_suffix_is_refused_and_nothing_is_written(ledger: Ledger, tmp_path: Path, name: str) -> None:
    with pytest.raises(ReportFormatUnknown):
        write_report(ledger, SERIAL, tmp_path / "out" / name)
    with pytest.raises(ReportFormatUnknown):
        write_unit_report(ledger, SERIAL, tmp_path / "out", ["html", "docx"])
    assert not (tmp_path / "out").exists()


def test_an_unwritable_path_is_refused_and_nothing_is_written(ledger: Ledger, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ReportNotWritten):
        write_report(ledger, SERIAL, blocker / "r.html")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f"{SERIAL}-report.csv").mkdir()  # the last file cannot take its place
    with pytest.raises(ReportNotWritten):
        write_unit_report(ledger, SERIAL, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"{SERIAL}-report.csv"]
    with pytest.raises(UnitNotInLedger):
        write_report(ledger, "NO-SUCH-UNIT", tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_the_latest_diagnosis_verdict_is_reported(ledger: Ledger, tmp_path: Path) -> None:
    claim = ledger.claim_unit_run(SERIAL, "support-diagnose", "cd" * 32, "batch-2", read_only=True)
    step_id = ledger.start_unit_step(claim.run.id, 0, "verdict")
    data = {"verdict": "calibration drifted", "action": "re-calibrate", "reasons": ["depth error 4.6 mm at 1 m"]}
    ledger.finish_unit_step(step_id, True, seconds=0.1, detail="re-calibrate", data=data)
    report = json.loads(write_report(ledger, SERIAL, tmp_path / "r.json").read_text("utf-8"))
    assert report["verdict"] == {**report["verdict"], "action": "re-calibrate", "verdict": "calibration drifted"}
    assert "re-calibrate" in write_report(ledger, SERIAL, tmp_path / "r.html").read_text("utf-8")


# -- the steps and the batch report, through the real pipeline -------------------------------------------------


class _Station:
    """The station as the steps use it: its ledger, and a unit that is not attached (the label's model then
    comes from the ledger)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def find(self, serial: str) -> Any:
        raise DeviceNotFound(serial=serial)

    def wait_for(self, serial: str, *args: Any, **kwargs: Any) -> Any:
        raise DeviceNotFound(serial=serial)  # unplugged units stay away


PAPER = """
name = "paper"
description = "a label and a report"
[[step]]
name = "label"
[[step]]
name = "report"
formats = ["json", "html"]
"""


def resources(ledger: Ledger, folder: Path | None) -> Resources:
    station: Any = _Station(ledger)
    return Resources(station=station, session=OperatorSession("carol", "operator"), reports_dir=folder)


def test_the_label_and_report_steps_run_in_a_batch_and_its_report_has_a_row_per_unit(
    ledger: Ledger, tmp_path: Path
) -> None:
    from provisioning.pipeline import run_recipe

    fill(ledger, "DF2-0002")
    recipe = parse_recipe(PAPER, "paper.toml", tmp_path)
    batch = run_recipe(recipe, [SERIAL, "DF2-0002"], resources(ledger, tmp_path / "reports"))
    assert [u.result for u in batch.units] == ["succeeded", "succeeded"], [u.as_dict() for u in batch.units]
    label = batch.units[0].steps[0]
    assert label.data["qr_text"] == f"NAIAD1;S={SERIAL};M=df2;K=0123ABCD00000001"
    assert sorted(Path(f).name for f in label.data["files"]) == [f"{SERIAL}-label.pdf", f"{SERIAL}-label.png"]
    assert sorted(p.name for p in (tmp_path / "reports" / SERIAL).iterdir()) == [
        f"{SERIAL}-label.pdf",
        f"{SERIAL}-label.png",
        f"{SERIAL}-report.html",
        f"{SERIAL}-report.json",
    ]
    written = write_batch_report(batch, ledger, tmp_path / "reports")
    by_suffix = {p.suffix: p for p in written}
    report = json.loads(by_suffix[".json"].read_text("utf-8"))
    assert report["schema"] == "naiad.batch-report/1" and report["steps"] == ["label", "report"]
    assert [(u["serial"], u["result"], u["initial_key_id"], u["kcv"]) for u in report["units"]] == [
        (SERIAL, "succeeded", "0123ABCD00000001", "0F1E2D"),
        ("DF2-0002", "succeeded", "0123ABCD00000002", "0F1E2D"),
    ]
    shares = [s["share"] for s in report["totals"]["steps"]]
    assert report["totals"]["results"] == {"succeeded": 2} and abs(sum(shares) - 1) < 0.01
    rows = list(csv.DictReader(io.StringIO(by_suffix[".csv"].read_text("utf-8-sig"))))
    assert tuple(rows[0]) == BATCH_CSV_COLUMNS and len(rows) == 4
    assert "&lt;script&gt;" not in by_suffix[".html"].read_text("utf-8")  # nothing hostile in this batch's rows
    if shutil.which("pdftoppm"):
        assert len(pages(by_suffix[".pdf"], tmp_path)) == 1


def test_a_batch_without_a_usable_reports_folder_is_refused_before_any_unit(ledger: Ledger, tmp_path: Path) -> None:
    from provisioning.pipeline import run_recipe

    recipe = parse_recipe(PAPER, "paper.toml", tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for folder in (None, blocker / "reports"):
        with pytest.raises(ReportsFolderUnusable):
            run_recipe(recipe, [SERIAL], resources(ledger, folder))
    assert ledger.unit_runs(SERIAL)[-1].recipe == "distributor-bulk"  # no run of "paper" was claimed


def test_the_label_step_reads_the_inject_outcome_of_its_own_run(ledger: Ledger, tmp_path: Path) -> None:
    from provisioning.report_steps import LabelStep
    from provisioning.steps import StepOutcome, UnitJob

    step = LabelStep({"formats": ["png"]}, resources(ledger, tmp_path))
    job = UnitJob(SERIAL, step.resources, run_id=1)
    job.earlier["inject"] = StepOutcome("inject", True, data={"initial_key_id": "0123ABCD000000FF"})
    outcome = step.run(job)
    assert outcome.ok and outcome.data["qr_text"].endswith("K=0123ABCD000000FF")
    assert [Path(f).suffix for f in outcome.data["files"]] == [".png"]
    forged = UnitJob(SERIAL, step.resources, run_id=1)
    forged.earlier["inject"] = StepOutcome("inject", True, data={"initial_key_id": "00;K=1"})
    refused = step.run(forged)  # a field forged into the QR text: refused, typed, nothing written
    assert not refused.ok and type(refused.error).__name__ == "LabelInputInvalid"
    assert sorted(p.name for p in (tmp_path / SERIAL).iterdir()) == [f"{SERIAL}-label.png"]


def test_a_step_made_with_formats_it_cannot_write_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    from provisioning.report_steps import LabelStep, ReportFormatsInvalid, ReportStep

    for cls, formats in ((LabelStep, ["gif"]), (LabelStep, []), (ReportStep, ["pdf", "docx"])):
        with pytest.raises(ReportFormatsInvalid):
            cls({"formats": formats}, resources(ledger, tmp_path / "reports"))


def test_the_report_step_shows_itself_as_this_report_and_files_get_the_umasks_mode(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The unit report the ``report`` step writes is read after its run ended: the step is not left 'running'
    forever in it; reports and labels are readable as the umask allows (a printer service, another account)."""
    import os

    from provisioning.pipeline import run_recipe

    recipe = parse_recipe(PAPER, "paper.toml", tmp_path)
    old = os.umask(0o022)
    try:
        batch = run_recipe(recipe, [SERIAL], resources(ledger, tmp_path / "reports"))
        written = write_batch_report(batch, ledger, tmp_path / "reports")
    finally:
        os.umask(old)
    assert batch.units[0].result == "succeeded"
    report = json.loads((tmp_path / "reports" / SERIAL / f"{SERIAL}-report.json").read_text("utf-8"))
    [run] = [r for r in report["runs"] if r["recipe"] == "paper"]
    assert run["this_report"] is True
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("label", "succeeded"), ("report", "succeeded")]
    assert run["steps"][1]["detail"] == "this report"
    assert all(not r["this_report"] for r in report["runs"] if r["recipe"] != "paper")
    html = (tmp_path / "reports" / SERIAL / f"{SERIAL}-report.html").read_text("utf-8")
    assert "ends with this report" in html and "running" not in html
    for path in [*written, *(tmp_path / "reports" / SERIAL).iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_the_seconds_heading_fits_its_column_and_the_chart_unit_is_translated() -> None:
    from reportlab.graphics.charts.textlabels import Label
    from reportlab.graphics.shapes import String
    from reportlab.lib.units import mm

    from provisioning.report_pdf import RUN_WIDTHS, _p, depth_chart
    from provisioning.report_render import words

    for language in ("en", "zh_CN"):
        i18n.set_language(language)
        try:
            heading = _p(words()["seconds"], "headnum")
            heading.wrap(RUN_WIDTHS[3] * mm - 6, 1000)
            assert len(heading.blPara.lines) == 1, (language, words()["seconds"])
        finally:
            i18n.set_language("en")
    chart = depth_chart([{"distance_m": 0.4, "z_error_mm": 1.0}], {**words(), "millimetres": "UNIT-WORD"})
    assert chart is not None

    def texts(node: Any) -> list[str]:
        own = [node._text if isinstance(node, Label) else node.text] if isinstance(node, String | Label) else []
        return own + [t for child in getattr(node, "contents", []) for t in texts(child)]

    assert "UNIT-WORD" in texts(chart) and "mm" not in texts(chart)
