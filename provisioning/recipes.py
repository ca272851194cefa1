"""Recipes: which steps a unit goes through, and their settings, in a TOML file checked before any unit is touched.

A recipe file holds a ``name``, a ``description`` (English; the built-ins' are translated through the catalog
entries below), ``read_only`` and one ``[[step]]`` table per step, its settings inline::

    name = "distributor-bulk"
    description = "Flash, key, calibrate, check, register and label units at the distributor"
    read_only = false

    [[step]]
    name = "flash"
    bundle = "firmware/df2-2.4.0.naiadfw"

Every setting is checked against the step's :class:`~provisioning.steps.Setting` list (kind, minimum, choices);
defaults fill in what the file leaves out; a setting whose default is ``REQUIRED`` must be given, in the file or
with ``--set STEP.SETTING=VALUE`` (the value read as a TOML value, else as text).  FILE settings resolve against
the recipe file's folder (overrides and built-ins: the current folder) and are stored absolute.  Whatever is
wrong is a :class:`RecipeError` naming the source, the line and the reason.  ``digest`` is the SHA-256 of the
recipe as it will run (name, read_only, steps and their complete settings): the ledger resumes a unit's run only
under the same digest.

A recipe may also be run in parts (the installer wizard asks for the merchant between steps):
:func:`load_recipe_part` and :meth:`Recipe.part` give some of its steps as a recipe of their own, named
``<recipe>/<part>`` (``installer-onsite/update``), which the ledger claims, resumes and counts done by that name.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i18n import N_, _
from terminal.errors import NaiadError

from .steps import REQUIRED, Setting, SettingKind, Step, all_steps

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
BUILT_IN_RECIPES: dict[str, str] = {
    "distributor-bulk": N_(
        "Flash, key, calibrate, check the depth quality, register in the platform's inventory and label each unit"
    ),
    "installer-onsite": N_(
        "Update the firmware, check the camera and face-pay, bind, activate and enrol each unit at its site, "
        "then write its report"
    ),
    "support-diagnose": N_(
        "Read a unit's state without changing anything, and suggest what to do: re-flash, re-calibrate, "
        "re-inject, replace the cable or return it"
    ),
}
"""The built-in recipes by name, with their descriptions (the TOML files' ``description``, as catalog msgids)."""
_RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TOP_KEYS = ("name", "description", "read_only", "step")
_KEY = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY_LINE = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?:\.\s*{_KEY}\s*)*=(?P<value>.*)$")
"""A key line (a dotted key counts as its first part) and what follows the '='."""
_STEP_HEADER = re.compile(r"^\s*\[\[\s*step\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\s*\[\[?\s*(?P<key>{_KEY})?")
_MULTILINE = ('"""', "'''")
MAX_RECIPE_BYTES = 1 << 20
"""A recipe file is a few hundred bytes; anything over 1 MiB is refused unread."""
_INTEGER_LIMIT = 1 << 63
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_KIND_NAMES = {
    SettingKind.STRING: N_("text"),
    SettingKind.INTEGER: N_("a whole number"),
    SettingKind.NUMBER: N_("a number"),
    SettingKind.BOOLEAN: N_("true or false"),
    SettingKind.FILE: N_("the path of a file, as text"),
    SettingKind.STRINGS: N_("a list of texts"),
    SettingKind.NUMBERS: N_("a list of numbers"),
}


# -- errors ------------------------------------------------------------------------------------------


class RecipeError(NaiadError):
    """A recipe that cannot run as written.  ``where`` names the source and the line (``file.toml, line 7``)."""

    message = N_("{where}: the recipe is wrong")

    @property
    def source(self) -> str:
        return str(self.params.get("source", ""))

    @property
    def line(self) -> int | None:
        line = self.params.get("line")
        return line if isinstance(line, int) else None


class RecipeNotFound(RecipeError):
    message = N_("There is no built-in recipe {name} and no recipe file {name}")
    remedy = N_("Name a built-in recipe ({known}) or the path of a recipe file.")


class RecipeUnreadable(RecipeError):
    message = N_("{where}: the recipe file cannot be read: {detail}")
    remedy = N_("Check the path and the file's permissions; a recipe is a UTF-8 TOML text file.")


