"""The bench's "Inject keys" dialog: the units, the BDK to derive from, and the key store to open.

The BDK list comes from the ledger as a job on the console's workers.  The key store is the software store
(its passphrase) or the PKCS#11 token of the settings or the environment (its user PIN); the dialog only collects
the secret, hidden as it is typed: the store is opened on a worker when the run starts
(:mod:`console.inject_run`).  Closing the dialog, by Start or Cancel, empties the secret field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from i18n import N_, _

from .unit_picker import StartFoot, UnitChoice, UnitPicker, attached_and_idle
from .workers import Job, Workers

if TYPE_CHECKING:
    from keys.store_pkcs11 import Pkcs11Config

LOG = logging.getLogger(__name__)

SOFTWARE = "software"
PKCS11 = "pkcs11"
NOT_IN_RUN_MODE = N_("Not in run mode")


@dataclass(frozen=True)
class KeyStoreChoice:
    """Which key store to open and its passphrase or PIN (kept out of ``repr``, so out of any log line)."""

    kind: str
    secret: str = field(repr=False)
    pkcs11: Pkcs11Config | None = None


@dataclass(frozen=True)
class InjectRequest:
    """One press of "Inject keys": these units get Initial Keys of this BDK from this key store."""

    bdk_label: str
    serials: tuple[str, ...]
    store: KeyStoreChoice


def pkcs11_from_environment() -> Pkcs11Config | None:
    """The PKCS#11 module and token named in the environment (``NAIAD_PKCS11_MODULE``, ``NAIAD_PKCS11_TOKEN``)."""
    from keys.store_pkcs11 import Pkcs11Config

    return Pkcs11Config.from_environment()


