"""FACE_PAY_TEST end to end: a simulated unit's face-pay app against a running sandbox, and the host's checks of
a hostile unit's answers.  One sandbox and one simulator for the module; each test sets the scene it needs."""

from __future__ import annotations

import json
import math
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_device_endpoint
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from hostile_unit import genuine, reply_wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_station import SUPPLIER_ID, Station
from test_client_hostile import TIMEOUT, HostileUnit
from test_device_endpoint import Clock

from console.cli_root import cli
from enrollment.gateway import Method
from enrollment.sandbox.seed import TERMINAL_APP_ID, TEST_MERCHANT
from enrollment.sandbox.server import Faults, Sandbox
from simulator import launcher
from simulator.camera.render import Capture, render
from simulator.camera.service import DEFAULT_IR_US, OWN_IR_US, OwnCapture
from simulator.camera.truth import draw_truth, serial_rng
from simulator.control import SimControl, SimulatorCommandFailed
from simulator.face.heads import HELD_OUT_IDENTITIES
from simulator.face.scene import FaceScene, random_face_scene
from simulator.face_pay import FoundFace, Verdict, _inner, assess, find_faces
from simulator.face_pay_platform import PlatformAccess, PlatformStore, Unreachable, call
from terminal.client import ManagementClient
from terminal.errors import MalformedReply, RemoteError, UnitGone, UnitTimeout
from terminal.face_pay import FACE_PAY_TIMEOUT, FacePayUnit, UnitFaceReply
from terminal.framing import Frame
from terminal.models import model_by_id
from terminal.protocol import MessageType, Payload

pytestmark = pytest.mark.slow(seconds=40)  # the unit's face-pay app over many scenes: about 40 s

MERCHANT, STORE = TEST_MERCHANT
clock = test_device_endpoint.clock  # the fixture: the client on a virtual clock


class World:
    """The module's sandbox, its station and a simulator with one registered unit."""

    def __init__(self, sandbox: Sandbox, state: Path, station: Station) -> None:
        self.sandbox, self.state, self.station = sandbox, state, station
        self.control = SimControl(state)
        self.serial: str = self.control.call("status")["terminals"][0]["serial"]

    def pty(self) -> str:
        terminal = self.control.call("status")["terminals"][0]
        return f"serial:{terminal['pty']}"

    def ask(self, scene: dict[str, Any], store: str = STORE) -> UnitFaceReply:
        self.control.call("scene", serial=self.serial, scene=scene)
        with ManagementClient(self.pty(), expected_serial=self.serial) as client:
            return FacePayUnit(client).test_transaction(MERCHANT, store)

    def configure(self) -> None:
        self.control.call("platform", config=self.sandbox.terminal_config())

    def log(self) -> str:
        return (self.state / "units" / self.serial / "logs" / "system.log").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("facepay")
    with Sandbox.start(root / "platform.db") as sandbox:
        state = root / "sim"
        launcher.start_detached(state, 1, ["df2"])
        station = Station(sandbox, root)
        try:
            found = World(sandbox, state, station)
            biz = {
                "out_request_no": "reg-1",
                "supplier_id": SUPPLIER_ID,
                "devices": [{"serial": found.serial, "model": "df2"}],
            }
            assert station.call(Method.INVENTORY_REGISTER, biz)["code"] == "10000"
            found.configure()
            yield found
        finally:
            station.close()
            if SimControl(state).running():
                launcher.stop(state)


@pytest.fixture
def configured(world: World) -> Iterator[World]:
    """The world with the platform access given and no sandbox faults; a test that takes the access away gives
    it back (``given_back``)."""
    world.sandbox.faults = Faults()
    yield world
    world.sandbox.faults = Faults()


@pytest.fixture
def given_back(configured: World) -> Iterator[World]:
    """The configured world, its access given again after the test (which takes it away)."""
    yield configured
    configured.configure()


# -- a live face pays -------------------------------------------------------------------------------------
def test_a_live_face_gives_a_token_the_owner_pays_with_at_the_test_merchant(configured: World) -> None:
    reply = configured.ask({"kind": "face"})
    assert reply.has_token and reply.ftoken and reply.session_id and reply.frame_set
    assert reply.liveness_score is not None and reply.liveness_score >= 0.5
    biz = {
        "out_trade_no": f"unit-{reply.session_id}",
        "scene": "face",
        "auth_code": reply.ftoken,
        "total_amount": "0.01",
        "subject": "face-pay check",
        "merchant_id": MERCHANT,
        "store_id": STORE,
        "serial": configured.serial,
    }
    paid = configured.station.call(Method.TRADE_PAY, biz)
    assert (paid["code"], paid["trade_status"], paid["buyer_logon_id"]) == ("10000", "TRADE_SUCCESS", "138****0001")
    assert reply.ftoken not in configured.log()
    assert reply.ftoken not in (configured.state / "sim.log").read_text(encoding="utf-8")


