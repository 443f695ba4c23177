"""Retry timing on a controllable clock (the outbox's equivalent of the time-skipping server:
the dispatcher schedules from an injected clock and draws jitter from an injected random
source), the end of the window, auto-disable, resend, and secret rotation."""

from __future__ import annotations

import random
from datetime import timedelta

from store.api import OrderStore
from tests.webhooks.conftest import FakeClock, Seeder, add_endpoint, dispatcher
from tests.webhooks.receiver import Receiver, Reply, Request
from webhooks import backoff, metrics
from webhooks.dispatcher import SWEEP_GRACE
from webhooks.events import event_id
from webhooks.models import DeliveryStatus, DisabledReason, EndpointUpdate, RotateSecret
from webhooks.repo import BLOCKED_ERROR, UNSENT_ERROR
from webhooks.service import WebhookService
from webhooks.settings import WebhookSettings
from workflows.models import EscrowStatus

S = EscrowStatus
DAY = timedelta(days=1)


def production_schedule(**overrides: object) -> WebhookSettings:
    """The default retry schedule and thresholds, with short network timeouts."""
    values: dict[str, object] = {
        "env": "development",
        "attempt_timeout": 4.0,
        "read_timeout": 3.0,
        "lease": 10.0,
    }
    values.update(overrides)
    return WebhookSettings.model_validate(values)


class Switch:
    def __init__(self, status: int = 500) -> None:
        self.status = status

    def __call__(self, _request: Request) -> Reply:
        return Reply(status=self.status)


async def _pass(d, clock: FakeClock | None = None, at=None) -> None:
    if clock is not None and at is not None:
        clock.set(at)
    await d.tick()
    await d.drain()


async def test_retry_schedule_window_failure_auto_disable_and_resend(
    store: OrderStore, seed: Seeder
) -> None:
    clock = FakeClock()
    settings = production_schedule()
    service = WebhookService(store.db, settings, clock=clock)
    answer = Switch(500)
    disabled_before = metrics.ENDPOINTS_DISABLED._value.get()
    async with Receiver(answer) as receiver:
        endpoint = await add_endpoint(service, receiver.url)
        await seed.status("late-1", S.AWAITING_PAYMENT)
        d = dispatcher(store, settings, clock=clock, rng=random.Random(3))
        await _pass(d)
        first = clock.now
        replay = random.Random(3)  # the same draws, to predict every attempt exactly
        attempts = [first]
        for n in range(1, 100):
            (delivery,) = (await service.deliveries(endpoint.id)).deliveries
            if delivery.status is DeliveryStatus.FAILED:
                break
            assert delivery.status is DeliveryStatus.PENDING
            assert delivery.attempts == n
            assert delivery.last_status_code == 500
            assert delivery.expires_at == first + settings.retry_window
            expected = min(
                attempts[-1]
                + backoff.retry_delay(
                    n, first=settings.retry_first_delay, cap=settings.retry_max_delay, rng=replay
                ),
                first + settings.retry_window,
            )
            assert delivery.next_attempt_at == expected
            gap = (expected - attempts[-1]).total_seconds()
            nominal = min(
                settings.retry_max_delay.total_seconds(),
                settings.retry_first_delay.total_seconds() * 2 ** (n - 1),
            )
            if expected < first + settings.retry_window:
                assert 0.8 * nominal <= gap <= 1.2 * nominal
            # Nothing is sent before the time has come.
            clock.set(expected - timedelta(seconds=1))
            sent = len(receiver.requests)
            await _pass(d)
            assert len(receiver.requests) == sent
            await _pass(d, clock, expected)
            assert len(receiver.requests) == sent + 1
            attempts.append(expected)
        else:
            raise AssertionError("the delivery never failed")

        # Retried with backoff for three days, the last attempt at the end of the window.
        assert attempts[-1] == first + timedelta(days=3)
        assert 15 <= len(attempts) <= 30, len(attempts)
        assert [r.event_id for r in receiver.requests] == [event_id("late-1", 1)] * len(attempts)
        assert delivery.failed_at == attempts[-1]
        assert delivery.last_error == "HTTP 500"
        assert delivery.next_attempt_at is None
        # The webhook-timestamp is real time, so the signature checks out three days on.
        assert receiver.requests[-1].signed_by(endpoint.secret)

        # Three days of failures and at least 20 in a row: the endpoint is disabled.
        shown = await service.get(endpoint.id)
        assert not shown.enabled
        assert shown.disabled_reason is DisabledReason.FAILING
        assert shown.consecutive_failures == len(attempts)
        assert metrics.ENDPOINTS_DISABLED._value.get() == disabled_before + 1

        # A resend waits while the endpoint is disabled, and goes once it is enabled again.
        answer.status = 200
        again = await service.resend(endpoint.id, delivery.id)
        assert again.status is DeliveryStatus.PENDING
        assert again.next_attempt_at == clock.now
        await _pass(d)
        assert len(receiver.requests) == len(attempts)
        await service.update(endpoint.id, EndpointUpdate(enabled=True))
        await _pass(d)
        (delivered,) = (await service.deliveries(endpoint.id)).deliveries
        assert delivered.status is DeliveryStatus.DELIVERED
        assert delivered.attempts == len(attempts) + 1
        shown = await service.get(endpoint.id)
        assert shown.enabled and shown.consecutive_failures == 0
        assert shown.last_success_at == clock.now
        await d.shutdown()


