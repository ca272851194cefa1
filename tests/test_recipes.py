"""Recipes: the TOML format, every refusal with its source and line, overrides, FILE paths, digests, built-ins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from i18n import _
from provisioning import recipes
from provisioning.recipes import (
    BUILT_IN_RECIPES,
    BadOverride,
    DuplicateRecipeStep,
    MissingSetting,
    ReadOnlyRecipeWrites,
    RecipeEmpty,
    RecipeError,
    RecipeMalformed,
    RecipeNotFound,
    RecipeSyntax,
    RecipeUnreadable,
    SettingFileMissing,
    SettingNotAChoice,
    SettingTooSmall,
    UnknownRecipeStep,
    UnknownSetting,
    WrongSettingType,
    load_recipe,
    recipe_outline,
)
from provisioning.steps import REQUIRED, STEPS, OnceStep, Setting, SettingKind, Step, StepOutcome, UnitJob, all_steps

K = SettingKind


class _Fake(Step):
    def run(self, job: UnitJob) -> StepOutcome:
        raise AssertionError("recipes never run steps")


class _FakeOnce(OnceStep):
    def run(self, job: UnitJob) -> StepOutcome:
        raise AssertionError("recipes never run steps")

    def done_before(self, job: UnitJob) -> StepOutcome | None:
        return None

    def settle(self, job: UnitJob) -> StepOutcome | None:
        return None


def _fake(name: str, settings: tuple[Setting, ...] = (), *, once: bool = False, read_only: bool = False) -> type[Step]:
    base: type[Step] = _FakeOnce if once else _Fake
    attrs: dict[str, Any] = {"name": name, "label": name, "settings": settings, "read_only": read_only}
    return type(f"Fake_{name.replace('-', '_')}", (base,), attrs)


TEST_STEPS = (
    _fake("t-flash", (Setting("bundle", K.FILE),)),
    _fake("t-cal", (Setting("views", K.INTEGER, 40, minimum=12),)),
    _fake("t-depth", (Setting("distances", K.NUMBERS, (), minimum=0.2),)),
    _fake("t-label", (Setting("formats", K.STRINGS, ("png", "pdf"), choices=("png", "pdf", "svg")),)),
    _fake("t-check", (Setting("wall", K.BOOLEAN, False), Setting("distance", K.NUMBER, 0, minimum=0)), read_only=True),
    _fake("t-pay", (Setting("presentation", K.STRING, "live", choices=("live", "photo")),)),
    _fake("t-keys", (Setting("bdk", K.STRING),), once=True),
    _fake("t-read", (Setting("bundle", K.FILE, ""),), read_only=True),
)


@pytest.fixture
def fake_steps() -> Iterator[None]:
    """The test steps registered for one test, then removed again."""
    all_steps()  # the real ones first, so that removing ours leaves them in place
    for cls in TEST_STEPS:
        assert cls.name not in STEPS
        STEPS[cls.name] = cls
    try:
        yield
    finally:
        for cls in TEST_STEPS:
            STEPS.pop(cls.name, None)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "fw" / "df2.naiadfw"
    path.parent.mkdir()
    path.write_bytes(b"bundle")
    return path


def _write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
name = "bench"
description = "A test recipe"

[[step]]
name = "t-flash"
bundle = "fw/df2.naiadfw"

[[step]]
name = "t-cal"
views = 24

[[step]]
name = "t-label"
"""


def test_a_good_recipe_loads_complete_with_defaults_and_absolute_files(
    fake_steps: None, tmp_path: Path, bundle: Path
) -> None:
    recipe = load_recipe(str(_write(tmp_path, GOOD)))
    assert (recipe.name, recipe.description, recipe.read_only) == ("bench", "A test recipe", False)
    assert [(s.name, s.line) for s in recipe.steps] == [("t-flash", 4), ("t-cal", 8), ("t-label", 12)]
    assert recipe.steps[0].settings == {"bundle": str(bundle.resolve())}
    assert recipe.steps[1].settings == {"views": 24}
    assert recipe.steps[2].settings == {"formats": ["png", "pdf"]}
    assert recipe.source == str(tmp_path / "r.toml")
    assert len(recipe.digest) == 64 and recipe.as_dict()["digest"] == recipe.digest


