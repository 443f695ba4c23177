"""How the workflow calls the Cotpay activities: typed calls, timeouts, retry policies, failure
reading.

Each ``Call`` names the activity by its method (``CotpayActivities.payment``), so
``workflow.execute_activity_method`` schedules it under the method's registered name
(``cotpay.payment``) and mypy checks the argument and the result against the method.

``START_TO_CLOSE`` must exceed one HTTP call (``CotpaySettings.request_timeout``, 25 s by
default); ``run_worker`` refuses to start when it does not. Temporal retries only what the code
table calls transient (11800, transport); ``ApplicationError``s of the other Cotpay conditions
are non-retryable and reach the workflow at once. ``schedule_to_close`` bounds the retries: when
Cotpay stays unreachable that long, the order goes to NEEDS_ATTENTION (step kept for ``retry``)
with type ``Timeout``. ``START_TO_CLOSE`` is the HTTP timeout plus a margin, so that a worker
killed mid-call is retried after about half a minute, not a minute.

A failure is *definite* when Cotpay answered with a non-retryable code, or our own models refused
the request before it was sent: the call moved no money. Anything else (timeout, transport, 11800,
an unreadable or unknown answer) leaves it open whether Cotpay acted; ``Failure.definite`` says
which, and the operator rules refuse the opposite money call while the first is in doubt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError

from activities.cotpay_activities import CotpayActivities
from activities.errors import INVALID_REQUEST
from activities.models import (
    CallResult,
    CreateOrderInput,
    CreateOrderResult,
    CustomerCheckInput,
    OrderCallInput,
    SignUpInput,
    VerifyOrderInput,
)
from cotpay.codes import CODES, SUCCESS

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

START_TO_CLOSE = timedelta(seconds=35)

NON_RETRYABLE: tuple[str, ...] = (
    *(info.name for info in CODES.values() if info.code != SUCCESS and not info.retryable),
    "UnknownCode",
    "Protocol",
    INVALID_REQUEST,
)

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=0,
    non_retryable_error_types=list(NON_RETRYABLE),
)

DEFINITE: frozenset[str] = frozenset(NON_RETRYABLE) - {"UnknownCode", "Protocol"}

# Conditions that end an order in FAILED while it is being created (docs/workflow.md, Cotpay codes).
FATAL_AT_CREATE = frozenset(
    {"SellerNotFound", "BuyerNotFound", "ValidationFailed", INVALID_REQUEST}
)


@dataclass(frozen=True)
class Call(Generic[A, R]):
    """One Cotpay activity as the workflow calls it: the activity method, the step name the
    order records (``Attention.step``, ``retry``), and how long its retries may run."""

    activity: Callable[[CotpayActivities, A], Awaitable[R]]
    step: str
    schedule_to_close: timedelta


CUSTOMER_ID: Call[CustomerCheckInput, CallResult] = Call(
    CotpayActivities.customer_id, "customer_id", timedelta(minutes=10)
)
SIGN_UP: Call[SignUpInput, CallResult] = Call(
    CotpayActivities.sign_up, "sign_up", timedelta(minutes=10)
)
CREATE_ORDER: Call[CreateOrderInput, CreateOrderResult] = Call(
    CotpayActivities.create_order, "create", timedelta(minutes=10)
)
VERIFY_ORDER: Call[VerifyOrderInput, CallResult] = Call(
    CotpayActivities.verify_order, "verify", timedelta(minutes=10)
)
PAYMENT: Call[OrderCallInput, CallResult] = Call(
    CotpayActivities.payment, "payment", timedelta(hours=1)
)
RETURN_REQUEST: Call[OrderCallInput, CallResult] = Call(
    CotpayActivities.return_request, "return", timedelta(hours=1)
)

CREATION_STEPS = frozenset(c.step for c in (CUSTOMER_ID, SIGN_UP, CREATE_ORDER, VERIFY_ORDER))


@dataclass(frozen=True)
class Failure:
    """Why an activity call did not succeed, as the order records it."""

    step: str
    type: str
    code: int | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def definite(self) -> bool:
        """Cotpay surely did not act on this call (see the module docstring)."""
        return self.type in DEFINITE

    @property
    def reason(self) -> str:
        code = f" ({self.code})" if self.code is not None else ""
        return f"{self.step}: {self.type}{code}: {self.message}"


def failure_of(call: Call[Any, Any], err: ActivityError) -> Failure:
    cause = err.cause
    if isinstance(cause, TimeoutError):
        last = cause.cause
        why = f"; last error: {last.message}" if isinstance(last, ApplicationError) else ""
        return Failure(
            call.step,
            "Timeout",
            None,
            f"no answer within {call.schedule_to_close} of retries{why}",
        )
    if isinstance(cause, ApplicationError) and err.retry_state is RetryState.TIMEOUT:
        return Failure(
            call.step,
            "Timeout",
            None,
            f"no answer within {call.schedule_to_close} of retries; last error: {cause.message}",
        )
    if isinstance(cause, ApplicationError):
        detail: dict[str, Any] = {}
        if cause.details and isinstance(cause.details[0], dict):
            detail = cause.details[0]
        code = detail.get("code")
        data = detail.get("data")
        return Failure(
            call.step,
            cause.type or "ApplicationError",
            code if isinstance(code, int) else None,
            str(detail.get("message") or cause.message),
            data if isinstance(data, dict) else {},
        )
    message = str(cause) if cause is not None else err.message
    return Failure(call.step, type(cause).__name__ if cause else "ActivityError", None, message)
