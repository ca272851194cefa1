"""``naiad keys``: payment keys.

- ``selftest [--json]`` runs every known-answer test of the core;
- ``ceremony load-bdk`` / ``ceremony generate-bdk``: a BDK under dual control, each custodian logging in; a
  BDK another station registered is loaded into this station's store by the same ceremony;
- ``bdk list [--json]``: the BDKs of the ledger beside what the key store holds.

Presentation only: :mod:`keys.selftest`, :mod:`keys.ceremony` and :mod:`provisioning.operators` decide; this
module asks, draws and exits 1 with the translated error and its remedy.  Components are typed hidden and
never printed; only KCVs are shown.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from i18n import N_, _
from keys.errors import SelftestFailed
from keys.selftest import SelftestReport, run_selftest
from terminal.errors import NaiadError

from .cli_common import Group, emit_json, err, json_option, option, out, reported, table
from .cli_root import Settings, pass_settings
from .keystore_option import keystore_options, open_key_store

if TYPE_CHECKING:
    from keys.ceremony import Ceremony
    from keys.store import KeyStore
    from provisioning.ledger import BdkRecord, Ledger

LOG = logging.getLogger(__name__)
BDK_LENGTHS = {"AES-128": 16, "AES-256": 32}


@click.group(
    "keys",
    cls=Group,
    lazy={
        "inject": "console.cli_inject:inject",
        "status": "console.cli_inject:status",
        "inventory": "console.cli_inventory:inventory_group",
    },
    help=N_("Payment keys: self-test, ceremonies, BDKs, the authorised inventory, injection and key status."),
)
def keys_group() -> None:
    pass


def _as_dict(report: SelftestReport) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "tests": [{"name": r.name, "source": r.source, "passed": r.passed} for r in report.results],
    }


@keys_group.command("selftest", help=N_("Run every known-answer test of AES DUKPT, TR-31 key blocks and KCVs."))
@json_option
def selftest(as_json: bool) -> None:
    report = run_selftest()
    if as_json:
        answers = _as_dict(report)
        try:
            report.raise_if_failed()
        except SelftestFailed as exc:
            emit_json({**answers, **exc.as_dict()})
            raise click.exceptions.Exit(1) from None
        emit_json(answers)
        return
    shown = table(N_("Test"), N_("Source"), N_("Result"), title=_("Cryptographic self-test"))
    for result in report.results:
        verdict = Text(_("passed"), style="green") if result.passed else Text(_("FAILED"), style="bold red")
        shown.add_row(_(result.name), _(result.source), verdict)
    out().print(shown)
    with reported(as_json):
        report.raise_if_failed()


# --- the key ceremony --------------------------------------------------------------------------------


@keys_group.group(
    "ceremony", cls=Group, help=N_("Load or generate a BDK under dual control (two or three custodians).")
)
def ceremony_group() -> None:
    pass


def _bdk_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        parsed = bytes.fromhex(value) if len(value) == 8 else b""
    except ValueError:
        parsed = b""
    if len(parsed) != 4:
        raise click.BadParameter(_("expected 8 hexadecimal digits (the 4-byte BDK ID)"))
    return parsed


label_option = option("--label", required=True, help=N_("The BDK's label in the key store and the ledger."))


def bdk_id_option(required: bool, text: str) -> Callable[[Any], Any]:
    return option("--bdk-id", "bdk_id", required=required, metavar="HEX8", callback=_bdk_id, help=text)


def _check_unregistered(ledger: Ledger, label: str, bdk_id: bytes) -> None:
    """Refuse a label or BDK ID the ledger already has, before any custodian types anything."""
    from provisioning.ledger import BdkExists, BdkIdInUse

    if ledger.bdk(label) is not None:
        raise BdkExists(label=label)
    holder = next((b.label for b in ledger.bdks() if b.bdk_id == bdk_id), None)
    if holder is not None:
        raise BdkIdInUse(bdk_id=bdk_id.hex().upper(), label=holder)


def _bdk_to_load(ledger: Ledger, label: str, bdk_id: bytes | None) -> tuple[bytes, BdkRecord | None]:
    """The BDK ID to load under, and the ledger's record when ``label`` is registered already (a BDK made at
    another station sharing the ledger, now loaded into this station's store); checked before anyone types."""
    from keys.ceremony import BdkIdDiffers, BdkIdNeeded

    registered = ledger.bdk(label)
    if registered is not None:
        if bdk_id is not None and bdk_id != registered.bdk_id:
            raise BdkIdDiffers(label=label, registered=registered.bdk_id.hex().upper(), bdk_id=bdk_id.hex().upper())
        return registered.bdk_id, registered
    if bdk_id is None:
        raise BdkIdNeeded(label=label)
    _check_unregistered(ledger, label, bdk_id)
    return bdk_id, None


