"""The vocabulary of the station's recipes: a step, its settings, what the station hands it, and its outcome.

A recipe (``provisioning/recipes.py``) names steps and their settings; the pipeline (``provisioning/pipeline.py``)
runs each unit through them in a worker of its own and records every step in the ledger.  A step is a
:class:`Step` subclass registered here by its name.  It is made once per batch with its settings and the
station's :class:`Resources`, before any unit is touched (a constructor that raises refuses the whole batch),
then run once per unit with that unit's :class:`UnitJob`.

Two kinds of step need care after a crash or an unplug:

- a step that must not repeat (a :class:`OnceStep`: payment keys, platform registrations) is asked
  :meth:`OnceStep.done_before` before it runs, and :meth:`OnceStep.settle` when the ledger shows it started and
  never finished: it finds out from the unit, the ledger or the platform what happened, never simply runs again;
- a read-only step (``read_only = True``) changes nothing on the unit or the platform; ``support-diagnose``
  may hold only such steps.
"""

from __future__ import annotations

import abc
import enum
import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from i18n import N_, _
from terminal.errors import NaiadError
from terminal.events import Listener, Reporter

if TYPE_CHECKING:
    from enrollment.config import Merchant
    from keys.store import KeyStore

    from .camera_steps import Jig
    from .facepay_steps import Presenter
    from .operators import OperatorSession
    from .outbox import Outbox
    from .station import Station

STEP_MODULES = (
    "provisioning.bulk_steps",
    "provisioning.onsite_steps",
    "provisioning.diagnose_steps",
    "provisioning.report_steps",
)
"""The modules whose import registers the built-in steps (each decorates its classes with :func:`register`)."""


class StepError(NaiadError):
    """A step that cannot be made or run as asked."""


class UnknownStep(StepError):
    message = N_("There is no step named '{name}'")
    remedy = N_("Use one of: {known}.")


class SettingKind(enum.StrEnum):
    """What a setting's value must be in the recipe file (TOML types; ``file`` is a path that must exist)."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"  # an integer or a float
    BOOLEAN = "boolean"
    FILE = "file"  # a string naming an existing file, relative to the recipe file's folder
    STRINGS = "strings"  # a list of strings
    NUMBERS = "numbers"  # a list of numbers


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a setting the recipe must give."""


@dataclass(frozen=True)
class Setting:
    """One setting a step takes: its name in the recipe, its kind, its default, and what it means (``N_``)."""

    name: str
    kind: SettingKind
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()
    """For strings: the values allowed (empty: any)."""
    minimum: float | None = None
    """For numbers and integers: the smallest allowed."""


@dataclass
class Resources:
    """What the station hands every step of a batch; the composition root (``console/``) builds it for real or
    simulated units.  Steps that need something missing here refuse the batch in their constructor."""

    station: Station
    session: OperatorSession | None
    listener: Listener | None = None
    store: KeyStore | None = None
    """The key store holding the BDK and the provisioning CA (keys)."""
    roots: Sequence[bytes] = ()
    """Trusted manufacturer root certificates, DER (attestation)."""
    outbox: Outbox | None = None
    """The platform's outbox (registrations, the face-pay check's trade)."""
    supplier_id: str | None = None
    merchant: Merchant | None = None
    """The merchant and store a unit is bound to on site (and the face-pay check's test merchant)."""
    program: str | None = None
    """The subsidy program to enrol in (None: the platform's current one)."""
    jig: Jig | None = None
    presenter: Presenter | None = None
    reports_dir: Path | None = None
    """Where reports and labels are written."""


@dataclass
class StepOutcome:
    """How one step ended on one unit; ``data`` is JSON-safe and holds no secret (figures, key IDs, KCVs)."""

    step: str
    ok: bool
    seconds: float = 0.0
    detail: str = ""
    """One line for people, translated."""
    data: dict[str, Any] = field(default_factory=dict)
    error: NaiadError | None = None
    already_done: bool = False
    """True when the step was found done before (by :meth:`Step.done_before` or :meth:`Step.settle`): not run."""

    def as_dict(self) -> dict[str, Any]:
        """The form of ``naiad demo --json``'s steps, plus the data and the error."""
        return {
            "name": self.step,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "already_done": self.already_done,
            "data": self.data,
            "error": None if self.error is None else self.error.as_dict(),
        }


