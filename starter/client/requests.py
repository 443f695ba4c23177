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

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

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

MAX_TIMER_S = 365 * 86_400
# A window is at least one microsecond, the resolution of a duration: less rounds to 0.
MIN_WINDOW_S = 1e-6


def _duration(minimum: float) -> BeforeValidator:
    """A duration as the document states it: an ISO 8601 string, or a number of seconds within
    ``[minimum, MAX_TIMER_S]`` checked as given, before it is rounded to whole microseconds
    (``31536000.000000004`` is over the bound, though it rounds to 365 days). ``true`` is not a
    duration, although pydantic reads it as 1 second. Both found by schemathesis."""

    def check(value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a duration is an ISO 8601 string or a number of seconds, not true")
        if isinstance(value, int | float) and not minimum <= value <= MAX_TIMER_S:
            raise ValueError(f"a number of seconds from {minimum:g} to {MAX_TIMER_S}")
        return value

    return BeforeValidator(check)


def _duration_schema(minimum: float) -> WithJsonSchema:
    """What a duration field accepts, as the OpenAPI document shows it: an ISO 8601 duration
    (``"PT24H"``, ``"P7D"``) or a number of seconds, at most 365 days."""
    seconds = {"type": "number", "minimum": minimum, "maximum": MAX_TIMER_S}
    return WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "duration"}, seconds]}, mode="validation"
    )


Window = Annotated[
    timedelta,
    _duration(MIN_WINDOW_S),
    Field(gt=timedelta(0), le=timedelta(days=365)),
    _duration_schema(MIN_WINDOW_S),
]
Period = Annotated[
    timedelta,
    _duration(0),
    Field(ge=timedelta(0), le=timedelta(days=365)),
    _duration_schema(0),
]


# No white space in an e-mail address, as every regex dialect that reads the pattern agrees:
# ``\s`` alone differs between JSON Schema's (ECMA-262: also U+FEFF), Python's (also U+001C-1F,
# U+0085) and pydantic's Rust engine (also U+0085), and schemathesis found the gap.
_NOT_IN_EMAIL = r"[^@\s\x1c-\x1f\x85\ufeff]"
EMAIL_PATTERN = rf"^{_NOT_IN_EMAIL}+@{_NOT_IN_EMAIL}+\.{_NOT_IN_EMAIL}+$"


class BuyerBody(Model):
    """The ``buyer`` of a start request: the workflow's ``BuyerProfile``, with an e-mail pattern
    that JSON Schema reads as the gateway does."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    email: Annotated[str, StringConstraints(max_length=254, pattern=EMAIL_PATTERN)]

    def profile(self) -> BuyerProfile:
        return BuyerProfile(name=self.name, email=self.email)


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
    buyer: BuyerBody | None = None
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
            buyer=self.buyer.profile() if self.buyer is not None else None,
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
