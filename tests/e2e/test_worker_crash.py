"""A worker killed with SIGKILL mid-order: a new worker finishes it, with exactly one payout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.temporal import TemporalConfig
from sandbox.testing import RunningSandbox
from starter.stack import DevServer, ProcessPart
from workflows.models import EscrowStatus

from .conftest import CRASH_NAMESPACE
from .driver import E2EStack, e2e_stack

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def crash_stack(
    temporal_server: DevServer, sandbox: RunningSandbox, logs: Path
) -> AsyncIterator[E2EStack]:
    """A gateway and a worker process (``<logs>/worker.log``) on the crash namespace."""
    config = TemporalConfig(address=temporal_server.address, namespace=CRASH_NAMESPACE)
    logs.mkdir(parents=True, exist_ok=True)
    async with e2e_stack(config, sandbox, worker="process", log_dir=logs) as stack:
        yield stack


def worker(stack: E2EStack) -> ProcessPart:
    part = stack.part("worker")
    assert isinstance(part, ProcessPart)
    return part


async def test_worker_killed_while_waiting_for_payout_finishes_once(
    temporal_server: DevServer, sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    async with crash_stack(temporal_server, sandbox, e2e_dir / "crash") as stack:
        view = await stack.started("crash", timers={"inspectionPeriod": "PT5S"})
        ref, id_order = view["orderRef"], view["cotpayOrderId"]
        await stack.pay(id_order)
        await stack.wait_status(ref, EscrowStatus.HELD)
        r = await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == EscrowStatus.DELIVERED
        waiting = await stack.wait_for(ref, lambda v: bool(v.get("payoutNotBefore")))
        assert waiting["status"] == EscrowStatus.DELIVERED
        assert datetime.fromisoformat(waiting["payoutNotBefore"]) > datetime.now(UTC)

        assert await stack.kill("worker") != 0
        assert (await stack.ledger(id_order))["payouts"] == []

        await stack.restart("worker")
        await stack.wait_status(ref, EscrowStatus.PAID_OUT, within=45)
        assert worker(stack).alive, worker(stack).log_tail()
        entry = await stack.ledger(id_order)
        assert len(entry["payouts"]) == 1
        assert entry["refunds"] == []


async def test_worker_killed_mid_payout_pays_out_exactly_once(
    temporal_server: DevServer, sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    """The payout call is in flight (slow sandbox) when the worker dies; Cotpay completes it.
    The retried call (after the activity timeout) or the PAID_OUT IPN must not pay twice."""
    async with crash_stack(temporal_server, sandbox, e2e_dir / "midpay") as stack:
        try:
            view = await stack.started("midpay")
            ref, id_order = view["orderRef"], view["cotpayOrderId"]
            await stack.pay(id_order)
            await stack.wait_status(ref, EscrowStatus.HELD)

            slow = await stack.admin.put("/sandbox/faults", json={"latencyMs": 1500})
            assert slow.status_code == 200, slow.text
            r = await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
            assert r.status_code == 200, r.text
            await stack.wait_status(ref, EscrowStatus.PAYING_OUT, within=10)
            await stack.kill("worker")
            await stack.admin.put("/sandbox/faults", json={})

            await stack.restart("worker")
            await stack.wait_status(ref, EscrowStatus.PAID_OUT, within=90)
            entry = await stack.ledger(id_order)
            assert len(entry["payouts"]) == 1
            assert entry["refunds"] == []
        finally:
            await stack.admin.put("/sandbox/faults", json={})
