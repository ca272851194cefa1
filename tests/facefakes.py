"""Fakes of the face-pay check's seams, for the tests of its stages (test_facecheck, test_cli_facecheck): a
station analyser with scripted decisions, the unit's face-pay app getting real tokens from a sandbox, a presenter
that records what it was asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from camera.faces import Decision, Face, FaceAnalysis, Liveness
from camera.frames import Frames
from enrollment.client import PlatformClient
from enrollment.gateway import Method
from provisioning.facepay_steps import Presenter
from terminal.camera import CameraCalibration

FACE = Face((200.0, 150.0, 330.0, 310.0), 0.98, ((240, 210), (290, 210), (265, 240), (245, 275), (285, 275)))


def analysis(decision: Decision, score: float = 0.9) -> FaceAnalysis:
    """What the station's analyser says of one frame set."""
    faces = {Decision.NO_FACE: (), Decision.SEVERAL_FACES: (FACE, FACE)}.get(decision, (FACE,))
    live = decision == Decision.LIVE
    liveness = Liveness(live, score, 0.5, {"nose_depth_mm": 22.0}, () if live else ("flat",))
    judged = decision in (Decision.LIVE, Decision.ATTACK)
    return FaceAnalysis(
        decision,
        faces,
        FACE if judged else None,
        FACE if judged else None,
        None,
        liveness if judged else None,
        {"detect": 0.02, "quality": 0.001, "liveness": 0.005},
        str(decision),
    )


class ScriptedAnalyser:
    """Answers each frame set with the next decision of its script (the last one again when it runs out)."""

    def __init__(self, *decisions: Decision, score: float = 0.9) -> None:
        self.decisions, self.score = list(decisions), score
        self.calibrations: list[CameraCalibration] = []
        self.frames: list[Frames] = []

    def __call__(self, calibration: CameraCalibration) -> ScriptedAnalyser:
        self.calibrations.append(calibration)
        return self

    def analyse(self, frames: Frames) -> FaceAnalysis:
        self.frames.append(frames)
        decision = self.decisions[min(len(self.frames), len(self.decisions)) - 1]
        return analysis(decision, self.score if decision == Decision.LIVE else 0.1)


@dataclass(frozen=True)
class Reply:
    result: str
    ftoken: str | None = None
    reason: str | None = None
    detail: str | None = None
    liveness_score: float | None = None


class FakeUnitApp:
    """The unit's face-pay app: a real face token from the sandbox, or a scripted refusal."""

    def __init__(self, client: PlatformClient, serial: str, refuse: str | None = None) -> None:
        self.client, self.serial, self.refuse = client, serial, refuse
        self.asked = 0

    def __call__(self, connection: Any) -> FakeUnitApp:
        return self

    def test_transaction(self, merchant_id: str, store_id: str, *, timeout: float) -> Reply:
        self.asked += 1
        if self.refuse is not None:
            return Reply("refused", reason=self.refuse, liveness_score=0.05)
        where = {"serial": self.serial, "merchant_id": merchant_id, "store_id": store_id}
        number = f"{self.serial}-{self.asked}-{id(self)}"
        opened = self.client.call(Method.FACE_SESSION_INITIALIZE, {"out_request_no": f"i{number}", **where})
        verify = {"session_id": opened["session_id"], "serial": self.serial, "face_id": "sandbox-buyer-1"}
        verified = self.client.call(Method.FACE_SESSION_VERIFY, {"out_request_no": f"v{number}", **verify})
        return Reply("token", ftoken=verified["ftoken"], liveness_score=0.93)


class RecordingPresenter(Presenter):
    def __init__(self, on_present: Any = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.on_present = on_present

    def present(self, serial: str, presentation: str = "live") -> None:
        self.calls.append(("present", presentation))
        if self.on_present is not None:
            self.on_present(serial)

    def release(self, serial: str) -> None:
        self.calls.append(("release", serial))
