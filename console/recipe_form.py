"""A recipe's site settings as a small form, built from its steps' :class:`~provisioning.steps.Setting` metadata.

The settings a recipe leaves to the site (``flash.bundle``, ``inject.bdk`` for ``distributor-bulk``: their default
is ``REQUIRED`` and the file gives none) come first and are marked; the others follow, empty meaning the recipe's
own value.  A file setting gets *Browse…*.  Values are text, as ``naiad provision --set STEP.SETTING=VALUE`` takes
them: :func:`provisioning.recipes.load_recipe` checks them, so the form never judges a value itself.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from i18n import _

RECIPE_FILE_FILTER = "TOML (*.toml);;*"


@dataclass(frozen=True)
class FormField:
    """One setting of the form: ``step.setting``, its metadata, whether the site must give it, and the file's value."""

    key: str
    step: str
    name: str
    kind: str
    help: str
    required: bool
    given: Any = None
    """The value the recipe file gives (None: none), shown as the placeholder."""


def recipe_fields(source: str) -> list[FormField]:
    """The settings of the recipe at ``source`` (a built-in's name or a file's path), the ones the site must give
    first; [] when the file cannot be read (loading it says why)."""
    from provisioning.recipes import BUILT_IN_RECIPES, RECIPES_DIR
    from provisioning.steps import REQUIRED, STEPS, all_steps

    path = RECIPES_DIR / f"{source}.toml" if source in BUILT_IN_RECIPES else Path(source)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    if not STEPS:
        all_steps()
    tables = document.get("step", [])
    fields: list[FormField] = []
    for table in tables if isinstance(tables, list) else []:
        step = table.get("name") if isinstance(table, dict) else None
        cls = STEPS.get(step) if isinstance(step, str) else None
        if cls is None or not isinstance(step, str):
            continue
        for setting in cls.settings:
            given = table.get(setting.name)
            required = setting.default is REQUIRED and given is None
            fields.append(
                FormField(
                    f"{step}.{setting.name}", step, setting.name, str(setting.kind), setting.help, required, given
                )
            )
    return sorted(fields, key=lambda f: not f.required)  # stable: the recipe's order within each group


class RecipeForm(QWidget):
    """The site settings of one recipe; ``edited`` when a value changes (GUI thread only)."""

    edited = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: list[FormField] = []
        self.edits: dict[str, QLineEdit] = {}
        self._captions: dict[str, QLabel] = {}
        self._browse: dict[str, QPushButton] = {}
        self._layout = QFormLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def show_recipe(self, source: str, values: dict[str, str]) -> None:
        """Rebuild the form for the recipe at ``source`` with the kept ``values``."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self.edits.clear()
        self._captions.clear()
        self._browse.clear()
        self.fields = recipe_fields(source)
        for item in self.fields:
            edit = QLineEdit(values.get(item.key, ""))
            edit.setObjectName(f"setting:{item.key}")
            edit.textEdited.connect(lambda _text: self.edited.emit())
            self.edits[item.key] = edit
            caption = self._captions[item.key] = QLabel()
            if item.kind == "file":
                row = QHBoxLayout()
                row.addWidget(edit, 1)
                button = self._browse[item.key] = QPushButton()
                button.clicked.connect(lambda _checked=False, key=item.key: self._choose_file(key))
                row.addWidget(button)
                self._layout.addRow(caption, row)
            else:
                self._layout.addRow(caption, edit)
        self.setVisible(bool(self.fields))
        self.retranslate()

    def values(self) -> dict[str, str]:
        """The values typed, by ``step.setting`` (empty ones left out: the recipe's own then)."""
        return {key: edit.text().strip() for key, edit in self.edits.items() if edit.text().strip()}

    def missing(self) -> list[str]:
        """The settings the site must give and has not."""
        values = self.values()
        return [f.key for f in self.fields if f.required and f.key not in values]

    def set_values(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            if key in self.edits:
                self.edits[key].setText(value)
        self.edited.emit()

    def retranslate(self) -> None:
        for item in self.fields:
            caption = _("{setting} (required):", setting=item.key) if item.required else f"{item.key}:"
            self._captions[item.key].setText(caption)
            tip = _(item.help) if item.help else ""
            self._captions[item.key].setToolTip(tip)
            edit = self.edits[item.key]
            edit.setToolTip(tip)
            if item.required:
                edit.setPlaceholderText(_("Needed before Start"))
            elif item.given is not None:
                edit.setPlaceholderText(_("The recipe's: {value}", value=str(item.given)))
            else:
                edit.setPlaceholderText(_("Default"))
        for button in self._browse.values():
            button.setText(_("Browse…"))

    def _choose_file(self, key: str) -> None:
        edit = self.edits[key]
        path, _chosen = QFileDialog.getOpenFileName(self, key, edit.text() or str(Path.home()))
        if path:
            edit.setText(path)
            self.edited.emit()