class RecipeSyntax(RecipeError):
    message = N_("{where}: not valid TOML: {detail}")
    remedy = N_("Fix the recipe file at that line (TOML: key = value, [[step]] tables, quoted texts).")


class RecipeMalformed(RecipeError):
    message = N_("{where}: {reason}")
    remedy = N_("A recipe has name, description, read_only and [[step]] tables, each with a name: see docs/station.md.")
    msgid_params = ("reason",)


class RecipeEmpty(RecipeError):
    message = N_("{where}: the recipe names no step")
    remedy = N_("Add at least one [[step]] table with a name.")


class UnknownRecipeStep(RecipeError):
    message = N_("{where}: there is no step named '{step}'")
    remedy = N_("Use one of: {known}.")


class DuplicateRecipeStep(RecipeError):
    message = N_("{where}: step {step} appears a second time (first on line {first})")
    remedy = N_("Name each step once; a recipe runs each step once per unit.")


class UnknownSetting(RecipeError):
    message = N_("{where}: step {step} has no setting '{setting}'")
    remedy = N_("Its settings are: {known}.")


class WrongSettingType(RecipeError):
    message = N_("{where}: setting {step}.{setting} must be {kind}, not {value}")
    remedy = N_("Write the value as the setting's kind asks (see docs/station-steps.md).")
    msgid_params = ("kind",)


class SettingTooSmall(RecipeError):
    message = N_("{where}: setting {step}.{setting} must be at least {minimum}, not {value}")
    remedy = N_("Give a value of {minimum} or more.")


class SettingNotAChoice(RecipeError):
    message = N_("{where}: setting {step}.{setting} must be one of {choices}, not {value}")
    remedy = N_("Give one of: {choices}.")


class MissingSetting(RecipeError):
    message = N_("{where}: step {step} needs the setting '{setting}'")
    remedy = N_("Give it in the recipe file, or on the command line: --set {step}.{setting}={example}")


class SettingFileMissing(RecipeError):
    message = N_("{where}: setting {step}.{setting} names {path}, which is not a readable file")
    remedy = N_("Check the path; a relative path is read from the recipe file's folder (from --set: the current one).")


class ReadOnlyRecipeWrites(RecipeError):
    message = N_("{where}: the recipe is read only, but step {step} changes the unit or the platform")
    remedy = N_("Remove the step, or make the recipe writing (read_only = false).")


class RecipeTakesBuiltInName(RecipeError):
    message = N_("{where}: the recipe is named {name}, like the built-in recipe, but runs other steps")
    remedy = N_(
        "Give the recipe a name of its own: the ledger counts a unit done in {name} only when it went through "
        "its steps ({steps})."
    )


class RecipePartInvalid(RecipeError):
    message = N_("{where}: part {part} of the recipe is not valid: {reason}")
    remedy = N_("Name a part with 1 to 64 letters, digits, '.', '_' or '-' (with the recipe's name, at most 64), of "
                "steps the recipe has ({known}).")  # fmt: skip
    msgid_params = ("reason",)


class BadOverride(RecipeError):
    message = N_("--set {text}: {reason}")
    remedy = N_("Write it as --set STEP.SETTING=VALUE, such as --set flash.bundle=df2.naiadfw.")
    msgid_params = ("reason",)


# -- the recipe --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipeStep:
    """One step of a recipe: its name, its complete checked settings, and the line of its ``[[step]]`` table."""

    name: str
    settings: dict[str, Any]
    line: int


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    """English, as in the file; :meth:`title` gives it in the user's language."""
    steps: tuple[RecipeStep, ...]
    source: str
    """The file it was read from (a built-in's too)."""
    digest: str
    read_only: bool

    def title(self) -> str:
        return _(self.description) if self.description else self.name

    def part(self, part: str, step_names: Sequence[str]) -> Recipe:
        """The steps ``step_names`` of this recipe (in its order, with their settings) as a recipe of their own named
        ``<name>/<part>``, with its own digest: a unit counts done in a part by that name, apart from the whole.
        :class:`RecipePartInvalid` for a bad part name or a step the recipe lacks."""
        wanted = _part_steps(self.name, part, step_names, [s.name for s in self.steps], self.source)
        steps = tuple(s for s in self.steps if s.name in wanted)
        name = f"{self.name}/{part}"
        return Recipe(name, self.description, steps, self.source, recipe_digest(name, self.read_only, steps),
                      self.read_only)  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "read_only": self.read_only,
            "steps": [{"name": s.name, "settings": s.settings} for s in self.steps],
            "source": self.source,
            "digest": self.digest,
        }


