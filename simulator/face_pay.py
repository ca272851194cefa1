"""The simulated unit's face-pay app: FACE_PAY_TEST (docs/protocol.md, face-pay group).

Asked for a test transaction at a merchant's store, the app opens a face session with the platform itself (as
the terminal vendor's app, ``face_pay_platform``), captures a frame set of what is in front of its camera, finds
the face, makes its own liveness decision from its own frames, has the platform recognise the face
(``face.session.verify`` with the scene's ``face_id``) and answers the face token.  Refusals are answers too:
``{"result": "refused", "reason", "detail"}``.  Its detector is the scene's projected face box (the scene knows
where the faces are); its liveness is deliberately simple and independent of the station's (``camera/``):
relief of the depth over the face that no bent sheet has, the nose nearer than the eyes and mouth, and IR that is
neither dark (a screen) nor unlike skin once the ambient IR is taken out.  It captures with its own camera
settings.  The face token never reaches the unit's log.  A unit that loses power or its cable while the app runs
answers nothing: the app stops at its next step and the reply is never written.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from enrollment.gateway import Method
from terminal.device import RequestRejected
from terminal.protocol import ErrorCode, Payload

from .camera.optics import vignetting
from .camera.render import ALBEDO_WHITE, IR_WHITE_DN
from .camera.service import OwnCapture, SimCamera
from .face.render import BACKGROUND_ALBEDO, face_truth
from .face.scene import FaceScene
from .face_pay_platform import PlatformFailed, PlatformStore, Unreachable, call
from .state import UnitStore

LOG = logging.getLogger(__name__)
ID_FIELD_MAX = 64
MAX_DETAIL = 512
DEFAULT_BUDGET_S, BUDGET_S = 20.0, (1.0, 300.0)  # the unit's own deadline unless the request gives one
FACE_WIDTH_M = 0.15  # the presence detector's box for something held up that is not a face
PRESENT_SHARE = 0.3  # share of the image centre with depth for "something is held up"
# liveness: each figure's threshold and the value at which it is comfortably live
RELIEF_MM = (3.2, 6.0)  # RMS of the depth about its best quadric over the face box (live 4.4-7, a bent print 1-2.3)
NOSE_MM = (8.0, 15.0)  # the nose nearer than the eyes and mouth (live 23-33 mm, a bent tilted print < 6)
NOSE_MAX_MM = (45.0, 35.0)  # ...and not absurdly so
IR_ALBEDO = (0.2, 0.3)  # the face's IR albedo estimate: a screen is dark in IR (about 0.05)
IR_ALBEDO_MAX = (0.6, 0.55)  # skin reads 0.43-0.54 (sunlit or not), a resin mask 0.64 and more
SATURATED = (0.3, 0.1)  # share of the inner face clipped white in IR: brighter than skin can be
DEPTH_SHARE = 0.5  # share of the face box with depth
REFERENCE_M = 0.5  # the flood lights a white surface to IR_WHITE_DN at this distance
ROOM_ALBEDO = BACKGROUND_ALBEDO  # the room behind the face, as the unit's maker measured it
ROOM_PIXELS = 500  # room pixels needed to read the ambient IR from


class Abandoned(RequestRejected):
    """The unit lost power or its cable while the app ran: the reply would never be written."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.INTERNAL, "abandoned")


@dataclass(frozen=True)
class FoundFace:
    """A face (or something held up) in IR pixels: box (x0, y0, x1, y1), landmarks when known."""

    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...] | None
    face_id: str | None


@dataclass(frozen=True)
class Verdict:
    live: bool
    score: float
    detail: str


def refused(reason: str, detail: str, score: float | None = None) -> Payload:
    """A refusal; its detail one printable line of at most MAX_DETAIL characters, as the host requires."""
    shown = "".join(c if c.isprintable() else "?" for c in detail)[:MAX_DETAIL]
    reply: Payload = {"result": "refused", "reason": reason, "detail": shown}
    if score is not None:
        reply["liveness_score"] = round(score, 4)
    return reply


