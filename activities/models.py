"""Inputs and outputs of the Cotpay activities: pure pydantic data, importable by workflows.

No input carries an IPN URL or secret: the activity builds the signed URL from its own settings,
so the IPN secret never enters workflow history. Each input may name the order's ``merchant``
(left out of the payload for the default one, ``DEFAULT_MERCHANT``): the activity calls Cotpay
with that merchant's credentials.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cotpay.models import PayMethod

# The same name as workflows.models.DEFAULT_MERCHANT (tests/unit/test_merchant_inputs.py).
DEFAULT_MERCHANT = "default"


def _is_default(merchant: str) -> bool:
    return merchant == DEFAULT_MERCHANT


def merchant_field() -> Any:
    """Left out of the payload for the default merchant: its inputs stay byte for byte what
    they were (replay, and workers of the previous release)."""
    return Field(default=DEFAULT_MERCHANT, exclude_if=_is_default)


class ActivityModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerCheckInput(ActivityModel):
    order_ref: str
    merchant: str = merchant_field()
    seller_id: str
    buyer_id: str


class SignUpInput(ActivityModel):
    order_ref: str
    merchant: str = merchant_field()
    name: str
    email: str
    phone: str
    agent_id: str | None = None


class CreateOrderInput(ActivityModel):
    """``earlier_call_unanswered``: an earlier create-order call of this workflow got no definite
    answer (it may have created the order), so a matching 10400 is ours even on attempt 1."""

    order_ref: str
    seller_id: str
    buyer_id: str
    amount: int
    description: str
    agent_id: str | None = None
    earlier_call_unanswered: bool = False
    merchant: str = merchant_field()


class OrderCallInput(ActivityModel):
    """verify-order, payment and return-request act on one Cotpay order."""

    order_ref: str
    id_order: int
    seller_id: str
    buyer_id: str
    merchant: str = merchant_field()


class VerifyOrderInput(OrderCallInput):
    pay_method: PayMethod


class CallResult(ActivityModel):
    code: int
    message: str = ""
    data: str | None = None


class CreateOrderResult(ActivityModel):
    id_order: int
    adopted: bool = False
    order: dict[str, Any] | None = None
