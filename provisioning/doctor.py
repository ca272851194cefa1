"""Station self-checks for ``naiad doctor``: each finds one problem and says how to fix it."""

from __future__ import annotations

import ctypes.util
import enum
import grp
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from i18n import N_, _
from terminal.discovery import Discovery
from terminal.errors import NaiadError
from terminal.udev import GROUP, INSTALL_COMMAND, RULES_NAME, installed_rule_status

from .ledger import Ledger

PKCS11_ENV = "NAIAD_PKCS11_MODULE"  # keys.store_pkcs11.MODULE_ENV, kept here so the doctor loads without pkcs11
SOFTHSM_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class CheckResult:
    name: str  # msgid
    status: Status
    detail: str  # already translated
    remedy: str | None = None  # already translated

    def as_dict(self) -> dict[str, str | None]:
        return {"check": _(self.name), "status": str(self.status), "detail": self.detail, "remedy": self.remedy}


def _failed(name: str, exc: NaiadError) -> CheckResult:
    return CheckResult(name, Status.PROBLEM, str(exc), exc.remedy_text)


def check_usb_backend(discovery: Discovery) -> CheckResult:
    name = N_("USB backend")
    try:
        backend = discovery.backend()
    except NaiadError as exc:
        return _failed(name, exc)
    return CheckResult(name, Status.OK, type(backend).__module__)


def check_usb_permissions(discovery: Discovery) -> Iterator[CheckResult]:
    name = N_("USB permissions")
    try:
        devices = discovery.devices()
    except NaiadError as exc:
        yield _failed(name, exc)
        return
    denied = [d for d in devices if d.permission_denied]
    if denied:
        yield CheckResult(
            name,
            Status.PROBLEM,
            _("No access to the units at {paths}", paths=", ".join(d.path for d in denied)),
            _install_rule(),
        )
    else:
        yield CheckResult(name, Status.OK, _("{count} units readable", count=len(devices)))
    name = N_("Serial port access")
    blocked = [d.port for d in devices if d.port and not os.access(d.port, os.R_OK | os.W_OK)]
    if blocked:
        yield CheckResult(
            name,
            Status.PROBLEM,
            _("Cannot open {ports}", ports=", ".join(blocked)),
            _("Add yourself to the group that owns the port (usually 'dialout'), then log in again."),
        )
    else:
        yield CheckResult(name, Status.OK, _("{count} serial ports usable", count=sum(1 for d in devices if d.port)))


def _install_rule() -> str:
    return _("Install the udev rule, then re-plug the units: {command}", command=INSTALL_COMMAND)


def check_udev_rule() -> CheckResult:
    name = N_("udev rule")
    if not Path("/etc/udev").exists():
        return CheckResult(name, Status.OK, _("not needed on this system"))
    path, current = installed_rule_status()
    if path is None:
        return CheckResult(name, Status.WARNING, _("{name} is not installed", name=RULES_NAME), _install_rule())
    if not current:
        return CheckResult(name, Status.WARNING, _("{path} is out of date", path=str(path)), _install_rule())
    try:
        in_group = grp.getgrnam(GROUP).gr_gid in os.getgroups() or os.geteuid() == 0
    except KeyError:
        in_group = False
    if not in_group:
        return CheckResult(
            name,
            Status.WARNING,
            _("you are not in the {group} group", group=GROUP),
            _("Run 'sudo usermod -aG {group} $USER' and log in again.", group=GROUP),
        )
    return CheckResult(name, Status.OK, str(path))


def check_hsm_library() -> CheckResult:
    name = N_("HSM library (PKCS#11)")
    configured = os.environ.get(PKCS11_ENV)
    candidates = [configured] if configured else [*SOFTHSM_PATHS, ctypes.util.find_library("softhsm2")]
    found = next((c for c in candidates if c and Path(c).exists()), None)
    if found:
        return CheckResult(name, Status.OK, found)
    remedy = _(
        "Set {env} to your HSM's PKCS#11 library, or install SoftHSM2 for tests and demos ('apt install softhsm2').",
        env=PKCS11_ENV,
    )
    return CheckResult(name, Status.WARNING, _("no PKCS#11 library found"), remedy)


def check_hsm_token() -> CheckResult:
    """The configured PKCS#11 token: the module loads, the token is there, it has the key store's mechanisms:
    the AES ones of the BDKs and Initial Keys and the EC ones of the provisioning CA's signing key.

    No PIN is asked: finding the token and reading its mechanism list needs no login.
    """
    from keys.store_pkcs11 import (
        MODULE_ENV,
        REQUIRED_MECHANISMS,
        TOKEN_ENV,
        Pkcs11Config,
        missing_mechanisms,
        open_token,
    )

    name = N_("HSM token (PKCS#11 key store)")
    config = Pkcs11Config.from_environment()
    if config is None:
        return CheckResult(
            name,
            Status.OK,
            _("not configured: set {module} and {token} to use an HSM", module=MODULE_ENV, token=TOKEN_ENV),
        )
    try:
        token = open_token(config)
        missing = missing_mechanisms(token)
    except NaiadError as exc:
        return _failed(name, exc)
    if missing:
        return CheckResult(
            name,
            Status.PROBLEM,
            _("token {label} lacks mechanisms {mechanisms}", label=config.token_label, mechanisms=", ".join(missing)),
            _("Use an HSM or token that offers these mechanisms, or the software key store."),
        )
    return CheckResult(
        name,
        Status.OK,
        _(
            "token {label}: offers {mechanisms} (BDKs and Initial Keys, and the provisioning CA's signing key)",
            label=config.token_label,
            mechanisms=", ".join(REQUIRED_MECHANISMS),
        ),
    )


def check_ledger(open_ledger: Callable[[], Ledger]) -> CheckResult:
    name = N_("Ledger")
    try:
        ledger = open_ledger()
        report = ledger.verify()
        report.raise_if_broken()
    except NaiadError as exc:
        return _failed(name, exc)
    return CheckResult(
        name, Status.OK, _("{url}: {entries} audit entries, chain intact", url=ledger.url, entries=report.entries)
    )


def run_checks(discovery: Discovery, open_ledger: Callable[[], Ledger]) -> list[CheckResult]:
    """Every check, in the order a person would fix things."""
    results = [check_usb_backend(discovery)]
    if results[0].status is Status.OK:
        results += check_usb_permissions(discovery)
    if discovery.system_usb:  # the udev rule matters only to the system's libusb
        results.append(check_udev_rule())
    results += [check_hsm_library(), check_hsm_token(), check_ledger(open_ledger)]
    return results
