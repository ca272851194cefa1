"""The face-pay check of one unit: a face before its camera, the station's and the unit's judgement, a real
0.01 payment with its refund (docs/facecheck.md).

1. the :class:`~provisioning.facepay_steps.Presenter` puts a live face (or an attack) before the camera;
2. ``capture``: a few frame sets (IR flood-lit, RGB, depth with the projector on), each analysed at once
   (``detect``: one good face; ``liveness``: live or an attack) and shown as an ``Observed`` event of kind
   :data:`camera.observations.FACE`;
3. ``unit``: the unit's own face-pay app opens a face session, decides liveness itself and returns a face token;
4. ``pay`` 0.01 to the test merchant with the token (through the outbox), ``query`` the trade (amount and
   status must agree), ``refund`` it (through the outbox) and ``refund-query`` the refund.  Once a payment went
   through, the refund is always tried, whatever the query said or raised.  Before a live check asks for a token,
   the unit's earlier face-pay money is settled (:func:`~provisioning.facepay_trade.settle_earlier`): while a
   payment or refund of it is unresolved, no new payment is made.

With an attack the check passes only when the station refuses it, the unit refuses it too (it is asked even
after the station refused) and no trade is made: its token, if the unit wrongly gives one, is never used.
Every stage is timed; the check is one ledger operation (``face-pay-check``) whose result names the outcome,
the trade and the operator, never the token.  Each refusal or fault is a failed stage with translated text.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camera.faces import LIVE, PRESENTATIONS, Decision, FaceAnalysis
from camera.frames import Frames, decode_frame_set
from camera.observations import FACE, FaceObservation
from i18n import N_, _
from terminal.camera import CameraCalibration
from terminal.camera_unit import CameraUnit
from terminal.errors import NaiadError
from terminal.events import Listener, Reporter
from terminal.face_pay import FACE_PAY_TIMEOUT
from terminal.models import TerminalModel, model_by_id

from .calibration import crash_detail
from .facepay_errors import (
    PRESENTATION_NAMES,
    AttackNotSeen,
    FacePayCheckCrashed,
    NoTestMerchant,
    StationAcceptedAttack,
    StationRefusedFace,
    UnitAcceptedAttack,
    UnitDidNotJudgeAttack,
    UnitRefusedFace,
    UnknownPresentation,
)
from .facepay_seams import (
    AnalyserFactory,
    AskingPresenter,
    UnitAppFactory,
    default_analyser,
    default_unit_app,
)
from .facepay_steps import FACEPAY_STEP, ROLES, STAGES, FacePayCheckResult, Presenter, Stage, stage_label
from .facepay_trade import StageOutcome, Trade, pay_and_refund, settle_earlier
from .operators import OperatorSession, require_role

if TYPE_CHECKING:
    from enrollment.config import Merchant
    from terminal.client import ManagementClient

    from .outbox import Outbox
    from .station import Station

__all__ = [
    "FRAME_SETS",
    "UNIT_REFUSALS",
    "AnalyserFactory",
    "AskingPresenter",
    "default_analyser",
    "run_facepay_check",
    "station_decision",
]

LOG = logging.getLogger(__name__)

FRAME_SETS = 3
"""Frame sets the station judges; the majority decides (a second face in any one fails the check)."""
UNIT_REFUSALS = ("not-live", "no-face", "several-faces")
"""The unit's own refusals of a presentation: what an attack must meet at the unit (``not-recognised``,
``no-platform`` and ``platform`` say the unit's liveness let it through or never judged it)."""
NO_REASON = N_("no reason given")
UNIT_REASONS = {
    "no-face": N_("no face"),
    "several-faces": N_("several faces"),
    "not-live": N_("not a live face"),
    "not-recognised": N_("the platform did not recognise the face"),
    "no-platform": N_("the unit has no access to the platform"),
    "platform": N_("the platform refused the unit's face session"),
}


# --- one check ---------------------------------------------------------------------------------------


