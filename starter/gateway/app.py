"""The HTTP gateway app: REST for shop backends and operators, IPN intake for Cotpay.

Orders move through Temporal (``EscrowClient``); reads, the export and the money report come from
the order store (one ``OrderStore`` per app, docs/store.md), and so do API keys, merchants and the
audit trail (``AccessStore`` over the same database). ``create_app`` wires the middleware
(``middleware.py``, ``auth.py``, ``ratelimit.py``, ``language.py``), the error handlers
(``errors.py``) and the routes (``routes/``, one module per resource); routes get the client, the
store, settings and the caller through ``deps.py`` and ``auth.py``. Metrics live on a separate
port; ``/docs`` and ``/openapi.json`` are off unless ``ESCROW_DOCS=true`` (docs/security.md). The
routes and error codes are listed in docs/http-api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import Depends, FastAPI
from temporalio.client import Client

from cotpay.settings import CotpaySettings
from runtime.codec import CodecSettings
from runtime.merchants import MerchantDirectory
from runtime.metrics import MetricsSettings, attention_gauge_loop, findings_gauge_loop
from runtime.settings import EscrowSettings
from runtime.tracing import instrument_app
from starter.client import EscrowClient
from starter.gateway.auth import AccessControl, KeyResolver, parse_env_keys
from starter.gateway.deps import GatewayContext, WebhookHolder
from starter.gateway.errors import V1_ERROR_RESPONSES, install_error_handlers
from starter.gateway.ipn import merchant_key
from starter.gateway.language import Localize
from starter.gateway.middleware import AccessLog, BodyLimit
from starter.gateway.query import known_query_only
from starter.gateway.ratelimit import RateLimiter, RateLimitSettings
from starter.gateway.routes import exports, health, ipn, operator, reads, reports
from starter.gateway.routes import orders as order_routes
from starter.gateway.routes import webhooks as webhook_routes
from starter.gateway.routes.docs import install_docs
from store import reconcile
from store.access import AccessStore
from store.api import OrderStore
from store.errors import SchemaBehind, StoreUnavailable
from store.models import FindingKind
from store.settings import StoreSettings
from webhooks.service import WebhookService

log = structlog.get_logger("cotpay_escrow.gateway")


def _lifespan(client: Client, interval: float, store: OrderStore, owned: bool) -> Any:
    """Prepare the order store, refresh the NEEDS_ATTENTION and open-findings gauges in the
    background while the app serves, close the store if the app opened it."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await _prepare_store(store)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_gauge(client, stop, interval))] if interval > 0 else []
        if interval > 0:
            tasks.append(asyncio.create_task(_findings_gauge(store, stop, interval)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                await task
            if owned:
                await store.close()
            await _app.state.webhooks.close()

    return lifespan


async def _prepare_store(store: OrderStore) -> None:
    """SQLite: create or upgrade the schema. PostgreSQL: refuse to start on a schema behind this
    release (``SchemaBehind``: run ``cotpay-escrow db upgrade``). A store that cannot be reached
    does not stop the gateway: orders keep moving, its reads answer 503 until it is back."""
    try:
        revision = await store.ensure_schema()
    except SchemaBehind:
        raise
    except StoreUnavailable as exc:
        log.error("gateway.store_unavailable", error=str(exc)[:300])
        return
    log.info("gateway.store", database=store.db.url, revision=revision)


async def _gauge(client: Client, stop: asyncio.Event, interval: float) -> None:
    try:
        await attention_gauge_loop(client, stop, interval=interval)
    except Exception as exc:  # the gauge must never take the gateway down
        log.warning("gateway.attention_gauge_stopped", error_type=type(exc).__name__)


async def _findings_gauge(store: OrderStore, stop: asyncio.Event, interval: float) -> None:
    kinds = [kind.value for kind in FindingKind]
    await findings_gauge_loop(
        lambda: reconcile.open_counts(store.db), kinds, stop, interval=interval
    )


def create_app(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    *,
    orders: EscrowClient | None = None,
    store: OrderStore | None = None,
    webhooks: WebhookService | None = None,
    access: AccessStore | None = None,
    rate_limits: RateLimitSettings | None = None,
) -> FastAPI:
    """The gateway app over a connected Temporal client (pydantic data converter). Without
    ``store``, the app opens the one ``ESCROW_DATABASE_URL`` names (or the database of
    ``access``) and closes it at shutdown. ``access``: API keys, merchants and the audit trail,
    by default over the order store's own database (one connection pool per app). Webhook
    endpoints live in the order store (``webhooks``, else opened on first use). ``rate_limits``:
    default ``ESCROW_RATE_LIMIT_*`` (starter/gateway/ratelimit.py)."""
    env_keys = parse_env_keys(escrow.api_key_list())
    if store is not None:
        order_store = store
    elif access is not None:
        order_store = OrderStore(access.db)
    else:
        order_store = OrderStore.open(settings=StoreSettings())
    owned = store is None and access is None
    access = access if access is not None else AccessStore(order_store.db)
    keys = KeyResolver(env_keys, access, cache_seconds=escrow.key_cache_seconds)

    app = FastAPI(
        title="cotpay-escrow gateway",
        version="1",
        description="Escrow orders on Cotpay, orchestrated by Temporal. See docs/http-api.md.",
        lifespan=_lifespan(client, MetricsSettings().attention_interval, order_store, owned=owned),
        # Off unless ESCROW_DOCS=true (docs/security.md): the document maps the attack surface.
        openapi_url="/openapi.json" if escrow.docs else None,
        docs_url=None,  # served offline by routes/docs.py, not from a CDN
        redoc_url=None,
    )
    app.state.gateway = GatewayContext(
        orders=orders or EscrowClient(client),
        escrow=escrow,
        ipn_secret=escrow.ipn_secret.get_secret_value(),
        ipn_key=merchant_key(cotpay),
        store=order_store,
        access=access,
        merchants=MerchantDirectory(access, default=cotpay, ring=CodecSettings().key_ring()),
    )
    app.state.webhooks = WebhookHolder(webhooks, db=order_store.db)
    app.state.keys = keys
    app.state.limiter = limiter = RateLimiter(rate_limits or RateLimitSettings())
    instrument_app(app)
    # Rate limits, authentication and each route's rule (auth.py), before any body is read.
    app.add_middleware(AccessControl, routes=lambda: app.router.routes, keys=keys, limiter=limiter)
    app.add_middleware(BodyLimit, max_bytes=escrow.max_body_bytes)
    # Outside AccessControl and BodyLimit (added later = outer): their 401/403/413/429 answers
    # are translated too (Accept-Language: vi).
    app.add_middleware(Localize)
    app.add_middleware(AccessLog)
    install_error_handlers(app)

    # The routers carry their full paths: the access log and traces name the route template.
    # Every route declares its access rule (auth.require / auth.PUBLIC).
    known_query = Depends(known_query_only)  # unknown query parameters: 422 (query.py)
    v1_routers = (
        order_routes.router,
        reads.router,
        operator.router,
        exports.router,
        reports.router,
        webhook_routes.router,
    )
    for v1 in v1_routers:
        app.include_router(v1, dependencies=[known_query], responses=V1_ERROR_RESPONSES)
    app.include_router(ipn.router)
    webhook_routes.document_webhooks(app)
    # Metrics are served on their own port (ESCROW_METRICS_PORT, cotpay-escrow gateway), never
    # on the public one.
    app.include_router(health.router)
    if escrow.docs:
        install_docs(app)
    return app
