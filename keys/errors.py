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


# --- the key session with a unit's secure element (keys/session.py) ------------------------------
# Parameters are field names and lengths: never a nonce's, a secret's or a key's bytes.


class SessionInputInvalid(KeysError):
    message = N_("The key session's {field} is {length} bytes long; it must be {expected} bytes")
    remedy = N_("The unit or the station broke the key session protocol: start the injection again.")
    msgid_params = ("field",)


class PublicPointInvalid(KeysError):
    message = N_("The public key offered for the key agreement is not an uncompressed P-256 point")
    remedy = N_("The unit or the station broke the key session protocol: start the injection again.")


# --- self-test (keys/selftest.py) --------------------------------------------------------------------


class SelftestFailed(KeysError):
    message = N_("The cryptographic self-test failed: {failed}")
    remedy = N_("Do not inject keys from this station. Reinstall Naiad and report the failing tests.")


# --- key stores (keys/store.py, keys/store_pkcs11.py, keys/store_software.py) -----------------------
# Parameters are labels, lengths, paths and mechanism names: never a key, a component, a PIN or a passphrase.


class KeyStoreError(KeysError):
    message = N_("The key store refused the operation")


class KeyStoreClosed(KeyStoreError):
    message = N_("The key store is closed")
    remedy = N_("Open the key store again, then repeat the step.")


class KeyStoreUnavailable(KeyStoreError):
    message = N_("The PKCS#11 key store cannot be used: {reason}")
    remedy = N_("Check the PKCS#11 module path and the token label in the configuration, then run 'naiad doctor'.")
    msgid_params = ("reason",)


class KeyStoreLoginFailed(KeyStoreError):
    message = N_("The key store refused the PIN or passphrase")
    remedy = N_("Enter it again. Nothing was read or changed.")


class KeyStoreFileDamaged(KeyStoreError):
    message = N_("The key store file {path} was altered or is damaged: no key was read from it")
    remedy = N_("Restore the file from its backup, or load the keys again in a key ceremony.")


class KeyStoreFileUnavailable(KeyStoreError):
    """The operating system refused to read or write the software key store's file (the reason is its own text)."""

    message = N_("The key store file {path} cannot be read or written: {reason}")
    remedy = N_(
        "Check that {path} is a file this user may read and write, on a disk with free space, then repeat the step. "
        "A change that could not be saved was not kept."
    )


class KeyStoreLabelUnknown(KeyStoreError):
    message = N_("The key store holds no key labelled {label}")


class KeyStoreLabelTaken(KeyStoreError):
    message = N_("The key store already holds a key labelled {label}")
    remedy = N_("Choose another label: a key in the store is never replaced.")


class KeyStoreLabelInvalid(KeyStoreError):
    message = N_("A key label is 1 to 64 printable ASCII characters")


class KeyStoreKeyLength(KeyStoreError):
    message = N_("A base derivation key is AES-128 or AES-256 (16 or 32 bytes), not {length} bytes")


class KeyStoreComponentsInvalid(KeyStoreError):
    message = N_("The key components were refused: {reason}")
    remedy = N_("Nothing was stored. Start the ceremony again with two or three components of the same length.")
    msgid_params = ("reason",)


class KeyStoreHandleInvalid(KeyStoreError):
    message = N_("The Initial Key handle was released or belongs to another key store")


class KeyStoreOperationFailed(KeyStoreError):
    message = N_("The PKCS#11 token refused to {operation} ({code})")
    remedy = N_("Run 'naiad doctor' to check the token and its mechanisms.")
    msgid_params = ("operation",)


class KeyStoreCertificateInvalid(KeyStoreError):
    message = N_("The certificate for signing key {label} was refused: {reason}")
    remedy = N_("Nothing was stored. Store the certificate issued for this signing key.")
    msgid_params = ("reason",)


class SigningKeyAlgorithmWrong(KeyStoreError):
    """A signing key exists under the label but is of another algorithm than the one asked for."""

    message = N_("The signing key {label} is a {algorithm} key, not {expected}")
    remedy = N_("Use another label for the new key: a key in the store is never replaced.")


# --- provisioning CA and attestation (keys/ca.py, keys/attestation.py) -----------------------------
# Parameters are serials, paths and fixed reasons: a unit's certificates are hostile input and never echoed.


class ProvisioningCAError(KeysError):
    message = N_("The provisioning CA refused the operation: {reason}")
    remedy = N_("Run 'naiad doctor' and check that the key store holds the provisioning CA's key and certificate.")
    msgid_params = ("reason",)


class ProvisioningCAExpired(ProvisioningCAError):
    """The CA's own certificate is outside its validity: a certificate it issued now would be invalid at once."""

    message = N_("The provisioning CA's certificate has expired or is not yet valid: it cannot issue certificates")
    remedy = N_(
        "No certificate was issued. Check the station's clock; if the CA's certificate has expired, make a new "
        "provisioning CA (a new signing key and certificate in the key store) before certifying more units."
    )


class AttestationError(KeysError):
    """A unit's attestation chain, CSR or signature was refused: the unit gets nothing."""

    message = N_("The unit's attestation was refused")
    remedy = N_("Nothing was sent to the unit. Set it aside and report it: it may be counterfeit or damaged.")


class AttestationChainUnknown(AttestationError):
    message = N_("The unit's attestation chain does not lead to a trusted manufacturer root")
    remedy = N_(
        "Nothing was sent to the unit. If it is genuine, install its manufacturer's root certificate on the "
        "station; otherwise set it aside and report it as possibly counterfeit."
    )


class AttestationChainBroken(AttestationError):
    message = N_("The unit's attestation chain is broken: {reason}")
    msgid_params = ("reason",)


class AttestationWrongUnit(AttestationError):
    message = N_("The unit's attestation certificate does not name unit {serial}")
    remedy = N_("Nothing was sent to the unit. Check that the unit connected is the one named, then retry.")


class AttestationRootsInvalid(AttestationError):
    message = N_("The trusted manufacturer roots cannot be used: {reason}")
    remedy = N_("Install the manufacturer's root certificates as a PEM file on the station, then retry.")
    msgid_params = ("reason",)


class AttestationRootExpired(AttestationRootsInvalid):
    """The trusted root a unit's chain leads to is outside its validity: every unit of that maker is refused."""

    message = N_("The trusted manufacturer root that the unit's chain leads to has expired or is not yet valid")
    remedy = N_(
        "Nothing was sent to the unit. Get the manufacturer's current root certificates, install them on the "
        "station as a PEM file, check the station's clock, then retry."
    )


class CsrInvalid(AttestationError):
    message = N_("The unit's certificate request was refused: {reason}")
    msgid_params = ("reason",)


class SignatureInvalid(AttestationError):
    message = N_("The unit's signature over the {statement} does not verify")
    remedy = N_("Nothing was sent to the unit. Start its provisioning again; if it fails again, set it aside.")
    msgid_params = ("statement",)
