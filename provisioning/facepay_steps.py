"""What the face-pay check shares: its step and stage names, the presenter seam, and its result.

:mod:`provisioning.facepay_check` runs the check; this module holds its vocabulary so the console's page and the
CLI can name stages without loading the procedure.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from camera.faces import LIVE
from i18n import N_, _
from terminal.errors import NaiadError

FACEPAY_STEP = "face-pay-check"
"""The event stream's step of a face-pay check, and its ledger operation."""
ROLES = ("installer", "operator", "support")
"""Roles that may run a face-pay check (it takes and refunds a 0.01 test payment)."""

STAGES = ("capture", "detect", "liveness", "unit", "pay", "query", "refund", "refund-query")
"""The check's stages in order, as named in ``--json`` and by the views.  ``unit``: the unit's own face-pay app
opens a face session, captures, decides liveness itself and returns a face token."""

STAGE_LABELS: dict[str, str] = {
    "capture": N_("Capturing frames"),
    "detect": N_("Finding the face"),
    "liveness": N_("Checking liveness"),
    "unit": N_("The unit's face-pay app"),
    "pay": N_("Paying 0.01 with the face token"),
    "query": N_("Querying the trade"),
    "refund": N_("Refunding the payment"),
    "refund-query": N_("Querying the refund"),
}

TEST_AMOUNT = "0.01"


def stage_label(name: str) -> str:
    return _(STAGE_LABELS[name])


class Presenter(abc.ABC):
    """Who or what is in front of a unit's camera for the check: a person, or an attack instrument."""

    @abc.abstractmethod
    def present(self, serial: str, presentation: str = LIVE) -> None:
        """Put ``presentation`` (``camera.faces.PRESENTATIONS``: a live face or an attack) before the unit."""

    @abc.abstractmethod
    def release(self, serial: str) -> None:
        """Take it away again."""


@dataclass(frozen=True)
class Stage:
    """One stage as it ended: ``detail`` is translated text for people (never a token or a key)."""

    name: str
    ok: bool
    seconds: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass(frozen=True)
class FacePayCheckResult:
    """The whole check of one unit.  With an attack, ``passed`` means the attack was refused by the station and
    by the unit and no trade was made."""

    serial: str
    presentation: str  # camera.faces.PRESENTATIONS
    passed: bool
    stages: tuple[Stage, ...]
    total_seconds: float
    trade_no: str | None = None
    refunded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the analysis (FaceAnalysis.as_dict), liveness score ...
    error: NaiadError | None = None  # what stopped it, when a typed error did

    @property
    def ok(self) -> bool:  # terminal.events.StepResult
        return self.passed

    def as_dict(self) -> dict[str, Any]:
        """The ``naiad facecheck --json`` document (the issue's contract plus the serial and presentation)."""
        return {
            "result": "pass" if self.passed else "fail",
            "serial": self.serial,
            "presentation": self.presentation,
            "stages": [s.as_dict() for s in self.stages],
            "total_seconds": round(self.total_seconds, 3),
            "trade_no": self.trade_no,
            "refunded": self.refunded,
            **self.extra,
        }
