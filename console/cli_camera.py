"""``naiad calibrate`` and ``naiad depth-quality``: camera calibration of units or of a folder, and depth quality.

``naiad calibrate (--device SERIAL ... | --all) [--mode full|check [--wall [--distance M]]] [--json]`` runs
:func:`provisioning.calibration.calibrate_units` (full: on the station's jig, operator role; check: a field
check with the board held up, installer, operator or support), one bar per unit from the event stream.
``naiad calibrate --from-images DIR --board BOARD.json [--json]`` calibrates a folder of ``ir_NN.png`` /
``rgb_NN.png`` pairs (:func:`camera.offline.calibrate_folder`) and prints the calibration; it needs no unit, no
ledger and no login, and writes nothing.  ``naiad depth-quality SERIAL`` measures depth on the jig's walls.
Presentation only; exit status 1 when a unit failed or a check did not pass, or on any typed error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from camera.labels import CHECK_FIGURES, DEPTH_FIGURES, figure_text, verdict_text
from i18n import N_, _

from .cli_common import Command, emit_json, err, json_option, option, out, reported, table
from .cli_root import Settings, pass_settings

if TYPE_CHECKING:
    from rich.table import Table

    from camera.calibrate import Calibration
    from provisioning.camera_steps import CameraStepResult
    from terminal.camera import Board
    from terminal.events import Listener, StepResult

# The figures a summary shows for each kind of step (the full set is in --json): key, heading, value with unit.
# A field check's and a depth run's are camera.labels' tables, which the console's panel shows too.
FULL_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("ir_rms_px", N_("IR RMS"), N_("{value:.3f} px")),
    ("rgb_rms_px", N_("RGB RMS"), N_("{value:.3f} px")),
    ("stereo_rms_px", N_("IR-RGB RMS"), N_("{value:.3f} px")),
    ("views_used", N_("Views"), N_("{value:.0f}")),
)


def _outcome(result: StepResult) -> str:
    """A unit's bar once its step ended."""
    from provisioning.camera_steps import CameraStepResult

    if not isinstance(result, CameraStepResult) or result.error is not None:
        return _("failed")
    if result.verdict is not None:
        return _("check: {verdict}", verdict=verdict_text(result.verdict))
    if result.checksum:
        return _("done: calibration {checksum}", checksum=result.checksum[:12])
    return _("done") if result.ok else _("failed")


@contextmanager
def _bars(as_json: bool, verbose: bool = False) -> Iterator[Listener | None]:
    """One bar per unit on stderr when it is a terminal and no JSON is asked for; else no listener."""
    from .cli_progress import unit_bars

    with unit_bars(as_json, _outcome, verbose=verbose) as bars:
        yield bars


def _problem(result: CameraStepResult) -> str:
    """The error and its remedy, or a check's findings (each on its line) and its advice."""
    if result.error is not None:
        return str(result.error) + (f"\n{result.error.remedy_text}" if result.error.remedy_text else "")
    return "\n".join([*(f"- {line}" for line in result.findings), result.advice or ""]).strip()


def _summary(results: list[CameraStepResult], figures: tuple[tuple[str, str, str], ...], title: str) -> Table:
    from rich.text import Text

    headings = (N_("Unit"), N_("Result"), N_("Calibration"), *(h for _n, h, _f in figures), N_("Seconds"))
    shown = table(*headings, N_("Problem or advice"), title=title)
    for r in results:
        verdict = verdict_text(r.verdict) if r.verdict else (_("passed") if r.ok else _("failed"))
        shown.add_row(
            r.serial,
            Text(verdict, style="green" if r.ok else "red"),
            r.checksum[:12] if r.checksum else "-",
            *(figure_text(name, value, r.figures.get(name)) for name, _h, value in figures),
            f"{r.seconds:.1f}",
            Text(_problem(r)),
        )
    return shown


def _read_board(path: Path | None) -> Board:
    from terminal.camera import Board

    return Board() if path is None else Board.read(path)


