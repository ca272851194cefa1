"""``naiad provision`` through click on a demo world of two simulated units (console/demo_world.py).

Careless input and a wrong recipe are refused before anything is touched: the ledger's audit trail, the units'
runs and the units themselves stay as they were.  A recipe file of its own (flash and keys: quick, and a writing
recipe) runs on one unit, prints its JSON, and a second run of it says the unit is already done without giving
it a second key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from console.cli import cli
from console.demo_world import BDK_ID, BDK_LABEL, DemoWorld
from provisioning.ledger import Ledger

RECIPE = """\
name = "flash-and-keys"
description = "Flash the demo firmware and inject the demo BDK's keys"
read_only = false

[[step]]
name = "flash"
bundle = "{bundle}"

[[step]]
name = "inject"
bdk = "{bdk}"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    with DemoWorld(tmp_path_factory.mktemp("world"), 2, firmware_mib=1) as made:
        yield made


def naiad(world: DemoWorld, *args: str, role: str = "operator") -> Result:
    result = CliRunner().invoke(cli, list(args), input="", env={**world.env(role), "NAIAD_LANG": "en"})
    assert "Traceback" not in result.output, result.output
    return result


def recipe_file(folder: Path, world: DemoWorld, text: str = RECIPE) -> Path:
    """A recipe file whose bundle is named relative to the file's own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / world.bundle_path.name).write_bytes(world.bundle_path.read_bytes())
    path = folder / "recipe.toml"
    path.write_text(text.format(bundle=world.bundle_path.name, bdk=BDK_LABEL), encoding="utf-8")
    return path


def snapshot(world: DemoWorld) -> dict[str, Any]:
    """What a refused command must leave as it was: the audit trail's head, the units' runs, their state."""
    with Ledger.open(world.ledger_url) as ledger:
        head = ledger.head()
        runs = ledger.unit_runs()
    fields = ("mode", "active_slot", "boot_count", "secure_element")
    units = {t["serial"]: [t[f] for f in fields] for t in world.simulator("status")["terminals"]}
    return {"head": (head.entry_id, head.hash), "runs": len(runs), "units": units}


def test_refusals_touch_nothing(world: DemoWorld, tmp_path: Path) -> None:
    before = snapshot(world)
    serial = world.serials[0]
    bad_step = recipe_file(tmp_path / "bad-step", world, RECIPE.replace('name = "inject"', 'name = "injekt"'))
    bad_type = recipe_file(tmp_path / "bad-type", world, RECIPE.replace('bdk = "{bdk}"', "bdk = 7"))
    refusals: list[tuple[list[str], int, str]] = [
        (["--recipe", "no-such-recipe", "--all"], 2, "no-such-recipe"),
        (["--recipe", str(bad_step), "--all"], 2, "injekt"),
        (["--recipe", str(bad_type), "--all"], 2, "bdk"),
        (["--recipe", "distributor-bulk"], 2, "--device"),
        (["--recipe", "distributor-bulk", "--all", "--device", serial], 2, "--device"),
        (["--recipe", str(bad_step), "--device", "NOSUCHUNIT", *world.set_args("distributor-bulk")], 2, "injekt"),
        (
            ["--recipe", "distributor-bulk", "--device", "NOSUCHUNIT", *world.set_args("distributor-bulk")],
            1,
            "NOSUCHUNIT",
        ),
        (["--recipe", "distributor-bulk", "--all", "--set", "calibrate-views-16"], 2, "STEP.SETTING=VALUE"),
        (["--recipe", "installer-onsite", "--all", "--merchant", "2088000000000001"], 2, "--store"),
        (["--recipe", "installer-onsite", "--all", "--merchant-qr", "not a binding code"], 1, "binding code"),
    ]
    for args, status, shown in refusals:
        done = naiad(world, "provision", *args)
        assert done.exit_code == status, (args, done.output)
        assert shown in done.output, (args, done.output)
    line = next(n for n, text in enumerate(bad_step.read_text().splitlines(), 1) if "injekt" in text)
    assert str(line) in naiad(world, "provision", "--recipe", str(bad_step), "--all").output
    assert snapshot(world) == before


def test_provision_then_already_done(world: DemoWorld, tmp_path: Path) -> None:
    serial = world.serials[1]
    recipe = recipe_file(tmp_path / "recipe", world)
    reports = tmp_path / "reports"
    first = naiad(world, "provision", "--recipe", str(recipe), "--device", serial, "--reports", str(reports), "--json")
    assert first.exit_code == 0, first.output
    batch = json.loads(first.stdout)
    assert batch["reports"] == str(reports)
    [unit] = batch["units"]
    assert unit["serial"] == serial and unit["name"] == "flash-and-keys" and unit["result"] == "succeeded"
    assert [s["name"] for s in unit["steps"]] == ["flash", "inject"]
    assert all(s["ok"] for s in unit["steps"])
    keys = unit["steps"][1]["data"]
    assert keys["initial_key_id"].upper().startswith(BDK_ID.hex().upper())
    assert len(bytes.fromhex(keys["kcv"])) >= 3
    assert any(reports.iterdir()), "the batch report was not written"
    assert batch["report_error"] is None and batch["report_files"] and batch["ok"] is True

    again = naiad(world, "provision", "--recipe", str(recipe), "--device", serial, "--reports", str(tmp_path / "r2"))
    assert again.exit_code == 0, again.output
    assert serial in again.stdout and "already done" in again.stdout
    assert keys["initial_key_id"] in again.stdout  # the table shows the key ID the unit was given the first time
    assert f"Reports: {tmp_path / 'r2'}" in again.stdout
    assert "Everything adds up." in again.stdout  # the batch's reconciliation with the inventory, and its verdict
    with Ledger.open(world.ledger_url) as ledger:
        runs = [r for r in ledger.unit_runs(serial) if r.recipe == "flash-and-keys"]
        injected = [s for s in ledger.unit_steps(serial) if s.name == "inject" and s.status == "succeeded"]
    assert len(injected) == 1, injected
    assert [r.status for r in runs] == ["succeeded"]  # the second run made no run of its own


def test_a_failed_unit_exits_1_with_its_problem_and_remedy(world: DemoWorld, tmp_path: Path) -> None:
    """A unit taken out of the authorised inventory is refused before any step (a recipe that keys it): exit 1,
    the table says it failed, the problem and what to do are under it, and the reconciliation's verdict after;
    the JSON says the same."""
    serial = world.serials[0]
    with world.ledger() as ledger:
        ledger.as_operator("demo-admin").inventory_remove(serial)
        steps_before = len(ledger.unit_steps(serial))
    recipe = recipe_file(tmp_path / "recipe", world)
    shown = naiad(world, "provision", "--recipe", str(recipe), "--device", serial, "--reports", str(tmp_path / "r"))
    assert shown.exit_code == 1, shown.output
    row = next(line for line in shown.stdout.splitlines() if serial in line)
    assert "failed" in row, shown.stdout
    problem = next(line for line in shown.stdout.splitlines() if line.startswith(f"{serial}: "))
    assert "not in the authorised inventory" in problem and "naiad keys inventory add" in problem, shown.stdout
    assert "Report the findings to the security officer." in shown.stdout
    with world.ledger() as ledger:
        assert len(ledger.unit_steps(serial)) == steps_before  # no step ran: nothing flashed, nothing keyed

    again = naiad(world, "provision", "--recipe", str(recipe), "--device", serial, "--json")
    assert again.exit_code == 1, again.output
    [unit] = json.loads(again.stdout)["units"]
    assert unit["result"] == "failed" and unit["error"]["error"] == "UnitNotAuthorised" and unit["error"]["remedy"]
    assert unit["steps"] == []


def test_no_secret_in_the_world_files(world: DemoWorld) -> None:
    """The key store's passphrase and the operators' session tokens are in no file of the world (after the
    other tests ran their commands in it): only the environment of a child process carries them."""
    secrets = [world.env(role)[name] for role in ("operator", "installer") for name in ("NAIAD_OPERATOR",)]
    secrets.append(world.env()["NAIAD_KEYSTORE_PASSPHRASE"])
    for path in world.root.rglob("*"):
        if path.is_file() and path.stat().st_size < 64 << 20:
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path


def test_recipe_bars_count_steps_and_name_the_step_in_progress() -> None:
    """A unit's bar fills by the pipeline's steps, names the step with its own phase beside it, ignores the
    step's byte counts and its end, and is marked only when the pipeline ends the unit."""
    from io import StringIO

    from rich.console import Console
    from rich.progress import Progress

    from console.cli_progress import RecipeBars
    from provisioning.steps import StepOutcome
    from terminal.events import PhaseStarted, Progressed, StepFinished

    @dataclass
    class Ended:
        ok: bool
        result: str
        error: None = None

        def as_dict(self) -> dict[str, Any]:
            return {"result": self.result, "steps": []}

    with Progress(console=Console(file=StringIO(), force_terminal=False)) as progress:
        bars = RecipeBars(progress, "distributor-bulk", outcome=lambda result: result.as_dict()["result"])
        bars.phase_started(PhaseStarted("U1", "distributor-bulk", "flash", "Flash the firmware"))
        bars.progressed(Progressed("U1", "distributor-bulk", "flash", 0, 6, counts="items"))
        bars.phase_started(PhaseStarted("U1", "flash", "write", "writing system"))
        bars.progressed(Progressed("U1", "flash", "write", 4096, 8192))
        [task] = progress.tasks
        assert "Flash the firmware · writing system" in task.description
        assert (task.completed, task.total, task.fields["counts"]) == (0, 6, "items")
        bars.finished(StepFinished("U1", "flash", StepOutcome("flash", True)))  # the step's own end
        assert "✓" not in progress.tasks[0].description
        bars.progressed(Progressed("U1", "distributor-bulk", "inject", 1, 6, counts="items"))
        bars.finished(StepFinished("U1", "distributor-bulk", Ended(True, "succeeded")))
        [task] = progress.tasks
        assert "✓" in task.description and "succeeded" in task.description
        assert task.completed == task.total == 6


