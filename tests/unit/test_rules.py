"""Which message is allowed in which state (pure validator rules)."""

from __future__ import annotations

import pytest

from workflows import rules
from workflows.models import EscrowStatus
from workflows.rules import Facts, Refused

S = EscrowStatus


def facts(status: EscrowStatus, **kw: object) -> Facts:
    base: dict[str, object] = {
        "money_held": status in (S.HELD, S.DELIVERED, S.PAYING_OUT, S.NEEDS_ATTENTION),
        "delivered": status in (S.DELIVERED, S.PAYING_OUT, S.PAID_OUT),
        "payout_started": False,
        "attention_step": None,
    }
    base.update(kw)
    return Facts(status=status, **base)  # type: ignore[arg-type]


def code_of(call: object) -> str:
    with pytest.raises(Refused) as caught:
        call()  # type: ignore[operator]
    return caught.value.code


def test_refusal_is_a_value_error_with_a_stable_code() -> None:
    with pytest.raises(ValueError, match=r"^invalid_state: "):
        rules.confirm_delivery(facts(S.AWAITING_PAYMENT))


def test_confirm_delivery() -> None:
    assert rules.confirm_delivery(facts(S.HELD)) is False
    assert rules.confirm_delivery(facts(S.DELIVERED)) is True
    assert rules.confirm_delivery(facts(S.PAID_OUT)) is True
    assert rules.confirm_delivery(facts(S.NEEDS_ATTENTION, attention_step="delivery")) is False
    for status in (S.CREATING, S.AWAITING_PAYMENT, S.RETURN_REQUESTED, S.EXPIRED):
        assert code_of(lambda: rules.confirm_delivery(facts(status))) == "invalid_state"


def test_open_dispute() -> None:
    assert rules.open_dispute(facts(S.HELD)) is False
    assert rules.open_dispute(facts(S.DELIVERED)) is False
    assert rules.open_dispute(facts(S.PAYING_OUT)) is False
    assert rules.open_dispute(facts(S.RETURN_REQUESTED)) is True
    assert code_of(lambda: rules.open_dispute(facts(S.PAYING_OUT, payout_started=True))) == (
        "invalid_state"
    )
    assert code_of(lambda: rules.open_dispute(facts(S.AWAITING_PAYMENT))) == "not_held"
    assert code_of(lambda: rules.open_dispute(facts(S.PAID_OUT))) == "invalid_state"


def test_cancel() -> None:
    assert rules.cancel(facts(S.CREATING)) is False
    assert rules.cancel(facts(S.AWAITING_PAYMENT)) is False
    assert rules.cancel(facts(S.CANCELLED)) is True
    assert code_of(lambda: rules.cancel(facts(S.AWAITING_PAYMENT, money_held=True))) == (
        "invalid_state"
    )
    assert code_of(lambda: rules.cancel(facts(S.HELD))) == "invalid_state"


def test_operator_action() -> None:
    attention = facts(S.NEEDS_ATTENTION, attention_step="payment")
    assert rules.operator_action(attention, "retry") is False
    assert rules.operator_action(attention, "release") is False
    assert rules.operator_action(attention, "refund") is False
    assert code_of(lambda: rules.operator_action(attention, "cancel")) == "money_held"
    unpaid = facts(S.NEEDS_ATTENTION, money_held=False, attention_step="create")
    assert rules.operator_action(unpaid, "cancel") is False
    assert code_of(lambda: rules.operator_action(unpaid, "release")) == "not_held"
    assert code_of(lambda: rules.operator_action(facts(S.HELD), "retry")) == "invalid_state"
    assert rules.operator_action(facts(S.PAID_OUT), "release") is True
    assert rules.operator_action(facts(S.REFUNDED), "refund") is True
    assert rules.operator_action(facts(S.CANCELLED), "cancel") is True
