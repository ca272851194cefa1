"""The face-pay check's trade: 0.01 paid with the unit's face token, queried, refunded and the refund queried.

Payments and refunds go through the ledger's :class:`~provisioning.outbox.Outbox` (written first, never done
twice), queries straight to the platform.  Once the payment went through, the refund is tried whatever the
query said or raised.  A payment the platform did not answer is never dropped: it is sent again under its own
number (the platform does it at most once), and if it stays unanswered it waits in the outbox, where the next
check of the unit (:func:`settle_earlier`, before the unit is asked for a token) sends it and refunds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from enrollment.errors import PlatformRefused, PlatformReplyInvalid, PlatformUnavailable
from enrollment.gateway import Method
from i18n import N_, _
from terminal.errors import NaiadError

from .facepay_errors import EarlierTradeUnsettled, PaymentPending, TradeDisagrees
from .facepay_steps import TEST_AMOUNT
from .registration import translated

if TYPE_CHECKING:
    from enrollment.config import Merchant
    from provisioning.ledger import PlatformCallRecord

    from .outbox import Outbox

LOG = logging.getLogger(__name__)

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


@dataclass
class Trade:
    """The check's trade as far as it went: filled in as each step ends, so an error later loses nothing."""

    trade_no: str | None = None
    refunded: bool = False
    pending: str | None = None
    """The ``out_trade_no`` of a payment the platform left unanswered (it may be taken)."""


def settle_earlier(outbox: Outbox, serial: str) -> list[str]:
    """Settle unit ``serial``'s earlier face-pay money before a new payment: send its waiting ``trade.pay`` and
    ``trade.refund`` calls again, then refund the latest paid trade if it is not wholly refunded.  Returns the
    trades refunded now.  Raises :class:`EarlierTradeUnsettled` naming them while any is unresolved.

    The latest payment is the only one that can be left: no check pays while an earlier one is unresolved."""
    for method in (Method.TRADE_PAY, Method.TRADE_REFUND):
        outbox.resume(method, serial)
    waiting = outbox.pending(Method.TRADE_PAY, serial) + outbox.pending(Method.TRADE_REFUND, serial)
    if waiting:
        raise EarlierTradeUnsettled(serial=serial, trades=", ".join(_named(call) for call in waiting))
    paid = outbox.done(Method.TRADE_PAY, serial)
    if paid is None or paid.reply is None:
        return []
    trade_no = str(paid.reply["trade_no"])
    refund = outbox.done(Method.TRADE_REFUND, serial)
    if refund is not None and refund.biz.get("trade_no") == trade_no:
        return []
    try:
        found = outbox.read(Method.TRADE_QUERY, {"trade_no": trade_no})
        left = Decimal(found["total_amount"]) - Decimal(found["refunded_amount"])
        if found["trade_status"] != "TRADE_SUCCESS" or left <= 0:
            return []
        asked = {"trade_no": trade_no, "refund_amount": f"{left:.2f}", "refund_reason": SUBJECT}
        outbox.call(Method.TRADE_REFUND, asked, serial=serial)
    except NaiadError as exc:
        LOG.info("%s: earlier face-pay trade %s not refunded: %s", serial, trade_no, exc)
        raise EarlierTradeUnsettled(serial=serial, trades=trade_no) from exc
    return [trade_no]


def _named(call: PlatformCallRecord) -> str:
    """A waiting call as people look it up: a payment by its out_trade_no, a refund by its trade."""
    return str(call.biz.get("out_trade_no") or call.biz.get("trade_no") or call.request_no)