READ_ONLY_RECIPE = """\
name = "unit-info-only"
description = "Read the unit's identity"
read_only = true

[[step]]
name = "unit-info"
"""


def test_a_read_only_recipe_needs_no_key_store(world: DemoWorld, tmp_path: Path) -> None:
    """support-diagnose needs neither the key store nor the platform, so a support engineer without the
    passphrase runs it; a writing recipe whose passphrase prompt gets no answer is refused with a typed error and
    touches nothing."""
    from provisioning.recipes import load_recipe
    from provisioning.steps import needed

    assert needed(s.name for s in load_recipe("support-diagnose", {}).steps) == frozenset()
    assert {"store", "outbox"} <= needed(
        s.name for s in load_recipe("distributor-bulk", world.overrides("distributor-bulk")).steps
    )
    env = {**world.env("support"), "NAIAD_LANG": "en"}
    del env["NAIAD_KEYSTORE_PASSPHRASE"]
    path = tmp_path / "read-only.toml"
    path.write_text(READ_ONLY_RECIPE, encoding="utf-8")
    args = ["provision", "--recipe", str(path), "--device", world.serials[0], "--reports", str(tmp_path / "r")]
    done = CliRunner().invoke(cli, args, input="", env=env)
    assert done.exit_code == 0, done.output
    assert "passphrase" not in done.output.lower() and "Aborted" not in done.output, done.output
    assert "succeeded" in done.stdout, done.output

    before = snapshot(world)
    env = {**world.env("operator"), "NAIAD_LANG": "en"}
    del env["NAIAD_KEYSTORE_PASSPHRASE"]
    recipe = recipe_file(tmp_path / "writing", world)
    refused = CliRunner().invoke(cli, ["provision", "--recipe", str(recipe), "--all"], input="", env=env)
    assert refused.exit_code == 1, refused.output
    assert "The key store was not opened" in refused.output and "NAIAD_KEYSTORE_PASSPHRASE" in refused.output
    assert "Aborted!" not in refused.output and "Traceback" not in refused.output
    assert snapshot(world) == before
