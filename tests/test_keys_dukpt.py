"""AES DUKPT (ANSI X9.24-3-2017): every published vector, the KSN and key checks, and what errors may show."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

import i18n
from keys import dukpt
from keys.dukpt_vectors import BDK_AES128, BDK_AES256, IKID, VECTORS, Vector
from keys.errors import (
    DukptError,
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

BDK = bytes.fromhex(BDK_AES128)
BDK256 = bytes.fromhex(BDK_AES256)
IK_ID = bytes.fromhex(IKID)
IK = dukpt.initial_key(BDK, IK_ID)
IK256 = dukpt.initial_key(BDK256, IK_ID)


def ksn(counter: int) -> bytes:
    return IK_ID + counter.to_bytes(4, "big")


def aes_ecb(key: bytes, block: str) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(bytes.fromhex(block)) + encryptor.finalize()


# -- the published vectors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_every_published_vector(vector: Vector) -> None:
    """Each vector through the public functions, as a caller would use them."""
    ik = dukpt.initial_key(bytes.fromhex(vector.bdk), IK_ID)
    if vector.step == "initial key":
        got = ik
    elif vector.step == "update key":
        got = dukpt.update_key(ik, IK_ID, vector.algorithm)
    else:
        tk = dukpt.transaction_key(ik, ksn(vector.counter))
        got = (
            tk
            if vector.step == "transaction key"
            else dukpt.working_key(tk, ksn(vector.counter), vector.usage, vector.algorithm)
        )
    assert got.hex().upper() == vector.expected


def test_the_published_set_covers_both_bdks_and_every_step() -> None:
    covered = {(len(v.bdk) * 4, v.step) for v in VECTORS}
    steps = {"initial key", "transaction key", "working key", "update key"}
    assert covered == {(bits, step) for bits in (128, 256) for step in steps}
    assert {(v.usage, v.algorithm) for v in VECTORS if v.step == "working key" and len(v.bdk) == 64} == {
        (usage, algorithm) for usage in ("PIN", "MAC-gen", "DATA-encrypt") for algorithm in ("AES-128", "AES-256")
    }


def test_known_answers_all_pass_and_name_their_source() -> None:
    answers = dukpt.known_answers()
    assert len(answers) == len(VECTORS) > 100
    assert len({a.name for a in answers}) == len(answers)
    assert all("X9.24-3-2017" in a.source for a in answers)
    assert all(a.run() is True for a in answers)


def test_a_wrong_or_refused_answer_is_false_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    good = VECTORS[2]
    wrong = good._replace(expected="00" * 16)
    refused = good._replace(counter=0x0001FFFF)  # published too, but 17 one-bits: no device uses it
    monkeypatch.setattr(dukpt, "VECTORS", (good, wrong, refused))
    assert [a.run() for a in dukpt.known_answers()] == [True, False, False]


def test_derivation_data_follows_section_6_3_2() -> None:
    """The derivation data written out byte by byte, independently of the module.

    Initial Key: Annex B.1's "01 01 8001 0002 0080 1234567890123456"; working keys: version 01, key block
    counter, usage 1000 (PIN), algorithm 0002/0004, length 0080/0100, derivation ID, counter.
    """
    assert dukpt.initial_key(BDK, IK_ID) == aes_ecb(BDK, "01018001000200801234567890123456")
    tk = dukpt.transaction_key(IK, ksn(1))
    assert tk == aes_ecb(IK, "01018000000200809012345600000001")
    assert dukpt.working_key(tk, ksn(1), "PIN", "AES-128") == aes_ecb(tk, "01011000000200809012345600000001")
    tk256 = dukpt.transaction_key(IK256, ksn(1))
    two_blocks = aes_ecb(tk256, "01011000000401009012345600000001") + aes_ecb(tk256, "01021000000401009012345600000001")
    assert dukpt.working_key(tk256, ksn(1), "PIN", "AES-256") == two_blocks
    assert (
        dukpt.working_key(tk256, ksn(1), "PIN", "AES-192")
        == aes_ecb(tk256, "01011000000300C09012345600000001") + (aes_ecb(tk256, "01021000000300C09012345600000001")[:8])
    )


# Not published by X9: values other implementations computed, for the usages and the BDK size the supplement
# leaves out.  [R] = the Rust crate paysec_dukpt's tests; [Q] = QRCS-CORP/CEX Test/DUKPTTest.cpp; [C] = a
# CyberChef fork's payment tests.  They agree with this module and with each other where they overlap.
CROSS_IMPLEMENTATION = [
    (BDK_AES128, 1, "KEK", "AES-128", "36A724B7BEFA5A25F5E7B5782A4554A2"),  # [R]
    (BDK_AES128, 1, "MAC-verify", "AES-128", "DBB463945B286C07CD3AD82EE96FD9C9"),  # [R]
    (BDK_AES128, 1, "MAC-both", "AES-128", "85675439D18D7F1158BD8E3EAA3D502B"),  # [R]
    (BDK_AES128, 1, "DATA-decrypt", "AES-128", "16292C6EA8F64C5420A0584BFBC577BE"),  # [R]
    (BDK_AES128, 1, "DATA-both", "AES-128", "A308E080DD15A1B741F1721BF67DE11C"),  # [R]
    (BDK_AES128, 0x00020000, "PIN", "AES-128", "AB828BE7B58C7EC5D5ED0D5D320A0C9D"),  # [R] [C]
    (BDK_AES128, 0x00845FED, "PIN", "AES-128", "D1DDA386AA4A556AF0119FDCB5D132C6"),  # [C]
    (BDK_AES128, 0xFFFF0000, "PIN", "AES-128", "27EFAC1D158632588F4AC69E45C247C4"),  # [Q]
    (
        BDK_AES256,
        0xFFFF0000,
        "PIN",
        "AES-256",
        "88B82556AEF4A681E0687F443A4C4F305AF9203B114470DFC77C7F08BC43F9DA",
    ),  # [Q]
    (BDK_AES128 + BDK_AES128[:16], 1, "PIN", "AES-128", "3C318CDBF08322279557201E98DBB3F3"),  # [R], AES-192 BDK
    (BDK_AES128 + BDK_AES128[:16], 1, "PIN", "AES-192", "C5043EDC7F2C001097974D40FF82A050B64A1AB27879F3DB"),  # [R]
    (BDK_AES128 + BDK_AES128[:16], 3, "DATA-encrypt", "AES-192", "A5DDCE36A4ECC8781C466C2270BA499EC4654AA166392EFC"),
]


@pytest.mark.parametrize(("bdk", "counter", "usage", "algorithm", "expected"), CROSS_IMPLEMENTATION)
def test_cross_implementation_vectors(bdk: str, counter: int, usage: str, algorithm: str, expected: str) -> None:
    tk = dukpt.transaction_key(dukpt.initial_key(bytes.fromhex(bdk), IK_ID), ksn(counter))
    assert dukpt.working_key(tk, ksn(counter), usage, algorithm).hex().upper() == expected


# -- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counter", "error"),
    [
        (0, KsnCounterZero),
        (0x0001FFFF, KsnCounterTooManyOnes),  # 17 one-bits, between two published counters
        (0x7FFFF000, KsnCounterTooManyOnes),  # 19 one-bits, below the last counter
        (0xFFFF0001, KsnCounterExhausted),  # one past the last counter
        (0xFFFFFFFF, KsnCounterExhausted),  # the Update Key's counter, never a transaction's
    ],
)
def test_ksn_counter_limits(counter: int, error: type[DukptError]) -> None:
    tk = dukpt.transaction_key(IK, ksn(1))
    with pytest.raises(error):
        dukpt.transaction_key(IK, ksn(counter))
    with pytest.raises(error):
        dukpt.working_key(tk, ksn(counter), "PIN", "AES-128")


def test_the_limits_themselves_are_accepted() -> None:
    for counter in (1, 0x0000FFFF, 0xFFFF0000, dukpt.MAX_COUNTER):  # 16 one-bits is the most allowed
        assert len(dukpt.transaction_key(IK, ksn(counter))) == 16


def test_counter_errors_show_the_ksn_and_counter() -> None:
    with pytest.raises(KsnCounterTooManyOnes) as caught:
        dukpt.transaction_key(IK, ksn(0x0001FFFF))
    assert caught.value.params == {"ksn": "12345678901234560001FFFF", "counter": "0x0001FFFF", "ones": 17}
    assert "0x0001FFFF" in str(caught.value) and "17" in str(caught.value)


@pytest.mark.parametrize("length", [0, 8, 10, 11, 13, 16])
def test_wrong_ksn_length(length: int) -> None:
    with pytest.raises(DukptIdLength) as caught:
        dukpt.transaction_key(IK, bytes(range(1, length + 1)))
    assert caught.value.params == {"field": "KSN", "length": length, "expected": 12}
    with pytest.raises(DukptIdLength):
        dukpt.working_key(IK, bytes(length), "PIN", "AES-128")


@pytest.mark.parametrize("length", [0, 4, 7, 9, 12])
def test_wrong_initial_key_id_length(length: int) -> None:
    with pytest.raises(DukptIdLength):
        dukpt.initial_key(BDK, bytes(length))
    with pytest.raises(DukptIdLength):
        dukpt.update_key(IK, bytes(length), "AES-128")


@pytest.mark.parametrize("length", [0, 8, 15, 17, 23, 31, 33, 64])
def test_wrong_key_lengths(length: int) -> None:
    key = bytes(length)
    calls: list[Callable[[], bytes]] = [
        lambda: dukpt.initial_key(key, IK_ID),
        lambda: dukpt.transaction_key(key, ksn(1)),
        lambda: dukpt.working_key(key, ksn(1), "PIN", "AES-128"),
        lambda: dukpt.update_key(key, IK_ID, "AES-128"),
    ]
    for call in calls:
        with pytest.raises(DukptKeyLength) as caught:
            call()
        assert caught.value.params["length"] == length


@pytest.mark.parametrize("usage", ["pin", "PIN ", "", "KEY-DERIVATION", "MAC", "B1"])
def test_unknown_usage(usage: str) -> None:
    with pytest.raises(DukptUnknownUsage):
        dukpt.working_key(dukpt.transaction_key(IK, ksn(1)), ksn(1), usage, "AES-128")


@pytest.mark.parametrize("algorithm", ["aes-128", "AES128", "AES-512", "2TDEA", "3TDEA", "HMAC-128", ""])
def test_unknown_algorithm(algorithm: str) -> None:
    with pytest.raises(DukptUnknownAlgorithm):
        dukpt.working_key(dukpt.transaction_key(IK256, ksn(1)), ksn(1), "PIN", algorithm)
    with pytest.raises(DukptUnknownAlgorithm):
        dukpt.update_key(IK256, IK_ID, algorithm)


@pytest.mark.parametrize(("key_length", "algorithm"), [(16, "AES-192"), (16, "AES-256"), (24, "AES-256")])
def test_a_working_key_stronger_than_its_parent_is_refused(key_length: int, algorithm: str) -> None:
    """X9.24-3 6.1.3: AES-128 keys give AES-128 working keys only, AES-192 keys nothing above AES-192."""
    parent = bytes(range(key_length))
    with pytest.raises(DukptWorkingKeyTooStrong) as caught:
        dukpt.working_key(parent, ksn(1), "PIN", algorithm)
    assert caught.value.params == {"algorithm": algorithm, "bits": 8 * key_length}
    with pytest.raises(DukptWorkingKeyTooStrong):
        dukpt.update_key(parent, IK_ID, algorithm)


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_every_refusal_is_a_keys_error_that_reads_in_both_languages(language: str) -> None:
    """Placeholders filled in either language (the Chinese text comes from i18n/incoming/dukpt.json)."""
    i18n.set_language(language)
    try:
        for refusal in _refusals():
            with pytest.raises(KeysError) as caught:
                refusal()
            assert "{" not in str(caught.value) and "{" not in (caught.value.remedy_text or "")
    finally:
        i18n.set_language("en")


# -- no key in any error ---------------------------------------------------------------------------------------


def _refusals() -> Iterator[Callable[[], Any]]:
    """Every refusal, made with the published keys in the arguments (some of them in the wrong places)."""
    tk = dukpt.transaction_key(IK, ksn(1))
    yield lambda: dukpt.initial_key(BDK, BDK)  # a key passed as the Initial Key ID
    yield lambda: dukpt.initial_key(BDK[:15], IK_ID)
    yield lambda: dukpt.transaction_key(IK, IK)  # a key passed as the KSN
    yield lambda: dukpt.transaction_key(ksn(1), IK)  # arguments swapped
    yield lambda: dukpt.transaction_key(IK, ksn(0))
    yield lambda: dukpt.transaction_key(IK, ksn(0x0001FFFF))
    yield lambda: dukpt.transaction_key(IK, ksn(0xFFFFFFFF))
    yield lambda: dukpt.working_key(tk, ksn(1), tk.hex(), "AES-128")  # a key passed as the usage
    yield lambda: dukpt.working_key(tk, ksn(1), "PIN", tk.hex().upper())
    yield lambda: dukpt.working_key(tk, ksn(1), "PIN", "AES-256")
    yield lambda: dukpt.working_key(tk, tk, "PIN", "AES-128")
    yield lambda: dukpt.update_key(IK, IK, "AES-128")


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_no_key_bytes_in_any_error(language: str) -> None:
    tk = dukpt.transaction_key(IK, ksn(1))
    keys = [BDK, IK, tk, BDK[:15]]
    hex_forms = [form for key in keys for form in (key.hex(), key.hex().upper())]
    i18n.set_language(language)
    try:
        for refusal in _refusals():
            with pytest.raises(DukptError) as caught:
                refusal()
            error = caught.value
            shown = [str(error), error.remedy_text or "", repr(error.params), repr(error.as_dict()), repr(error)]
            for text in shown:
                assert not any(form in text for form in hex_forms)
                assert not any(key.decode("latin-1") in text for key in keys)
            assert not any(isinstance(value, bytes) for value in error.params.values())
    finally:
        i18n.set_language("en")


# -- properties -----------------------------------------------------------------------------------------------


def counters(min_ones: int, max_ones: int) -> st.SearchStrategy[int]:
    """32-bit counters with between ``min_ones`` and ``max_ones`` one-bits, anywhere in the word."""
    return st.sets(st.integers(0, 31), min_size=min_ones, max_size=max_ones).map(lambda bits: sum(1 << b for b in bits))


valid_counters = counters(1, dukpt.MAX_ONE_BITS)  # every one of them is at most MAX_COUNTER


@given(valid_counters, valid_counters)
def test_transaction_keys_of_different_counters_differ(a: int, b: int) -> None:
    assert (dukpt.transaction_key(IK, ksn(a)) == dukpt.transaction_key(IK, ksn(b))) == (a == b)


@given(valid_counters)
def test_derivation_is_deterministic(counter: int) -> None:
    first = dukpt.transaction_key(IK256, ksn(counter))
    assert first == dukpt.transaction_key(IK256, ksn(counter))
    assert dukpt.working_key(first, ksn(counter), "PIN", "AES-256") == dukpt.working_key(
        first, ksn(counter), "PIN", "AES-256"
    )


@given(valid_counters, st.sampled_from(["AES-128", "AES-192", "AES-256"]))
def test_working_keys_of_different_usages_differ(counter: int, algorithm: str) -> None:
    tk = dukpt.transaction_key(IK256, ksn(counter))
    derived = {dukpt.working_key(tk, ksn(counter), usage, algorithm) for usage in dukpt.USAGES}
    assert len(derived) == len(dukpt.USAGES)
    assert tk not in derived
    assert {len(key) for key in derived} == {dukpt.ALGORITHMS[algorithm][1]}


@given(counters(dukpt.MAX_ONE_BITS + 1, 32))
def test_counters_with_more_than_16_one_bits_are_refused(counter: int) -> None:
    with pytest.raises(KsnCounterTooManyOnes if counter <= dukpt.MAX_COUNTER else KsnCounterExhausted):
        dukpt.transaction_key(IK, ksn(counter))


@given(st.binary(max_size=40))
def test_any_ksn_gives_a_key_or_a_dukpt_error(data: bytes) -> None:
    try:
        key = dukpt.transaction_key(IK, data)
    except DukptError:
        return
    assert len(data) == 12 and len(key) == 16
