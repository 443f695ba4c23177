"""The start request both front doors take: ``POST /v1/orders`` and ``cotpay-escrow order start``.

camelCase JSON, unknown fields refused (docs/http-api.md).

ASSUMPTIONS: durations are ISO 8601 (``"PT24H"``) or seconds; amounts are whole VND between
Cotpay's minimum (30,000) and ``MAX_AMOUNT`` (an int64-safe cap so the ``EscrowAmount`` search
attribute can hold it). Defaults the body leaves out (payout rule, timers, auto-release) are
taken from ``EscrowSettings`` when the order starts and fixed into the workflow input.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt

from cotpay.models import MIN_AMOUNT, CotpayId, Description, PayMethod
from runtime.settings import EscrowSettings
from starter.client.escrow import IDENTITY_FIELDS
from workflows.models import (
    BuyerProfile,
    Model,
    OrderInput,
    OrderRef,
    OrderTimers,
    PayoutRule,
)

MAX_AMOUNT = 1_000_000_000_000

Window = Annotated[timedelta, Field(gt=timedelta(0), le=timedelta(days=365))]
Period = Annotated[timedelta, Field(ge=timedelta(0), le=timedelta(days=365))]


class TimerOverrides(Model):
    payment_window: Window | None = None
    grace_period: Period | None = None
    delivery_deadline: Window | None = None
    return_window: Period | None = None
    inspection_period: Period | None = None


class CreateOrderBody(Model):
    order_ref: OrderRef
    seller_id: CotpayId
    buyer_id: CotpayId
    amount: Annotated[StrictInt, Field(ge=MIN_AMOUNT, le=MAX_AMOUNT)]
    description: Description = ""
    pay_method: PayMethod = PayMethod.VIETQR
    agent_id: CotpayId | None = None
    buyer: BuyerProfile | None = None
    payout_rule: PayoutRule | None = None
    timers: TimerOverrides | None = None
    auto_release: StrictBool | None = None

    def to_input(self, settings: EscrowSettings) -> OrderInput:
        overrides = self.timers or TimerOverrides()
        timers = OrderTimers(
            payment_window=overrides.payment_window or settings.payment_window,
            grace_period=_or(overrides.grace_period, settings.grace_period),
            delivery_deadline=overrides.delivery_deadline or settings.delivery_deadline,
            return_window=_or(overrides.return_window, settings.return_window),
            inspection_period=_or(overrides.inspection_period, settings.inspection_period),
        )
        return OrderInput(
            order_ref=self.order_ref,
            seller_id=self.seller_id,
            buyer_id=self.buyer_id,
            amount=self.amount,
            description=self.description,
            pay_method=self.pay_method,
            agent_id=self.agent_id,
            buyer=self.buyer,
            payout_rule=self.payout_rule or settings.payout_rule,
            timers=timers,
            auto_release=bool(self.auto_release),
        )

    def compared_fields(self) -> frozenset[str]:
        """The input fields two starts of one ``orderRef`` must agree on: the identity fields
        plus every optional field this body set explicitly."""
        optional = {"buyer", "payout_rule", "timers", "auto_release"}
        return IDENTITY_FIELDS | (optional & self.model_fields_set)


def _or(value: timedelta | None, default: timedelta) -> timedelta:
    return default if value is None else value
