"""click's own texts (usage errors, "Usage:", "Options") in the user's language, from Naiad's catalogs.

click translates with gettext's ``_`` and ``ngettext``, bound in each of its modules; :func:`install`
rebinds them to our catalogs, so ``naiad --lang zh_CN flash --nosuch`` answers in Chinese.  The msgids
below are click's own (click 8), listed here so the extractor puts them into the catalogs.
"""

from __future__ import annotations

import importlib

import click

from i18n import N_, translate

CLICK_MESSAGES = (
    N_("Aborted!"),
    N_("Options"),
    N_("Positional arguments"),
    N_("Commands"),
    N_("Usage:"),
    N_("Error: {message}"),
    N_("Try '{command} {option}' for help."),
    N_("Got unexpected extra argument ({args})"),
    N_("Got unexpected extra arguments ({args})"),
    N_("Missing command."),
    N_("Missing argument"),
    N_("Missing option"),
    N_("Missing parameter"),
    N_("Missing {param_type}"),
    N_("Missing parameter: {param_name}"),
    N_("No such option {name!r}."),
    N_("No such command {name!r}."),
    N_("Did you mean {possibility}?"),
    N_("(Did you mean one of: {possibilities}?)"),
    N_("Invalid value: {message}"),
    N_("Invalid value for {param_hint}: {message}"),
    N_("Could not open file {filename!r}: {message}"),
    N_("unknown error"),
    N_("Option {name!r} does not take a value."),
    N_("Option {name!r} requires an argument."),
    N_("Option {name!r} requires {nargs} arguments."),
    N_("Argument {name!r} takes {nargs} values."),
    N_("Takes {nargs} values but 1 was given."),
    N_("Takes {nargs} values but {len} were given."),
    N_("Value must be an iterable."),
    N_("env var: {var}"),
    N_("default: {default}"),
    N_("(dynamic)"),
    N_("deprecated"),
    N_("Do you want to continue?"),
    N_("Confirm the action without prompting."),
    N_("Show the version and exit."),
    N_("Show this message and exit."),
    N_("Repeat for confirmation"),
    N_("Error: The two entered values do not match."),
    N_("Error: invalid input"),
    N_("Press any key to continue..."),
    N_("Choose from:\n\t{choices}"),
    N_("{value!r} is not {choice}."),
    N_("{value!r} is not one of {choices}."),
    N_("{value!r} does not match the format {format}."),
    N_("{value!r} does not match the formats {formats}."),
    N_("{value!r} is not a valid {number_type}."),
    N_("{value} is not in the range {range}."),
    N_("{value!r} is not a valid boolean. Recognized values: {states}"),
    N_("{value!r} is not a valid UUID."),
    N_("file"),
    N_("directory"),
    N_("path"),
    N_("{name} {filename!r} does not exist."),
    N_("{name} {filename!r} is a file."),
    N_("{name} {filename!r} is a directory."),
    N_("{name} {filename!r} is not readable."),
    N_("{name} {filename!r} is not writable."),
    N_("{name} {filename!r} is not executable."),
    N_("{len_type} values are required, but {len_value} was given."),
    N_("{len_type} values are required, but {len_value} were given."),
)

_CLICK_MODULES = (
    "click.core",
    "click.decorators",
    "click.exceptions",
    "click.formatting",
    "click.parser",
    "click.termui",
    "click.types",
    "click.utils",
)


def gettext(message: str) -> str:
    return translate(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translate(singular if count == 1 else plural)


# TRANSLATORS: a sentence of click's ("Missing argument 'SERIAL'") and the full stop that ends it.
FULL_STOP = N_("{sentence}.")
_click_missing_message = click.MissingParameter.format_message


def _missing_parameter_message(self: click.MissingParameter) -> str:
    """click ends "Missing argument 'X'" with an ASCII full stop of its own; end it as the language does."""
    text = _click_missing_message(self)
    return translate(FULL_STOP).format(sentence=text[:-1]) if text.endswith(".") else text


def install() -> None:
    """Rebind click's ``_`` and ``ngettext`` to our catalogs (harmless to repeat)."""
    click.MissingParameter.format_message = _missing_parameter_message  # type: ignore[method-assign]
    for name in _CLICK_MODULES:
        bound = vars(importlib.import_module(name))
        if "_" in bound:
            bound["_"] = gettext
        if "ngettext" in bound:
            bound["ngettext"] = ngettext
