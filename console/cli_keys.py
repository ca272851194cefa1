"""``naiad keys``: payment keys.  ``naiad keys selftest [--json]`` runs every known-answer test of the core.

Presentation only: :mod:`keys.selftest` decides; this module draws the table (or JSON) and exits 1 with the
translated error and its remedy when a test fails.
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from i18n import N_, _
from keys.errors import SelftestFailed
from keys.selftest import SelftestReport, run_selftest

from .cli_common import Group, emit_json, json_option, out, reported, table


@click.group("keys", cls=Group, help=N_("Payment keys: the cryptographic self-test."))
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