class InjectDialog(QDialog):
    """Tick units, choose the BDK and the key store, type its secret, press Start: ``start_requested(request)``."""

    start_requested = pyqtSignal(object)

    def __init__(
        self,
        units: Sequence[UnitChoice] = (),
        parent: QWidget | None = None,
        *,
        workers: Workers,
        load_bdks: Callable[[], list[str]],
        pkcs11: Pkcs11Config | None = None,
        preferred: str = SOFTWARE,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("injectDialog")
        self._pkcs11 = pkcs11
        self.bdks: list[str] | None = None
        self.bdk_error: BaseException | None = None

        self.picker = UnitPicker(self.unavailable_reason)
        self.keys_box = QGroupBox()
        self.bdk_caption, self.store_caption, self.secret_caption = QLabel(), QLabel(), QLabel()
        self.bdk_combo = QComboBox()
        self.bdk_combo.currentIndexChanged.connect(lambda _index: self._refresh())
        self.software_radio, self.pkcs11_radio = QRadioButton(), QRadioButton()
        self.store_group = QButtonGroup(self)
        self.store_group.addButton(self.software_radio)
        self.store_group.addButton(self.pkcs11_radio)
        self.software_radio.setChecked(True)
        self.pkcs11_radio.setEnabled(pkcs11 is not None)
        self.pkcs11_radio.setChecked(preferred == PKCS11 and pkcs11 is not None)  # the station's key store first
        self.store_group.buttonToggled.connect(lambda _button, _on: self._store_changed())
        self.token_label = QLabel()
        self.token_label.setWordWrap(True)
        store_column = QVBoxLayout()
        store_row = QHBoxLayout()
        store_row.addWidget(self.software_radio)
        store_row.addWidget(self.pkcs11_radio)
        store_row.addStretch(1)
        store_column.addLayout(store_row)
        store_column.addWidget(self.token_label)
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.textChanged.connect(lambda _text: self._refresh())
        form = QFormLayout(self.keys_box)
        form.addRow(self.bdk_caption, self.bdk_combo)
        form.addRow(self.store_caption, store_column)
        form.addRow(self.secret_caption, self.secret_edit)

        self.foot = StartFoot()
        self.hint_label = self.foot.hint_label
        self.start_button, self.cancel_button = self.foot.start_button, self.foot.cancel_button
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.picker, 1)
        layout.addWidget(self.keys_box)
        layout.addWidget(self.foot)
        self.picker.set_units(units)
        self.picker.changed.connect(self._refresh)
        self.retranslate()
        self.resize(640, 560)
        job = Job(lambda _listener: load_bdks(), name="listing the BDKs")
        job.succeeded.connect(self._on_bdks)
        job.failed.connect(self._on_bdks_failed)
        workers.start(job)

    # -- what can be chosen --------------------------------------------------------------------------

    def unavailable_reason(self, unit: UnitChoice) -> str | None:
        """The msgid of why ``unit`` cannot get keys now (keys go over the management link: run mode), or None."""
        reason = attached_and_idle(unit)
        if reason is None and unit.mode != "run":
            return NOT_IN_RUN_MODE
        return reason

    def set_units(self, units: Sequence[UnitChoice]) -> None:
        """The bench changed: list ``units``, keeping the operator's ticks for units already listed."""
        self.picker.set_units(units)

    def _on_bdks(self, labels: object) -> None:
        self.bdks = [str(label) for label in labels] if isinstance(labels, list) else []
        self.bdk_combo.clear()
        self.bdk_combo.addItems(self.bdks)
        self._refresh()

    def _on_bdks_failed(self, error: BaseException) -> None:
        self.bdk_error = error
        self._refresh()

    def store_kind(self) -> str:
        return PKCS11 if self.pkcs11_radio.isChecked() else SOFTWARE

    # -- starting --------------------------------------------------------------------------------------

    def blocker(self) -> str | None:
        """The msgid of why Start is off; None when it is on."""
        if self.bdk_error is not None:
            return N_("The BDKs cannot be listed.")
        if self.bdks is None:
            return N_("Reading the BDKs from the ledger…")
        if not self.bdks:
            return N_("The ledger has no BDK: load one in a key ceremony first.")
        if not self.picker.selected_serials():
            return N_("Tick the units to inject.")
        if not self.secret_edit.text():
            return N_("Enter the key store's PIN.") if self.store_kind() == PKCS11 else N_("Enter the passphrase.")
        return None

    def request(self) -> InjectRequest:
        """What the operator chose (call only when :meth:`blocker` is None)."""
        choice = KeyStoreChoice(self.store_kind(), self.secret_edit.text(), self._pkcs11)
        return InjectRequest(self.bdk_combo.currentText(), tuple(self.picker.selected_serials()), choice)

    def start(self) -> None:
        """Emit ``start_requested`` with the operator's choice and close; else change nothing."""
        if self.blocker() is not None:
            self._refresh()
            return
        self.start_requested.emit(self.request())
        self.accept()

    def done(self, result: int) -> None:
        """Closing forgets the secret typed (``setText`` also drops the field's undo history)."""
        self.secret_edit.setText("")
        super().done(result)

    def _store_changed(self) -> None:
        """A secret typed for one store is never sent to the other: a wrong PIN counts toward the token's lockout."""
        self.secret_edit.setText("")
        self._refresh()

    # -- drawing ---------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        blocker = self.blocker()
        self.start_button.setEnabled(blocker is None)
        if blocker is None:
            text = _(
                "Units to inject: {count} · BDK {label}",
                count=len(self.picker.selected_serials()),
                label=self.bdk_combo.currentText(),
            )
        else:
            text = _(blocker)
        self.foot.show_hint(text, self.bdk_error)
        pkcs11 = self.store_kind() == PKCS11
        self.secret_caption.setText(_("User PIN:") if pkcs11 else _("Passphrase:"))

    def retranslate(self) -> None:
        """Re-read every text in the current language."""
        self.setWindowTitle(_("Inject keys"))
        self.picker.retranslate()
        self.keys_box.setTitle(_("Payment keys"))
        self.bdk_caption.setText(_("BDK:"))
        self.store_caption.setText(_("Key store:"))
        self.software_radio.setText(_("Software key store"))
        self.pkcs11_radio.setText(_("PKCS#11 token"))
        if self._pkcs11 is None:
            self.token_label.setText(_("No PKCS#11 token is configured (NAIAD_PKCS11_MODULE and NAIAD_PKCS11_TOKEN)."))
        else:
            self.token_label.setText(
                _("Token {token} in {module}", token=self._pkcs11.token_label, module=self._pkcs11.module)
            )
        self.start_button.setText(_("Inject keys"))
        self.cancel_button.setText(_("Cancel"))
        self._refresh()
