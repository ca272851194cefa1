"""udev rules generated from the model table, the committed copy, and the installed-rule check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from terminal.models import PACKAGED_TABLE, UsbId, load_models, read_table
from terminal.udev import RULES_NAME, installed_rule_status, render_rules

COMMITTED = Path(__file__).resolve().parents[1] / "data" / "udev" / RULES_NAME


def packaged_rules() -> str:
    return render_rules(read_table(PACKAGED_TABLE).values())


def test_committed_rules_file_is_the_rendered_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == packaged_rules(), (
        "data/udev/70-naiad.rules is stale: regenerate it from terminal.udev.render_rules()"
    )


def test_every_model_and_mode_has_a_usb_rule_and_a_tty_rule() -> None:
    rules = [line for line in packaged_rules().splitlines() if line and not line.startswith("#")]
    for model in read_table(PACKAGED_TABLE).values():
        for usb_id in (model.run_usb, model.bootloader_usb):
            match = f'ATTR{{idVendor}}=="{usb_id.vid:04x}", ATTR{{idProduct}}=="{usb_id.pid:04x}"'
            [rule] = [r for r in rules if match in r]
            assert rule.startswith('SUBSYSTEM=="usb"')
            assert 'MODE="0660"' in rule and 'GROUP="plugdev"' in rule and 'TAG+="uaccess"' in rule
        tty_match = f'ATTRS{{idVendor}}=="{model.run_usb.vid:04x}", ATTRS{{idProduct}}=="{model.run_usb.pid:04x}"'
        [tty] = [r for r in rules if tty_match in r]
        assert tty.startswith('SUBSYSTEM=="tty"') and 'SYMLINK+="naiad/%s{serial}"' in tty
        assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in tty


def test_a_distributor_model_gets_its_rules() -> None:
    base = next(iter(read_table(PACKAGED_TABLE).values()))
    extra = dataclasses.replace(
        base, id="zz-kiosk", name="Kiosk", run_usb=UsbId(0x1234, 0xABCD), bootloader_usb=UsbId(0x1234, 0xABCE)
    )
    rules = render_rules([*read_table(PACKAGED_TABLE).values(), extra])
    assert 'ATTR{idVendor}=="1234", ATTR{idProduct}=="abcd"' in rules
    assert 'ATTRS{idVendor}=="1234", ATTRS{idProduct}=="abcd"' in rules
    assert 'ATTR{idVendor}=="1234", ATTR{idProduct}=="abce"' in rules
    assert render_rules() == render_rules(load_models().values())


def test_installed_rule_status(tmp_path: Path) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    etc.mkdir()
    lib.mkdir()
    expected = packaged_rules()
    assert installed_rule_status((etc, lib, tmp_path / "absent"), expected) == (None, False)
    (lib / RULES_NAME).write_text(expected, encoding="utf-8")
    assert installed_rule_status((etc, lib), expected) == (lib / RULES_NAME, True)
    (etc / "70-naiad.rules").write_text(expected.replace("0660", "0666"), encoding="utf-8")
    assert installed_rule_status((etc, lib), expected) == (etc / "70-naiad.rules", False)
    (etc / RULES_NAME).write_text(expected, encoding="utf-8")
    assert installed_rule_status((etc, lib), expected) == (etc / RULES_NAME, True)
