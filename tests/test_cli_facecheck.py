"""``naiad facecheck`` through click, on a simulated unit against a running sandbox platform.

One sandbox and one simulator serve the module; the unit is in the station app's inventory.  The station's
analyser and the unit's face-pay app are the scripted fakes of tests/facefakes.py (the fake unit gets its real
face token with the station's own key from the key store), so the command's shell is tested on its own: its
JSON, its table, its exit status, and careless input refused before the key store opens (its passphrase is
withheld there, so opening it would fail differently) and before anything reaches the platform.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_station import prepare_station
from click.testing import CliRunner, Result
from facebench import store_truth
from facefakes import FakeUnitApp, RecordingPresenter, ScriptedAnalyser

from camera.faces import Decision
from console.cli import cli
from console.composition import Wiring
from enrollment.client import PlatformClient
from enrollment.sandbox.server import Sandbox
from keys.store_software import SoftwareKeyStore, default_path
from provisioning import facepay_check
from provisioning.facepay_steps import STAGES
from simulator import launcher
from simulator.control import SimControl

PASSPHRASE = "facecheck-Secret-4417"
LABEL = "platform-test"
ROLES = {"root": "admin", "olga": "operator", "ivy": "installer", "cara": "custodian"}


@dataclass
class Bench:
    sandbox: Sandbox
    sim_dir: Path
    where: Path
    serial: str

    def trades(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.sandbox.base_url}/sandbox/trades", verify=str(self.where / "ca.pem"), timeout=10)
        answer.raise_for_status()
        return [t for t in answer.json() if t["serial"] == self.serial]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    where = tmp_path_factory.mktemp("bench")
    launcher.start_detached(where / "sim", 1, ["df2"])
    try:
        [serial] = [t["serial"] for t in SimControl(where / "sim").call("status")["terminals"]]
        with Sandbox.start(where / "sandbox.sqlite") as sandbox:
            (where / "ca.pem").write_text(sandbox.ca_certificate, encoding="utf-8")
            SimControl(where / "sim").call("platform", config=sandbox.terminal_config())
            store_truth(where / "sim", serial, "df2")  # calibrated, as the pipeline leaves a unit before this check
            yield Bench(sandbox, where / "sim", where, serial)
    finally:
        launcher.stop(where / "sim")


@dataclass
class Station:
    bench: Bench
    ledger: str
    config: Path
    tokens: dict[str, str]
    client: PlatformClient

    def naiad(self, *args: str, passphrase: str = PASSPHRASE, operator: str | None = "ivy", **env: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["--ledger", self.ledger, *args],
            input="",
            env={
                "NAIAD_LANG": "en",
                "NAIAD_OPERATOR": self.tokens[operator] if operator else "",
                "NAIAD_SIM": str(self.bench.sim_dir),
                "NAIAD_KEYSTORE": "software",
                "NAIAD_KEYSTORE_PASSPHRASE": passphrase,
                "NAIAD_PLATFORM_CONFIG": str(self.config),
                **env,
            },
        )

    def check(self, *args: str, **options: Any) -> tuple[Result, dict[str, Any]]:
        done = self.naiad("facecheck", "--device", self.bench.serial, *args, "--json", **options)
        assert "Traceback" not in done.output, done.output
        return done, json.loads(done.stdout)


@dataclass
class Seams:
    """What the command's check is given in place of the station's analyser and the unit's app."""

    analyser: ScriptedAnalyser
    unit: FakeUnitApp | None = None
    refuse: str | None = None
    presenter: RecordingPresenter = field(default_factory=RecordingPresenter)


@pytest.fixture
def station(bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Station]:
    """This test's ledger (an operator of each role, by token), platform configuration and key store (an RSA
    key the sandbox knows), and a client signing with that key; the unit registered in the inventory."""
    url, path, tokens = prepare_station(
        bench.sandbox, tmp_path, monkeypatch, passphrase=PASSPHRASE, label=LABEL, roles=ROLES
    )
    config = bench.sandbox.station_config(LABEL)
    store = SoftwareKeyStore(PASSPHRASE, default_path())
    client = PlatformClient(config, lambda data: store.sign(LABEL, data), attempts=2, sleep=lambda seconds: None)
    made = Station(bench, url, path, tokens, client)
    registered = made.naiad("register", "inventory", "--device", bench.serial, "--json", operator="olga")
    assert registered.exit_code == 0, registered.output
    yield made
    client.close()
    store.close()


