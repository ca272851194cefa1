"""Camera records in the ledger: each calibration written to a unit, each depth-quality run and field check.

A calibration is named by the SHA-256 of its blob (``terminal.camera.blob_checksum(blob)``) and kept with
its figures; the blob itself stays on the unit.  Figures are plain finite numbers only, so a record reads the same
in a report, in JSON and on every database.  Each record is written with its audit entry (``camera.calibrated``,
``camera.checked``) in one transaction and its row is sealed, naming the authenticated operator when there is one.
Recording the same calibration again returns the first record and writes nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from i18n import _
from terminal.camera import BLOB_VERSION

from . import audit as chain
from . import validate
from .errors import InvalidLedgerInput
from .models import CAMERA_CHECK_KINDS, CameraCalibration, CameraCheck, Station
from .records import CalibrationRecord, CameraCheckRecord

if TYPE_CHECKING:
    from .ledger import _Write

__all__ = ["CalibrationRecord", "CameraCheckRecord", "CameraRecords"]

CALIBRATED = "camera.calibrated"
CHECKED = "camera.checked"
# camera.fieldcheck.FieldVerdict's values (the ledger does not import camera/; a test keeps them equal)
FIELD_VERDICTS = ("ok", "recalibrate", "projector", "depth", "rgb-focus", "foreign", "no-target")
FIELD_CHECK = "field-check"


def _figures(value: object) -> dict[str, float | int]:
    """Validated figures, also refused when a name looks like a secret (as every audited field is)."""
    clean: dict[str, float | int] = chain.clean_json(validate.figures(value), "figures")
    return clean


def _kind(value: object) -> str:
    if value not in CAMERA_CHECK_KINDS:
        raise InvalidLedgerInput(field="kind", detail=_("must be one of {kinds}", kinds=", ".join(CAMERA_CHECK_KINDS)))
    assert isinstance(value, str)
    return value


Row = TypeVar("Row", CameraCalibration, CameraCheck)


def _of_unit(model: type[Row], serial: str) -> Select[Row, str]:
    """The rows of ``model`` recorded for ``serial``, oldest first, each with its station's name."""
    return (
        select(model, Station.name)
        .join(Station, model.station_id == Station.id)
        .where(model.serial == validate.serial(serial))
        .order_by(model.created, model.id)
    )


def _calibration_record(row: CameraCalibration, station: str) -> CalibrationRecord:
    return CalibrationRecord(
        row.serial, row.checksum, row.blob_version, dict(row.figures), station, row.operator, row.created
    )


def _check_record(row: CameraCheck, station: str) -> CameraCheckRecord:
    return CameraCheckRecord(
        serial=row.serial,
        kind=row.kind,
        passed=bool(row.passed),
        verdict=row.verdict,
        figures=dict(row.figures),
        calibration=row.calibration,
        station=station,
        operator=row.operator,
        created=row.created,
    )


