"""Errors of the station ledger.

Database failures are translated into these at the ledger's boundary, so callers (the pipeline, the
console) never see an SQLAlchemy exception.  Parameters carry a redacted URL, never a password.
"""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError


class LedgerError(NaiadError):
    """Root of the ledger's errors."""

    message = N_("The ledger failed: {detail}")


class LedgerUnavailable(LedgerError):
    """The database cannot be reached, opened or migrated."""

    message = N_("The ledger database {url} is not available: {detail}")
    remedy = N_(
        "Check that the database server is running and reachable (or that the ledger file's folder "
        "is writable), then try again."
    )


class LedgerSchemaTooNew(LedgerUnavailable):
    """The database was migrated by a newer Naiad than this one."""

    message = N_("The ledger database {url} has schema revision {revision}, newer than this Naiad knows")
    remedy = N_("Update Naiad on this station to the version the other stations use.")


class InvalidLedgerUrl(LedgerError):
    message = N_("Not a database URL: {url}")
    remedy = N_("Use a URL such as sqlite:///path/to/ledger.sqlite or postgresql+psycopg://user@host/naiad.")


class LedgerDriverMissing(LedgerUnavailable):
    """The URL names a database SQLAlchemy knows, through a driver that is not installed."""

    message = N_("The ledger URL {url} needs the database driver {driver}, which is not installed")
    remedy = N_(
        "Install it into Naiad's environment (pip install {package}), or name an installed driver in the URL, "
        "such as postgresql+psycopg://."
    )


class InvalidLedgerInput(LedgerError):
    """A caller passed a value the ledger refuses to store; nothing was written."""

    message = N_("The ledger refuses {field}: {detail}")


class SecretRefused(InvalidLedgerInput):
    message = N_("The ledger refuses field {field}: it looks like a key, PIN or other secret")
    remedy = N_("Record key IDs and key check values (KCVs), never keys, PINs or passphrases.")


class UnknownDevice(LedgerError):
    message = N_("The ledger has no unit with serial {serial}")
    remedy = N_("Record the unit as seen (attach it and let the station discover it) first.")


class UnknownOperator(LedgerError):
    message = N_("The ledger has no operator named {operator}")
    remedy = N_("Register the operator (with a role) before recording work under their name.")


class OperatorExists(LedgerError):
    message = N_("The ledger already has an operator named {operator}")
    remedy = N_("Choose another name, or change that operator's password with 'naiad operator passwd'.")


class BootstrapClosed(LedgerError):
    """Another admin who can log in appeared while the first admin was being created."""

    message = N_("The ledger already has an admin who can log in")
    remedy = N_("Log in as that admin (--operator NAME) to add operators.")


class AuditChainBroken(LedgerError):
    """The hash chain of the audit log does not verify."""

    message = N_("The audit trail is broken at entry {entry_id}: {reason}")
    remedy = N_(
        "Stop provisioning on this line and tell the security officer; compare with the last audit head "
        "kept outside the database."
    )


class LedgerRowTampered(AuditChainBroken):
    """A sealed row differs from the state the audit chain recorded, or cannot be read."""

    message = N_("The ledger's {table} row {row} was tampered with: {reason}")


class LedgerMalformed(LedgerError):
    """A stored value cannot be read back: someone wrote to the database behind the ledger's back."""

    message = N_("The ledger holds a value it cannot read: {detail}")
    remedy = N_("Run 'naiad ledger verify' to find the tampered row, and tell the security officer.")


class LedgerClosed(LedgerError):
    message = N_("The ledger is closed")


class UnknownBdk(LedgerError):
    message = N_("The ledger has no BDK labelled {label}")
    remedy = N_("Load or generate the BDK in a key ceremony first ('naiad keys ceremony'), or check the label.")


class BdkExists(LedgerError):
    message = N_("The ledger already has a BDK labelled {label}")
    remedy = N_("Choose another label; a registered BDK is never replaced.")


class BdkIdInUse(LedgerError):
    message = N_("The BDK ID {bdk_id} is already used by the BDK labelled {label}")
    remedy = N_("Give every BDK its own BDK ID: Initial Key IDs would otherwise collide.")


class DerivationIdsExhausted(LedgerError):
    """Every 32-bit derivation ID of the BDK was issued: it cannot key another unit."""

    message = N_("The BDK {label} has issued all {count} of its derivation IDs")
    remedy = N_("Load or generate a new BDK with its own BDK ID in a key ceremony, and inject under that one.")


class UnitNotAuthorised(LedgerError):
    """A unit outside the authorised inventory: it gets no key."""

    message = N_("The unit {serial} is not in the authorised inventory: it gets no key")
    remedy = N_(
        "Set the unit aside and report it. If it was ordered, an admin adds it with 'naiad keys inventory add'."
    )


class UnknownInitialKeyId(LedgerError):
    message = N_("The ledger never allocated the Initial Key ID {initial_key_id}")
    remedy = N_("Use only Initial Key IDs the ledger allocated; report this run to the security officer.")


class InitialKeyIdOfAnotherUnit(UnknownInitialKeyId):
    message = N_("The Initial Key ID {initial_key_id} was not allocated to the unit {serial}")


class InitialKeyIdUsed(LedgerError):
    """The Initial Key ID is not awaiting injection any more: injected, or marked failed."""

    message = N_("The Initial Key ID {initial_key_id} is already {state}: it is never used again")
    remedy = N_("Allocate a new Initial Key ID for the unit and inject again.")


class InjectionAlreadyRecorded(InitialKeyIdUsed):
    message = N_("The injection of the Initial Key ID {initial_key_id} is already recorded")
    remedy = N_("Nothing to do: an injection is recorded once. A unit to key again gets a new Initial Key ID.")


class NotInInventory(LedgerError):
    message = N_("The unit {serial} is not in the authorised inventory")
    remedy = N_("Check the serial with 'naiad keys inventory list'.")


class OperatorRequired(LedgerError):
    """Key and inventory records name the operator who made them: none is made anonymously."""

    message = N_("The ledger records keys and the inventory only under a logged-in operator")
    remedy = N_("Run it with --operator NAME (the password is asked), or set NAIAD_OPERATOR to a session token.")


class LedgerOperatorDisabled(LedgerError):
    """The writing operator was disabled: their session or view of the ledger writes nothing more."""

    message = N_("Operator {operator} is disabled")
    remedy = N_("Ask an admin; a disabled operator cannot log in or act.")


class LedgerRoleRequired(LedgerError):
    """The writing operator's role (as the ledger has it now) does not allow the record."""

    message = N_("This needs the {role} role; operator {operator} has the {actual} role")
    remedy = N_("Log in as an operator with the {role} role.")


class UnknownPlatformCall(LedgerError):
    message = N_("The ledger has no platform call {request_no}")


class PlatformCallNotPending(LedgerError):
    """Only a call still pending, and this station's own, can be abandoned: a settled one is history, and
    another station's may be on its way out from there."""

    message = N_("The platform call {request_no} is {state} on station {station}, not pending on this one")
    remedy = N_("Abandon a call only while it is pending, from the station that wrote it.")
