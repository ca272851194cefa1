"""``naiad facecheck``: the face-pay check of a unit end to end, or the station's analysis of saved frame sets.

``naiad facecheck --device SERIAL [--attack photo|screen|mask] [--json] [--save-frames DIR]`` runs
:func:`provisioning.facepay_check.run_facepay_check`: the face (the simulator's scene, or a person asked to
present it), the station's detection and liveness, the unit's face token, 0.01 paid to the platform
configuration's test merchant, queried, refunded and the refund queried; each stage with its time.  Installer,
operator or support (``--operator`` or NAIAD_OPERATOR); the payments go through the ledger's outbox
(``--platform-config``, ``--keystore``).  Exit status 0 when the check passed, 1 when it failed.  With
``--json`` its document has the same shape whether the check ran or was refused before it started (then with
no stages): ``error`` is always an object (``error``, ``message``, ``remedy``) or absent.  ``--save-frames DIR``
keeps each check's frames in a folder of its own in ``DIR`` (``saved_frames`` names it).

``naiad facecheck --from-images DIR [--calibration FILE] [--json]`` runs detection and liveness on the frame sets
saved in ``DIR`` (``--save-frames`` writes them); it needs no unit, no ledger and no login, and writes nothing.
Careless input (a serial the station does not know, an unusable folder, calibration or face configuration, a
platform configuration without a test merchant) is refused before the key store opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from camera.faces import ATTACKS
from i18n import N_, _
from terminal.errors import NaiadError

from .cli_common import (
    Command,
    emit_json,
    err,
    fail,
    json_option,
    option,
    out,
    output_errors,
    problem_text,
    reported,
    table,
)
from .cli_root import Settings, pass_settings
from .platform_option import open_outbox, platform_options

if TYPE_CHECKING:
    from camera.faces import FaceAnalysis
    from camera.frames import Frames
    from provisioning.facepay_steps import FacePayCheckResult
    from terminal.camera import CameraCalibration
    from terminal.events import StepResult


class NoCalibrationForImages(NaiadError):
    message = N_("No camera calibration for the frame sets in {path}, and no terminal model has their image sizes")
    remedy = N_("Give the unit's calibration with --calibration FILE, or put it in the folder as calibration.bin.")


class CalibrationUnreadable(NaiadError):
    message = N_("Cannot read the calibration {path}: {reason}")
    remedy = N_("Name the calibration blob the unit stores (a --save-frames folder keeps it as calibration.bin).")


DECISION_NAMES = {
    "live": N_("live"),
    "attack": N_("attack"),
    "no-face": N_("no face"),
    "several-faces": N_("several faces"),
    "poor-quality": N_("poor quality"),
}


def _outcome(result: StepResult) -> str:
    return _("passed") if result.ok else _("failed")


@click.command(
    "facecheck",
    cls=Command,
    help=N_(
        "Check a unit's face payment end to end: a live face (or an attack with --attack), the station's and the "
        "unit's liveness, 0.01 paid to the test merchant and refunded. Or analyse saved frame sets with "
        "--from-images. Exits 1 when the check failed."
    ),
)
@option("--device", "serial", metavar="SERIAL", help=N_("The unit to check."))
@option(
    "--attack",
    type=click.Choice(ATTACKS),
    help=N_("Present this attack instead of a live face: the check passes when it is refused and nothing is paid."),
)
@option(
    "--save-frames",
    "save_frames",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help=N_("Keep the frame sets the station judged in a new folder inside this one (for --from-images)."),
)
@option(
    "--from-images",
    "from_images",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help=N_("Analyse the frame sets saved in this folder instead of checking a unit (writes nothing)."),
)
@option(
    "--calibration",
    "calibration_path",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help=N_("With --from-images: the unit's calibration blob (default: the folder's calibration.bin)."),
)
@option(
    "--face-config",
    "face_config",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help=N_("The face detection and liveness configuration (default: NAIAD_FACE_CONFIG, else face.toml)."),
)
@platform_options
@json_option
@pass_settings
def facecheck(
    settings: Settings,
    serial: str | None,
    attack: str | None,
    save_frames: Path | None,
    from_images: Path | None,
    calibration_path: Path | None,
    face_config: Path | None,
    platform_config: str | None,
    keystore: str,
    as_json: bool,
) -> None:
    if from_images is not None:
        if serial or attack or save_frames:
            raise click.UsageError(
                _("--from-images analyses a folder: leave out --device, --attack and --save-frames.")
            )
        _from_images(from_images, calibration_path, face_config, as_json)
        return
    if serial is None:
        raise click.UsageError(_("Name the unit with --device SERIAL, or a folder with --from-images."))
    if calibration_path is not None:
        raise click.UsageError(_("--calibration goes with --from-images; a unit's check reads the unit's own."))
    result = _check_unit(settings, serial, attack, save_frames, face_config, platform_config, keystore, as_json)
    if as_json:
        emit_json(result.as_dict())
    else:
        _print_result(result)
    if not result.passed:
        raise click.exceptions.Exit(1)


def _check_unit(
    settings: Settings,
    serial: str,
    attack: str | None,
    save_frames: Path | None,
    face_config: Path | None,
    platform_config: str | None,
    keystore: str,
    as_json: bool,
) -> FacePayCheckResult:
    from camera.faces import LIVE
    from enrollment.config import resolve
    from provisioning.facepay_check import default_analyser, run_facepay_check
    from provisioning.facepay_errors import NoTestMerchant
    from provisioning.facepay_steps import ROLES
    from provisioning.operators import require_role

    from .cli_progress import unit_bars
    from .keystore_option import open_key_store

    with _refused_as_result(serial, attack or LIVE, as_json):
        station = settings.station()
        station.find(serial)  # a serial the station does not see: refused before anything else
        session = require_role(settings.session(), *ROLES)
        config = resolve(platform_config)
        if config.test_merchant is None:
            raise NoTestMerchant()
        analyser = default_analyser(face_config)
        if save_frames is not None:
            with output_errors(save_frames):
                save_frames.mkdir(exist_ok=True)
        presenter = settings.wiring().presenter(_ask)
        with (
            open_key_store(keystore) as store,
            open_outbox(station, platform_config, store) as outbox,
            unit_bars(as_json, _outcome) as bars,
        ):
            return run_facepay_check(
                station,
                outbox,
                serial,
                presenter,
                bars,
                merchant=config.test_merchant,
                session=session,
                presentation=attack or LIVE,
                analyser=analyser,
                save_frames=save_frames,
            )


@contextmanager
def _refused_as_result(serial: str, presentation: str, as_json: bool) -> Iterator[None]:
    """A check refused before it starts: with ``--json``, the check's own document (failed, no stages, the error
    as an object), so a script reads one shape."""
    from provisioning.facepay_steps import FacePayCheckResult

    try:
        yield
    except NaiadError as exc:
        if not as_json:
            fail(exc, as_json)
        refused = FacePayCheckResult(serial, presentation, False, (), 0.0, extra={"error": exc.as_dict()}, error=exc)
        emit_json(refused.as_dict())
        raise click.exceptions.Exit(1) from None


def _ask(text: str) -> None:
    """Tell the person at the unit what to present, and wait for a key (not when no one types: a script)."""
    err().print(text, markup=False)
    click.pause(_("Press any key when it is in front of the camera..."), err=True)


def _print_result(result: FacePayCheckResult) -> None:
    from provisioning.facepay_errors import PRESENTATION_NAMES
    from provisioning.facepay_steps import stage_label

    shown_as = _(PRESENTATION_NAMES.get(result.presentation, result.presentation))
    title = _("Face-pay check of {serial} ({presentation})", serial=result.serial, presentation=shown_as)
    shown = table(N_("Stage"), N_("Result"), N_("Seconds"), N_("Detail"), title=title)
    for stage in result.stages:
        mark = Text("✓", style="green") if stage.ok else Text("✗", style="red")
        shown.add_row(stage_label(stage.name), mark, f"{stage.seconds:.2f}", stage.detail)
    out().print(shown)
    if "saved_frames" in result.extra:
        out().print(_("Frames saved in {path}", path=result.extra["saved_frames"]), markup=False)
    if result.trade_no:
        refunded = _("refunded") if result.refunded else _("NOT refunded")
        out().print(_("Trade {trade_no}: {refunded}", trade_no=result.trade_no, refunded=refunded), markup=False)
    verdict = _("passed") if result.passed else _("failed")
    out().print(
        _("Face-pay check: {verdict} in {seconds:.1f} s", verdict=verdict, seconds=result.total_seconds),
        style="green" if result.passed else "red",
    )
    if result.error is not None and not result.passed:
        err().print(problem_text(result.error), markup=False)


# --- saved frame sets ---------------------------------------------------------------------------------


def _from_images(directory: Path, calibration_path: Path | None, face_config: Path | None, as_json: bool) -> None:
    from camera.faceoffline import read_folder_calibration, read_frame_sets
    from provisioning.facepay_check import default_analyser

    with reported(as_json):
        calibration = _read_calibration(calibration_path) if calibration_path else read_folder_calibration(directory)
        sets = read_frame_sets(directory)
        if calibration is None:
            calibration = _nominal_for(directory, sets[0][1] if sets else None)
        judge = default_analyser(face_config)(calibration)
        analysed = [(name, judge.analyse(frames)) for name, frames in sets]
    if as_json:
        emit_json({"path": str(directory), "frame_sets": [{"name": n, **a.as_dict()} for n, a in analysed]})
        return
    _print_analyses(directory, analysed)


def _read_calibration(path: Path) -> CameraCalibration:
    from terminal.camera import CameraCalibration

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CalibrationUnreadable(path=str(path), reason=exc.strerror or str(exc)) from None
    return CameraCalibration.decode(blob)


def _nominal_for(directory: Path, frames: Frames | None) -> CameraCalibration:
    """The nominal calibration of the terminal model whose cameras have the frames' sizes."""
    from camera.facegeometry import nominal_calibration
    from terminal.models import load_models

    if frames is not None and frames.ir is not None and frames.rgb is not None:
        ir = (frames.ir.shape[1], frames.ir.shape[0])
        rgb = (frames.rgb.shape[1], frames.rgb.shape[0])
        for model in load_models().values():
            if (model.camera.ir_resolution, model.camera.rgb_resolution) == (ir, rgb):
                calibration: CameraCalibration = nominal_calibration("offline", model.id, model.camera)
                return calibration
    raise NoCalibrationForImages(path=str(directory))


def _print_analyses(directory: Path, analysed: list[tuple[str, FaceAnalysis]]) -> None:
    headings = (N_("Frame set"), N_("Decision"), N_("Faces"), N_("Liveness score"), N_("Detail"))
    shown = table(*headings, title=_("Face analysis of {path}", path=str(directory)))
    for name, analysis in analysed:
        score: Any = analysis.liveness.score if analysis.liveness is not None else None
        decision = str(analysis.decision)
        shown.add_row(
            name,
            Text(_(DECISION_NAMES[decision]), style="green" if decision == "live" else "red"),
            str(len(analysis.faces)),
            "-" if score is None else f"{score:.2f}",
            analysis.detail,
        )
    out().print(shown)
