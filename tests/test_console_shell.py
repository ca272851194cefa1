"""The console shell: the log-in page, the views each role sees, the idle lock, and the Settings view."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import IdleDiscovery
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QAbstractButton, QComboBox, QLabel, QLineEdit, QWidget

import i18n
from console import access
from console.app import apply_language
from console.composition import Wiring
from console.console_settings import ConsoleSettings
from console.main_window import MainWindow
from console.operator_login import LoginForm
from console.recipe_job import RecipeRequest, recipe_job
from console.settings_view import SettingsView, masked_url
from console.workers import Job
from enrollment.config import PlatformConfig
from firmware.signing import generate_release_key
from provisioning import operators as ops
from provisioning.ledger import Ledger

WAIT_MS = 5000
NOWHERE = Wiring(Path("/nonexistent-sim"))
PASSWORDS = {
    "root": "root-Secret-8731",
    "olga": "olga-Secret-5521",
    "ivy": "ivy-Secret-2290",
    "cara": "cara-Secret-7710",
    "sam": "sam-Secret-4402",
}
ROLES = {"root": "admin", "olga": "operator", "ivy": "installer", "cara": "custodian", "sam": "support"}
DB_SECRET = "db-Pw-Kq83tz"
VIEWS_BY_ROLE = {
    "installer": [access.WIZARD, access.SETTINGS],
    "operator": [access.BENCH, access.WIZARD, access.SUPPORT, access.SETTINGS],
    "support": [access.SUPPORT, access.SETTINGS],
    "admin": [access.SETTINGS],
    "custodian": [access.SETTINGS],
}


class LedgerStation:
    """Just what the shell asks of a station: its ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    monkeypatch.setattr(i18n, "_language", "en")


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with one operator of each role, made once: each test gets a copy (making the schema is the slow
    part)."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ops, "SCRYPT_N", 2**8)
        with Ledger.open(f"sqlite:///{path}", station="bench-1") as opened:
            ops.add_operator(opened, None, "root", "admin", PASSWORDS["root"])
            admin = ops.login(opened, "root", PASSWORDS["root"])
            for name, role in ROLES.items():
                if name != "root":
                    ops.add_operator(opened, admin, name, role, PASSWORDS[name])
    return path


@pytest.fixture
def ledger(ledger_file: Path, tmp_path: Path) -> Iterator[Ledger]:
    copy = tmp_path / "ledger.sqlite"
    shutil.copyfile(ledger_file, copy)
    with Ledger.open(f"sqlite:///{copy}", station="bench-1") as opened:
        yield opened


def make_window(qtbot: Any, ledger: Ledger, tmp_path: Path, **kwargs: Any) -> MainWindow:
    station = LedgerStation(ledger)
    kwargs.setdefault("settings_path", tmp_path / "console.json")
    win = MainWindow(NOWHERE, make_discovery=IdleDiscovery, make_station=lambda: station, **kwargs)
    qtbot.addWidget(win)
    win.show()
    win.start()
    return win


@pytest.fixture
def window(qtbot: Any, ledger: Ledger, tmp_path: Path) -> Iterator[MainWindow]:
    win = make_window(qtbot, ledger, tmp_path)
    yield win
    win.close()


def submit(qtbot: Any, form: LoginForm, name: str, password: str) -> None:
    form.name_edit.setText(name)
    form.password_edit.setText(password)
    form.login_button.click()
    qtbot.waitUntil(lambda: not form.checking, timeout=WAIT_MS)


def every_text(root: QWidget) -> str:
    parts: list[str] = []
    for label in root.findChildren(QLabel):
        parts += [label.text(), label.toolTip()]
    for edit in root.findChildren(QLineEdit):
        parts += [edit.text(), edit.placeholderText(), edit.toolTip()]
    for button in root.findChildren(QAbstractButton):
        parts += [button.text(), button.toolTip()]
    for combo in root.findChildren(QComboBox):
        parts += [combo.itemText(i) for i in range(combo.count())]
    return "\n".join(parts)


def settings_view(window: MainWindow) -> SettingsView:
    view = window.views[access.SETTINGS]
    assert isinstance(view, SettingsView)
    return view


# -- log in, the views by role ---------------------------------------------------------------------------------


def test_console_opens_on_the_log_in_page_and_refuses_a_wrong_password(qtbot: Any, window: MainWindow) -> None:
    assert window.pages.currentWidget() is window.login_page and window.current_view() is None
    assert window.visible_views() == [] and not window.bench_menu.isEnabled()
    form = window.login_page.form
    submit(qtbot, form, "olga", "not-her-password")
    assert window.operator.session is None and window.current_view() is None
    assert form.error_label.isVisible() and "Wrong operator name or password" in form.error_label.text()
    assert form.password_edit.text() == ""
    assert "not-her-password" not in every_text(window)


