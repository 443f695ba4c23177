"""Driving one escrow order on the time-skipping server: start, messages, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cotpay.ipn import IpnBody, IpnStep
from tests.workflow.fake_cotpay import FakeCotpay
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import (
    DeliveryConfirmation,
    EscrowStatus,
    IpnSignal,
    OrderInput,
    OrderView,
    workflow_id_for,
)
from workflows.summary import summary_for

SELLER = "S0000001"
BUYER = "0912345678"
IPN_SECRET = SecretStr("test-ipn-secret")
POLLS = 200
POLL_INTERVAL = 0.05


def order_input(**overrides: Any) -> OrderInput:
    fields: dict[str, Any] = {
        "order_ref": f"t-{uuid.uuid4().hex[:12]}",
        "seller_id": SELLER,
        "buyer_id": BUYER,
        "amount": 150_000,
        "description": "test order",
    }
    fields.update(overrides)
    return OrderInput.model_validate(fields)


@dataclass
class Order:
    env: WorkflowEnvironment
    fake: FakeCotpay
    handle: WorkflowHandle[Any, OrderView]
    inp: OrderInput

    async def view(self) -> OrderView:
        return await self.handle.query(EscrowOrderWorkflow.status)

    async def until(self, *statuses: EscrowStatus, skip: timedelta | None = None) -> OrderView:
        """Poll the status query (bounded) until it shows one of ``statuses``.

        With ``skip``, each poll also moves the test server clock by that much (for activity
        retry backoffs); without it only real time passes.
        """
        view = await self.view()
        for _ in range(POLLS):
            if view.status in statuses:
                return view
            if skip is not None:
                await self.env.sleep(skip)
            else:
                await asyncio.sleep(POLL_INTERVAL)
            view = await self.view()
        raise AssertionError(f"order stayed {view.status.value}, wanted {statuses}: {view}")

    async def eventually(self, check: Callable[[OrderView], bool]) -> OrderView:
        view = await self.view()
        for _ in range(POLLS):
            if check(view):
                return view
            await asyncio.sleep(POLL_INTERVAL)
            view = await self.view()
        raise AssertionError(f"condition never held: {view}")

    async def calls_of(self, name: str, count: int) -> None:
        for _ in range(POLLS):
            if len(self.fake.called(name)) >= count:
                return
            await asyncio.sleep(POLL_INTERVAL)
        raise AssertionError(f"{name}: {len(self.fake.called(name))} calls, wanted {count}")

    async def ipn(
        self,
        status: str,
        step: IpnStep,
        *,
        tx: str | None = None,
        time: datetime | None = None,
        id_order: int | None = None,
    ) -> None:
        view = await self.view()
        body = IpnBody(
            idOrder=id_order if id_order is not None else view.cotpay_order_id,
            status=status,
            code=10100,
            amount=self.inp.amount,
            transactionId=tx or f"tx-{status.lower()}",
            time=time,
        )
        await self.handle.signal(EscrowOrderWorkflow.ipn, IpnSignal(step=step, body=body))

    async def hold(self, time: datetime | None = None) -> OrderView:
        await self.until(EscrowStatus.AWAITING_PAYMENT)
        await self.ipn("HOLDING", IpnStep.VERIFY, time=time or await self.env.get_current_time())
        return await self.until(EscrowStatus.HELD)


@dataclass
class Session:
    env: WorkflowEnvironment
    fake: FakeCotpay
    task_queue: str
    orders: list[Order]


@asynccontextmanager
async def worker(env: WorkflowEnvironment, fake: FakeCotpay) -> AsyncIterator[Session]:
    """A worker on a fresh task queue; orders still open at the end are terminated, so that
    their timers do not hold the shared test server's clock in later tests."""
    session = Session(env, fake, f"tq-{uuid.uuid4().hex}", [])
    async with Worker(
        env.client,
        task_queue=session.task_queue,
        workflows=[EscrowOrderWorkflow],
        activities=fake.activities(),
    ):
        try:
            yield session
        finally:
            for order in session.orders:
                with contextlib.suppress(RPCError):
                    await order.handle.terminate("test finished")


async def start(session: Session, **overrides: Any) -> Order:
    inp = order_input(**overrides)
    handle = await session.env.client.start_workflow(
        EscrowOrderWorkflow.run,
        inp,
        id=workflow_id_for(inp.order_ref),
        task_queue=session.task_queue,
        static_summary=summary_for(inp),
    )
    order = Order(session.env, session.fake, handle, inp)
    session.orders.append(order)
    return order


async def delivered(session: Session, **overrides: Any) -> Order:
    """A new order whose money is held and whose delivery the shop confirmed."""
    order = await start(session, **overrides)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await order.until(EscrowStatus.DELIVERED)
    return order


def kinds(view: OrderView) -> list[str]:
    return [event.kind for event in view.timeline]


def statuses(view: OrderView) -> list[str]:
    return [e.status.value for e in view.timeline if e.kind == "status" and e.status]


def failure_type(err: WorkflowUpdateFailedError) -> str:
    """The failure type of a refused update (the rule's stable code, e.g. ``invalid_state``)."""
    cause = err.cause
    assert isinstance(cause, ApplicationError), cause
    return cause.type or ""