@contextmanager
def _ceremony(ledger: Ledger, label: str, custodians: int, keystore: str) -> Iterator[tuple[KeyStore, Ceremony]]:
    """The open key store and the ceremony; a ceremony that stops is audited and leaves nothing: a BDK it made
    that the ledger did not record is destroyed again, whatever stopped it."""
    from keys.ceremony import Ceremony, CeremonyAborted, CeremonyAbortedAfterMaking
    from keys.store import check_free

    with open_key_store(keystore, create=True) as store, Ceremony(label, custodians) as ceremony:
        check_free(label, store.labels())
        try:
            try:
                yield store, ceremony
            except BaseException:
                destroyed = ceremony.take_back(store, N_("the ceremony was stopped"))
                raise
        except (click.Abort, EOFError, KeyboardInterrupt):
            _stopped(ledger, ceremony, "interrupted")
            raise (CeremonyAbortedAfterMaking if destroyed else CeremonyAborted)() from None
        except NaiadError as exc:
            _stopped(ledger, ceremony, type(exc).__name__)
            raise


def _stopped(ledger: Ledger, ceremony: Ceremony, reason: str) -> None:
    """Audit a ceremony that stopped, naming the custodians who had logged in; the caller's error comes first."""
    details = {"custodians": list(ceremony.custodians), "expected": ceremony.expected, "reason": reason}
    operator = ledger.operator or next(iter(ceremony.custodians), None)
    try:
        ledger.audit("bdk.ceremony_stopped", f"bdk:{ceremony.label}", details, operator)
    except NaiadError:
        LOG.warning("the stopped ceremony for %s could not be audited", ceremony.label, exc_info=True)


def _custodian(ledger: Ledger, ceremony: Ceremony) -> str:
    """The next custodian, logged in with the custodian role and admitted (each only once)."""
    from provisioning import operators

    number = len(ceremony.custodians) + 1
    name: str = click.prompt(_("Custodian {number} of {count}: name", number=number, count=ceremony.expected), err=True)
    password: str = click.prompt(_("Password for {operator}", operator=name), hide_input=True, err=True)
    session = operators.require_role(operators.login(ledger, name, password), operators.ROLE_CUSTODIAN)
    ceremony.admit(session.operator)
    return session.operator


def _writer(ledger: Ledger, ceremony: Ceremony) -> Ledger:
    """The ledger writing as whoever logged in for the command, else as the ceremony's first custodian."""
    return ledger if ledger.operator else ledger.as_operator(ceremony.custodians[0])


def _record(
    ledger: Ledger, store: KeyStore, ceremony: Ceremony, bdk_id: bytes, kcv: bytes, origin: str, *, loaded: bool
) -> None:
    """Register the BDK the store now holds or, ``loaded`` (registered already), audit its loading into this
    station's store, leaving the registry row as it is; written as the first custodian unless someone logged
    in for the command.  A BDK the ledger did not record is destroyed again."""
    from keys.ceremony import BdkNotRecorded

    writer = _writer(ledger, ceremony)
    try:
        if loaded:
            details = {
                "bdk_id": bdk_id.hex().upper(),
                "kcv": kcv.hex().upper(),
                "custodians": list(ceremony.custodians),
            }
            writer.audit("bdk.loaded", f"bdk:{ceremony.label}", details)
        else:
            writer.register_bdk(ceremony.label, bdk_id, kcv, origin, ceremony.custodians)
    except NaiadError as exc:
        ceremony.take_back(store, N_("the ledger did not record it"))
        raise BdkNotRecorded(label=ceremony.label, reason=str(exc)) from exc
    ceremony.recorded()


def _made(label: str, kcv: bytes, custodians: tuple[str, ...]) -> None:
    from keys.kcv import shown

    out().print(_("The key store holds the BDK labelled {label}; its KCV is {kcv}.", label=label, kcv=shown(kcv)))
    out().print(_("Custodians: {custodians}", custodians=", ".join(custodians)))


@ceremony_group.command(
    "load-bdk",
    help=N_(
        "Load a BDK from two or three components, each from another custodian: a new BDK, or one the ledger "
        "registered at another station, into this station's key store."
    ),
)
@label_option
@bdk_id_option(
    False,
    N_(
        "The BDK ID of a new BDK: 8 hexadecimal digits, the first half of every Initial Key ID it issues. "
        "A BDK the ledger has already is loaded under its registered ID, which a given one must match."
    ),
)
@option("--components", type=click.IntRange(2, 3), default=2, show_default=True, help=N_("How many components."))
@keystore_options
@pass_settings
def load_bdk(settings: Settings, label: str, bdk_id: bytes | None, components: int, keystore: str) -> None:
    from keys.ceremony import parse_check_value, parse_component

    with reported(False):
        ledger = settings.station().ledger
        known_id, registered = _bdk_to_load(ledger, label, bdk_id)
        with _ceremony(ledger, label, components, keystore) as (store, ceremony):
            for number in range(1, components + 1):
                custodian = _custodian(ledger, ceremony)
                asked = _("Component {number} (hexadecimal, not shown)", number=number)
                component = parse_component(click.prompt(asked, hide_input=True, err=True))
                check_value = parse_check_value(click.prompt(_("KCV of component {number}", number=number), err=True))
                ceremony.add(custodian, component, check_value)
                err().print(_("Component {number} of {count} matches its KCV.", number=number, count=components))
            kcv = ceremony.combine(store, None if registered is None else registered.kcv)
            _record(ledger, store, ceremony, known_id, kcv, "ceremony", loaded=registered is not None)
    _made(label, kcv, ceremony.custodians)
    if registered is not None:
        out().print(_("The KCV is the one the ledger registered for {label}.", label=label))


