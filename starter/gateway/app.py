"""The HTTP gateway app: REST for shop backends and operators, IPN intake for Cotpay.

Orders move through Temporal (``EscrowClient``); reads, the export and the money report come from
the order store (one ``OrderStore`` per app, docs/store.md). ``create_app`` wires the middleware
(``middleware.py``), the error handlers (``errors.py``), the routes (``routes/``, one module per
resource) and the metrics endpoint; routes get the client, the store and settings through
``deps.py``. The routes and error codes are listed in docs/http-api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Security
from fastapi.security import HTTPBearer
from temporalio.client import Client

from cotpay.settings import CotpaySettings
from runtime.metrics import (
    MetricsSettings,
    attention_gauge_loop,
    findings_gauge_loop,
    mount_metrics,
)
from runtime.settings import EscrowSettings
from runtime.tracing import instrument_app
from starter.client import EscrowClient
from starter.gateway.deps import GatewayContext
from starter.gateway.errors import V1_ERROR_RESPONSES, install_error_handlers
from starter.gateway.ipn import merchant_key
from starter.gateway.language import Localize
from starter.gateway.middleware import AccessLog, ApiKeyAuth, BodyLimit
from starter.gateway.query import known_query_only
from starter.gateway.routes import exports, health, ipn, operator, reads, reports
from starter.gateway.routes import orders as order_routes
from starter.gateway.routes.docs import install_docs
from store import reconcile
from store.api import OrderStore
from store.errors import SchemaBehind, StoreUnavailable
from store.models import FindingKind
from store.settings import StoreSettings

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
) -> FastAPI:
    """The gateway app over a connected Temporal client (pydantic data converter). Without
    ``store``, the app opens the one ``ESCROW_DATABASE_URL`` names and closes it at shutdown."""
    api_keys = escrow.api_key_list()
    if not api_keys:
        log.warning("gateway.no_api_keys", detail="ESCROW_API_KEYS is empty: /v1 refuses all")

    order_store = store if store is not None else OrderStore.open(settings=StoreSettings())
    app = FastAPI(
        title="cotpay-escrow gateway",
        version="1",
        description="Escrow orders on Cotpay, orchestrated by Temporal. See docs/http-api.md.",
        lifespan=_lifespan(
            client, MetricsSettings().attention_interval, order_store, owned=store is None
        ),
        docs_url=None,  # served offline by routes/docs.py, not from a CDN
        redoc_url=None,
    )
    app.state.gateway = GatewayContext(
        orders=orders or EscrowClient(client),
        escrow=escrow,
        ipn_secret=escrow.ipn_secret.get_secret_value(),
        ipn_key=merchant_key(cotpay),
        store=order_store,
    )
    instrument_app(app)
    app.add_middleware(ApiKeyAuth, keys=api_keys)
    app.add_middleware(BodyLimit, max_bytes=escrow.max_body_bytes)
    app.add_middleware(Localize)
    app.add_middleware(AccessLog)
    install_error_handlers(app)

    # The routers carry their full paths: the access log and traces name the route template.
    bearer = Security(HTTPBearer(auto_error=False, description="an ESCROW_API_KEYS key"))
    known_query = Depends(known_query_only)  # unknown query parameters: 422 (query.py)
    v1_routers = (
        order_routes.router,
        reads.router,
        operator.router,
        exports.router,
        reports.router,
    )
    for v1 in v1_routers:
        app.include_router(v1, dependencies=[bearer, known_query], responses=V1_ERROR_RESPONSES)
    app.include_router(ipn.router)
    mount_metrics(app)
    app.include_router(health.router)
    if escrow.api_docs:
        install_docs(app)
    return app
