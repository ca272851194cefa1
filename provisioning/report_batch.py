"""What a batch's report holds: one row per unit of a pipeline run, the totals and the share of time per step."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from i18n import N_, _, get_language

from .ledger import Ledger
from .report_data import china_time, scrubbed

if TYPE_CHECKING:
    from .pipeline import BatchRun, UnitRun

SCHEMA = "naiad.batch-report/1"


@dataclass
class BatchReport:
    batch_id: str
    recipe: str
    generated: str
    language: str
    seconds: float
    steps: list[str]
    units: list[dict[str, Any]]
    reconciliation: dict[str, Any] | None

    def totals(self) -> dict[str, Any]:
        """Counts per result, and per step its total seconds, its share of all steps' time and its failures."""
        per_step = {name: 0.0 for name in self.steps}
        failed: Counter[str] = Counter()
        for unit in self.units:
            for step in unit["steps"]:
                per_step[step["name"]] = per_step.get(step["name"], 0.0) + step["seconds"]
                failed[step["name"]] += not step["ok"]
        total = sum(per_step.values())
        return {
            "units": len(self.units),
            "results": dict(sorted(Counter(unit["result"] for unit in self.units).items())),
            "step_seconds": round(total, 3),
            "steps": [
                {
                    "name": name,
                    "seconds": round(seconds, 3),
                    "share": round(seconds / total, 4) if total > 0 else 0.0,
                    "failed": failed[name],
                }
                for name, seconds in per_step.items()
            ],
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated": self.generated,
            "language": self.language,
            "batch_id": self.batch_id,
            "recipe": self.recipe,
            "seconds": round(self.seconds, 3),
            "steps": self.steps,
            "units": self.units,
            "totals": self.totals(),
            "reconciliation": self.reconciliation,
        }

    def step_rows(self) -> list[dict[str, Any]]:
        """One row per step of every unit (the CSV's rows)."""
        return [
            {
                "serial": unit["serial"],
                "result": unit["result"],
                "initial_key_id": unit["initial_key_id"],
                "kcv": unit["kcv"],
                **step,
            }
            for unit in self.units
            for step in unit["steps"]
        ]


def gather_batch(batch: BatchRun, ledger: Ledger, now: dt.datetime | None = None) -> BatchReport:
    """The batch's report: its units as the pipeline left them; models and key IDs the run did not carry (a unit
    keyed by an earlier run) read from the ledger."""
    names: list[str] = [step.name for step in batch.recipe.steps]
    units = []
    for run in batch.units:
        for outcome in run.steps:
            if outcome.step not in names:
                names.append(outcome.step)
        units.append(_unit(run, ledger))
    return BatchReport(
        batch_id=str(batch.batch_id),
        recipe=batch.recipe.name,
        generated=china_time(now or dt.datetime.now(dt.UTC)) or "",
        language=get_language(),
        seconds=float(batch.seconds),
        steps=names,
        units=units,
        reconciliation=_reconciliation(batch.reconciliation),
    )


def _unit(run: UnitRun, ledger: Ledger) -> dict[str, Any]:
    device = ledger.device(run.serial)
    key_id, kcv = run.initial_key_id, run.kcv
    if key_id is None:
        injections = ledger.injections(run.serial)
        if injections:
            from keys.kcv import shown

            key_id, kcv = injections[-1].initial_key_id.hex().upper(), shown(injections[-1].kcv)
    steps = [
        {
            "name": o.step,
            "ok": o.ok,
            "seconds": round(o.seconds, 3),
            "detail": o.detail,
            "already_done": o.already_done,
        }
        for o in run.steps
    ]
    return {
        "serial": run.serial,
        "model": None if device is None else device.model,
        "result": run.result,
        "run_id": run.run_id,
        "station": run.station,
        "initial_key_id": key_id,
        "kcv": kcv,
        "seconds": round(sum(o.seconds for o in run.steps), 3),
        "steps": steps,
    }


def _reconciliation(value: Any) -> dict[str, Any] | None:
    """The batch's reconciliation as a dict (``BatchReconciliation.as_dict``), None when there is none."""
    if value is None:
        return None
    found = value.as_dict()
    return scrubbed(dict(found)) if isinstance(found, Mapping) else None


RECONCILE_LATER = N_("Run 'naiad inventory reconcile' when the ledger is back.")
FINDING_FIELDS = ("refused", "not_injected", "injected_more_than_once", "not_in_inventory", "unconfirmed", "failed")


def findings(reconciliation: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The reconciliation's findings as (what, which units) lines for people; empty when there are none."""
    from .ledger import Finding

    lines = []
    error = (reconciliation or {}).get("error")
    if isinstance(error, Mapping) and error.get("message"):
        why = str(error["message"])
        lines.append((_("The batch could not be reconciled"), f"{why.rstrip('.')}. {_(RECONCILE_LATER)}"))
    for name in FINDING_FIELDS:
        value = (reconciliation or {}).get(name)
        if not value:
            continue
        if isinstance(value, Mapping):
            text = "; ".join(f"{serial}: {', '.join(map(str, ids))}" for serial, ids in value.items())
        else:
            text = ", ".join(map(str, value))
        lines.append((Finding[name.upper()].text(), text))
    return lines


def failures(report: BatchReport) -> list[tuple[str, dict[str, Any]]]:
    """(serial, step) for every step that failed, in the units' order."""
    return [(unit["serial"], step) for unit in report.units for step in unit["steps"] if not step["ok"]]