class CameraRecords:
    """The part of :class:`~provisioning.ledger.Ledger` that keeps camera calibrations and checks."""

    if TYPE_CHECKING:
        _station: str
        _station_id: int

        def _writing(self) -> AbstractContextManager[_Write]: ...

        def _reading(self, *, snapshot: bool = False) -> AbstractContextManager[Session]: ...

    def record_calibration(
        self, serial: str, checksum: str, figures: dict[str, Any], *, blob_version: int = BLOB_VERSION
    ) -> CalibrationRecord:
        """Record that ``serial`` stores the calibration blob whose SHA-256 is ``checksum`` (64 hex digits).

        ``figures``: the calibration's own numbers (RMS, standard deviations, views used).  The unit's latest
        calibration recorded again returns its record; a checksum recorded for another unit, or for this unit
        before its latest calibration, is refused (a checksum names one record, so the latest stays the latest)."""
        serial = validate.serial(serial)
        checksum = validate.sha256_hex(checksum, "checksum")
        clean = _figures(figures)
        if isinstance(blob_version, bool) or not isinstance(blob_version, int) or not 1 <= blob_version <= 255:
            raise InvalidLedgerInput(field="blob_version", detail=_("must be a whole number from 1 to 255"))
        with self._writing() as write:
            session = write.session
            found = session.scalars(select(CameraCalibration).where(CameraCalibration.checksum == checksum)).first()
            if found is not None:
                if found.serial != serial:
                    detail = _("already recorded for unit {serial}", serial=found.serial)
                    raise InvalidLedgerInput(field="checksum", detail=detail)
                newest = _of_unit(CameraCalibration, serial).order_by(None)
                latest, station = session.execute(
                    newest.order_by(CameraCalibration.created.desc(), CameraCalibration.id.desc()).limit(1)
                ).one()
                if latest.id != found.id:
                    detail = _("recorded for this unit before its latest calibration")
                    raise InvalidLedgerInput(field="checksum", detail=detail)
                return _calibration_record(found, station)
            row = CameraCalibration(
                serial=serial,
                checksum=checksum,
                blob_version=blob_version,
                figures=clean,
                station_id=self._station_id,
                operator=write.operator,
                created=write.at,
            )
            session.add(row)
            details = {"checksum": checksum, "blob_version": blob_version, "figures": clean}
            write.audit(CALIBRATED, f"device:{serial}", details)
            return _calibration_record(row, self._station)

    def record_camera_check(
        self,
        serial: str,
        kind: str,
        passed: bool,
        figures: dict[str, Any],
        verdict: str | None = None,
        *,
        calibration: str | None = None,
    ) -> CameraCheckRecord:
        """Record a camera check of ``serial``: ``kind`` "depth-quality" or "field-check", whether it ``passed``,
        its figures, a field check's ``verdict`` and the checksum of the ``calibration`` it checked (if known)."""
        serial = validate.serial(serial)
        kind = _kind(kind)
        if not isinstance(passed, bool):
            raise InvalidLedgerInput(field="passed", detail=_("must be true or false"))
        clean = _figures(figures)
        allowed = FIELD_VERDICTS if kind == FIELD_CHECK else ()
        if verdict is not None and verdict not in allowed:
            detail = _("must be one of {verdicts}", verdicts=", ".join(allowed)) if allowed else _("must be none")
            raise InvalidLedgerInput(field="verdict", detail=detail)
        if calibration is not None:
            calibration = validate.sha256_hex(calibration, "calibration")
        with self._writing() as write:
            if calibration is not None:
                recorded = write.session.scalars(
                    select(CameraCalibration.serial).where(CameraCalibration.checksum == calibration)
                ).first()
                if recorded not in (None, serial):  # unknown: calibrated before or elsewhere, still worth its check
                    detail = _("is a calibration recorded for unit {serial}", serial=recorded)
                    raise InvalidLedgerInput(field="calibration", detail=detail)
            row = CameraCheck(
                serial=serial,
                kind=kind,
                passed=int(passed),
                verdict=verdict,
                figures=clean,
                calibration=calibration,
                station_id=self._station_id,
                operator=write.operator,
                created=write.at,
            )
            write.session.add(row)
            details = {"kind": kind, "passed": passed, "verdict": verdict, "figures": clean, "calibration": calibration}
            write.audit(CHECKED, f"device:{serial}", details)
            return _check_record(row, self._station)

    def calibrations(self, serial: str) -> list[CalibrationRecord]:
        """The calibrations recorded for ``serial``, oldest first (the last one is what the unit should hold)."""
        query = _of_unit(CameraCalibration, serial)
        with self._reading() as session:
            return [_calibration_record(row, station) for row, station in session.execute(query)]

    def camera_checks(self, serial: str, kind: str | None = None) -> list[CameraCheckRecord]:
        """The camera checks recorded for ``serial``, oldest first; only those of ``kind`` when given."""
        query = _of_unit(CameraCheck, serial)
        if kind is not None:
            query = query.where(CameraCheck.kind == _kind(kind))
        with self._reading() as session:
            return [_check_record(row, station) for row, station in session.execute(query)]
