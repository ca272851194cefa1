"""A unit's info as the console shows it: a dialog of what ``Station.info`` returned, known fields first."""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from i18n import N_, _

INFO_FIELDS: dict[str, str] = {
    "model": N_("Model:"),
    "serial": N_("Serial:"),
    "hardware_revision": N_("Hardware revision:"),
    "slots": N_("Firmware slots:"),
    "active_slot": N_("Active slot:"),
    "boot_count": N_("Boot count:"),
    "secure_element": N_("Secure element:"),
    "camera_module": N_("Camera module:"),
}


def format_info_value(value: object) -> str:
    """A unit-info value for people: slot maps as "a: 1.2.0, b: 1.1.0", None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {format_info_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(format_info_value(item) for item in value)
    return str(value)


class UnitInfoDialog(QDialog):
    """What ``Station.info`` returned for one unit; known fields first, anything else after."""

    def __init__(self, serial: str, info: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.serial = serial
        self.info = dict(info)
        self._captions: list[tuple[QLabel, str | None, str]] = []
        self._form = QFormLayout()
        ordered = [key for key in INFO_FIELDS if key in self.info] + sorted(
            key for key in self.info if key not in INFO_FIELDS
        )
        for key in ordered:
            caption = QLabel()
            value = QLabel(format_info_value(self.info[key]))
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setObjectName(f"info_{key}")
            self._captions.append((caption, INFO_FIELDS.get(key), key))
            self._form.addRow(caption, value)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addLayout(self._form)
        layout.addWidget(buttons)
        self.retranslate()

    def value_text(self, key: str) -> str:
        label = self.findChild(QLabel, f"info_{key}")
        return label.text() if label is not None else ""

    def retranslate(self) -> None:
        self.setWindowTitle(_("Unit {serial}", serial=self.serial))
        for caption, msgid, key in self._captions:
            caption.setText(_(msgid) if msgid else f"{key}:")
