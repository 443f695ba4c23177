"""Crashes lose nothing: the dispatcher process killed (SIGKILL) in the middle of deliveries and
started again, and the Temporal server killed under a worker that dispatches: every event
recorded in the store still arrives, in order per order. Real processes (``starter.stack``)."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path

import pytest

from starter.stack import DevServer, ProcessPart
from store.api import OrderStore
from tests.webhooks.conftest import Seeder, add_endpoint
from tests.webhooks.receiver import Receiver, Reply, Request
from webhooks.events import event_id
from webhooks.service import WebhookService
from workflows.models import EscrowStatus

S = EscrowStatus


def _env(store_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCROW_", "TEMPORAL_"))}
    env.update(
        {
            "ESCROW_DATABASE_URL": store_url,
            "ESCROW_LOG_FORMAT": "json",
            "ESCROW_WEBHOOK_POLL_INTERVAL": "0.1",
            "ESCROW_WEBHOOK_CONNECT_TIMEOUT": "2",
            "ESCROW_WEBHOOK_READ_TIMEOUT": "3",
            "ESCROW_WEBHOOK_ATTEMPT_TIMEOUT": "4",
            "ESCROW_WEBHOOK_LEASE": "5",
            "ESCROW_WEBHOOK_RETRY_FIRST_DELAY": "0.1",
            "ESCROW_WEBHOOK_RETRY_MAX_DELAY": "0.5",
            **extra,
        }
    )
    return env


def _in_order(receiver: Receiver, expected: dict[str, list[str]]) -> None:
    for ref, ids in expected.items():
        mine = [r for r in receiver.requests if r.event["data"]["orderRef"] == ref]
        for earlier, later in itertools.pairwise(ids):
            acked = min(
                r.answered or 0.0
                for r in mine
                if r.event_id == earlier and r.status is not None and r.status < 300
            )
            assert acked <= min(r.at for r in mine if r.event_id == later), (ref, later)


async def test_the_dispatcher_killed_during_deliveries_loses_nothing(
    store_url: str, store: OrderStore, seed: Seeder, service: WebhookService, tmp_path: Path
) -> None:
    async def slow(_request: Request) -> Reply:
        return Reply(status=200, delay=0.2)

    async with Receiver(slow) as receiver:
        endpoint = await add_endpoint(service, receiver.url)
        expected: dict[str, list[str]] = {}
        for i in range(10):
            ref = f"kill-{i}"
            expected[ref] = [event_id(ref, s) for s in await seed.status(ref, S.AWAITING_PAYMENT)]
        part = ProcessPart(
            "dispatcher",
            [sys.executable, "-m", "starter.cli", "webhooks", "dispatch"],
            env=_env(store_url),
            log_file=tmp_path / "dispatcher.log",
        )
        await part.start()
        try:
            await receiver.wait_for(lambda r: len(r.acknowledged()) >= 3, within=30)
            # Mid-delivery: requests are in flight (each takes 0.2 s) when it dies.
            assert await part.kill() is not None
            killed_at = len(receiver.requests)
            assert len(receiver.acknowledged_ids()) < 10, "killed after every delivery"
            # While it is dead, the orders move on; the store records it.
            for ref in expected:
                expected[ref] += [
                    event_id(ref, s) for s in await seed.status(ref, S.HELD, S.DELIVERED)
                ]
            await asyncio.sleep(0.5)
            # Nothing is sent while it is dead (a request already on the wire may land).
            assert len(receiver.requests) <= killed_at + 4
            await part.start()
            every = {i for ids in expected.values() for i in ids}
            await receiver.wait_acknowledged(every, within=60)
        finally:
            await part.stop()
    assert receiver.acknowledged_ids() == every
    for request in receiver.requests:
        assert request.signed_by(endpoint.secret)
    _in_order(receiver, expected)


@pytest.mark.e2e
async def test_a_worker_keeps_delivering_while_the_temporal_server_is_down(
    store_url: str, store: OrderStore, seed: Seeder, service: WebhookService, tmp_path: Path
) -> None:
    """The dispatcher inside the worker uses the store only: with Temporal killed, events the
    store records are still delivered."""
    server = DevServer(tmp_path / "temporal.db", log_file=tmp_path / "temporal.log")
    await server.start()
    worker = ProcessPart(
        "worker",
        [sys.executable, "-m", "worker"],
        env=_env(
            store_url,
            TEMPORAL_ADDRESS=server.address,
            TEMPORAL_NAMESPACE="default",
            COTPAY_BASE_URL="http://127.0.0.1:9",
            COTPAY_ENVELOPE="plain",
        ),
        log_file=tmp_path / "worker.log",
    )
    try:
        async with Receiver() as receiver:
            await add_endpoint(service, receiver.url)
            await worker.start()
            await seed.status("tmp-1", S.AWAITING_PAYMENT)
            await receiver.wait_acknowledged({event_id("tmp-1", 1)}, within=30)

            await server.kill()
            assert not server.alive
            seqs = await seed.status("tmp-1", S.HELD, S.DELIVERED, S.PAYING_OUT, S.PAID_OUT)
            await seed.status("tmp-2", S.AWAITING_PAYMENT, S.HELD)
            ids = {event_id("tmp-1", s) for s in seqs} | {
                event_id("tmp-2", 1),
                event_id("tmp-2", 2),
            }
            await receiver.wait_acknowledged(ids, within=30)
            assert worker.alive, worker.log_tail()
            _in_order(
                receiver,
                {"tmp-1": [event_id("tmp-1", s) for s in (1, *seqs)]},
            )
    finally:
        await worker.stop()
        await server.stop()
