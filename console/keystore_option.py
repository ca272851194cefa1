"""One way for every ``naiad keys`` command to open the key store: ``--keystore software|pkcs11``.

- ``software`` (the default): ``keystore.json`` in the data directory; the passphrase from
  ``NAIAD_KEYSTORE_PASSPHRASE`` or asked hidden (twice, with a minimum length, when the file is created).
  Only a command that makes keys (a ceremony) creates the file; the others refuse a station without one.
- ``pkcs11``: the module and token from ``NAIAD_PKCS11_MODULE`` / ``NAIAD_PKCS11_TOKEN``; the user PIN from
  ``NAIAD_PKCS11_PIN`` or asked hidden, after the module and token are found (no PIN typed for nothing).

Every failure is a translated :class:`~terminal.errors.NaiadError`; a passphrase or PIN is never shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from i18n import N_, _
from terminal.errors import NaiadError

from .cli_common import option

if TYPE_CHECKING:
    from keys.store import KeyStore

KEYSTORE_VARIABLE = "NAIAD_KEYSTORE"
PASSPHRASE_VARIABLE = "NAIAD_KEYSTORE_PASSPHRASE"
PIN_VARIABLE = "NAIAD_PKCS11_PIN"
KINDS = ("software", "pkcs11")
MIN_PASSPHRASE_LENGTH = 12
"""A new software key store's passphrase: it alone guards the BDKs in the file (scrypt slows guessing only)."""


class SoftwareKeyStoreMissing(NaiadError):
    message = N_("There is no software key store on this station yet ({path})")
    remedy = N_("Make it by loading or generating a BDK: 'naiad keys ceremony load-bdk' or 'generate-bdk'.")


class KeyStorePassphraseTooShort(NaiadError):
    message = N_("A new key store's passphrase needs at least {length} characters")
    remedy = N_("Choose a longer passphrase, several words for example; nothing was created.")


def keystore_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--keystore software|pkcs11`` (also NAIAD_KEYSTORE), passed to the command as ``keystore``."""
    decorate = option(
        "--keystore",
        "keystore",
        type=click.Choice(KINDS),
        envvar=KEYSTORE_VARIABLE,
        default="software",
        show_default=True,
        help=N_("The key store: the passphrase-protected file, or the PKCS#11 token (HSM) configured."),
    )
    decorated: Callable[..., Any] = decorate(command)
    return decorated


def open_key_store(kind: str, *, create: bool = False) -> KeyStore:
    """The key store ``kind`` names, opened (logged in); close it when done (it is a context manager).

    A software store that does not exist yet is created only when ``create`` (a command that makes keys):
    listing or injecting would otherwise leave an empty store under a passphrase typed for something else."""
    return _pkcs11() if kind == "pkcs11" else _software(create)


def _secret(variable: str, prompt: str, confirmation: str | None = None) -> str:
    """The secret in ``variable``, else typed hidden (twice when ``confirmation`` is given)."""
    value = os.environ.get(variable)
    if value:
        return value
    typed: str = click.prompt(prompt, hide_input=True, err=True, confirmation_prompt=confirmation or False)
    return typed


def _software(create: bool) -> KeyStore:
    from keys.store_software import SoftwareKeyStore, default_path

    path = default_path()
    if path.exists():
        return SoftwareKeyStore(_secret(PASSPHRASE_VARIABLE, _("Key store passphrase")), path)
    if not create:
        raise SoftwareKeyStoreMissing(path=str(path))
    passphrase = _secret(
        PASSPHRASE_VARIABLE,
        _("New key store passphrase (the key store {path} is created)", path=str(path)),
        _("Repeat the passphrase"),
    )
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise KeyStorePassphraseTooShort(length=MIN_PASSPHRASE_LENGTH)
    return SoftwareKeyStore(passphrase, path)


def _pkcs11() -> KeyStore:
    from keys.errors import KeyStoreUnavailable
    from keys.store_pkcs11 import Pkcs11Config, Pkcs11KeyStore, open_token

    config = Pkcs11Config.from_environment()
    if config is None:
        raise KeyStoreUnavailable(reason=N_("NAIAD_PKCS11_MODULE and NAIAD_PKCS11_TOKEN are not set"))
    open_token(config)  # the module loads and the token is there, before a PIN is asked
    return Pkcs11KeyStore(
        config, _secret(PIN_VARIABLE, _("PIN of the PKCS#11 token {token}", token=config.token_label))
    )