async def test_a_failed_event_fails_the_later_ones_of_its_order_and_resend_keeps_the_order(
    store: OrderStore, seed: Seeder
) -> None:
    clock = FakeClock()
    settings = production_schedule(disable_after_failures=10_000)
    service = WebhookService(store.db, settings, clock=clock)
    answer = Switch(500)
    async with Receiver(answer) as receiver:
        endpoint = await add_endpoint(service, receiver.url)
        await seed.status("chain", S.AWAITING_PAYMENT, S.HELD)
        d = dispatcher(store, settings, clock=clock, rng=random.Random(1))
        await _pass(d)
        # Only the first event is tried: the second waits for it.
        assert {r.event_id for r in receiver.requests} == {event_id("chain", 1)}
        for _ in range(100):
            first, _second = sorted(
                (await service.deliveries(endpoint.id)).deliveries, key=lambda x: x.seq
            )
            if first.status is DeliveryStatus.FAILED:
                break
            assert first.next_attempt_at is not None
            await _pass(d, clock, first.next_attempt_at)
        await _pass(d)
        first, second = sorted(
            (await service.deliveries(endpoint.id)).deliveries, key=lambda x: x.seq
        )
        assert first.status is DeliveryStatus.FAILED
        assert second.status is DeliveryStatus.FAILED
        assert second.last_error == BLOCKED_ERROR
        assert second.attempts == 0
        assert {r.event_id for r in receiver.requests} == {event_id("chain", 1)}

        # Resending the later event queues the earlier failed one too, and both go in order.
        answer.status = 200
        await service.resend(endpoint.id, second.id)
        await _pass(d)
        await _pass(d)
        acknowledged = [r.event["type"] for r in receiver.acknowledged()]
        assert acknowledged == ["order.awaiting_payment", "order.held"]
        await d.shutdown()


async def test_deliveries_of_a_disabled_endpoint_wait_then_fail_at_the_end_of_the_window(
    store: OrderStore, seed: Seeder
) -> None:
    clock = FakeClock()
    settings = production_schedule()
    service = WebhookService(store.db, settings, clock=clock)
    async with Receiver() as receiver:
        endpoint = await add_endpoint(service, receiver.url)
        await service.update(endpoint.id, EndpointUpdate(enabled=False))
        assert (await service.get(endpoint.id)).disabled_reason is DisabledReason.MANUAL
        await seed.status("paused", S.AWAITING_PAYMENT)
        d = dispatcher(store, settings, clock=clock)
        await _pass(d)
        (waiting,) = (await service.deliveries(endpoint.id)).deliveries
        assert waiting.status is DeliveryStatus.PENDING and waiting.attempts == 0
        # Re-enabled within the window: sent.
        clock.advance(DAY)
        await service.update(endpoint.id, EndpointUpdate(enabled=True))
        await _pass(d)
        assert receiver.acknowledged_ids() == {event_id("paused", 1)}

        await service.update(endpoint.id, EndpointUpdate(enabled=False))
        await seed.status("paused", S.HELD)
        await _pass(d)
        clock.advance(settings.retry_window + SWEEP_GRACE)
        await _pass(d)
        held = next(x for x in (await service.deliveries(endpoint.id)).deliveries if x.seq == 2)
        assert held.status is DeliveryStatus.FAILED
        assert held.last_error == UNSENT_ERROR
        await d.shutdown()


async def test_rotation_signs_with_both_secrets_for_the_overlap_then_only_the_new_one(
    store: OrderStore, seed: Seeder
) -> None:
    clock = FakeClock()
    settings = production_schedule()
    service = WebhookService(store.db, settings, clock=clock)
    async with Receiver() as receiver:
        endpoint = await add_endpoint(service, receiver.url)
        old = endpoint.secret
        d = dispatcher(store, settings, clock=clock)

        await seed.status("rot", S.AWAITING_PAYMENT)
        await _pass(d)
        before = receiver.requests[-1]
        assert before.signed_by(old)
        assert len(before.headers["webhook-signature"].split(" ")) == 1

        rotated = await service.rotate_secret(endpoint.id)
        new = rotated.secret
        assert new != old and new.startswith("whsec_")
        assert rotated.previous_secret_expires_at == clock.now + timedelta(hours=24)
        assert (await service.get(endpoint.id)).previous_secret_expires_at == (
            rotated.previous_secret_expires_at
        )
        await seed.status("rot", S.HELD)
        await _pass(d)
        during = receiver.requests[-1]
        assert during.signed_by(new) and during.signed_by(old)
        assert len(during.headers["webhook-signature"].split(" ")) == 2

        clock.advance(timedelta(hours=24, seconds=1))
        await seed.status("rot", S.DELIVERED)
        await _pass(d)
        after = receiver.requests[-1]
        assert after.event["type"] == "order.delivered"
        assert after.signed_by(new) and not after.signed_by(old)

        # A leaked secret: overlap 0 drops the old one at once.
        leaked = await service.rotate_secret(endpoint.id, overlap=timedelta(0))
        assert leaked.previous_secret_expires_at is None
        await seed.status("rot", S.PAYING_OUT)
        await _pass(d)
        last = receiver.requests[-1]
        assert last.signed_by(leaked.secret) and not last.signed_by(new)
        assert RotateSecret(overlap_hours=0).overlap_hours == 0
        await d.shutdown()
