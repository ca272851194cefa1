"""``naiad calibrate`` and ``naiad depth-quality`` through click: on simulated units and on a rendered folder.

The folder is written by ``naiad sim render-calibration-set`` (no simulator needed); the units' tests prepare a
ledger with operators (as tests/test_cli_inject.py does) and log in with ``--operator NAME`` and a typed password.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from camerabench import INSTALLER, OPERATOR, CameraBench
from click.testing import CliRunner, Result
from conftest import SimHandle

from console.cli import cli
from provisioning import operators as ops
from simulator.camera import jig
from terminal.camera import Board

PASSWORDS = {OPERATOR.operator: "otto-Secret-5521", INSTALLER.operator: "ina-Secret-7731"}
BOARD = Board().to_dict()  # the jig's board, as a board file holds it


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "SCRYPT_N", 2**8)


def naiad(*args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, env={"NAIAD_LANG": "en", "NAIAD_OPERATOR": ""})


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A calibration set of 16 views rendered by ``naiad sim render-calibration-set`` (once for the module)."""
    out = tmp_path_factory.mktemp("set") / "views"
    made = naiad("sim", "render-calibration-set", "--out", str(out), "--views", "16", "--seed", "7")
    assert made.exit_code == 0, made.output
    return out


def test_from_images_prints_the_documented_json_close_to_the_truth(rendered: Path) -> None:
    run = naiad("calibrate", "--from-images", str(rendered), "--board", str(rendered / "board.json"), "--json")
    assert run.exit_code == 0, run.output
    answer = json.loads(run.stdout)
    assert set(answer) == {"ir", "rgb", "rgb_from_ir", "views_used"}
    truth = json.loads((rendered / "truth.json").read_text(encoding="utf-8"))
    for name in ("ir", "rgb"):
        camera = answer[name]
        assert {"K", "dist", "rms_px", "std"} <= set(camera)
        assert len(camera["K"]) == 3 and all(len(row) == 3 for row in camera["K"])
        assert camera["K"][0][0] == pytest.approx(truth[name]["K"][0][0], rel=0.005)
        assert camera["K"][0][2] == pytest.approx(truth[name]["K"][0][2], abs=2.0)
        assert camera["rms_px"] < 0.5 and camera["std"]["fx"] > 0
    motion = answer["rgb_from_ir"]
    assert {"R", "t_m", "rms_px"} <= set(motion) and len(motion["t_m"]) == 3
    for got, want in zip(motion["t_m"], truth["rgb_from_ir"]["t_m"], strict=True):
        assert got == pytest.approx(want, abs=0.001)
    assert 12 <= answer["views_used"] <= 16

    shown = naiad("calibrate", "--from-images", str(rendered), "--board", str(rendered / "board.json"))
    assert shown.exit_code == 0, shown.output
    assert "IR" in shown.output and "RGB" in shown.output and "Views used" in shown.output


def test_from_images_of_a_missing_folder_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    board = tmp_path / "board.json"
    board.write_text(json.dumps(BOARD), encoding="utf-8")
    missing = tmp_path / "nowhere"
    run = naiad("calibrate", "--from-images", str(missing), "--board", str(board), "--json")
    assert run.exit_code == 1, run.output
    answer = json.loads(run.stdout)
    assert answer["error"] and str(missing) in answer["message"] and answer["remedy"]
    assert not missing.exists()
    _no_traceback(run)


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        ({**BOARD, "dictionary": "DICT_4X4_50"}, "BoardNotFound"),  # a real board file, not the board shown
        ({**BOARD, "squares_x": "eleven"}, "BoardFileError"),
        ("not json", "BoardFileError"),
    ],
)
def test_from_images_with_a_wrong_board_file_is_a_clear_error(
    rendered: Path, tmp_path: Path, board: Any, expected: str
) -> None:
    path = tmp_path / "board.json"
    path.write_text(board if isinstance(board, str) else json.dumps(board), encoding="utf-8")
    before = sorted(p.name for p in rendered.iterdir())
    run = naiad("calibrate", "--from-images", str(rendered), "--board", str(path), "--json")
    assert run.exit_code == 1, run.output
    answer = json.loads(run.stdout)
    assert answer["error"] == expected and answer["remedy"], answer
    assert sorted(p.name for p in rendered.iterdir()) == before  # nothing written beside the images
    _no_traceback(run)


