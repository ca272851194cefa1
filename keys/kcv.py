"""Key check values: how people and devices confirm they hold the same key without showing it.

- AES keys: the AES-CMAC KCV of ANSI X9.24-1:2017 and X9.143 (optional blocks KC/KP, algorithm ``01``): the
  CMAC of one all-zero block, its leftmost 5 bytes.
- TDES keys: the legacy KCV (``00``): the key encrypts one all-zero block, leftmost 3 bytes.
- People compare :func:`shown`: the leftmost 3 bytes as 6 hex digits.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from i18n import N_

from .errors import KeyCheckValueInputInvalid
from .kat import KnownAnswer

AES_KEY_LENGTHS = (16, 24, 32)
TDES_KEY_LENGTHS = (16, 24)
"""Double- and triple-length TDES only: single-length DES is not allowed under PCI PIN."""

AES_CMAC_KCV_LENGTH = 5
TDES_KCV_LENGTH = 3
SHOWN_LENGTH = 3


def aes_cmac_kcv(key: bytes) -> bytes:
    """The AES-CMAC KCV of ``key``: CMAC of 16 zero bytes, first 5 bytes."""
    if len(key) not in AES_KEY_LENGTHS:
        raise KeyCheckValueInputInvalid(length=len(key), kind=N_("AES-CMAC"))
    mac = CMAC(algorithms.AES(key))
    mac.update(bytes(16))
    return mac.finalize()[:AES_CMAC_KCV_LENGTH]


def tdes_kcv(key: bytes) -> bytes:
    """The legacy TDES KCV of ``key``: TDES-ECB encryption of 8 zero bytes, first 3 bytes."""
    if len(key) not in TDES_KEY_LENGTHS:
        raise KeyCheckValueInputInvalid(length=len(key), kind=N_("TDES"))
    full_length = key + key[:8] if len(key) == 16 else key  # K1 K2 K1: the same cipher, without the 2-key warning
    encryptor = Cipher(TripleDES(full_length), modes.ECB()).encryptor()
    return (encryptor.update(bytes(8)) + encryptor.finalize())[:TDES_KCV_LENGTH]


def shown(kcv: bytes) -> str:
    """The form people read aloud and compare: the first 3 bytes as 6 upper-case hex digits."""
    if len(kcv) < SHOWN_LENGTH:
        raise KeyCheckValueInputInvalid(length=len(kcv), kind=N_("shown"))
    return kcv[:SHOWN_LENGTH].hex().upper()


# --- known answers -----------------------------------------------------------------------------------
# (name, source, key, expected KCV).  The keys are the published example keys of the standards, not secrets.

_AES_CMAC_VECTORS = (
    (
        N_("AES-128 CMAC KCV of the X9.143 example P0 key"),
        N_("ANSI X9.143-2021 section 8.1 (KCV of the wrapped AES-128 key); TR-31:2018 A.7.4 shows its first 3 bytes"),
        "3F419E1CB7079442AA37474C2EFBF8B8",
        "08793E25AB",
    ),
    (
        N_("AES-128 CMAC KCV of the X9.143 example KBPK"),
        N_("ANSI X9.143-2021 section 8.5 (KCV of the AES-128 key block protection key)"),
        "FA36E44278DB3AB5F298F9F7DA8F1F88",
        "D77F007724",
    ),
    (
        N_("AES-256 CMAC KCV of the X9.143 example KBPK"),
        N_("ANSI X9.143-2021 section 8.6 (KCV of the AES-256 key block protection key, optional block KP)"),
        "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6",
        "2331550BC9",
    ),
)

_TDES_VECTORS = (
    (
        N_("TDES KCV of the TR-31 version A example P0 key"),
        N_("ASC X9 TR 31-2018 annex A.7.2.1 (double-length TDES key, legacy KCV)"),
        "F039121BEC83D26B169BDCD5B22AAF8F",
        "CB9DEA",
    ),
    (
        N_("TDES KCV of the TR-31 version B example P0 key"),
        N_("ASC X9 TR 31-2018 annex A.7.2.2 (double-length TDES key, legacy KCV)"),
        "3F419E1CB7079442AA37474C2EFBF8B8",
        "57C409",
    ),
    (
        N_("TDES KCV of the TR-31 example BDK"),
        N_("ASC X9 TR 31-2018 annex A.7.3.1 (double-length TDES BDK, legacy KCV)"),
        "EDB380DD340BC2620247D445F5B8D678",
        "F4B08D",
    ),
)


def _answer(name: str, source: str, compute: Callable[[bytes], bytes], key_hex: str, kcv_hex: str) -> KnownAnswer:
    def run() -> bool:
        return compute(bytes.fromhex(key_hex)) == bytes.fromhex(kcv_hex)

    return KnownAnswer(name=name, source=source, run=run)


def known_answers() -> list[KnownAnswer]:
    """The published KCVs this module must reproduce, for :mod:`keys.selftest`."""
    answers = [_answer(n, s, aes_cmac_kcv, k, v) for n, s, k, v in _AES_CMAC_VECTORS]
    answers += [_answer(n, s, tdes_kcv, k, v) for n, s, k, v in _TDES_VECTORS]
    return answers
