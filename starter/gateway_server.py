"""Serving the gateway with uvicorn in the current event loop (the CLI, tests, embedding).

``async with running_gateway(client, escrow, cotpay) as url:`` starts it on a real loopback
socket (port 0 picks a free port) and yields its base URL. uvicorn's own access log is off: the
gateway logs one privacy-safe line per request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn
from temporalio.client import Client

from cotpay.settings import CotpaySettings
from starter.client import FROM_ENVIRONMENT, EscrowClient, FromEnvironment
from starter.gateway import create_app
from starter.settings import EscrowSettings
from workflows.models import TASK_QUEUE

START_TIMEOUT_S = 15.0


class _QuietServer(uvicorn.Server):
    """Leaves the process's signal handlers alone (tests, embedding)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    host: str,
    port: int,
    task_queue: str,
    search_salt: str | FromEnvironment | None,
) -> uvicorn.Config:
    orders = EscrowClient(client, task_queue=task_queue, search_salt=search_salt)
    return uvicorn.Config(
        create_app(client, escrow, cotpay, orders=orders),
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
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers)."""
    config = _config(client, escrow, cotpay, host, port, task_queue, search_salt)
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
) -> AsyncIterator[str]:
    server = _QuietServer(_config(client, escrow, cotpay, host, port, task_queue, search_salt))
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("gateway stopped during start-up")
        if loop.time() > deadline:
            server.should_exit = True
            await task
            raise RuntimeError("gateway did not start in time")
        await asyncio.sleep(0.01)
    bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    try:
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        await task
