"""The key ceremony: a BDK loaded from components under dual control and split knowledge (X9.24, PCI PIN).

Each component comes from a different custodian, who is authenticated (with the custodian role) by the
caller before :meth:`Ceremony.admit`; each is checked against its own key check value before the next is
taken; the components are combined inside the key store (:meth:`keys.store.KeyStore.combine_components`),
which shows only the BDK's KCV.  A BDK the ledger already registered (made at another station that shares the
ledger) is loaded the same way into this station's store, and kept only if its KCV is the ledger's.
``generate-bdk`` is the same ceremony without components: the custodians witness the store generating the BDK.

No I/O here, and no component in an error, a log or a ``repr``: a component lives in a ``bytearray`` this
module owns from :meth:`Ceremony.add` on and wipes as soon as it is combined or refused, or the ceremony ends.
That is a best effort: the text a custodian typed and the ``bytes`` copies the store's interface takes cannot
be wiped in Python.
"""

from __future__ import annotations

import hmac
from typing import Self

from i18n import N_
from terminal.errors import NaiadError

from . import kcv
from .errors import KeysError, KeyStoreComponentsInvalid
from .store import MAX_COMPONENTS, MIN_COMPONENTS, KeyStore, check_bdk_length, check_label, wipe

CHECK_VALUE_LENGTHS = (kcv.SHOWN_LENGTH, kcv.AES_CMAC_KCV_LENGTH)
"""A component's KCV as people compare it (3 bytes, 6 hex digits) or as TR-31 carries it (5 bytes)."""


class CeremonyError(KeysError):
    """The ceremony refused a step.  Parameters are custodian names, numbers and lengths: never a component."""

    message = N_("The key ceremony refused the step")
    remedy = N_("Nothing was stored. Start the ceremony again.")


class CeremonyAborted(CeremonyError):
    message = N_("The key ceremony was stopped before the BDK was made")
    remedy = N_("Nothing was stored and no component was kept. Start the ceremony again when every custodian is ready.")


class CeremonyAbortedAfterMaking(CeremonyAborted):
    """Stopped (Ctrl-C, end of input) after the store made the BDK but before the ledger recorded it."""

    message = N_("The key ceremony was stopped before the ledger recorded the BDK, so the key store destroyed it again")


class BdkNotRecorded(CeremonyError):
    """The store made the BDK but the ledger did not record it (an outage, another station taking the label first):
    the BDK was destroyed again, so no key is held that the ledger does not know."""

    message = N_("The ledger did not record the BDK {label}, so the key store destroyed it again: {reason}")
    remedy = N_("Nothing was kept. Once the ledger works ('naiad doctor'), hold the ceremony again.")


class BdkKcvDiffers(CeremonyError):
    """Loading a registered BDK into another store: the components make another key than the ledger's."""

    message = N_(
        "The components make a BDK with KCV {kcv}, but the ledger registered {label} with KCV {registered}: "
        "the key store destroyed it again"
    )
    remedy = N_(
        "Nothing was kept. The components are not those of {label}: check each custodian's form against the "
        "ledger's KCV ('naiad keys bdk list') and hold the ceremony again with this BDK's components."
    )


class BdkNotDestroyed(CeremonyError):
    """A BDK the ceremony had to take back stays in the store: the store refused to destroy it."""

    message = N_("The BDK {label} (KCV {kcv}) had to be destroyed because {why}, but the key store could not: {reason}")
    remedy = N_(
        "Do not use this key. Once the key store works ('naiad doctor'), hold the ceremony again under another label."
    )
    msgid_params = ("why",)


class BdkIdNeeded(CeremonyError):
    message = N_("The ledger has no BDK labelled {label}: a new BDK needs its BDK ID (--bdk-id)")
    remedy = N_("Nothing was stored. Give the BDK ID printed on the ceremony's forms, or check the label.")


class BdkIdDiffers(CeremonyError):
    message = N_("The ledger registered the BDK {label} with BDK ID {registered}, not {bdk_id}")
    remedy = N_(
        "Nothing was stored. Leave out --bdk-id to load the registered BDK, or choose another label for a new one."
    )


