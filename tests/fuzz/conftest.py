"""Fixtures of the fuzz tests: the gateway on a real backend, the sandbox on loopback HTTP.

The gateway is the real app (``create_app``) served in-process over ``httpx.ASGITransport``, on
the gateway tests' backend: a time-skipping Temporal server and a worker running the real
workflow on the fake Cotpay (tests/gateway/conftest.py; the fixtures are imported, so this
package gets a backend and an order store of its own). The sandbox is the real sandbox server
(``running_sandbox``) on a loopback port. Schemathesis reaches both through ``LoopBridge``.

``api_auth`` is the one place that says how a fuzz request authenticates: the headers of a
valid caller, an ``operator`` key of the default merchant from ``ESCROW_API_KEYS`` (a bare key
is one), so every ``/v1`` route is open to it. Change it there when the gateway's
authentication changes. The role fuzz (``test_roles.py``) brings store keys of each role.

The fuzzed gateway has its rate limits off: a fuzz run sends thousands of requests a minute
from one address with one key, and would otherwise fuzz the ``429`` (documented on every route,
tested in tests/gateway/test_rate_limits.py) instead of the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.schemas import OpenApiSchema

from cotpay.client import CotpayClient
from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from sandbox.testing import RunningSandbox, running_sandbox
from starter.client import EscrowClient
from starter.gateway.ratelimit import RateLimitSettings
from store.api import OrderStore
from tests.fuzz.bridge import LoopBridge
from tests.fuzz.settings import GATEWAY_EXCEPTIONS, fuzz_config
from tests.gateway.conftest import (
    API_KEYS,
    Backend,
    backend,
    cotpay_fake,
    env,
    escrow_settings,
    gateway_client,
    gateway_store,
    merchant_key_file,
    orders,
)
from tests.sandbox.helpers import created_order, held_order

__all__ = [
    "backend",
    "cotpay_fake",
    "env",
    "escrow_settings",
    "gateway_store",
    "merchant_key_file",
    "orders",
]


UNLIMITED = RateLimitSettings(source="off", key="off", ipn="off", ipn_forged="off")


@pytest.fixture(scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop every session fixture lives on; idle while a synchronous test runs."""
    return asyncio.get_running_loop()


@pytest.fixture(scope="session")
def api_auth() -> dict[str, str]:
    """The headers of a caller the gateway accepts on every ``/v1`` route."""
    return {"Authorization": f"Bearer {API_KEYS[0]}"}


@pytest.fixture(scope="session")
async def gateway_http(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    gateway_store: OrderStore,
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app in-process, with no default headers (each case brings its own)."""
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    async with gateway_client(
        backend.client, escrow_settings, cotpay, orders, gateway_store, rate_limits=UNLIMITED
    ) as client:
        yield client


@pytest.fixture(scope="session")
def gateway_bridge(
    gateway_http: httpx.AsyncClient, session_loop: asyncio.AbstractEventLoop
) -> LoopBridge:
    return LoopBridge(gateway_http, session_loop)


@pytest.fixture(scope="session")
def gateway_schema(gateway_bridge: LoopBridge) -> OpenApiSchema:
    """The gateway's own ``/openapi.json``, as the gateway serves it."""
    config = fuzz_config(authenticated=True, operations=GATEWAY_EXCEPTIONS)
    return schemathesis.openapi.from_wsgi("/openapi.json", gateway_bridge, config=config)


@pytest.fixture(scope="session")
async def fuzz_sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningSandbox]:
    """A real sandbox on a loopback port, with users, a held order (id 1) and a new one (id 2),
    so that admin calls with small ids meet existing data."""
    keys_dir = tmp_path_factory.mktemp("fuzz-sandbox-keys")
    async with running_sandbox(keys_dir, payout_rule="immediate", seed=7) as sandbox:
        async with CotpayClient(sandbox.cotpay_settings()) as client:
            await held_order(sandbox, client)
            await created_order(sandbox, client)
        yield sandbox


@pytest.fixture(scope="session")
def sandbox_bridge(
    fuzz_sandbox: RunningSandbox, session_loop: asyncio.AbstractEventLoop
) -> LoopBridge:
    return LoopBridge(fuzz_sandbox.admin, session_loop)


@pytest.fixture(scope="session")
def sandbox_schema(sandbox_bridge: LoopBridge) -> OpenApiSchema:
    """The sandbox's ``/openapi.json`` (FastAPI's), limited to the admin API ``/sandbox/``."""
    return schemathesis.openapi.from_wsgi("/openapi.json", sandbox_bridge, config=fuzz_config())


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's fixture-loaded schemas read ``Node._nodeid``, which pytest 9.2 no
    longer has (it keeps ``_id``): give it the node id to read, for reporting only."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
