"""The key ceremony's logic (keys/ceremony.py) on both key stores: dual control, split knowledge, no leftovers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_keys_store import _pkcs11, _software, softhsm_token  # noqa: F401  (softhsm_token: a fixture)

from keys import dukpt, kcv
from keys.ceremony import (
    BdkKcvDiffers,
    BdkNotDestroyed,
    Ceremony,
    CeremonyFull,
    CeremonyIncomplete,
    CheckValueMalformed,
    ComponentCheckFailed,
    ComponentLengthDiffers,
    ComponentMalformed,
    CustodianRepeated,
    parse_check_value,
    parse_component,
)
from keys.errors import KeyStoreComponentsInvalid, KeyStoreKeyLength, KeyStoreLabelTaken
from keys.store import KeyStore

IKID = bytes.fromhex("123456789012345E")


@pytest.fixture(params=["software", "pkcs11"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    pkcs11 = request.param == "pkcs11"
    with _pkcs11(request.getfixturevalue("softhsm_token")) if pkcs11 else _software(tmp_path / "ks.json") as opened:
        yield opened


def combined(components: list[bytes]) -> bytes:
    """The BDK that ``components`` make: their XOR, computed here to check what the store made."""
    bdk = bytearray(len(components[0]))
    for component in components:
        for i, byte in enumerate(component):
            bdk[i] ^= byte
    return bytes(bdk)


@pytest.mark.parametrize(("count", "length"), [(2, 16), (3, 16), (2, 32), (3, 32)])
def test_components_make_the_bdk_whose_kcv_is_theirs_combined(store: KeyStore, count: int, length: int) -> None:
    components = [os.urandom(length) for _ in range(count)]
    bdk = combined(components)
    with Ceremony("BDK 1", count) as ceremony:
        for number, component in enumerate(components, 1):
            assert ceremony.admit(f"custodian-{number}") == number
            shown = kcv.aes_cmac_kcv(component)[: 3 if number % 2 else 5]  # the 3-byte and the 5-byte form
            ceremony.add(f"custodian-{number}", bytearray(component), shown)
        assert ceremony.combine(store) == kcv.aes_cmac_kcv(bdk)
        assert ceremony.custodians == tuple(f"custodian-{n}" for n in range(1, count + 1))
    assert store.bdk_kcv("BDK 1") == kcv.aes_cmac_kcv(bdk)
    handle = store.derive_initial_key("BDK 1", IKID)
    assert store.initial_key_kcv(handle) == kcv.aes_cmac_kcv(dukpt.initial_key(bdk, IKID))


def test_one_custodian_cannot_take_two_turns() -> None:
    first = os.urandom(16)
    with Ceremony("BDK 1", 3) as ceremony:
        ceremony.admit("alice")
        ceremony.add("alice", bytearray(first), kcv.aes_cmac_kcv(first))
        with pytest.raises(CustodianRepeated) as refused:
            ceremony.admit("alice")
        assert "alice" in str(refused.value)
        second = bytearray(os.urandom(16))
        with pytest.raises(CustodianRepeated):
            ceremony.add("alice", second, kcv.aes_cmac_kcv(bytes(second)))
        assert second == bytes(16)  # the refused component is wiped
        assert ceremony.custodians == ("alice",) and ceremony.entered == 1


def test_a_component_that_fails_its_kcv_is_refused_and_wiped() -> None:
    component = bytearray(os.urandom(16))
    wrong = bytes(b ^ 1 for b in kcv.aes_cmac_kcv(bytes(component)))
    secret = component.hex()
    with Ceremony("BDK 1") as ceremony:
        with pytest.raises(ComponentCheckFailed) as refused:
            ceremony.add("alice", component, wrong[:3])
        assert ceremony.entered == 0
    assert component == bytes(16)
    assert secret not in str(refused.value).lower() and secret not in repr(refused.value.params).lower()


def test_components_of_different_lengths_are_refused() -> None:
    short, long = os.urandom(16), bytearray(os.urandom(32))
    with Ceremony("BDK 1") as ceremony:
        ceremony.add("alice", bytearray(short), kcv.aes_cmac_kcv(short))
        with pytest.raises(ComponentLengthDiffers) as refused:
            ceremony.add("bob", long, kcv.aes_cmac_kcv(bytes(long)))
        assert refused.value.params == {"number": 2, "length": 32, "expected": 16}
        assert long == bytes(32)


def test_a_component_of_no_bdk_length_or_equal_to_another_is_refused() -> None:
    odd = os.urandom(24)  # AES-192: an AES key with a KCV, but no BDK length the stores offer
    same = os.urandom(16)
    with Ceremony("BDK 1") as ceremony:
        with pytest.raises(KeyStoreKeyLength):
            ceremony.add("alice", bytearray(odd), kcv.aes_cmac_kcv(odd))
        ceremony.add("alice", bytearray(same), kcv.aes_cmac_kcv(same))
        with pytest.raises(KeyStoreComponentsInvalid):  # XORed, they would make an all-zero BDK
            ceremony.add("bob", bytearray(same), kcv.aes_cmac_kcv(same))


def test_the_ceremony_takes_as_many_custodians_as_it_was_told() -> None:
    with pytest.raises(KeyStoreComponentsInvalid):
        Ceremony("BDK 1", 4)
    with Ceremony("BDK 1", 2) as ceremony:
        ceremony.admit("alice")
        ceremony.admit("bob")
        with pytest.raises(CeremonyFull):
            ceremony.admit("carol")


def test_an_unfinished_ceremony_stores_nothing_and_leaves_no_component(store: KeyStore) -> None:
    component = bytearray(os.urandom(16))
    with pytest.raises(KeyboardInterrupt), Ceremony("BDK 1", 2) as ceremony:
        ceremony.add("alice", component, kcv.aes_cmac_kcv(bytes(component)))
        raise KeyboardInterrupt  # Ctrl-C while the second custodian types
    assert component == bytes(16)
    with Ceremony("BDK 1", 2) as ceremony:
        ceremony.add("alice", bytearray(component), kcv.aes_cmac_kcv(bytes(16)))
        with pytest.raises(CeremonyIncomplete):
            ceremony.combine(store)
    assert store.labels() == []


def test_a_taken_label_stores_nothing_new_and_wipes_the_components(store: KeyStore) -> None:
    before = store.generate_bdk("BDK 1")
    components = [bytearray(os.urandom(16)) for _ in range(2)]
    with Ceremony("BDK 1") as ceremony:
        for name, component in zip(("alice", "bob"), components, strict=True):
            ceremony.add(name, component, kcv.aes_cmac_kcv(bytes(component)))
        with pytest.raises(KeyStoreLabelTaken):
            ceremony.combine(store)
        assert all(c == bytes(16) for c in components)
    assert store.labels() == ["BDK 1"] and store.bdk_kcv("BDK 1") == before


@pytest.mark.parametrize("same", [True, False], ids=["the ledger's BDK", "another BDK"])
def test_a_registered_bdk_is_kept_only_with_the_ledgers_kcv(store: KeyStore, same: bool) -> None:
    components = [os.urandom(16), os.urandom(16)]
    registered = kcv.aes_cmac_kcv(combined(components if same else [os.urandom(16), os.urandom(16)]))
    with Ceremony("BDK 1") as ceremony:
        for name, component in zip(("alice", "bob"), components, strict=True):
            ceremony.add(name, bytearray(component), kcv.aes_cmac_kcv(component))
        if same:
            assert ceremony.combine(store, registered) == registered
        else:
            with pytest.raises(BdkKcvDiffers) as refused:
                ceremony.combine(store, registered)
            assert refused.value.params["registered"] == kcv.shown(registered)
    assert store.labels() == (["BDK 1"] if same else [])


def test_a_generated_bdk_needs_every_custodian_and_no_component(store: KeyStore) -> None:
    with Ceremony("BDK 1") as ceremony:
        ceremony.admit("alice")
        with pytest.raises(CeremonyIncomplete):
            ceremony.generate(store)
        ceremony.admit("bob")
        shown = ceremony.generate(store, 32)
    assert store.bdk_kcv("BDK 1") == shown


@pytest.mark.parametrize("make", ["combine", "generate"])
def test_a_bdk_taken_back_before_it_is_recorded_is_destroyed_and_a_recorded_one_kept(
    store: KeyStore, make: str
) -> None:
    for label in ("BDK 1", "BDK 2"):
        with Ceremony(label) as ceremony:
            for name in ("alice", "bob"):
                component = os.urandom(16)
                ceremony.admit(name)
                if make == "combine":
                    ceremony.add(name, bytearray(component), kcv.aes_cmac_kcv(component))
            shown = ceremony.combine(store) if make == "combine" else ceremony.generate(store)
            assert ceremony.made == shown
            if label == "BDK 2":
                ceremony.recorded()
            assert ceremony.take_back(store, "the ceremony was stopped") is (label == "BDK 1")
            assert ceremony.take_back(store, "the ceremony was stopped") is False  # only once
    assert store.labels() == ["BDK 2"]


@pytest.mark.parametrize("failure", [RuntimeError("device gone"), OSError(5, "Input/output error")])
def test_a_store_failing_to_destroy_a_made_bdk_is_named_whatever_its_error(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def stuck(_label: str) -> None:
        raise failure

    with Ceremony("BDK 1") as ceremony:
        ceremony.admit("alice")
        ceremony.admit("bob")
        shown = ceremony.generate(store)
        monkeypatch.setattr(store, "destroy_bdk", stuck)
        with pytest.raises(BdkNotDestroyed) as refused:
            ceremony.take_back(store, "the ceremony was stopped")
    assert refused.value.params["kcv"] == kcv.shown(shown)
    assert refused.value.params["reason"] == type(failure).__name__  # not the library's own text


def test_typed_components_and_kcvs_parse_in_the_forms_printed_on_forms() -> None:
    assert parse_component("0123 4567 89ab CDEF-0123-4567-89AB-CDEF\n") == bytes.fromhex("0123456789ABCDEF" * 2)
    assert parse_check_value(" 08 79 3e ") == bytes.fromhex("08793E")
    assert parse_check_value("08793E25AB") == bytes.fromhex("08793E25AB")
    for bad in ("08793", "08793E25", "08793E25AB00", "zz793e"):
        with pytest.raises(CheckValueMalformed):
            parse_check_value(bad)


@given(st.text(max_size=80))
def test_a_mistyped_component_is_refused_without_being_echoed(text: str) -> None:
    try:
        parsed = parse_component(text)
    except ComponentMalformed as exc:
        assert exc.params == {} and exc.__cause__ is None and exc.__suppress_context__  # no ValueError chained
        return
    assert bytes(parsed).hex() == "".join(text.split()).replace("-", "").lower()
