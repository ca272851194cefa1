"""What the station hands every step of a batch (:class:`provisioning.steps.Resources`), built from the command
line's options and the :class:`~console.composition.Wiring`: the one place that puts the station, the operator,
the key store, the platform's outbox, the merchant, the jig and the presenter together.

``naiad provision`` opens them with :func:`open_resources`; :class:`console.demo_world.DemoWorld` calls
:func:`build_resources` with its own.  Nothing here decides anything: the steps refuse a batch whose resources
lack what they need, in their constructors, before any unit is touched.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from i18n import N_, _
from terminal.errors import NaiadError

from .cli_common import err, problem_text

if TYPE_CHECKING:
    from enrollment.config import Merchant, PlatformConfig
    from keys.store import KeyStore
    from provisioning.operators import OperatorSession
    from provisioning.outbox import Outbox
    from provisioning.pipeline import BatchRun
    from provisioning.station import Station
    from provisioning.steps import Resources
    from terminal.events import Listener

    from .cli_root import Settings
    from .composition import Wiring

LOG = logging.getLogger(__name__)
REPORTS_FOLDER = "reports"
EVERYTHING = frozenset({"store", "outbox", "supplier_id"})
"""What :func:`open_resources` opens when it is not told what the recipe's steps need."""


class KeyStoreNotOpened(NaiadError):
    message = N_("The key store was not opened: no passphrase or PIN was given")
    remedy = N_(
        "Type it when asked, or set NAIAD_KEYSTORE_PASSPHRASE (NAIAD_PKCS11_PIN for a PKCS#11 token) for a run "
        "without a terminal; nothing was done."
    )


def build_resources(
    wiring: Wiring,
    station: Station,
    session: OperatorSession | None,
    *,
    listener: Listener | None = None,
    store: KeyStore | None = None,
    outbox: Outbox | None = None,
    supplier_id: str | None = None,
    merchant: Merchant | None = None,
    program: str | None = None,
    reports_dir: Path | None = None,
    roots: Sequence[bytes] | None = None,
    ask: Callable[[str], None] | None = None,
) -> Resources:
    """The resources of a batch on ``wiring``'s units: the jig and the presenter the wiring gives (``ask`` tells
    a person what to present on real units), its manufacturer roots unless ``roots``, and what is given."""
    from provisioning.steps import Resources

    return Resources(
        station=station,
        session=session,
        listener=listener,
        store=store,
        roots=list(roots) if roots is not None else _roots(wiring),
        outbox=outbox,
        supplier_id=supplier_id,
        merchant=merchant,
        program=program,
        jig=wiring.jig(),
        presenter=wiring.presenter(ask=ask),
        reports_dir=reports_dir,
    )


def _roots(wiring: Wiring) -> list[bytes]:
    """The manufacturer roots, or none when the station has no file of them: the attestation step then refuses
    the batch with its own words, and a recipe that needs none still runs."""
    from keys.errors import KeysError

    try:
        return wiring.manufacturer_roots()
    except KeysError as exc:
        LOG.warning("no manufacturer roots: %s", exc)
        return []


def chosen_merchant(merchant_id: str | None, store_id: str | None, qr_text: str | None) -> Merchant | None:
    """The store typed (``--merchant`` and ``--store``) or scanned (``--merchant-qr``), or None when neither."""
    from enrollment.config import ID, Merchant
    from enrollment.merchant_qr import parse_merchant_qr

    from .cli_register import IdInvalid

    typed = merchant_id is not None or store_id is not None
    if typed and qr_text is not None:
        raise click.UsageError(_("Give the store either as --merchant and --store or as --merchant-qr, not both."))
    if qr_text is not None:
        return parse_merchant_qr(qr_text)
    if not typed:
        return None
    if merchant_id is None or store_id is None:
        raise click.UsageError(_("--merchant and --store go together: give both."))
    for value, what in ((merchant_id, N_("The merchant id")), (store_id, N_("The store id"))):
        if not ID.fullmatch(value):
            raise IdInvalid(what=what, value=value)
    return Merchant(merchant_id, store_id)


