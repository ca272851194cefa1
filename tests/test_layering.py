"""The architecture's import rules (DESIGN section 3), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("console", "provisioning", "firmware", "keys", "camera", "enrollment", "terminal", "simulator", "i18n")
DOMAINS = {"firmware", "keys", "camera", "enrollment"}
# what each layer may import, besides itself, i18n and third-party code
ALLOWED = {
    "console": set(PACKAGES),
    "provisioning": {"terminal", *DOMAINS},
    "firmware": {"terminal"},
    "keys": {"terminal"},
    "camera": {"terminal"},
    "enrollment": {"terminal"},
    "simulator": {"terminal"},
    # discovery reaches the simulator's pyusb backend through one lazy import: the simulator's USB bus seam
    "terminal": {"simulator.usb_backend"},
    "i18n": set(),
}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


def test_only_the_console_imports_qt() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for pkg in PACKAGES
        if pkg != "console"
        for p in sources(pkg)
        for name in imports(p)
        if name.split(".")[0] in {"PyQt6", "PyQt5", "PySide6"}
    ]
    assert not offenders


def test_layers_import_only_downward_and_domains_not_each_other() -> None:
    offenders = []
    for package in PACKAGES:
        allowed = ALLOWED[package] | {package, "i18n"}
        for path in sources(package):
            for name in imports(path):
                top = name.split(".")[0]
                if top in PACKAGES and top not in allowed and name not in allowed:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from keys import x\nimport PyQt6.QtCore\n", encoding="utf-8")
    assert imports(bad) == ["keys", "PyQt6.QtCore"]
