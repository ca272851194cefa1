"""One frame set judged on the station: detection on RGB, the face's quality, then its liveness on IR and depth.

:class:`FaceAnalyser` holds what a run needs once (the detector and the liveness model, loaded on first use, and
the unit's calibration) and gives a :class:`camera.faces.FaceAnalysis` per frame set: the decision, the faces,
the judged face in RGB and IR, quality and liveness, the seconds each part took and a translated detail.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from i18n import _
from terminal.camera import CameraCalibration

from .depth import require_image
from .faceconfig import FaceConfig
from .facedetect import FaceDetector, load_detector
from .facegeometry import face_in_ir
from .facequality import assess_quality
from .faces import Decision, Face, FaceAnalysis, Liveness
from .frames import Frames
from .liveness import LivenessModel, assess_liveness

LOG = logging.getLogger(__name__)


class FaceAnalyser:
    """Detect, choose, check quality, map to IR and judge liveness, for the frame sets of one unit."""

    def __init__(
        self,
        config: FaceConfig,
        calibration: CameraCalibration,
        detector: FaceDetector | None = None,
        model: LivenessModel | None = None,
    ) -> None:
        self.config = config
        self.calibration = calibration
        self._detector = detector
        self._model = model

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = load_detector(self.config.detector)
        return self._detector

    @property
    def model(self) -> LivenessModel:
        if self._model is None:
            self._model = LivenessModel.load(self.config.liveness.model)
            configured = self.config.liveness.threshold
            if configured is not None and configured < self._model.threshold:
                LOG.warning(
                    "liveness threshold %.2f is below the model's own %.2f: more attacks are accepted",
                    configured,
                    self._model.threshold,
                )
        return self._model

    def analyse(self, frames: Frames) -> FaceAnalysis:
        """The decision on ``frames``; :class:`camera.depth.UnusableFrame` when a frame is not of the layout
        the calibration says (another unit's frames, or a corrupt capture)."""
        cal = self.calibration
        if frames.rgb is None:
            return FaceAnalysis(Decision.NO_FACE, detail=_("The frame set has no RGB image to find a face in"))
        rgb = require_image(frames.rgb, "rgb", np.uint8, (cal.rgb.height, cal.rgb.width), channels=3)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        faces = tuple(self.detector.detect(rgb))
        seconds["detect"] = time.perf_counter() - start
        if not faces:
            return FaceAnalysis(Decision.NO_FACE, seconds=seconds, detail=_("No face is in view"))
        if len(faces) > 1:
            detail = _("{count} faces are in view; only the payer's may be", count=len(faces))
            return FaceAnalysis(Decision.SEVERAL_FACES, faces, seconds=seconds, detail=detail)
        face = faces[0]
        start = time.perf_counter()
        quality = assess_quality(rgb, face, self.config.quality)
        seconds["quality"] = time.perf_counter() - start
        if not quality.ok:
            detail = _("The face cannot be judged: {reasons}", reasons="; ".join(quality.failures))
            return FaceAnalysis(Decision.POOR_QUALITY, faces, face, quality=quality, seconds=seconds, detail=detail)
        start = time.perf_counter()
        face_ir, liveness = self._liveness(frames, face)
        seconds["liveness"] = time.perf_counter() - start
        if liveness.live:
            decision = Decision.LIVE
            detail = _(
                "A live face (liveness score {score:.2f}, threshold {threshold:.2f})",
                score=liveness.score,
                threshold=liveness.threshold,
            )
        else:
            decision = Decision.ATTACK
            detail = _("Not a live face: {reasons}", reasons="; ".join(liveness.failures))
        LOG.debug("face analysis: %s, score %.3f", decision, liveness.score)
        return FaceAnalysis(decision, faces, face, face_ir, quality, liveness, seconds, detail)

    def _liveness(self, frames: Frames, face: Face) -> tuple[Face | None, Liveness]:
        """The face in IR and its liveness; not live, saying why, when IR or depth is missing or the face is not
        in the IR camera's view."""
        cal, threshold = self.calibration, self.config.liveness.threshold
        if threshold is None:
            threshold = self.model.threshold
        if frames.ir is None or frames.depth is None:
            reason = _("The frame set has no IR or no depth image: liveness cannot be judged")
            return None, Liveness(False, 0.0, threshold, failures=(reason,))
        shape = (cal.ir.height, cal.ir.width)
        ir = require_image(frames.ir, "ir", np.uint8, shape)
        depth = require_image(frames.depth, "depth", np.uint16, shape)
        face_ir = face_in_ir(face, depth, cal)
        if face_ir is None:
            reason = _("The face is outside the IR camera's view: liveness cannot be judged")
            return None, Liveness(False, 0.0, threshold, failures=(reason,))
        return face_ir, assess_liveness(ir, depth, face_ir, cal.ir, self.model, threshold)