def recipe_digest(name: str, read_only: bool, steps: tuple[RecipeStep, ...]) -> str:
    """SHA-256 (hex) of the canonical JSON of what the recipe runs."""
    canonical = {"name": name, "read_only": read_only, "steps": [[s.name, s.settings] for s in steps]}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- where things are in the text ---------------------------------------------------------------------


@dataclass
class _Lines:
    """Line numbers of the top-level keys, and of each ``[[step]]`` table and its keys (TOML gives none)."""

    top: dict[str, int]
    steps: list[tuple[int, dict[str, int]]]

    @classmethod
    def scan(cls, text: str) -> _Lines:
        """Headers and keys line by line; the inside of a multi-line string is text, never a header or a key."""
        top: dict[str, int] = {}
        steps: list[tuple[int, dict[str, int]]] = []
        current: dict[str, int] | None = top
        open_string: str | None = None  # the delimiter of the multi-line string the scan is inside
        for number, line in enumerate(text.splitlines(), start=1):
            if open_string is not None:
                if line.count(open_string) % 2 == 1:
                    open_string = None
                continue
            if _STEP_HEADER.match(line):
                top.setdefault("step", number)
                steps.append((number, {}))
                current = steps[-1][1]
            elif header := _TABLE_HEADER.match(line):
                if header.group("key"):  # some other table: its keys are not ours, but where it is counts
                    top.setdefault(header.group("key").strip("\"'"), number)
                current = None
            elif found := _KEY_LINE.match(line):
                if current is not None:
                    current.setdefault(found.group("key").strip("\"'"), number)
                open_string = _opens_multiline(found.group("value"))
        return cls(top, steps)

    def step(self, index: int) -> int:
        """The line of the step's ``[[step]]`` header; of the ``step =`` key when the steps are written inline."""
        return self.steps[index][0] if index < len(self.steps) else self.top.get("step", 0)

    def key(self, index: int, key: str) -> int:
        if index < len(self.steps):
            return self.steps[index][1].get(key, self.steps[index][0])
        return self.top.get("step", 0)


def _opens_multiline(value: str) -> str | None:
    """The delimiter of a multi-line string that ``value`` (what follows a key's '=') opens and leaves open."""
    stripped = value.strip()
    for delimiter in _MULTILINE:
        if stripped.startswith(delimiter) and stripped.count(delimiter) % 2 == 1:
            return delimiter
    return None


def _where(source: str, line: int | None) -> str:
    return _("{source}, line {line}", source=source, line=line) if line else source


# -- loading -----------------------------------------------------------------------------------------


def load_recipe(name_or_path: str, overrides: Mapping[str, str] | None = None) -> Recipe:
    """The built-in recipe ``name_or_path``, else the recipe file at that path, checked, with ``overrides``
    (``{"STEP.SETTING": "VALUE"}``, as ``--set`` gives them) applied.  Raises a :class:`RecipeError`."""
    return _load(name_or_path, overrides, None)


def load_recipe_part(
    name_or_path: str, part: str, step_names: Sequence[str], overrides: Mapping[str, str] | None = None
) -> Recipe:
    """The steps ``step_names`` of the recipe ``name_or_path`` as a recipe of their own named ``<recipe>/<part>``
    (:meth:`Recipe.part`), checked as :func:`load_recipe` checks the whole, but only those steps' settings: a
    setting another step requires may be missing (an installer without a firmware bundle still checks the camera),
    and overrides of other steps are left out.  Raises a :class:`RecipeError`."""
    return _load(name_or_path, overrides, (part, tuple(step_names)))


