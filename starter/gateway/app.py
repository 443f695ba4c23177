"""The HTTP gateway app: REST for shop backends and operators, IPN intake for Cotpay.

Stateless: every request goes to Temporal through ``EscrowClient``. ``create_app`` wires the
middleware (``middleware.py``), the error handlers (``errors.py``) and the routes (``routes/``,
one module per resource); routes get the client and settings through ``deps.py``. Metrics live
on a separate port and ``/docs`` is off unless ``ESCROW_DOCS=true`` (docs/security.md). The
routes and error codes are listed in docs/http-api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI
from temporalio.client import Client

from cotpay.settings import CotpaySettings
from runtime.codec import CodecSettings
from runtime.merchants import MerchantDirectory
from runtime.metrics import MetricsSettings, attention_gauge_loop
from runtime.settings import EscrowSettings
from runtime.tracing import instrument_app
from starter.client import EscrowClient
from starter.gateway.auth import AccessControl, KeyResolver, parse_env_keys
from starter.gateway.deps import GatewayContext
from starter.gateway.errors import V1_ERROR_RESPONSES, install_error_handlers
from starter.gateway.ipn import merchant_key
from starter.gateway.middleware import AccessLog, BodyLimit
from starter.gateway.ratelimit import RateLimiter, RateLimitSettings
from starter.gateway.routes import health, ipn, operator
from starter.gateway.routes import orders as order_routes
from store.access import AccessStore

log = structlog.get_logger("cotpay_escrow.gateway")


def _lifespan(client: Client, interval: float) -> Any:
    """Refresh the NEEDS_ATTENTION gauge in the background while the app serves."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(_gauge(client, stop, interval)) if interval > 0 else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task

    return lifespan


async def _gauge(client: Client, stop: asyncio.Event, interval: float) -> None:
    try:
        await attention_gauge_loop(client, stop, interval=interval)
    except Exception as exc:  # the gauge must never take the gateway down
        log.warning("gateway.attention_gauge_stopped", error_type=type(exc).__name__)


def create_app(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    *,
    orders: EscrowClient | None = None,
    access: AccessStore | None = None,
    rate_limits: RateLimitSettings | None = None,
) -> FastAPI:
    """The gateway app over a connected Temporal client (pydantic data converter). ``access``:
    the store of API keys and the audit trail; without it only ``ESCROW_API_KEYS`` work.
    ``rate_limits``: default ``ESCROW_RATE_LIMIT_*`` (starter/gateway/ratelimit.py)."""
    env_keys = parse_env_keys(escrow.api_key_list())
    if not env_keys and access is None:
        log.warning(
            "gateway.no_api_keys", detail="no ESCROW_API_KEYS and no key store: /v1 refuses all"
        )
    keys = KeyResolver(env_keys, access, cache_seconds=escrow.key_cache_seconds)

    app = FastAPI(
        title="cotpay-escrow gateway",
        version="1",
        description="Escrow orders on Cotpay, orchestrated by Temporal. See docs/http-api.md.",
        lifespan=_lifespan(client, MetricsSettings().attention_interval),
        # Off unless ESCROW_DOCS=true (docs/security.md): the document maps the attack surface.
        openapi_url="/openapi.json" if escrow.docs else None,
        docs_url="/docs" if escrow.docs else None,
        redoc_url="/redoc" if escrow.docs else None,
    )
    app.state.gateway = GatewayContext(
        orders=orders or EscrowClient(client),
        escrow=escrow,
        ipn_secret=escrow.ipn_secret.get_secret_value(),
        ipn_key=merchant_key(cotpay),
        access=access,
        merchants=MerchantDirectory(access, default=cotpay, ring=CodecSettings().key_ring()),
    )
    app.state.keys = keys
    app.state.limiter = limiter = RateLimiter(rate_limits or RateLimitSettings())
    instrument_app(app)
    # Rate limits, authentication and each route's rule (auth.py), before any body is read.
    app.add_middleware(AccessControl, routes=lambda: app.router.routes, keys=keys, limiter=limiter)
    app.add_middleware(BodyLimit, max_bytes=escrow.max_body_bytes)
    app.add_middleware(AccessLog)
    install_error_handlers(app)

    # The routers carry their full paths: the access log and traces name the route template.
    # Every route declares its access rule (auth.require / auth.PUBLIC).
    for v1 in (order_routes.router, operator.router):
        app.include_router(v1, responses=V1_ERROR_RESPONSES)
    app.include_router(ipn.router)
    # Metrics are served on their own port (ESCROW_METRICS_PORT, cotpay-escrow gateway), never
    # on the public one.
    app.include_router(health.router)
    return app
