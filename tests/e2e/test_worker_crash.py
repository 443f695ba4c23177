"""A worker killed with SIGKILL mid-order: a new worker finishes it, with exactly one payout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.temporal import TemporalConfig, connect
from sandbox.testing import RunningSandbox
from starter.devserver import DevServer
from starter.processes import ChildProcess
from workflows.models import EscrowStatus

from .conftest import CRASH_NAMESPACE
from .stack import Stack, escrow_settings, stack_on, worker_process

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def two_workers(
    temporal_server: DevServer, sandbox: RunningSandbox, logs: Path, name: str
) -> AsyncIterator[tuple[Stack, ChildProcess, ChildProcess]]:
    """A gateway on the crash namespace; the first worker process running, the second not yet.

    The workers log to ``<logs>/<name>-worker-{1,2}.log``; both are stopped at the end.
    """
    settings = TemporalConfig(address=temporal_server.address, namespace=CRASH_NAMESPACE)
    client = await connect(settings)
    async with stack_on(settings, client, sandbox, in_process_worker=False) as stack:
        escrow = escrow_settings(stack.gateway_url)
        cotpay = sandbox.cotpay_settings()
        first = worker_process(settings, cotpay, escrow, logs / f"{name}-worker-1.log")
        second = worker_process(settings, cotpay, escrow, logs / f"{name}-worker-2.log")
        await first.start()
        try:
            yield stack, first, second
        finally:
            await first.stop()
            await second.stop(grace=20)


async def test_worker_killed_while_waiting_for_payout_finishes_once(
    temporal_server: DevServer, sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    async with two_workers(temporal_server, sandbox, e2e_dir, "crash") as (stack, first, second):
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

        first.kill()
        assert await first.wait() != 0
        assert (await stack.ledger(id_order))["payouts"] == []

        await second.start()
        await stack.wait_status(ref, EscrowStatus.PAID_OUT, within=45)
        assert second.returncode is None, second.log_tail()
        entry = await stack.ledger(id_order)
        assert len(entry["payouts"]) == 1
        assert entry["refunds"] == []


async def test_worker_killed_mid_payout_pays_out_exactly_once(
    temporal_server: DevServer, sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    """The payout call is in flight (slow sandbox) when the worker dies; Cotpay completes it.
    The retried call (after the activity timeout) or the PAID_OUT IPN must not pay twice."""
    async with two_workers(temporal_server, sandbox, e2e_dir, "midpay") as (stack, first, second):
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
            first.kill()
            await first.wait()
            await stack.admin.put("/sandbox/faults", json={})

            await second.start()
            await stack.wait_status(ref, EscrowStatus.PAID_OUT, within=90)
            entry = await stack.ledger(id_order)
            assert len(entry["payouts"]) == 1
            assert entry["refunds"] == []
        finally:
            await stack.admin.put("/sandbox/faults", json={})
