"""Key check values: the published ones, the lengths, and what a person is shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import errors, kcv


@pytest.mark.parametrize("answer", kcv.known_answers(), ids=lambda a: a.name)
def test_published_kcvs(answer: object) -> None:
    assert answer.run()  # type: ignore[attr-defined]


def test_aes_cmac_kcv_is_five_bytes_of_the_cmac_of_a_zero_block() -> None:
    """X9.143-2021 8.1 gives 08793E25AB for the example key; TR-31:2018 A.7.4 shows its first 3 bytes."""
    key = bytes.fromhex("3F419E1CB7079442AA37474C2EFBF8B8")
    assert kcv.aes_cmac_kcv(key) == bytes.fromhex("08793E25AB")
    assert kcv.shown(kcv.aes_cmac_kcv(key)) == "08793E"


def test_aes_cmac_kcv_is_not_the_cmac_of_the_empty_message() -> None:
    """RFC 4493 example 1: AES-CMAC of the empty message under 2B7E1516... is BB1D6929...; the KCV (a zero
    block) must differ, or the implementation MACs the wrong input."""
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    assert kcv.aes_cmac_kcv(key) != bytes.fromhex("BB1D6929E9")


def test_tdes_kcv_of_a_triple_length_key_equals_the_double_length_one_when_k3_is_k1() -> None:
    """TR-31:2018 A.7.2.1 gives CB9DEA for the double-length key; K1 K2 K1 is the same cipher."""
    double = bytes.fromhex("F039121BEC83D26B169BDCD5B22AAF8F")
    assert kcv.tdes_kcv(double) == bytes.fromhex("CB9DEA")
    assert kcv.tdes_kcv(double + double[:8]) == bytes.fromhex("CB9DEA")


@pytest.mark.parametrize("length", [0, 8, 15, 17, 31, 33, 64])
def test_aes_kcv_refuses_a_key_that_is_not_aes(length: int) -> None:
    with pytest.raises(errors.KeyCheckValueInputInvalid) as caught:
        kcv.aes_cmac_kcv(bytes(length))
    assert str(length) in str(caught.value)


@pytest.mark.parametrize("length", [0, 8, 15, 32])
def test_tdes_kcv_refuses_single_length_and_other_lengths(length: int) -> None:
    with pytest.raises(errors.KeyCheckValueInputInvalid):
        kcv.tdes_kcv(bytes(length))


@given(st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_kcv_lengths_and_shown_form(key: bytes) -> None:
    value = kcv.aes_cmac_kcv(key)
    assert len(value) == 5
    assert kcv.shown(value) == value[:3].hex().upper()
    if len(key) in (16, 24):
        assert len(kcv.tdes_kcv(key)) == 3


def test_shown_refuses_a_kcv_shorter_than_what_people_compare() -> None:
    with pytest.raises(errors.KeyCheckValueInputInvalid):
        kcv.shown(b"\x01\x02")
