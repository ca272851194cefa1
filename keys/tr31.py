"""TR-31 / ANSI X9.143 key blocks, version D (AES key derivation binding): wrap and unwrap under policy.

psec does the block cryptography (KBEK/KBAK derivation, AES-CBC, the AES-CMAC over header and key data) and
nothing else.  This module owns the policy, on wrap and on unwrap alike:

- only version D, under an AES key block protection key (KBPK) of 16, 24 or 32 bytes, at least as long as
  the AES key it protects;
- only the key usage / algorithm / mode-of-use combinations of :data:`ALLOWED_USES` (a subset of X9.143);
- exportability E, N or S, and N refused to a caller that unwraps for export;
- a key length that fits its algorithm; optional blocks well formed, unique, and KC/KP equal to the KCVs of
  the key and of the KBPK when present;
- the header parsed here, strictly (upper-case hex, no duplicate blocks, padding last), before psec sees it;
- what the caller expects (usage, algorithm, mode of use) checked after the MAC.

Errors carry header characters and lengths only, never key bytes; psec's own messages (which quote the
encrypted key data) are never passed on.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

import psec.tr31

from i18n import N_

from . import kcv
from .errors import (
    KeyBlockAuthenticationFailed,
    KeyBlockHeaderInvalid,
    KeyBlockMalformed,
    KeyBlockProtectionKeyInvalid,
    KeyBlockProtectionKeyTooWeak,
    KeyBlockUnexpected,
    KeyBlockVersionRefused,
    KeyCheckValueMismatch,
    KeyLengthInvalid,
    KeyNotExportable,
    KeysError,
    KeyUsageNotAllowed,
    OptionalBlockInvalid,
)
from .kat import KnownAnswer

VERSION_D = "D"
HEADER_LENGTH = 16
AES_BLOCK_CHARS = 16
"""X9.143: a version D header with its optional blocks is a whole number of 16-character blocks."""
MAC_CHARS = 32
_MAX_BLOCKS = 99

AES = "A"
TDES = "T"
KEY_LENGTHS = {AES: (16, 24, 32), TDES: (16, 24)}
"""Single-length DES (algorithm D) is absent on purpose: PCI PIN does not allow it."""

_DERIVE = frozenset("NX")
_CIPHER = frozenset("BDEN")
_MAC = frozenset("CGV")
_AES_OR_TDES = frozenset((AES, TDES))

ALLOWED_USES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # usage: (algorithms, modes of use) -- ANSI X9.143-2021 table 6, restricted to AES and TDES keys.
    "B0": (_AES_OR_TDES, _DERIVE),  # Base Derivation Key (BDK)
    "B1": (_AES_OR_TDES, _DERIVE),  # Initial DUKPT key
    "D0": (_AES_OR_TDES, _CIPHER),  # symmetric data encryption key
    "K0": (_AES_OR_TDES, _CIPHER),  # key encryption or wrapping key
    "K1": (_AES_OR_TDES, _CIPHER),  # TR-31 key block protection key
    "M0": (frozenset(TDES), _MAC),  # ISO 16609 MAC algorithm 1 (TDEA)
    "M1": (frozenset(TDES), _MAC),  # ISO 9797-1 MAC algorithm 1
    "M3": (frozenset(TDES), _MAC),  # ISO 9797-1 MAC algorithm 3 (retail MAC)
    "M6": (_AES_OR_TDES, _MAC),  # ISO 9797-1:2011 MAC algorithm 5 (CMAC)
    "P0": (_AES_OR_TDES, _CIPHER),  # PIN encryption key
}
EXPORTABILITY = ("E", "N", "S")

PAD_BLOCK = "PB"
KEY_SET_ID = "KS"
"""Key set identifier: the Initial Key ID of an AES DUKPT key (16 hex digits) or a TDES DUKPT KSN (20)."""
INITIAL_KEY_ID = "IK"
KEY_KCV = "KC"
KBPK_KCV = "KP"
_KCV_LEGACY = "00"
_KCV_CMAC = "01"
_HEX = frozenset("0123456789ABCDEF")
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _printable(text: str) -> bool:
    return all(" " <= c <= "~" for c in text)


def _hex(text: str) -> bool:
    return bool(text) and set(text) <= _HEX


def _alnum(text: str) -> bool:
    return set(text) <= _ALNUM


@dataclass(frozen=True)
class Header:
    """A TR-31 header: the fields bound to the key by the block's MAC.  Optional blocks keep their order;
    the pad block (PB) is not one of them: rendering adds it, parsing drops it."""

    key_usage: str
    algorithm: str
    mode_of_use: str
    version_number: str = "00"
    exportability: str = "N"
    optional_blocks: tuple[tuple[str, str], ...] = ()
    version: str = VERSION_D

    def block(self, block_id: str) -> str | None:
        """The data of optional block ``block_id``, or None when the header has none."""
        return next((data for bid, data in self.optional_blocks if bid == block_id), None)

    def render(self) -> str:
        """The header as text, its length field counting the header alone (a block's length is set on wrap)."""
        _check_header(self)
        blocks = "".join(_render_block(bid, data) for bid, data in self.optional_blocks)
        count = len(self.optional_blocks)
        if len(blocks) % AES_BLOCK_CHARS:
            pad = -(len(blocks) + 4) % AES_BLOCK_CHARS
            blocks += _render_block(PAD_BLOCK, "0" * pad)
            count += 1
        fields = self.key_usage + self.algorithm + self.mode_of_use + self.version_number + self.exportability
        return f"{self.version}{HEADER_LENGTH + len(blocks):04d}{fields}{count:02d}00{blocks}"

    @classmethod
    def parse(cls, text: str) -> Header:
        """The header at the start of ``text`` (a header or a whole key block), parsed strictly."""
        return _parse(text)[0]


def _render_block(block_id: str, data: str) -> str:
    if len(data) + 4 <= 0xFF:
        return f"{block_id}{len(data) + 4:02X}{data}"
    return f"{block_id}0002{len(data) + 10:04X}{data}"


def _parse(text: str) -> tuple[Header, int]:
    """The header and the number of characters it spans.  Structure only: policy is :func:`_check_header`."""
    if not isinstance(text, str) or not _printable(text):
        raise KeyBlockMalformed(reason=N_("it is not printable ASCII text"))
    if len(text) < HEADER_LENGTH or not _alnum(text[:HEADER_LENGTH]) or not text[1:5].isdigit():
        raise KeyBlockMalformed(reason=N_("its fixed header is not 16 letters and digits"))
    if not text[12:14].isdigit():
        raise KeyBlockMalformed(reason=N_("its number of optional blocks is not two digits"))
    if text[14:16] != "00":
        raise KeyBlockHeaderInvalid(field=N_("reserved"), value=text[14:16])
    blocks: list[tuple[str, str]] = []
    count, at = int(text[12:14]), HEADER_LENGTH
    for index in range(count):
        block_id, data, at = _parse_block(text, at)
        if any(block_id == seen for seen, _ in blocks):
            raise OptionalBlockInvalid(block_id=block_id, reason=N_("it appears more than once"))
        if block_id != PAD_BLOCK:
            blocks.append((block_id, data))
        elif index != count - 1:
            raise OptionalBlockInvalid(block_id=block_id, reason=N_("the pad block must be the last block"))
    header = Header(
        version=text[0],
        key_usage=text[5:7],
        algorithm=text[7],
        mode_of_use=text[8],
        version_number=text[9:11],
        exportability=text[11],
        optional_blocks=tuple(blocks),
    )
    return header, at


def _parse_block(text: str, at: int) -> tuple[str, str, int]:
    """One optional block at ``at``: its ID, its data and where the next one starts."""
    block_id, length_text = text[at : at + 2], text[at + 2 : at + 4]
    if len(block_id) != 2 or not _alnum(block_id):
        raise KeyBlockMalformed(reason=N_("an optional block ID is not two letters or digits"))
    if not _hex(length_text) or len(length_text) != 2:
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("its length is not two hex digits"))
    length, start = int(length_text, 16), at + 4
    if length == 0:  # extended length: "00", the length of the length (2 hex digits), then the length
        size_text = text[start : start + 2]
        size = int(size_text, 16) if _hex(size_text) and len(size_text) == 2 else 0
        length_text = text[start + 2 : start + 2 + 2 * size]
        if size == 0 or len(length_text) != 2 * size or not _hex(length_text):
            raise OptionalBlockInvalid(block_id=block_id, reason=N_("its extended length is malformed"))
        length, start = int(length_text, 16), start + 2 + 2 * size
    end = at + length
    if end < start or end > len(text):
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("its length does not fit the header"))
    return block_id, text[start:end], end


