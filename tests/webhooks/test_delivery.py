"""Delivery through a real loopback receiver: at least once with stable ids, in order per order
and endpoint, isolation between endpoints, and every kind of bad receiver is a failed attempt.
Signatures are verified with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta

from store.api import OrderStore
from tests.webhooks.conftest import (
    PAID_OUT_PATH,
    Seeder,
    add_endpoint,
    dispatcher,
    fast_settings,
)
from tests.webhooks.receiver import Receiver, Reply, Request
from webhooks.dispatcher import Dispatcher
from webhooks.events import event_id
from webhooks.models import DeliveryStatus
from webhooks.service import WebhookService
from workflows.models import EscrowStatus

S = EscrowStatus


@contextlib.asynccontextmanager
async def running(d: Dispatcher) -> AsyncIterator[Dispatcher]:
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        yield d
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_a_receiver_failing_the_first_attempts_gets_every_event_once_it_answers(
    store: OrderStore, service: WebhookService, seed: Seeder
) -> None:
    failures_left = {"n": 5}

    def behave(_request: Request) -> Reply:
        if failures_left["n"] > 0:
            failures_left["n"] -= 1
            return Reply(status=500, body=b"down")
        return Reply(status=204, body=b"")

    async with Receiver(behave) as receiver:
        endpoint = await add_endpoint(service, receiver.url)
        expected: set[str] = set()
        for ref in ("ret-a", "ret-b", "ret-c"):
            seqs = await seed.status(ref, S.AWAITING_PAYMENT, S.HELD)
            expected |= {event_id(ref, s) for s in seqs}
        async with running(dispatcher(store)):
            await receiver.wait_acknowledged(expected, within=30)

        # Each event arrived at least once with a 2xx; duplicates carry the same id.
        assert receiver.acknowledged_ids() == expected
        for request in receiver.requests:
            body = request.verify(endpoint.secret)  # the standardwebhooks library
            assert body["id"] == request.event_id
            assert body["type"] in ("order.awaiting_payment", "order.held")
            assert body["data"]["orderRef"] in ("ret-a", "ret-b", "ret-c")
        bodies = defaultdict(set)
        for request in receiver.requests:
            bodies[request.event_id].add(request.body)
        assert all(len(b) == 1 for b in bodies.values()), "a retry sends the same body"
        assert len(receiver.requests) >= len(expected) + 5

    page = await service.deliveries(endpoint.id)
    assert {d.status for d in page.deliveries} == {DeliveryStatus.DELIVERED}
    assert sum(d.attempts for d in page.deliveries) == len(receiver.requests)
    assert all(d.next_attempt_at is None for d in page.deliveries)
    retried = [d for d in page.deliveries if d.attempts > 1]
    assert retried and all(d.last_status_code == 204 for d in retried)


async def test_per_order_order_holds_when_the_receiver_answers_out_of_order(
    store: OrderStore, service: WebhookService, seed: Seeder
) -> None:
    rng = random.Random(7)

    async def behave(_request: Request) -> Reply:
        # Slow, fast, failing: answers come back in any order.
        roll = rng.random()
        if roll < 0.3:
            return Reply(status=503, delay=rng.uniform(0, 0.05))
        return Reply(status=200, delay=rng.uniform(0, 0.15))

    refs = [f"ord-{i}" for i in range(6)]
    async with Receiver(behave) as receiver:
        await add_endpoint(service, receiver.url)
        expected: dict[str, list[str]] = {}
        for ref in refs:
            seqs = await seed.status(ref, *PAID_OUT_PATH)
            expected[ref] = [event_id(ref, s) for s in seqs]
        all_ids = {i for ids in expected.values() for i in ids}
        async with running(dispatcher(store, fast_settings(concurrency=8))):
            await receiver.wait_acknowledged(all_ids, within=60)

    for ref in refs:
        ids = expected[ref]
        mine = [r for r in receiver.requests if r.event["data"]["orderRef"] == ref]
        first_ack = {
            i: min(r.answered or 0.0 for r in mine if r.event_id == i and r.status == 200)
            for i in ids
        }
        for earlier, later in itertools.pairwise(ids):
            first_request_of_later = min(r.at for r in mine if r.event_id == later)
            assert first_ack[earlier] <= first_request_of_later, (
                f"{ref}: {later} was sent before {earlier} was acknowledged"
            )
        types = [r.event["type"] for r in mine if r.status == 200]
        assert types.index("order.held") < types.index("order.paid_out")


async def test_a_hung_receiver_does_not_delay_another_endpoint(
    store: OrderStore, service: WebhookService, seed: Seeder
) -> None:
    async with (
        Receiver(lambda _r: Reply(hang=True)) as hung,
        Receiver() as healthy,
    ):
        await add_endpoint(service, hung.url)
        await add_endpoint(service, healthy.url)
        settings = fast_settings(attempt_timeout=8.0, read_timeout=8.0, lease=20.0)
        async with running(dispatcher(store, settings)):
            await seed.status("iso-1", S.AWAITING_PAYMENT, S.HELD)
            await hung.wait_for(lambda r: len(r.requests) >= 1, within=10)
            started = time.monotonic()
            ids = {event_id("iso-1", 1), event_id("iso-1", 2)}
            await healthy.wait_acknowledged(ids, within=10)
            assert time.monotonic() - started < 3.0, "the healthy endpoint waited for the hung one"
            # Another order to the healthy endpoint while the hung one still hangs.
            await seed.status("iso-2", S.AWAITING_PAYMENT)
            await healthy.wait_acknowledged({event_id("iso-2", 1)}, within=5)
            assert hung.acknowledged() == []


async def test_bad_receivers_are_failed_attempts_and_nothing_else_is_affected(
    store: OrderStore, service: WebhookService, seed: Seeder
) -> None:
    async with (
        Receiver(lambda _r: Reply(status=200, stream_bytes=2 * 1024 * 1024)) as huge,
        Receiver() as target,
        Receiver(lambda _r: Reply(reset=True)) as resets,
        Receiver(lambda _r: Reply(hang=True)) as silent,
        Receiver() as healthy,
    ):
        redirects = Receiver(
            lambda _r: Reply(status=302, headers={"location": target.url}, body=b"")
        )
        async with redirects:
            bad = {
                "huge": await add_endpoint(service, huge.url),
                "redirect": await add_endpoint(service, redirects.url),
                "reset": await add_endpoint(service, resets.url),
                "silent": await add_endpoint(service, silent.url),
            }
            await add_endpoint(service, healthy.url)
            settings = fast_settings(
                attempt_timeout=2.0,
                read_timeout=2.0,
                retry_first_delay=timedelta(seconds=30),
                retry_max_delay=timedelta(minutes=5),
            )
            d = dispatcher(store, settings)
            await seed.status("bad-1", S.AWAITING_PAYMENT)
            await d.tick()
            await asyncio.wait_for(d.drain(), timeout=15)
            await d.shutdown()
            await healthy.wait_acknowledged({event_id("bad-1", 1)}, within=1)
            assert target.requests == [], "a redirect was followed"

    errors = {}
    for name, endpoint in bad.items():
        (delivery,) = (await service.deliveries(endpoint.id)).deliveries
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.attempts == 1
        assert delivery.next_attempt_at is not None
        errors[name] = delivery.last_error or ""
    assert errors["huge"].startswith("response body over 65536 bytes")
    assert errors["redirect"] == "HTTP 302: redirect not followed"
    assert "reset" in errors["reset"] or "closed" in errors["reset"]
    assert "timeout" in errors["silent"]


async def test_only_subscribed_types_of_the_endpoints_merchant_after_it_was_made(
    store: OrderStore, service: WebhookService, seed: Seeder
) -> None:
    async with Receiver() as all_events, Receiver() as held_only:
        await seed.status("before", S.AWAITING_PAYMENT)  # recorded before any endpoint
        await asyncio.sleep(0.01)
        await add_endpoint(service, all_events.url)
        await add_endpoint(service, held_only.url, "order.held", "order.paid_out")
        await seed.status("sub-1", S.AWAITING_PAYMENT, S.HELD)
        await seed.other("sub-1", "ipn")  # not a status change
        await seed.status("other-shop", S.AWAITING_PAYMENT, merchant="shop-2")
        d = dispatcher(store)
        await d.tick()
        await d.drain()
        await d.tick()
        await d.drain()
        await d.shutdown()
    assert sorted(r.event["type"] for r in all_events.requests) == [
        "order.awaiting_payment",
        "order.held",
    ]
    assert [r.event["type"] for r in held_only.requests] == ["order.held"]
    held = held_only.requests[0].event
    assert held["data"]["status"] == "HELD"
    # data is the order as the store had it when the event was taken: here the IPN entry
    # recorded before the dispatcher's pass is in its timeline too.
    timeline = [(e["kind"], e["status"]) for e in held["data"]["timeline"]]
    assert timeline == [("status", "AWAITING_PAYMENT"), ("status", "HELD"), ("ipn", "HELD")]
    assert set(held) == {"id", "type", "created", "data"}


async def test_two_dispatchers_never_send_a_delivery_twice_at_once(
    store: OrderStore, service: WebhookService, seed: Seeder
) -> None:
    in_flight: set[str] = set()
    overlaps: list[str] = []

    async def behave(request: Request) -> Reply:
        if request.event_id in in_flight:
            overlaps.append(request.event_id)
        in_flight.add(request.event_id)
        await asyncio.sleep(0.05)
        in_flight.discard(request.event_id)
        return Reply()

    async with Receiver(behave) as receiver:
        await add_endpoint(service, receiver.url)
        ids: set[str] = set()
        for i in range(8):
            ref = f"two-{i}"
            ids |= {event_id(ref, s) for s in await seed.status(ref, *PAID_OUT_PATH[:3])}
        first, second = dispatcher(store), dispatcher(store)
        async with running(first), running(second):
            await receiver.wait_acknowledged(ids, within=60)
    assert overlaps == []
    assert len(receiver.requests) == len(ids), "each delivery sent once when every answer is 2xx"
