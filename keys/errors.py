"""Typed errors of the keys domain.  Parameters never hold key material: at most a KCV or a key ID."""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class KeysError(NaiadError):
    """Root of every keys error."""

    message = N_("Key handling failed: {detail}")


class DukptError(KeysError):
    """An AES DUKPT (ANSI X9.24-3-2017) derivation refused before any key was derived."""

    message = N_("AES DUKPT derivation refused: {detail}")


class DukptKeyLength(DukptError):
    """A key of a length AES DUKPT does not define; only the length is shown, never the bytes."""

    message = N_("The {role} is {length} bytes long; AES DUKPT takes 16, 24 or 32 bytes (AES-128, AES-192, AES-256)")
    remedy = N_("Check that the key came from the right key store entry and was not truncated.")
    msgid_params = ("role",)


class DukptIdLength(DukptError):
    """An Initial Key ID or KSN of the wrong length; its bytes are not shown (it may be a key passed by mistake)."""

    message = N_("The {field} is {length} bytes long; AES DUKPT takes {expected} bytes")
    remedy = N_("An Initial Key ID is BDK ID (4 bytes) + derivation ID (4); a KSN is Initial Key ID + counter (4).")
    msgid_params = ("field",)


class KsnCounterZero(DukptError):
    message = N_("KSN {ksn} has transaction counter 0, which no transaction uses")
    remedy = N_("The first transaction of a device uses counter 1: read the KSN the device sent again.")


class KsnCounterTooManyOnes(DukptError):
    message = N_("KSN {ksn}: transaction counter {counter} has {ones} one-bits; AES DUKPT uses at most 16")
    remedy = N_("A conforming device skips such counters: the KSN is corrupt or did not come from a DUKPT device.")


class KsnCounterExhausted(DukptError):
    message = N_("KSN {ksn}: transaction counter {counter} is past the last one AES DUKPT allows, {maximum}")
    remedy = N_("The device has used all its transaction keys: inject a new Initial Key.")


class DukptUnknownUsage(DukptError):
    """The name is not echoed: errors never repeat an unrecognised argument, which could be anything."""

    message = N_("Unknown AES DUKPT key usage; the usages are {usages}")


class DukptUnknownAlgorithm(DukptError):
    message = N_("Unknown AES DUKPT working key algorithm; the algorithms are {algorithms}")


class DukptWorkingKeyTooStrong(DukptError):
    """ANSI X9.24-3 6.1.3: a working key is never stronger than the key it is derived from."""

    message = N_("An {algorithm} working key cannot be derived from a {bits}-bit key: it would be the stronger one")
    remedy = N_("Use a working key algorithm no stronger than the BDK's, or a BDK of at least that strength.")