class CustodianRepeated(CeremonyError):
    message = N_("Custodian {custodian} has already taken part in this ceremony: each part needs another custodian")
    remedy = N_("Nothing was stored. Start the ceremony again; each component is entered by a different custodian.")


class CeremonyFull(CeremonyError):
    message = N_("This ceremony takes {expected} custodians and has them all")


class CeremonyIncomplete(CeremonyError):
    message = N_("This ceremony needs {expected} custodians with their parts; it has {actual}")


class ComponentMalformed(CeremonyError):
    """What was typed is never echoed: it is a component, or most of one."""

    message = N_("A component is 32 or 64 hexadecimal digits (spaces and dashes between groups are allowed)")
    remedy = N_("Nothing was stored. Start the ceremony again and type the component as printed on its form.")


class CheckValueMalformed(CeremonyError):
    message = N_("A key check value is 6 or 10 hexadecimal digits")
    remedy = N_("Nothing was stored. Start the ceremony again and type the KCV as printed on the component's form.")


class ComponentLengthDiffers(CeremonyError):
    message = N_("Component {number} is {length} bytes long, the first one {expected}: all must be the same length")
    remedy = N_("Nothing was stored. Check that every custodian holds a component of the same BDK.")


class ComponentCheckFailed(CeremonyError):
    message = N_("Component {number} does not match its key check value")
    remedy = N_(
        "Nothing was stored. The component or its KCV was mistyped, or they belong to different keys: "
        "check both against the custodian's form and start the ceremony again."
    )


class ProvisioningCAExists(CeremonyError):
    message = N_("The key store already holds the provisioning CA ({label})")
    remedy = N_("Nothing to do: it certifies every unit this key store injects.")


def _hex_digits(text: str) -> str:
    """``text`` without the spaces and dashes people put between groups of digits."""
    return "".join(text.split()).replace("-", "")


def parse_component(text: str) -> bytearray:
    """The component typed as hex (any case, groups separated by spaces or dashes); never echoed on refusal.

    Its length is checked by :meth:`Ceremony.add`, against the BDK lengths and the other components."""
    try:
        return bytearray(bytes.fromhex(_hex_digits(text)))
    except ValueError:
        raise ComponentMalformed() from None


def parse_check_value(text: str) -> bytes:
    """A KCV typed as 6 or 10 hex digits (3 or 5 bytes)."""
    try:
        value = bytes.fromhex(_hex_digits(text))
    except ValueError:
        raise CheckValueMalformed() from None
    if len(value) not in CHECK_VALUE_LENGTHS:
        raise CheckValueMalformed()
    return value


def matches(key: bytes, check_value: bytes) -> bool:
    """Whether ``check_value`` (3 or 5 bytes) is the start of ``key``'s AES-CMAC KCV."""
    if len(check_value) not in CHECK_VALUE_LENGTHS:
        return False
    return hmac.compare_digest(kcv.aes_cmac_kcv(key)[: len(check_value)], check_value)