# --- policy ------------------------------------------------------------------------------------------


def _echo(value: object, width: int) -> str:
    """A header field as it may appear in an error: only when it has the size and alphabet of one, so that a
    caller's mistake (a key where a field belongs) never reaches a message."""
    return value if isinstance(value, str) and 0 < len(value) <= width and _alnum(value) else "?"


def _check_header(header: Header) -> None:
    """Every header field and optional block is one this station accepts; raises the first violation."""
    if header.version != VERSION_D:
        raise KeyBlockVersionRefused(version=_echo(header.version, 1))
    algorithms, modes = ALLOWED_USES.get(header.key_usage, (frozenset(), frozenset()))
    if header.algorithm not in algorithms or header.mode_of_use not in modes:
        raise KeyUsageNotAllowed(
            usage=_echo(header.key_usage, 2), algorithm=_echo(header.algorithm, 1), mode=_echo(header.mode_of_use, 1)
        )
    number = header.version_number
    if not isinstance(number, str) or len(number) != 2 or not _alnum(number) or number.startswith("c"):
        # "c" first: the block carries a key component, which is entered in a ceremony, never injected
        raise KeyBlockHeaderInvalid(field=N_("key version number"), value=_echo(number, 2))
    if header.exportability not in EXPORTABILITY:
        raise KeyBlockHeaderInvalid(field=N_("exportability"), value=_echo(header.exportability, 1))
    if len(header.optional_blocks) >= _MAX_BLOCKS:  # one more may be needed for padding
        raise KeyBlockMalformed(reason=N_("it has too many optional blocks"))
    seen: set[str] = set()
    for block_id, data in header.optional_blocks:
        _check_optional_block(block_id, data)
        if block_id in seen:
            raise OptionalBlockInvalid(block_id=block_id, reason=N_("it appears more than once"))
        seen.add(block_id)


