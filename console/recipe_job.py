"""A recipe run from the console: one job on the workers that opens what the recipe's steps need, then runs
:func:`provisioning.pipeline.run_recipe` with the job's listener.

The bench, the installer wizard and the support desk all run recipes this one way.  What the steps need
(:func:`provisioning.steps.needed`) is opened on the worker, never on the GUI thread, and only that: a support
engineer runs ``support-diagnose`` without the key store.  The key store's passphrase or PIN is in the request
only (kept out of its ``repr``), reaches only the store's constructor, and is gone with the job when it ends.
The job's result is the :class:`~provisioning.pipeline.BatchRun`; a refusal before any unit is touched is the
job's error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .console_settings import PKCS11, ConsoleSettings
from .workers import Job

if TYPE_CHECKING:
    from enrollment.config import Merchant, PlatformConfig
    from keys.store_pkcs11 import Pkcs11Config
    from provisioning.operators import OperatorSession
    from provisioning.pipeline import BatchRun
    from provisioning.recipes import Recipe
    from provisioning.steps import Resources
    from terminal.events import Listener

    from .context import ConsoleContext

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipeRequest:
    """One press of Start: a recipe (overrides applied) on some units, and what its steps act on."""

    recipe: Recipe
    serials: tuple[str, ...]
    secret: str = field(default="", repr=False)
    """The key store's passphrase or PIN ("": the environment's); needed only when a step needs the key store."""
    merchant: Merchant | None = None
    program: str | None = None
    reports_dir: Path | None = None
    workers: int | None = None


def recipe_job(
    context: ConsoleContext,
    request: RecipeRequest,
    name: str = "recipe",
    *,
    listen: Callable[[Listener], Listener] | None = None,
    then: Callable[[BatchRun], object] | None = None,
) -> Job:
    """The job running ``request``; it holds its units until it ends.  Start it with ``context.workers.start``.

    ``listen`` puts a listener of the view's in front of the job's own, on the worker (the face-pay check's
    depth colouring: the GUI thread then only shows pictures); ``then(batch)``, when given, runs on the worker after
    the batch and its return is the job's result (the bench writes the batch's report)."""
    settings, session = context.settings, context.operator.session  # who asked, not who is logged in when it runs

    def work(listener: Listener) -> object:
        from provisioning.pipeline import run_recipe

        if listen is not None:
            listener = listen(listener)
        with console_resources(context, settings, request, listener, session=session) as resources:
            batch = run_recipe(request.recipe, request.serials, resources, workers=request.workers)
        return batch if then is None else then(batch)

    return Job(work, request.serials, name, release_on="end")


@contextmanager
def console_resources(
    context: ConsoleContext,
    settings: ConsoleSettings,
    request: RecipeRequest,
    listener: Listener | None,
    *,
    session: OperatorSession | None = None,
) -> Iterator[Resources]:
    """The resources of ``request``'s recipe, opened on the calling (worker) thread and closed after the block;
    ``session``: the operator who asked for the run (None: the one logged in now)."""
    from provisioning.steps import needed

    from .inject_dialog import KeyStoreChoice
    from .inject_run import open_chosen_store
    from .platform_option import open_outbox
    from .station_resources import build_resources

    needs = needed(step.name for step in request.recipe.steps)
    station = context.stations.get()
    config_path = settings.effective_platform_config()
    config = _platform(config_path) if needs & {"outbox", "supplier_id"} else None
    with ExitStack() as stack:
        store = None
        if needs & {"store", "outbox"}:
            kind = settings.effective_keystore()
            choice = KeyStoreChoice(kind, request.secret or _secret_from_environment(kind), pkcs11_config(settings))
            store = stack.enter_context(open_chosen_store(choice))
        outbox = None
        if config is not None and store is not None and "outbox" in needs:
            outbox = stack.enter_context(open_outbox(station, config_path, store))
        yield build_resources(
            context.wiring,
            station,
            session if session is not None else context.operator.session,
            listener=listener,
            store=store,
            outbox=outbox,
            supplier_id=None if config is None else config.supplier_id,
            merchant=request.merchant,
            program=request.program,
            reports_dir=request.reports_dir,
        )


def pkcs11_config(settings: ConsoleSettings) -> Pkcs11Config | None:
    """The PKCS#11 module and token of the settings, else of the environment."""
    from keys.store_pkcs11 import Pkcs11Config

    if settings.pkcs11_module and settings.pkcs11_token:
        return Pkcs11Config(settings.pkcs11_module, settings.pkcs11_token)
    return Pkcs11Config.from_environment()


def _secret_from_environment(kind: str) -> str:
    import os

    from .keystore_option import PASSPHRASE_VARIABLE, PIN_VARIABLE

    return os.environ.get(PIN_VARIABLE if kind == PKCS11 else PASSPHRASE_VARIABLE, "")


def _platform(config_path: str | None) -> PlatformConfig | None:
    """The platform configuration, or None when none is configured (the steps that need it then refuse the batch
    with their own words); a configuration that is there but bad is refused."""
    from enrollment.config import resolve
    from enrollment.errors import PlatformNotConfigured

    try:
        return resolve(config_path)
    except PlatformNotConfigured:
        return None