def _load(name_or_path: str, overrides: Mapping[str, str] | None, part: tuple[str, tuple[str, ...]] | None) -> Recipe:
    built_in = name_or_path in BUILT_IN_RECIPES
    if built_in:
        path, base = RECIPES_DIR / f"{name_or_path}.toml", Path.cwd()
    else:
        path = Path(name_or_path).expanduser()
        try:
            exists = path.exists()
        except (OSError, ValueError):  # a NUL in the path, a name too long...
            exists = False
        if not exists:
            raise RecipeNotFound(name=name_or_path, known=", ".join(BUILT_IN_RECIPES), source=name_or_path)
        base = path.resolve().parent
    source = str(path)
    text = _read_text(path, source)
    keep: frozenset[str] | None = None
    if part is not None:
        keep = frozenset(part[1])
        named = [t.get("name") for t in _step_tables(text)]
        overrides = {  # another part's step's overrides are that part's; an unknown step's are still refused
            key: value
            for key, value in (overrides or {}).items()
            if key.partition(".")[0] in keep or key.partition(".")[0] not in named
        }
    recipe = parse_recipe(text, source, base, overrides or {}, keep=keep)
    if not built_in and recipe.name in BUILT_IN_RECIPES:
        own = _built_in_steps(recipe.name)
        if [t.get("name") for t in _step_tables(text)] != own:
            raise RecipeTakesBuiltInName(where=source, source=source, line=None, name=recipe.name, steps=", ".join(own))
    if part is not None:
        _part_steps(recipe.name, part[0], part[1], [t.get("name") for t in _step_tables(text)], source)
        name = f"{recipe.name}/{part[0]}"
        digest = recipe_digest(name, recipe.read_only, recipe.steps)
        return Recipe(name, recipe.description, recipe.steps, source, digest, recipe.read_only)
    return recipe


