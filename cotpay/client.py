"""Async client for Cotpay's six endpoints (docs/cotpay-protocol.md, "The client").

One shared ``httpx.AsyncClient`` per ``CotpayClient`` (pooled connections, explicit timeouts).
Each call seals the payload with the configured envelope, opens the answer the same way, checks
that the answer is for the endpoint that was called, and maps Cotpay's code to a typed error:

* code 10100: the endpoint's response model;
* any other code: the ``CotpayCodeError`` subclass of ``cotpay.codes.error_for``;
* HTTP 5xx, timeouts, connection errors: ``CotpayTransportError`` (retryable);
* HTTP 4xx without a readable Cotpay answer, a broken envelope, not JSON, no ``code``, an answer
  for another path: ``CotpayProtocolError`` (not retryable).

The client never retries: a retried ``create-order`` or ``payment`` is a business decision, and
Temporal activities own retries (with the ``retryable`` flag of each error). A 4xx whose body is a
readable Cotpay answer with a code (e.g. 11400 under HTTP 401) is reported by its code.

ASSUMPTIONS kept here: an answer is sealed exactly when requests are (a plain JSON answer is
accepted only with ``COTPAY_ENVELOPE=plain``); a sealed answer carries the path of the request
(a plain one may omit it); ``code`` is a JSON number, or a string of digits, which is accepted.

Each call logs one line (``cotpay.call``): endpoint, code, duration and ``idOrder`` when known;
never the token, keys, passphrase or the payload (it holds emails and phone numbers).
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import ValidationError

from cotpay.codes import (
    SUCCESS,
    CotpayError,
    CotpayProtocolError,
    CotpayTransportError,
    error_for,
)
from cotpay.envelope import (
    EncryptedEnvelope,
    Envelope,
    EnvelopeError,
    Opened,
    PlainEnvelope,
    is_enveloped,
    load_private_key,
    load_public_key,
)
from cotpay.logs import scrub
from cotpay.models import (
    ENDPOINTS,
    CotpayRequest,
    CotpayResponse,
    CreateOrderRequest,
    CreateOrderResponse,
    CustomerIdRequest,
    CustomerIdResponse,
    DataResponse,
    Endpoint,
    PaymentRequest,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)
from cotpay.settings import CotpaySettings

R = TypeVar("R", bound=CotpayResponse)

_MAX_KEEPALIVE = 20
_KEEPALIVE_EXPIRY = 30.0


def envelope_for(settings: CotpaySettings) -> Envelope:
    """The request/response envelope of ``COTPAY_ENVELOPE``; encrypted needs both key files."""
    if settings.envelope == "plain":
        return PlainEnvelope()
    if settings.public_key_file is None or settings.private_key_file is None:
        raise ValueError(
            "COTPAY_ENVELOPE=encrypted needs COTPAY_PUBLIC_KEY_FILE (Cotpay's public key) and "
            "COTPAY_PRIVATE_KEY_FILE (the merchant's private key)"
        )
    return EncryptedEnvelope(
        peer_public_key=load_public_key(settings.public_key_file.read_bytes()),
        own_private_key=load_private_key(settings.private_key_file.read_bytes()),
    )


class CotpayClient:
    """Typed, signed calls to Cotpay. Use as ``async with CotpayClient(settings) as cotpay``."""

    def __init__(
        self,
        settings: CotpaySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._envelope = envelope_for(settings)
        self._token = settings.access_token.get_secret_value()
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            transport=transport,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.connect_timeout,
            ),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=min(_MAX_KEEPALIVE, settings.max_connections),
                keepalive_expiry=_KEEPALIVE_EXPIRY,
            ),
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, **overrides: Any) -> CotpayClient:
        """A client configured from the ``COTPAY_*`` environment (overrides win)."""
        return cls(CotpaySettings(**overrides))

    @property
    def settings(self) -> CotpaySettings:
        return self._settings

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CotpayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the six endpoints -------------------------------------------------------------------

    async def create_order(self, request: CreateOrderRequest) -> CreateOrderResponse:
        return await self._typed("create-order", request, CreateOrderResponse)

    async def customer_id(self, request: CustomerIdRequest) -> CustomerIdResponse:
        return await self._typed("customerID", request, CustomerIdResponse)

    async def verify_order(self, request: VerifyOrderRequest) -> DataResponse:
        return await self._typed("verify-order", request, DataResponse)

    async def payment(self, request: PaymentRequest) -> DataResponse:
        return await self._typed("payment", request, DataResponse)

    async def return_request(self, request: ReturnRequest) -> DataResponse:
        return await self._typed("return-request", request, DataResponse)

    async def sign_up(self, request: SignUpRequest) -> DataResponse:
        return await self._typed("sign-up", request, DataResponse)

    async def call(self, endpoint_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Raw call: sends ``payload`` as given, returns the opened answer whatever its code."""
        endpoint = ENDPOINTS.get(endpoint_name)
        if endpoint is None:
            raise ValueError(
                f"unknown Cotpay endpoint {endpoint_name!r}; known: {', '.join(ENDPOINTS)}"
            )
        return await self._exchange(endpoint, payload)

    # --- internals ---------------------------------------------------------------------------

    async def _typed(self, name: str, request: CotpayRequest, response: type[R]) -> R:
        endpoint = ENDPOINTS[name]
        if not isinstance(request, endpoint.request):
            raise TypeError(f"{name} takes {endpoint.request.__name__}")
        answer = await self._exchange(endpoint, request.wire())
        code: int = answer["code"]
        if code != SUCCESS:
            message = answer.get("message")
            raise error_for(
                code,
                scrub(message) if isinstance(message, str) else "",
                endpoint=name,
                data=answer,
            )
        try:
            return response.model_validate(answer)
        except ValidationError as exc:
            raise CotpayProtocolError(
                f"Cotpay {name} answered 10100 with an unexpected shape: "
                f"{exc.error_count()} field error(s) at "
                + ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()),
                endpoint=name,
            ) from None

    async def _exchange(self, endpoint: Endpoint, payload: dict[str, Any]) -> dict[str, Any]:
        log = structlog.get_logger("cotpay.client").bind(endpoint=endpoint.name)
        id_order = payload.get("idOrder")
        if isinstance(id_order, int) and not isinstance(id_order, bool):
            log = log.bind(idOrder=id_order)
        started = time.perf_counter()
        try:
            answer = await self._round_trip(endpoint, payload)
        except CotpayError as exc:
            log.warning(
                "cotpay.call",
                error=exc.name,
                status=getattr(exc, "status", None),
                retryable=exc.retryable,
                duration_ms=_ms(started),
            )
            raise
        order = answer.get("order")
        if "idOrder" not in payload and isinstance(order, dict):
            log = log.bind(idOrder=order.get("idOrder"))
        code = answer["code"]
        (log.info if code == SUCCESS else log.warning)(
            "cotpay.call", code=code, duration_ms=_ms(started)
        )
        return answer

    async def _round_trip(self, endpoint: Endpoint, payload: dict[str, Any]) -> dict[str, Any]:
        name = endpoint.name
        sealed = self._envelope.seal(
            payload, path=endpoint.path, access_token=self._token, app_id=self._settings.app_id
        )
        try:
            response = await self._http.post(
                endpoint.path, content=sealed.body, headers=sealed.headers
            )
        except httpx.TimeoutException as exc:
            raise CotpayTransportError(
                f"Cotpay {name}: timed out ({type(exc).__name__})", endpoint=name
            ) from None
        except httpx.TransportError as exc:
            raise CotpayTransportError(
                f"Cotpay {name}: connection failed ({type(exc).__name__})", endpoint=name
            ) from None
        status = response.status_code
        if status >= 500:
            raise CotpayTransportError(
                f"Cotpay {name}: HTTP {status}", endpoint=name, status=status
            )
        try:
            answer = self._open(endpoint, response)
        except CotpayProtocolError as exc:
            if 400 <= status < 500:
                raise CotpayProtocolError(
                    f"Cotpay {name}: HTTP {status} ({exc.message})", endpoint=name
                ) from None
            raise
        if not 200 <= status < 300 and not 400 <= status < 500:
            raise CotpayProtocolError(f"Cotpay {name}: unexpected HTTP {status}", endpoint=name)
        return answer

    def _open(self, endpoint: Endpoint, response: httpx.Response) -> dict[str, Any]:
        name = endpoint.name
        body = response.content
        sealed = is_enveloped(response.headers, body)
        if sealed and self._envelope.mode != "encrypted":
            raise CotpayProtocolError(
                f"Cotpay {name}: answer is sealed but COTPAY_ENVELOPE=plain", endpoint=name
            )
        if not sealed and self._envelope.mode == "encrypted":
            raise CotpayProtocolError(
                f"Cotpay {name}: answer is not sealed (COTPAY_ENVELOPE=encrypted)", endpoint=name
            )
        try:
            opened: Opened = self._envelope.open(response.headers, body)
        except EnvelopeError as exc:
            raise CotpayProtocolError(
                f"Cotpay {name}: answer envelope does not open ({exc.reason})", endpoint=name
            ) from None
        if opened.path != endpoint.path and (sealed or opened.path):
            raise CotpayProtocolError(f"Cotpay {name}: answer is for another path", endpoint=name)
        answer = opened.payload
        if not isinstance(answer, dict):
            raise CotpayProtocolError(f"Cotpay {name}: answer is not a JSON object", endpoint=name)
        code = answer.get("code")
        if isinstance(code, str) and code.isdigit():
            code = int(code)
            answer["code"] = code
        if not isinstance(code, int) or isinstance(code, bool):
            raise CotpayProtocolError(f"Cotpay {name}: answer has no numeric code", endpoint=name)
        return answer


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def pretty(answer: dict[str, Any]) -> str:
    """An answer as indented JSON with non-ASCII text kept readable."""
    return json.dumps(answer, indent=2, ensure_ascii=False)