def test_each_role_sees_only_its_views(qtbot: Any, window: MainWindow) -> None:
    for name in ("ivy", "olga", "sam", "root", "cara"):
        submit(qtbot, window.login_page.form, name, PASSWORDS[name])
        assert window.operator.session is not None and window.pages.currentWidget() is window.views_page
        expected = VIEWS_BY_ROLE[ROLES[name]]
        assert window.visible_views() == expected
        assert [n for n, item in window.view_items.items() if not item.isHidden()] == expected
        assert window.current_view() == expected[0]
        assert [n for n, go in window.go_actions.items() if go.isEnabled()] == expected
        hidden = next((n for n in access.VIEWS if n not in expected), None)
        if hidden is not None:
            window.go_actions[hidden].trigger()  # Ctrl+N of a view not allowed changes nothing
            assert not window.show_view(hidden) and window.current_view() == expected[0]
        window.go_actions[access.SETTINGS].trigger()
        assert window.current_view() == access.SETTINGS
        view = settings_view(window)
        assert view.may_change_station() is (ROLES[name] == "admin")
        assert view.ledger_edit.isReadOnly() is (ROLES[name] != "admin")
        assert view.trust_button.isEnabled() is (ROLES[name] == "admin")
        assert window.key_injection.action.isVisible() is (ROLES[name] == "operator")
        window.operator.log_out()
        assert window.pages.currentWidget() is window.login_page and window.visible_views() == []


def test_an_empty_ledger_says_how_to_add_the_first_operator(qtbot: Any, tmp_path: Path) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'empty.sqlite'}", station="bench-1") as empty:
        win = make_window(qtbot, empty, tmp_path)
        qtbot.waitUntil(lambda: win.login_page.hint.isVisible(), timeout=WAIT_MS)
        assert "naiad operator add" in win.login_page.hint.text()
        win.close()


# -- the idle lock ---------------------------------------------------------------------------------------------


def test_idle_console_locks_and_only_the_password_unlocks_while_work_goes_on(
    qtbot: Any, ledger: Ledger, tmp_path: Path
) -> None:
    window = make_window(qtbot, ledger, tmp_path, idle_seconds=0.2)
    submit(qtbot, window.login_page.form, "olga", PASSWORDS["olga"])
    assert window.current_view() == access.BENCH
    release = threading.Event()
    job = window.workers.start(Job(lambda _listener: release.wait(5), name="long work"))
    with qtbot.waitSignal(job.succeeded, timeout=WAIT_MS):
        qtbot.waitUntil(window.is_locked, timeout=WAIT_MS)
        assert window.pages.currentWidget() is window.lock_page and window.current_view() is None
        assert "olga" in window.lock_page.title.text() and not window.bench_menu.isEnabled()
        release.set()  # work started before the lock ends while locked
    form = window.lock_page.form
    assert form.name_edit.text() == "olga"
    submit(qtbot, form, "olga", "wrong-Password-1")
    assert window.is_locked() and form.error_label.isVisible()
    window.idle_lock.set_interval(60)  # no new lock while the rest is checked
    submit(qtbot, form, "olga", PASSWORDS["olga"])
    assert not window.is_locked() and window.current_view() == access.BENCH
    assert window.idle_lock.armed()

    window.lock_action.trigger()  # Ctrl+L; another operator logs in instead
    assert window.is_locked()
    window.lock_page.other_button.click()
    submit(qtbot, form, "ivy", PASSWORDS["ivy"])
    session = window.operator.session
    assert session is not None and session.operator == "ivy" and not window.is_locked()
    assert window.current_view() == access.WIZARD
    window.close()


def bench_actions_shown(window: MainWindow) -> dict[str, bool]:
    menu = window.bench_menu.menuAction()
    assert menu is not None
    return {
        "flash": window.flash_action.isVisible(),
        "dismiss": window.dismiss_action.isVisible(),
        "inject": window.key_injection.action.isVisible(),
        "menu": menu.isVisible(),
    }


def test_bench_actions_only_for_the_bench_never_before_a_login_nor_behind_the_lock(
    qtbot: Any, window: MainWindow
) -> None:
    nothing = {"flash": False, "dismiss": False, "inject": False, "menu": False}
    assert bench_actions_shown(window) == nothing
    submit(qtbot, window.login_page.form, "ivy", PASSWORDS["ivy"])  # an installer: no bench, no keys
    assert bench_actions_shown(window) == {"flash": False, "dismiss": False, "inject": False, "menu": True}
    window.operator.log_out()
    assert bench_actions_shown(window) == nothing
    submit(qtbot, window.login_page.form, "olga", PASSWORDS["olga"])
    assert bench_actions_shown(window) == {"flash": True, "dismiss": True, "inject": True, "menu": True}
    window.lock()
    assert bench_actions_shown(window) == nothing
    assert not any(go.isEnabled() for go in window.go_actions.values())
    assert not window.operator.logout_action.isEnabled()  # only a password gets past the lock
    window.set_language("zh_CN")  # re-reading the texts does not bring them back
    assert bench_actions_shown(window) == nothing and not window.operator.logout_action.isEnabled()
    window.set_language("en")