@dataclass
class _Check:
    """The stages of one check as they end, with what they found."""

    serial: str
    presentation: str
    report: Reporter
    model: TerminalModel | None = None
    stages: list[Stage] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: NaiadError | None = None
    trade: Trade = field(default_factory=Trade)

    @property
    def attack(self) -> bool:
        return self.presentation != LIVE

    def start(self, name: str) -> None:
        self.report.phase(name, stage_label(name))

    def end(self, name: str, ok: bool, seconds: float, detail: str = "", error: NaiadError | None = None) -> bool:
        self.stages.append(Stage(name, ok, seconds, detail))
        if error is not None and self.error is None:
            self.error = error
        if detail:
            self.report.message(_("{stage}: {detail}", stage=stage_label(name), detail=detail))
        return ok

    @contextmanager
    def stage(self, name: str) -> Iterator[StageOutcome]:
        """Run one stage: ``timed.ok``/``timed.detail`` set inside; any error fails the stage with its text (an
        unexpected one as :class:`FacePayCheckCrashed`), so the stages after it (a refund) still run."""
        self.start(name)
        timed = StageOutcome(time.monotonic())
        try:
            yield timed
        except NaiadError as exc:
            LOG.info("%s: face-pay check stage %s failed: %s", self.serial, name, exc)
            timed.fail(exc)
        except Exception as exc:
            LOG.exception("%s: face-pay check stage %s crashed", self.serial, name)
            timed.fail(FacePayCheckCrashed(serial=self.serial, detail=crash_detail(exc)))
        self.end(name, timed.ok, time.monotonic() - timed.started, timed.detail, timed.error)


def run_facepay_check(
    station: Station,
    outbox: Outbox,
    serial: str,
    presenter: Presenter,
    listener: Listener | None = None,
    *,
    merchant: Merchant | None,
    session: OperatorSession | None,
    presentation: str = LIVE,
    analyser: AnalyserFactory | None = None,
    unit_app: UnitAppFactory | None = None,
    frame_sets: int | None = None,
    save_frames: Path | None = None,
    unit_timeout: float = FACE_PAY_TIMEOUT,
) -> FacePayCheckResult:
    """Check unit ``serial`` end to end with ``presentation`` (``live`` or an attack) before its camera.

    Refused as a whole before the unit is touched (typed error): an unknown presentation, no test ``merchant``,
    a ``session`` without one of :data:`~provisioning.facepay_steps.ROLES`.  Anything after that ends as a failed
    stage of the result (its ``error`` the first typed error).  ``analyser`` makes the station's analyser for the
    unit's calibration (default: :func:`default_analyser`), ``unit_app`` the unit's face-pay app over the
    connection; ``frame_sets`` are judged (default :data:`FRAME_SETS`); ``save_frames`` keeps each one
    (``camera.faceoffline``) with the calibration used.  ``listener`` gets the events (step ``face-pay-check``)."""
    if presentation not in PRESENTATIONS:
        raise UnknownPresentation(presentation=presentation)
    if merchant is None:
        raise NoTestMerchant()
    acting = require_role(session, *ROLES)
    frame_sets = FRAME_SETS if frame_sets is None else frame_sets
    if frame_sets < 1:
        raise ValueError("frame_sets must be at least 1")
    ledger = station.ledger
    ledger = ledger if ledger.operator == acting.operator else ledger.as_operator(acting.operator)
    report = Reporter(listener, serial, FACEPAY_STEP)
    check = _Check(serial, presentation, report)
    started = time.monotonic()
    try:
        device = station.find(serial)  # recorded as seen: the operation needs the unit in the ledger
        check.model = model_by_id(device.model)
        with ledger.operation(serial, FACEPAY_STEP) as op:
            if not check.attack:  # an attack pays nothing: it needs no settled money
                _settle(check, outbox)
            analyser = analyser or _loaded(check)
            try:
                presenter.present(serial, presentation)
                with station.connect(serial) as client:
                    _on_unit(check, client, outbox, merchant, analyser, unit_app, frame_sets, save_frames, unit_timeout)
            finally:
                _quietly(serial, lambda: presenter.release(serial))
            op.result = _record(check)
    except Exception as exc:
        if isinstance(exc, NaiadError):
            LOG.info("%s: face-pay check stopped: %s", serial, exc)
        else:
            LOG.exception("%s: face-pay check crashed", serial)
            exc = FacePayCheckCrashed(serial=serial, detail=crash_detail(exc))
        if check.error is None:
            check.error = exc
        if not check.stages or check.stages[-1].ok:
            check.stages.append(Stage(_next_stage(check), False, 0.0, str(exc)))
    result = _result(check, time.monotonic() - started)
    report.finished(result)
    return result


