"""The demo's run: ``distributor-bulk`` then ``installer-onsite`` on every unit of a :class:`DemoWorld`, each
batch's report written, and the outcome in the form ``naiad demo --json`` prints.

Presentation is ``console/cli_demo.py``'s; this module runs the two batches through the real recipes and the
real pipeline, with the world's operators (the bulk run by the demo's operator, the on-site one by its
installer) and the sandbox's test merchant and store.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .demo_world import DemoWorld

if TYPE_CHECKING:
    from provisioning.pipeline import BatchRun
    from terminal.errors import NaiadError
    from terminal.events import Listener

LOG = logging.getLogger(__name__)

RECIPES = (("distributor-bulk", "operator"), ("installer-onsite", "installer"))
"""The demo's recipes in order, each with the role of the demo operator who runs it."""

Bars = Callable[[str], AbstractContextManager["Listener | None"]]
"""A recipe's name -> the bars (a listener, or None for none) its batch reports to while it runs."""


@dataclass
class DemoRun:
    """The demo's batches, in order, and where their reports are."""

    world: DemoWorld
    batches: list[BatchRun] = field(default_factory=list)
    reports: dict[str, list[Path]] = field(default_factory=dict)
    report_errors: dict[str, NaiadError] = field(default_factory=dict)
    """Why a recipe's batch report could not be written (its batch stands)."""

    @property
    def ok(self) -> bool:
        """Every batch ok: its units, and its reconciliation with the inventory when it keys or registers."""
        return bool(self.batches) and all(b.ok for b in self.batches)

    def as_dict(self) -> dict[str, Any]:
        """``{"units": [{"serial", "initial_key_id", "kcv", "recipes": [UnitRun.as_dict()...]}], "reports": DIR}``
        plus ``"batches"`` (each ``BatchRun.as_dict()`` without its units) and ``"ok"``."""
        units: dict[str, dict[str, Any]] = {
            s: {"serial": s, "initial_key_id": None, "kcv": None, "recipes": []} for s in self.world.serials
        }
        for batch in self.batches:
            for unit in batch.units:
                entry = units.setdefault(
                    unit.serial, {"serial": unit.serial, "initial_key_id": None, "kcv": None, "recipes": []}
                )
                entry["initial_key_id"] = entry["initial_key_id"] or unit.initial_key_id
                entry["kcv"] = entry["kcv"] or unit.kcv
                entry["recipes"].append(unit.as_dict())
        batches = [{k: v for k, v in b.as_dict().items() if k != "units"} for b in self.batches]
        return {
            "units": list(units.values()),
            "reports": str(self.world.reports_dir),
            "batches": batches,
            "report_errors": {recipe: error.as_dict() for recipe, error in self.report_errors.items()},
            "ok": self.ok,
        }


def run_demo(world: DemoWorld, bars: Bars, *, workers: int | None = None) -> Iterator[tuple[str, BatchRun]]:
    """Run the demo's recipes in order on every unit of ``world``, each batch's report written to
    ``world.reports_dir/<recipe>``; yields each recipe's name and batch as it ends (for a table in between).

    Each batch runs in a thread of its own while this one waits: Ctrl-C reaches the caller at once, whose
    leaving the world stops the simulator under the units' workers, so they end quickly too."""
    from provisioning.pipeline import run_recipe
    from provisioning.recipes import load_recipe

    recipes = [(load_recipe(name, world.overrides(name)), role) for name, role in RECIPES]  # both checked first
    for recipe, role in recipes:
        with bars(recipe.name) as listener:
            resources = world.resources(role, listener)
            batch = _in_thread(functools.partial(run_recipe, recipe, world.serials, resources, workers=workers))
        yield recipe.name, batch


T = TypeVar("T")


def _in_thread(call: Callable[[], T]) -> T:
    """``call()`` in a daemon thread, waited for in short slices so a KeyboardInterrupt is not held up."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed back to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="naiad-demo-batch", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if failure:
        raise failure[0]
    return result[0]


def write_reports(world: DemoWorld, recipe: str, batch: BatchRun) -> list[Path]:
    """The batch's report (HTML, PDF, JSON, CSV) in ``world.reports_dir/<recipe>``."""
    from provisioning.reports import write_batch_report

    folder = world.reports_dir / recipe
    folder.mkdir(parents=True, exist_ok=True)
    with world.ledger() as ledger:
        return write_batch_report(batch, ledger, folder)
