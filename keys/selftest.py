"""The cryptographic self-test: every known answer of the core (DUKPT, TR-31, KCV, the key session), run first.

``naiad keys selftest`` shows the report; :func:`require_selftest` is the gate injection is to call (issue 7
point 6, not built yet) so that it refuses to start when a test fails.  A source module that cannot be
imported counts as a failed test, never as a skipped one: a station missing half its cryptography must
not inject.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from .errors import SelftestFailed
from .kat import KnownAnswer

LOG = logging.getLogger(__name__)

KNOWN_ANSWER_SOURCES = ("keys.dukpt", "keys.tr31", "keys.kcv", "keys.session")
"""Modules whose ``known_answers()`` the self-test runs, imported when it runs."""


@dataclass(frozen=True)
class KnownAnswerResult:
    name: str
    source: str
    passed: bool


@dataclass(frozen=True)
class SelftestReport:
    results: tuple[KnownAnswerResult, ...]

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[KnownAnswerResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def raise_if_failed(self) -> None:
        """:class:`SelftestFailed` naming every failing test, when one fails (or when there were none)."""
        if not self.passed:
            names = [r.name for r in self.failed] or [", ".join(KNOWN_ANSWER_SOURCES)]
            raise SelftestFailed(failed="; ".join(names))


def _passes(answer: KnownAnswer) -> bool:
    try:
        return answer.run() is True
    except Exception:  # a test that breaks has failed; its text may not be shown (it could hold key bytes)
        LOG.error("Known-answer test %r raised instead of answering", answer.name)
        return False


def _answers(module_name: str) -> list[KnownAnswer]:
    """The known answers of ``module_name``; one failing entry standing for all of them when it will not load."""
    try:
        module = importlib.import_module(module_name)
        answers: list[KnownAnswer] = module.known_answers()
    except Exception:
        LOG.error("The known answers of %s could not be loaded", module_name)
        return [KnownAnswer(f"{module_name}.known_answers()", module_name, lambda: False)]
    return answers


def run_selftest() -> SelftestReport:
    """Run every known-answer test of every source; never raises on a wrong answer."""
    results = [
        KnownAnswerResult(answer.name, answer.source, _passes(answer))
        for module_name in KNOWN_ANSWER_SOURCES
        for answer in _answers(module_name)
    ]
    for result in results:
        if not result.passed:
            LOG.error("Known-answer test failed: %s (%s)", result.name, result.source)
    return SelftestReport(tuple(results))


def require_selftest() -> SelftestReport:
    """The report when every test passes; otherwise :class:`SelftestFailed` naming the failing tests."""
    report = run_selftest()
    report.raise_if_failed()
    return report