def _on_unit(
    check: _Check,
    client: ManagementClient,
    outbox: Outbox,
    merchant: Merchant,
    analyser: AnalyserFactory,
    unit_app: UnitAppFactory | None,
    frame_sets: int,
    save_frames: Path | None,
    unit_timeout: float,
) -> None:
    """The stages on one connection to the unit."""
    analyses = _capture_and_analyse(check, client, analyser, frame_sets, save_frames)
    if analyses is None:
        return
    station_ok = _judge(check, analyses)
    if not station_ok and not check.attack:
        return
    token = _ask_unit(check, client, merchant, unit_app or default_unit_app, unit_timeout)
    if token is not None and not check.attack:
        pay_and_refund(check.stage, outbox, merchant, check.serial, token, check.trade)


def _loaded(check: _Check) -> AnalyserFactory:
    """The default analyser, its models loaded before the face is presented and timed apart from the stages."""
    began = time.monotonic()
    factory = default_analyser()
    check.extra["models_seconds"] = round(time.monotonic() - began, 3)
    return factory


def _settle(check: _Check, outbox: Outbox) -> None:
    """The unit's earlier face-pay money, settled before the operator presents a face (raises when it cannot be:
    the check then stops before the unit is asked for a token)."""
    settled = settle_earlier(outbox, check.serial)
    check.extra["settled"] = settled
    for trade_no in settled:
        check.report.message(_("Earlier trade {trade_no} of this unit refunded first", trade_no=trade_no))


def _capture_and_analyse(
    check: _Check,
    client: ManagementClient,
    analyser: AnalyserFactory,
    count: int,
    save_frames: Path | None,
) -> list[FaceAnalysis] | None:
    """The capture stage (each frame set analysed as it comes); None when it failed."""
    analyses: list[FaceAnalysis] = []
    analysing = 0.0
    name = f"{check.serial}_{check.presentation}_{time.strftime('%Y%m%dT%H%M%S')}"
    with check.stage("capture") as timed:
        camera = CameraUnit(client, module=None if check.model is None else check.model.camera)
        calibration = _calibration(camera, check)
        judge = analyser(calibration)
        folder = None if save_frames is None else _saving(check, save_frames / name, calibration)
        was_on = camera.projector()
        camera.projector(True)
        try:
            for index in range(count):
                frames = decode_frame_set(camera.capture(("ir", "rgb", "depth")))
                began = time.monotonic()
                analysis = judge.analyse(frames)
                analysing += time.monotonic() - began
                analyses.append(analysis)
                check.report.observe(FACE, FaceObservation(frames.ir, frames.rgb, frames.depth, analysis))
                check.report.progress(index + 1, count, counts="items")
                if folder is not None:
                    folder = _saving(check, folder, calibration, (f"{name}_{index + 1}", frames))
        finally:
            _quietly(check.serial, lambda: camera.projector(was_on))
        if folder is not None:
            check.extra["saved_frames"] = str(folder)
        timed.ok, timed.detail = True, _("{count} frame sets", count=count)
    if not timed.ok:
        return None
    # The capture stage's time is the link's and the camera's; the analysis is the next two stages'.
    last = check.stages[-1]
    check.stages[-1] = Stage(last.name, last.ok, max(0.0, last.seconds - analysing), last.detail)
    return analyses


