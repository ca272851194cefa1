"""The console's layout does not clip, in Chinese and in English, at 1280x800: every page the shell shows (log-in,
each view an operator and an admin see, the lock page) fits the window, and every visible text fits its widget.

No simulated world: the shell over a ledger with two operators and an idle bus, to which the test adds units itself
(the bench's cards and the wizard's unit list then have content).  A text is measured with the widget's own font
against the rectangle the style draws it in, so a label, button, check box, combo box or placeholder that is cut
off fails; a wrapped label must get the height its text needs at its width.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import IdleDiscovery, device
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QFontDatabase
from PyQt6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QStyle,
    QStyleOptionButton,
    QStyleOptionComboBox,
    QStyleOptionFrame,
    QWidget,
)

import i18n
from console import access
from console.composition import Wiring
from console.main_window import MainWindow
from provisioning import operators as ops
from provisioning.ledger import Ledger
from terminal.errors import NaiadError

SIZE = (1280, 800)
LANGUAGES = ("zh_CN", "en")
PASSWORDS = {"root": "root-Secret-8731", "olga": "olga-Secret-5521"}
SERIALS = ("DF2A00001", "DF2A00002", "DF2A00003", "DF2A00004")


class UnitJammed(NaiadError):
    """A card's error, as long as the station's real ones, to see it laid out."""

    message = "Unit {serial} did not answer while its camera was being calibrated (the link timed out after 30 s)"
    remedy = "Check the USB cable and the hub's power, unplug the unit and plug it back in, then press Start again."


class LedgerStation:
    """Just what the shell asks of a station: its ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def close(self) -> None:
        pass


def test_a_cjk_font_is_there_to_measure_with(qapp: Any) -> None:
    """Measuring Chinese text means nothing in boxes of missing glyphs: the offscreen platform needs a CJK font."""
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    assert listed.strip(), "no Chinese font (Debian: apt install fonts-wqy-zenhei)"
    assert QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese)


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "ledger.sqlite"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ops, "SCRYPT_N", 2**8)
        with Ledger.open(f"sqlite:///{path}", station="bench-1") as opened:
            ops.add_operator(opened, None, "root", "admin", PASSWORDS["root"])
            ops.add_operator(
                opened, ops.login(opened, "root", PASSWORDS["root"]), "olga", "operator", PASSWORDS["olga"]
            )
    return path


@pytest.fixture
def window(qtbot: Any, ledger_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)
    language = i18n.get_language()
    monkeypatch.setenv("NAIAD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAIAD_DATA_DIR", str(tmp_path / "data"))
    copy = tmp_path / "ledger.sqlite"
    shutil.copyfile(ledger_file, copy)
    with Ledger.open(f"sqlite:///{copy}", station="bench-1") as ledger:
        station = LedgerStation(ledger)
        win = MainWindow(
            Wiring(Path("/nonexistent-sim")),
            make_discovery=IdleDiscovery,
            make_station=lambda: station,
            settings_path=tmp_path / "console.json",
        )
        qtbot.addWidget(win)
        win.resize(*SIZE)
        win.show()
        win.start()
        yield win
        win.close()
        i18n.set_language(language)  # the catalog too, not only the name: the next file starts as it would alone


# -- what a clip is ----------------------------------------------------------------------------------------------


