"""Inputs and outputs of the Cotpay activities: pure pydantic data, importable by workflows.

No input carries an IPN URL or secret: the activity builds the signed URL from its own settings,
so the IPN secret never enters workflow history.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cotpay.models import PayMethod


class ActivityModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerCheckInput(ActivityModel):
    order_ref: str
    seller_id: str
    buyer_id: str


class SignUpInput(ActivityModel):
    order_ref: str
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


class OrderCallInput(ActivityModel):
    """verify-order, payment and return-request act on one Cotpay order."""

    order_ref: str
    id_order: int
    seller_id: str
    buyer_id: str


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