def _calibration(camera: CameraUnit, check: _Check) -> CameraCalibration:
    """The unit's stored calibration, else its model's nominal one (a unit not calibrated yet can be checked)."""
    stored = camera.read_calibration()
    if stored is not None:
        return CameraCalibration.decode(stored)
    from camera.facegeometry import nominal_calibration

    assert check.model is not None  # found before the unit was connected
    check.report.message(_("The unit holds no calibration: the model's nominal one is used"))
    nominal: CameraCalibration = nominal_calibration(check.serial, check.model.id, check.model.camera)
    return nominal


def _saving(
    check: _Check, folder: Path, calibration: CameraCalibration, frame_set: tuple[str, Frames] | None = None
) -> Path | None:
    """Keep the check's frames in its own ``folder``: first the calibration they are judged with
    (``calibration.bin``), then each ``frame_set``.  The folder to go on saving into, or None once saving
    failed: that is a warning (the unit's check goes on), never a failed stage."""
    from camera.faceoffline import save_folder_calibration, save_frame_set

    try:
        if frame_set is None:
            save_folder_calibration(folder, calibration)
        else:
            save_frame_set(folder, *frame_set)
    except (NaiadError, OSError) as exc:
        LOG.warning("%s: frames not saved in %s: %s", check.serial, folder, exc)
        check.report.message(_("The frames are not saved: {detail}", detail=str(exc)))
        return None
    return folder


def station_decision(analyses: list[FaceAnalysis]) -> FaceAnalysis:
    """The frame set that stands for the station's decision over all of them: a second face in any one decides
    ``several-faces``; else the decision most of them got, live only when more than half are live (the lowest
    live score of those stands for it; an attack, the lowest score of the judged ones)."""
    several = [a for a in analyses if a.decision == Decision.SEVERAL_FACES]
    if several:
        return several[0]
    majority = len(analyses) // 2 + 1
    live = [a for a in analyses if a.decision == Decision.LIVE]
    if len(live) >= majority:
        return min(live, key=_score)
    judged = [a for a in analyses if a.decision in (Decision.LIVE, Decision.ATTACK)]
    if len(judged) >= majority:
        return min(judged, key=_score)
    unjudged = Counter(a.decision for a in analyses if a not in judged)
    most = unjudged.most_common(1)[0][0]
    return next(a for a in analyses if a.decision == most)


def _score(analysis: FaceAnalysis) -> float:
    return analysis.liveness.score if analysis.liveness is not None else 0.0


def _judge(check: _Check, analyses: list[FaceAnalysis]) -> bool:
    """The detect and liveness stages from the analyses; whether the station judged as the check wants (a live
    face live, an attack refused)."""
    chosen = station_decision(analyses)
    check.extra["station"] = {
        "decision": str(chosen.decision),
        "decisions": [str(a.decision) for a in analyses],
        "analysis": chosen.as_dict(),
    }
    found = chosen.decision in (Decision.LIVE, Decision.ATTACK)
    detect_seconds = sum(a.seconds.get("detect", 0.0) + a.seconds.get("quality", 0.0) for a in analyses)
    check.start("detect")
    if found:
        judged = sum(a.decision in (Decision.LIVE, Decision.ATTACK) for a in analyses)
        detail = _("One good face in {found} of {count} frame sets", found=judged, count=len(analyses))
        check.end("detect", True, detect_seconds, detail)
    else:
        error: NaiadError
        if check.attack:
            error = AttackNotSeen(
                presentation=PRESENTATION_NAMES[check.presentation], serial=check.serial, detail=chosen.detail
            )
        else:
            error = StationRefusedFace(serial=check.serial, detail=chosen.detail)
        check.end("detect", False, detect_seconds, chosen.detail or str(error), error)
        return False
    check.start("liveness")
    seconds = sum(a.seconds.get("liveness", 0.0) for a in analyses)
    score = _score(chosen)
    check.extra["liveness_score"] = round(score, 4)
    live = chosen.decision == Decision.LIVE
    failures = "; ".join(chosen.liveness.failures) if chosen.liveness is not None else ""
    if live:
        detail = _("Live (score {score:.2f})", score=score)
    else:
        detail = _("Refused as an attack (score {score:.2f})", score=score) + (f": {failures}" if failures else "")
    if live == (not check.attack):
        return check.end("liveness", True, seconds, detail)
    error = (
        StationAcceptedAttack(presentation=PRESENTATION_NAMES[check.presentation], serial=check.serial)
        if check.attack
        else StationRefusedFace(serial=check.serial, detail=detail)
    )
    return check.end("liveness", False, seconds, detail, error)


