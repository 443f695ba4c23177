"""Serving the gateway with uvicorn in the current event loop (the CLI, tests, embedding).

``async with running_gateway(client, escrow, cotpay) as url:`` starts it on a real loopback
socket (port 0 picks a free port) and yields its base URL. uvicorn's own access log is off: the
gateway logs one privacy-safe line per request itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from temporalio.client import Client

from cotpay.serving import serving
from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import FROM_ENVIRONMENT, EscrowClient, FromEnvironment
from starter.gateway.app import create_app
from store.api import OrderStore
from workflows.models import TASK_QUEUE


def _config(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    host: str,
    port: int,
    task_queue: str,
    search_salt: str | FromEnvironment | None,
    store: OrderStore | None,
) -> uvicorn.Config:
    orders = EscrowClient(client, task_queue=task_queue, search_salt=search_salt)
    return uvicorn.Config(
        create_app(client, escrow, cotpay, orders=orders, store=store),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        lifespan="on",
        server_header=False,
    )


async def serve_gateway(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    *,
    host: str,
    port: int,
    task_queue: str = TASK_QUEUE,
    search_salt: str | FromEnvironment | None = FROM_ENVIRONMENT,
    store: OrderStore | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers). Without ``store``, the app opens the
    order store of ``ESCROW_DATABASE_URL``."""
    config = _config(client, escrow, cotpay, host, port, task_queue, search_salt, store)
    # A failed start (e.g. the order store's schema is behind) is logged by uvicorn, which then
    # exits with status 3.
    await uvicorn.Server(config).serve()


@asynccontextmanager
async def running_gateway(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_queue: str = TASK_QUEUE,
    search_salt: str | FromEnvironment | None = FROM_ENVIRONMENT,
    store: OrderStore | None = None,
) -> AsyncIterator[str]:
    config = _config(client, escrow, cotpay, host, port, task_queue, search_salt, store)
    async with serving(config, what="gateway") as url:
        yield url