def test_the_digest_follows_what_runs_and_only_that(fake_steps: None, tmp_path: Path, bundle: Path) -> None:
    first = load_recipe(str(_write(tmp_path, GOOD)))
    again = load_recipe(str(_write(tmp_path, "# a comment\n" + GOOD.replace("A test recipe", "Other words"))))
    assert again.digest == first.digest
    changed = load_recipe(str(_write(tmp_path, GOOD)), {"t-cal.views": "30"})
    assert changed.steps[1].settings == {"views": 30} and changed.digest != first.digest


def _error(tmp_path: Path, text: str, overrides: dict[str, str] | None = None) -> RecipeError:
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path), overrides)
    return caught.value


@pytest.mark.parametrize(
    ("text", "error", "line", "words"),
    [
        ('name = "x"\n[[step]]\nname = "t-cal"\nviews = \n', RecipeSyntax, 4, ["Invalid value"]),
        ('name = "x"\n\n[[step]]\nname = "t-nope"\n', UnknownRecipeStep, 4, ["t-nope", "t-cal"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\n\nview = 30\n', UnknownSetting, 5, ["view", "views"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\nviews = "40"\n', WrongSettingType, 4, ["t-cal.views", "whole number"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\nviews = 40.0\n', WrongSettingType, 4, ["whole number", "40.0"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\nviews = true\n', WrongSettingType, 4, ["true"]),
        ('name = "x"\n[[step]]\nname = "t-check"\ndistance = "far"\n', WrongSettingType, 4, ["a number"]),
        ('name = "x"\n[[step]]\nname = "t-check"\nwall = 1\n', WrongSettingType, 4, ["true or false"]),
        ('name = "x"\n[[step]]\nname = "t-label"\nformats = "png"\n', WrongSettingType, 4, ["a list of texts"]),
        ('name = "x"\n[[step]]\nname = "t-depth"\ndistances = [0.5, "1"]\n', WrongSettingType, 4, ["list of numbers"]),
        ('name = "x"\n[[step]]\nname = "t-flash"\nbundle = 3\n', WrongSettingType, 4, ["path of a file"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\nviews = 6\n', SettingTooSmall, 4, ["at least 12", "6"]),
        ('name = "x"\n[[step]]\nname = "t-depth"\ndistances = [0.5, 0.1]\n', SettingTooSmall, 4, ["0.2", "0.1"]),
        ('name = "x"\n[[step]]\nname = "t-pay"\npresentation = "mask"\n', SettingNotAChoice, 4, ["live, photo"]),
        ('name = "x"\n[[step]]\nname = "t-label"\nformats = ["png", "gif"]\n', SettingNotAChoice, 4, ["gif"]),
        ('name = "x"\n\n[[step]]\nname = "t-keys"\n', MissingSetting, 3, ["t-keys", "--set t-keys.bdk=VALUE"]),
        ('name = "x"\n[[step]]\nname = "t-flash"\n', MissingSetting, 2, ["--set t-flash.bundle=FILE"]),
        ('name = "x"\n[[step]]\nname = "t-flash"\nbundle = "nowhere.bin"\n', SettingFileMissing, 4, ["nowhere.bin"]),
        ('name = "x"\n[[step]]\nname = "t-flash"\nbundle = ""\n', SettingFileMissing, 4, ["''"]),
        (
            'name = "x"\nread_only = true\n[[step]]\nname = "t-check"\n[[step]]\nname = "t-cal"\n',
            ReadOnlyRecipeWrites,
            5,
            ["t-cal", "read only"],
        ),
        (
            'name = "x"\n[[step]]\nname = "t-cal"\n[[step]]\nname = "t-label"\n\n[[step]]\nname = "t-cal"\n',
            DuplicateRecipeStep,
            7,
            ["t-cal", "line 2"],
        ),
        ('name = "x"\ndescription = "nothing"\n', RecipeEmpty, None, ["no step"]),
        ('name = "x"\nstep = []\n', RecipeEmpty, None, ["no step"]),
        ('description = "no name"\n[[step]]\nname = "t-cal"\n', RecipeMalformed, None, ["needs a name"]),
        ('name = "x y"\n[[step]]\nname = "t-cal"\n', RecipeMalformed, 1, ["name of 1 to 64"]),
        ('name = "x"\nreadonly = true\n[[step]]\nname = "t-cal"\n', RecipeMalformed, 2, ["no key of that name"]),
        ('name = "x"\nread_only = "yes"\n[[step]]\nname = "t-cal"\n', RecipeMalformed, 2, ["true or false"]),
        ('name = "x"\n[[step]]\nviews = 20\n', RecipeMalformed, 2, ["needs a name"]),
        ('name = "x"\nstep = "t-cal"\n', RecipeMalformed, 2, ["[[step]] tables"]),
        # where TOML gives no line, the scan finds it: headers, inline steps, dotted keys, multi-line strings
        ('name = "x"\n\n[step]\nname = "t-cal"\n', RecipeMalformed, 3, ["[[step]] tables"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\n\n[other]\nx = 1\n', RecipeMalformed, 5, ["no key of that name"]),
        ('name = "x"\n\nstep = [{name = "t-nope"}]\n', UnknownRecipeStep, 3, ["t-nope"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\n\nviews.a = 1\n', WrongSettingType, 5, ["whole number"]),
        (
            'name = "x"\ndescription = """\n[[step]]\nname = "t-cal"\n"""\n[[step]]\nname = "t-cal"\n\nview = 1\n',
            UnknownSetting,
            9,
            ["view"],
        ),
        ("name = 'x'\ndescription = '''\nvia = 1\n'''\n[[step]]\nname = 't-nope'\n", UnknownRecipeStep, 6, ["t-nope"]),
        # hostile values are refusals, never a traceback
        ('name = "x"\n[[step]]\nname = "t-check"\ndistance = ' + "9" * 400 + "\n", WrongSettingType, 4, ["a number"]),
        ('name = "x"\n[[step]]\nname = "t-cal"\nviews = ' + "9" * 30 + "\n", WrongSettingType, 4, ["whole number"]),
        ('name = "x"\n[[step]]\nname = "t-flash"\nbundle = "a\\u0000b"\n', SettingFileMissing, 4, ["t-flash.bundle"]),
    ],
)
def test_each_mistake_is_refused_with_its_line_and_reason(
    fake_steps: None, tmp_path: Path, text: str, error: type[RecipeError], line: int | None, words: list[str]
) -> None:
    found = _error(tmp_path, text)
    assert type(found) is error
    assert found.line == line
    shown = str(found)
    where = f"{tmp_path / 'r.toml'}, line {line}" if line else str(tmp_path / "r.toml")
    assert shown.startswith(where + ":"), shown
    for word in words:
        assert word in shown or word in (found.remedy_text or ""), (word, shown, found.remedy_text)
    assert found.remedy_text  # every refusal says what to do
    assert found.as_dict()["error"] == error.__name__


def test_files_resolve_against_the_recipe_folder_and_overrides_against_the_current_one(
    fake_steps: None, tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "recipes"
    sub.mkdir()
    text = GOOD.replace("fw/df2.naiadfw", "../fw/df2.naiadfw")
    assert load_recipe(str(_write(sub, text))).steps[0].settings["bundle"] == str(bundle.resolve())
    other = tmp_path / "other.bin"
    other.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(str(_write(sub, text)), {"t-flash.bundle": "other.bin"})
    assert recipe.steps[0].settings["bundle"] == str(other.resolve())
    with pytest.raises(SettingFileMissing) as caught:
        load_recipe(str(_write(sub, text)), {"t-flash.bundle": "fw-missing.bin"})
    assert str(caught.value).startswith("--set t-flash.bundle=fw-missing.bin:")
    assert caught.value.line is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_setting_file_is_refused(fake_steps: None, tmp_path: Path, bundle: Path) -> None:
    bundle.chmod(0)
    try:
        assert type(_error(tmp_path, GOOD)) is SettingFileMissing
    finally:
        bundle.chmod(0o644)


def test_overrides_are_toml_values_else_text(fake_steps: None, tmp_path: Path, bundle: Path) -> None:
    path = str(_write(tmp_path, GOOD))
    recipe = load_recipe(path, {"t-cal.views": "16", "t-label.formats": '["svg"]'})
    assert recipe.steps[1].settings == {"views": 16} and recipe.steps[2].settings == {"formats": ["svg"]}
    text = 'name = "x"\n[[step]]\nname = "t-pay"\n[[step]]\nname = "t-keys"\n[[step]]\nname = "t-check"\n'
    path = str(_write(tmp_path, text, "p.toml"))
    recipe = load_recipe(path, {"t-pay.presentation": "photo", "t-keys.bdk": "demo-bdk", "t-check.distance": "0.6"})
    assert [s.settings for s in recipe.steps] == [
        {"presentation": "photo"},
        {"bdk": "demo-bdk"},
        {"wall": False, "distance": 0.6},
    ]


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"t-cal": "20"}, BadOverride, ["STEP.SETTING=VALUE"]),
        ({".views": "20"}, BadOverride, ["STEP.SETTING=VALUE"]),
        ({"t-pay.presentation": "live"}, UnknownRecipeStep, ["t-pay", "t-flash"]),
        ({"t-cal.vews": "20"}, UnknownSetting, ["vews", "views"]),
        ({"t-cal.views": "many"}, WrongSettingType, ["'many'"]),
        ({"t-cal.views": "3"}, SettingTooSmall, ["at least 12"]),
        ({"t-label.formats": '["tiff"]'}, SettingNotAChoice, ["tiff"]),
    ],
)
def test_bad_overrides_are_refused_naming_the_option(
    fake_steps: None,
    tmp_path: Path,
    bundle: Path,
    overrides: dict[str, str],
    error: type[RecipeError],
    words: list[str],
) -> None:
    found = _error(tmp_path, GOOD, overrides)
    assert type(found) is error
    key, value = next(iter(overrides.items()))
    assert str(found).startswith(f"--set {key}={value}:")
    for word in words:
        assert word in str(found) or word in (found.remedy_text or "")


def test_a_recipe_that_is_no_file_or_no_text_is_refused(fake_steps: None, tmp_path: Path) -> None:
    with pytest.raises(RecipeNotFound) as caught:
        load_recipe(str(tmp_path / "missing.toml"))
    assert "distributor-bulk" in (caught.value.remedy_text or "")
    with pytest.raises(RecipeUnreadable):
        load_recipe(str(tmp_path))  # a folder
    binary = tmp_path / "b.toml"
    binary.write_bytes(b'name = "\xff"\n')
    with pytest.raises(RecipeUnreadable):
        load_recipe(str(binary))


# -- the built-in recipes ----------------------------------------------------------------------------

# CONTRACT.md's step tables: name -> (settings by name: (kind, default), once, read_only)
CONTRACT: dict[str, tuple[dict[str, tuple[SettingKind, Any]], bool, bool]] = {
    "flash": ({"bundle": (K.FILE, REQUIRED)}, False, False),
    "inject": ({"bdk": (K.STRING, REQUIRED)}, True, False),
    "calibrate": ({"views": (K.INTEGER, 40)}, False, False),
    "depth-quality": ({"distances": (K.NUMBERS, [])}, False, False),
    "register-inventory": ({}, True, False),
    "label": ({"formats": (K.STRINGS, ["png", "pdf"])}, False, False),
    "firmware-update": ({"bundle": (K.FILE, REQUIRED)}, False, False),
    "field-check": ({"wall": (K.BOOLEAN, False), "distance": (K.NUMBER, 0)}, False, True),
    "face-pay-check": ({"presentation": (K.STRING, "live"), "frame_sets": (K.INTEGER, 3)}, False, False),
    "bind": ({}, True, False),
    "activate": ({}, True, False),
    "subsidy-enroll": ({"program": (K.STRING, "")}, True, False),
    "report": ({"formats": (K.STRINGS, ["html", "pdf", "json", "csv"])}, False, False),
    "unit-info": ({}, False, True),
    "boot-history": ({}, False, True),
    "firmware-slots": ({"bundle": (K.FILE, "")}, False, True),
    "key-status": ({}, False, True),
    "camera-self-test": ({}, False, True),
    "link-check": ({}, False, True),
    "logs": ({}, False, True),
    "verdict": ({}, False, True),
}
BUILT_IN_STEPS = {
    "distributor-bulk": ["flash", "inject", "calibrate", "depth-quality", "register-inventory", "label"],
    "installer-onsite": [
        "firmware-update", "field-check", "face-pay-check", "bind", "activate", "subsidy-enroll", "report",
    ],
    "support-diagnose": [
        "unit-info", "boot-history", "firmware-slots", "key-status", "field-check", "camera-self-test", "link-check",
        "logs", "verdict",
    ],
}  # fmt: skip


@pytest.fixture
def contract_steps() -> Iterator[list[str]]:
    """The built-in steps: the real ones where their modules register them, else stand-ins shaped exactly as
    CONTRACT.md says (removed again afterwards); yields the names that are stand-ins."""
    real = all_steps()
    standing_in = []
    for name, (settings, once, read_only) in CONTRACT.items():
        if name not in real:
            declared = tuple(Setting(n, kind, default) for n, (kind, default) in settings.items())
            STEPS[name] = _fake(name, declared, once=once, read_only=read_only)
            standing_in.append(name)
    try:
        yield standing_in
    finally:
        for name in standing_in:
            STEPS.pop(name, None)


def test_the_real_steps_that_exist_declare_the_contracts_settings(contract_steps: list[str]) -> None:
    """The contract's settings, kinds and defaults exactly; a step may add settings of its own with a default."""
    for name, (settings, once, read_only) in CONTRACT.items():
        if name in contract_steps:
            continue
        cls = STEPS[name]
        declared = {
            s.name: (s.kind, list(s.default) if isinstance(s.default, tuple) else s.default) for s in cls.settings
        }
        assert {k: v for k, v in declared.items() if k in settings} == settings, name
        assert all(default is not REQUIRED for k, (_kind, default) in declared.items() if k not in settings), name
        assert issubclass(cls, OnceStep) == once, name
        assert cls.read_only == read_only, name


def test_built_ins_load_by_name_with_their_site_settings(
    contract_steps: list[str], bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bundle.parent)
    bulk = load_recipe("distributor-bulk", {"flash.bundle": bundle.name, "inject.bdk": "demo-bdk"})
    assert [s.name for s in bulk.steps] == BUILT_IN_STEPS["distributor-bulk"]
    assert bulk.steps[0].settings == {"bundle": str(bundle.resolve())}
    assert bulk.steps[1].settings == {"bdk": "demo-bdk"}
    assert bulk.steps[2].settings == {"views": 40}
    onsite = load_recipe("installer-onsite", {"firmware-update.bundle": str(bundle)})
    assert [s.name for s in onsite.steps] == BUILT_IN_STEPS["installer-onsite"]
    diagnose = load_recipe("support-diagnose")
    assert [s.name for s in diagnose.steps] == BUILT_IN_STEPS["support-diagnose"]
    assert diagnose.read_only and not bulk.read_only and not onsite.read_only
    assert all(STEPS[s.name].read_only for s in diagnose.steps)
    for recipe in (bulk, onsite, diagnose):
        assert recipe.description == BUILT_IN_RECIPES[recipe.name]  # the catalog carries it
        assert recipe.title() == _(recipe.description)
        assert Path(recipe.source).parent == recipes.RECIPES_DIR


def test_a_built_in_leaves_the_site_settings_to_the_station(contract_steps: list[str]) -> None:
    with pytest.raises(MissingSetting) as caught:
        load_recipe("distributor-bulk")
    assert "--set flash.bundle=FILE" in (caught.value.remedy_text or "")
    assert caught.value.source.endswith("distributor-bulk.toml") and caught.value.line == 7
    with pytest.raises(MissingSetting) as caught:
        load_recipe("installer-onsite")
    assert "--set firmware-update.bundle=FILE" in (caught.value.remedy_text or "")


def test_a_text_override_that_looks_like_another_toml_value_stays_text(
    fake_steps: None, tmp_path: Path, bundle: Path
) -> None:
    text = 'name = "x"\n[[step]]\nname = "t-keys"\n[[step]]\nname = "t-cal"\n'
    path = str(_write(tmp_path, text, "p.toml"))
    for label in ("2024", "true", "2026-01-01", "1.5"):
        assert load_recipe(path, {"t-keys.bdk": label}).steps[0].settings == {"bdk": label}
    assert load_recipe(path, {"t-keys.bdk": "k", "t-cal.views": "16"}).steps[1].settings == {"views": 16}


def test_a_fifo_a_device_or_a_huge_file_is_refused_unread(fake_steps: None, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(RecipeUnreadable):
        load_recipe(str(fifo))  # would block forever if it were opened
    with pytest.raises(RecipeUnreadable):
        load_recipe("/dev/zero")  # would read without end
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * recipes.MAX_RECIPE_BYTES + b"\n")
    with pytest.raises(RecipeUnreadable) as caught:
        load_recipe(str(huge))
    assert "1 MiB" in str(caught.value)
    with pytest.raises(RecipeNotFound):
        load_recipe("a\x00b.toml")


def test_a_recipe_file_may_not_take_a_built_in_name_with_other_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fw.naiadfw").write_bytes(b"bundle")
    trimmed = _write(tmp_path, 'name = "distributor-bulk"\n[[step]]\nname = "flash"\nbundle = "fw.naiadfw"\n')
    with pytest.raises(recipes.RecipeTakesBuiltInName) as caught:
        load_recipe(str(trimmed))
    assert "distributor-bulk" in str(caught.value) and "inject" in (caught.value.remedy_text or "")
    own = (recipes.RECIPES_DIR / "support-diagnose.toml").read_text(encoding="utf-8")
    copy = _write(tmp_path, own, "copy.toml")  # the built-in's own steps under its name: allowed
    assert load_recipe(str(copy)).name == "support-diagnose"
    renamed = _write(tmp_path, 'name = "my-flash"\n[[step]]\nname = "flash"\nbundle = "fw.naiadfw"\n', "mine.toml")
    assert load_recipe(str(renamed)).name == "my-flash"


def test_an_outline_gives_the_steps_without_settings_and_never_reads_a_fifo(tmp_path: Path) -> None:
    outline = recipe_outline("distributor-bulk")  # its bundle and BDK are left to the site: still outlined
    assert outline is not None and [s.name for s in outline.steps][:2] == ["flash", "inject"]
    fifo = tmp_path / "recipe.toml"
    os.mkfifo(fifo)
    assert recipe_outline(str(fifo)) is None  # refused as not a regular file, not waited on
    assert recipe_outline(str(tmp_path / "missing.toml")) is None
