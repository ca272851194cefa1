"""``naiad platform keygen``: the station's RSA-2048 key for the merchant platform, made in the key store.

The key is made inside the key store (``--keystore software|pkcs11``) under the platform configuration's
``key_label`` (``--platform-config FILE`` or NAIAD_PLATFORM_CONFIG), or under ``--label`` without a configuration.
Out comes only its public key, as PEM on standard output (and in ``--out FILE``): the platform, or the sandbox's
``--app-key``, needs it to check the station's signatures.  A key already under the label is never replaced: its
public key is shown again; a key of another kind under the label is refused.  Only an admin makes it: the key
speaks for the whole station to the platform.
"""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from enrollment.config import resolve
from i18n import N_, _
from keys.store import SigningAlgorithm, ensure_signing_key
from provisioning.operators import ROLE_ADMIN, require_role

from .cli_common import Command, atomic_output, err, option, reported
from .cli_root import Settings, pass_settings
from .keystore_option import keystore_options, open_key_store


@click.command(
    "keygen",
    cls=Command,
    help=N_("Make the station's RSA-2048 key for the merchant platform in the key store and print its public key."),
)
@option(
    "--platform-config",
    "config_path",
    type=click.Path(dir_okay=False),
    help=N_("The platform configuration whose key_label names the key (default: NAIAD_PLATFORM_CONFIG)."),
)
@option("--label", help=N_("The key's label in the key store, instead of the platform configuration's key_label."))
@option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=N_("Also write the public key (PEM) to this file."),
)
@keystore_options
@pass_settings
def keygen(
    settings: Settings, config_path: str | None, label: str | None, out_path: Path | None, keystore: str
) -> None:
    with reported(False):
        chosen = label if label is not None else resolve(config_path).key_label
        settings.station()  # first: a session asked before the station would ask the password twice
        require_role(settings.session(), ROLE_ADMIN)  # before the key store asks for its passphrase or PIN
        with open_key_store(keystore, create=True) as store:
            public, made = ensure_signing_key(store, chosen, SigningAlgorithm.RSA_2048)
        pem = load_der_public_key(public).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        if out_path is not None:
            with atomic_output(out_path) as file:
                file.write(pem)
    if made:
        err().print(_("Made the RSA-2048 key {label} in the key store.", label=chosen), markup=False)
    else:
        err().print(
            _("The key store already holds the RSA-2048 key {label}: it was kept, not replaced.", label=chosen),
            markup=False,
        )
    if out_path is not None:
        err().print(_("Its public key is in {path}.", path=str(out_path)), markup=False)
    click.echo(pem, nl=False)