def test_from_images_refuses_units_and_needs_a_board(rendered: Path) -> None:
    no_board = naiad("calibrate", "--from-images", str(rendered))
    assert no_board.exit_code == 2 and "--board" in no_board.output
    both = naiad("calibrate", "--from-images", str(rendered), "--board", "b.json", "--device", "DF2X")
    assert both.exit_code == 2 and "--from-images" in both.output
    nothing = naiad("calibrate")
    assert nothing.exit_code == 2 and "--device" in nothing.output


# --- units -------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    sim: SimHandle
    url: str

    def naiad(self, *args: str, operator: str | None = OPERATOR.operator) -> Result:
        login = ["--operator", operator] if operator else []
        return naiad("--ledger", self.url, *login, *args, stdin=f"{PASSWORDS.get(operator or '', '')}\n")


@pytest.fixture
def units(sim_factory: Any, tmp_path: Path) -> Iterator[Any]:
    """``units(n)``: a simulator of ``n`` df2 units and a ledger with otto (operator) and ina (installer)."""

    def prepare(terminals: int) -> Bench:
        sim: SimHandle = sim_factory(terminals=terminals, models=["df2"])
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        bench = CameraBench.open(sim.state_dir, url)
        try:
            for name, password in PASSWORDS.items():
                bench.ledger.as_operator("root").set_password(name, ops.hash_password(password))
            for serial in sim.serials():
                bench.store_truth(serial, sim.call("truth", serial=serial))
        finally:
            bench.close()
        return Bench(sim, url)

    yield prepare


def test_field_check_of_every_unit_prints_a_verdict_each_and_fails_a_drifted_one(units: Any) -> None:
    bench: Bench = units(2)
    good, dropped = bench.sim.serials()
    bench.sim.call("faults", serial=dropped, camera_drift=True)
    run = bench.naiad("calibrate", "--all", "--mode", "check", "--json", operator=INSTALLER.operator)
    assert run.exit_code == 1, run.output
    answer = json.loads(run.stdout)
    assert answer["mode"] == "check" and answer["ok"] is False
    verdicts = {r["serial"]: r["verdict"] for r in answer["results"]}
    assert verdicts == {good: "ok", dropped: "recalibrate"}

    table = bench.naiad("calibrate", "--device", good, "--mode", "check", operator=INSTALLER.operator)
    assert table.exit_code == 0, table.output
    assert "Camera field check" in table.output and good in table.output
    _no_traceback(table)


def test_calibrate_without_an_operator_or_with_another_role_is_refused_and_writes_nothing(units: Any) -> None:
    bench: Bench = units(1)
    [serial] = bench.sim.serials()
    anonymous = bench.naiad("calibrate", "--device", serial, "--json", operator=None)
    assert anonymous.exit_code == 1 and "logged-in operator" in json.loads(anonymous.stdout)["message"]
    installer = bench.naiad("calibrate", "--device", serial, operator=INSTALLER.operator)
    assert installer.exit_code == 1 and "operator role" in installer.output, installer.output
    for result in (anonymous, installer):
        _no_traceback(result)
    with CameraBench.open(bench.sim.state_dir, bench.url) as opened:
        assert opened.ledger.calibrations(serial) == [] and opened.ledger.operations(serial) == []


def test_calibrate_all_with_no_unit_in_run_mode_is_a_clear_error(units: Any) -> None:
    bench: Bench = units(1)
    [serial] = bench.sim.serials()
    bench.sim.call("unplug", serial=serial)
    run = bench.naiad("calibrate", "--all", "--json")
    assert run.exit_code == 1, run.output
    answer = json.loads(run.stdout)
    assert answer["error"] == "NoUnitsSelected" and "--device" in answer["remedy"]
    _no_traceback(run)