@pytest.mark.parametrize("attack", ["photo", "screen", "mask"])
def test_an_attack_is_refused_by_the_unit(configured: World, attack: str) -> None:
    reply = configured.ask({"kind": attack})
    assert (reply.result, reply.reason, reply.ftoken) == ("refused", "not-live", None)
    assert reply.liveness_score is not None and reply.liveness_score < 0.5


def test_a_live_face_is_live_whatever_the_station_left_of_the_camera(configured: World) -> None:
    configured.control.call("scene", serial=configured.serial, scene={"kind": "face"})
    with ManagementClient(configured.pty(), expected_serial=configured.serial) as client:
        client.request(MessageType.CAMERA_PROJECTOR, {"on": False})
        client.request(MessageType.CAMERA_EXPOSURE, {"ir_us": 8000})
        try:
            reply = FacePayUnit(client).test_transaction(MERCHANT, STORE)
            left = client.request(MessageType.CAMERA_PROJECTOR, {}), client.request(MessageType.CAMERA_EXPOSURE, {})
        finally:
            client.request(MessageType.CAMERA_PROJECTOR, {"on": True})
            client.request(MessageType.CAMERA_EXPOSURE, {"ir_us": DEFAULT_IR_US})
    assert reply.has_token, reply.detail
    assert (left[0]["on"], left[1]["ir_us"]) == (False, 8000)  # the station's settings stay its own


def test_a_platform_dripping_its_reply_is_cut_off_at_the_calls_deadline(tmp_path: Path) -> None:
    """Every byte comes well within requests' read timeout: only a deadline over the whole exchange ends it."""
    dripped = 40
    with socket.create_server(("127.0.0.1", 0)) as server:
        hung_up = threading.Event()

        def drip() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % dripped)
                try:
                    for _ in range(dripped):
                        time.sleep(0.05)
                        conn.sendall(b"x")
                except OSError:
                    hung_up.set()

        threading.Thread(target=drip, daemon=True).start()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        access = PlatformAccess(
            f"http://127.0.0.1:{server.getsockname()[1]}/gateway", "app", key.public_key(), key, tmp_path / "ca"
        )
        with pytest.raises(Unreachable):  # not the whole (40-byte, not gateway) reply it would read in 2 s
            call(access, Method.FACE_SESSION_INITIALIZE, {"serial": "X"}, time.monotonic() + 0.5)
        assert hung_up.wait(10)  # the worker left behind stopped reading too


# -- the unit's liveness over varied scenes (no sandbox: its detector and liveness on rendered frames) -----
DF2 = model_by_id("df2")
TRUTH = draw_truth(DF2, serial_rng("DF2FACEPAY01", "camera-truth"))
OWN = Capture(depth_range_mm=DF2.camera.depth_range_mm, ir_gain=OWN_IR_US / DEFAULT_IR_US)


def judged(scene: FaceScene, rng: np.random.Generator) -> Verdict:
    shot = OwnCapture(1, render(TRUTH, scene, OWN, rng, DF2.camera.speckle_dots), TRUTH, scene, OWN)
    faces = find_faces(shot)
    assert len(faces) == 1
    return assess(shot, faces[0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_bent_print_held_tilted_is_not_live(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for bend, pitch, yaw in [(5.0, -15.0, 0.0), (10.0, -10.0, 0.0), (7.5, 12.0, 10.0), (8.0, -12.0, -15.0)]:
        scene = FaceScene(
            "photo",
            identity=int(rng.integers(0, 4)),
            distance_m=float(rng.uniform(0.35, 0.8)),
            bend=bend,
            pitch_deg=pitch,
            yaw_deg=yaw,
            offset_m=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.03, 0.03))),
        )
        verdict = judged(scene, rng)
        assert not verdict.live, (scene, verdict)


