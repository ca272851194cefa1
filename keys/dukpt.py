"""AES DUKPT (ANSI X9.24-3-2017): Initial Keys from a BDK, transaction keys from an Initial Key, working keys.

The host side of AES DUKPT, computed directly from the Initial Key and the KSN (section 6.1): no future-key
registers are kept.  Section numbers below are those of ANSI X9.24-3-2017.

- Key types are taken from key lengths: a 16, 24 or 32-byte BDK is an AES-128, AES-192 or AES-256 BDK, its
  Initial Key and every intermediate derivation key are of the same type (6.2.2, 6.3.1).
- An Initial Key ID is 8 bytes: BDK ID (4) then derivation ID (4).  A KSN is 12 bytes: the Initial Key ID
  then the 32-bit transaction counter, big-endian (6.2.1, 6.5.2).
- Working keys are AES-128, AES-192 or AES-256.  X9.24-3 also derives 2TDEA and 3TDEA working keys
  (algorithm indicators 0000 and 0001) and HMAC keys: this module leaves them out on purpose, Naiad uses AES only.
- Every refusal is a typed :class:`keys.errors.DukptError` raised before any key is derived; its parameters
  hold lengths, a KSN (not secret) or names, never key bytes.

Keys are Python ``bytes``, which cannot be wiped: callers hold them for the shortest time.  An HSM key store
(:mod:`keys.store_pkcs11`) derives Initial Keys inside the token from the same derivation data, checked against
this module; the software store (:mod:`keys.store_software`) derives with this module.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from i18n import N_
from keys.dukpt_vectors import IKID, VECTORS, Vector
from keys.errors import (
    DukptIdLength,
    DukptKeyLength,
    DukptUnknownAlgorithm,
    DukptUnknownUsage,
    DukptWorkingKeyTooStrong,
    KeysError,
    KsnCounterExhausted,
    KsnCounterTooManyOnes,
    KsnCounterZero,
)
from keys.kat import KnownAnswer

INITIAL_KEY_ID_LENGTH: Final = 8
"""BDK ID (4 bytes) + derivation ID (4 bytes), 6.2.1."""
KSN_LENGTH: Final = 12
"""Initial Key ID (8 bytes) + transaction counter (4 bytes), 6.2.1."""
MAX_ONE_BITS: Final = 16
"""A transaction counter has at most 16 one-bits: a device skips every other counter (6.1, 6.5.2)."""
MAX_COUNTER: Final = 0xFFFF0000
"""The last counter a device uses (6.5.2).  Every greater counter has more than 16 one-bits too; it is refused
with its own error because its remedy differs: the device needs a new Initial Key."""
UPDATE_KEY_COUNTER: Final = 0xFFFFFFFF
"""The counter the DUKPT Update Key is derived with, never a transaction's (6.5.2, 6.5.3)."""

USAGES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "KEK": 0x0002,
        "PIN": 0x1000,
        "MAC-gen": 0x2000,
        "MAC-verify": 0x2001,
        "MAC-both": 0x2002,
        "DATA-encrypt": 0x3000,
        "DATA-decrypt": 0x3001,
        "DATA-both": 0x3002,
    }
)
"""Working key usages and their Key Usage Indicators (6.3.2, tables 2 and 3)."""

ALGORITHMS: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {"AES-128": (0x0002, 16), "AES-192": (0x0003, 24), "AES-256": (0x0004, 32)}
)
"""Algorithm -> (Algorithm Indicator, key length in bytes) (6.3.2, tables 2 and 3; 2TDEA/3TDEA left out)."""

_VERSION: Final = 0x01  # Version ID of the derivation data (6.3.2)
_KEY_DERIVATION: Final = 0x8000  # Key Usage Indicator of intermediate derivation keys (6.3.2)
_INITIAL_KEY_DERIVATION: Final = 0x8001  # Key Usage Indicator of the Initial Key (6.3.2)
_BDK_ID_LENGTH: Final = 4  # the Initial Key ID is BDK ID (4 bytes) + derivation ID (4 bytes)
_BLOCK: Final = 16  # AES block size: one derivation step yields 16 bytes of key (6.3.1)
_TYPE_BY_LENGTH: Final[Mapping[int, str]] = MappingProxyType({n: name for name, (_i, n) in ALGORITHMS.items()})


