"""One way for every command and view that talks to the merchant platform to reach it: the outbox.

``--platform-config FILE`` (or ``NAIAD_PLATFORM_CONFIG``) names the station's platform configuration; the
station's RSA key is in the key store (``--keystore``) under the configuration's ``key_label``, made by
``naiad platform keygen``.  :func:`open_outbox` checks that key before anything is sent and hands out an
:class:`~provisioning.outbox.Outbox` over a :class:`~enrollment.client.PlatformClient` that signs with it.
The console calls the same function, off the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from enrollment.config import CONFIG_ENV
from enrollment.errors import EnrollmentError
from i18n import N_

from .cli_common import option
from .keystore_option import keystore_options

if TYPE_CHECKING:
    from keys.store import KeyStore
    from provisioning.outbox import Outbox
    from provisioning.station import Station


class PlatformKeyMissing(EnrollmentError):
    message = N_("The key store holds no platform key {label}")
    remedy = N_(
        "Make it with 'naiad platform keygen' and register its public key with the platform "
        "(or open the key store that holds it with --keystore)."
    )


class PlatformKeyNotRsa(EnrollmentError):
    message = N_("The key {label} in the key store is not an RSA key: the platform needs RSA-2048")
    remedy = N_("Set another key_label in the platform configuration and make that key with 'naiad platform keygen'.")


def platform_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--platform-config FILE`` (also NAIAD_PLATFORM_CONFIG) as ``platform_config``, and ``--keystore``."""
    decorate = option(
        "--platform-config",
        "platform_config",
        metavar="FILE",
        envvar=CONFIG_ENV,
        help=N_("The station's merchant platform configuration (written by 'naiad platform serve --station-config')."),
    )
    decorated: Callable[..., Any] = keystore_options(decorate(command))
    return decorated


@contextmanager
def open_outbox(station: Station, config_path: str | None, keystore: KeyStore) -> Iterator[Outbox]:
    """The station's outbox to the platform ``config_path`` names (else NAIAD_PLATFORM_CONFIG), signing with the
    RSA key the configuration names in ``keystore``; the client's connections close when the block ends."""
    from enrollment.client import PlatformClient
    from enrollment.config import resolve
    from keys.store import SigningAlgorithm
    from provisioning.outbox import Outbox

    config = resolve(config_path)
    label = config.key_label
    if label not in keystore.signing_labels():
        raise PlatformKeyMissing(label=label)
    if keystore.signing_algorithm(label) != SigningAlgorithm.RSA_2048:
        raise PlatformKeyNotRsa(label=label)
    lock = threading.Lock()  # a PKCS#11 session is not thread-safe; the console signs from several workers

    def sign(data: bytes) -> bytes:
        with lock:
            return keystore.sign(label, data)

    with PlatformClient(config, sign) as client:
        yield Outbox(station.ledger, client)
