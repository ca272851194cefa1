"""What every ``naiad`` command shares: translated help, JSON output, errors with remedies, progress bars.

Help texts are catalog msgids, translated when shown (not at import), so ``--lang`` and NAIAD_LANG apply.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

from i18n import N_, _, translate
from terminal.errors import NaiadError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from terminal.events import ProgressCallback

# rich, the domains and the device code load when a command needs them: `naiad fastboot` starts fast.


@contextmanager
def _translated_help(obj: click.Option | click.Command) -> Iterator[None]:
    original = obj.help
    obj.help = translate(original) if original else original
    try:
        yield
    finally:
        obj.help = original


class Option(click.Option):
    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        with _translated_help(self):
            return super().get_help_record(ctx)


class Command(click.Command):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        """click's own texts (usage errors, "Usage:", "Options") come from our catalogs too."""
        from .click_i18n import install

        install()
        return super().main(*args, **kwargs)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _translated_help(self):
            super().format_help_text(ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own options (--help, --version) made their help text before --lang was read: translate it."""
        with ExitStack() as stack:
            for param in self.get_params(ctx):
                if isinstance(param, click.Option) and not isinstance(param, Option):
                    stack.enter_context(_translated_help(param))
            super().format_options(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        with _translated_help(self):
            return super().get_short_help_str(limit)


class Group(Command, click.Group):
    """Translated help; ``lazy`` names subcommands ("name": "module:attribute") imported only when used."""

    command_class = Command
    group_class = type  # subgroups are Groups too

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, _sep, attribute = self.lazy[name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


def option(*names: str, **kwargs: Any) -> Callable[[Any], Any]:
    return click.option(*names, cls=Option, **kwargs)


# Words the commands show through _(value) at run time; marked here so the catalogs carry them.
MODE_NAMES = (N_("run"), N_("bootloader"), N_("off"))
STATUS_NAMES = (N_("ok"), N_("warning"), N_("problem"))

json_option = option("--json", "as_json", is_flag=True, help=N_("Print the result as JSON."))


# --- output ------------------------------------------------------------------------------------------


PIPED_WIDTH = 10_000
"""Columns assumed when output is piped or redirected: nothing to fit, so tables keep their natural width."""


def out() -> Console:
    """Standard output; on a terminal fitted to its width, elsewhere never cutting a table cell."""
    return _console(stderr=False)


def err() -> Console:
    """Standard error, as :func:`out`."""
    return _console(stderr=True)


def _console(stderr: bool) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # a file or a pipe: a serial, a result or an error cut at 80 columns is lost
        console.width = PIPED_WIDTH
    return console


def table(*headings: str, title: str | None = None, column: dict[str, Any] | None = None, **options: Any) -> Table:
    """A rich table with translated column headings (msgids) whose string cells are plain text, never markup:
    serials, paths and device answers may hold brackets. Style a cell by passing a rich Text."""
    from rich.table import Table
    from rich.text import Text

    class PlainTable(Table):
        def add_row(self, *cells: Any, **row_options: Any) -> None:
            super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **row_options)

    result = PlainTable(title=title, **options)
    for heading in headings:
        result.add_column(_(heading), **(column or {}))
    return result


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def problem_text(error: NaiadError | None) -> str:
    """An error and its remedy on the next line, for a table's problem cell ("" for none)."""
    if error is None:
        return ""
    return str(error) + (f"\n{error.remedy_text}" if error.remedy_text else "")


def fail(exc: NaiadError, as_json: bool) -> NoReturn:
    if as_json:
        emit_json(exc.as_dict())
    else:
        from rich.markup import escape

        console = err()
        console.print(f"[bold red]{escape(_('Error'))}:[/] {escape(str(exc))}", soft_wrap=True)
        if exc.remedy_text:
            console.print(exc.remedy_text, markup=False, soft_wrap=True)
    raise click.exceptions.Exit(1)


@contextmanager
def reported(as_json: bool) -> Iterator[None]:
    try:
        yield
    except NaiadError as exc:
        fail(exc, as_json)


# --- files the user names for output (-o) ------------------------------------------------------------


class OutputError(NaiadError):
    message = N_("Cannot write {path}: {reason}")
    remedy = N_("Choose another path, in a directory you may write to and on a disk with room.")


class OutputDirectoryMissing(OutputError):
    message = N_("Cannot write {path}: the directory {directory} does not exist or is not a directory")
    remedy = N_("Create the directory first, or choose another path.")


class OutputDiskFull(OutputError):
    message = N_("Cannot write {path}: no space left on the device")
    remedy = N_("Free some space or choose a path on another disk; nothing was left half-written.")


class OutputPermissionDenied(OutputError):
    message = N_("Cannot write {path}: permission denied")
    remedy = N_("Choose a directory you may write to, or ask its owner for write permission.")


class OutputNotAFile(OutputError):
    message = N_("Cannot write {path}: it is a device, pipe or socket, not a file")
    remedy = N_("Choose the path of a regular file.")


_OUTPUT_ERRORS: dict[int, type[OutputError]] = {
    errno.ENOENT: OutputDirectoryMissing,
    errno.ENOTDIR: OutputDirectoryMissing,
    errno.ENOSPC: OutputDiskFull,
    errno.EDQUOT: OutputDiskFull,
    errno.EFBIG: OutputDiskFull,
    errno.EACCES: OutputPermissionDenied,
    errno.EPERM: OutputPermissionDenied,
    errno.EROFS: OutputPermissionDenied,
}


@contextmanager
def output_errors(path: Path, *, special_ok: bool = False) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into a typed error with a remedy.  Unless ``special_ok``, an
    existing device or pipe is refused first: a file written beside it and renamed would replace it."""
    exists_special = path.exists() and not path.is_file() and not path.is_dir()
    if exists_special and not special_ok:
        raise OutputNotAFile(path=str(path))
    try:
        yield
    except OSError as exc:
        error = _OUTPUT_ERRORS.get(exc.errno or 0, OutputError)
        raise error(path=str(path), directory=str(path.parent), reason=exc.strerror or str(exc)) from exc


@contextmanager
def atomic_output(path: Path, *, private: bool = False) -> Iterator[TextIO]:
    """A UTF-8 text file that replaces ``path`` whole when the block ends, or leaves nothing behind when it
    fails: it is written beside ``path`` and renamed.  An existing device or pipe (/dev/stdout) is written
    in place.  A missing directory, a full disk or a refused write is an :class:`OutputError`.  ``private``:
    the file holds a secret and is owner-only (0600) from its first byte."""
    with output_errors(path, special_ok=True):
        if path.exists() and not path.is_file():
            with path.open("w", encoding="utf-8") as fh:
                yield fh
            return
        partial = path.with_name(f".{path.name}.{os.urandom(4).hex()}.partial")  # not secrets: hmac, hashlib
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)  # and the umask
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


@contextmanager
def byte_bar(enabled: bool, label: str) -> Iterator[ProgressCallback]:
    """A byte progress bar on stderr when it is a terminal; yields the transfer's ``(done, total)`` callback."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from .cli_progress import transfer_bar

    with transfer_bar(err(), label) as update:
        yield update