def reports_folder(batch: str, given: Path | None = None) -> Path:
    """Where a batch's reports go: ``given``, else ``<data dir>/reports/<batch>`` (``naiad provision`` names a
    batch by its recipe and start time)."""
    from terminal.dirs import data_dir

    return given if given is not None else data_dir() / REPORTS_FOLDER / batch


def batch_folder_name(recipe: str, now: dt.datetime | None = None) -> str:
    """A batch's folder under the reports directory: the recipe and the UTC time it started."""
    moment = now or dt.datetime.now(dt.UTC)
    return f"{recipe}-{moment:%Y%m%dT%H%M%SZ}"


def write_reports(
    batch: BatchRun, station: Station, folder: Path, as_json: bool = False
) -> tuple[list[Path], NaiadError | None]:
    """The batch's report in ``folder`` and no error; a report that cannot be written is said on stderr (people)
    or returned (JSON, the console's bench): the batch stands.  ``naiad provision`` and the bench both call it."""
    from provisioning.reports import write_batch_report

    try:
        folder.mkdir(parents=True, exist_ok=True)
        return write_batch_report(batch, station.ledger, folder), None
    except OSError as exc:
        from provisioning.reports import ReportNotWritten

        problem: NaiadError = ReportNotWritten(path=str(folder), reason=exc.strerror or str(exc))
    except NaiadError as exc:
        problem = exc
    if not as_json:
        err().print(_("The batch report could not be written: {problem}", problem=problem_text(problem)), markup=False)
    return [], problem


def _platform(config_path: str | None) -> PlatformConfig | None:
    """The platform configuration given or in NAIAD_PLATFORM_CONFIG; None when none is configured at all (a
    configuration that is there but bad is refused)."""
    from enrollment.config import resolve
    from enrollment.errors import PlatformNotConfigured

    try:
        return resolve(config_path)
    except PlatformNotConfigured:
        return None


def _ask(text: str) -> None:
    """Tell the person at a real unit what to present, and wait until they say it is there."""
    click.pause(_("{instruction} Press any key when it is ready.", instruction=text), err=True)


@contextmanager
def open_resources(
    settings: Settings,
    *,
    keystore: str,
    platform_config: str | None,
    merchant: Merchant | None = None,
    listener: Listener | None = None,
    reports_dir: Path | None = None,
    needs: frozenset[str] = EVERYTHING,
    **extra: Any,
) -> Iterator[Resources]:
    """The resources of a ``naiad`` command: the station and operator of ``settings``; the key store
    ``keystore`` names (its passphrase or PIN asked if not in the environment) and the outbox to the platform when
    one is configured, each only when ``needs`` (:func:`provisioning.steps.needed` of the recipe's steps) names it
    (the outbox signs with the key store); everything opened is closed when the block ends."""
    from .keystore_option import open_key_store
    from .platform_option import open_outbox

    station = settings.station()
    session = settings.session()
    wiring = settings.wiring()
    wants_platform = bool(needs & {"outbox", "supplier_id"})
    config = _platform(platform_config) if wants_platform else None
    with ExitStack() as stack:
        store = None
        if needs & {"store", "outbox"}:
            try:
                store = stack.enter_context(open_key_store(keystore))
            except click.exceptions.Abort:  # the prompt's input closed, or Ctrl-C at it
                raise KeyStoreNotOpened() from None
        outbox = None
        if config is not None and store is not None and "outbox" in needs:
            outbox = stack.enter_context(open_outbox(station, platform_config, store))
        elif config is None and wants_platform:
            err().print(_("No merchant platform is configured: steps that need it refuse the batch."), markup=False)
        yield build_resources(
            wiring,
            station,
            session,
            listener=listener,
            store=store,
            outbox=outbox,
            supplier_id=None if config is None else config.supplier_id,
            merchant=merchant,
            reports_dir=reports_dir,
            ask=_ask,
            **extra,
        )