def _from_images(directory: Path, board_path: Path, as_json: bool, verbose: bool) -> None:
    from camera.offline import calibrate_folder
    from terminal.errors import NaiadError

    with reported(as_json):
        board = _read_board(board_path)
        with _bars(as_json, verbose) as bars:
            try:
                calibration = calibrate_folder(directory, board, bars)
            except NaiadError:
                _stop_bars(bars)
                raise
    if as_json:
        emit_json(calibration.as_json())
        return
    _print_calibration(calibration)


def _stop_bars(bars: Listener | None) -> None:
    """Hide the bars of a step that ended in an error (it sends no finished event): no bar is left pulsing."""
    from .cli_progress import RichBars

    if isinstance(bars, RichBars):
        for task in bars.progress.task_ids:
            bars.progress.update(task, visible=False)


def _print_calibration(calibration: Calibration) -> None:
    shown = table(N_("Camera"), N_("fx"), N_("fy"), N_("cx"), N_("cy"), N_("RMS px"), title=_("Calibration"))
    for name, result in (("IR", calibration.ir), ("RGB", calibration.rgb)):
        k = result.intrinsics
        values = (("fx", k.fx), ("fy", k.fy), ("cx", k.cx), ("cy", k.cy))
        shown.add_row(name, *(f"{v:.2f} ± {result.std[p]:.2f}" for p, v in values), f"{result.rms_px:.3f}")
    out().print(shown)
    stereo = calibration.stereo
    t_mm = ", ".join(f"{1000 * v:.2f}" for v in stereo.rgb_from_ir.t_m)
    out().print(_("IR to RGB: t = ({t}) mm, RMS {rms:.3f} px", t=t_mm, rms=stereo.rms_px))
    out().print(_("Views used: {views}", views=calibration.views_used))


def _units(settings: Settings, devices: tuple[str, ...], all_units: bool) -> tuple[list[str], list[dict[str, str]]]:
    """The units named, or with ``--all`` every attached unit in run mode; and the attached units left out
    (``serial``, ``mode``, ``reason``), which make the run fail: a unit nobody calibrated is not calibrated."""
    if not all_units:
        return list(devices), []
    attached = [d for d in settings.station().devices() if d.serial]
    serials = [d.serial for d in attached if d.mode == "run" and not d.permission_denied]
    skipped = []
    for device in attached:
        if device.serial not in serials:
            reason = _("no permission to open it") if device.permission_denied else _("not in run mode")
            skipped.append({"serial": device.serial, "mode": str(device.mode), "reason": reason})
    return serials, skipped


