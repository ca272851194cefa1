r"""The station's platform configuration: a TOML file named by ``--platform-config`` or ``NAIAD_PLATFORM_CONFIG``.

```toml
[platform]
url = "https://127.0.0.1:8443/gateway"   # the gateway endpoint (HTTPS only)
app_id = "2026000000000001"              # the station's application at the platform
key_label = "platform-2026000000000001"  # the station's RSA key in the key store: never the key itself
supplier_id = "2088000000000100"         # the distributor's supplier id (owner of the inventory)
platform_public_key = '''-----BEGIN PUBLIC KEY-----...'''   # checks the platform's signed replies
ca_certificate = '''-----BEGIN CERTIFICATE-----...'''       # optional: trust this CA for HTTPS
timeout_seconds = 10.0                   # optional: per attempt

[test_merchant]                          # optional: where the face-pay check pays 0.01
merchant_id = "2088000000000001"
store_id = "S0001"
```

The file holds no secret: the station's private key stays in the key store under ``key_label``
(``naiad platform keygen``).  Every field is checked on reading; a bad one names its line.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from i18n import N_

from .errors import PlatformConfigInvalid, PlatformNotConfigured
from .gateway import GatewayFormatError, load_public_key

CONFIG_ENV = "NAIAD_PLATFORM_CONFIG"
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""An app, supplier, merchant or store id (also a unit serial on the platform's side)."""
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_TIMEOUT = 120.0


@dataclass(frozen=True)
class Merchant:
    """A merchant and one of its stores."""

    merchant_id: str
    store_id: str


@dataclass(frozen=True)
class PlatformConfig:
    url: str
    app_id: str
    key_label: str
    supplier_id: str
    platform_public_key: str
    ca_certificate: str | None = None
    timeout_seconds: float = 10.0
    test_merchant: Merchant | None = None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> PlatformConfig:
        """The configuration in ``path``; PlatformConfigInvalid (with the line where one is known) otherwise."""
        where = os.fspath(path)
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise PlatformConfigInvalid(path=where, line=0, reason=exc.strerror or str(exc)) from None
        except UnicodeDecodeError:
            raise PlatformConfigInvalid(path=where, line=0, reason=N_("not UTF-8 text")) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+)", str(exc))  # Python 3.14 adds exc.lineno; the text has it on all
            line = int(found.group(1)) if found else 0
            raise PlatformConfigInvalid(path=where, line=line, reason=N_("not valid TOML")) from None
        try:
            return cls.from_dict(data)
        except _Bad as bad:
            raise PlatformConfigInvalid(path=where, line=_line_of(text, bad.field), reason=bad.reason) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlatformConfig:
        unknown = set(data) - {"platform", "test_merchant"}
        if unknown:
            raise _Bad(sorted(unknown)[0], N_("unknown table"))
        platform = _table(data, "platform", required=True) or {}
        _only(
            platform,
            {"url", "app_id", "key_label", "supplier_id", "platform_public_key", "ca_certificate", "timeout_seconds"},
        )
        merchant = _table(data, "test_merchant", required=False)
        if merchant is not None:
            _only(merchant, {"merchant_id", "store_id"})
        return cls(
            url=_url(platform),
            app_id=_id(platform, "app_id"),
            key_label=_text(platform, "key_label", LABEL),
            supplier_id=_id(platform, "supplier_id"),
            platform_public_key=_public_key(platform),
            ca_certificate=_certificate(platform),
            timeout_seconds=_timeout(platform),
            test_merchant=None
            if merchant is None
            else Merchant(_id(merchant, "merchant_id"), _id(merchant, "store_id")),
        )

    def dumps(self) -> str:
        """The TOML text of this configuration (what :meth:`read` reads back to an equal value)."""
        lines = [
            "# The station's merchant platform configuration: no secret is kept here.",
            "[platform]",
            f"url = {_quote(self.url)}",
            f"app_id = {_quote(self.app_id)}",
            f"key_label = {_quote(self.key_label)}",
            f"supplier_id = {_quote(self.supplier_id)}",
            f'platform_public_key = """\n{self.platform_public_key.strip()}\n"""',
        ]
        if self.ca_certificate:
            lines.append(f'ca_certificate = """\n{self.ca_certificate.strip()}\n"""')
        lines.append(f"timeout_seconds = {float(self.timeout_seconds)!r}")
        if self.test_merchant:
            lines += [
                "",
                "[test_merchant]",
                f"merchant_id = {_quote(self.test_merchant.merchant_id)}",
                f"store_id = {_quote(self.test_merchant.store_id)}",
            ]
        return "\n".join(lines) + "\n"


def resolve(path: str | os.PathLike[str] | None = None) -> PlatformConfig:
    """The configuration named by ``path``, else by ``NAIAD_PLATFORM_CONFIG``; PlatformNotConfigured when neither."""
    chosen = os.fspath(path) if path is not None else os.environ.get(CONFIG_ENV) or None
    if not chosen:
        raise PlatformNotConfigured()
    return PlatformConfig.read(chosen)


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field, self.reason = field, reason


def _line_of(text: str, field: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*(\[{re.escape(field)}\]|{re.escape(field)}\s*=)", line):
            return number
    return 0


def _table(data: dict[str, Any], name: str, *, required: bool) -> dict[str, Any] | None:
    table = data.get(name)
    if table is None and not required:
        return None
    if not isinstance(table, dict):
        raise _Bad(name, N_("the table is missing"))
    return table


def _only(table: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise _Bad(sorted(unknown)[0], N_("unknown setting"))


def _text(table: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = table.get(name)
    if not isinstance(value, str):
        raise _Bad(name, N_("a text value is required"))
    if not pattern.fullmatch(value):
        raise _Bad(name, N_("not a valid identifier"))
    return value


def _id(table: dict[str, Any], name: str) -> str:
    return _text(table, name, ID)


def _url(table: dict[str, Any]) -> str:
    value = table.get("url")
    if not isinstance(value, str):
        raise _Bad("url", N_("a text value is required"))
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise _Bad("url", N_("not an https:// address")) from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.fragment:
        raise _Bad("url", N_("not an https:// address"))
    return value


def _public_key(table: dict[str, Any]) -> str:
    value = table.get("platform_public_key")
    if not isinstance(value, str):
        raise _Bad("platform_public_key", N_("a text value is required"))
    try:
        load_public_key(value)
    except GatewayFormatError:
        raise _Bad("platform_public_key", N_("not an RSA public key of 2048 bits or more (PEM)")) from None
    return value.strip() + "\n"


def _certificate(table: dict[str, Any]) -> str | None:
    value = table.get("ca_certificate")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad("ca_certificate", N_("a text value is required"))
    try:
        x509.load_pem_x509_certificate(value.strip().encode())
    except ValueError:
        raise _Bad("ca_certificate", N_("not a PEM certificate")) from None
    return value.strip() + "\n"


def _timeout(table: dict[str, Any]) -> float:
    value = table.get("timeout_seconds", 10.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        raise _Bad("timeout_seconds", N_("a number of seconds above 0 and at most 120 is required"))
    return float(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