def initial_key(bdk: bytes, initial_key_id: bytes) -> bytes:
    """The Initial Key of the device with ``initial_key_id``, derived from ``bdk`` (6.3.1, 6.3.3).

    The Initial Key has the BDK's type and length.  Its derivation data carries the whole Initial Key ID.
    """
    bdk_type = _key_type(bdk, N_("base derivation key"))
    _check_length(initial_key_id, INITIAL_KEY_ID_LENGTH, N_("Initial Key ID"))
    return _derive(bdk, _INITIAL_KEY_DERIVATION, bdk_type, bytes(initial_key_id))


def transaction_key(initial_key: bytes, ksn: bytes) -> bytes:
    """The derivation key of the transaction ``ksn`` names, from the device's Initial Key (6.1, 6.3.1).

    Starting from the Initial Key, one intermediate key is derived per one-bit of the transaction counter,
    most significant first, each from the previous one with the counter's bits set so far: at most 16 steps.
    """
    key_type = _key_type(initial_key, N_("Initial Key"))
    counter = _transaction_counter(ksn)
    return _derivation_key(initial_key, key_type, _derivation_id(ksn), counter)


def working_key(transaction_key: bytes, ksn: bytes, usage: str, algorithm: str) -> bytes:
    """The ``algorithm`` working key for ``usage`` of the transaction ``ksn``, from its transaction key (6.3.3).

    ``usage`` is a key of :data:`USAGES`, ``algorithm`` one of :data:`ALGORITHMS`.  A working key may not be
    stronger than the key it is derived from (6.1.3): an AES-128 transaction key gives AES-128 working keys only.
    2TDEA and 3TDEA working keys, which X9.24-3 also defines, are not offered.
    """
    key_type = _key_type(transaction_key, N_("transaction key"))
    usage_indicator = _usage_indicator(usage)
    _check_strength(key_type, algorithm)
    counter = _transaction_counter(ksn)
    return _derive(transaction_key, usage_indicator, algorithm, _ksn_tail(_derivation_id(ksn), counter))


def update_key(initial_key: bytes, initial_key_id: bytes, algorithm: str) -> bytes:
    """The DUKPT Update Key of a device: the key-encryption key that protects a new Initial Key (6.5.3).

    It is the ``KEK`` working key derived, with counter ``FFFFFFFF``, from the derivation key of that counter:
    the one derivation that runs past the 16-one-bit limit, which is why it has its own function.
    """
    key_type = _key_type(initial_key, N_("Initial Key"))
    _check_length(initial_key_id, INITIAL_KEY_ID_LENGTH, N_("Initial Key ID"))
    _check_strength(key_type, algorithm)
    derivation_id = _derivation_id(initial_key_id)
    key = _derivation_key(initial_key, key_type, derivation_id, UPDATE_KEY_COUNTER)
    return _derive(key, USAGES["KEK"], algorithm, _ksn_tail(derivation_id, UPDATE_KEY_COUNTER))


def known_answers() -> list[KnownAnswer]:
    """One known-answer test per published ANSI X9.24-3-2017 vector (the table is in ``keys.dukpt_vectors``).

    ``run()`` compares in constant time and returns False, never raises, when a published input is refused.
    """
    return [KnownAnswer(name=vector.name, source=vector.source, run=_check(vector)) for vector in VECTORS]


def _check(vector: Vector) -> Callable[[], bool]:
    def run() -> bool:
        try:
            return hmac.compare_digest(_answer(vector), bytes.fromhex(vector.expected))
        except KeysError:
            return False

    return run


def _answer(vector: Vector) -> bytes:
    """What the public functions give for a published vector's inputs (its ``step`` says which function)."""
    ikid = bytes.fromhex(IKID)
    ik = initial_key(bytes.fromhex(vector.bdk), ikid)
    if vector.step == "initial key":
        return ik
    if vector.step == "update key":
        return update_key(ik, ikid, vector.algorithm)
    ksn = ikid + vector.counter.to_bytes(4, "big")
    tk = transaction_key(ik, ksn)
    return tk if vector.step == "transaction key" else working_key(tk, ksn, vector.usage, vector.algorithm)


def _derivation_key(initial_key: bytes, key_type: str, derivation_id: bytes, counter: int) -> bytes:
    """The intermediate derivation key of ``counter``: one step per one-bit, most significant first (6.1)."""
    key, bits_so_far = initial_key, 0
    for bit in reversed(range(32)):
        if counter >> bit & 1:
            bits_so_far |= 1 << bit
            key = _derive(key, _KEY_DERIVATION, key_type, _ksn_tail(derivation_id, bits_so_far))
    return key


