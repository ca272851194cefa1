"""``naiad platform serve``: run the sandbox platform (docs/platform-api.md) until Ctrl-C."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from i18n import N_, _
from terminal.errors import NaiadError

from .cli_common import atomic_output, option, out, reported

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ConfigOverAppKey(NaiadError):
    message = N_("The configuration {path} would replace the station's app key given with --app-key")
    remedy = N_("Give --station-config and --terminal-config files other than --app-key.")


@click.command("serve", help=N_("Run the sandbox merchant platform (HTTPS) until Ctrl-C."))
@option("--port", type=click.IntRange(0, 65535), required=True, help=N_("TCP port to listen on (0: a free one)."))
@option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help=N_("The sandbox's database file (created and seeded on first start)."),
)
@option("--host", default="127.0.0.1", show_default=True, help=N_("Address to listen on."))
@option(
    "--station-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=N_("Write the platform configuration a station needs to this file."),
)
@option(
    "--terminal-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=N_(
        "Write the access simulated units need to this file (owner-only: it holds the sandbox terminal app's "
        "private key); give it to the simulator with 'naiad sim platform FILE'."
    ),
)
@option(
    "--app-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=N_("PEM public key of the station's platform key ('naiad platform keygen' writes it)."),
)
@option("--latency-rate", type=click.FloatRange(0, 1), default=0.0, help=N_("Share of requests delayed."))
@option("--latency-seconds", type=click.FloatRange(0, 60), default=2.0, show_default=True, help=N_("Delay of a spike."))
@option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help=N_("Share of requests answered HTTP 503."))
@option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help=N_("Share of requests whose reply is dropped after the work is committed."),
)
@option(
    "--rate-limit", type=click.IntRange(0), default=0, help=N_("Requests per second per app before HTTP 429 (0: none).")
)
@option("--seed", type=int, help=N_("Seed of the fault knobs' random draws."))
def serve(
    port: int,
    db: Path,
    host: str,
    station_config: Path | None,
    terminal_config: Path | None,
    app_key: Path | None,
    latency_rate: float,
    latency_seconds: float,
    error_rate: float,
    drop_rate: float,
    rate_limit: int,
    seed: int | None,
) -> None:
    from enrollment.sandbox.seed import APP_ID
    from enrollment.sandbox.server import (
        WILDCARD_HOSTS,
        Faults,
        Sandbox,
        SandboxAppKeyInvalid,
        SandboxConfigOverDatabase,
        SandboxTerminalConfigOverFile,
        checked_app_key,
    )

    faults = Faults(latency_rate, latency_seconds, error_rate, drop_rate, rate_limit, seed)
    with reported(False), stop_signals() as stopped:
        for written in (station_config, terminal_config):
            if written is not None and app_key is not None and _same_file(written, app_key):
                raise ConfigOverAppKey(path=str(written))
        if station_config is not None and _over_database(station_config, db):
            raise SandboxConfigOverDatabase(path=str(station_config))
        if terminal_config is not None and (
            _over_database(terminal_config, db)
            or (station_config is not None and _same_file(terminal_config, station_config))
        ):
            raise SandboxTerminalConfigOverFile(path=str(terminal_config))
        key = None
        if app_key is not None:
            try:
                key = app_key.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError):
                raise SandboxAppKeyInvalid(app_id=APP_ID, reason=N_("not a readable PEM file")) from None
            key = checked_app_key(APP_ID, key)  # before the sandbox starts
        with Sandbox.start(db, host=host, port=port, faults=faults) as sandbox:
            if key is not None:
                sandbox.set_app_key(APP_ID, key)
            if station_config is not None:
                with atomic_output(station_config) as fh:
                    fh.write(sandbox.station_config().dumps())
                out().print(_("Station configuration written to {path}", path=str(station_config)), markup=False)
            if terminal_config is not None:
                with atomic_output(terminal_config, private=True) as fh:
                    fh.write(json.dumps(sandbox.terminal_config(), indent=1) + "\n")
                shown = _("Terminal app access for simulated units written to {path}", path=str(terminal_config))
                out().print(shown, markup=False)
            out().print(_("Sandbox platform at {url} (Ctrl-C stops it)", url=sandbox.url), markup=False)
            if host in WILDCARD_HOSTS:
                warning = _(
                    "Listening on every network interface ({host}), but the certificate and the station "
                    "configuration name only this machine: for a station elsewhere, give --host this machine's "
                    "address on its network.",
                    host=host,
                )
                out().print(warning, markup=False)
            serve_until(stopped)
        out().print(_("Sandbox platform stopped"), markup=False)


def _same_file(path: Path, other: Path) -> bool:
    """Whether ``path`` and ``other`` name one file: the same path once links are resolved, or the same file
    on disk (a hard link)."""
    if path.resolve() == other.resolve():
        return True
    try:
        return path.samefile(other)
    except OSError:  # either does not exist (yet): not one file
        return False


def _over_database(path: Path, db: Path) -> bool:
    """Whether writing ``path`` would replace the database ``db`` or one of its companion files."""
    return any(_same_file(path, Path(f"{db}{suffix}")) for suffix in ("", "-wal", "-shm", "-journal", ".lock"))


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event SIGINT and SIGTERM set while the block runs (their previous handlers come back afterwards)."""
    stopped = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = {number: signal.signal(number, on_signal) for number in STOP_SIGNALS}
    try:
        yield stopped
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def serve_until(stopped: threading.Event) -> None:
    """Let the sandbox serve until ``stopped`` is set."""
    while not stopped.wait(0.5):
        pass