@pytest.mark.parametrize("light", ["train", "held-out"])
def test_live_faces_are_live_in_office_light_and_in_sunlight(light: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(6):
        scene = random_face_scene(rng, "live", list(HELD_OUT_IDENTITIES), light=light)
        verdict = judged(scene, rng)
        assert verdict.live, (scene, verdict)


def test_the_ir_albedo_is_read_inside_the_face_box() -> None:
    beyond = FoundFace((100.0, 80.0, 200.0, 200.0), ((40.0, 30.0), (150.0, 120.0), (230.0, 230.0)), None)
    assert _inner(beyond, (100, 80, 200, 200)) == (100, 80, 200, 200)


def test_two_faces_are_several_faces(configured: World) -> None:
    reply = configured.ask({"kind": "face", "faces": 2})
    assert (reply.result, reply.reason) == ("refused", "several-faces")


def test_a_face_the_platform_does_not_know_is_not_recognised(configured: World) -> None:
    reply = configured.ask({"kind": "face", "face_id": "nobody"})
    assert (reply.result, reply.reason, reply.ftoken) == ("refused", "not-recognised", None)
    assert "FACE_NOT_RECOGNISED" in reply.detail


# -- refusals of the unit's own ------------------------------------------------------------------------
def test_a_flat_surface_is_not_live(configured: World) -> None:
    reply = configured.ask({"kind": "wall", "distance_m": 0.5})
    assert (reply.result, reply.reason) == ("refused", "not-live")
    assert reply.liveness_score is not None and reply.liveness_score < 0.5
    assert reply.ftoken is None and "relief" in reply.detail


def test_nobody_in_front_of_the_camera_is_no_face(configured: World) -> None:
    reply = configured.ask({"kind": "none"})
    assert (reply.result, reply.reason) == ("refused", "no-face")


def test_a_unit_without_platform_access_says_so(given_back: World) -> None:
    given_back.control.call("platform", config=None)
    reply = given_back.ask({"kind": "none"})
    assert (reply.result, reply.reason) == ("refused", "no-platform")


def test_a_platform_refusal_is_the_platforms(configured: World) -> None:
    reply = configured.ask({"kind": "none"}, store="S9999")
    assert (reply.result, reply.reason) == ("refused", "platform")
    assert "STORE_NOT_FOUND" in reply.detail


@pytest.mark.parametrize(
    ("faults", "reason"),
    [(Faults(error_rate=1.0), "platform"), (Faults(drop_rate=1.0), "no-platform")],
    ids=["busy", "dropped"],
)
def test_sandbox_faults_are_refusals_with_their_detail(configured: World, faults: Faults, reason: str) -> None:
    configured.sandbox.faults = faults
    reply = configured.ask({"kind": "none"})
    assert (reply.result, reply.reason) == ("refused", reason)
    assert "face.session.initialize" in reply.detail


# -- the access: checked, kept owner-only, surviving a restart ------------------------------------------
def test_a_bad_access_is_refused_and_changes_nothing(configured: World) -> None:
    kept = (configured.state / "platform.json").read_bytes()
    bad = {**configured.sandbox.terminal_config(), "private_key": "not a key"}
    with pytest.raises(SimulatorCommandFailed, match="private_key"):
        configured.control.call("platform", config=bad)
    with pytest.raises(SimulatorCommandFailed, match="url"):
        configured.control.call("platform", config={"url": "http://x"})
    assert (configured.state / "platform.json").read_bytes() == kept
    assert configured.ask({"kind": "none"}).reason == "no-face"  # still reaches the platform


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "no such file"), ("dir", "directory"), (b"\xff\xfe", "not JSON"), (b"{", "not JSON")],
    ids=["missing", "directory", "binary", "cut"],
)
def test_sim_platform_refuses_careless_files(
    configured: World, tmp_path: Path, content: bytes | str | None, reason: str
) -> None:
    path = tmp_path / "access.json"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    kept = (configured.state / "platform.json").read_bytes()
    result = CliRunner().invoke(cli, ["sim", "platform", str(path), "--state", str(configured.state)])
    assert result.exit_code == 1 and reason in result.output and "Traceback" not in result.output
    assert (configured.state / "platform.json").read_bytes() == kept


def test_sim_platform_hands_over_the_file_serve_wrote(given_back: World, tmp_path: Path) -> None:
    path = tmp_path / "terminal.json"
    path.write_text(json.dumps(given_back.sandbox.terminal_config()), encoding="utf-8")
    given_back.control.call("platform", config=None)
    result = CliRunner().invoke(cli, ["sim", "platform", str(path), "--state", str(given_back.state)])
    assert result.exit_code == 0, result.output
    assert "2026000000000002" in result.output and "PRIVATE" not in result.output
    assert given_back.ask({"kind": "none"}).reason == "no-face"  # it reaches the platform again
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([1, 2]), encoding="utf-8")
    refused = CliRunner().invoke(cli, ["sim", "platform", str(wrong), "--state", str(given_back.state)])
    assert refused.exit_code == 1 and "not usable" in refused.output


