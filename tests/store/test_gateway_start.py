"""The gateway's start with its order store (docs/store.md, "Running it"), on both engines: SQLite
gets its schema by itself; PostgreSQL without the migrations refuses to start (run ``cotpay-escrow
db upgrade``; as a process, uvicorn then exits with status 3); a store that cannot be reached does
not stop the gateway."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from cotpay.settings import CotpaySettings
from runtime.codec import escrow_data_converter
from runtime.settings import EscrowSettings
from starter.gateway.app import create_app
from starter.gateway.server import running_gateway
from starter.stack.processes import free_port
from store import migrate
from store.api import OrderStore
from store.errors import SchemaBehind
from tests.store.conftest import Databases

SETTINGS = EscrowSettings(
    public_url="http://gateway.test", ipn_secret=SecretStr("start-test-secret"), api_keys="k"
)


async def no_temporal() -> Client:
    return await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=escrow_data_converter()
    )


async def test_a_fresh_database_at_start(databases: Databases) -> None:
    url = await databases.new()
    store = OrderStore.open(url)
    app = create_app(await no_temporal(), SETTINGS, CotpaySettings(), store=store)
    try:
        if databases.engine == "sqlite":
            async with app.router.lifespan_context(app):
                await store.ping()
            assert await migrate.current(url) == migrate.head_revision()
        else:
            with pytest.raises(SchemaBehind, match="run cotpay-escrow db upgrade"):
                async with app.router.lifespan_context(app):
                    pass
            assert await migrate.current(url) is None, "PostgreSQL: migrations are a job"
    finally:
        await store.close()


async def test_an_unreachable_store_does_not_stop_the_gateway() -> None:
    store = OrderStore.open(f"postgresql+asyncpg://escrow:pw@127.0.0.1:{free_port()}/escrow")
    try:
        async with (
            running_gateway(await no_temporal(), SETTINGS, CotpaySettings(), store=store) as gw,
            httpx.AsyncClient(base_url=gw, timeout=30) as http,
        ):
            health = await http.get("/healthz")
            assert health.json()["store"] == "down"
            assert health.json()["error"] == "temporal_unavailable"
    finally:
        await store.close()
