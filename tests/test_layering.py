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
    "simulator": {"terminal", "keys.session", "keys.tr31", "keys.kcv", "keys.errors", "enrollment.gateway"},
    "terminal": set(),
    "i18n": set(),
}
# A module name in a set allows that module only: the simulator's secure element uses the key session, TR-31
# and KCV code the station uses (the same standards on both sides), never a key store or the DUKPT derivation;
# the unit's face-pay app speaks the platform's gateway wire (enrollment.gateway), never the station's client.
# DESIGN: the simulator imports terminal's codecs and device side only, never the host's side (the
# management client, discovery, transports, the fastboot client): it is the reference the host is tried against.
SIMULATOR_MAY_USE = {
    "terminal.errors",
    "terminal.framing",
    "terminal.protocol",
    "terminal.device",
    "terminal.models",
    "terminal.dirs",
    "terminal.camera",
    "terminal.ports",
    "terminal.events",
    "terminal.fastboot.protocol",
    "terminal.fastboot.errors",
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


def layer_violations(package: str, paths: list[Path]) -> list[str]:
    """Imports in ``paths`` (files of ``package``) of a package or module that ``ALLOWED`` does not give it."""
    allowed = ALLOWED[package] | {package, "i18n"}
    return [
        f"{path.name} imports {name}"
        for path in paths
        for name in imports(path)
        if name.split(".")[0] in PACKAGES and name.split(".")[0] not in allowed and name not in allowed
    ]


def test_layers_import_only_downward_and_domains_not_each_other() -> None:
    offenders = [v for package in PACKAGES for v in layer_violations(package, sources(package))]
    assert not offenders


def simulator_host_imports(paths: list[Path]) -> list[str]:
    """Imports of terminal's host side (anything not in SIMULATOR_MAY_USE) in ``paths``."""
    return [
        f"{path.name} imports {name}"
        for path in paths
        for name in imports(path)
        if name.split(".")[0] == "terminal" and name not in SIMULATOR_MAY_USE
    ]


def test_the_simulator_uses_only_terminals_codecs_and_device_side() -> None:
    assert sources("simulator")
    assert not simulator_host_imports(sources("simulator"))


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from keys import x\nimport PyQt6.QtCore\n", encoding="utf-8")
    assert imports(bad) == ["keys", "PyQt6.QtCore"]


def test_the_simulator_may_use_only_the_named_keys_modules(tmp_path: Path) -> None:
    unit = tmp_path / "se.py"
    unit.write_text(
        "from keys.session import agree\n"
        "from keys.tr31 import unwrap\n"
        "import keys.kcv\n"
        "from keys.errors import KeysError\n"
        "from keys.dukpt import initial_key\n"
        "from keys import store\n"
        "import keys.store_software\n"
        "from provisioning import ledger\n",
        encoding="utf-8",
    )
    assert sorted(layer_violations("simulator", [unit])) == [
        "se.py imports keys",
        "se.py imports keys.dukpt",
        "se.py imports keys.store_software",
        "se.py imports provisioning",
    ]


def test_the_simulator_check_sees_the_host_side(tmp_path: Path) -> None:
    unit = tmp_path / "unit.py"
    unit.write_text(
        "from terminal.framing import Frame\n"
        "from terminal.client import ManagementClient\n"
        "def f():\n    from terminal.discovery import Discovery\n"
        "import terminal.transports.usb\n"
        "from terminal import fastboot\n",
        encoding="utf-8",
    )
    assert sorted(simulator_host_imports([unit])) == [
        "unit.py imports terminal",
        "unit.py imports terminal.client",
        "unit.py imports terminal.discovery",
        "unit.py imports terminal.transports.usb",
    ]


SANDBOX_ONLY = {"starlette", "uvicorn"}
SANDBOX_USERS = {"console/cli_platform_serve.py", "console/demo_world.py"}
"""The places outside the sandbox that start it: ``naiad platform serve`` and the demo's world (``naiad demo``)."""


def absolute_imports(path: Path) -> list[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def sandbox_leaks(paths: list[Path]) -> list[str]:
    """Code outside the sandbox that imports it or its web stack (the client must work against any platform)."""
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in paths
        if "sandbox" not in path.relative_to(ROOT).parts and str(path.relative_to(ROOT)) not in SANDBOX_USERS
        for name in absolute_imports(path)
        if name.startswith("enrollment.sandbox") or name.split(".")[0] in SANDBOX_ONLY
    ]


def test_only_the_sandbox_and_its_serve_command_know_the_sandbox() -> None:
    assert not sandbox_leaks([p for package in PACKAGES for p in sources(package)])


def test_the_sandbox_check_sees_relative_and_absolute_imports() -> None:
    client = ROOT / "enrollment" / "client.py"
    leaks = sandbox_leaks([client]) if client.exists() else []
    assert not leaks
    fake = ROOT / "enrollment" / "_probe_for_test.py"
    fake.write_text("from .sandbox import models\nimport uvicorn\n", encoding="utf-8")
    try:
        assert sorted(sandbox_leaks([fake])) == [
            "enrollment/_probe_for_test.py imports enrollment.sandbox",
            "enrollment/_probe_for_test.py imports enrollment.sandbox.models",
            "enrollment/_probe_for_test.py imports uvicorn",
        ]
    finally:
        fake.unlink()
