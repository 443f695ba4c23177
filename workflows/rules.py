"""Which message is allowed in which state: the update validators, as pure functions.

Each function raises ``Refused`` (a ``ValueError`` and a non-retryable ``ApplicationError`` whose
message is ``"<stable_code>: <message>"`` and type the stable code, so the caller of the update
sees exactly that text) when the message is not allowed,
and returns True when the order is already where the message would take it (the update then
returns the view unchanged: repeating a message is harmless), False when it should act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from temporalio.exceptions import ApplicationError

from workflows.models import EscrowStatus, OperatorActionKind

S = EscrowStatus


@dataclass(frozen=True)
class Facts:
    status: EscrowStatus
    money_held: bool
    delivered: bool
    payout_started: bool
    attention_step: str | None
    payout_in_doubt: bool = False
    return_pending: bool = False
    # A HOLDING IPN was recorded (whatever happened to the money since).
    holding_recorded: bool = False
    # PAID_OUT / REFUNDED: Cotpay reported this outcome after a call of its step; the order ends
    # so as soon as its run loop goes on (``OrderRecord.late_outcome``).
    money_moved: str | None = None


class Refused(ApplicationError, ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", type=code, non_retryable=True)
        self.code = code


def _refuse(code: str, message: str) -> Refused:
    return Refused(code, message)


def confirm_delivery(f: Facts, repeat_guard: Callable[[], bool] = lambda: True) -> bool:
    if f.delivered and f.status in (S.DELIVERED, S.PAYING_OUT, S.PAID_OUT):
        return True
    if f.status is S.HELD or (f.status is S.NEEDS_ATTENTION and f.attention_step == "delivery"):
        return False
    # Delivery was confirmed, and the order has since stopped for an operator (a payout refused,
    # its answer in doubt): a repeated confirmation, such as a shop's retry after a lost answer,
    # is answered with the order as it is, not refused (patch ``repeated-delivery``; asked only
    # here, where it changes the answer).
    if f.delivered and f.status is S.NEEDS_ATTENTION and repeat_guard():
        return True
    raise _refuse("invalid_state", f"cannot confirm delivery of an order in {f.status.value}")


def open_dispute(f: Facts) -> bool:
    if f.status in (S.RETURN_REQUESTED, S.REFUNDED):
        return True
    if f.status in (S.HELD, S.DELIVERED):
        return False
    if f.status is S.PAYING_OUT and not f.payout_started:
        return False
    if f.status is S.NEEDS_ATTENTION and f.attention_step == "delivery":
        return False
    if f.status in (S.CREATING, S.AWAITING_PAYMENT):
        raise _refuse("not_held", "no money is held yet; cancel the order instead")
    raise _refuse("invalid_state", f"cannot open a dispute on an order in {f.status.value}")


def cancel(f: Facts) -> bool:
    if f.status is S.CANCELLED:
        return True
    if f.status in (S.CREATING, S.AWAITING_PAYMENT) and not f.money_held:
        return False
    raise _refuse("invalid_state", f"cannot cancel an order in {f.status.value}")


def _always() -> bool:
    return True


def operator_action(
    f: Facts, action: OperatorActionKind, money_guard: Callable[[], bool] = _always
) -> bool:
    """``money_guard``: whether the refusals of the patch ``money-moved-guard`` apply (the
    workflow's patch; asked only when one of them would refuse)."""
    if action == "release" and f.status in (S.PAYING_OUT, S.PAID_OUT):
        return True
    if action == "refund" and f.status in (S.RETURN_REQUESTED, S.REFUNDED):
        return True
    if action == "cancel" and f.status is S.CANCELLED:
        return True
    if f.status is not S.NEEDS_ATTENTION:
        raise _refuse(
            "invalid_state", f"{action}: the order is {f.status.value}, not NEEDS_ATTENTION"
        )
    if f.money_moved is not None and money_guard():
        raise _refuse(
            "money_moved",
            f"{action}: Cotpay reported {f.money_moved} for this order; it ends {f.money_moved}",
        )
    if action in ("release", "refund") and not f.money_held:
        raise _refuse("not_held", f"{action}: no money is held for this order")
    if action == "release" and f.return_pending:
        raise _refuse(
            "return_pending",
            "release: a return request may be pending at Cotpay; wait for the seller's decision"
            " (REFUNDED or RETURN_REJECTED IPN) or retry the return request",
        )
    if action == "refund" and f.payout_in_doubt:
        raise _refuse(
            "payout_in_doubt",
            "refund: Cotpay gave no definite answer to the payout call; retry it first",
        )
    if action == "cancel" and f.money_held:
        raise _refuse("money_held", "cancel: money is held; use refund or release")
    if action == "cancel" and f.holding_recorded and money_guard():
        raise _refuse(
            "money_held",
            "cancel: Cotpay reported the money held (HOLDING IPN); use refund or release",
        )
    return False