class FacePayApp:
    """One unit's app; ``run`` answers one FACE_PAY_TEST request."""

    def __init__(self, serial: str, store: UnitStore, camera: SimCamera, platforms: PlatformStore) -> None:
        self.serial, self.store, self.camera, self.platforms = serial, store, camera, platforms

    def run(self, payload: Payload, alive: threading.Event) -> Payload:
        """Answer one request; ``alive`` is set while the unit's link lives (cleared by an unplug or power cut)."""
        merchant_id, store_id, budget = _request(payload)
        give_up = time.monotonic() + budget
        self.store.log(f"face-pay test at merchant {merchant_id} store {store_id}")
        reply = self._transact(merchant_id, store_id, give_up, alive)
        _check_alive(alive)
        if reply["result"] == "token":
            self.store.log(f"face-pay test: face token issued in session {reply['session_id']}")
        else:
            self.store.log(f"face-pay test refused: {reply['reason']}: {reply['detail']}")
        return reply

    def _transact(self, merchant_id: str, store_id: str, give_up: float, alive: threading.Event) -> Payload:
        access = self.platforms.access
        if access is None:
            return refused("no-platform", "the unit has no platform access configured")
        number = "fp" + secrets.token_hex(12)
        score: float | None = None
        try:
            opened = call(
                access,
                Method.FACE_SESSION_INITIALIZE,
                {
                    "out_request_no": number + "i",
                    "serial": self.serial,
                    "merchant_id": merchant_id,
                    "store_id": store_id,
                },
                give_up,
            )
            session_id = _text(opened, "session_id", Method.FACE_SESSION_INITIALIZE)
            _check_alive(alive)
            shot = self.camera.own_capture()
            _check_alive(alive)
            faces = find_faces(shot)
            if not faces:
                return refused("no-face", "no face in front of the camera")
            if len(faces) > 1:
                return refused("several-faces", f"{len(faces)} faces in front of the camera")
            verdict = assess(shot, faces[0])
            score = verdict.score
            if not verdict.live:
                return refused("not-live", verdict.detail, score)
            face_id = faces[0].face_id
            if face_id is None:
                return refused("not-recognised", "the face is not one the platform can recognise", score)
            verified = call(
                access,
                Method.FACE_SESSION_VERIFY,
                {
                    "out_request_no": number + "v",
                    "session_id": session_id,
                    "serial": self.serial,
                    "face_id": face_id,
                },
                give_up,
            )
            ftoken = _text(verified, "ftoken", Method.FACE_SESSION_VERIFY)
        except Unreachable as exc:
            return refused("no-platform", str(exc))
        except PlatformFailed as exc:
            if exc.sub_code == "FACE_NOT_RECOGNISED":
                return refused("not-recognised", str(exc), score)
            return refused("platform", str(exc))
        return {
            "result": "token",
            "ftoken": ftoken,
            "session_id": session_id,
            "liveness_score": round(verdict.score, 4),
            "frame_set": shot.frame_set,
        }


def _text(reply: dict[str, Any], name: str, method: Method) -> str:
    value = reply.get(name)
    if not isinstance(value, str) or not value:
        raise PlatformFailed(f"{method}: the platform's reply has no {name}")
    return value


def _check_alive(alive: threading.Event) -> None:
    if not alive.is_set():
        raise Abandoned()


def _request(payload: Payload) -> tuple[str, str, float]:
    unknown = sorted(set(payload) - {"merchant_id", "store_id", "budget_s"})
    if unknown:
        raise RequestRejected(ErrorCode.BAD_REQUEST, f"unknown fields {unknown}")
    ids = [payload.get(name) for name in ("merchant_id", "store_id")]
    if not all(isinstance(v, str) and 0 < len(v) <= ID_FIELD_MAX and v.isprintable() for v in ids):
        raise RequestRejected(ErrorCode.BAD_REQUEST, "merchant_id and store_id must be ids (text)")
    budget = payload.get("budget_s", DEFAULT_BUDGET_S)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not BUDGET_S[0] <= budget <= BUDGET_S[1]:
        raise RequestRejected(ErrorCode.BAD_REQUEST, f"budget_s must be {BUDGET_S[0]:g}..{BUDGET_S[1]:g} seconds")
    return str(ids[0]), str(ids[1]), float(budget)