def test_the_access_is_owner_only_and_survives_a_restart(configured: World) -> None:
    assert stat.S_IMODE((configured.state / "platform.json").stat().st_mode) == 0o600
    restarted = PlatformStore(configured.state)  # what a restarted simulator reads
    assert restarted.access is not None and restarted.access.app_id == TERMINAL_APP_ID
    assert "PRIVATE" not in repr(restarted.access)


def test_a_damaged_stored_access_leaves_the_units_without_one(tmp_path: Path) -> None:
    (tmp_path / "platform.json").write_text("{not json", encoding="utf-8")
    assert PlatformStore(tmp_path).access is None


@pytest.mark.parametrize(
    "payload",
    [
        {"merchant_id": MERCHANT},
        {"merchant_id": MERCHANT, "store_id": 7},
        {"merchant_id": MERCHANT, "store_id": STORE, "budget_s": 0},
        {"merchant_id": MERCHANT, "store_id": STORE, "budget_s": True},
        {"merchant_id": MERCHANT, "store_id": STORE, "amount": "100.00"},
    ],
    ids=["no store", "store not text", "no time", "time not a number", "unknown field"],
)
def test_a_bad_request_is_refused_before_anything_happens(configured: World, payload: Payload) -> None:
    client = ManagementClient(configured.pty(), expected_serial=configured.serial)
    with client, pytest.raises(RemoteError) as caught:
        client.request(MessageType.FACE_PAY_TEST, payload)
    assert caught.value.params["code"] == "bad-request"


# -- unplug and power cut while the app runs: no answer -------------------------------------------------
@pytest.mark.parametrize(("cut", "restore"), [("unplug", "replug"), ("power_cut", "power_on")])
def test_a_unit_that_goes_away_mid_request_answers_nothing(configured: World, cut: str, restore: str) -> None:
    configured.sandbox.faults = Faults(latency_rate=1.0, latency_seconds=1.0)  # the app waits on the platform
    configured.control.call("scene", serial=configured.serial, scene={"kind": "none"})
    outcome: list[BaseException | UnitFaceReply] = []
    with ManagementClient(configured.pty(), expected_serial=configured.serial) as client:

        def ask() -> None:
            try:
                outcome.append(FacePayUnit(client).test_transaction(MERCHANT, STORE, timeout=8.0))
            except (UnitGone, UnitTimeout) as exc:
                outcome.append(exc)

        asking = threading.Thread(target=ask)
        asking.start()
        time.sleep(0.4)
        configured.control.call(cut, serial=configured.serial)
        asking.join(30)
    configured.control.call(restore, serial=configured.serial)
    assert len(outcome) == 1 and isinstance(outcome[0], UnitGone | UnitTimeout)
    after = configured.log().rsplit("face-pay test at", 1)[-1]  # the app stopped: it logged no outcome
    assert "refused" not in after and "token issued" not in after


# -- what the host accepts of a unit ---------------------------------------------------------------------
TOKEN_REPLY: Payload = {
    "result": "token",
    "ftoken": "ftk" + "A" * 32,
    "session_id": "fs0123456789abcdef",
    "liveness_score": 0.93,
    "frame_set": 7,
}
REFUSAL: Payload = {
    "result": "refused",
    "reason": "not-live",
    "detail": "liveness check relief failed",
    "liveness_score": 0.2,
}


def answering(reply: Payload | Callable[[Payload], Payload]) -> Callable[[Frame, Payload], bytes]:
    def answer(request: Frame, payload: Payload) -> bytes:
        if request.type != MessageType.FACE_PAY_TEST:
            return reply_wire(request, genuine(request, payload))
        return reply_wire(request, reply(payload) if callable(reply) else reply)

    return answer


def ask_hostile(clock: Clock, reply: Payload) -> UnitFaceReply:
    with ManagementClient(HostileUnit(clock, answering(reply)), timeout=TIMEOUT) as client:
        return FacePayUnit(client).test_transaction(MERCHANT, STORE, timeout=TIMEOUT)


def test_a_genuine_token_and_refusal_are_taken(clock: Clock) -> None:
    token = ask_hostile(clock, TOKEN_REPLY)
    assert (token.has_token, token.session_id, token.liveness_score, token.frame_set) == (
        True,
        "fs0123456789abcdef",
        0.93,
        7,
    )
    assert token.ftoken == TOKEN_REPLY["ftoken"] and TOKEN_REPLY["ftoken"] not in repr(token)
    refusal = ask_hostile(clock, REFUSAL)
    assert (refusal.has_token, refusal.reason, refusal.ftoken) == (False, "not-live", None)