def recipe_outline(name_or_path: str) -> Recipe | None:
    """The recipe as far as its name, description and steps go (no setting checked): what a console asks (whose
    roles may run it) before the site settings are given.  None when it cannot be read or parsed (loading it says
    why); the file is read as :func:`load_recipe` reads it (a regular file of at most 1 MiB, never a FIFO)."""
    path = RECIPES_DIR / f"{name_or_path}.toml" if name_or_path in BUILT_IN_RECIPES else Path(name_or_path)
    try:
        text = _read_text(path, name_or_path)
        document = tomllib.loads(text)
        steps = tuple(RecipeStep(str(t["name"]), {}, 0) for t in _step_tables(text))
    except (RecipeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return None
    name = str(document.get("name", name_or_path))
    return Recipe(name, str(document.get("description", "")), steps, str(path), "", bool(document.get("read_only")))


def _step_tables(text: str) -> list[dict[str, Any]]:
    """The ``[[step]]`` tables of a recipe text that parsed (for the names of all its steps)."""
    tables = tomllib.loads(text).get("step", [])
    return [t for t in tables if isinstance(t, dict)] if isinstance(tables, list) else []


def _part_steps(recipe: str, part: str, step_names: Sequence[str], known: Sequence[object], source: str) -> set[str]:
    """``step_names`` checked as a part of ``recipe`` named ``part`` (whose steps are ``known``)."""
    where = f"{source} ({recipe}/{part})"
    params: dict[str, Any] = {"where": where, "source": source, "line": None, "part": part}
    params["known"] = ", ".join(str(k) for k in known)
    if not isinstance(part, str) or not _RECIPE_NAME.fullmatch(part) or len(recipe) + 1 + len(part) > 64:
        raise RecipePartInvalid(**params, reason=N_("the part's name is not valid"))
    wanted = set(step_names)
    if not wanted:
        raise RecipePartInvalid(**params, reason=N_("a part needs at least one step"))
    if not wanted <= set(known):
        raise RecipePartInvalid(**params, reason=N_("it names a step the recipe does not have"))
    return wanted


def _built_in_steps(name: str) -> list[str]:
    """The step names of the built-in recipe ``name``, in order (its settings left as they are)."""
    document = tomllib.loads((RECIPES_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    return [str(table["name"]) for table in document["step"]]


def _read_text(path: Path, source: str) -> str:
    """The UTF-8 text of the regular file ``path`` of at most :data:`MAX_RECIPE_BYTES` (never a FIFO, a device)."""
    try:
        if not path.is_file():
            raise RecipeUnreadable(where=source, source=source, detail=_("not a regular file"))
        with path.open("rb") as file:
            data = file.read(MAX_RECIPE_BYTES + 1)
        if len(data) > MAX_RECIPE_BYTES:
            raise RecipeUnreadable(where=source, source=source, detail=_("larger than 1 MiB"))
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise RecipeUnreadable(where=source, source=source, detail=detail) from exc


def parse_recipe(
    text: str,
    source: str,
    base: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    keep: Collection[str] | None = None,
) -> Recipe:
    """Check the recipe ``text`` read from ``source``; FILE settings resolve against ``base``.  ``keep``: only these
    steps are checked and kept (a part of the recipe: :func:`load_recipe_part`); None: every step."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc)
        position = _TOML_POSITION.search(detail)
        line = int(position.group(1)) if position else None
        raise RecipeSyntax(
            where=_where(source, line), source=source, line=line, detail=_TOML_POSITION.sub("", detail)
        ) from None
    lines = _Lines.scan(text)
    name, description, read_only, tables = _top_level(document, source, lines)
    known = all_steps()
    steps: list[tuple[RecipeStep, type[Step]]] = []
    first_line: dict[str, int] = {}
    for index, table in enumerate(tables):
        line = lines.step(index)
        step_name = table.get("name")
        if not isinstance(step_name, str) or not step_name:
            where = _where(source, lines.key(index, "name"))
            raise RecipeMalformed(where=where, source=source, line=line, reason=N_("a [[step]] table needs a name"))
        if step_name not in known:
            raise UnknownRecipeStep(
                where=_where(source, lines.key(index, "name")),
                source=source,
                line=lines.key(index, "name"),
                step=step_name,
                known=", ".join(sorted(known)),
            )
        if step_name in first_line:
            raise DuplicateRecipeStep(
                where=_where(source, line), source=source, line=line, step=step_name, first=first_line[step_name]
            )
        first_line[step_name] = line
        if keep is not None and step_name not in keep:
            continue  # another part's step: its settings are that part's business
        cls = known[step_name]
        if read_only and not cls.read_only:
            raise ReadOnlyRecipeWrites(where=_where(source, line), source=source, line=line, step=step_name)
        given: dict[str, tuple[Any, str, int | None, Path]] = {}
        for key, value in table.items():
            if key != "name":
                key_line = lines.key(index, key)
                given[key] = (value, _where(source, key_line), key_line, base)
        steps.append((RecipeStep(step_name, _given_settings(given, cls, step_name, source), line), cls))
    by_name = {step.name: (index, cls) for index, (step, cls) in enumerate(steps)}
    settings = [dict(step.settings) for step, _cls in steps]
    for key, raw in (overrides or {}).items():
        step_name, setting, value = _override(key, raw, by_name, name)
        index, cls = by_name[step_name]
        where = f"--set {key}={raw}"
        kind = _setting(cls, step_name, setting, where, source, None).kind
        if kind in (SettingKind.STRING, SettingKind.FILE) and not isinstance(value, str):
            value = raw  # a label such as 2024, true or 2026-01-01 is text to a text setting
        settings[index][setting] = _checked(cls, step_name, setting, value, where, source, None, Path.cwd())
    done = tuple(
        RecipeStep(step.name, _completed(cls, step.name, settings[i], source, step.line), step.line)
        for i, (step, cls) in enumerate(steps)
    )
    return Recipe(name, description, done, source, recipe_digest(name, read_only, done), read_only)


def _top_level(document: dict[str, Any], source: str, lines: _Lines) -> tuple[str, str, bool, list[dict[str, Any]]]:
    def malformed(key: str, reason: str) -> RecipeMalformed:
        line = lines.top.get(key)
        return RecipeMalformed(where=_where(source, line), source=source, line=line, reason=reason)

    for key in document:
        if key not in _TOP_KEYS:
            raise malformed(key, N_("a recipe has no key of that name (name, description, read_only, [[step]])"))
    name = document.get("name")
    if not isinstance(name, str) or not _RECIPE_NAME.fullmatch(name):
        raise malformed("name", N_("the recipe needs a name of 1 to 64 letters, digits, '.', '_' or '-'"))
    description = document.get("description", "")
    if not isinstance(description, str):
        raise malformed("description", N_("the description must be text"))
    read_only = document.get("read_only", False)
    if not isinstance(read_only, bool):
        raise malformed("read_only", N_("read_only must be true or false"))
    tables = document.get("step", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise malformed("step", N_("steps must be [[step]] tables"))
    if not tables:
        raise RecipeEmpty(where=source, source=source, line=None)
    return name, description, read_only, tables


def _given_settings(
    given: Mapping[str, tuple[Any, str, int | None, Path]], cls: type[Step], step: str, source: str
) -> dict[str, Any]:
    return {
        key: _checked(cls, step, key, value, where, source, line, base)
        for key, (value, where, line, base) in given.items()
    }


def _override(key: str, raw: object, steps: Mapping[str, object], recipe: str) -> tuple[str, str, Any]:
    text = f"{key}={raw}"
    step, dot, setting = key.partition(".")
    if not dot or not step or not setting or not isinstance(raw, str):
        raise BadOverride(text=text, reason=N_("not STEP.SETTING=VALUE"), source="--set", line=None)
    if step not in steps:
        raise UnknownRecipeStep(
            where=f"--set {text}", source="--set", line=None, step=step, known=", ".join(steps) or recipe
        )
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw  # not a TOML value: the text itself
    return step, setting, value


def _setting(cls: type[Step], step: str, name: str, where: str, source: str, line: int | None) -> Setting:
    for setting in cls.settings:
        if setting.name == name:
            return setting
    known = ", ".join(s.name for s in cls.settings) or _("none")
    raise UnknownSetting(where=where, source=source, line=line, step=step, setting=name, known=known)


def _checked(
    cls: type[Step], step: str, name: str, value: Any, where: str, source: str, line: int | None, base: Path
) -> Any:
    """``value`` of setting ``name`` checked against the step's declaration; a FILE made absolute."""
    setting = _setting(cls, step, name, where, source, line)
    params: dict[str, Any] = {"where": where, "source": source, "line": line, "step": step, "setting": name}
    kind = setting.kind
    if not _of_kind(kind, value):
        raise WrongSettingType(**params, kind=_KIND_NAMES[kind], value=_shown(value))
    numbers = (
        value if kind is SettingKind.NUMBERS else [value] if kind in (SettingKind.INTEGER, SettingKind.NUMBER) else []
    )
    if setting.minimum is not None:
        for number in numbers:
            if number < setting.minimum:
                raise SettingTooSmall(**params, minimum=_shown(setting.minimum), value=_shown(number))
    texts = value if kind is SettingKind.STRINGS else [value] if kind is SettingKind.STRING else []
    if setting.choices:
        for text in texts:
            if text not in setting.choices:
                raise SettingNotAChoice(**params, choices=", ".join(setting.choices), value=_shown(text))
    if kind is SettingKind.FILE:
        if value == "" and setting.default == "":
            return ""
        try:
            path = (base / Path(value).expanduser()).resolve()
            readable = bool(value) and path.is_file() and os.access(path, os.R_OK)
        except (OSError, ValueError):  # a NUL in the path, a loop of links, a name too long
            raise SettingFileMissing(**params, path=_shown(value)) from None
        if not readable:
            raise SettingFileMissing(**params, path=str(path) if value else "''")
        return str(path)
    return list(value) if isinstance(value, list) else value


def _of_kind(kind: SettingKind, value: Any) -> bool:
    def number(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        try:
            return math.isfinite(v)
        except OverflowError:  # an integer of hundreds of digits (TOML allows them)
            return False

    if kind is SettingKind.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool) and -_INTEGER_LIMIT <= value < _INTEGER_LIMIT
    if kind is SettingKind.NUMBER:
        return number(value)
    if kind is SettingKind.BOOLEAN:
        return isinstance(value, bool)
    if kind in (SettingKind.STRING, SettingKind.FILE):
        return isinstance(value, str)
    if kind is SettingKind.STRINGS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, list) and all(number(v) for v in value)  # NUMBERS


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _completed(cls: type[Step], step: str, given: dict[str, Any], source: str, line: int) -> dict[str, Any]:
    """Every setting of the step: those given, else their defaults; a REQUIRED one missing is refused."""
    complete: dict[str, Any] = {}
    for setting in cls.settings:
        if setting.name in given:
            complete[setting.name] = given[setting.name]
        elif setting.default is REQUIRED:
            example = "FILE" if setting.kind is SettingKind.FILE else "VALUE"
            raise MissingSetting(
                where=_where(source, line), source=source, line=line, step=step, setting=setting.name, example=example
            )
        else:
            default = setting.default
            complete[setting.name] = list(default) if isinstance(default, list | tuple) else default
    return complete