def plain(text: str) -> str:
    """A widget's text as drawn: mnemonics' ampersands dropped (a doubled one is a literal)."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def widest_line(widget: QWidget, text: str) -> int:
    metrics = widget.fontMetrics()
    return max((metrics.horizontalAdvance(line) for line in plain(text).splitlines()), default=0)


def label_clip(label: QLabel) -> str | None:
    if not label.text() or (label.pixmap() is not None and not label.pixmap().isNull()):
        return None
    width = label.contentsRect().width() - 2 * label.margin()
    if label.wordWrap():
        needed = label.heightForWidth(label.width())
        if needed > label.height():
            return f"wrapped, needs {needed} px of height, has {label.height()}"
        return None
    if label.textFormat() == Qt.TextFormat.RichText or Qt.mightBeRichText(label.text()):
        needed = label.sizeHint().width()  # the laid-out document's width, margins included
        width = label.width()
    else:
        needed = widest_line(label, label.text())
    if label.sizeHint().height() > label.height() + 1:
        return f"needs {label.sizeHint().height()} px of height, has {label.height()}"
    return f"needs {needed} px, has {width}" if needed > width else None


def button_clip(button: QAbstractButton) -> str | None:
    if not button.text():
        return None
    needed = widest_line(button, button.text())
    style = button.style()
    assert style is not None
    if isinstance(button, (QCheckBox, QRadioButton)):
        option = QStyleOptionButton()
        button.initStyleOption(option)  # type: ignore[attr-defined]
        element = (
            QStyle.SubElement.SE_CheckBoxContents
            if isinstance(button, QCheckBox)
            else QStyle.SubElement.SE_RadioButtonContents
        )
        width = style.subElementRect(element, option, button).width()
    elif isinstance(button, QPushButton):
        option = QStyleOptionButton()
        button.initStyleOption(option)
        width = style.subElementRect(QStyle.SubElement.SE_PushButtonContents, option, button).width()
        if not button.icon().isNull():
            width -= button.iconSize().width() + 4
    else:  # a tool button: its size hint is its text and icon
        needed, width = button.sizeHint().width(), button.width()
    return f"needs {needed} px, has {width}" if needed > width else None


def combo_clip(combo: QComboBox) -> str | None:
    if combo.isEditable() or not combo.currentText():
        return None
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    style = combo.style()
    assert style is not None
    field = style.subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    needed = widest_line(combo, combo.currentText())
    if not combo.itemIcon(combo.currentIndex()).isNull():
        needed += combo.iconSize().width() + 4
    return f"needs {needed} px, has {field.width()}" if needed > field.width() else None


def placeholder_clip(edit: QLineEdit) -> str | None:
    if edit.text() or not edit.placeholderText():
        return None
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    style = edit.style()
    assert style is not None
    area = style.subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    width = area.width() - margins.left() - margins.right() - 4  # QLineEdit's own horizontal margin, 2 px a side
    needed = widest_line(edit, edit.placeholderText())
    return f"placeholder needs {needed} px, has {width}" if needed > width else None


def item_clips(items: QListWidget) -> list[str]:
    found = []
    viewport = items.viewport()
    assert viewport is not None
    for row in range(items.count()):
        item = items.item(row)
        if item is None or item.isHidden() or not item.text():
            continue
        if "\n" in item.text():
            continue
        needed = items.fontMetrics().horizontalAdvance(item.text())
        width = items.visualItemRect(item).width() - 8  # the item's text margins
        if items.wordWrap() is False and needed > min(width, viewport.width() - 8):
            found.append(f"item {item.text()!r} needs {needed} px, has {width}")
    return found


def group_clip(group: QGroupBox) -> str | None:
    if not group.title():
        return None
    needed = widest_line(group, group.title()) + 16
    return f"title needs {needed} px, has {group.width()}" if needed > group.width() else None


def clips(root: QWidget) -> list[str]:
    """Every visible text under ``root`` that does not fit, as 'Class 'text': why'."""
    found: list[str] = []

    def note(widget: QWidget, text: str, why: str | None) -> None:
        if why is not None:
            found.append(f"{type(widget).__name__} {widget.objectName() or ''} {plain(text)[:60]!r}: {why}")

    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.window() is not root:
            continue
        if isinstance(widget, QLabel):
            note(widget, widget.text(), label_clip(widget))
        elif isinstance(widget, QAbstractButton):
            note(widget, widget.text(), button_clip(widget))
        elif isinstance(widget, QComboBox):
            note(widget, widget.currentText(), combo_clip(widget))
        elif isinstance(widget, QLineEdit):
            note(widget, widget.placeholderText(), placeholder_clip(widget))
        elif isinstance(widget, QGroupBox):
            note(widget, widget.title(), group_clip(widget))
        if isinstance(widget, QListWidget) and widget.objectName() == "viewNavigation":
            found += item_clips(widget)
    return found


# -- the pages and views ------------------------------------------------------------------------------------------


def settled(qtbot: Any, window: MainWindow) -> None:
    """Let the layouts settle: pending events and a paint."""
    qtbot.wait(30)
    window.repaint()


def fits(qtbot: Any, window: MainWindow, where: str) -> list[str]:
    settled(qtbot, window)
    problems = [f"{where}: {problem}" for problem in clips(window)]
    hint = window.minimumSizeHint()
    if hint.width() > SIZE[0] or hint.height() > SIZE[1]:
        problems.append(f"{where}: the window needs at least {hint.width()}x{hint.height()}")
    if (window.width(), window.height()) != SIZE:
        problems.append(f"{where}: the window is {window.width()}x{window.height()}, not {SIZE[0]}x{SIZE[1]}")
    return problems


def log_in(qtbot: Any, window: MainWindow, name: str) -> None:
    station = window.stations.get()
    window.operator.session = ops.login(station.ledger, name, PASSWORDS[name])
    window.operator.retranslate()
    window.operator.changed.emit()
    qtbot.waitUntil(lambda: window.current_view() is not None)


def add_units(window: MainWindow) -> None:
    """Four units on the bench: at rest, busy mid-step, in the bootloader, and failed with a long error."""
    for port, serial in enumerate(SERIALS, start=1):
        window.bench.device_added(device(serial, port, mode="bootloader" if port == 3 else "run"))
    busy = window.bench.card(SERIALS[1])
    failed = window.bench.card(SERIALS[3])
    assert busy is not None and failed is not None
    busy.show_step("Reading unit info…")
    busy.show_progress(3, 8)
    failed.show_error(UnitJammed(serial=SERIALS[3]), sticky=True)


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_page_clips_at_1280x800(qtbot: Any, window: MainWindow, language: str) -> None:
    i18n.set_language(language)
    add_units(window)
    qtbot.waitUntil(lambda: bool(window.login_page.isVisible()))
    problems = fits(qtbot, window, "log-in page")
    for name in ("olga", "root"):
        log_in(qtbot, window, name)
        for view in window.visible_views():
            assert window.show_view(view)
            problems += fits(qtbot, window, f"{name}'s {view}")
    window.lock()
    problems += fits(qtbot, window, "lock page")
    assert not problems, "\n".join(problems)


def test_a_clipped_label_is_caught(qtbot: Any, window: MainWindow) -> None:
    """The check itself: a label squeezed narrower than its text is reported, and only that one."""
    i18n.set_language("zh_CN")
    log_in(qtbot, window, "olga")
    assert window.show_view(access.SETTINGS)
    settled(qtbot, window)
    assert clips(window) == []
    label = next(
        w for w in window.views[access.SETTINGS].findChildren(QLabel) if w.isVisible() and w.text() and not w.wordWrap()
    )
    label.setFixedWidth(widest_line(label, label.text()) // 2)
    settled(qtbot, window)
    [problem] = clips(window)
    assert plain(label.text())[:20] in problem
