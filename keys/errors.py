"""Typed errors of the keys domain.  Parameters never hold key material: at most a KCV or a key ID."""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class KeysError(NaiadError):
    """Root of every keys error."""

    message = N_("Key handling failed: {detail}")


# --- TR-31 / ANSI X9.143 key blocks (keys/tr31.py) ---------------------------------------------------
# Parameters are header characters, lengths and optional-block IDs: public parts of a block, never key bytes.


class KeyBlockError(KeysError):
    """A TR-31 key block was refused: on wrap, nothing was produced; on unwrap, no key was returned."""

    message = N_("The TR-31 key block was refused")
    remedy = N_("Nothing was stored. Ask the sender for a key block made for this use and this key.")


class KeyBlockMalformed(KeyBlockError):
    message = N_("The TR-31 key block is malformed: {reason}")
    msgid_params = ("reason",)


class KeyBlockVersionRefused(KeyBlockError):
    message = N_("TR-31 key block version {version} is refused: only version D (AES key derivation) is accepted")


class KeyBlockProtectionKeyInvalid(KeyBlockError):
    message = N_("The key block protection key has {length} bytes: it must be an AES key of 16, 24 or 32 bytes")
    remedy = N_("Use the AES key block protection key agreed for this transfer.")


class KeyBlockProtectionKeyTooWeak(KeyBlockError):
    message = N_("A {kbpk_bits}-bit key block protection key cannot protect a {key_bits}-bit key")
    remedy = N_("Protect the key under an AES key block protection key at least as long as the key itself.")


class KeyBlockAuthenticationFailed(KeyBlockError):
    message = N_("The TR-31 key block failed its integrity check: it was altered, or made under another key")
    remedy = N_("Nothing was stored. Do not retry with the same block; start the key transfer again.")


class KeyBlockHeaderInvalid(KeyBlockError):
    message = N_("The TR-31 header field {field} has a value that is not allowed: {value}")
    msgid_params = ("field",)


class KeyUsageNotAllowed(KeyBlockError):
    message = N_("Key usage {usage} with algorithm {algorithm} and mode of use {mode} is not allowed")


class KeyLengthInvalid(KeyBlockError):
    message = N_("A key of {length} bytes does not fit algorithm {algorithm} (allowed lengths: {allowed})")


class KeyNotExportable(KeyBlockError):
    message = N_("The key block marks its key as not exportable (N): it cannot be exported")
    remedy = N_("Use a key that was issued as exportable, or keep this key where it is.")


class OptionalBlockInvalid(KeyBlockError):
    message = N_("Optional block {block_id} of the TR-31 header is invalid: {reason}")
    msgid_params = ("reason",)


class KeyCheckValueMismatch(KeyBlockError):
    message = N_("The key check value in optional block {block_id} does not match the key it describes")
    remedy = N_("Nothing was stored. The block was made with another key: start the key transfer again.")


class KeyBlockUnexpected(KeyBlockError):
    message = N_("The key block says {field} {actual}, but {expected} was expected")
    msgid_params = ("field",)


# --- key check values (keys/kcv.py) ------------------------------------------------------------------


class KeyCheckValueInputInvalid(KeysError):
    message = N_("A key of {length} bytes has no {kind} key check value")
    msgid_params = ("kind",)


# --- self-test (keys/selftest.py) --------------------------------------------------------------------


class SelftestFailed(KeysError):
    message = N_("The cryptographic self-test failed: {failed}")
    remedy = N_("Do not inject keys from this station. Reinstall Naiad and report the failing tests.")
