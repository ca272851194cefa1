"""The face-pay check's typed errors: each says what went wrong with the unit, the station or the trade, and
what to do (:mod:`provisioning.facepay_check` ends a stage with one)."""

from __future__ import annotations

from i18n import N_
from terminal.errors import NaiadError

PRESENTATION_NAMES = {  # camera.faces.PRESENTATIONS, for people
    "live": N_("live face"),
    "photo": N_("printed photo of a face"),
    "screen": N_("screen showing a face"),
    "mask": N_("3D mask"),
}


class FacePayCheckError(NaiadError):
    message = N_("The face-pay check of unit {serial} failed")


class FacePayCheckCrashed(FacePayCheckError):
    message = N_("The face-pay check of unit {serial} stopped on an unexpected error: {detail}")
    remedy = N_(
        "Send the station's log to support, then run the check again: before it pays, it refunds a payment of "
        "this unit left unrefunded."
    )


class UnknownPresentation(FacePayCheckError):
    message = N_("There is no presentation {presentation}")
    remedy = N_("Use a live face, or one of the attacks photo, screen and mask.")


class NoTestMerchant(FacePayCheckError):
    message = N_("The platform configuration names no test merchant for the face-pay check")
    remedy = N_(
        "Add a [test_merchant] table with merchant_id and store_id to the platform configuration (the sandbox "
        "writes one: 'naiad platform serve --station-config FILE')."
    )


class TradeDisagrees(FacePayCheckError):
    message = N_("The platform's {what} of trade {trade_no} does not agree with the payment: {found}")
    remedy = N_(
        "Look the trade up on the platform; the check refunds the payment whatever the query says, and "
        "'naiad register resume' sends a refund left waiting."
    )
    msgid_params = ("what",)


class EarlierTradeUnsettled(FacePayCheckError):
    message = N_("Unit {serial} has earlier face-pay money the platform has not settled: {trades}")
    remedy = N_(
        "No new payment was made. Make sure the station reaches the platform, then run the check again: it "
        "first sends the waiting calls and refunds the earlier payment."
    )


class PaymentPending(FacePayCheckError):
    message = N_(
        "Payment pending ({out_trade_no}): the platform did not answer and may take it; the next check of unit "
        "{serial} settles and refunds it"
    )
    remedy = N_("Make sure the station reaches the platform, then run the check of this unit again.")


class UnitAcceptedAttack(FacePayCheckError):
    message = N_("Unit {serial} gave a face token for an attack ({presentation})")
    remedy = N_("The unit's liveness check let the attack through: the token was not used. Send the unit to repair.")
    msgid_params = ("presentation",)


class UnitRefusedFace(FacePayCheckError):
    message = N_("Unit {serial} gave no face token: {reason}")
    remedy = N_(
        "Present one live face, 35 to 80 cm from the camera, facing it, in even light; if the unit has no "
        "platform access, give it the platform configuration first."
    )
    msgid_params = ("reason",)


class UnitDidNotJudgeAttack(FacePayCheckError):
    message = N_("Unit {serial} did not refuse the attack ({presentation}) itself: {reason}")
    remedy = N_(
        "If the unit has no platform access, give it the platform configuration and run the attack again; if the "
        "platform did not recognise the face, the unit's liveness check let the attack through: send the unit to "
        "repair."
    )
    msgid_params = ("presentation", "reason")


class StationRefusedFace(FacePayCheckError):
    message = N_("The station found no good live face before unit {serial}: {detail}")
    remedy = N_(
        "Present one live face, 35 to 80 cm from the camera, facing it, in even light, with nobody else in view."
    )


class AttackNotSeen(FacePayCheckError):
    message = N_("The station saw no face in the attack ({presentation}) before unit {serial}: {detail}")
    remedy = N_("Hold the attack instrument so its face fills the middle of the camera's view, then run it again.")
    msgid_params = ("presentation",)


class StationAcceptedAttack(FacePayCheckError):
    message = N_("The station judged the attack ({presentation}) before unit {serial} a live face")
    remedy = N_(
        "The station's liveness check let the attack through: check the unit's camera calibration and the "
        "liveness model's threshold (face configuration), then run it again."
    )
    msgid_params = ("presentation",)
