"""The webhook tables (revision 0003) on SQLite and PostgreSQL: events taken once, leased claims
that never hand a delivery to two dispatchers (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), the
per-order turn, and an upgrade from 0002 with orders in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from store import migrate
from store.api import OrderStore
from store.models import StoreEvent
from tests.store.conftest import Databases
from tests.store.factories import record_before_0005, write
from webhooks import repo
from webhooks.events import event_id
from webhooks.models import DeliveryStatus, EndpointCreate
from webhooks.service import WebhookService
from webhooks.settings import WebhookSettings
from workflows.models import EscrowStatus

S = EscrowStatus
WINDOW = timedelta(days=3)


async def _seed(store: OrderStore, ref: str, *statuses: EscrowStatus) -> None:
    now = datetime.now(UTC)
    events = [
        StoreEvent(seq=i + 1, time=now + timedelta(milliseconds=i), kind="status", status=s)
        for i, s in enumerate(statuses)
    ]
    await store.record(write(ref, statuses[-1], events, created_at=now))


async def _take(store: OrderStore, now: datetime) -> list[tuple[str, datetime]]:
    return await repo.take_events(
        store.db,
        now=now,
        window=WINDOW,
        lookback=timedelta(seconds=60),
        limit=500,
        view_of=lambda merchant, ref: store.get_order(ref, merchant),
    )


async def _endpoint(store: OrderStore) -> str:
    service = WebhookService(store.db, WebhookSettings(env="development"))
    made = await service.create(EndpointCreate(url="http://127.0.0.1:9/hooks"))
    return made.id


async def test_events_are_taken_once_even_by_concurrent_dispatchers(store: OrderStore) -> None:
    endpoint = await _endpoint(store)
    for i in range(10):
        await _seed(store, f"take-{i}", S.AWAITING_PAYMENT, S.HELD, S.DELIVERED)
    now = datetime.now(UTC)
    results = await asyncio.gather(*(_take(store, now) for _ in range(3)))
    taken = [i for made in results for i, _ in made]
    assert len(taken) == len(set(taken)) == 30
    assert await _take(store, now) == []
    page, _ = await repo.list_deliveries(store.db, endpoint, limit=100)
    assert len(page) == 30
    assert {d.event_id for d in page} == {
        event_id(f"take-{i}", s) for i in range(10) for s in (1, 2, 3)
    }


async def test_claims_lease_each_delivery_once_and_only_an_orders_earliest(
    store: OrderStore,
) -> None:
    endpoint = await _endpoint(store)
    for i in range(12):
        await _seed(store, f"claim-{i}", S.AWAITING_PAYMENT, S.HELD)
    now = datetime.now(UTC)
    await _take(store, now)

    async def claim(owner: str) -> list[repo.Claimed]:
        return await repo.claim(
            store.db,
            endpoint,
            now=now,
            lease_until=now + timedelta(seconds=60),
            owner=owner,
            limit=5,
        )

    batches = await asyncio.gather(*(claim(f"d{i}") for i in range(4)))
    claimed = [c for batch in batches for c in batch]
    assert len({c.id for c in claimed}) == len(claimed), "a delivery leased twice"
    # Only the first event of each order is due: the second waits for it.
    assert {c.seq for c in claimed} == {1}
    assert len(claimed) == 12
    assert await claim("late") == []

    # The lease's owner records the outcome; anyone else is refused.
    first = claimed[0]
    owner = next(f"d{i}" for i, batch in enumerate(batches) if first in batch)
    outcome = {
        "attempted_at": now,
        "status": DeliveryStatus.DELIVERED,
        "next_attempt_at": None,
        "expires_at": now + WINDOW,
        "status_code": 200,
        "latency_ms": 5,
        "error": None,
        "response": "ok",
    }
    assert not await repo.finish(store.db, first, owner="intruder", **outcome)  # type: ignore[arg-type]
    assert await repo.finish(store.db, first, owner=owner, **outcome)  # type: ignore[arg-type]
    # Now that order's second event is due.
    (second,) = await claim("next")
    assert (second.order_ref, second.seq) == (first.order_ref, 2)

    # A lease that ran out is claimed again (the dispatcher holding it died).
    later = now + timedelta(seconds=61)
    again = await repo.claim(
        store.db,
        endpoint,
        now=later,
        lease_until=later + timedelta(seconds=60),
        owner="heir",
        limit=100,
    )
    assert {c.id for c in again} == {c.id for c in claimed[1:]} | {second.id}


async def test_upgrade_from_0002_keeps_orders_and_sends_their_next_changes(
    databases: Databases,
) -> None:
    url = await databases.new()
    assert await migrate.upgrade(url, "0002") == "0002"
    now = datetime.now(UTC)
    first = StoreEvent(seq=1, time=now, kind="status", status=S.AWAITING_PAYMENT)
    await record_before_0005(url, write("up-hook", S.AWAITING_PAYMENT, [first], created_at=now))
    assert await migrate.upgrade(url) == migrate.head_revision()
    async with OrderStore.open(url) as new:
        assert (await new.get_order("up-hook")) is not None
        endpoint = await _endpoint(new)
        now = datetime.now(UTC)
        # Recorded before the endpoint existed: not sent to it.
        await _take(new, now)
        page, _ = await repo.list_deliveries(new.db, endpoint)
        assert page == []
        await new.record(
            write(
                "up-hook",
                S.HELD,
                [StoreEvent(seq=2, time=now, kind="status", status=S.HELD)],
                created_at=now,
            )
        )
        await _take(new, now)
        page, _ = await repo.list_deliveries(new.db, endpoint)
        assert [(d.order_ref, d.seq, d.type) for d in page] == [("up-hook", 2, "order.held")]
