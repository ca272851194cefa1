"""The steps that write paper: a unit's label (``distributor-bulk``) and its report (``installer-onsite``).

Both write under ``Resources.reports_dir``, one folder per unit (``<reports_dir>/<serial>/``), and may run again
(a resumed run writes the files anew).  A batch whose reports folder is missing or not writable is refused when
the step is made, before any unit is touched.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from i18n import N_, _
from terminal.errors import NaiadError

from .injection import INJECT_STEP
from .labels import LABEL_FORMATS, label_text, write_label_files
from .report_data import ReportError, file_stem
from .reports import FORMATS, write_unit_report
from .steps import Resources, Setting, SettingKind, Step, StepOutcome, UnitJob, register

LOG = logging.getLogger(__name__)


class ReportsFolderUnusable(ReportError):
    message = N_("Reports and labels cannot be written to {path}: {reason}")
    remedy = N_("Give the station a folder it may write to (--reports DIR).")


class ReportFormatsInvalid(ReportError):
    message = N_("The step {step} cannot write {formats}")
    remedy = N_("Use formats from: {known}.")


def unit_folder(reports_dir: Path, serial: str) -> Path:
    """Where a unit's label and report go: ``<reports_dir>/<serial>/`` (':' made '_' for Windows)."""
    return reports_dir / file_stem(serial)


def usable_reports_dir(resources: Resources) -> Path:
    """``resources.reports_dir``, made if missing and proved writable; :class:`ReportsFolderUnusable` else."""
    folder = resources.reports_dir
    if folder is None:
        raise ReportsFolderUnusable(path="-", reason=_("no reports folder was given"))
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".naiad-probe-"):
            pass
    except OSError as exc:
        raise ReportsFolderUnusable(path=str(folder), reason=exc.strerror or str(exc)) from exc
    return folder


def _formats(step: str, value: object, known: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(value) if isinstance(value, list | tuple) else ()
    if not chosen or any(not isinstance(f, str) or f not in known for f in chosen):
        raise ReportFormatsInvalid(step=step, formats=", ".join(map(str, chosen)) or "-", known=", ".join(known))
    return tuple(dict.fromkeys(chosen))


def _failed(step: str, started: float, exc: NaiadError) -> StepOutcome:
    return StepOutcome(step, False, time.monotonic() - started, str(exc), error=exc)


@register
class LabelStep(Step):
    """Print the unit's label: a QR code of its serial, model and Initial Key ID."""

    name: ClassVar[str] = "label"
    needs: ClassVar[frozenset[str]] = frozenset({"reports_dir"})
    label: ClassVar[str] = N_("Write the unit's label")
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "formats",
            SettingKind.STRINGS,
            list(LABEL_FORMATS),
            N_("The label's files: png, pdf or both"),
            choices=LABEL_FORMATS,
        ),
    )
    roles: ClassVar[tuple[str, ...]] = ("operator", "admin")

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        self.formats = _formats(self.name, self.config.get("formats", list(LABEL_FORMATS)), LABEL_FORMATS)
        self.folder = usable_reports_dir(resources)

    def run(self, job: UnitJob) -> StepOutcome:
        started = time.monotonic()
        try:
            key_ids = self._key_ids(job)
            model = self._model(job)
            files = write_label_files(job.serial, model, key_ids, unit_folder(self.folder, job.serial), self.formats)
        except NaiadError as exc:
            LOG.info("%s: label not written: %s", job.serial, exc)
            return _failed(self.name, started, exc)
        detail = _("Label written: {files}", files=", ".join(f.name for f in files))
        if not key_ids:
            detail = _("Label written without a key ID (the unit holds no recorded key): {files}",
                       files=", ".join(f.name for f in files))  # fmt: skip
        data = {"files": [str(f) for f in files], "qr_text": label_text(job.serial, model, key_ids)}
        return StepOutcome(self.name, True, time.monotonic() - started, detail, data)

    @staticmethod
    def _key_ids(job: UnitJob) -> list[str]:
        """This run's ``inject`` outcome's Initial Key ID, else the ledger's latest injection of the unit."""
        earlier = job.earlier.get(INJECT_STEP)
        if earlier is not None and earlier.ok and isinstance(earlier.data.get("initial_key_id"), str):
            return [str(earlier.data["initial_key_id"]).upper()]
        injections = job.station.ledger.injections(job.serial)
        return [injections[-1].initial_key_id.hex().upper()] if injections else []

    @staticmethod
    def _model(job: UnitJob) -> str:
        """The unit's model as the station sees it now, else as the ledger last saw it."""
        try:
            return job.station.find(job.serial).model
        except NaiadError:
            device = job.station.ledger.device(job.serial)
            if device is None:
                raise
            return device.model


@register
class ReportStep(Step):
    """Write the unit's report from the ledger (everything done to it so far, this run included)."""

    name: ClassVar[str] = "report"
    needs: ClassVar[frozenset[str]] = frozenset({"reports_dir"})
    label: ClassVar[str] = N_("Write the unit's report")
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "formats",
            SettingKind.STRINGS,
            list(FORMATS),
            N_("The report's files: html, pdf, json, csv"),
            choices=FORMATS,
        ),
    )
    roles: ClassVar[tuple[str, ...]] = ("installer", "operator", "support", "admin")

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        super().__init__(settings, resources)
        self.formats = _formats(self.name, self.config.get("formats", list(FORMATS)), FORMATS)
        self.folder = usable_reports_dir(resources)

    def run(self, job: UnitJob) -> StepOutcome:
        started = time.monotonic()
        try:
            files = write_unit_report(
                job.station.ledger,
                job.serial,
                unit_folder(self.folder, job.serial),
                self.formats,
                writing=(job.run_id, self.name),
            )
        except NaiadError as exc:
            LOG.info("%s: report not written: %s", job.serial, exc)
            return _failed(self.name, started, exc)
        detail = _("Report written: {files}", files=", ".join(f.name for f in files))
        return StepOutcome(self.name, True, time.monotonic() - started, detail, {"files": [str(f) for f in files]})


__all__ = ["LabelStep", "ReportStep", "ReportsFolderUnusable", "unit_folder", "usable_reports_dir"]
