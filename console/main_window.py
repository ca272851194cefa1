"""The console's main window: the bench over the log pane, a bench toolbar and the language switch.

The window wires the pieces together: discovery events (from the watcher) go to the bench, card
requests become jobs on the console's one worker pool (:mod:`console.workers`), results come back to
the cards.  "Flash firmware…" opens the flash dialog; a started flash is a job too, which the flash
monitor follows on the cards.  Where the units are comes from one :class:`~console.composition.Wiring`.
Every text is re-read in the current language by ``retranslate()``, which i18n's language listener
triggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QAction, QActionGroup, QCloseEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QWidget,
)

import i18n
from i18n import N_, _
from terminal.errors import NaiadError

from .calibration_run import CameraCalibrations, CameraEngine, EngineCamera
from .composition import Wiring
from .facepay_run import EngineFacePay, FacePayChecks, FacePayEngine
from .flash_dialog import FlashDialog, UnitChoice, choices_from_cards
from .flash_monitor import FlashMonitor, FlashRun, FlashUnits, flash_with_engine
from .inject_run import EngineKeys, KeyEngine, KeyInjection
from .inventory_run import InventoryRegistration
from .log_pane import LogPane
from .merchant_binding import MerchantBinding
from .operator_login import OperatorLogin
from .platform_access import PlatformAccess
from .style import UnitState, stylesheet
from .subsidy_panel import SubsidyPanels
from .unit_card import Bench, error_texts
from .unit_info import UnitInfoDialog, format_info_value
from .workers import DeviceWatcher, DiscoveryFactory, Job, StationProvider, Workers

if TYPE_CHECKING:
    from provisioning.station import Station
    from terminal.discovery import Device

LOG = logging.getLogger(__name__)

# Each language names itself (endonyms), so these are deliberately not translated.
LANGUAGE_NAMES: tuple[tuple[str, str], ...] = (("zh_CN", "中文"), ("en", "English"))

REBOOT_STEPS: dict[str, str] = {"run": N_("Rebooting to run mode…"), "bootloader": N_("Rebooting to bootloader…")}
REBOOT_DONE: dict[str, str] = {
    "run": N_("Unit {serial} is rebooting to run mode"),
    "bootloader": N_("Unit {serial} is rebooting to bootloader"),
}


def _mode_text(mode: str) -> str:
    return _("bootloader mode") if mode == "bootloader" else _("run mode")


class MainWindow(QMainWindow):
    """The bench window.  Call ``start()`` to begin watching the bus; closing it stops everything."""

    language_changed = pyqtSignal(str)

    def __init__(
        self,
        wiring: Wiring,
        *,
        make_discovery: DiscoveryFactory | None = None,
        make_station: Callable[[], Station] | None = None,
        flash: FlashUnits = flash_with_engine,
        keys: KeyEngine | None = None,
        camera: CameraEngine | None = None,
        facepay: FacePayEngine | None = None,
        platform_config: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``make_discovery``, ``make_station``, ``flash``, ``keys``, ``camera`` and ``facepay`` stand in for the bus
        and engines in tests; ``platform_config`` names the merchant platform's file (else
        ``NAIAD_PLATFORM_CONFIG``)."""
        super().__init__(parent)
        self.wiring = wiring
        self.workers = Workers(parent=self)
        self.watcher = DeviceWatcher(self.workers, make_discovery or wiring.discovery, parent=self)
        self.stations = StationProvider(make_station or wiring.station)
        self.info_dialogs: dict[str, UnitInfoDialog] = {}
        self.flash_dialog: FlashDialog | None = None
        self._closed = False
        self.setObjectName("naiadMainWindow")
        self.setStyleSheet(stylesheet())

        self.bench = Bench()
        self.log_pane = LogPane()
        self.flash_monitor = FlashMonitor(self.bench, self.workers, self.stations, flash, parent=self)
        self.operator = OperatorLogin(self.workers, self.stations, parent=self)
        self.key_injection = KeyInjection(
            self.bench, self.workers, self.stations, self.operator, self._unit_choices, keys or EngineKeys(wiring), self
        )
        self.camera = CameraCalibrations(
            self.bench, self.workers, self.stations, self.operator, camera or EngineCamera(wiring), self
        )
        platform = PlatformAccess(self.stations, platform_config)
        self.merchants = MerchantBinding(self.bench, self.workers, platform, self.operator, self)
        self.subsidy = SubsidyPanels(self.bench, self.workers, platform, self.operator, self)
        self.inventory = InventoryRegistration(
            self.bench, self.workers, platform, self.operator, self._unit_choices, self
        )
        self.facepay = FacePayChecks(
            self.bench, self.workers, platform, self.operator, facepay or EngineFacePay(wiring, platform), self
        )
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
            status.addPermanentWidget(self.operator.status_label)
            status.addPermanentWidget(self.counts_label)
            status.addPermanentWidget(self.sim_label)

        self.watcher.device_added.connect(self._on_device_added)
        self.watcher.device_removed.connect(self._on_device_removed)
        self.watcher.failed.connect(self._on_discovery_failed)
        self.bench.info_requested.connect(self.request_info)
        self.bench.reboot_requested.connect(self.request_reboot)
        self.bench.camera_requested.connect(self.camera.open_panel)
        self.bench.changed.connect(self._update_counts)
        self.bench.changed.connect(self._units_changed)
        self.workers.busy_changed.connect(self._units_changed)
        self.flash_monitor.summarised.connect(self._show_status)
        self.key_injection.summarised.connect(self._show_status)
        self.camera.summarised.connect(self._show_status)
        self.merchants.summarised.connect(self._show_status)
        self.inventory.summarised.connect(self._show_status)
        self.facepay.summarised.connect(self._show_status)
        self.language_changed.connect(self._on_language_changed)
        self.log_pane.attach()
        i18n.add_language_listener(self._notify_language)
        self.retranslate()
        self._units_changed()
        self.resize(1100, 760)

    # -- building -------------------------------------------------------------------------------

    def _build_actions(self) -> None:
        menubar = self.menuBar()
        assert menubar is not None
        self.file_menu = menubar.addMenu("")
        self.operator_menu = menubar.addMenu("")
        self.bench_menu = menubar.addMenu("")
        self.view_menu = menubar.addMenu("")
        self.help_menu = menubar.addMenu("")
        assert self.file_menu and self.bench_menu and self.view_menu and self.help_menu
        self.quit_action = QAction(self)
        self.quit_action.setShortcut("Ctrl+Q")
        self.quit_action.triggered.connect(self.close)
        self.file_menu.addAction(self.quit_action)
        assert self.operator_menu is not None
        self.operator_menu.addAction(self.operator.login_action)
        self.operator_menu.addAction(self.operator.logout_action)

        self.flash_action = QAction(self)
        self.flash_action.setObjectName("flashFirmwareAction")
        self.flash_action.triggered.connect(lambda _checked=False: self.open_flash_dialog())
        self.bench_menu.addAction(self.flash_action)
        self.bench_menu.addAction(self.key_injection.action)
        self.bench_menu.addAction(self.inventory.action)
        self.bench_menu.addAction(self.inventory.resume_action)
        self.bench_menu.addAction(self.subsidy.menu_action)
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

        # The bench toolbar: later milestones add the wizard here.
        self.toolbar = QToolBar()
        self.toolbar.setObjectName("benchToolbar")
        self.toolbar.setMovable(False)
        self.addToolBar(self.toolbar)
        self.toolbar.addAction(self.flash_action)
        self.toolbar.addAction(self.key_injection.action)
        self.toolbar.addAction(self.dismiss_action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.language_label = QLabel()
        self.toolbar.addWidget(self.language_label)
        self.language_combo = QComboBox()
        for code, name in LANGUAGE_NAMES:
            self.language_combo.addItem(name, code)
        self.language_combo.activated.connect(lambda index: self.set_language(str(self.language_combo.itemData(index))))
        self.toolbar.addWidget(self.language_combo)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin watching the bus (on the watcher's thread)."""
        LOG.info("%s", _("Watching for units on {where}", where=self.wiring.describe()))
        self.watcher.start()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if not self._closed and (
            (self.flash_monitor.running() and not self.confirm_interrupt_flash())
            or not self.key_injection.may_close(self)
        ):
            if event is not None:
                event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)

    def confirm_interrupt_flash(self) -> bool:
        """Ask before closing while units are being flashed; True to close anyway."""
        answer = QMessageBox.question(
            self,
            _("Flashing is running"),
            _(
                "Units are still being flashed: {serials}. If you close now, they keep booting their old firmware "
                "and flashing them again resumes where it stopped. Close anyway?",
                serials=", ".join(sorted(self.workers.busy_units())),
            ),
            QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Close

    def shutdown(self) -> None:
        """Stop the watcher, start no more jobs and wait a little for running ones; unhook from i18n and logging."""
        if self._closed:
            return
        self._closed = True
        i18n.remove_language_listener(self._notify_language)
        self.watcher.stop()
        ended = self.workers.shutdown(timeout_ms=2000)
        if self.flash_dialog is not None:
            self.flash_dialog.close()
        self.key_injection.close_dialog()
        self.camera.close_panels()
        self.merchants.close_windows()
        self.subsidy.close_windows()
        self.facepay.close_windows()
        self.inventory.close_dialogs()
        self.operator.close_dialog()
        if ended:  # else they still record in the ledger: leave the station open
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
        sim_dir = self.wiring.sim_dir
        if sim_dir is not None:
            title = _("{title} — simulator {path}", title=title, path=str(sim_dir))
        self.setWindowTitle(title)
        assert self.file_menu and self.bench_menu and self.view_menu and self.help_menu and self.language_menu
        self.file_menu.setTitle(_("&File"))
        assert self.operator_menu is not None
        self.operator_menu.setTitle(_("&Operator"))
        self.operator.retranslate()
        self.key_injection.retranslate()
        self.camera.retranslate()
        self.merchants.retranslate()
        self.subsidy.retranslate()
        self.facepay.retranslate()
        self.inventory.retranslate()
        self.quit_action.setText(_("&Quit"))
        self.bench_menu.setTitle(_("&Bench"))
        self.flash_action.setText(_("Flash firmware…"))
        self.flash_action.setToolTip(_("Write a signed firmware bundle to units on the bench, many at once"))
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
        self.sim_label.setText(_("Simulator: {path}", path=str(sim_dir)) if sim_dir is not None else _("USB bus"))
        self.bench.retranslate()
        self.log_pane.retranslate()
        for dialog in self.info_dialogs.values():
            dialog.retranslate()
        if self.flash_dialog is not None:
            self.flash_dialog.retranslate()
        self._update_counts()

    # -- discovery ------------------------------------------------------------------------------

    @pyqtSlot(object)
    def _on_device_added(self, device: Device) -> None:
        self.bench.device_added(device)
        LOG.info(
            "%s",
            _(
                "{model} {serial} attached in {mode} at USB port {path}",
                model=device.model_name,
                serial=device.serial,
                mode=_mode_text(device.mode),
                path=device.path,
            ),
        )

    @pyqtSlot(object)
    def _on_device_removed(self, device: Device) -> None:
        self.bench.device_removed(device)
        LOG.info(
            "%s",
            _(
                "{model} {serial} detached from {mode} at USB port {path}",
                model=device.model_name,
                serial=device.serial,
                mode=_mode_text(device.mode),
                path=device.path,
            ),
        )

    @pyqtSlot(object)
    def _on_discovery_failed(self, error: BaseException) -> None:
        message, remedy = error_texts(error)
        status = self.statusBar()
        if status is not None:
            text = _("Device discovery failed: {detail}", detail=message)
            status.showMessage(f"{text} — {remedy}" if remedy else text, 10000)

    def _update_counts(self) -> None:
        counts = self.bench.counts()
        self.counts_label.setText(
            _(
                "Units: {total} · run {run} · bootloader {bootloader} · busy {busy} · disconnected {gone}",
                total=sum(counts.values()),
                run=counts[UnitState.RUN],
                bootloader=counts[UnitState.BOOTLOADER],
                busy=counts[UnitState.BUSY],
                gone=counts[UnitState.DISCONNECTED],
            )
        )

    # -- unit actions (run on the pool; results back here on the GUI thread) --------------------

    def _run_action(self, serial: str, step: str, call: Callable[[Station], object]) -> Job | None:
        """Run ``call`` on the station off the GUI thread, the card showing ``step``; None if the unit is busy."""
        stations = self.stations
        job = Job(lambda _listener: call(stations.get()), (serial,), "action")
        job.failed.connect(lambda error: self._on_action_failed(serial, error))
        try:
            self.workers.start(job)
        except NaiadError as exc:  # a unit being flashed (or queried) gets no other action
            LOG.warning("%s", exc)
            return None
        card = self.bench.card(serial)
        if card is not None:
            card.show_step(step)
        return job

    @pyqtSlot(str)
    def request_info(self, serial: str) -> None:
        job = self._run_action(serial, N_("Reading unit info…"), lambda station: station.info(serial))
        if job is not None:
            job.succeeded.connect(lambda info: self._on_info(serial, info))

    @pyqtSlot(str, str)
    def request_reboot(self, serial: str, mode: str) -> None:
        job = self._run_action(
            serial, REBOOT_STEPS.get(mode, N_("Rebooting…")), lambda station: station.reboot(serial, mode)
        )
        if job is not None:
            job.succeeded.connect(lambda _result: self._on_rebooted(serial, mode))

    def _on_info(self, serial: str, info: object) -> None:
        card = self.bench.card(serial)
        if card is not None:
            card.clear_step()
        if isinstance(info, dict):
            self.show_info(serial, info)

    def _on_rebooted(self, serial: str, mode: str) -> None:
        card = self.bench.card(serial)
        if card is not None:
            card.clear_step()
        LOG.info("%s", _(REBOOT_DONE.get(mode, N_("Unit {serial} is rebooting")), serial=serial))

    def _on_action_failed(self, serial: str, error: BaseException) -> None:
        message, remedy = error_texts(error)
        card = self.bench.card(serial)
        if card is not None:
            card.show_error(error)
        LOG.error(
            "%s", _("Unit {serial}: {message}", serial=serial, message=message) + (f" — {remedy}" if remedy else "")
        )

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

    # -- flashing -----------------------------------------------------------------------------------

    def open_flash_dialog(self, bundle_path: str | None = None) -> FlashDialog:
        """Show the flash dialog (one at a time) listing the bench's units; optionally read a bundle."""
        dialog = self.flash_dialog
        if dialog is None:
            dialog = FlashDialog(self._unit_choices(), self, workers=self.workers)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.start_requested.connect(self.start_flash)
            dialog.finished.connect(lambda _result, dialog=dialog: self._forget_flash_dialog(dialog))
            self.flash_dialog = dialog
        if bundle_path:
            dialog.load_bundle(bundle_path)
        dialog.show()
        dialog.raise_()
        return dialog

    def _forget_flash_dialog(self, dialog: FlashDialog) -> None:
        if self.flash_dialog is dialog:
            self.flash_dialog = None

    def _unit_choices(self) -> list[UnitChoice]:
        return choices_from_cards(self.bench.cards(), self.workers.busy)

    @pyqtSlot()
    def _units_changed(self) -> None:
        choices = self._unit_choices()
        self.flash_action.setEnabled(bool(choices))
        self.key_injection.set_units(choices)
        self.inventory.set_units(choices)
        if self.flash_dialog is not None:
            self.flash_dialog.set_units(choices)

    @pyqtSlot(str, list)
    def start_flash(self, bundle_path: str, serials: list[str]) -> FlashRun | None:
        """Flash ``bundle_path`` to ``serials`` off the GUI thread; None (and the reason logged) if refused."""
        try:
            return self.flash_monitor.start(bundle_path, serials)
        except NaiadError as exc:
            message, remedy = error_texts(exc)
            LOG.error("%s", message + (f" — {remedy}" if remedy else ""))
            self._show_status(message)
            return None

    @pyqtSlot(str)
    def _show_status(self, text: str) -> None:
        status = self.statusBar()
        if status is not None:
            status.showMessage(text, 15000)

    def _show_about(self) -> None:
        try:
            version = metadata.version("naiad")
        except metadata.PackageNotFoundError:
            version = "?"
        QMessageBox.about(
            self,
            _("About Naiad"),
            _("Naiad {version}: brings face-payment terminals from the shelf to taking payments.", version=version),
        )
