"""Camera records in the ledger, on SQLite and on PostgreSQL: calibrations by checksum and figures, depth-quality
runs and field checks, each audited and sealed; bad input refused and nothing written."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import test_ledger_keys
from helpers import execute_sql
from test_camera_formats import calibration

from provisioning.ledger import (
    CalibrationRecord,
    CameraCheckRecord,
    ChainProblem,
    InvalidLedgerInput,
    Ledger,
    SecretRefused,
)
from provisioning.ledger.camera import FIELD_VERDICTS

url = test_ledger_keys.url  # the fixture: SQLite, and PostgreSQL where a server can be started
SERIAL = "DF2A00001"
CHECKSUM = calibration().checksum
FIGURES = {"ir_rms_px": 0.12, "rgb_rms_px": 0.18, "stereo_rms_px": 0.21, "views_used": 24, "ir_std_fx": 0.4}


@pytest.fixture
def ledger(url: str) -> Iterator[Ledger]:
    with Ledger.open(url, station="bench-1") as opened:
        opened.register_operator("carol", "operator")
        yield opened.as_operator("carol")


def entries(ledger: Ledger) -> int:
    return len(ledger.audit_entries())


def test_a_calibration_is_recorded_by_checksum_with_its_figures_audited_and_sealed(ledger: Ledger) -> None:
    made = ledger.record_calibration(SERIAL, CHECKSUM, FIGURES)
    assert made == CalibrationRecord(SERIAL, CHECKSUM, 1, FIGURES, "bench-1", "carol", made.created)
    assert made.created.utcoffset() == dt.timedelta(0)
    assert ledger.calibrations(SERIAL) == [made] and ledger.calibrations("DF2A00002") == []
    entry = ledger.audit_entries(subject=f"device:{SERIAL}")[-1]
    assert (entry.action, entry.operator) == ("camera.calibrated", "carol")
    assert entry.details == {"checksum": CHECKSUM, "blob_version": 1, "figures": FIGURES}
    assert "camera_calibrations:1" in entry.seals
    assert ledger.verify().ok


def test_the_same_calibration_recorded_again_is_the_first_record(ledger: Ledger) -> None:
    first = ledger.record_calibration(SERIAL, CHECKSUM.upper(), FIGURES)
    before = entries(ledger)
    assert ledger.record_calibration(SERIAL, CHECKSUM, {"ir_rms_px": 9.0}) == first
    assert entries(ledger) == before and first.checksum == CHECKSUM  # stored lower-case
    with pytest.raises(InvalidLedgerInput) as caught:
        ledger.record_calibration("DF2A00002", CHECKSUM, FIGURES)
    assert caught.value.params["field"] == "checksum" and SERIAL in str(caught.value)


def test_calibrations_are_listed_oldest_first(ledger: Ledger) -> None:
    sums = [f"{n:064x}" for n in (3, 1, 2)]
    for checksum in sums:
        ledger.record_calibration(SERIAL, checksum, FIGURES)
    assert [c.checksum for c in ledger.calibrations(SERIAL)] == sums


def test_checks_are_recorded_listed_by_kind_and_audited(ledger: Ledger) -> None:
    depth = ledger.record_camera_check(SERIAL, "depth-quality", True, {"fill_rate": 0.99, "plane_rms_mm": 0.8})
    field = ledger.record_camera_check(
        SERIAL, "field-check", False, {"reprojection_rms_px": 2.4}, "recalibrate", calibration=CHECKSUM
    )
    assert field == CameraCheckRecord(
        SERIAL, "field-check", False, "recalibrate", {"reprojection_rms_px": 2.4}, CHECKSUM, "bench-1", "carol",
        field.created,
    )  # fmt: skip
    assert (depth.passed, depth.verdict, depth.calibration) == (True, None, None)
    assert ledger.camera_checks(SERIAL) == [depth, field]
    assert ledger.camera_checks(SERIAL, "field-check") == [field]
    assert ledger.camera_checks("DF2A00002") == []
    entry = ledger.audit_entries(subject=f"device:{SERIAL}")[-1]
    assert entry.action == "camera.checked" and "camera_checks:2" in entry.seals
    assert entry.details == {
        "kind": "field-check",
        "passed": False,
        "verdict": "recalibrate",
        "figures": {"reprojection_rms_px": 2.4},
        "calibration": CHECKSUM,
    }
    assert ledger.verify().ok


def test_numpy_figures_are_stored_as_plain_numbers(ledger: Ledger) -> None:
    made = ledger.record_calibration(SERIAL, CHECKSUM, {"views_used": np.int64(20), "ir_rms_px": np.float32(0.25)})
    assert made.figures == {"views_used": 20, "ir_rms_px": 0.25}
    assert type(made.figures["views_used"]) is int and ledger.verify().ok


@pytest.mark.parametrize(
    ("field", "checksum", "figures"),
    [
        ("checksum", "ab" * 31, FIGURES),  # 62 digits
        ("checksum", "zz" * 32, FIGURES),
        ("checksum", bytes(32), FIGURES),
        ("figures.ir_rms_px", CHECKSUM, {"ir_rms_px": math.nan}),
        ("figures.ir_rms_px", CHECKSUM, {"ir_rms_px": math.inf}),
        ("figures.ir_rms_px", CHECKSUM, {"ir_rms_px": "0.1"}),
        ("figures.ir_rms_px", CHECKSUM, {"ir_rms_px": True}),
        ("figures.ir_rms_px", CHECKSUM, {"ir_rms_px": None}),
        ("figures.ir_rms_px", CHECKSUM, {"ir_rms_px": [0.1]}),
        ("figures.ir", CHECKSUM, {"ir": {"rms_px": 0.1}}),
        ("figures", CHECKSUM, {"": 1}),
        ("figures", CHECKSUM, {"a b": 1}),
        ("figures", CHECKSUM, [("ir_rms_px", 0.1)]),
        ("figures", CHECKSUM, {f"f{n}": n for n in range(65)}),
        ("serial", CHECKSUM, FIGURES),
    ],
)
def test_a_bad_calibration_record_is_refused_and_writes_nothing(
    ledger: Ledger, field: str, checksum: Any, figures: Any
) -> None:
    before = entries(ledger)
    serial = "bad serial" if field == "serial" else SERIAL
    with pytest.raises(InvalidLedgerInput) as caught:
        ledger.record_calibration(serial, checksum, figures)
    assert caught.value.params["field"] == field
    assert ledger.calibrations(SERIAL) == [] and entries(ledger) == before


def test_a_figure_named_like_a_secret_is_refused(ledger: Ledger) -> None:
    with pytest.raises(SecretRefused):
        ledger.record_calibration(SERIAL, CHECKSUM, {"pin": 1234})


@pytest.mark.parametrize(
    ("field", "args", "options"),
    [
        ("kind", (SERIAL, "calibrate", True, {}), {}),
        ("kind", (SERIAL, "Field-Check", True, {}), {}),
        ("passed", (SERIAL, "field-check", 1, {}), {}),
        ("passed", (SERIAL, "field-check", "yes", {}), {}),
        ("figures.bias_pct", (SERIAL, "field-check", True, {"bias_pct": -math.inf}), {}),
        ("verdict", (SERIAL, "field-check", False, {}, "Recalibrate!"), {}),
        ("verdict", (SERIAL, "field-check", False, {}, ""), {}),
        ("calibration", (SERIAL, "field-check", True, {}), {"calibration": "not a checksum"}),
        ("verdict", (SERIAL, "field-check", False, {}, "chatgpt-says-fine"), {}),  # a slug, not a verdict
        ("verdict", (SERIAL, "field-check", False, {}, ["ok"]), {}),
        ("verdict", (SERIAL, "depth-quality", True, {}, "ok"), {}),  # depth-quality runs have no verdict
    ],
)
def test_a_bad_check_record_is_refused_and_writes_nothing(
    ledger: Ledger, field: str, args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    before = entries(ledger)
    with pytest.raises(InvalidLedgerInput) as caught:
        ledger.record_camera_check(*args, **options)
    assert caught.value.params["field"] == field
    assert ledger.camera_checks(SERIAL) == [] and entries(ledger) == before


def test_the_field_verdicts_are_the_field_checks() -> None:
    from camera.fieldcheck import FieldVerdict

    assert tuple(verdict.value for verdict in FieldVerdict) == FIELD_VERDICTS


def test_a_check_of_another_units_calibration_is_refused_and_writes_nothing(ledger: Ledger) -> None:
    ledger.record_calibration("DF2A00002", CHECKSUM, FIGURES)
    before = entries(ledger)
    with pytest.raises(InvalidLedgerInput) as caught:
        ledger.record_camera_check(SERIAL, "field-check", True, {}, "ok", calibration=CHECKSUM)
    assert caught.value.params["field"] == "calibration" and "DF2A00002" in str(caught.value)
    assert entries(ledger) == before
    assert ledger.record_camera_check("DF2A00002", "field-check", True, {}, "ok", calibration=CHECKSUM).passed
    unknown = "c" * 64  # a calibration the ledger never saw (made before it, or elsewhere) still gets its check
    assert ledger.record_camera_check(SERIAL, "depth-quality", True, {}, calibration=unknown).calibration == unknown


def test_recording_an_earlier_calibration_again_never_hides_the_latest(ledger: Ledger) -> None:
    first, second = "a" * 64, "b" * 64
    ledger.record_calibration(SERIAL, first, FIGURES)
    latest = ledger.record_calibration(SERIAL, second, FIGURES)
    assert ledger.record_calibration(SERIAL, second, FIGURES) == latest  # the latest again: its record
    before = entries(ledger)
    with pytest.raises(InvalidLedgerInput) as caught:
        ledger.record_calibration(SERIAL, first, FIGURES)  # was: the first record returned, the latest unchanged
    assert caught.value.params["field"] == "checksum" and entries(ledger) == before
    assert ledger.calibrations(SERIAL)[-1] == latest


@pytest.mark.parametrize(
    "number",
    [2**53 + 1, -(2**53) - 1, 2**70, 10**5000, np.uint64(2**64 - 1)],
    ids=["2^53+1", "-2^53-1", "2^70", "10^5000", "uint64"],
)
def test_a_whole_figure_beyond_2_53_is_refused_and_writes_nothing(ledger: Ledger, number: Any) -> None:
    before = entries(ledger)
    for record in (
        lambda: ledger.record_calibration(SERIAL, CHECKSUM, {"views_used": number}),
        lambda: ledger.record_camera_check(SERIAL, "depth-quality", True, {"views_used": number}),
    ):
        with pytest.raises(InvalidLedgerInput) as caught:
            record()
        assert caught.value.params["field"] == "figures.views_used"
    assert entries(ledger) == before
    assert ledger.record_calibration(SERIAL, CHECKSUM, {"views_used": 2**53}).figures["views_used"] == 2**53


def test_listing_checks_of_an_unknown_kind_is_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidLedgerInput):
        ledger.camera_checks(SERIAL, "calibrate")


# -- the rows are evidence: verify names a row edited, deleted or slipped in ------------------------------
@pytest.fixture
def recorded(ledger: Ledger) -> Ledger:
    ledger.record_calibration(SERIAL, CHECKSUM, FIGURES)
    ledger.record_camera_check(SERIAL, "field-check", False, {"reprojection_rms_px": 2.4}, "recalibrate")
    report = ledger.verify()
    assert report.ok and report.rows >= 2
    return ledger


@pytest.mark.parametrize(
    ("statement", "problem", "table"),
    [
        (f"UPDATE camera_calibrations SET checksum = '{'0' * 64}'", ChainProblem.ROW_EDITED, "camera_calibrations"),
        (
            """UPDATE camera_calibrations SET figures = '{"ir_rms_px": 0.05}'""",
            ChainProblem.ROW_EDITED,
            "camera_calibrations",
        ),
        ("UPDATE camera_checks SET passed = 1, verdict = 'ok'", ChainProblem.ROW_EDITED, "camera_checks"),
        ("DELETE FROM camera_checks", ChainProblem.ROW_DELETED, "camera_checks"),
        (
            "INSERT INTO camera_checks (id, serial, kind, passed, figures, station_id, created)"
            " SELECT 7, serial, 'field-check', 1, '{}', station_id, created FROM camera_calibrations",
            ChainProblem.ROW_UNRECORDED,
            "camera_checks",
        ),
    ],
    ids=["checksum", "figures", "verdict", "deleted", "inserted"],
)
def test_a_tampered_camera_row_is_found(
    recorded: Ledger, url: str, statement: str, problem: ChainProblem, table: str
) -> None:
    execute_sql(url, statement)
    report = recorded.verify()
    assert (report.ok, report.problem, report.table) == (False, problem, table)