def _check_optional_block(block_id: str, data: str) -> None:
    if not isinstance(block_id, str) or len(block_id) != 2 or not _alnum(block_id):
        raise KeyBlockMalformed(reason=N_("an optional block ID is not two letters or digits"))
    if block_id == PAD_BLOCK:
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("the pad block is added by the key block itself"))
    if not isinstance(data, str) or not data or not _printable(data) or len(data) > 0xFFFF - 10:
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("its data is empty, too long or not printable ASCII"))
    if block_id == KEY_SET_ID and not (_hex(data) and len(data) in (16, 20)):
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("a key set identifier is 16 or 20 hex digits"))
    if block_id == INITIAL_KEY_ID and not (_hex(data) and len(data) == 16):
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("an Initial Key ID is 16 hex digits"))
    if block_id in (KEY_KCV, KBPK_KCV):
        kcv_length = {_KCV_LEGACY: kcv.TDES_KCV_LENGTH, _KCV_CMAC: kcv.AES_CMAC_KCV_LENGTH}.get(data[:2])
        if kcv_length is None or len(data) != 2 + 2 * kcv_length or not _hex(data[2:]):
            raise OptionalBlockInvalid(
                block_id=block_id, reason=N_("a KCV block is 00 and 6 hex digits, or 01 and 10 hex digits")
            )


def _check_kbpk(kbpk: bytes) -> None:
    if not isinstance(kbpk, bytes) or len(kbpk) not in KEY_LENGTHS[AES]:
        raise KeyBlockProtectionKeyInvalid(length=len(kbpk) if isinstance(kbpk, bytes) else 0)


def _check_key(kbpk: bytes, header: Header, key: bytes) -> None:
    """The key fits its algorithm, its KBPK is strong enough, and the KC/KP blocks describe these keys."""
    _check_length(kbpk, header, len(key) if isinstance(key, bytes) else 0)
    _check_kcv(header, KEY_KCV, key, header.algorithm)
    _check_kcv(header, KBPK_KCV, kbpk, AES)


def _check_length(kbpk: bytes, header: Header, length: int) -> None:
    allowed = KEY_LENGTHS[header.algorithm]
    if length not in allowed:
        raise KeyLengthInvalid(length=length, algorithm=header.algorithm, allowed=", ".join(map(str, allowed)))
    if header.algorithm == AES and len(kbpk) < length:
        raise KeyBlockProtectionKeyTooWeak(kbpk_bits=8 * len(kbpk), key_bits=8 * length)


