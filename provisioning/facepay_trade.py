"""The face-pay check's trade: 0.01 paid with the unit's face token, queried, refunded and the refund queried.

Payments and refunds go through the ledger's :class:`~provisioning.outbox.Outbox` (written first, never done
twice), queries straight to the platform.  Once the payment went through, the refund is tried whatever the
query said: a check never leaves the test buyer's money with the merchant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from enrollment.errors import PlatformRefused, PlatformReplyInvalid, PlatformUnavailable
from enrollment.gateway import Method
from i18n import N_, _
from terminal.errors import NaiadError

from .facepay_errors import TradeDisagrees
from .facepay_steps import TEST_AMOUNT
from .registration import translated

if TYPE_CHECKING:
    from enrollment.config import Merchant

    from .outbox import Outbox

LOG = logging.getLogger(__name__)

NO_TRADE = "TRADE_NOT_EXIST"
SUBJECT = "Naiad face-pay check"
"""The payment's subject and the refund's reason at the platform (platform data, not shown to people)."""


@dataclass
class StageOutcome:
    """How a stage is ending: set ``ok`` and ``detail`` (translated), or :meth:`fail` with a typed error."""

    started: float
    ok: bool = False
    detail: str = ""
    error: NaiadError | None = None

    def fail(self, error: NaiadError) -> None:
        self.ok, self.detail, self.error = False, str(error), error


StageRunner = Callable[[str], AbstractContextManager[StageOutcome]]
"""Runs the named stage around a block: times it, and ends it failed on a typed error the block raises."""


@dataclass(frozen=True)
class Trade:
    trade_no: str | None = None
    refunded: bool = False


def pay_and_refund(stage: StageRunner, outbox: Outbox, merchant: Merchant, serial: str, token: str) -> Trade:
    """The ``pay``, ``query``, ``refund`` and ``refund-query`` stages of unit ``serial`` at ``merchant``."""

    @contextmanager
    def platform(name: str) -> Iterator[StageOutcome]:
        with stage(name) as outcome:
            try:
                yield outcome
            except PlatformRefused as refusal:  # in the enrollment flows' words where they have some
                context = {"serial": serial, "merchant_id": merchant.merchant_id, "store_id": merchant.store_id}
                raise translated(refusal, **context) from refusal

    paid: dict[str, Any] = {}
    with platform("pay") as outcome:
        biz = {
            "scene": "face",
            "auth_code": token,
            "total_amount": TEST_AMOUNT,
            "subject": SUBJECT,
            "merchant_id": merchant.merchant_id,
            "store_id": merchant.store_id,
            "serial": serial,
        }
        try:
            paid = outbox.call(Method.TRADE_PAY, biz, serial=serial)
        except (PlatformUnavailable, PlatformReplyInvalid):
            paid = _unanswered(outbox, serial) or {}
            if not paid:
                raise
            outcome.ok = True
            outcome.detail = _(
                "Trade {trade_no}: {amount} yuan (the platform's answer was lost; its query found the trade)",
                trade_no=paid["trade_no"],
                amount=paid["total_amount"],
            )
        else:
            outcome.ok = True
            outcome.detail = _(
                "Trade {trade_no}: {amount} yuan from {buyer}",
                trade_no=paid["trade_no"],
                amount=paid["total_amount"],
                buyer=paid["buyer_logon_id"],
            )
    if not paid:
        return Trade()
    trade_no = paid["trade_no"]
    with platform("query") as outcome:
        found = outbox.read(Method.TRADE_QUERY, {"out_trade_no": paid["out_trade_no"]})
        status, amount = found["trade_status"], found["total_amount"]
        if found["trade_no"] != trade_no or status != "TRADE_SUCCESS" or amount != TEST_AMOUNT:
            outcome.fail(TradeDisagrees(what=N_("query"), trade_no=trade_no, found=f"{status} {amount}"))
        else:
            outcome.ok, outcome.detail = True, _("{status}, {amount} yuan", status=status, amount=amount)
    refund: dict[str, Any] = {}
    with platform("refund") as outcome:
        asked = {"trade_no": trade_no, "refund_amount": TEST_AMOUNT, "refund_reason": SUBJECT}
        refund = outbox.call(Method.TRADE_REFUND, asked, serial=serial)
        outcome.ok, outcome.detail = True, _("{amount} yuan refunded", amount=refund["refund_amount"])
    if not refund:
        return Trade(trade_no)
    with platform("refund-query") as outcome:
        confirmed = outbox.read(
            Method.TRADE_REFUND_QUERY, {"out_request_no": refund["out_request_no"], "trade_no": trade_no}
        )
        status, amount = confirmed["refund_status"], confirmed["refund_amount"]
        if status != "REFUND_SUCCESS" or amount != TEST_AMOUNT:
            outcome.fail(TradeDisagrees(what=N_("refund query"), trade_no=trade_no, found=f"{status} {amount}"))
        else:
            outcome.ok, outcome.detail = True, _("Refund of {amount} yuan confirmed", amount=amount)
    return Trade(trade_no, refunded=True)


def _unanswered(outbox: Outbox, serial: str) -> dict[str, Any] | None:
    """After a payment the platform did not answer: the trade (its query) when it was made, so it is refunded
    like any other; None when the platform cannot tell now (the call stays waiting) or says it was not made (the
    waiting call is dropped then, so its single-use token cannot pay later, with nobody to refund it)."""
    waiting = outbox.pending(Method.TRADE_PAY, serial)
    if not waiting:
        return None
    number = waiting[-1].request_no
    try:
        found = outbox.read(Method.TRADE_QUERY, {"out_trade_no": number})
    except PlatformRefused as refusal:
        if refusal.sub_code == NO_TRADE:
            _quietly(lambda: outbox.abandon(number))
        return None
    except NaiadError:
        return None
    _quietly(lambda: outbox.resume(Method.TRADE_PAY, serial))  # settled with the platform's first answer
    return found


def _quietly(action: Callable[[], object]) -> None:
    """Tidying the outbox: a call settled meanwhile, or a platform gone again, changes nothing for the trade."""
    try:
        action()
    except NaiadError as exc:
        LOG.info("the face-pay check's payment call was left as it was: %s", exc)
