"""``naiad sim``: start, query, stop and disturb the virtual terminals."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from i18n import N_, _, translate
from simulator.camera import DEFAULT_MODEL, DEFAULT_VIEWS
from terminal.errors import NaiadError
from terminal.events import ProgressCallback

from .cli_common import Group, emit_json, err, json_option, option, out, output_errors, reported, table


def _state(ctx: click.Context, state: Path | None) -> Path:
    from .composition import chosen_sim_dir

    chosen = state or chosen_sim_dir(ctx.find_root().params.get("sim_dir"))
    if chosen is None:
        raise click.UsageError(_("Name the simulator's state directory with --state DIR (or NAIAD_SIM)."))
    return Path(chosen)


state_option = option(
    "--state",
    type=click.Path(file_okay=False, path_type=Path),
    help=N_("The simulator's state directory (default: --sim or NAIAD_SIM)."),
)


# The secure element states (terminal.protocol.SecureElementState) as words the status table translates.
SECURE_ELEMENT_STATES = (N_("factory"), N_("identity"), N_("certified"), N_("keyed"))

FAULT_OPTIONS = {
    "ber": option("--ber", type=click.FloatRange(0, 1), help=N_("Bit-error rate on the serial link.")),
    "drop": option(
        "--drop", type=click.FloatRange(0, 1), help=N_("Probability of losing each byte on the serial link.")
    ),
    "latency_ms": option(
        "--latency-ms", type=click.FloatRange(0), help=N_("Delay added before each answer, in milliseconds.")
    ),
    "bandwidth_mbps": option(
        "--bandwidth-mbps",
        type=click.FloatRange(0),
        help=N_("Cap every link of a terminal at this many MB/s (0: no cap)."),
    ),
    "corrupt_writes": option(
        "--corrupt-writes",
        type=click.IntRange(0),
        help=N_("Corrupt the next N partition writes after the bootloader accepted them."),
    ),
}


def with_faults(f: Any) -> Any:
    for decorate in reversed(FAULT_OPTIONS.values()):
        f = decorate(f)
    return f


def _faults(given: dict[str, Any]) -> dict[str, Any]:
    """The fault options the user gave (popped from a command's keyword arguments)."""
    return {name: value for name in FAULT_OPTIONS if (value := given.pop(name, None)) is not None}


@click.group("sim", cls=Group, help=N_("Virtual terminals for tests, demos and training."))
def sim() -> None:
    pass


@sim.command("start", help=N_("Start N virtual terminals with persistent state in DIR."))
@option("--terminals", type=click.IntRange(1, 64), default=1, show_default=True, help=N_("How many terminals."))
@state_option
@option("--model", "models", multiple=True, help=N_("Model id for the new terminals (repeat to mix; default: all)."))
@option("--detach", is_flag=True, help=N_("Run in the background; return once every terminal answers."))
@with_faults
@json_option
@click.pass_context
def start(
    ctx: click.Context,
    /,
    terminals: int,
    state: Path | None,
    models: tuple[str, ...],
    detach: bool,
    as_json: bool,
    **fault_options: Any,
) -> None:
    directory = _state(ctx, state)
    faults = _faults(fault_options)
    if not detach:
        from simulator.process import main

        argv = ["--state", str(directory), "--terminals", str(terminals)]
        argv += [arg for m in models for arg in ("--model", m)]
        argv += [arg for k, v in faults.items() for arg in (f"--{k.replace('_', '-')}", str(v))]
        raise click.exceptions.Exit(main(argv))
    from simulator import launcher

    with reported(as_json):
        status = launcher.start_detached(directory, terminals, list(models), faults)
    if as_json:
        emit_json(status)
    else:
        out().print(_("{count} terminals are running in {state}.", count=len(status["terminals"]), state=directory))


@sim.command("status", help=N_("Show the virtual terminals and their state."))
@state_option
@json_option
@click.pass_context
def status(ctx: click.Context, state: Path | None, as_json: bool) -> None:
    from simulator import launcher

    with reported(as_json):
        result = launcher.status(_state(ctx, state))
    if as_json:
        emit_json(result)
        return
    shown = table(
        N_("Serial"),
        N_("Model"),
        N_("Mode"),
        N_("Plugged"),
        N_("Serial port"),
        N_("Fastboot TCP port"),
        N_("Secure element"),
        title=_("Simulated terminals"),
    )
    for t in result["terminals"]:
        shown.add_row(
            t["serial"],
            t["model"],
            translate(t["mode"]),
            _("yes") if t["plugged"] else _("no"),
            t.get("pty") or "-",
            str(t.get("fastboot_tcp_port") or "-"),
            translate(t["secure_element"]),
        )
    out().print(shown)


@sim.command("stop", help=N_("Stop the simulator; its state stays for the next start."))
@state_option
@click.pass_context
def stop(ctx: click.Context, state: Path | None) -> None:
    from simulator import launcher

    with reported(False):
        launcher.stop(_state(ctx, state))


@sim.command("faults", help=N_("Change the faults of one terminal (or all) while they run."))
@state_option
@option("--serial", help=N_("Only this terminal."))
@option("--unplug-after-bytes", type=click.IntRange(0), help=N_("Unplug once this many more bytes have crossed."))
@option(
    "--counterfeit/--genuine",
    default=None,
    help=N_("Serve an attestation chain from a CA no station trusts (or the genuine one again)."),
)
@option(
    "--broken-chain/--intact-chain",
    default=None,
    help=N_("Serve an attestation certificate whose signature does not verify (or an intact one again)."),
)
@option(
    "--camera-drift/--no-camera-drift",
    default=None,
    help=N_("Drop the camera: its calibration drifts (or restore the factory module)."),
)
@option(
    "--dead-projector/--projector-ok",
    default=None,
    help=N_("Kill the IR projector: no dots, no depth, though it still answers 'on' (or repair it)."),
)
@option(
    "--rgb-defocus/--rgb-focused",
    default=None,
    help=N_("Put the RGB camera out of focus (or back in focus)."),
)
@with_faults
@click.pass_context
def faults(
    ctx: click.Context,
    /,
    state: Path | None,
    serial: str | None,
    unplug_after_bytes: int | None,
    counterfeit: bool | None,
    broken_chain: bool | None,
    camera_drift: bool | None,
    dead_projector: bool | None,
    rgb_defocus: bool | None,
    **fault_options: Any,
) -> None:
    from simulator.control import SimControl

    changes = _faults(fault_options)
    given = {
        "unplug_after_bytes": unplug_after_bytes,
        "counterfeit": counterfeit,
        "broken_chain": broken_chain,
        "camera_drift": camera_drift,
        "dead_projector": dead_projector,
        "rgb_defocus": rgb_defocus,
    }
    changes.update({name: value for name, value in given.items() if value is not None})
    with reported(False):
        SimControl(_state(ctx, state)).call("faults", serial=serial, **changes)


def _unit_command(name: str, command: str, help_text: str) -> None:
    @sim.command(name, help=help_text)
    @click.argument("serial")
    @state_option
    @click.pass_context
    def run(ctx: click.Context, serial: str, state: Path | None) -> None:
        from simulator.control import SimControl

        with reported(False):
            SimControl(_state(ctx, state)).call(command, serial=serial)


_unit_command("unplug", "unplug", N_("Pull a terminal's USB cable."))
_unit_command("replug", "replug", N_("Plug a terminal's USB cable back in."))
_unit_command("power-cut", "power_cut", N_("Cut a terminal's power."))
_unit_command("power-on", "power_on", N_("Restore a terminal's power; it boots."))
_unit_command(
    "zeroise",
    "zeroise",
    N_("Trip a terminal's tamper switch: its secure element wipes its identity and payment keys."),
)


class PlatformAccessUnreadable(NaiadError):
    message = N_("Cannot read the platform access file {path}: {reason}")
    remedy = N_("Give the file 'naiad platform serve --terminal-config FILE' wrote.")
    msgid_params = ("reason",)


MAX_ACCESS_FILE = 64 * 1024  # a terminal configuration is a few kilobytes
_ACCESS_FILE_REASONS = {
    errno.ENOENT: N_("no such file"),
    errno.EISDIR: N_("it is a directory"),
    errno.EACCES: N_("permission denied"),
    errno.EPERM: N_("permission denied"),
}


def read_platform_access(path: Path) -> Any:
    """The JSON in ``path``, a terminal configuration (the simulator checks its fields); typed errors otherwise."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_ACCESS_FILE + 1)
    except OSError as exc:
        reason = _ACCESS_FILE_REASONS.get(exc.errno or 0, N_("the system refused to read it"))
        raise PlatformAccessUnreadable(path=str(path), reason=reason) from None
    if len(data) > MAX_ACCESS_FILE:
        raise PlatformAccessUnreadable(path=str(path), reason=N_("it is far larger than a platform access file"))
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PlatformAccessUnreadable(path=str(path), reason=N_("it is not JSON")) from None


@sim.command(
    "platform",
    help=N_(
        "Give the running simulator's units their face-pay app's platform access: the file "
        "'naiad platform serve --terminal-config FILE' wrote (kept owner-only in the state directory)."
    ),
)
@click.argument("access_file", metavar="FILE", type=click.Path(path_type=Path))
@state_option
@click.pass_context
def platform(ctx: click.Context, access_file: Path, state: Path | None) -> None:
    from simulator.control import SimControl

    with reported(False):
        config = read_platform_access(access_file)
        result = SimControl(_state(ctx, state)).call("platform", config=config)
    shown = _(
        "The simulated units reach the platform at {url} as app {app_id}.", url=result["url"], app_id=result["app_id"]
    )
    out().print(shown, markup=False)


class ModelChoice(click.Choice[str]):
    """The ids of the model table, read when the option is used or shown (not each time the CLI starts)."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        from terminal.models import load_models

        return tuple(sorted(load_models()))

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        """click sets its choices once; the table is read afresh instead."""


@contextmanager
def view_bar(enabled: bool, label: str) -> Iterator[ProgressCallback]:
    """A transient bar counting views (not bytes: no speed) on stderr when it is a terminal."""
    console = err()
    if not enabled or not console.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from terminal.events import Reporter

    from .cli_progress import CountColumn, RichBars

    columns = (TextColumn("{task.description}"), BarColumn(), CountColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        reporter = Reporter(RichBars(progress), "", "render")
        reporter.phase("render", label)
        yield reporter.progress_callback(counts="items")


@sim.command(
    "render-calibration-set",
    help=N_(
        "Render a calibration set into DIR: IR, RGB and depth views of the jig's board by a unit drawn from the "
        "seed, with board.json and the truth (no simulator needed)."
    ),
)
@option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help=N_("The directory to write the set into."),
)
@option("--views", type=click.IntRange(1, 99), default=DEFAULT_VIEWS, show_default=True, help=N_("How many views."))
@option("--seed", type=click.IntRange(0), default=0, show_default=True, help=N_("Seed of the unit and its poses."))
@option(
    "--model",
    "model_id",
    type=ModelChoice(),
    default=DEFAULT_MODEL,
    show_default=True,
    help=N_("Model id of the unit."),
)
@json_option
def render_calibration_set(out_dir: Path, views: int, seed: int, model_id: str, as_json: bool) -> None:
    from simulator.camera.calibration_set import write_set

    with reported(as_json), output_errors(out_dir), view_bar(not as_json, _("Rendering views")) as progress:
        write_set(out_dir, views, seed, model_id, progress)
    if as_json:
        emit_json({"out": str(out_dir), "views": views, "seed": seed, "model": model_id})
    else:
        out().print(_("{views} views written to {out}.", views=views, out=out_dir))