@pytest.fixture
def seams(station: Station, monkeypatch: pytest.MonkeyPatch) -> Seams:
    """The check's analyser, unit app and presenter replaced by scripted fakes (the fake unit signs with the
    station's key), one frame set per check."""
    chosen = Seams(ScriptedAnalyser(Decision.LIVE))

    def unit_app(connection: Any) -> FakeUnitApp:
        chosen.unit = FakeUnitApp(station.client, station.bench.serial, chosen.refuse)
        return chosen.unit

    monkeypatch.setattr(facepay_check, "FRAME_SETS", 1)
    monkeypatch.setattr(facepay_check, "default_analyser", lambda config_path=None: chosen.analyser)
    monkeypatch.setattr(facepay_check, "default_unit_app", unit_app)
    monkeypatch.setattr(Wiring, "presenter", lambda self, ask=None: chosen.presenter)
    return chosen


def test_a_live_face_passes_with_the_documented_json_and_exit_status_0(
    station: Station, bench: Bench, seams: Seams
) -> None:
    done, answer = station.check()
    assert done.exit_code == 0, done.output
    assert answer["result"] == "pass" and answer["serial"] == bench.serial and answer["presentation"] == "live"
    assert [s["name"] for s in answer["stages"]] == list(STAGES) and all(s["ok"] for s in answer["stages"])
    assert {"name", "ok", "seconds", "detail"} == set(answer["stages"][0])
    assert answer["total_seconds"] > 0 and answer["refunded"] is True
    [trade] = [t for t in bench.trades() if t["trade_no"] == answer["trade_no"]]
    assert trade["refunded_amount"] == "0.01"
    assert seams.unit is not None and seams.unit.asked == 1

    shown = station.naiad("facecheck", "--device", bench.serial)
    assert shown.exit_code == 0, shown.output
    for text in ("Capturing frames", "Paying 0.01 with the face token", "Querying the refund", "refunded", "passed"):
        assert text in shown.output, shown.output


def test_no_face_fails_with_exit_status_1_and_no_trade(station: Station, bench: Bench, seams: Seams) -> None:
    seams.analyser = ScriptedAnalyser(Decision.NO_FACE)
    before = len(bench.trades())
    done, answer = station.check()
    assert done.exit_code == 1 and answer["result"] == "fail" and answer["trade_no"] is None
    assert answer["stages"][-1]["name"] == "detect" and answer["error"]["error"] == "StationRefusedFace"
    assert len(bench.trades()) == before


def test_an_attack_refused_by_the_station_and_the_unit_passes(station: Station, seams: Seams) -> None:
    """Each kind of attack is the check's own business (test_facecheck); the command hands on the one asked."""
    seams.analyser, seams.refuse, attack = ScriptedAnalyser(Decision.ATTACK), "not-live", "screen"
    done, answer = station.check("--attack", attack)
    assert done.exit_code == 0, done.output
    assert answer["presentation"] == attack and answer["trade_no"] is None
    assert seams.presenter.calls[0] == ("present", attack)
    assert [s["name"] for s in answer["stages"]] == ["capture", "detect", "liveness", "unit"]


def test_an_attack_the_unit_takes_fails_with_exit_status_1_and_says_what_to_do(station: Station, seams: Seams) -> None:
    seams.analyser = ScriptedAnalyser(Decision.ATTACK)
    done = station.naiad("facecheck", "--device", station.bench.serial, "--attack", "photo")
    assert done.exit_code == 1 and "failed" in done.output, done.output
    assert (
        "gave a face token for an attack (printed photo of a face)" in done.output
        and "Send the unit to repair" in done.output
    )