@ceremony_group.command("generate-bdk", help=N_("Generate a random BDK inside the key store before two custodians."))
@label_option
@bdk_id_option(True, N_("The BDK ID: 8 hexadecimal digits, the first half of every Initial Key ID the BDK issues."))
@option(
    "--algorithm",
    type=click.Choice(tuple(BDK_LENGTHS)),
    default="AES-128",
    show_default=True,
    help=N_("The BDK's algorithm."),
)
@keystore_options
@pass_settings
def generate_bdk(settings: Settings, label: str, bdk_id: bytes, algorithm: str, keystore: str) -> None:
    with reported(False):
        ledger = settings.station().ledger
        _check_unregistered(ledger, label, bdk_id)
        with _ceremony(ledger, label, 2, keystore) as (store, ceremony):
            for _number in range(ceremony.expected):
                _custodian(ledger, ceremony)
            kcv = ceremony.generate(store, BDK_LENGTHS[algorithm])
            _record(ledger, store, ceremony, bdk_id, kcv, "generated", loaded=False)
    _made(label, kcv, ceremony.custodians)


# --- the BDKs ----------------------------------------------------------------------------------------


@keys_group.group("bdk", cls=Group, help=N_("The BDKs: what the ledger records and the key store holds."))
def bdk_group() -> None:
    pass


ORIGINS = (N_("ceremony"), N_("generated"))  # the ledger's origins, shown through _() in the table
STATES = (N_("ok"), N_("not in the key store"), N_("KCV differs"), N_("not in the ledger"))


@bdk_group.command("list", help=N_("List the BDKs: label, BDK ID, KCV, origin, custodians, and the key store's check."))
@json_option
@keystore_options
@pass_settings
def list_bdks(settings: Settings, as_json: bool, keystore: str) -> None:
    from keys.kcv import shown

    with reported(as_json):
        records = settings.station().ledger.bdks()
        with open_key_store(keystore) as store:
            held = {label: store.bdk_kcv(label) for label in store.labels()}
    rows: list[dict[str, Any]] = [
        {
            "label": r.label,
            "bdk_id": r.bdk_id.hex().upper(),
            "kcv": r.kcv.hex().upper(),
            "origin": r.origin,
            "custodians": list(r.custodians),
            "registered": r.registered.isoformat(),
            "station": r.station,
            "state": STATES[0] if held.get(r.label) == r.kcv else STATES[1] if r.label not in held else STATES[2],
        }
        for r in records
    ]
    registered = {r.label for r in records}
    rows += [
        {"label": label, "bdk_id": None, "kcv": kcv.hex().upper(), "origin": None, "custodians": [],
         "registered": None, "station": None, "state": STATES[3]}
        for label, kcv in sorted(held.items()) if label not in registered
    ]  # fmt: skip
    if as_json:
        emit_json({"bdks": rows})
        return
    shown_rows = table(
        N_("Label"), N_("BDK ID"), N_("KCV"), N_("Origin"), N_("Custodians"), N_("State"), title=_("BDKs")
    )
    for row in rows:
        shown_rows.add_row(
            row["label"],
            row["bdk_id"] or "-",
            shown(bytes.fromhex(row["kcv"])),
            _(row["origin"]) if row["origin"] else "-",
            ", ".join(row["custodians"]) or "-",
            _(row["state"]),
        )
    out().print(shown_rows)


# --- the provisioning CA -----------------------------------------------------------------------------


@ceremony_group.command(
    "make-ca",
    help=N_(
        "Make the station's provisioning CA (its key inside the key store) before two custodians: once per key "
        "store, before the first injection."
    ),
)
@keystore_options
@pass_settings
def make_ca(settings: Settings, keystore: str) -> None:
    from keys.ca import DEFAULT_LABEL, ProvisioningCA
    from keys.ceremony import ProvisioningCAExists

    with reported(False):
        ledger = settings.station().ledger
        with _ceremony(ledger, DEFAULT_LABEL, 2, keystore) as (store, ceremony):
            if DEFAULT_LABEL in store.signing_labels() and store.certificate(DEFAULT_LABEL) is not None:
                raise ProvisioningCAExists(label=DEFAULT_LABEL)
            for _number in range(ceremony.expected):
                _custodian(ledger, ceremony)
            ProvisioningCA.ensure(store, DEFAULT_LABEL, f"Naiad provisioning CA ({ledger.station})")
            fingerprint = hashlib.sha256(store.signing_public_key(DEFAULT_LABEL)).hexdigest().upper()
            writer = _writer(ledger, ceremony)
            details = {"fingerprint": fingerprint, "custodians": list(ceremony.custodians)}
            writer.audit("ca.created", f"ca:{DEFAULT_LABEL}", details)
    out().print(_("Provisioning CA made; the SHA-256 of its public key is {fingerprint}.", fingerprint=fingerprint))