# -- the unit's detector: where the scene's faces are -------------------------------------------------------
def find_faces(shot: OwnCapture) -> list[FoundFace]:
    """The faces of the scene in IR pixels (those at least half in view); for a scene without faces, something
    held up in the image centre counts as one face without landmarks (so a wall or a board is judged by
    liveness, and nothing is no face)."""
    scene = shot.scene
    if not isinstance(scene, FaceScene):
        return _present(shot)
    truth = face_truth(shot.truth, scene)
    h, w = shot.frames["depth"].shape
    found = []
    for one, where in zip((scene, *scene.others), (truth, *truth.others), strict=True):
        x0, y0, x1, y1 = where.ir_box
        inside = max(0.0, min(x1, w) - max(x0, 0)) * max(0.0, min(y1, h) - max(y0, 0))
        if inside >= 0.5 * (x1 - x0) * (y1 - y0):
            found.append(FoundFace(where.ir_box, where.ir_landmarks, one.face_id))
    return found


def _present(shot: OwnCapture) -> list[FoundFace]:
    depth = shot.frames["depth"]
    h, w = depth.shape
    centre = depth[h * 3 // 8 : h * 5 // 8, w * 3 // 8 : w * 5 // 8]
    valid = centre[centre > 0]
    if valid.size < PRESENT_SHARE * centre.size:
        return []
    half = shot.truth.ir.fx * FACE_WIDTH_M / (float(np.median(valid)) / 1000.0) / 2
    box = (w / 2 - half, h / 2 - 1.3 * half, w / 2 + half, h / 2 + 1.3 * half)
    return [FoundFace(box, None, None)]


# -- the unit's liveness -----------------------------------------------------------------------------------
def margin(value: float, threshold: float, good: float) -> float:
    """0.5 at ``threshold``, 1 at ``good`` (either side of it), linear between and clamped to 0..1."""
    return float(np.clip(0.5 + 0.5 * (value - threshold) / (good - threshold), 0.0, 1.0))


def assess(shot: OwnCapture, face: FoundFace) -> Verdict:
    """Live when the face has depth with relief no curved sheet has, the nose before the rest of the face, and
    an IR albedo of skin; the score is the smallest margin (0.5 at a threshold).

    Paper bent and tilted is a quadric over a face, so the relief is the depth's residual about its best
    quadric, and the nose is measured against the plane of the eyes and the mouth's corners.  The IR albedo
    takes the ambient IR (sunlight) out first, read from the room behind the face, whose reflectance the unit
    knows, then undoes the flood's 1/Z^2 falloff per pixel."""
    depth = shot.frames["depth"]
    box = _clipped(face.box, (0, 0, depth.shape[1], depth.shape[0]))
    if box is None:
        return Verdict(False, 0.0, "the face is outside the depth image")
    x0, y0, x1, y1 = box
    z = depth[y0:y1, x0:x1].astype(np.float64)
    ys, xs = np.nonzero(z)
    share = ys.size / z.size
    if share < DEPTH_SHARE:
        return Verdict(False, 0.0, f"no depth on the face ({share:.0%} of it)")
    relief = _quadric_residual(xs / z.shape[1], ys / z.shape[0], z[ys, xs])
    albedo, saturated = _ir_albedo(shot, _inner(face, box), _ambient(shot, box))
    checks = {
        "relief": (relief, margin(relief, *RELIEF_MM)),
        "ir-albedo": (albedo, min(margin(albedo, *IR_ALBEDO), margin(albedo, *IR_ALBEDO_MAX))),
        "ir-saturated": (saturated, margin(saturated, *SATURATED)),
    }
    if face.landmarks is not None:
        nose = _nose_mm(depth, face.landmarks)
        if nose is not None:
            checks["nose"] = (nose, min(margin(nose, *NOSE_MM), margin(nose, *NOSE_MAX_MM)))
    name, (value, score) = min(checks.items(), key=lambda item: item[1][1])
    if score < 0.5:
        return Verdict(False, score, f"liveness check {name} failed ({value:.3g})")
    return Verdict(True, score, "live")


def _quadric_residual(x: np.ndarray, y: np.ndarray, values: np.ndarray) -> float:
    """RMS (mm) of ``values`` about their best quadric in (x, y): near the noise for any bent or tilted sheet."""
    design = np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return float(np.sqrt(np.mean((values - design @ coefficients) ** 2)))


Box = tuple[int, int, int, int]


def _clipped(box: tuple[float, float, float, float], bounds: Box) -> Box | None:
    """``box`` rounded and cut to ``bounds`` (x0, y0, x1, y1); None when less than 4 pixels remain either way."""
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, y0, x1, y1 = max(bounds[0], x0), max(bounds[1], y0), min(bounds[2], x1), min(bounds[3], y1)
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def _inner(face: FoundFace, box: Box) -> Box:
    """Eyes to mouth (the landmarks' box, within the face box), where there is only face; without landmarks
    the box's middle."""
    if face.landmarks is not None:
        xs, ys = [p[0] for p in face.landmarks], [p[1] for p in face.landmarks]
        inner = _clipped((min(xs), min(ys), max(xs) + 1, max(ys) + 1), box)
        if inner is not None:
            return inner
    x0, y0, x1, y1 = box
    return (x0 + (x1 - x0) // 4, y0 + (y1 - y0) // 4, x1 - (x1 - x0) // 4, y1 - (y1 - y0) // 4)


def _white(shot: OwnCapture) -> np.ndarray:
    """The IR (DN) of albedo 1 under the flood at REFERENCE_M, per pixel (the lens darkens the corners)."""
    return vignetting(shot.truth.ir) * (IR_WHITE_DN / ALBEDO_WHITE * max(shot.capture.ir_gain, 1e-6))


def _ambient(shot: OwnCapture, box: Box) -> float:
    """Ambient IR as a share of the flood at REFERENCE_M, from the room (no depth, away from the face box): it
    reflects ROOM_ALBEDO of the flood plus as much of the ambient; 0 when too little of the room is seen."""
    depth, ir = shot.frames["depth"], shot.frames["ir"]
    room = depth == 0
    x0, y0, x1, y1 = box
    pad = (x1 - x0) // 4
    room[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = False
    if np.count_nonzero(room) < ROOM_PIXELS:
        return 0.0
    level = float(np.median(ir[room] / _white(shot)[room]))
    return max(0.0, level / ROOM_ALBEDO - 1.0)


def _ir_albedo(shot: OwnCapture, box: Box, ambient: float) -> tuple[float, float]:
    """The median IR albedo over ``box`` (each pixel's IR over what albedo 1 gives at its depth, the flood
    falling off as 1/Z^2, plus the ambient) and the share of it clipped white."""
    x0, y0, x1, y1 = box
    ir = shot.frames["ir"][y0:y1, x0:x1].astype(np.float64)
    z = shot.frames["depth"][y0:y1, x0:x1].astype(np.float64)
    seen = z > 0
    if not seen.any():
        return 0.0, 0.0
    lit = (REFERENCE_M * 1000.0 / z[seen]) ** 2 + ambient
    albedo = ir[seen] / _white(shot)[y0:y1, x0:x1][seen] / lit
    return float(np.median(albedo)), float(np.mean(ir[seen] >= 255))


def _nose_mm(depth: np.ndarray, landmarks: tuple[tuple[float, float], ...]) -> float | None:
    """How much nearer the nose tip is than the plane through the eyes and the mouth's corners at the nose
    (mm), from the median depth about each landmark: a tilted or bent sheet has its nose on that plane."""
    around = [_around(depth, *point) for point in landmarks]
    nose = around[2]
    rim = [(landmarks[i], around[i]) for i in (0, 1, 3, 4) if around[i] is not None]
    if nose is None or len(rim) < 3:
        return None
    design = np.array([(1.0, p[0], p[1]) for p, _ in rim])
    coefficients, *_ = np.linalg.lstsq(design, np.array([d for _, d in rim]), rcond=None)
    return float(np.dot((1.0, *landmarks[2]), coefficients)) - nose


def _around(depth: np.ndarray, x: float, y: float, radius: int = 3) -> float | None:
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    h, w = depth.shape
    cx, cy = round(x), round(y)
    patch = depth[max(0, cy - radius) : min(h, cy + radius + 1), max(0, cx - radius) : min(w, cx + radius + 1)]
    valid = patch[patch > 0]
    return float(np.median(valid)) if valid.size else None
