"""The Settings view: this console's language and idle lock, and the station-wide settings only an admin changes.

Language applies at once and is saved; the rest is saved by "Save", through :meth:`ConsoleContext.update_settings`,
only when every value is valid: a ledger URL SQLAlchemy cannot parse, or a platform configuration file that does
not load, is refused with its reason and nothing is saved.  A ledger URL's password is never shown: the field holds
the URL with ``***`` for it, and a ``***`` left there keeps the password saved.  A new ledger is used from the
console's next start (running jobs keep the station they have).  The trusted release keys are the firmware trust
store's (as ``naiad firmware trust`` / ``trusted``): adding or removing one applies at once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import i18n
from i18n import N_, _
from terminal.errors import NaiadError

from . import access
from .console_settings import IDLE_LOCK_MINUTES, PKCS11, SOFTWARE, ConsoleSettings
from .context import ConsoleContext
from .unit_card import error_texts, repolish

LOG = logging.getLogger(__name__)

LANGUAGE_NAMES: tuple[tuple[str, str], ...] = (("zh_CN", "中文"), ("en", "English"))  # endonyms: not translated
MASK = "***"


class LedgerUrlInvalid(NaiadError):
    message = N_("The ledger address is not a database URL: {reason}")
    msgid_params = ("reason",)
    remedy = N_("Write it as postgresql://USER@HOST/DATABASE (shared ledger) or sqlite:///PATH (this PC only).")


class Pkcs11Incomplete(NaiadError):
    message = N_("A PKCS#11 key store needs both its module file and its token label")
    remedy = N_("Fill in both, or leave both empty to use NAIAD_PKCS11_MODULE and NAIAD_PKCS11_TOKEN.")


class SettingsNotSaved(NaiadError):
    message = N_("The settings could not be saved: {reason}")
    remedy = N_("Check that the configuration folder exists and is writable.")


class KeyNotRemoved(NaiadError):
    message = N_("The release key {key_id} could not be removed: {reason}")
    remedy = N_("Check that the trusted keys folder {path} is writable.")


class ReportsFolderInvalid(NaiadError):
    message = N_("The reports folder must be a full path to a folder, not {path}")
    remedy = N_("Choose the folder with Choose…, or leave it empty for the reports folder in Naiad's data folder.")


def masked_url(url: str | None) -> str:
    """``url`` with its password as ``***`` (an unparsable URL is shown as nothing rather than risk a secret)."""
    if not url:
        return ""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        if "password" in parsed.query:  # libpq also takes the password as a parameter
            parsed = parsed.update_query_dict({"password": MASK})
        return parsed.render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return ""


def checked_url(typed: str, saved: str | None) -> str | None:
    """The URL to save for what the field holds: None when empty; ``***`` as password keeps ``saved``'s password.

    LedgerUrlInvalid when SQLAlchemy cannot parse it (the reason never repeats the URL: it may hold a password)."""
    typed = typed.strip()
    if not typed:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(typed)
    except (ArgumentError, ValueError):
        raise LedgerUrlInvalid(reason=N_("it must start with a database name and ://")) from None
    if not url.drivername or url.drivername.split("+")[0] not in ("sqlite", "postgresql"):
        raise LedgerUrlInvalid(reason=N_("only PostgreSQL and SQLite ledgers are supported"))
    old = None
    if saved:
        try:
            old = make_url(saved)
        except (ArgumentError, ValueError):
            old = None
    if url.password == MASK:
        url = url.set(password=old.password if old is not None else None)
    if url.query.get("password") == MASK:
        kept = old.query.get("password") if old is not None else None
        url = url.update_query_dict({"password": kept}) if kept else url.difference_update_query(["password"])
    return url.render_as_string(hide_password=False)


def checked_reports_dir(path: str) -> str | None:
    """The reports folder to save (None when empty): a full path that is not a file (made when a report is
    written); ReportsFolderInvalid otherwise."""
    path = path.strip()
    if not path:
        return None
    if not Path(path).is_absolute() or Path(path).is_file():
        raise ReportsFolderInvalid(path=path)
    return path


def checked_platform_config(path: str) -> str | None:
    """The platform configuration file to save (None when empty), after it loads; its error otherwise."""
    path = path.strip()
    if not path:
        return None
    from enrollment.config import PlatformConfig

    PlatformConfig.read(path)
    return path


class SettingsView(QWidget):
    """Settings for everyone logged in; the station-wide group is read-only but for an admin."""

    def __init__(self, context: ConsoleContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsView")
        self.context = context
        self._error: BaseException | None = None
        self._saved_note = False
        from firmware.signing import TrustStore

        self.trust_store = TrustStore()

        # -- this console's own ----------------------------------------------------------------------------
        self.console_box = QGroupBox()
        self.language_caption, self.idle_caption = QLabel(), QLabel()
        self.language_combo = QComboBox()
        self.language_combo.setObjectName("settingsLanguage")
        for code, name in LANGUAGE_NAMES:
            self.language_combo.addItem(name, code)
        self.language_combo.activated.connect(lambda index: self.set_language(str(self.language_combo.itemData(index))))
        self.idle_spin = QSpinBox()
        self.idle_spin.setObjectName("settingsIdleMinutes")
        self.idle_spin.setRange(*IDLE_LOCK_MINUTES)
        console_form = QFormLayout(self.console_box)
        console_form.addRow(self.language_caption, self.language_combo)
        console_form.addRow(self.idle_caption, self.idle_spin)

        # -- the station's (admin) -------------------------------------------------------------------------
        self.station_box = QGroupBox()
        self.station_note = QLabel()
        self.station_note.setWordWrap(True)
        self.ledger_caption, self.keystore_caption = QLabel(), QLabel()
        self.module_caption, self.token_caption = QLabel(), QLabel()
        self.platform_caption, self.reports_caption = QLabel(), QLabel()
        self.ledger_edit = QLineEdit()
        self.ledger_edit.setObjectName("settingsLedgerUrl")
        self.keystore_combo = QComboBox()
        self.keystore_combo.setObjectName("settingsKeyStore")
        self.keystore_combo.addItem("", SOFTWARE)
        self.keystore_combo.addItem("PKCS#11", PKCS11)
        self.keystore_combo.currentIndexChanged.connect(lambda _index: self._sync_keystore())
        self.module_edit, self.token_edit = QLineEdit(), QLineEdit()
        self.platform_edit, self.reports_edit = QLineEdit(), QLineEdit()
        self.platform_button, self.reports_button = QPushButton(), QPushButton()
        self.platform_button.clicked.connect(self._choose_platform_file)
        self.reports_button.clicked.connect(self._choose_reports_dir)
        station_form = QFormLayout()
        station_form.addRow(self.ledger_caption, self.ledger_edit)
        station_form.addRow(self.keystore_caption, self.keystore_combo)
        station_form.addRow(self.module_caption, self.module_edit)
        station_form.addRow(self.token_caption, self.token_edit)
        station_form.addRow(self.platform_caption, _row(self.platform_edit, self.platform_button))
        station_form.addRow(self.reports_caption, _row(self.reports_edit, self.reports_button))
        self.keys_caption = QLabel()
        self.keys_list = QListWidget()
        self.keys_list.setObjectName("trustedKeys")
        self.keys_list.setMaximumHeight(120)
        self.keys_list.itemSelectionChanged.connect(self._sync_enabled)
        self.trust_button, self.remove_button = QPushButton(), QPushButton()
        self.trust_button.clicked.connect(self._choose_key_file)
        self.remove_button.clicked.connect(self._remove_selected)
        station_layout = QVBoxLayout(self.station_box)
        station_layout.addWidget(self.station_note)
        station_layout.addLayout(station_form)
        station_layout.addWidget(self.keys_caption)
        station_layout.addWidget(self.keys_list)
        key_buttons = QHBoxLayout()
        key_buttons.addWidget(self.trust_button)
        key_buttons.addWidget(self.remove_button)
        key_buttons.addStretch(1)
        station_layout.addLayout(key_buttons)

        # -- saving ----------------------------------------------------------------------------------------
        self.message_label = QLabel()
        self.message_label.setObjectName("cardStep")  # red when failed="true"
        self.message_label.setWordWrap(True)
        self.message_label.hide()
        self.save_button = QPushButton()
        self.save_button.setObjectName("settingsSave")
        self.save_button.clicked.connect(self.save)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.console_box)
        layout.addWidget(self.station_box)
        layout.addWidget(self.message_label)
        layout.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignRight)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        context.operator.changed.connect(self._on_operator_changed)
        context.settings_changed.connect(lambda _settings: self.load())
        self.load()
        self.retranslate()

    # -- showing ---------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Fill the fields from the context's settings (the ledger URL masked) and the trust store."""
        settings = self.context.settings
        self.idle_spin.setValue(settings.idle_lock_minutes)
        self.ledger_edit.setText(masked_url(settings.ledger_url))
        self.keystore_combo.setCurrentIndex(max(0, self.keystore_combo.findData(settings.effective_keystore())))
        self.module_edit.setText(settings.pkcs11_module or "")
        self.token_edit.setText(settings.pkcs11_token or "")
        self.platform_edit.setText(settings.platform_config or "")
        self.reports_edit.setText(settings.reports_dir or "")
        self._fill_keys()
        self._sync_language()
        self._sync_enabled()

    def _on_operator_changed(self) -> None:
        """Another operator (or nobody): the fields show the saved settings again, with no earlier message."""
        self._show(None)
        self.load()

    def _fill_keys(self) -> None:
        from firmware.signing import short_key_id

        self.keys_list.clear()
        for kid in sorted(self.trust_store.keys()):
            item = QListWidgetItem(short_key_id(kid))
            item.setData(Qt.ItemDataRole.UserRole, kid)
            item.setToolTip(kid)
            self.keys_list.addItem(item)

    def key_ids(self) -> list[str]:
        items = (self.keys_list.item(row) for row in range(self.keys_list.count()))
        return [str(item.data(Qt.ItemDataRole.UserRole)) for item in items if item is not None]

    def may_change_station(self) -> bool:
        return access.may_change_station_settings(self.context.operator.session)

    def _sync_enabled(self) -> None:
        admin = self.may_change_station()
        for widget in (self.ledger_edit, self.module_edit, self.token_edit, self.platform_edit, self.reports_edit):
            widget.setReadOnly(not admin)
        for button in (self.keystore_combo, self.platform_button, self.reports_button, self.trust_button):
            button.setEnabled(admin)
        self.remove_button.setEnabled(admin and bool(self.keys_list.selectedItems()))
        self._sync_keystore()
        self.station_note.setText(
            _("Only an admin may change these; they apply to the whole station.")
            if not admin
            else _("These apply to the whole station. A new ledger is used from the console's next start.")
        )

    def _sync_keystore(self) -> None:
        pkcs11 = self.keystore_combo.currentData() == PKCS11
        self.module_edit.setEnabled(pkcs11)
        self.token_edit.setEnabled(pkcs11)

    def _sync_language(self) -> None:
        self.language_combo.setCurrentIndex(max(0, self.language_combo.findData(i18n.get_language())))

    def _show(self, error: BaseException | None, saved: bool = False) -> None:
        self._error, self._saved_note = error, saved
        self._draw_message()

    def _draw_message(self) -> None:
        if self._error is not None:
            message, remedy = error_texts(self._error)
            self.message_label.setText("\n".join(part for part in (message, remedy) if part))
        elif self._saved_note:
            self.message_label.setText(_("Settings saved."))
        else:
            self.message_label.hide()
            return
        self.message_label.setProperty("failed", self._error is not None)
        self.message_label.show()
        repolish(self.message_label)

    # -- changing --------------------------------------------------------------------------------------------

    def set_language(self, language: str) -> None:
        """Switch the console's language at once and remember it."""
        i18n.set_language(language)
        try:
            self.context.update_settings(replace(self.context.settings, language=i18n.get_language()))
        except OSError as exc:
            self._show(SettingsNotSaved(reason=exc.strerror or type(exc).__name__))

    def edited(self) -> ConsoleSettings:
        """The settings the fields hold; the error (nothing changed) when one is not valid."""
        settings = self.context.settings
        changed = replace(settings, idle_lock_minutes=self.idle_spin.value())
        if not self.may_change_station():
            return changed
        module, token = self.module_edit.text().strip() or None, self.token_edit.text().strip() or None
        chosen = str(self.keystore_combo.currentData())
        # not set here and left as the environment gives it: stays not set (follows NAIAD_KEYSTORE)
        keystore = chosen if settings.keystore is not None or chosen != settings.effective_keystore() else None
        if chosen == PKCS11 and (module is None) != (token is None):
            raise Pkcs11Incomplete()
        return replace(
            changed,
            ledger_url=checked_url(self.ledger_edit.text(), settings.ledger_url),
            keystore=keystore,
            pkcs11_module=module,
            pkcs11_token=token,
            platform_config=checked_platform_config(self.platform_edit.text()),
            reports_dir=checked_reports_dir(self.reports_edit.text()),
        )

    def save(self) -> bool:
        """Check and save the fields; False (and why shown) when one is not valid or the file cannot be written."""
        try:
            settings = self.edited()
        except NaiadError as exc:
            self._show(exc)
            return False
        ledger_changed = settings.ledger_url != self.context.settings.ledger_url
        try:
            self.context.update_settings(settings)
        except OSError as exc:
            self._show(SettingsNotSaved(reason=exc.strerror or type(exc).__name__))
            return False
        if ledger_changed:
            LOG.info("%s", _("The new ledger is used from the console's next start."))
        self._show(None, saved=True)
        return True

    # -- files and keys --------------------------------------------------------------------------------------

    def _choose_platform_file(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, _("Platform configuration"), "", "TOML (*.toml);;* (*)")
        if path:
            self.platform_edit.setText(path)

    def _choose_reports_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, _("Reports folder"))
        if path:
            self.reports_edit.setText(path)

    def _choose_key_file(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, _("Trust a release key"), "", "PEM (*.pem);;* (*)")
        if path:
            self.trust_key_file(Path(path))

    def trust_key_file(self, path: Path) -> str | None:
        """Trust the release public key in ``path`` (admin only); its key id, or None (and why shown)."""
        if not self.may_change_station():
            return None
        try:
            kid = self.trust_store.add(path)
        except NaiadError as exc:
            self._show(exc)
            return None
        LOG.info("%s", _("Now trusting release key {key_id}", key_id=kid[:16]))
        self._show(None)
        self._fill_keys()
        return kid

    def _remove_selected(self) -> None:
        items = self.keys_list.selectedItems()
        if not items:
            return
        kid = str(items[0].data(Qt.ItemDataRole.UserRole))
        answer = QMessageBox.question(
            self,
            _("Remove a trusted key"),
            _("Firmware signed only by {key_id} will be refused on this station. Remove the key?", key_id=kid[:16]),
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_key(kid)

    def remove_key(self, kid: str) -> bool:
        """Stop trusting the release key ``kid`` (admin only)."""
        if not self.may_change_station():
            return False
        try:
            removed = self.trust_store.remove(kid)
        except OSError as exc:
            self._show(
                KeyNotRemoved(
                    key_id=kid[:16], reason=exc.strerror or type(exc).__name__, path=str(self.trust_store.directory)
                )
            )
            return False
        if removed:
            LOG.info("%s", _("No longer trusting release key {key_id}", key_id=kid[:16]))
        self._show(None)
        self._fill_keys()
        return removed

    # -- language ----------------------------------------------------------------------------------------------

    def retranslate(self) -> None:
        self.console_box.setTitle(_("This console"))
        self.language_caption.setText(_("Language:"))
        self.idle_caption.setText(_("Lock after idle (minutes):"))
        self.idle_spin.setToolTip(_("The console locks itself after this long without a key press or a mouse click"))
        self.station_box.setTitle(_("This station"))
        self.ledger_caption.setText(_("Ledger URL:"))
        env_url = masked_url(ConsoleSettings().effective_ledger_url())
        self.ledger_edit.setPlaceholderText(
            _("From NAIAD_LEDGER: {url}", url=env_url) if env_url else _("Empty: the ledger file on this PC")
        )
        self.ledger_edit.setToolTip(_("A password in the URL is shown as ***; leave *** to keep it"))
        self.keystore_caption.setText(_("Key store:"))
        self.keystore_combo.setItemText(0, _("Software (passphrase)"))
        self.module_caption.setText(_("PKCS#11 module:"))
        self.token_caption.setText(_("Token label:"))
        self.platform_caption.setText(_("Platform configuration:"))
        self.platform_edit.setPlaceholderText(_("Empty: NAIAD_PLATFORM_CONFIG"))
        self.reports_caption.setText(_("Reports folder:"))
        self.reports_edit.setPlaceholderText(_("Empty: the reports folder in Naiad's data folder"))
        self.platform_button.setText(_("Choose…"))
        self.reports_button.setText(_("Choose…"))
        self.keys_caption.setText(_("Trusted release keys (firmware signed by one of these is accepted):"))
        self.trust_button.setText(_("Trust a key file…"))
        self.remove_button.setText(_("Remove"))
        self.save_button.setText(_("Save"))
        self._sync_language()
        self._sync_enabled()
        self._draw_message()


def _row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row
