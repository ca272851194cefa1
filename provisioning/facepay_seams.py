"""The face-pay check's seams: the station's analyser, the unit's face-pay app and the person presenting
(:mod:`provisioning.facepay_check` runs the check with them; tests put fakes in their place)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from camera.faces import LIVE, FaceAnalysis
from camera.frames import Frames
from i18n import _
from terminal.camera import CameraCalibration

from .facepay_errors import PRESENTATION_NAMES
from .facepay_steps import Presenter

if TYPE_CHECKING:
    from terminal.client import ManagementClient


class Analyser(Protocol):
    """Judges one frame set (``camera.faceanalysis.FaceAnalyser``)."""

    def analyse(self, frames: Frames) -> FaceAnalysis: ...


class UnitReply(Protocol):
    """The unit's answer to a test transaction (``terminal.face_pay.UnitFaceReply``)."""

    @property
    def result(self) -> str: ...

    @property
    def ftoken(self) -> str | None: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def detail(self) -> str | None: ...

    @property
    def liveness_score(self) -> float | None: ...


class UnitApp(Protocol):
    """The unit's face-pay app (``terminal.face_pay.FacePayUnit``)."""

    def test_transaction(self, merchant_id: str, store_id: str, *, timeout: float) -> UnitReply: ...


AnalyserFactory = Callable[[CameraCalibration], Analyser]
UnitAppFactory = Callable[["ManagementClient"], UnitApp]


def default_analyser(config_path: Path | None = None) -> AnalyserFactory:
    """A factory of the station's analyser for a unit's calibration, with the face configuration at
    ``config_path`` (else ``NAIAD_FACE_CONFIG``, else the configuration directory's, else the defaults).  The
    detector and the liveness model load here, once: a bad configuration or model is refused before a unit is
    touched, and every check of the run shares them."""
    from camera.faceanalysis import FaceAnalyser
    from camera.faceconfig import FaceConfig
    from camera.facedetect import load_detector
    from camera.liveness import LivenessModel

    config = FaceConfig.resolve(config_path)
    detector, model = load_detector(config.detector), LivenessModel.load(config.liveness.model)
    return lambda calibration: FaceAnalyser(config, calibration, detector, model)


def default_unit_app(client: ManagementClient) -> UnitApp:
    from terminal.face_pay import FacePayUnit

    app: UnitApp = FacePayUnit(client)
    return app


class AskingPresenter(Presenter):
    """A person presents: ``ask`` tells them what to hold up (translated) and returns once they have."""

    def __init__(self, ask: Callable[[str], None]) -> None:
        self.ask = ask

    def present(self, serial: str, presentation: str = LIVE) -> None:
        if presentation == LIVE:
            self.ask(_("Show one live face to the camera of unit {serial}, 35 to 80 cm away.", serial=serial))
        else:
            what = _(PRESENTATION_NAMES[presentation])
            self.ask(_("Hold the {attack} up to the camera of unit {serial}.", attack=what, serial=serial))

    def release(self, serial: str) -> None:
        """Nothing to take away: the person steps back when the check ends."""