def check_wrap(kbpk: bytes, header: Header, key_length: int) -> None:
    """What :func:`wrap` checks before it needs the key itself (all but the KC block): for a key store to refuse
    a transfer before the key leaves it."""
    _check_kbpk(kbpk)
    _check_header(header)
    _check_length(kbpk, header, key_length)
    _check_kcv(header, KBPK_KCV, kbpk, AES)


_KCV_OF: dict[tuple[str, str], Callable[[bytes], bytes]] = {
    (_KCV_CMAC, AES): kcv.aes_cmac_kcv,  # X9.143 KC/KP algorithm 01: AES-CMAC KCV
    (_KCV_LEGACY, TDES): kcv.tdes_kcv,  # X9.143 KC/KP algorithm 00: legacy KCV (TDES keys only here)
}


def _check_kcv(header: Header, block_id: str, key: bytes, algorithm: str) -> None:
    """Optional block KC (the key's KCV) or KP (the KBPK's), when present, must be the KCV of that key."""
    data = header.block(block_id)
    if data is None:
        return
    compute = _KCV_OF.get((data[:2], algorithm))
    if compute is None:
        raise OptionalBlockInvalid(block_id=block_id, reason=N_("its KCV algorithm does not fit the key"))
    if not hmac.compare_digest(compute(key).hex().upper(), data[2:]):
        raise KeyCheckValueMismatch(block_id=block_id)