@dataclass
class UnitJob:
    """One unit's run of a recipe, as its steps see it."""

    serial: str
    resources: Resources
    run_id: int
    """The ledger's id of this unit's run of the recipe."""
    earlier: dict[str, StepOutcome] = field(default_factory=dict)
    """The outcomes of this run's steps so far, by step name (a resumed run's are read back from the ledger)."""

    @property
    def station(self) -> Station:
        return self.resources.station

    def reporter(self, step: str) -> Reporter:
        """A reporter of this unit's events for ``step``."""
        return Reporter(self.resources.listener, self.serial, step)


class Step(abc.ABC):
    """One step of a recipe, made once per batch with its checked settings and the station's resources."""

    name: ClassVar[str]
    label: ClassVar[str]
    """What the step does, for people (``N_``; shown translated by :meth:`title`)."""
    settings: ClassVar[tuple[Setting, ...]] = ()
    roles: ClassVar[tuple[str, ...]] = ()
    """The operator roles that may run it (empty: any logged-in operator)."""
    repeatable: ClassVar[bool] = True
    read_only: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset()
    """The :class:`Resources` fields the step cannot do without (its constructor refuses the batch without them):
    the command opens the key store, the platform's outbox... only when a step of the recipe needs it."""
    needs_authorised: ClassVar[bool] = False
    """True for a step that may only be done to a unit of the authorised inventory (keys, registration): a
    writing recipe holding one refuses any other unit at claim time, before any of its steps runs."""

    def __init__(self, settings: Mapping[str, Any], resources: Resources) -> None:
        """``settings`` are checked against :attr:`settings` and complete (defaults filled in).  Raise a typed
        error here to refuse the whole batch before any unit is touched (no key store, no outbox...)."""
        self.config = dict(settings)
        self.resources = resources

    @classmethod
    def title(cls) -> str:
        return _(cls.label)

    @abc.abstractmethod
    def run(self, job: UnitJob) -> StepOutcome:
        """Do the step on ``job``'s unit; a failure is an outcome with ``ok`` False and its typed ``error``
        (the pipeline turns anything raised into such an outcome too)."""


class OnceStep(Step):
    """A step that must never be done twice on a unit (payment keys, platform registrations): the pipeline asks
    :meth:`done_before` before running it, and :meth:`settle` when the ledger shows it started and never ended."""

    repeatable: ClassVar[bool] = False

    @abc.abstractmethod
    def done_before(self, job: UnitJob) -> StepOutcome | None:
        """Its outcome (``already_done`` True) when it was already done on this unit, by any run of any station;
        None when it was not."""

    @abc.abstractmethod
    def settle(self, job: UnitJob) -> StepOutcome | None:
        """What became of it after a crash or an unplug in the middle, found out from the unit, the ledger or the
        platform: its outcome when it was done; None when it certainly was not (the pipeline then runs it); a
        typed error raised when that cannot be known yet (the unit's run stops there, to be resumed later)."""


STEPS: dict[str, type[Step]] = {}
S = TypeVar("S", bound=type[Step])


def register(cls: S) -> S:
    """Class decorator: make ``cls`` a step recipes may name."""
    if cls.name in STEPS and STEPS[cls.name] is not cls:
        raise ValueError(f"two steps named {cls.name}")
    STEPS[cls.name] = cls
    return cls


def all_steps() -> dict[str, type[Step]]:
    """Every built-in step by name (importing :data:`STEP_MODULES` registers them)."""
    for module in STEP_MODULES:
        importlib.import_module(module)
    return dict(STEPS)


def needed(names: Iterable[str]) -> frozenset[str]:
    """The :class:`Resources` fields the steps named ``names`` need together (:attr:`Step.needs`)."""
    return frozenset().union(*(step_class(name).needs for name in names))


def step_class(name: str) -> type[Step]:
    steps = all_steps()
    if name not in steps:
        raise UnknownStep(name=name, known=", ".join(sorted(steps)))
    return steps[name]
