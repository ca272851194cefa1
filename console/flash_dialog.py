"""The bench's "Flash firmware" action: choose a bundle and units, then follow the flash on the cards.

``FlashDialog`` reads a bundle's manifest and signature (a job on the console's workers; no image is hashed) to
show what it holds and who signed it, and lists the bench's units with the attached, idle units of a
model the bundle is for ticked.  Following the flash on the cards is ``flash_monitor``'s part.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from firmware.summary import BundleSummary, read_bundle_summary
from i18n import N_, _

from .unit_card import NO_VALUE, error_texts, repolish
from .unit_picker import StartFoot, UnitChoice, UnitPicker, attached_and_idle, choices_from_cards
from .workers import Job, Workers

LOG = logging.getLogger(__name__)

PARTITION_TYPES: dict[str, str] = {"raw": N_("Raw"), "sparse": N_("Sparse")}
__all__ = ["FlashDialog", "UnitChoice", "choices_from_cards"]

NOT_FOR_BUNDLE = N_("Not for this bundle")


# -- what the dialog shows ------------------------------------------------------------------------------


def format_size(size: int) -> str:
    """Bytes for people, in binary units (partition sizes are powers of two)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


# -- the dialog -----------------------------------------------------------------------------------------


class FlashDialog(QDialog):
    """Pick a bundle, see what it holds, tick units, press Start: emits ``start_requested(path, serials)``."""

    start_requested = pyqtSignal(str, list)

    def __init__(
        self,
        units: Sequence[UnitChoice] = (),
        parent: QWidget | None = None,
        *,
        workers: Workers,
        read_summary: Callable[[str], BundleSummary] = read_bundle_summary,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("flashDialog")
        self._workers = workers
        self._read_summary = read_summary
        self._generation = 0
        self._loading: str | None = None
        self._load_error: BaseException | None = None
        self.summary: BundleSummary | None = None

        self.bundle_caption = QLabel()
        self.path_edit = QLineEdit()
        self.path_edit.editingFinished.connect(self._path_edited)
        self.browse_button = QPushButton()
        self.browse_button.clicked.connect(self.browse)
        bundle_row = QHBoxLayout()
        bundle_row.addWidget(self.bundle_caption)
        bundle_row.addWidget(self.path_edit, 1)
        bundle_row.addWidget(self.browse_button)

        self.contents_box = QGroupBox()
        self.version_caption, self.security_caption, self.models_caption = QLabel(), QLabel(), QLabel()
        self.created_caption, self.signature_caption = QLabel(), QLabel()
        self.version_value, self.security_value, self.models_value = QLabel(), QLabel(), QLabel()
        self.created_value, self.signature_value = QLabel(), QLabel()
        self.models_value.setWordWrap(True)
        self.signature_value.setWordWrap(True)
        self.signature_value.setObjectName("cardStep")  # the style sheet's red for failed="true"
        form = QFormLayout()
        for caption, value in (
            (self.version_caption, self.version_value),
            (self.security_caption, self.security_value),
            (self.models_caption, self.models_value),
            (self.created_caption, self.created_value),
            (self.signature_caption, self.signature_value),
        ):
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(caption, value)
        self.partition_tree = QTreeWidget()
        self.partition_tree.setRootIsDecorated(False)
        self.partition_tree.setColumnCount(4)
        self.partition_tree.setMaximumHeight(140)
        contents = QVBoxLayout(self.contents_box)
        contents.addLayout(form)
        contents.addWidget(self.partition_tree)

        self.picker = UnitPicker(self.unavailable_reason, N_("Tick all that fit"))
        self.picker.ticked_by_default = False  # before a bundle is chosen nothing is ticked
        self.units_box, self.unit_tree = self.picker, self.picker.unit_tree

        self.foot = StartFoot()
        self.hint_label = self.foot.hint_label
        self.start_button, self.cancel_button = self.foot.start_button, self.foot.cancel_button
        for button in (self.start_button, self.cancel_button):  # Enter in the path field reads the bundle
            button.setAutoDefault(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(bundle_row)
        layout.addWidget(self.contents_box)
        layout.addWidget(self.units_box, 1)
        layout.addWidget(self.foot)
        self.picker.set_units(units)
        self.picker.changed.connect(self._refresh)
        self.retranslate()
        self.resize(640, 620)

    # -- the bundle ----------------------------------------------------------------------------------

    def browse(self) -> None:
        start_dir = os.path.dirname(self.path_edit.text()) or os.getcwd()
        path, _filter = QFileDialog.getOpenFileName(
            self, _("Choose a firmware bundle"), start_dir, _("Firmware bundles (*.zip);;All files (*)")
        )
        if path:
            self.load_bundle(path)

    def _path_edited(self) -> None:
        path = self.path_edit.text().strip()
        current = self._loading or (self.summary.path if self.summary else None)
        if path and path != current:
            self.load_bundle(path)

    def load_bundle(self, path: str) -> None:
        """Read the bundle at ``path`` as a job on the workers; the dialog shows it when it arrives."""
        self._generation += 1
        generation = self._generation
        self.summary = None
        self._load_error = None
        self._loading = path
        self.path_edit.setText(path)
        read = self._read_summary
        job = Job(lambda _listener: read(path), name="reading a bundle")
        job.succeeded.connect(lambda summary: self._on_loaded(generation, summary))
        job.failed.connect(lambda error: self._on_load_failed(generation, error))
        self._workers.start(job)
        self._refresh()

    def _on_loaded(self, generation: int, summary: object) -> None:
        if generation != self._generation or not isinstance(summary, BundleSummary):
            return  # the operator chose another file meanwhile
        self._loading = None
        self.summary = summary
        self.picker.ticked_by_default = True
        self.picker.fill(reset=True)  # a new bundle: tick afresh what fits it

    def _on_load_failed(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._loading = None
        self._load_error = error
        self.picker.fill()

    @property
    def loading(self) -> bool:
        return self._loading is not None

    @property
    def load_error(self) -> BaseException | None:
        return self._load_error

    # -- the units -----------------------------------------------------------------------------------

    def set_units(self, units: Sequence[UnitChoice]) -> None:
        """The bench changed: list ``units``, keeping the operator's ticks for units already listed."""
        self.picker.set_units(units)

    def unavailable_reason(self, unit: UnitChoice) -> str | None:
        """The msgid of why ``unit`` cannot be flashed now, or None."""
        reason = attached_and_idle(unit)
        if reason is None and self.summary is not None and not self.summary.fits(unit.model):
            return NOT_FOR_BUNDLE
        return reason

    def tick_all(self, ticked: bool) -> None:
        """Tick (or untick) every unit that can be flashed now."""
        self.picker.tick_all(ticked)

    def selected_serials(self) -> list[str]:
        """The ticked units that can be flashed now, in bench order."""
        return self.picker.selected_serials()

    # -- starting --------------------------------------------------------------------------------------

    def blocker(self) -> tuple[str, dict[str, object]] | None:
        """Why Start is off, as (msgid, params); None when it is on."""
        if self._loading is not None:
            return N_("Reading {path}…"), {"path": self._loading}
        if self._load_error is not None:
            return N_("This file cannot be flashed."), {}
        if self.summary is None:
            return N_("Choose a firmware bundle."), {}
        if not self.summary.trusted:
            return N_("This bundle cannot be flashed: its signature is not trusted."), {}
        if not self.selected_serials():
            return N_("Tick the units to flash."), {}
        return None

    def start(self) -> None:
        """Emit ``start_requested`` for the loaded bundle and the ticked units, and close; else change nothing."""
        if self.blocker() is not None or self.summary is None:
            self._refresh()
            return
        self.start_requested.emit(self.summary.path, self.selected_serials())
        self.accept()

    # -- drawing ---------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        self._draw_summary()
        blocker = self.blocker()
        self.start_button.setEnabled(blocker is None)
        self.picker.all_button.setEnabled(self.summary is not None)
        problem = self._load_error or (self.summary.trust_error if self.summary is not None else None)
        if blocker is None:
            count = len(self.selected_serials())
            assert self.summary is not None
            text = _("Units to flash: {count} · firmware {version}", count=count, version=self.summary.version)
        else:
            text = _(blocker[0], **blocker[1])
        self.foot.show_hint(text, problem)

    def _draw_summary(self) -> None:
        summary = self.summary
        self.partition_tree.clear()
        if summary is None:
            for value in (
                self.version_value,
                self.security_value,
                self.models_value,
                self.created_value,
                self.signature_value,
            ):
                value.setText(NO_VALUE)
            self.signature_value.setToolTip("")
            self.signature_value.setProperty("failed", False)
            repolish(self.signature_value)
            return
        self.version_value.setText(summary.version)
        self.security_value.setText(str(summary.security_version))
        self.models_value.setText(
            "; ".join(
                _(
                    "{name} ({model}): revisions {revisions}",
                    name=fit.name,
                    model=fit.model,
                    revisions=", ".join(fit.hardware_revisions),
                )
                for fit in summary.models
            )
        )
        self.created_value.setText(summary.created or NO_VALUE)
        if summary.trust_error is None:
            self.signature_value.setText(
                _("Signed by trusted key {key_id} ({algorithm})", key_id=summary.key_id, algorithm=summary.algorithm)
            )
            self.signature_value.setToolTip("")
        else:
            message, remedy = error_texts(summary.trust_error)
            self.signature_value.setText(message)
            self.signature_value.setToolTip(remedy or "")
        self.signature_value.setProperty("failed", summary.trust_error is not None)
        repolish(self.signature_value)
        for row in summary.partitions:
            kind = PARTITION_TYPES.get(row.type)
            item = QTreeWidgetItem(
                [row.name, _(kind) if kind else row.type, format_size(row.size), format_size(row.expanded_size)]
            )
            self.partition_tree.addTopLevelItem(item)

    def retranslate(self) -> None:
        """Re-read every text in the current language."""
        self.setWindowTitle(_("Flash firmware"))
        self.bundle_caption.setText(_("Bundle:"))
        self.path_edit.setPlaceholderText(_("A signed firmware bundle (.zip)"))
        self.browse_button.setText(_("Browse…"))
        self.contents_box.setTitle(_("What the bundle holds"))
        self.version_caption.setText(_("Version:"))
        self.security_caption.setText(_("Security version:"))
        self.models_caption.setText(_("For models:"))
        self.created_caption.setText(_("Created:"))
        self.signature_caption.setText(_("Signature:"))
        self.partition_tree.setHeaderLabels([_("Partition"), _("Type"), _("In the bundle"), _("On the unit")])
        self.picker.retranslate()
        self.start_button.setText(_("Start flashing"))
        self.cancel_button.setText(_("Cancel"))
        self._refresh()