def _check_expected(field: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise KeyBlockUnexpected(field=field, actual=_echo(actual, 2), expected=_echo(expected, 2))


# --- wrap and unwrap ---------------------------------------------------------------------------------


def wrap(kbpk: bytes, header: Header, key: bytes) -> str:
    """``key`` in a version D key block under ``kbpk``, bound to ``header``; refused unless all of it is allowed.

    The key length is masked: every AES key is padded as if it were 32 bytes (TDES: 24), psec's default.
    """
    if not isinstance(header, Header):
        raise TypeError("wrap() takes a keys.tr31.Header")
    _check_kbpk(kbpk)
    _check_header(header)
    _check_key(kbpk, header, key)
    bound = psec.tr31.Header(
        version_id=header.version,
        key_usage=header.key_usage,
        algorithm=header.algorithm,
        mode_of_use=header.mode_of_use,
        version_num=header.version_number,
        exportability=header.exportability,
    )
    for block_id, data in header.optional_blocks:
        bound.blocks[block_id] = data
    try:
        block = psec.tr31.wrap(kbpk, bound, key)
    except (psec.tr31.HeaderError, psec.tr31.KeyBlockError):
        raise KeyBlockMalformed(reason=N_("the key block library refused it")) from None
    written, header_length = _parse(block)  # what goes out reads back as exactly what was asked for
    _check_structure(block, header_length)
    if written != header:
        raise KeyBlockMalformed(reason=N_("it reads differently to the key block library"))
    return block


def unwrap(
    kbpk: bytes,
    block: str,
    *,
    expect_usage: str | None = None,
    expect_algorithm: str | None = None,
    expect_mode: str | None = None,
    for_export: bool = False,
) -> tuple[Header, bytes]:
    """The header and key of a version D key block, after its MAC and every rule of this module.

    ``expect_*`` are what the caller is about to use the key for; ``for_export`` refuses a non-exportable key.
    """
    header, header_length = _parse(block)
    if header.version != VERSION_D:
        raise KeyBlockVersionRefused(version=header.version)
    _check_kbpk(kbpk)
    _check_structure(block, header_length)
    try:
        bound, key = psec.tr31.unwrap(kbpk, block)
    except (psec.tr31.HeaderError, psec.tr31.KeyBlockError):
        raise KeyBlockAuthenticationFailed() from None
    fields = (bound.key_usage, bound.algorithm, bound.mode_of_use, bound.version_num, bound.exportability)
    if Header(*fields, tuple(bound.blocks.items()), bound.version_id) != header:
        raise KeyBlockMalformed(reason=N_("it reads differently to the key block library"))
    _check_header(header)
    _check_key(kbpk, header, key)
    _check_expected(N_("key usage"), header.key_usage, expect_usage)
    _check_expected(N_("algorithm"), header.algorithm, expect_algorithm)
    _check_expected(N_("mode of use"), header.mode_of_use, expect_mode)
    if for_export and header.exportability == "N":
        raise KeyNotExportable()
    return header, key


def _check_structure(block: str, header_length: int) -> None:
    """Length field, 16-character alignment, upper-case hex key data and MAC: before any cryptography."""
    if int(block[1:5]) != len(block) or len(block) > 9999:
        raise KeyBlockMalformed(reason=N_("its length field does not match its length"))
    if header_length % AES_BLOCK_CHARS:
        raise KeyBlockMalformed(reason=N_("its optional blocks are not padded to the AES block size"))
    body = block[header_length:]
    if not _hex(body) or len(body) < MAC_CHARS + 2 * AES_BLOCK_CHARS or len(body) % (2 * AES_BLOCK_CHARS):
        raise KeyBlockMalformed(reason=N_("its key data and MAC are not upper-case hex in whole AES blocks"))


# --- known answers -----------------------------------------------------------------------------------
# The published examples of the standards (their KBPKs and keys are example values, not secrets).

_A74_KBPK = "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6"
_A74_KEY = "3F419E1CB7079442AA37474C2EFBF8B8"
_A74_BLOCK = (
    "D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34"
)
_X9143_81_BLOCK = (
    "D0144P0AE00E00002C77FA3F4A553BED6E88AE5C172A4166E3D4ACA8E2AC71C158A476FAC12C13C3829DE55D3AB54C48F4C4FEF7AC75E90F"
    "C47F1B77E7B19A73ED46E64410082557"
)
PUBLISHED_BLOCKS = (
    # (name, source, KBPK, key block, key)
    (
        N_("Unwrap the version D example P0 key block"),
        N_("ASC X9 TR 31-2018 annex A.7.4 (AES-256 KBPK, AES-128 PIN key, key length not masked)"),
        _A74_KBPK,
        _A74_BLOCK,
        _A74_KEY,
    ),
    (
        N_("Unwrap the version D example P0 key block with a masked key length"),
        N_("ANSI X9.143-2021 section 8.1 (AES-256 KBPK, AES-128 PIN key masked as 32 bytes)"),
        _A74_KBPK,
        _X9143_81_BLOCK,
        _A74_KEY,
    ),
)


def _unwraps_to(kbpk_hex: str, block: str, key_hex: str) -> Callable[[], bool]:
    def run() -> bool:
        try:
            header, key = unwrap(bytes.fromhex(kbpk_hex), block, expect_usage="P0", expect_algorithm=AES)
        except KeysError:
            return False
        return hmac.compare_digest(key, bytes.fromhex(key_hex)) and header.render() == "D0016P0AE00E0000"

    return run


def _round_trip() -> bool:
    """Wrap the A.7.4 key as a B1 Initial Key with a KS and a KC block, then unwrap it: same header, same key."""
    kbpk, key = bytes.fromhex(_A74_KBPK), bytes.fromhex(_A74_KEY)
    header = Header(
        "B1",
        AES,
        "X",
        "00",
        "N",
        ((KEY_SET_ID, "0123456789ABCDEF"), (KEY_KCV, "01" + kcv.aes_cmac_kcv(key).hex().upper())),
    )
    try:
        back = unwrap(kbpk, wrap(kbpk, header, key), expect_usage="B1", expect_algorithm=AES, expect_mode="X")
    except KeysError:
        return False
    return back[0] == header and hmac.compare_digest(back[1], key)


def _refuses_tampering() -> bool:
    """One bit changed in the MAC of the A.7.4 block: the block must be refused by its MAC."""
    last = _A74_BLOCK[-1]
    tampered = _A74_BLOCK[:-1] + ("5" if last == "4" else "4")
    try:
        unwrap(bytes.fromhex(_A74_KBPK), tampered)
    except KeyBlockAuthenticationFailed:
        return True
    except KeysError:
        return False
    return False


def known_answers() -> list[KnownAnswer]:
    """The published key blocks this module must unwrap, a wrap round trip and a tampered block, for the self-test."""
    answers = [KnownAnswer(n, s, _unwraps_to(kbpk, b, k)) for n, s, kbpk, b, k in PUBLISHED_BLOCKS]
    answers.append(
        KnownAnswer(
            N_("Wrap and unwrap a B1 Initial Key with KS and KC blocks"),
            N_("Round trip on the ASC X9 TR 31-2018 annex A.7.4 KBPK and key"),
            _round_trip,
        )
    )
    answers.append(
        KnownAnswer(
            N_("Refuse the version D example key block with one MAC bit changed"),
            N_("ASC X9 TR 31-2018 annex A.7.4 key block, last MAC digit altered"),
            _refuses_tampering,
        )
    )
    return answers
