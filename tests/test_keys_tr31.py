"""TR-31 / X9.143 version D key blocks: the published examples, round trips, and every refusal."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import errors, tr31
from keys.kcv import aes_cmac_kcv, tdes_kcv
from keys.tr31 import Header, unwrap, wrap

A74_KBPK = bytes.fromhex("88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6")
A74_KEY = bytes.fromhex("3F419E1CB7079442AA37474C2EFBF8B8")
A74_BLOCK = tr31.PUBLISHED_BLOCKS[0][3]

# Key blocks made by a Thales payShield 10k HSM, as published in the test data of openemv/tr31
# (test/tr31_decrypt_test.c, tests 7 and 8): interoperability with a production HSM, not a standard's annex.
PAYSHIELD_KBPK = b"A" * 32
PAYSHIELD_BLOCKS = (
    (
        "D0112B0TN00N000037DB9B046B7B0048785690759580ABC3B9842AB4BB7717B49E92528E575785D8123559376A2553B27BE94F054F4E971C",
        "1FA1F7CEC798D91545DA8AE0C7796BD9",
        ("B0", "T", "N"),
        "FF5087",  # the legacy TDES KCV openemv gives for this key
    ),
    (
        "D0144D0AN00N0000127862F945C2DED04530FAF7CDBC8B0BA10C7AA79BD5E0C2C5D6AC173BF588E4B19ACF1357178D50EA0AB193228E"
        "13958304FC6149632DFDCADF3A5B3D57E814",
        "BE19E6A07A760F10EF8E83A226B63AAD141F463FDDD4F47DB244B4023EC3CACC",
        ("D0", "A", "N"),
        "0A00E3",  # the first 3 bytes of the AES-CMAC KCV openemv gives for this key
    ),
)

KS = "0123456789ABCDEF"


def b1_header(**changes: object) -> Header:
    return replace(Header("B1", "A", "X", "00", "N", (("KS", KS),)), **changes)  # type: ignore[arg-type]


# --- published vectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "source", "kbpk", "block", "key"), tr31.PUBLISHED_BLOCKS)
def test_published_version_d_blocks_unwrap(name: str, source: str, kbpk: str, block: str, key: str) -> None:
    header, unwrapped = unwrap(bytes.fromhex(kbpk), block, expect_usage="P0", expect_algorithm="A", expect_mode="E")
    assert unwrapped == bytes.fromhex(key)
    assert header == Header("P0", "A", "E", "00", "E")


@pytest.mark.parametrize(("block", "key", "use", "kcv"), PAYSHIELD_BLOCKS)
def test_payshield_version_d_blocks_unwrap(block: str, key: str, use: tuple[str, str, str], kcv: str) -> None:
    header, unwrapped = unwrap(PAYSHIELD_KBPK, block)
    assert unwrapped == bytes.fromhex(key)
    assert (header.key_usage, header.algorithm, header.mode_of_use, header.exportability) == (*use, "N")
    assert (tdes_kcv(unwrapped) if header.algorithm == "T" else aes_cmac_kcv(unwrapped)).hex().upper()[:6] == kcv


def test_header_with_kc_and_kp_renders_as_published() -> None:
    """openemv/tr31 test/tr31_export_test.c "Optional blocks KC and KP": X9.143 KC (legacy KCV of a TDES key,
    TR-31:2018 A.7.2.2) and KP (AES-CMAC KCV of the KBPK, X9.143-2021 8.6), padded with PB to 16 characters."""
    header = Header("P0", "T", "E", "00", "E", (("KC", "0057C409"), ("KP", "012331550BC9")))
    assert header.render() == "D0048P0TE00E0300KC0C0057C409KP10012331550BC9PB04"
    assert Header.parse(header.render()) == header
    block = wrap(A74_KBPK, header, A74_KEY)
    assert unwrap(A74_KBPK, block) == (header, A74_KEY)


def test_every_known_answer_passes() -> None:
    assert [a.name for a in tr31.known_answers() if not a.run()] == []


# --- round trips -------------------------------------------------------------------------------------

USES = [(u, a, m) for u, (algs, modes) in tr31.ALLOWED_USES.items() for a in sorted(algs) for m in sorted(modes)]
block_ids = st.text(alphabet="ABCDEFGHIJLMNOQRSUVWXYZ0123456789", min_size=2, max_size=2).filter(
    lambda i: i not in ("PB", "KS", "IK", "KC", "KP")
)
printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=300)


@st.composite
def headers_and_keys(draw: st.DrawFn) -> tuple[Header, bytes]:
    usage, algorithm, mode = draw(st.sampled_from(USES))
    key = draw(st.binary(min_size=16, max_size=32).filter(lambda k: len(k) in tr31.KEY_LENGTHS[algorithm]))
    blocks = dict(draw(st.lists(st.tuples(block_ids, printable), max_size=3, unique_by=lambda b: b[0])))
    if draw(st.booleans()):
        blocks["KS"] = draw(st.text(alphabet="0123456789ABCDEF", min_size=16, max_size=16))
    if draw(st.booleans()):
        blocks["KC"] = (
            "01" + aes_cmac_kcv(key).hex().upper() if algorithm == "A" else "00" + tdes_kcv(key).hex().upper()
        )
    if draw(st.booleans()):
        blocks["KP"] = "01" + aes_cmac_kcv(A74_KBPK).hex().upper()
    version = draw(st.sampled_from(["00", "01", "9Z", "ab"]))
    exportability = draw(st.sampled_from(tr31.EXPORTABILITY))
    return Header(usage, algorithm, mode, version, exportability, tuple(blocks.items())), key


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(headers_and_keys())
def test_wrap_then_unwrap_gives_back_header_and_key(case: tuple[Header, bytes]) -> None:
    header, key = case
    block = wrap(A74_KBPK, header, key)
    assert Header.parse(block) == header
    assert unwrap(
        A74_KBPK,
        block,
        expect_usage=header.key_usage,
        expect_algorithm=header.algorithm,
        expect_mode=header.mode_of_use,
    ) == (header, key)


@settings(max_examples=100)
@given(headers_and_keys())
def test_render_then_parse_is_identity(case: tuple[Header, bytes]) -> None:
    header = case[0]
    text = header.render()
    assert len(text) % 16 == 0 and int(text[1:5]) == len(text)
    assert Header.parse(text) == header


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_parse_of_hostile_text_raises_only_keys_errors(text: str) -> None:
    with contextlib.suppress(errors.KeysError):
        Header.parse(text)


@settings(max_examples=300)
@given(st.text(alphabet="D0123456789ABCDEFKSPBNXcz", max_size=160))
def test_unwrap_of_hostile_text_raises_only_keys_errors(text: str) -> None:
    with pytest.raises(errors.KeyBlockError):
        unwrap(A74_KBPK, "D" + text)


# --- refusals on wrap --------------------------------------------------------------------------------

REFUSED_HEADERS = [
    (b1_header(version="B"), errors.KeyBlockVersionRefused),
    (b1_header(key_usage="B2"), errors.KeyUsageNotAllowed),
    (b1_header(key_usage="ZZ"), errors.KeyUsageNotAllowed),
    (b1_header(mode_of_use="E"), errors.KeyUsageNotAllowed),
    (b1_header(algorithm="D"), errors.KeyUsageNotAllowed),  # single DES
    (b1_header(algorithm="R"), errors.KeyUsageNotAllowed),
    (b1_header(key_usage="P0", mode_of_use="X"), errors.KeyUsageNotAllowed),
    (b1_header(key_usage="M3", mode_of_use="C"), errors.KeyUsageNotAllowed),  # M3 is TDES only
    (b1_header(key_usage="K0", mode_of_use="C"), errors.KeyUsageNotAllowed),
    (b1_header(key_usage="D0", mode_of_use="G"), errors.KeyUsageNotAllowed),
    (b1_header(exportability="X"), errors.KeyBlockHeaderInvalid),
    (b1_header(exportability="1"), errors.KeyBlockHeaderInvalid),
    (b1_header(version_number="0"), errors.KeyBlockHeaderInvalid),
    (b1_header(version_number="0!"), errors.KeyBlockHeaderInvalid),
    (b1_header(version_number="c1"), errors.KeyBlockHeaderInvalid),  # a key component
    (b1_header(optional_blocks=(("KS", "0123"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("KS", KS.lower()),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("KS", KS), ("KS", KS))), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("IK", KS + "00"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("PB", "0000"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("TT", ""),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("TT", "caf\u00e9"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("TT", "tab\there"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("T!", "x"),)), errors.KeyBlockMalformed),
    (b1_header(optional_blocks=(("KC", "02ABCDEF"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("KC", "01ABCDEF"),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("KC", "00" + tdes_kcv(A74_KEY).hex().upper()),)), errors.OptionalBlockInvalid),
    (b1_header(optional_blocks=(("KC", "01" + "0" * 10),)), errors.KeyCheckValueMismatch),
    (b1_header(optional_blocks=(("KP", "01" + aes_cmac_kcv(A74_KEY).hex().upper()),)), errors.KeyCheckValueMismatch),
]


@pytest.mark.parametrize(("header", "error"), REFUSED_HEADERS)
def test_wrap_refuses_header(header: Header, error: type[Exception]) -> None:
    with pytest.raises(error):
        wrap(A74_KBPK, header, A74_KEY)


def test_wrap_refuses_too_many_optional_blocks() -> None:
    ids = [a + b for a in "ABCDEFGHIJ" for b in "0123456789"][:99]
    with pytest.raises(errors.KeyBlockMalformed):
        wrap(A74_KBPK, b1_header(optional_blocks=tuple((i, "x") for i in ids)), A74_KEY)


@pytest.mark.parametrize(("algorithm", "length"), [("A", 8), ("A", 15), ("A", 17), ("A", 0), ("T", 8), ("T", 32)])
def test_wrap_refuses_key_length_that_does_not_fit_the_algorithm(algorithm: str, length: int) -> None:
    with pytest.raises(errors.KeyLengthInvalid):
        wrap(A74_KBPK, b1_header(algorithm=algorithm), bytes(range(1, length + 1)))


@pytest.mark.parametrize("length", [0, 8, 15, 20, 33, 64])
def test_wrap_and_unwrap_refuse_a_kbpk_that_is_not_aes(length: int) -> None:
    with pytest.raises(errors.KeyBlockProtectionKeyInvalid):
        wrap(bytes(length), b1_header(), A74_KEY)
    with pytest.raises(errors.KeyBlockProtectionKeyInvalid):
        unwrap(bytes(length), A74_BLOCK)


def test_wrap_refuses_a_kbpk_weaker_than_the_key() -> None:
    with pytest.raises(errors.KeyBlockProtectionKeyTooWeak):
        wrap(A74_KBPK[:16], b1_header(), bytes(32))


def test_wrap_takes_only_a_header_object() -> None:
    with pytest.raises(TypeError):
        wrap(A74_KBPK, "D0016B1AX00N0000", A74_KEY)  # type: ignore[arg-type]


def test_wrap_refuses_a_block_too_long_for_its_four_digit_length_field() -> None:
    with pytest.raises(errors.KeyBlockMalformed):
        wrap(A74_KBPK, b1_header(optional_blocks=(("TT", "x" * 9900),)), A74_KEY)


def test_a_key_put_where_a_header_field_belongs_is_not_echoed() -> None:
    with pytest.raises(errors.KeyUsageNotAllowed) as caught:
        wrap(A74_KBPK, b1_header(key_usage=A74_KEY.hex()), A74_KEY)
    assert A74_KEY.hex() not in str(caught.value)


# --- refusals on unwrap ------------------------------------------------------------------------------


def test_a_changed_character_anywhere_is_refused() -> None:
    """Every position of the published block, each changed to two other characters (one of them the
    lower-case form, which a lax hex decoder would accept as the same byte): always refused."""
    for position, char in enumerate(A74_BLOCK):
        for other in {chr(ord(char) ^ 1), char.lower() if char.isupper() else chr(ord(char) ^ 0x20)} - {char}:
            tampered = A74_BLOCK[:position] + other + A74_BLOCK[position + 1 :]
            with pytest.raises(errors.KeyBlockError):
                unwrap(A74_KBPK, tampered)


def test_a_changed_bit_in_key_data_or_mac_is_refused_by_the_mac() -> None:
    for position in range(16, len(A74_BLOCK)):
        digit = int(A74_BLOCK[position], 16)
        tampered = A74_BLOCK[:position] + f"{digit ^ 1:X}" + A74_BLOCK[position + 1 :]
        with pytest.raises(errors.KeyBlockAuthenticationFailed):
            unwrap(A74_KBPK, tampered)


def test_another_kbpk_is_refused_by_the_mac() -> None:
    with pytest.raises(errors.KeyBlockAuthenticationFailed):
        unwrap(bytes(32), A74_BLOCK)


def test_a_header_rewritten_to_another_usage_is_refused_by_the_mac() -> None:
    with pytest.raises(errors.KeyBlockAuthenticationFailed):
        unwrap(A74_KBPK, A74_BLOCK.replace("P0AE", "K0AB", 1))


def _with_length(block: str) -> str:
    """``block`` with its length field set to its length, so that only the defect under test remains."""
    return f"{block[0]}{len(block):04d}{block[5:]}"


@pytest.mark.parametrize(
    "block",
    [
        A74_BLOCK[:-2],  # the length field no longer matches
        A74_BLOCK + "00",
        _with_length(A74_BLOCK[:-16]),  # MAC cut short
        _with_length(A74_BLOCK[:-64]),  # key data cut by a whole AES block: only the MAC is left
        _with_length(A74_BLOCK[:16] + A74_BLOCK[48:]),  # one AES block of key data dropped
        _with_length(A74_BLOCK[:-2] + "0"),  # not a whole number of AES blocks
        _with_length(A74_BLOCK[:-1] + "a"),  # lower-case hex
        _with_length(A74_BLOCK + "\x00"),
        "",
        "D",
        "D0016P0AE00E0000",
        "D0016P0AE00E0100",  # one optional block announced, none present
        "D0016P0AE00E0001",  # reserved field not 00
        A74_BLOCK.replace("D0112", "D011 ", 1),
    ],
)
def test_malformed_blocks_are_refused(block: str) -> None:
    with pytest.raises(errors.KeyBlockError):
        unwrap(A74_KBPK, block)


def test_a_version_b_block_is_refused_before_any_cryptography() -> None:
    version_b = "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E"  # TR-31:2018 A.7.2.2
    with pytest.raises(errors.KeyBlockVersionRefused):
        unwrap(bytes.fromhex("DD7515F2BFC17F85CE48F3CA25CB21F6"), version_b)


def test_duplicate_optional_blocks_are_refused_even_when_authentic() -> None:
    """psec keeps the last of two blocks with one ID; this module refuses the header."""
    single = wrap(A74_KBPK, b1_header(optional_blocks=(("KS", KS), ("TT", KS))), A74_KEY)
    doubled = single.replace("TT14", "KS14", 1)
    with pytest.raises(errors.OptionalBlockInvalid):
        unwrap(A74_KBPK, doubled)


def test_an_authentic_block_with_a_forbidden_use_is_refused() -> None:
    """The sender holds the KBPK and MACs a header this station does not allow: refused after the MAC."""
    import psec.tr31

    block = psec.tr31.wrap(A74_KBPK, "D0016P0AX00E0000", A74_KEY)
    with pytest.raises(errors.KeyUsageNotAllowed):
        unwrap(A74_KBPK, block)
    short_key = psec.tr31.wrap(A74_KBPK, "D0016P0AE00E0000", bytes(8))
    with pytest.raises(errors.KeyLengthInvalid):
        unwrap(A74_KBPK, short_key)
    wrong_kc = psec.tr31.wrap(A74_KBPK, "D0016P0AE00E0100KC1001" + "0" * 10, A74_KEY)
    with pytest.raises(errors.KeyCheckValueMismatch):
        unwrap(A74_KBPK, wrong_kc)


@pytest.mark.parametrize(
    ("expectation", "value"),
    [("expect_usage", "B1"), ("expect_algorithm", "T"), ("expect_mode", "D")],
)
def test_a_block_that_says_otherwise_than_expected_is_refused(expectation: str, value: str) -> None:
    with pytest.raises(errors.KeyBlockUnexpected):
        unwrap(A74_KBPK, A74_BLOCK, **{expectation: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(("exportability", "refused"), [("N", True), ("E", False), ("S", False)])
def test_unwrap_for_export_refuses_a_non_exportable_key(exportability: str, refused: bool) -> None:
    block = wrap(A74_KBPK, b1_header(exportability=exportability), A74_KEY)
    assert unwrap(A74_KBPK, block)[1] == A74_KEY
    if refused:
        with pytest.raises(errors.KeyNotExportable):
            unwrap(A74_KBPK, block, for_export=True)
    else:
        assert unwrap(A74_KBPK, block, for_export=True)[1] == A74_KEY


# --- no key bytes in any error -----------------------------------------------------------------------


def _key_forms(key: bytes) -> list[str]:
    return [key.hex(), key.hex().upper(), key.decode("latin-1")]


def test_no_error_text_holds_key_bytes() -> None:
    """Every refusal above, rendered with its remedy and its parameters, and its cause chain: no key, no KBPK."""
    secrets = [*_key_forms(A74_KEY), *_key_forms(A74_KBPK)]
    raised: list[BaseException] = []
    attempts = [lambda h=h: wrap(A74_KBPK, h, A74_KEY) for h, _ in REFUSED_HEADERS]
    attempts += [
        lambda: unwrap(A74_KBPK, A74_BLOCK[:-1] + "5"),
        lambda: unwrap(A74_KBPK, A74_BLOCK[:40] + "x" + A74_BLOCK[41:]),
        lambda: unwrap(A74_KBPK, A74_BLOCK, expect_usage="B1"),
        lambda: unwrap(A74_KBPK, wrap(A74_KBPK, b1_header(), A74_KEY), for_export=True),
        lambda: wrap(A74_KBPK, b1_header(), A74_KEY[:15]),
        lambda: wrap(A74_KBPK[:16], b1_header(), bytes(32)),
        lambda: unwrap(A74_KBPK[:5], A74_BLOCK),
    ]
    for attempt in attempts:
        with pytest.raises(errors.KeysError) as caught:
            attempt()
        raised.append(caught.value)
    for exc in raised:
        assert isinstance(exc, errors.KeysError)
        texts = [str(exc), exc.remedy_text or "", repr(exc.params), repr(exc.args)]
        assert exc.__cause__ is None
        for text in texts:
            assert not any(secret in text for secret in secrets), type(exc).__name__