@click.command(
    "calibrate",
    cls=Command,
    help=N_(
        "Calibrate units' 3D cameras on the jig (--mode full, operator role) or check them in the field "
        "(--mode check), or calibrate a folder of images (--from-images). Exits 1 when a unit failed."
    ),
)
@option("--device", "devices", multiple=True, metavar="SERIAL", help=N_("A unit to calibrate (repeat for several)."))
@option("--all", "all_units", is_flag=True, help=N_("Every attached unit in run mode."))
@option(
    "--mode",
    type=click.Choice(["full", "check"]),
    help=N_("full: calibrate on the jig and write to the unit (default); check: a field check with the board."),
)
@option(
    "--from-images",
    "from_images",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help=N_("Calibrate from a folder of ir_NN.png and rgb_NN.png pairs instead of units (writes nothing)."),
)
@option(
    "--board",
    "board_path",
    type=click.Path(path_type=Path),  # Board.read says what is wrong with it, in --json too
    metavar="BOARD.json",
    help=N_("The board file (DESIGN format); needed with --from-images, else the jig's standard board."),
)
@option(
    "--wall",
    is_flag=True,
    help=N_("With --mode check: check the depth on a flat wall filling the view instead of the board."),
)
@option(
    "--distance",
    "wall_distance",
    type=click.FloatRange(0.1, 5.0),
    metavar="M",
    help=N_("With --wall: the wall's measured distance in metres, to judge the depth's bias too."),
)
@option("--workers", type=click.IntRange(1, 64), help=N_("Units to calibrate at the same time (default: all)."))
@option("-v", "--verbose", is_flag=True, help=N_("Also print the steps' messages."))
@json_option
@pass_settings
def calibrate(
    settings: Settings,
    devices: tuple[str, ...],
    all_units: bool,
    mode: str | None,
    from_images: Path | None,
    board_path: Path | None,
    wall: bool,
    wall_distance: float | None,
    workers: int | None,
    verbose: bool,
    as_json: bool,
) -> None:
    if from_images is not None:
        if devices or all_units or mode:
            raise click.UsageError(_("--from-images calibrates a folder: leave out --device, --all and --mode."))
        if board_path is None:
            raise click.UsageError(_("--from-images needs --board BOARD.json, the board the images show."))
        _from_images(from_images, board_path, as_json, verbose)
        return
    if devices and all_units:
        raise click.UsageError(_("Use either --device or --all, not both."))
    if not devices and not all_units:
        raise click.UsageError(_("Name units with --device SERIAL or --all, or a folder with --from-images."))
    if (wall and mode != "check") or (wall_distance is not None and not wall):
        raise click.UsageError(_("--wall goes with --mode check, and --distance with --wall."))
    from provisioning.calibration import calibrate_units
    from provisioning.camera_steps import CHECK, FULL, NoUnitsSelected

    chosen = mode or FULL
    with reported(as_json):
        board = _read_board(board_path)
        station, session = settings.station(), settings.session()
        serials, skipped = _units(settings, devices, all_units)
        if not serials:
            raise NoUnitsSelected()
        jig = settings.wiring().jig(board if board_path is not None else None)
        with _bars(as_json, verbose) as bars:
            results = calibrate_units(
                station,
                jig,
                serials,
                bars,
                mode=chosen,
                board=board,
                session=session,
                max_workers=workers,
                wall=wall,
                wall_distance_m=wall_distance,
            )
    ok = all(r.ok for r in results) and not skipped
    if as_json:
        emit_json({"mode": chosen, "ok": ok, "results": [r.as_dict() for r in results], "skipped": skipped})
        if not ok:
            raise click.exceptions.Exit(1)
        return
    if chosen == CHECK:
        out().print(_summary(results, CHECK_FIGURES, _("Camera field check")))
    else:
        out().print(_summary(results, FULL_FIGURES, _("Camera calibration")))
    for left in skipped:
        err().print(_("Left out {serial} ({mode}): {reason}", **left), markup=False)
    if not ok:
        raise click.exceptions.Exit(1)


@click.command(
    "depth-quality",
    cls=Command,
    help=N_(
        "Measure a unit's depth quality on the jig's flat wall at each distance (fill rate, plane-fit RMS, "
        "Z accuracy, subpixel RMS) against its model's limits. Exits 1 when a distance fails."
    ),
)
@click.argument("serial")
@option(
    "--distance",
    "distances",
    type=click.FloatRange(0.1, 5.0),
    multiple=True,
    metavar="M",
    help=N_("A wall distance in metres (repeat for several; default: the model's)."),
)
@json_option
@pass_settings
def depth_quality(settings: Settings, serial: str, distances: tuple[float, ...], as_json: bool) -> None:
    from provisioning.calibration import depth_quality as measure

    with reported(as_json):
        station, session = settings.station(), settings.session()
        jig = settings.wiring().jig()
        with _bars(as_json) as bars:
            result = measure(station, jig, serial, list(distances) or None, bars, session=session)
    if as_json:
        emit_json(result.as_dict())
    else:
        _print_depth(result)
    if not result.ok:
        raise click.exceptions.Exit(1)


def _print_depth(result: CameraStepResult) -> None:
    """One row per distance, with whether it passed and why not."""
    headings = (N_("Distance"), *(h for _n, h, _f in DEPTH_FIGURES), N_("Result"))
    shown = table(*headings, title=_("Depth quality of {serial}", serial=result.serial))
    for run in result.depth:
        figures = run["figures"]
        shown.add_row(
            _("{value:.2f} m", value=run["distance_m"]),
            *(figure_text(name, value, figures.get(name)) for name, _h, value in DEPTH_FIGURES),
            _("passed") if run["passed"] else _("failed"),
        )
    out().print(shown)
    if result.error is not None:
        err().print(_problem(result), markup=False)
    else:
        out().print(_("Depth quality of {serial}: passed", serial=result.serial) if result.ok else _problem(result))
