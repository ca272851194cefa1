"""The console's main window: the bench over the log pane, a bench toolbar and the language switch.

The window wires the pieces together: discovery events (from the watcher thread) go to the bench,
card requests go to the action runner (a thread pool), results come back to the cards.  Every text
is re-read in the current language by ``retranslate()``, which i18n's language listener triggers.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata
from typing import Any

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QAction, QActionGroup, QCloseEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

import i18n
from i18n import N_, _

from .bench import Bench, error_texts
from .log_pane import LogPane
from .style import UnitState, stylesheet
from .workers import ActionRunner, DeviceWatcher, DiscoveryFactory, StationProvider, discovery_factory

LOG = logging.getLogger(__name__)

# Each language names itself (endonyms), so these are deliberately not translated.
LANGUAGE_NAMES: tuple[tuple[str, str], ...] = (("zh_CN", "中文"), ("en", "English"))

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

REBOOT_STEPS: dict[str, str] = {"run": N_("Rebooting to run mode…"), "bootloader": N_("Rebooting to bootloader…")}
REBOOT_DONE: dict[str, str] = {
    "run": N_("Unit {serial} is rebooting to run mode"),
    "bootloader": N_("Unit {serial} is rebooting to bootloader"),
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


def _mode_text(mode: str) -> str:
    return _("bootloader mode") if mode == "bootloader" else _("run mode")


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


class MainWindow(QMainWindow):
    """The bench window.  Call ``start()`` to begin watching the bus; closing it stops everything."""

    language_changed = pyqtSignal(str)

    def __init__(
        self,
        sim_dir: str | os.PathLike[str] | None = None,
        *,
        make_discovery: DiscoveryFactory | None = None,
        make_station: Any = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.sim_dir = None if sim_dir is None else os.fspath(sim_dir)
        self.watcher = DeviceWatcher(make_discovery or discovery_factory(self.sim_dir), parent=self)
        self.runner = ActionRunner(parent=self)
        self.stations = StationProvider(self.sim_dir, make_station)
        self.info_dialogs: dict[str, UnitInfoDialog] = {}
        self._closed = False
        self.setObjectName("naiadMainWindow")
        self.setStyleSheet(stylesheet())

        self.bench = Bench()
        self.log_pane = LogPane()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.bench)
        splitter.addWidget(self.log_pane)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([540, 180])
        self.setCentralWidget(splitter)
        self._build_actions()
        self.sim_label = QLabel()
        self.counts_label = QLabel()
        status = self.statusBar()
        if status is not None:
            status.addPermanentWidget(self.counts_label)
            status.addPermanentWidget(self.sim_label)

        self.watcher.device_added.connect(self._on_device_added)
        self.watcher.device_removed.connect(self._on_device_removed)
        self.watcher.failed.connect(self._on_discovery_failed)
        self.bench.info_requested.connect(self.request_info)
        self.bench.reboot_requested.connect(self.request_reboot)
        self.bench.changed.connect(self._update_counts)
        self.runner.succeeded.connect(self._on_action_succeeded)
        self.runner.failed.connect(self._on_action_failed)
        self.language_changed.connect(self._on_language_changed)
        self.log_pane.attach()
        i18n.add_language_listener(self._notify_language)
        self.retranslate()
        self.resize(1100, 760)

    # -- building -------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        menubar = self.menuBar()
        assert menubar is not None
        self.file_menu = menubar.addMenu("")
        self.bench_menu = menubar.addMenu("")
        self.view_menu = menubar.addMenu("")
        self.help_menu = menubar.addMenu("")
        assert self.file_menu and self.bench_menu and self.view_menu and self.help_menu
        self.quit_action = QAction(self)
        self.quit_action.setShortcut("Ctrl+Q")
        self.quit_action.triggered.connect(self.close)
        self.file_menu.addAction(self.quit_action)

        self.dismiss_action = QAction(self)
        self.dismiss_action.triggered.connect(self.bench.dismiss_disconnected)
        self.bench_menu.addAction(self.dismiss_action)

        self.language_menu = self.view_menu.addMenu("")
        assert self.language_menu is not None
        self.language_group = QActionGroup(self)
        self.language_actions: dict[str, QAction] = {}
        for code, name in LANGUAGE_NAMES:
            action = QAction(name, self)
            action.setCheckable(True)
            action.setData(code)
            action.triggered.connect(lambda _checked=False, code=code: self.set_language(code))
            self.language_group.addAction(action)
            self.language_menu.addAction(action)
            self.language_actions[code] = action

        self.about_action = QAction(self)
        self.about_action.triggered.connect(self._show_about)
        self.help_menu.addAction(self.about_action)

        # The bench toolbar: later milestones add "Flash firmware…" and the wizard here.
        self.toolbar = QToolBar()
        self.toolbar.setObjectName("benchToolbar")
        self.toolbar.setMovable(False)
        self.addToolBar(self.toolbar)
        self.toolbar.addAction(self.dismiss_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.language_label = QLabel()
        self.toolbar.addWidget(self.language_label)
        self.language_combo = QComboBox()
        for code, name in LANGUAGE_NAMES:
            self.language_combo.addItem(name, code)
        self.language_combo.activated.connect(
            lambda index: self.set_language(str(self.language_combo.itemData(index)))
        )
        self.toolbar.addWidget(self.language_combo)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin watching the bus (on the watcher's thread)."""
        LOG.info("%s", _("Watching for units on {where}", where=self._bus_name()))
        self.watcher.start()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the watcher thread and the action pool, and unhook from i18n and logging."""
        if self._closed:
            return
        self._closed = True
        i18n.remove_language_listener(self._notify_language)
        self.watcher.stop()
        self.runner.shutdown()
        try:
            self.stations.close()
        except Exception:
            LOG.exception("closing the station failed")
        for dialog in list(self.info_dialogs.values()):
            dialog.close()
        self.log_pane.detach()

    # -- language -------------------------------------------------------------------------------

    def set_language(self, language: str) -> None:
        """Switch the whole application's language; every open window re-translates at once."""
        i18n.set_language(language)

    def _notify_language(self, language: str) -> None:
        # i18n may call this from any thread; the signal brings it to the GUI thread.
        self.language_changed.emit(language)

    @pyqtSlot(str)
    def _on_language_changed(self, _language: str) -> None:
        self.retranslate()

    def retranslate(self) -> None:
        """Re-read every text of the window, its cards, log pane and open dialogs."""
        title = _("Naiad console")
        if self.sim_dir is not None:
            title = _("{title} — simulator {path}", title=title, path=self.sim_dir)
        self.setWindowTitle(title)
        assert self.file_menu and self.bench_menu and self.view_menu and self.help_menu and self.language_menu
        self.file_menu.setTitle(_("&File"))
        self.quit_action.setText(_("&Quit"))
        self.bench_menu.setTitle(_("&Bench"))
        self.dismiss_action.setText(_("Dismiss disconnected units"))
        self.dismiss_action.setToolTip(_("Remove the cards of units that are no longer attached"))
        self.view_menu.setTitle(_("&View"))
        self.language_menu.setTitle(_("&Language"))
        self.help_menu.setTitle(_("&Help"))
        self.about_action.setText(_("&About Naiad"))
        self.toolbar.setWindowTitle(_("Bench actions"))
        self.language_label.setText(_("Language:") + " ")
        current = i18n.get_language()
        self.language_actions[current].setChecked(True)
        self.language_combo.blockSignals(True)
        self.language_combo.setCurrentIndex(self.language_combo.findData(current))
        self.language_combo.blockSignals(False)
        self.sim_label.setText(
            _("Simulator: {path}", path=self.sim_dir) if self.sim_dir is not None else _("USB bus")
        )
        self.bench.retranslate()
        self.log_pane.retranslate()
        for dialog in self.info_dialogs.values():
            dialog.retranslate()
        self._update_counts()

    # -- discovery ------------------------------------------------------------------------------

    @pyqtSlot(object)
    def _on_device_added(self, device: Any) -> None:
        self.bench.device_added(device)
        LOG.info("%s", _("{model} {serial} attached in {mode} at USB port {path}", model=device.model_name,
                         serial=device.serial, mode=_mode_text(device.mode), path=device.path))

    @pyqtSlot(object)
    def _on_device_removed(self, device: Any) -> None:
        self.bench.device_removed(device)
        LOG.info("%s", _("{model} {serial} detached from {mode} at USB port {path}", model=device.model_name,
                         serial=device.serial, mode=_mode_text(device.mode), path=device.path))

    @pyqtSlot(object)
    def _on_discovery_failed(self, error: BaseException) -> None:
        message, remedy = error_texts(error)
        status = self.statusBar()
        if status is not None:
            text = _("Device discovery failed: {detail}", detail=message)
            status.showMessage(f"{text} — {remedy}" if remedy else text, 10000)

    def _bus_name(self) -> str:
        return _("simulator {path}", path=self.sim_dir) if self.sim_dir is not None else _("the USB bus")

    def _update_counts(self) -> None:
        counts = self.bench.counts()
        self.counts_label.setText(
            _("Units: {total} · run {run} · bootloader {bootloader} · busy {busy} · disconnected {gone}",
              total=sum(counts.values()), run=counts[UnitState.RUN],
              bootloader=counts[UnitState.BOOTLOADER], busy=counts[UnitState.BUSY],
              gone=counts[UnitState.DISCONNECTED])
        )

    # -- unit actions (run on the pool; results back here on the GUI thread) --------------------

    @pyqtSlot(str)
    def request_info(self, serial: str) -> None:
        card = self.bench.card(serial)
        if card is not None:
            card.show_step(N_("Reading unit info…"))
        self.runner.submit(serial, "info", lambda: self.stations.get().info(serial))

    @pyqtSlot(str, str)
    def request_reboot(self, serial: str, mode: str) -> None:
        card = self.bench.card(serial)
        if card is not None:
            card.show_step(REBOOT_STEPS.get(mode, N_("Rebooting…")))
        self.runner.submit(serial, f"reboot:{mode}", lambda: self.stations.get().reboot(serial, mode))

    @pyqtSlot(str, str, object)
    def _on_action_succeeded(self, serial: str, action: str, result: object) -> None:
        card = self.bench.card(serial)
        if card is not None:
            card.clear_step()
        if action == "info" and isinstance(result, dict):
            self.show_info(serial, result)
        elif action.startswith("reboot:"):
            mode = action.partition(":")[2]
            LOG.info("%s", _(REBOOT_DONE.get(mode, N_("Unit {serial} is rebooting")), serial=serial))

    @pyqtSlot(str, str, object)
    def _on_action_failed(self, serial: str, action: str, error: BaseException) -> None:
        message, remedy = error_texts(error)
        card = self.bench.card(serial)
        if card is not None:
            card.show_error(error)
        LOG.error("%s", _("Unit {serial}: {message}", serial=serial, message=message)
                  + (f" — {remedy}" if remedy else ""))

    def show_info(self, serial: str, info: dict[str, Any]) -> UnitInfoDialog:
        """Show a unit's info in a (non-modal) dialog and a summary line in the log."""
        old = self.info_dialogs.pop(serial, None)
        if old is not None:
            old.close()
        dialog = UnitInfoDialog(serial, info, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(lambda _result, dialog=dialog: self._forget_dialog(dialog))
        self.info_dialogs[serial] = dialog
        LOG.info("%s", _("Unit {serial}: {info}", serial=serial, info=format_info_value(info)))
        dialog.show()
        return dialog

    def _forget_dialog(self, dialog: UnitInfoDialog) -> None:
        if self.info_dialogs.get(dialog.serial) is dialog:
            del self.info_dialogs[dialog.serial]

    def _show_about(self) -> None:
        try:
            version = metadata.version("naiad")
        except metadata.PackageNotFoundError:
            version = "?"
        QMessageBox.about(self, _("About Naiad"),
                          _("Naiad {version}: brings face-payment terminals from the shelf to taking payments.",
                            version=version))