class Ceremony:
    """One BDK under one label, from ``custodians`` distinct custodians (2 or 3), in the order they come.

    Use it as a context manager: leaving it, whether by success, a refusal, Ctrl-C or end of input, wipes
    every component still held.  A refused :meth:`add` keeps no component (the custodian stays admitted),
    so the caller chooses whether to stop (the CLI does) or to let the custodian try again.
    """

    def __init__(self, label: str, custodians: int = MIN_COMPONENTS) -> None:
        if not MIN_COMPONENTS <= custodians <= MAX_COMPONENTS:
            raise KeyStoreComponentsInvalid(reason=N_("a BDK is made of two or three components"))
        self.label = check_label(label)
        self.expected = custodians
        self._custodians: list[str] = []
        self._components: dict[str, bytearray] = {}
        self.made: bytes | None = None
        """The KCV of the BDK this ceremony made in the store and no ledger has recorded yet: see :meth:`take_back`."""

    def __repr__(self) -> str:
        return f"Ceremony(label={self.label!r}, custodians={self.custodians!r}, expected={self.expected})"

    @property
    def custodians(self) -> tuple[str, ...]:
        """The custodians admitted so far, in order: the audit record names them all."""
        return tuple(self._custodians)

    @property
    def entered(self) -> int:
        """How many components are held."""
        return len(self._components)

    def admit(self, custodian: str) -> int:
        """Admit an authenticated custodian (the caller checked the login and the role); their number, from 1.

        Called before the custodian types anything, so a second turn is refused before a component is typed.
        """
        if custodian in self._custodians:
            raise CustodianRepeated(custodian=custodian)
        if len(self._custodians) >= self.expected:
            raise CeremonyFull(expected=self.expected)
        self._custodians.append(custodian)
        return len(self._custodians)

    def add(self, custodian: str, component: bytearray, check_value: bytes) -> None:
        """Take ``custodian``'s component after checking it against its own KCV (admitting them first if the
        caller did not); ``component`` is this ceremony's from now on: wiped when refused, once combined, or
        when the ceremony ends."""
        try:
            self._check(custodian, component, check_value)
        except BaseException:
            wipe(component)
            raise
        self._components[custodian] = component

    def _check(self, custodian: str, component: bytearray, check_value: bytes) -> None:
        if custodian not in self._custodians:
            self.admit(custodian)  # refuses a full ceremony
        elif custodian in self._components:
            raise CustodianRepeated(custodian=custodian)
        number = self._custodians.index(custodian) + 1
        check_bdk_length(len(component))
        lengths = {len(c) for c in self._components.values()}
        if lengths and len(component) not in lengths:
            raise ComponentLengthDiffers(number=number, length=len(component), expected=lengths.pop())
        if not matches(bytes(component), check_value):
            raise ComponentCheckFailed(number=number)
        if any(hmac.compare_digest(bytes(component), bytes(other)) for other in self._components.values()):
            raise KeyStoreComponentsInvalid(reason=N_("two components are equal"))

    def combine(self, store: KeyStore, registered: bytes | None = None) -> bytes:
        """The BDK made inside ``store`` from every component; its KCV.  The components are wiped either way.

        ``registered`` is the KCV the ledger has for this label when the BDK is loaded into another station's
        store: a BDK with another KCV is destroyed again (:class:`BdkKcvDiffers`)."""
        try:
            if self.entered != self.expected:
                raise CeremonyIncomplete(expected=self.expected, actual=self.entered)
            components = [bytes(self._components[c]) for c in self._custodians]
            try:
                made = self.made = store.combine_components(self.label, components)
            finally:
                del components
        finally:
            self.close()
        if registered is not None and not hmac.compare_digest(made, registered):
            self.take_back(store, N_("its KCV is not the one the ledger registered"))
            raise BdkKcvDiffers(label=self.label, kcv=kcv.shown(made), registered=kcv.shown(registered))
        return made

    def generate(self, store: KeyStore, length: int = 16) -> bytes:
        """The BDK generated inside ``store`` before every custodian (no components); its KCV."""
        if self.entered or len(self._custodians) != self.expected:
            raise CeremonyIncomplete(expected=self.expected, actual=len(self._custodians))
        made = self.made = store.generate_bdk(self.label, length)
        return made

    def recorded(self) -> None:
        """The ledger recorded the BDK made: it is kept from now on."""
        self.made = None

    def take_back(self, store: KeyStore, why: str) -> bool:
        """Destroy the BDK this ceremony made in ``store``, unless none was made or it was recorded: a ceremony
        that stops after the BDK is made (a ledger outage, Ctrl-C) keeps nothing the ledger does not know.
        Whether there was a BDK to destroy."""
        made, self.made = self.made, None
        if made is not None:
            destroy_made(store, self.label, made, why)
        return made is not None

    def close(self) -> None:
        """Wipe every component still held; the custodians stay on record for the audit."""
        for component in self._components.values():
            wipe(component)
        self._components.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def destroy_made(store: KeyStore, label: str, made: bytes, why: str) -> None:
    """Destroy the BDK (KCV ``made``) a ceremony just made under ``label``, because ``why`` (a msgid).

    Any failure of the store is :class:`BdkNotDestroyed`; an unexpected one is named by its class only."""
    try:
        store.destroy_bdk(label)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, NaiadError) else type(exc).__name__
        raise BdkNotDestroyed(label=label, kcv=kcv.shown(made), why=why, reason=reason) from exc