def test_full_calibration_of_a_unit_through_the_cli_writes_and_records_it(
    units: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench: Bench = units(1)
    monkeypatch.setattr(jig, "JIG_POSES", 12)  # the simulator's jig presents its first 12 poses; the station aims more
    [serial] = bench.sim.serials()
    run = bench.naiad("calibrate", "--device", serial, "--json")
    assert run.exit_code == 0, run.output
    [result] = json.loads(run.stdout)["results"]
    assert result["ok"] and len(result["checksum"]) == 64 and result["calibration"]["views_used"] >= 12
    check = bench.naiad("calibrate", "--device", serial, "--mode", "check", "--json")
    assert check.exit_code == 0, check.output
    [checked] = json.loads(check.stdout)["results"]
    assert checked["verdict"] == "ok" and checked["checksum"] == result["checksum"]


def test_depth_quality_prints_each_distance_and_passes(units: Any) -> None:
    bench: Bench = units(1)
    [serial] = bench.sim.serials()
    run = bench.naiad("depth-quality", serial, "--distance", "0.5", "--distance", "0.8", "--json")
    assert run.exit_code == 0, run.output
    answer = json.loads(run.stdout)
    assert answer["ok"] and {"fill_rate.0.5m", "plane_rms_pct.0.8m"} <= set(answer["figures"])
    table = bench.naiad("depth-quality", serial, "--distance", "0.5", "--distance", "0.8")
    assert table.exit_code == 0 and "Depth quality of" in table.output and "0.50 m" in table.output, table.output
    assert [run["distance_m"] for run in answer["depth"]] == [0.5, 0.8]


def test_depth_quality_at_one_distance_is_refused(units: Any) -> None:
    """R3-15: two distances or more."""
    bench: Bench = units(1)
    [serial] = bench.sim.serials()
    run = bench.naiad("depth-quality", serial, "--distance", "0.5", "--json")
    assert run.exit_code == 1 and json.loads(run.stdout)["error"] == "TooFewDistances", run.output


def test_calibrate_all_names_the_units_it_left_out_and_fails(units: Any) -> None:
    """R3-3: a unit in its bootloader used to be dropped from --all with ok true and exit status 0."""
    bench: Bench = units(2)
    here, away = bench.sim.serials()
    bench.sim.call("reboot", serial=away, mode="bootloader")
    deadline = time.monotonic() + 30
    while bench.sim.terminal(away)["fastboot_tcp_port"] is None:
        assert time.monotonic() < deadline, "the unit did not reach its bootloader"
        time.sleep(0.05)
    run = bench.naiad("calibrate", "--all", "--mode", "check", "--json", operator=INSTALLER.operator)
    assert run.exit_code == 1, run.output
    answer = json.loads(run.stdout)
    assert answer["ok"] is False and [r["serial"] for r in answer["results"]] == [here]
    assert answer["results"][0]["ok"]
    [left] = answer["skipped"]
    assert left["serial"] == away and left["mode"] == "bootloader" and left["reason"]


def test_a_check_prints_its_verdict_translated_and_every_finding(units: Any) -> None:
    """R3-8, R3-2: the CLI printed "rgb-focus" untranslated and no findings."""
    bench: Bench = units(1)
    [serial] = bench.sim.serials()
    bench.sim.call("faults", serial=serial, dead_projector=True, rgb_defocus=True)
    zh = bench.naiad("--lang", "zh_CN", "calibrate", "--device", serial, "--mode", "check", operator=INSTALLER.operator)
    assert zh.exit_code == 1 and "红外投射器失效" in zh.output, zh.output  # the verdict label, in Chinese
    run = bench.naiad("--lang", "en", "calibrate", "--device", serial, "--mode", "check", operator=INSTALLER.operator)
    assert "IR projector dead" in run.output, run.output
    assert "projector dots" in run.output and "RGB image is blurred" in run.output
    answer = json.loads(
        bench.naiad("calibrate", "--device", serial, "--mode", "check", "--json", operator=INSTALLER.operator).stdout
    )
    assert len(answer["results"][0]["findings"]) >= 2


def test_wall_goes_with_check_mode_and_distance_with_wall() -> None:
    for args in (["--wall"], ["--mode", "full", "--wall"], ["--mode", "check", "--distance", "0.5"]):
        run = naiad("calibrate", "--device", "DF2A00001", *args)
        assert run.exit_code == 2 and "--wall" in run.output, (args, run.output)
