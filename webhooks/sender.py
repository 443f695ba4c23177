"""One webhook request, bounded in every way (docs/webhooks.md, Safety).

``Sender.send`` POSTs a signed body and reports an ``AttemptResult``: a 2xx whose body fits the
cap is a success; anything else is a failed attempt with a short reason: another status
(redirects are not followed), a connect or read timeout, the whole attempt over
``ESCROW_WEBHOOK_ATTEMPT_TIMEOUT``, a reset connection, a body over
``ESCROW_WEBHOOK_MAX_RESPONSE_BYTES``, or a refused address. The client ignores proxy variables
(``trust_env=False``) so the address check sees the real target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpcore
import httpx

from webhooks.safety import AddressNotAllowed, GuardedBackend
from webhooks.settings import WebhookSettings

EXCERPT_BYTES = 512
USER_AGENT = "cotpay-escrow-webhooks/1"


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None = None
    response_excerpt: str | None = None

    @property
    def outcome(self) -> str:
        """The metric label: delivered, http_status, redirect, timeout, network, refused,
        too_large."""
        if self.ok:
            return "delivered"
        if self.error and self.error.startswith("address not allowed"):
            return "refused"
        if self.error and self.error.startswith("response body over"):
            return "too_large"
        if self.status_code is not None:
            return "redirect" if 300 <= self.status_code < 400 else "http_status"
        if self.error and "timeout" in self.error:
            return "timeout"
        return "network"


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose backend checks addresses at connect."""

    def __init__(self, *, allow_private: bool, max_connections: int) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private=allow_private),
        )


def new_client(
    settings: WebhookSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport
        or GuardedTransport(
            allow_private=settings.private_targets_allowed,
            max_connections=settings.max_in_flight,
        ),
        timeout=httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.attempt_timeout,
        ),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


def _describe(err: BaseException) -> str:
    """A reason for the deliveries view and the logs: the kind of failure, never a header."""
    if isinstance(err, httpx.ConnectTimeout):
        return "connect timeout"
    if isinstance(err, httpx.ReadTimeout):
        return "read timeout"
    if isinstance(err, httpx.WriteTimeout):
        return "write timeout"
    if isinstance(err, httpx.PoolTimeout):
        return "timeout waiting for a connection"
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, AddressNotAllowed):
            return f"address not allowed: {cause}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(err, httpx.ConnectError):
        return f"connect error: {str(err)[:200] or type(err).__name__}"
    if isinstance(err, httpx.RemoteProtocolError):
        return f"connection closed or reset by the receiver: {str(err)[:200]}"
    if isinstance(err, httpx.ReadError | httpx.WriteError):
        return f"connection reset: {str(err)[:200] or type(err).__name__}"
    return f"{type(err).__name__}: {str(err)[:200]}"


class Sender:
    def __init__(self, settings: WebhookSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client or new_client(settings)

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> AttemptResult:
        started = time.monotonic()
        cap = self.settings.max_response_bytes
        status: int | None = None
        excerpt = bytearray()
        try:
            async with asyncio.timeout(self.settings.attempt_timeout):
                async with self.client.stream(
                    "POST", url, content=body, headers=dict(headers)
                ) as response:
                    status = response.status_code
                    total = 0
                    async for chunk in response.aiter_raw():
                        total += len(chunk)
                        if len(excerpt) < EXCERPT_BYTES:
                            excerpt += chunk[: EXCERPT_BYTES - len(excerpt)]
                        if total > cap:
                            return self._result(
                                started, status, f"response body over {cap} bytes", excerpt
                            )
        except TimeoutError:
            return self._result(
                started,
                None,
                f"timeout: no complete answer within {self.settings.attempt_timeout:g}s",
                excerpt,
            )
        except httpx.HTTPError as err:
            return self._result(started, None, _describe(err), excerpt)
        except (OSError, httpcore.NetworkError) as err:
            return self._result(started, None, f"network error: {type(err).__name__}", excerpt)
        if 200 <= status < 300:
            return AttemptResult(
                ok=True,
                status_code=status,
                latency_ms=_ms(started),
                response_excerpt=_text(excerpt),
            )
        reason = (
            f"HTTP {status}: redirect not followed" if 300 <= status < 400 else f"HTTP {status}"
        )
        return self._result(started, status, reason, excerpt)

    @staticmethod
    def _result(
        started: float, status: int | None, error: str, excerpt: bytearray
    ) -> AttemptResult:
        return AttemptResult(
            ok=False,
            status_code=status,
            latency_ms=_ms(started),
            error=error,
            response_excerpt=_text(excerpt),
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _text(excerpt: bytearray) -> str | None:
    return excerpt.decode("utf-8", errors="replace") if excerpt else None