def test_the_lock_hides_windows_opened_behind_it_and_a_question_it_ended(
    qtbot: Any, window: MainWindow, tmp_path: Path
) -> None:
    submit(qtbot, window.login_page.form, "root", PASSWORDS["root"])
    view = settings_view(window)
    (tmp_path / "release").mkdir()
    kid = view.trust_key_file(generate_release_key(tmp_path / "release").public)
    view.keys_list.setCurrentRow(0)
    QTimer.singleShot(50, window.lock)  # the idle lock fires while "Remove the key?" waits for an answer
    view._remove_selected()
    assert window.is_locked() and view.key_ids() == [kid]  # the question ended unanswered: nothing removed
    info = window.show_info("NAIAD0001", {"model": "F1"})  # a job that ends behind the lock
    qtbot.waitUntil(lambda: not info.isVisible(), timeout=WAIT_MS)
    submit(qtbot, window.lock_page.form, "root", PASSWORDS["root"])  # the question is gone: no traceback
    assert not window.is_locked() and info.isVisible()


def test_a_recipe_job_runs_as_the_operator_who_started_it(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provisioning.recipes import load_recipe

    seen: list[object] = []

    def resources(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[2])  # the session
        raise RuntimeError("stop here")

    monkeypatch.setattr("console.station_resources.build_resources", resources)
    submit(qtbot, window.login_page.form, "olga", PASSWORDS["olga"])
    job = recipe_job(window.context, RecipeRequest(load_recipe("support-diagnose"), ("NAIAD0001",)))
    window.operator.log_out()  # before a worker takes the job up (the pool may be busy)
    with qtbot.waitSignal(job.failed, timeout=WAIT_MS):
        window.workers.start(job)
    assert [getattr(session, "operator", None) for session in seen] == ["olga"]


# -- settings ------------------------------------------------------------------------------------------------------


def platform_file(tmp_path: Path) -> Path:
    platform_key = rsa.generate_private_key(65537, 2048).public_key()
    config = PlatformConfig(
        url="https://127.0.0.1:8443/gateway",
        app_id="2026000000000001",
        key_label="station-rsa",
        supplier_id="2088000000000100",
        platform_public_key=platform_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    )
    path = tmp_path / "platform.toml"
    path.write_text(config.dumps(), encoding="utf-8")
    return path


def test_settings_are_saved_and_read_back(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    submit(qtbot, window.login_page.form, "root", PASSWORDS["root"])
    view = settings_view(window)
    platform = platform_file(tmp_path)
    view.idle_spin.setValue(7)
    view.ledger_edit.setText(f"sqlite:///{tmp_path / 'other.sqlite'}")
    view.keystore_combo.setCurrentIndex(view.keystore_combo.findData("pkcs11"))
    view.module_edit.setText("/usr/lib/softhsm/libsofthsm2.so")
    view.token_edit.setText("naiad")
    view.platform_edit.setText(str(platform))
    view.reports_edit.setText(str(tmp_path / "reports"))
    view.save_button.click()
    assert view.message_label.text() == "Settings saved."
    saved = ConsoleSettings.load(tmp_path / "console.json")
    assert saved == window.context.settings
    assert (saved.idle_lock_minutes, saved.keystore, saved.pkcs11_token) == (7, "pkcs11", "naiad")
    assert saved.platform_config == str(platform) and saved.ledger_url == f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert saved.effective_keystore() == "pkcs11" and window.idle_lock.interval_ms() == 7 * 60 * 1000

    view.language_combo.setCurrentIndex(view.language_combo.findData("zh_CN"))
    view.language_combo.activated.emit(view.language_combo.currentIndex())
    assert i18n.get_language() == "zh_CN" and window.operator.logout_action.text() == "退出登录"
    assert ConsoleSettings.load(tmp_path / "console.json").language == "zh_CN"
    window.set_language("en")  # the toolbar's switch saves too
    assert ConsoleSettings.load(tmp_path / "console.json").language == "en"


@pytest.mark.parametrize("field", ["ledger", "platform", "pkcs11", "reports"])
def test_a_bad_value_is_refused_and_nothing_saved(qtbot: Any, window: MainWindow, tmp_path: Path, field: str) -> None:
    submit(qtbot, window.login_page.form, "root", PASSWORDS["root"])
    view = settings_view(window)
    view.idle_spin.setValue(9)
    if field == "ledger":
        view.ledger_edit.setText("not a url")
        expected = "The ledger address is not a database URL"
    elif field == "platform":
        bad = tmp_path / "bad.toml"
        bad.write_text("[platform]\nurl = 3\n", encoding="utf-8")
        view.platform_edit.setText(str(bad))
        expected = "is not usable"
    elif field == "pkcs11":
        view.keystore_combo.setCurrentIndex(view.keystore_combo.findData("pkcs11"))
        view.module_edit.setText("/usr/lib/softhsm/libsofthsm2.so")
        expected = "needs both its module file and its token label"
    else:
        view.reports_edit.setText("reports")
        expected = "The reports folder must be a full path to a folder, not reports"
    view.save_button.click()
    assert view.message_label.isVisible() and expected in view.message_label.text()
    assert not (tmp_path / "console.json").exists() and window.context.settings == ConsoleSettings()


def test_a_ledger_password_is_never_shown(
    qtbot: Any, ledger: Ledger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://naiad:{DB_SECRET}@db.example:5432/naiad"
    window = make_window(qtbot, ledger, tmp_path, settings=ConsoleSettings(ledger_url=url))
    for name in ("root", "cara"):
        submit(qtbot, window.login_page.form, name, PASSWORDS[name])
        view = settings_view(window)
        assert view.ledger_edit.text() == "postgresql://naiad:***@db.example:5432/naiad"
        assert DB_SECRET not in every_text(window)
        view.save_button.click()  # *** kept: the password saved stays
        assert window.context.settings.ledger_url == url
        assert DB_SECRET not in every_text(window)
        window.operator.log_out()
    assert DB_SECRET not in caplog.text and DB_SECRET not in "\n".join(window.log_pane.lines())
    assert DB_SECRET not in repr(window.context.settings)
    saved = tmp_path / "console.json"
    assert ConsoleSettings.load(saved).ledger_url == url and saved.stat().st_mode & 0o077 == 0  # this user's only
    assert not (tmp_path / "console.json.tmp").exists()
    window.close()
    in_query = f"postgresql://naiad@db.example/naiad?password={DB_SECRET}&sslmode=require"
    assert DB_SECRET not in masked_url(in_query)


def test_saving_as_admin_keeps_the_key_store_of_the_environment(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAIAD_KEYSTORE", "pkcs11")
    submit(qtbot, window.login_page.form, "root", PASSWORDS["root"])
    view = settings_view(window)
    assert view.keystore_combo.currentData() == "pkcs11"  # what is in force, not "software" for "not set"
    view.idle_spin.setValue(12)
    assert view.save()
    assert window.context.settings.keystore is None and window.context.settings.effective_keystore() == "pkcs11"


def test_trusted_release_keys_are_added_and_removed(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    submit(qtbot, window.login_page.form, "root", PASSWORDS["root"])
    view = settings_view(window)
    assert view.key_ids() == []
    (tmp_path / "release").mkdir()
    files = generate_release_key(tmp_path / "release")
    kid = view.trust_key_file(files.public)
    assert kid == files.key_id and view.key_ids() == [kid] and view.keys_list.count() == 1
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("hello", encoding="utf-8")
    assert view.trust_key_file(bad) is None and view.message_label.isVisible()
    assert view.remove_key(kid) and view.key_ids() == []
    assert view.trust_store.keys() == {}


@pytest.mark.parametrize(
    ("system", "language"),
    [("zh_CN.UTF-8", "zh_CN"), ("Chinese (Simplified)_China", "zh_CN"), ("en_US.UTF-8", "en"), ("C", "en")],
)
def test_a_chinese_system_gets_chinese_unless_the_settings_say_otherwise(
    monkeypatch: pytest.MonkeyPatch, system: str, language: str
) -> None:
    monkeypatch.setattr(i18n, "_language", None)
    monkeypatch.delenv("NAIAD_LANG", raising=False)
    monkeypatch.setenv("LC_ALL", system)
    assert i18n.get_language() == language
    apply_language(ConsoleSettings())
    assert i18n.get_language() == language
    apply_language(ConsoleSettings(language="en"))
    assert i18n.get_language() == "en"


@pytest.mark.parametrize(("shown", "language"), [(["zh-Hans-CN", "en-US"], "zh_CN"), (["en-GB"], "en")])
def test_without_lang_the_system_display_language_decides(
    monkeypatch: pytest.MonkeyPatch, shown: list[str], language: str
) -> None:
    for name in ("NAIAD_LANG", "LC_ALL", "LANG"):  # Windows, or a macOS app started from the Finder
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(i18n, "_language", None)
    apply_language(ConsoleSettings(), system_languages=shown)
    assert i18n.get_language() == language
