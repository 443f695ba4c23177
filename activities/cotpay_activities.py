"""The Cotpay activities: the only code that calls Cotpay. One activity per endpoint.

The worker owns the ``CotpayClient`` (one pooled HTTP client) and hands it to
``CotpayActivities`` together with the public URL and the IPN secret, from which each call builds
its signed ``ipnUrl`` (``cotpay.ipn.ipn_url``); workflows never see the secret.

The workflow calls these methods by reference (``workflows/calls.py``: ``execute_activity_method``),
so their names and signatures are the contract; the registered names (``cotpay.payment``, ...)
must never change (running orders replay them; docs/workflow.md).

Why retrying the calls that move money is safe (retry policies live in
``workflows/calls.py``):

* ``payment`` and ``return-request`` name the Cotpay order (``idOrder``) and act only on the
  money held for it. Cotpay pays an order out at most once (the sandbox ledger enforces it) and
  answers 11800 while a money call on that order is in progress, so a retry after a timeout
  either finds the payout done (10100 again) or in progress (11800, retried with backoff); it
  never moves the money twice.
* ``create-order`` carries ``orderCode = orderRef``. A retry after an ambiguous timeout (the
  first attempt may have created the order) gets 10400 with the existing order instead of a
  second order. On a retry (attempt > 1), or when the workflow says an earlier create call of
  this order got no definite answer (``earlier_call_unanswered``: an operator retry after the
  retries ran out), we adopt that order when it matches exactly this order's seller, buyer,
  amount and order code: that is the order our own earlier call made. Otherwise, or when
  anything differs, 10400 goes to the workflow with the evidence and the order waits in
  NEEDS_ATTENTION: the order code was used before this order started.
* ``verify-order``, ``customerID`` and ``sign-up`` move no money; ``sign-up`` of an existing
  customer fails with a validation code, which the workflow reports.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import SecretStr, ValidationError
from temporalio import activity

from activities.errors import application_error, invalid_request
from activities.models import (
    CallResult,
    CreateOrderInput,
    CreateOrderResult,
    CustomerCheckInput,
    OrderCallInput,
    SignUpInput,
    VerifyOrderInput,
)
from cotpay.codes import (
    CotpayCodeError,
    CotpayError,
    CotpayProtocolError,
    ErrorKind,
    OrderCodeExists,
)
from cotpay.ipn import IpnStep, ipn_url
from cotpay.models import (
    CreateOrderRequest,
    CustomerIdRequest,
    DataResponse,
    PaymentRequest,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)

if TYPE_CHECKING:  # the workflow imports this class for typed calls: keep it free of httpx
    from cotpay.client import CotpayClient

T = TypeVar("T")
log = structlog.get_logger("activities.cotpay")


class CotpayActivities:
    def __init__(self, client: CotpayClient, *, public_url: str, ipn_secret: SecretStr) -> None:
        self._client = client
        self._public_url = public_url
        self._ipn_secret = ipn_secret

    def _ipn(self, order_ref: str, step: IpnStep) -> str:
        return ipn_url(self._public_url, self._ipn_secret.get_secret_value(), order_ref, step)

    async def _call(self, endpoint: str, order_ref: str, call: Awaitable[T]) -> T:
        info = activity.info()
        bound = log.bind(endpoint=endpoint, order_ref=order_ref, attempt=info.attempt)
        try:
            result = await call
        except CotpayError as exc:
            _log_failure(bound, exc)
            raise application_error(exc) from None
        bound.info("cotpay.activity.ok")
        return result

    def _order_fields(self, inp: OrderCallInput, step: IpnStep) -> dict[str, Any]:
        """The fields of verify-order, payment and return-request that name the Cotpay order."""
        return {
            "idOrder": inp.id_order,
            "partnerId": inp.seller_id,
            "buyerId": inp.buyer_id,
            "ipnUrl": self._ipn(inp.order_ref, step),
        }

    @staticmethod
    def _request(endpoint: str, build: Any, **fields: Any) -> Any:
        try:
            return build(**fields)
        except ValidationError as exc:
            raise invalid_request(endpoint, exc) from None

    @activity.defn(name="cotpay.customer_id")
    async def customer_id(self, inp: CustomerCheckInput) -> CallResult:
        request = self._request(
            "customerID", CustomerIdRequest, partnerId=inp.seller_id, buyerId=inp.buyer_id
        )
        answer = await self._call("customerID", inp.order_ref, self._client.customer_id(request))
        return CallResult(code=answer.code, message=answer.message)

    @activity.defn(name="cotpay.sign_up")
    async def sign_up(self, inp: SignUpInput) -> CallResult:
        request = self._request(
            "sign-up",
            SignUpRequest,
            name=inp.name,
            email=inp.email,
            phone=inp.phone,
            agentId=inp.agent_id,
        )
        answer = await self._call("sign-up", inp.order_ref, self._client.sign_up(request))
        return _data_result(answer)

    @activity.defn(name="cotpay.create_order")
    async def create_order(self, inp: CreateOrderInput) -> CreateOrderResult:
        request = self._request(
            "create-order",
            CreateOrderRequest,
            partnerId=inp.seller_id,
            buyerId=inp.buyer_id,
            amount=inp.amount,
            desc=inp.description,
            agentId=inp.agent_id,
            ipnUrl=self._ipn(inp.order_ref, IpnStep.CREATE),
            orderCode=inp.order_ref,
        )
        try:
            answer = await self._client.create_order(request)
        except OrderCodeExists as exc:
            existing = exc.data.get("order")
            ours_before = activity.info().attempt > 1 or inp.earlier_call_unanswered
            if ours_before and _is_ours(existing, inp):
                assert isinstance(existing, dict)
                log.warning(
                    "cotpay.create_order.adopted",
                    order_ref=inp.order_ref,
                    id_order=existing["idOrder"],
                    attempt=activity.info().attempt,
                )
                return CreateOrderResult(
                    id_order=int(existing["idOrder"]), adopted=True, order=existing
                )
            raise application_error(exc) from None
        except CotpayError as exc:
            _log_failure(log.bind(endpoint="create-order", order_ref=inp.order_ref), exc)
            raise application_error(exc) from None
        if answer.order is None:
            raise application_error(
                CotpayProtocolError("create-order answered 10100 without an order")
            )
        log.info("cotpay.activity.ok", endpoint="create-order", order_ref=inp.order_ref)
        return CreateOrderResult(id_order=answer.order.idOrder, order=answer.order.model_dump())

    @activity.defn(name="cotpay.verify_order")
    async def verify_order(self, inp: VerifyOrderInput) -> CallResult:
        request = self._request(
            "verify-order",
            VerifyOrderRequest,
            payMethod=inp.pay_method,
            **self._order_fields(inp, IpnStep.VERIFY),
        )
        answer = await self._call("verify-order", inp.order_ref, self._client.verify_order(request))
        return _data_result(answer)

    @activity.defn(name="cotpay.payment")
    async def payment(self, inp: OrderCallInput) -> CallResult:
        request = self._request(
            "payment", PaymentRequest, **self._order_fields(inp, IpnStep.PAYMENT)
        )
        answer = await self._call("payment", inp.order_ref, self._client.payment(request))
        return _data_result(answer)

    @activity.defn(name="cotpay.return_request")
    async def return_request(self, inp: OrderCallInput) -> CallResult:
        request = self._request(
            "return-request", ReturnRequest, **self._order_fields(inp, IpnStep.RETURN)
        )
        answer = await self._call(
            "return-request", inp.order_ref, self._client.return_request(request)
        )
        return _data_result(answer)

    def all(self) -> list[Any]:
        return [
            self.customer_id,
            self.sign_up,
            self.create_order,
            self.verify_order,
            self.payment,
            self.return_request,
        ]


def _log_failure(bound: Any, exc: CotpayError) -> None:
    """11400 (token refused) is a configuration error that stops every order: log it loudly."""
    if isinstance(exc, CotpayCodeError) and exc.kind is ErrorKind.CONFIG:
        bound.error("cotpay.config_error", error=exc.name, code=exc.code)
    else:
        bound.warning("cotpay.activity.failed", error=exc.name, retryable=exc.retryable)


def _data_result(answer: DataResponse) -> CallResult:
    return CallResult(code=answer.code, message=answer.message, data=answer.data)


def _is_ours(existing: object, inp: CreateOrderInput) -> bool:
    if not isinstance(existing, dict) or not isinstance(existing.get("idOrder"), int):
        return False
    return (
        existing.get("partnerId") == inp.seller_id
        and existing.get("buyerId") == inp.buyer_id
        and existing.get("amount") == inp.amount
        and existing.get("orderCode") == inp.order_ref
    )