def _ask_unit(
    check: _Check, client: ManagementClient, merchant: Merchant, unit_app: UnitAppFactory, timeout: float
) -> str | None:
    """The unit stage: the face token of a live face, else None (and for an attack, None whatever it gave)."""
    token: str | None = None
    with check.stage("unit") as timed:
        reply = unit_app(client).test_transaction(merchant.merchant_id, merchant.store_id, timeout=timeout)
        check.extra["unit"] = {
            "result": reply.result,
            "reason": reply.reason,
            "liveness_score": reply.liveness_score,
            "detail": reply.detail,
        }
        reason = _(UNIT_REASONS.get(reply.reason or "", reply.reason or "")) if reply.reason else ""
        if reply.result == "token" and reply.ftoken:
            if check.attack:
                timed.fail(UnitAcceptedAttack(serial=check.serial, presentation=PRESENTATION_NAMES[check.presentation]))
            else:
                token = reply.ftoken
                score = reply.liveness_score
                timed.ok = True
                timed.detail = (
                    _("Face token received (the unit's liveness score {score:.2f})", score=score)
                    if score is not None
                    else _("Face token received")
                )
        elif check.attack and reply.reason in UNIT_REFUSALS:
            timed.ok, timed.detail = True, _("Refused: {reason}", reason=reason)
        else:
            said = UNIT_REASONS.get(reply.reason or "", reply.reason or NO_REASON)  # a msgid where it is known
            if check.attack:
                attack = PRESENTATION_NAMES[check.presentation]
                timed.fail(UnitDidNotJudgeAttack(serial=check.serial, presentation=attack, reason=said))
            else:
                timed.fail(UnitRefusedFace(serial=check.serial, reason=said))
    return token


def _next_stage(check: _Check) -> str:
    """The stage a check stopped in when a typed error ended it outside a stage (the unit not found ...)."""
    done = {stage.name for stage in check.stages}
    return next((name for name in STAGES if name not in done), STAGES[-1])


def _passed(check: _Check) -> bool:
    names = [stage.name for stage in check.stages]
    if not check.stages or not all(stage.ok for stage in check.stages):
        return False
    if check.attack:
        return names == ["capture", "detect", "liveness", "unit"] and check.trade.trade_no is None
    return names[-1] == "refund-query" and check.trade.refunded


def _record(check: _Check) -> dict[str, Any]:
    """What the ledger keeps of a check: the outcome, the trade, the stages; never the token."""
    return {
        "result": "pass" if _passed(check) else "fail",
        "presentation": check.presentation,
        "trade_no": check.trade.trade_no,
        "refunded": check.trade.refunded,
        "payment_pending": check.trade.pending,
        "settled": check.extra.get("settled", []),
        "stages": [{"name": s.name, "ok": s.ok, "seconds": round(s.seconds, 3)} for s in check.stages],
        "error": None if check.error is None else type(check.error).__name__,
    }


def _result(check: _Check, seconds: float) -> FacePayCheckResult:
    extra = dict(check.extra)
    if check.trade.pending is not None:
        extra["payment_pending"] = check.trade.pending
    if check.error is not None:
        extra["error"] = check.error.as_dict()
    return FacePayCheckResult(
        serial=check.serial,
        presentation=check.presentation,
        passed=_passed(check),
        stages=tuple(check.stages),
        total_seconds=seconds,
        trade_no=check.trade.trade_no,
        refunded=check.trade.refunded,
        extra=extra,
        error=check.error,
    )


def _quietly(serial: str, action: Callable[[], object]) -> None:
    """Tidying after the check (projector, presenter): a unit gone by now must not hide the check's outcome."""
    try:
        action()
    except NaiadError as exc:
        LOG.info("%s: could not tidy up after the face-pay check: %s", serial, exc)