def pay_and_refund(
    stage: StageRunner, outbox: Outbox, merchant: Merchant, serial: str, token: str, trade: Trade
) -> None:
    """The ``pay``, ``query``, ``refund`` and ``refund-query`` stages of unit ``serial`` at ``merchant``, filling
    in ``trade``; once paid, the refund runs whatever the query raised."""

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
        paid = _pay(outbox, biz, serial, trade)
        trade.trade_no = paid["trade_no"]
        outcome.ok = True
        if "buyer_logon_id" in paid:
            outcome.detail = _(
                "Trade {trade_no}: {amount} yuan from {buyer}",
                trade_no=paid["trade_no"],
                amount=paid["total_amount"],
                buyer=paid["buyer_logon_id"],
            )
        else:
            outcome.detail = _(
                "Trade {trade_no}: {amount} yuan (the platform's answer was lost; its query found the trade)",
                trade_no=paid["trade_no"],
                amount=paid["total_amount"],
            )
    if trade.trade_no is None:
        return
    trade_no = trade.trade_no
    try:
        with platform("query") as outcome:
            found = outbox.read(Method.TRADE_QUERY, {"out_trade_no": paid["out_trade_no"]})
            status, amount = found["trade_status"], found["total_amount"]
            if found["trade_no"] != trade_no or status != "TRADE_SUCCESS" or amount != TEST_AMOUNT:
                outcome.fail(TradeDisagrees(what=N_("query"), trade_no=trade_no, found=f"{status} {amount}"))
            else:
                outcome.ok, outcome.detail = True, _("{status}, {amount} yuan", status=status, amount=amount)
    finally:
        _refund(platform, outbox, serial, trade_no, trade)


def _pay(outbox: Outbox, biz: dict[str, Any], serial: str, trade: Trade) -> dict[str, Any]:
    """Pay: the platform's answer, or the trade's query when only the answers are lost.

    A payment left unanswered is sent again under its own number, which the platform either does now or answers
    with its first answer; then its trade is queried.  It is never dropped on a "no such trade": a sending still
    on its way would pay with nobody to refund it.  Raises :class:`PaymentPending` (the call waits in the outbox
    for the next check) while the platform cannot tell."""
    try:
        return outbox.call(Method.TRADE_PAY, biz, serial=serial)
    except (PlatformUnavailable, PlatformReplyInvalid) as first:
        LOG.info("%s: the face-pay check's payment was not answered (%s): sending it again", serial, first)
    try:
        return outbox.call(Method.TRADE_PAY, biz, serial=serial)
    except (PlatformUnavailable, PlatformReplyInvalid) as again:
        waiting = outbox.pending(Method.TRADE_PAY, serial)
        trade.pending = _named(waiting[-1]) if waiting else None
        pending = PaymentPending(serial=serial, out_trade_no=trade.pending or "?")
        if trade.pending is None:
            raise pending from again
    try:
        found = outbox.read(Method.TRADE_QUERY, {"out_trade_no": trade.pending})
    except NaiadError as exc:  # not found yet, or not reachable: it may still be made
        raise pending from exc
    trade.pending = None
    try:
        outbox.resume(Method.TRADE_PAY, serial)  # settled with the platform's first answer when it can be now
    except NaiadError as exc:
        LOG.info("%s: the face-pay check's payment call was left waiting: %s", serial, exc)
    return found


def _refund(
    platform: Callable[[str], AbstractContextManager[StageOutcome]],
    outbox: Outbox,
    serial: str,
    trade_no: str,
    trade: Trade,
) -> None:
    """The ``refund`` and ``refund-query`` stages of the paid trade ``trade_no``."""
    refund: dict[str, Any] = {}
    with platform("refund") as outcome:
        asked = {"trade_no": trade_no, "refund_amount": TEST_AMOUNT, "refund_reason": SUBJECT}
        refund = outbox.call(Method.TRADE_REFUND, asked, serial=serial)
        outcome.ok, outcome.detail = True, _("{amount} yuan refunded", amount=refund["refund_amount"])
    if not refund:
        return
    trade.refunded = True
    with platform("refund-query") as outcome:
        confirmed = outbox.read(
            Method.TRADE_REFUND_QUERY, {"out_request_no": refund["out_request_no"], "trade_no": trade_no}
        )
        status, amount = confirmed["refund_status"], confirmed["refund_amount"]
        if status != "REFUND_SUCCESS" or amount != TEST_AMOUNT:
            outcome.fail(TradeDisagrees(what=N_("refund query"), trade_no=trade_no, found=f"{status} {amount}"))
        else:
            outcome.ok, outcome.detail = True, _("Refund of {amount} yuan confirmed", amount=amount)