def initial_key_derivation_data(bdk_length: int, initial_key_id: bytes) -> bytes:
    """The derivation data whose AES-ECB encryption under the BDK is the Initial Key (6.3.1, 6.3.3).

    For a key store that derives inside itself (PKCS#11 ``CKM_AES_ECB_ENCRYPT_DATA``): the Initial Key is the
    whole ECB encryption of these bytes, one 16-byte block per 16 bytes of key.
    """
    bdk_type = _TYPE_BY_LENGTH.get(bdk_length)
    if bdk_type is None:
        raise DukptKeyLength(role=N_("base derivation key"), length=bdk_length)
    _check_length(initial_key_id, INITIAL_KEY_ID_LENGTH, N_("Initial Key ID"))
    return _derivation_data(_INITIAL_KEY_DERIVATION, bdk_type, bytes(initial_key_id))


def _derivation_data(usage_indicator: int, algorithm: str, tail: bytes) -> bytes:
    """The derivation data (6.3.2, tables 2 and 3): one 16-byte block per 16 bytes of the derived key.

    Each block: Version ID 01, Key Block Counter (1, 2 ...), Key Usage Indicator (2 bytes), Algorithm Indicator
    (2 bytes), derived key length in bits (2 bytes), then ``tail``: the Initial Key ID, or its derivation ID and
    the transaction counter (6.3.3).
    """
    indicator, length = ALGORITHMS[algorithm]
    head = usage_indicator.to_bytes(2, "big") + indicator.to_bytes(2, "big") + (8 * length).to_bytes(2, "big")
    block_count = (length + _BLOCK - 1) // _BLOCK
    return b"".join(bytes((_VERSION, block)) + head + tail for block in range(1, block_count + 1))


def _derive(key: bytes, usage_indicator: int, algorithm: str, tail: bytes) -> bytes:
    """DeriveKey (6.3.1): AES-ECB under ``key`` of the derivation data; the derived key is its leftmost bytes."""
    length = ALGORITHMS[algorithm][1]
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    blocks = encryptor.update(_derivation_data(usage_indicator, algorithm, tail)) + encryptor.finalize()
    return blocks[:length]


def _ksn_tail(derivation_id: bytes, counter: int) -> bytes:
    """The last 8 bytes of derivation data for every key but the Initial Key: derivation ID, counter (6.3.3)."""
    return derivation_id + counter.to_bytes(4, "big")


def _derivation_id(initial_key_id_or_ksn: bytes) -> bytes:
    """The derivation ID: bytes 4-7 of an Initial Key ID or KSN, after the 4-byte BDK ID (6.2.1)."""
    return bytes(initial_key_id_or_ksn[_BDK_ID_LENGTH:INITIAL_KEY_ID_LENGTH])


def _key_type(key: bytes, role: str) -> str:
    """The AES type of a BDK, Initial Key or transaction key, from its length (6.2.2); only the length is shown."""
    key_type = _TYPE_BY_LENGTH.get(len(key))
    if key_type is None:
        raise DukptKeyLength(role=role, length=len(key))
    return key_type


def _check_length(value: bytes, expected: int, field: str) -> None:
    if len(value) != expected:
        raise DukptIdLength(field=field, length=len(value), expected=expected)


def _transaction_counter(ksn: bytes) -> int:
    """The transaction counter of ``ksn``, refused when no conforming device would have sent it (6.5.2)."""
    _check_length(ksn, KSN_LENGTH, N_("KSN"))
    counter = int.from_bytes(ksn[INITIAL_KEY_ID_LENGTH:], "big")
    shown = {"ksn": ksn.hex().upper(), "counter": f"0x{counter:08X}"}
    if counter == 0:
        raise KsnCounterZero(ksn=shown["ksn"])
    if counter > MAX_COUNTER:
        raise KsnCounterExhausted(**shown, maximum=f"0x{MAX_COUNTER:08X}")
    if counter.bit_count() > MAX_ONE_BITS:
        raise KsnCounterTooManyOnes(**shown, ones=counter.bit_count())
    return counter


def _usage_indicator(usage: str) -> int:
    if not isinstance(usage, str) or usage not in USAGES:
        raise DukptUnknownUsage(usages=", ".join(USAGES))
    return USAGES[usage]


def _check_strength(key_type: str, algorithm: str) -> None:
    """A working key no stronger than the key it is derived from (6.1.3)."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise DukptUnknownAlgorithm(algorithms=", ".join(ALGORITHMS))
    if ALGORITHMS[algorithm][1] > ALGORITHMS[key_type][1]:
        raise DukptWorkingKeyTooStrong(algorithm=algorithm, bits=8 * ALGORITHMS[key_type][1])
