"""Reconciliation on a real Temporal dev server (visibility queries and Schedules need one).

``rig``: a worker on a fresh task queue running the real escrow workflow (on the workflow tests'
``FakeCotpay``) and the reconciliation workflow with its real activities, an order store in a
temporary SQLite file, and the Cotpay sandbox on loopback for the ledger. Orders are started
through the workflow; the store rows are written by the test (``mirror``) the way the store
write path would, or seeded with anomalies. Visibility is filtered on the test's task queue, so
tests sharing the dev server do not see each other's orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.reconcile_activities import ReconcileActivities, ReconcileLimits, running_query
from cotpay.client import CotpayClient
from cotpay.models import CreateOrderRequest, PaymentRequest, PayMethod, VerifyOrderRequest
from runtime.codec import escrow_data_converter
from runtime.metrics import record_reconcile_run
from sandbox.testing import RunningSandbox, running_sandbox
from starter.stack.devserver import temporal_binary
from store.api import OrderStore
from store.models import MoneyKind, OrderWrite
from tests.workflow.conftest import register_search_attributes
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import BUYER, SELLER, Order, Session, start
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import OrderView, TimelineEvent
from workflows.reconcile_checks import ReconcileInput, ReconcilePolicy, ReconcileReport
from workflows.reconciliation import EscrowReconciliationWorkflow

IPN_URL = "http://127.0.0.1:9/ipn"  # nobody listens: the sandbox's IPNs go nowhere
POLLS = 100
RUN_TIMEOUT = timedelta(minutes=2)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=escrow_data_converter(),
    ) as environment:
        await register_search_attributes(environment)
        yield environment


def held_money(event: TimelineEvent) -> MoneyKind | None:
    """The store write path's money mark for the entries these tests produce."""
    data = event.data or {}
    if event.kind == "ipn" and data.get("status") == "HOLDING":
        return MoneyKind.HELD
    return None


@dataclass
class Rig:
    env: WorkflowEnvironment
    store: OrderStore
    sandbox: RunningSandbox
    cotpay: CotpayClient
    session: Session
    activities: ReconcileActivities

    @property
    def task_queue(self) -> str:
        return self.session.task_queue

    async def start(self, **overrides: Any) -> Order:
        return await start(self.session, **overrides)

    async def mirror(self, order: Order, **changes: Any) -> OrderView:
        """Write the order's current view to the store, as the write path would (``changes``
        alter the stored view: a seeded disagreement)."""
        view = await order.view()
        stored = view.model_copy(update=changes)
        await self.store.record(
            OrderWrite.from_view(stored, created_at=view.timeline[0].time, money=held_money)
        )
        return view

    async def visible(self, count: int) -> None:
        """Wait until visibility lists ``count`` running escrow workflows on the queue."""
        query = running_query(self.task_queue)
        seen = -1
        for _ in range(POLLS):
            seen = (await self.env.client.count_workflows(query)).count
            if seen == count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"visibility lists {seen} running orders, wanted {count}")

    async def reconcile(self) -> ReconcileReport:
        return await self.env.client.execute_workflow(
            EscrowReconciliationWorkflow.run,
            ReconcileInput(trigger="manual", requested_by="test"),
            id=f"reconcile-test-{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )

    async def paid_out_at_cotpay(self, amount: int = 150_000) -> int:
        """A Cotpay order in the sandbox that was paid (held) and then paid out."""
        created = await self.cotpay.create_order(
            CreateOrderRequest(
                partnerId=SELLER, buyerId=BUYER, amount=amount, desc="đối soát", ipnUrl=IPN_URL
            )
        )
        assert created.order is not None
        id_order = created.order.idOrder
        await self.cotpay.verify_order(
            VerifyOrderRequest(
                idOrder=id_order,
                partnerId=SELLER,
                buyerId=BUYER,
                payMethod=PayMethod.VIETQR,
                ipnUrl=IPN_URL,
            )
        )
        paid = await self.sandbox.admin.post(
            f"/sandbox/orders/{id_order}/pay", json={"outcome": "success"}
        )
        paid.raise_for_status()
        await self.cotpay.payment(
            PaymentRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN_URL)
        )
        return id_order


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[OrderStore]:
    opened = OrderStore.open(f"sqlite+aiosqlite:///{tmp_path / 'escrow.db'}")
    await opened.upgrade()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def rig(env: WorkflowEnvironment, store: OrderStore, tmp_path: Path) -> AsyncIterator[Rig]:
    fake = FakeCotpay()
    session = Session(env, fake, f"reconcile-{uuid.uuid4().hex[:8]}", [])
    async with (
        running_sandbox(tmp_path / "keys", payout_rule="immediate") as sandbox,
        CotpayClient(sandbox.cotpay_settings()) as cotpay,
    ):
        for user in (SELLER, BUYER):
            answer = await sandbox.admin.put(f"/sandbox/users/{user}", json={"name": "T"})
            assert answer.status_code in (200, 201), answer.text
        activities = ReconcileActivities(
            store,
            env.client,
            policy=ReconcilePolicy(settle=timedelta(0)),
            limits=ReconcileLimits(recheck=0.2),
            ledger_url=sandbox.base_url,
            on_run=record_reconcile_run,
        )
        async with Worker(
            env.client,
            task_queue=session.task_queue,
            workflows=[EscrowOrderWorkflow, EscrowReconciliationWorkflow],
            activities=[*fake.activities(), *activities.all()],
        ):
            try:
                yield Rig(env, store, sandbox, cotpay, session, activities)
            finally:
                for order in session.orders:
                    with contextlib.suppress(RPCError):
                        await order.handle.terminate("test finished")