def test_the_request_names_the_store_and_leaves_the_unit_time_to_answer(clock: Clock) -> None:
    seen: list[Payload] = []

    def record(payload: Payload) -> Payload:
        seen.append(payload)
        return TOKEN_REPLY

    with ManagementClient(HostileUnit(clock, answering(record)), timeout=TIMEOUT) as client:
        FacePayUnit(client).test_transaction(MERCHANT, STORE)
    assert seen[0]["merchant_id"] == MERCHANT and seen[0]["store_id"] == STORE
    assert 1.0 <= seen[0]["budget_s"] < FACE_PAY_TIMEOUT


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        ({**TOKEN_REPLY, "ftoken": "has spaces"}, "ftoken"),
        ({**TOKEN_REPLY, "ftoken": b"bytes"}, "ftoken"),
        ({**TOKEN_REPLY, "ftoken": "x" * 129}, "ftoken"),
        ({k: v for k, v in TOKEN_REPLY.items() if k != "ftoken"}, "ftoken"),
        ({k: v for k, v in TOKEN_REPLY.items() if k != "session_id"}, "session_id"),
        ({**TOKEN_REPLY, "session_id": "../etc"}, "session_id"),
        ({**TOKEN_REPLY, "liveness_score": 1.5}, "liveness_score"),
        ({**TOKEN_REPLY, "liveness_score": math.nan}, "liveness_score"),
        ({**TOKEN_REPLY, "liveness_score": True}, "liveness_score"),
        ({**TOKEN_REPLY, "liveness_score": 10**400}, "liveness_score"),
        ({**REFUSAL, "liveness_score": -(2**1100)}, "liveness_score"),
        ({**REFUSAL, "liveness_score": 2**53 + 1}, "liveness_score"),
        ({**TOKEN_REPLY, "frame_set": -1}, "frame_set"),
        ({**TOKEN_REPLY, "reason": "not-live"}, "reason"),
        ({**TOKEN_REPLY, "result": "maybe"}, "result"),
        ({**REFUSAL, "reason": "bored"}, "reason"),
        ({**REFUSAL, "ftoken": "ftkAAAA"}, "ftoken"),
        ({**REFUSAL, "frame_set": 3}, "frame_set"),
        ({k: v for k, v in REFUSAL.items() if k != "reason"}, "reason"),
        ({k: v for k, v in REFUSAL.items() if k != "detail"}, "detail"),
        ({**REFUSAL, "detail": "two\nlines"}, "detail"),
        ({**REFUSAL, "detail": "x" * 513}, "detail"),
        ({**REFUSAL, "liveness_score": -0.1}, "liveness_score"),
    ],
)
def test_a_lying_unit_gets_a_malformed_reply(clock: Clock, reply: Payload, field: str) -> None:
    with pytest.raises(MalformedReply) as caught:
        ask_hostile(clock, reply)
    assert caught.value.params["field"] == field
    assert caught.value.params["request"] == "face_pay_test"
    assert "ftkAAAA" not in str(caught.value) and "A" * 32 not in str(caught.value)


def test_a_unit_that_never_answers_times_out(clock: Clock) -> None:
    def silent(request: Frame, payload: Payload) -> bytes:
        return b"" if request.type == MessageType.FACE_PAY_TEST else reply_wire(request, genuine(request, payload))

    with ManagementClient(HostileUnit(clock, silent), timeout=TIMEOUT) as client, pytest.raises(UnitTimeout):
        FacePayUnit(client).test_transaction(MERCHANT, STORE, timeout=TIMEOUT)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(2**64, 2**1100).map(lambda n: n if n % 2 else -n),  # bignums: beyond a float too
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=600),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["result", "ftoken", "session_id", "liveness_score", "frame_set", "reason", "detail", "x"]),
        st.one_of(values, st.sampled_from(["token", "refused", "no-face", "ftkABC", "fs1"])),
    )
)
def test_any_reply_is_a_checked_answer_or_malformed(clock: Clock, reply: Payload) -> None:
    try:
        answer = ask_hostile(clock, reply)
    except MalformedReply:
        return
    assert answer.result in ("token", "refused")
    assert answer.liveness_score is None or 0.0 <= answer.liveness_score <= 1.0
    assert answer.detail.isprintable() and len(answer.detail) <= 512
    assert (answer.ftoken is not None) == answer.has_token