def refused(done: Result) -> str:
    """The error of a check refused before it started: the check's own --json shape, the error an object."""
    answer = json.loads(done.stdout)
    assert answer["result"] == "fail" and answer["stages"] == [] and answer["trade_no"] is None
    return str(answer["error"]["error"])


def test_careless_input_is_refused_before_the_key_store_opens(station: Station, seams: Seams, tmp_path: Path) -> None:
    wrong = "not-the-passphrase"
    unknown = station.naiad("facecheck", "--device", "NOSUCH123", "--json", passphrase=wrong)
    assert unknown.exit_code == 1 and refused(unknown) == "DeviceNotFound"
    custodian = station.naiad("facecheck", "--device", station.bench.serial, "--json", operator="cara")
    assert custodian.exit_code == 1 and refused(custodian) == "RolesRequired"
    nobody = station.naiad("facecheck", "--device", station.bench.serial, "--json", operator=None)
    assert nobody.exit_code == 1 and refused(nobody) == "NotLoggedIn"

    bare = tmp_path / "no-merchant.toml"
    text = station.config.read_text(encoding="utf-8")
    bare.write_text(text[: text.index("[test_merchant]")], encoding="utf-8")
    no_merchant = station.naiad(
        "facecheck", "--device", station.bench.serial, "--json", passphrase=wrong, NAIAD_PLATFORM_CONFIG=str(bare)
    )
    assert no_merchant.exit_code == 1 and refused(no_merchant) == "NoTestMerchant"

    for args in (
        ("facecheck",),
        ("facecheck", "--device", "X", "--calibration", "c.bin"),
        ("facecheck", "--from-images", "d", "--device", "X"),
        ("facecheck", "--device", "X", "--attack", "hologram"),
    ):
        done = station.naiad(*args)
        assert done.exit_code == 2 and "Traceback" not in done.output, (args, done.output)


# --- end to end: the simulator's scenes, the station's detector and liveness model, the unit's own app ----


def test_naiad_facecheck_passes_for_a_live_face_and_its_saved_frames_analyse_offline(
    station: Station, bench: Bench, tmp_path: Path
) -> None:
    frames = tmp_path / "frames"
    done, answer = station.check("--save-frames", str(frames))
    assert done.exit_code == 0, answer
    assert answer["result"] == "pass" and answer["refunded"] is True and answer["station"]["decision"] == "live"
    [trade] = [t for t in bench.trades() if t["trade_no"] == answer["trade_no"]]
    assert trade["amount"] == trade["refunded_amount"] == "0.01"

    saved = Path(answer["saved_frames"])  # each check's frames in a folder of their own
    assert saved.parent == frames
    offline = station.naiad("facecheck", "--from-images", str(saved), "--json", operator=None)
    assert offline.exit_code == 0, offline.output
    analysed = json.loads(offline.stdout)["frame_sets"]
    assert len(analysed) == 3 and [a["decision"] for a in analysed] == answer["station"]["decisions"]
    shown = station.naiad("facecheck", "--from-images", str(saved), operator=None)
    assert shown.exit_code == 0 and "live" in shown.output


@pytest.mark.parametrize("attack", ["photo", "screen", "mask"])
def test_naiad_facecheck_refuses_each_attack_at_the_station_and_the_unit(
    station: Station, bench: Bench, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facepay_check, "FRAME_SETS", 1)  # the live test judges three
    before = len(bench.trades())
    done, answer = station.check("--attack", attack)
    assert done.exit_code == 0, answer
    assert answer["station"]["decision"] == "attack" and answer["unit"]["result"] == "refused"
    assert answer["trade_no"] is None and len(bench.trades()) == before


def test_from_images_of_a_careless_folder_is_a_clear_error(station: Station, tmp_path: Path) -> None:
    missing = station.naiad("facecheck", "--from-images", str(tmp_path / "nowhere"), "--json", operator=None)
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert json.loads(missing.stdout)["error"]
    (tmp_path / "calibration.bin").write_bytes(b"not a calibration")
    bad = station.naiad(
        "facecheck", "--from-images", str(tmp_path), "--calibration", str(tmp_path / "calibration.bin"), "--json"
    )
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"] == "CalibrationBlobError"
