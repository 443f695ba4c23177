"""What an end-to-end test drives: the real gateway and worker on a real Temporal and sandbox.

``e2e_stack`` assembles them with ``starter.stack`` (the same ``Stack`` as ``cotpay-escrow run``):
the gateway served by uvicorn in this event loop on a free loopback port, the worker in-process
(``worker.run_worker``) or as ``python -m worker``, and optionally the Temporal dev server, each
killable and restartable by name. ``E2EStack`` holds what a test drives: the HTTP API with its
key, the sandbox admin API, a Temporal client, the order store and the parts.

The order store is ``ESCROW_DATABASE_URL`` (a session file, ``tests/conftest.py``) unless a
stack is given its own ``database_url``; a worker process gets the same URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from temporalio.client import Client

from cotpay.ipn import ipn_signature
from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig, connect
from sandbox.testing import RunningSandbox
from starter.client import EscrowClient
from starter.gateway.server import running_gateway
from starter.stack import DevServer, InProcessPart, Part, ProcessPart, Stack
from store.api import OrderStore
from store.settings import StoreSettings
from worker import run_worker

API_KEY = "e2e-api-key"
IPN_SECRET = "e2e-ipn-secret"
WAIT_S = 20.0
POLL_S = 0.1


def escrow_settings(public_url: str, *, payout_rule: str = "immediate") -> EscrowSettings:
    return EscrowSettings.model_validate(
        {
            "public_url": public_url,
            "ipn_secret": IPN_SECRET,
            "api_keys": API_KEY,
            "payout_rule": payout_rule,
        }
    )


def cotpay_env(settings: CotpaySettings) -> dict[str, str]:
    return {
        "COTPAY_BASE_URL": settings.base_url,
        "COTPAY_APP_ID": settings.app_id,
        "COTPAY_ACCESS_TOKEN": settings.access_token.get_secret_value(),
        "COTPAY_PUBLIC_KEY_FILE": str(settings.public_key_file),
        "COTPAY_PRIVATE_KEY_FILE": str(settings.private_key_file),
        "COTPAY_ENVELOPE": settings.envelope,
    }


@asynccontextmanager
async def worker_running(
    temporal: TemporalConfig, cotpay: CotpaySettings, escrow: EscrowSettings
) -> AsyncIterator[None]:
    """``worker.run_worker`` in this event loop for the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(temporal, cotpay, escrow, stop=stop))
    await asyncio.sleep(0.2)
    if task.done():
        task.result()
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def worker_env(
    temporal: TemporalConfig, cotpay: CotpaySettings, escrow: EscrowSettings
) -> dict[str, str]:
    """The environment of a ``python -m worker`` child with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "COTPAY_"))}
    env.update(cotpay_env(cotpay))
    env.update(
        {
            "TEMPORAL_ADDRESS": temporal.address,
            "TEMPORAL_NAMESPACE": temporal.namespace,
            "ESCROW_PUBLIC_URL": escrow.public_url,
            "ESCROW_IPN_SECRET": escrow.ipn_secret.get_secret_value(),
            "ESCROW_API_KEYS": escrow.api_keys,
            "ESCROW_PAYOUT_RULE": escrow.payout_rule.value,
            "ESCROW_LOG_FORMAT": "json",
        }
    )
    return env


def new_user_id() -> str:
    return "09" + "".join(secrets.choice("0123456789") for _ in range(8))


def new_order_ref(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class E2EStack:
    parts: Stack
    gateway_url: str
    http: httpx.AsyncClient
    sandbox: RunningSandbox
    temporal: Client
    store: OrderStore

    def part(self, name: str) -> Part:
        return self.parts.part(name)

    async def kill(self, name: str) -> int | None:
        return await self.parts.kill(name)

    async def stop_part(self, name: str) -> int | None:
        return await self.parts.stop_part(name)

    async def restart(self, name: str) -> None:
        await self.parts.restart(name)

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.sandbox.admin

    @property
    def escrow(self) -> EscrowClient:
        return EscrowClient(self.temporal)

    async def users(self) -> tuple[str, str]:
        seller, buyer = new_user_id(), new_user_id()
        for user, name in ((seller, "E2E Seller"), (buyer, "E2E Buyer")):
            body = {"name": name, "walletLinked": True, "bankLinked": True}
            r = await self.admin.put(f"/sandbox/users/{user}", json=body)
            assert r.status_code < 300, r.text
        return seller, buyer

    async def order_body(self, prefix: str, **extra: Any) -> dict[str, Any]:
        seller, buyer = await self.users()
        return {
            "orderRef": new_order_ref(prefix),
            "sellerId": seller,
            "buyerId": buyer,
            "amount": 120_000,
            "description": "e2e order",
            **extra,
        }

    async def start(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/v1/orders", json=body)

    async def started(self, prefix: str, **extra: Any) -> dict[str, Any]:
        r = await self.start(await self.order_body(prefix, **extra))
        assert r.status_code == 201, r.text
        view: dict[str, Any] = r.json()
        assert isinstance(view["cotpayOrderId"], int), view
        return view

    async def pay(self, id_order: int, outcome: str = "success") -> None:
        r = await self.admin.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": outcome})
        assert r.status_code < 300, r.text

    async def view(self, order_ref: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/orders/{order_ref}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait_status(
        self, order_ref: str, *statuses: str, within: float = WAIT_S
    ) -> dict[str, Any]:
        return await self.wait_for(
            order_ref, lambda view: view["status"] in statuses, within=within, what=str(statuses)
        )

    async def wait_for(
        self,
        order_ref: str,
        condition: Callable[[dict[str, Any]], bool],
        *,
        within: float = WAIT_S,
        what: str = "condition",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                r = await self.http.get(f"/v1/orders/{order_ref}")
                if r.status_code == 200:
                    view = r.json()
                    if condition(view):
                        return view
            await asyncio.sleep(POLL_S)
        raise AssertionError(
            f"{order_ref}: not {what} within {within}s; last: "
            f"{view.get('status')} waiting for {view.get('waitingFor')!r} "
            f"attention {view.get('attention')}"
        )

    async def sandbox_order(self, id_order: int) -> dict[str, Any]:
        r = await self.admin.get(f"/sandbox/orders/{id_order}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def ledger(self, id_order: int) -> dict[str, Any]:
        r = await self.admin.get("/sandbox/ledger")
        assert r.status_code == 200, r.text
        for entry in r.json()["orders"]:
            if entry["idOrder"] == id_order:
                found: dict[str, Any] = entry
                return found
        raise AssertionError(f"order {id_order} not in the sandbox ledger")

    async def post_ipn(
        self, order_ref: str, step: str, body: dict[str, Any], *, sig: str | None = None
    ) -> httpx.Response:
        signature = sig if sig is not None else ipn_signature(IPN_SECRET, order_ref, step)
        return await self.http.post(
            f"/ipn/{order_ref}/{step}", params={"sig": signature}, json=body
        )


WorkerMode = Literal["in-process", "process"] | None


@asynccontextmanager
async def e2e_stack(
    temporal: TemporalConfig,
    sandbox: RunningSandbox,
    *,
    client: Client | None = None,
    server: DevServer | None = None,
    worker: WorkerMode = "in-process",
    payout_rule: str = "immediate",
    log_dir: Path | None = None,
    worker_extra_env: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> AsyncIterator[E2EStack]:
    """A gateway and (unless ``worker=None``) a worker on ``temporal``'s namespace.

    With ``server`` the dev server is the stack's first part (``temporal``), and the Temporal
    client is connected once it answers; otherwise ``client`` (or a new one) is used. A worker
    process logs to ``<log_dir>/worker.log``.
    """
    cotpay = sandbox.cotpay_settings()
    connected: list[Client] = [client] if client is not None else []
    database_url = database_url or StoreSettings().database_url
    store = OrderStore.open(database_url)
    await store.ensure_schema()

    async def temporal_client() -> Client:
        if not connected:
            connected.append(await connect(temporal))
        return connected[0]

    @asynccontextmanager
    async def gateway_serving() -> AsyncIterator[str]:
        settings = escrow_settings("http://unused.invalid", payout_rule=payout_rule)
        async with running_gateway(await temporal_client(), settings, cotpay, store=store) as url:
            yield url

    gateway = InProcessPart("gateway", gateway_serving)

    def worker_settings() -> EscrowSettings:
        return escrow_settings(gateway.value)

    parts: list[Part] = [server] if server is not None else []
    parts.append(gateway)
    if worker == "in-process":
        parts.append(
            InProcessPart("worker", lambda: worker_running(temporal, cotpay, worker_settings()))
        )
    elif worker == "process":
        parts.append(
            ProcessPart(
                "worker",
                [sys.executable, "-m", "worker"],
                env=lambda: {
                    **worker_env(temporal, cotpay, worker_settings()),
                    "ESCROW_DATABASE_URL": database_url,
                    **(worker_extra_env or {}),
                },
                log_file=log_dir / "worker.log" if log_dir is not None else None,
            )
        )
    async with (
        store,
        Stack(parts, stop_grace=20) as running,
        httpx.AsyncClient(
            base_url=gateway.value, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30.0
        ) as http,
    ):
        yield E2EStack(
            parts=running,
            gateway_url=gateway.value,
            http=http,
            sandbox=sandbox,
            temporal=await temporal_client(),
            store=store,
        )
