"""The console's main window: a log-in page, then the views the operator's role may see, over the log pane.

The window is the shell: one :class:`~console.context.ConsoleContext` (wiring, workers, station, operator, bench,
settings) handed to every view; a navigation list (Ctrl+1..Ctrl+4) over a stack of the bench, the installer wizard,
the support desk and the settings, each shown only to the roles :func:`console.access.may_see` allows.  Before anyone
logs in the central area is the log-in page; after ``settings.idle_lock_minutes`` without input it is the lock page
(:mod:`console.idle_lock`), while work on the units goes on.  The window also wires the bench's actions: discovery
events go to the cards, card requests become jobs on the one worker pool (:mod:`console.workers`), "Flash firmware…"
opens the flash dialog.  Every text is re-read in the current language by ``retranslate()``, which i18n's language
listener triggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QAction, QActionGroup, QCloseEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QWidget,
)

import i18n
from i18n import N_, _
from terminal.errors import NaiadError

from . import access, platform_access
from .bench_view import BenchView
from .calibration_run import CameraCalibrations, CameraEngine, EngineCamera
from .composition import Wiring
from .console_settings import ConsoleSettings
from .context import ConsoleContext
from .facepay_run import EngineFacePay, FacePayChecks, FacePayEngine
from .flash_dialog import FlashDialog, UnitChoice, choices_from_cards
from .flash_monitor import FlashMonitor, FlashRun, FlashUnits, flash_with_engine
from .idle_lock import IdleLock, LockedWindows, LockPage
from .inject_run import EngineKeys, KeyEngine, KeyInjection
from .inventory_run import InventoryRegistration
from .log_pane import LogPane
from .merchant_binding import MerchantBinding
from .operator_login import LoginPage, OperatorLogin
from .platform_access import PlatformAccess
from .settings_view import SettingsView
from .style import UnitState, stylesheet
from .subsidy_panel import SubsidyPanels
from .support_desk import SupportDesk
from .unit_card import Bench, error_texts
from .unit_info import UnitInfoDialog, format_info_value
from .wizard import InstallerWizard
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


VIEW_CLASSES: dict[str, Callable[[ConsoleContext], QWidget]] = {
    access.BENCH: BenchView,
    access.WIZARD: InstallerWizard,
    access.SUPPORT: SupportDesk,
    access.SETTINGS: SettingsView,
}


class MainWindow(QMainWindow):
    """The console window.  Call ``start()`` to begin watching the bus; closing it stops everything."""

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
        settings: ConsoleSettings | None = None,
        settings_path: Path | None = None,
        idle_seconds: float | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``make_discovery``, ``make_station``, ``flash``, ``keys``, ``camera`` and ``facepay`` stand in for the bus
        and engines in tests; ``platform_config`` names the merchant platform's file (else the settings', else
        ``NAIAD_PLATFORM_CONFIG``).  ``settings`` (else those in ``settings_path``, else the configuration folder's)
        are the console's; ``idle_seconds`` overrides their idle lock minutes (tests)."""
        super().__init__(parent)
        self.wiring = wiring
        settings = settings if settings is not None else ConsoleSettings.load(settings_path)
        ledger_url = settings.effective_ledger_url()  # a changed ledger is used from the next start
        self.workers = Workers(parent=self)
        self.watcher = DeviceWatcher(self.workers, make_discovery or wiring.discovery, parent=self)
        self.stations = StationProvider(make_station or (lambda: wiring.station(ledger_url)))
        self.info_dialogs: dict[str, UnitInfoDialog] = {}
        self.flash_dialog: FlashDialog | None = None
        self._closed = False
        self._started = False
        self.setObjectName("naiadMainWindow")
        self.setStyleSheet(stylesheet())

        self.bench = Bench()
        self.log_pane = LogPane()
        self.flash_monitor = FlashMonitor(self.bench, self.workers, self.stations, flash, parent=self)
        self.operator = OperatorLogin(self.workers, self.stations, parent=self)
        self.context = ConsoleContext(
            wiring, self.workers, self.stations, self.operator, self.bench, settings, settings_path, parent=self
        )
        platform_access.follow_settings(lambda: self.context.settings)
        self.key_injection = KeyInjection(
            self.bench,
            self.workers,
            self.stations,
            self.operator,
            self._unit_choices,
            keys or EngineKeys(wiring),
            self,
            settings=lambda: self.context.settings,
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
        self._idle_seconds = idle_seconds
        self.idle_lock = IdleLock(self._lock_seconds(), self)
        self.locked_by: str | None = None  # the operator logged in when the console locked
        self._shown_for: str | None = None  # the operator the views were last shown to
        self.locked_windows = LockedWindows(self)
        self._build_views()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.pages)
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
        self.operator.changed.connect(self._on_operator_changed)
        self.idle_lock.idle.connect(self.lock)
        self.context.settings_changed.connect(lambda _settings: self.idle_lock.set_interval(self._lock_seconds()))
        self.log_pane.attach()
        i18n.add_language_listener(self._notify_language)
        self.retranslate()
        self._units_changed()
        self._sync_views()
        self.resize(1100, 760)

    # -- building -------------------------------------------------------------------------------

    def _build_views(self) -> None:
        """The pages (log-in, the views, the lock) and, on the views page, the navigation over the views."""
        self.login_page = LoginPage(self.operator)
        self.lock_page = LockPage(self.operator)
        self.views: dict[str, QWidget] = {name: make(self.context) for name, make in VIEW_CLASSES.items()}
        self.navigation = QListWidget()
        self.navigation.setObjectName("viewNavigation")
        self.navigation.setFixedWidth(150)
        self.view_stack = QStackedWidget()
        self.view_stack.setObjectName("viewStack")
        self.view_items: dict[str, QListWidgetItem] = {}
        for name, view in self.views.items():
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.navigation.addItem(item)
            self.view_items[name] = item
            self.view_stack.addWidget(view)
        self.navigation.currentRowChanged.connect(self._on_navigated)
        self.views_page = QWidget()
        row = QHBoxLayout(self.views_page)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.navigation)
        row.addWidget(self.view_stack, 1)
        self.pages = QStackedWidget()
        self.pages.setObjectName("consolePages")
        for page in (self.login_page, self.views_page, self.lock_page):
            self.pages.addWidget(page)

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
        self.lock_action = QAction(self)
        self.lock_action.setObjectName("lockAction")
        self.lock_action.setShortcut("Ctrl+L")
        self.lock_action.triggered.connect(lambda _checked=False: self.lock())
        self.operator_menu.addAction(self.lock_action)

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

        self.go_actions: dict[str, QAction] = {}
        for number, name in enumerate(self.views, start=1):
            go = QAction(self)
            go.setShortcut(f"Ctrl+{number}")
            go.triggered.connect(lambda _checked=False, name=name: self.show_view(name))
            self.view_menu.addAction(go)
            self.go_actions[name] = go
        self.view_menu.addSeparator()
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
        self._started = True
        if self.operator.session is None:
            self.login_page.refresh()  # does the ledger have an operator yet?

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
        self.idle_lock.disarm()
        platform_access.follow_settings(None)
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
        """Switch the whole application's language and remember it; every open window re-translates at once."""
        settings_view = self.views[access.SETTINGS]
        assert isinstance(settings_view, SettingsView)
        settings_view.set_language(language)

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
        self.operator.retranslate()  # (it enables Log out again for anyone logged in)
        self._sync_actions()
        self.lock_action.setText(_("Lock the console"))
        for name, item in self.view_items.items():
            item.setText(_(access.VIEW_TITLES[name]))
            self.go_actions[name].setText(_(access.VIEW_TITLES[name]))
            retranslate = getattr(self.views[name], "retranslate", None)
            if callable(retranslate):
                retranslate()
        self.login_page.retranslate()
        self.lock_page.retranslate()
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

    # -- views, login and the lock ----------------------------------------------------------------

    def _lock_seconds(self) -> float:
        if self._idle_seconds is not None:
            return self._idle_seconds
        return float(self.context.settings.idle_lock_minutes * 60)

    def visible_views(self) -> list[str]:
        """The views the operator logged in may see, in navigation order (none before a login)."""
        return [name for name in self.views if access.may_see(self.operator.session, name)]

    def current_view(self) -> str | None:
        """The view shown now; None while the log-in or lock page covers the views."""
        if self.pages.currentWidget() is not self.views_page:
            return None
        for name, view in self.views.items():
            if view is self.view_stack.currentWidget():
                return name
        return None

    def show_view(self, name: str) -> bool:
        """Bring ``name`` to the front if the operator may see it (and the console is not locked)."""
        if name not in self.visible_views() or self.locked_by is not None:
            return False
        self.navigation.setCurrentItem(self.view_items[name])
        self.view_stack.setCurrentWidget(self.views[name])
        return True

    def _on_navigated(self, row: int) -> None:
        item = self.navigation.item(row)
        if item is not None and not item.isHidden():
            self.view_stack.setCurrentWidget(self.views[str(item.data(Qt.ItemDataRole.UserRole))])

    @pyqtSlot()
    def _on_operator_changed(self) -> None:
        session = self.operator.session
        if self.locked_by is not None and session is not None:  # someone logged in on the lock page
            if session.operator == self.locked_by:  # unlocked by the same operator: their windows come back
                self.locked_windows.restore()
            self.locked_windows.close()  # another operator took over: the first one's windows close
            self.locked_by = None
        self._sync_views()

    def _sync_views(self) -> None:
        """Show the page and the views that fit who is logged in now and whether the console is locked."""
        session = self.operator.session
        visible = self.visible_views()
        for name, item in self.view_items.items():
            item.setHidden(name not in visible)
        if session is None:
            self.locked_by = None
            self.locked_windows.close()
            self.idle_lock.disarm()
            self.pages.setCurrentWidget(self.login_page)
            self.login_page.prepare()
            if self._started:
                self.login_page.refresh()
        elif self.locked_by is None:
            self.pages.setCurrentWidget(self.views_page)
            if visible and (self.current_view() not in visible or self._shown_for != session.operator):
                self.show_view(visible[0])  # a new operator starts on their first view; one unlocking, where they were
            self._shown_for = session.operator
            self.idle_lock.arm()
        self._sync_actions()

    def _sync_actions(self) -> None:
        """Each action only for who may use it: the bench's for those who see the bench, none of the menus' work
        before a login or over the lock page (where only the password, or another operator's, gets past)."""
        working = self.operator.session is not None and self.locked_by is None
        visible = self.visible_views() if working else []
        for name, go in self.go_actions.items():
            go.setEnabled(name in visible)
        for action in (self.flash_action, self.dismiss_action):
            action.setVisible(access.BENCH in visible)
        self.key_injection.action.setVisible(working and self.key_injection.allowed())
        assert self.bench_menu is not None
        self.bench_menu.setEnabled(working)
        shown = [a for a in self.bench_menu.actions() if a.isVisible() and not a.isSeparator()]
        menu_action = self.bench_menu.menuAction()
        if menu_action is not None:
            menu_action.setVisible(working and bool(shown))
        self.lock_action.setEnabled(working)
        self.operator.logout_action.setEnabled(working)  # not from behind the lock: that needs a password

    def lock(self) -> None:
        """Cover the views with the lock page (someone logged in only); work on the units goes on."""
        session = self.operator.session
        if session is None or self.locked_by is not None:
            return
        self.locked_by = session.operator
        self.idle_lock.disarm()
        self.locked_windows.hide()
        LOG.info("%s", _("The console locked itself; {operator} is still logged in", operator=session.operator))
        self.lock_page.prepare()
        self.pages.setCurrentWidget(self.lock_page)
        self._sync_views()

    def is_locked(self) -> bool:
        return self.locked_by is not None

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
