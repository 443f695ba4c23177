"""Money-call rules, pure: the opposite money call is refused while the first is open, and which
failures are definite (Cotpay surely did not act)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cotpay.ipn import IpnBody, IpnStep
from workflows import rules
from workflows.calls import Failure
from workflows.models import EscrowStatus, IpnSignal, OrderInput
from workflows.rules import Facts, Refused
from workflows.state_machine import OrderRecord

S = EscrowStatus
ORDER = OrderInput(order_ref="r-1", seller_id="S0000001", buyer_id="0912345678", amount=150_000)


def _attention(**kw: Any) -> Facts:
    return Facts(
        status=S.NEEDS_ATTENTION,
        money_held=True,
        delivered=True,
        payout_started=True,
        attention_step="payment",
        **kw,
    )


def _code(facts: Facts, action: str) -> str:
    with pytest.raises(Refused) as caught:
        rules.operator_action(facts, action)  # type: ignore[arg-type]
    return caught.value.code


def test_open_money_calls_block_the_opposite_call_only() -> None:
    doubt = _attention(payout_in_doubt=True)
    assert _code(doubt, "refund") == "payout_in_doubt"
    assert rules.operator_action(doubt, "retry") is False
    assert rules.operator_action(doubt, "release") is False
    pending = _attention(return_pending=True)
    assert _code(pending, "release") == "return_pending"
    assert rules.operator_action(pending, "retry") is False
    assert rules.operator_action(pending, "refund") is False
    assert _code(_attention(return_pending=True), "cancel") == "money_held"


@pytest.mark.parametrize(
    ("kind", "definite"),
    [
        ("WalletNotLinked", True),
        ("PayoutFailed", True),
        ("PayoutTooEarly", True),
        ("InformationMismatch", True),
        ("InvalidRequest", True),
        ("Timeout", False),
        ("Transport", False),
        ("OrderBusy", False),
        ("Protocol", False),
        ("UnknownCode", False),
    ],
)
def test_which_failures_are_definite(kind: str, definite: bool) -> None:
    assert Failure("payment", kind, None, "m").definite is definite


def test_money_is_not_held_once_an_ipn_says_it_moved() -> None:
    """A REFUNDED or PAID_OUT IPN recorded after a call of its kind, in the same activation as an
    operator action (before the run loop turns it into the final status), already makes
    release/refund impossible."""
    now = datetime(2026, 11, 25, 10, tzinfo=UTC)
    for status, step in (("REFUNDED", IpnStep.RETURN), ("PAID_OUT", IpnStep.PAYMENT)):
        record = OrderRecord(
            inp=ORDER, status=S.NEEDS_ATTENTION, status_since=now, cotpay_order_id=7
        )
        record.record_ipn(_ipn("HOLDING", IpnStep.VERIFY), now)
        assert record.facts().money_held
        # Before any call of its kind the IPN is only evidence (``ipn_early``, patch
        # ``early-outcome-ipn``): the money stays held.
        record.record_ipn(_ipn(status, step, tx="early"), now)
        assert record.timeline[-1].kind == "ipn_early" and record.facts().money_held
        if status == "REFUNDED":
            record.return_called_at = now
        else:
            record.payout_called_at = now
        record.record_ipn(_ipn(status, step), now)
        assert not record.facts().money_held
        with pytest.raises(Refused):
            rules.operator_action(record.facts(), "release")


def _ipn(status: str, step: IpnStep, tx: str = "") -> IpnSignal:
    body = IpnBody(
        idOrder=7,
        status=status,
        code=10100,
        amount=ORDER.amount,
        transactionId=f"t-{status}{tx}",
    )
    return IpnSignal(step=step, body=body)
