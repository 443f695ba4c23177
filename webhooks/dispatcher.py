"""The webhook dispatcher: the store is the outbox, this loop empties it (docs/webhooks.md).

Each pass (every ``ESCROW_WEBHOOK_POLL_INTERVAL`` seconds):

1. take new status entries of ``order_events`` as events, with a delivery per subscribed
   endpoint (``repo.take_events``);
2. fail deliveries whose retry window is over or whose order has an earlier failed one
   (``repo.sweep``);
3. for every enabled endpoint with a free slot (``ESCROW_WEBHOOK_CONCURRENCY`` per endpoint,
   ``ESCROW_WEBHOOK_MAX_IN_FLIGHT`` in all), lease its due deliveries (``repo.claim``) and send
   each in its own task: a slow or dead endpoint fills only its own slots.

Everything it knows is in the store, so it can be killed at any moment: a delivery leased by a
dead dispatcher is taken again when its lease runs out, and sent again (at least once; the
receiver deduplicates by ``webhook-id``). It never talks to Temporal. It runs inside the worker
(``worker.py``) and alone (``cotpay-escrow webhooks dispatch``); several may run at once.

``clock`` schedules (retries, leases, windows) and can be replaced in tests; the
``webhook-timestamp`` header always carries the real time, as receivers check it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets as token
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import structlog

from runtime.codec import CodecSettings
from store import orders as store_orders
from store.api import OrderStore
from store.db import Database
from store.errors import SchemaBehind, StoreUnavailable
from store.settings import StoreSettings
from webhooks import backoff, metrics, repo
from webhooks.models import DeliveryStatus
from webhooks.repo import Claimed, EndpointRow
from webhooks.secrets import SecretBox, SecretUnavailable, sign
from webhooks.sender import AttemptResult, Sender
from webhooks.settings import WebhookSettings
from workflows.models import OrderView

log = structlog.get_logger("cotpay_escrow.webhooks")

Clock = Callable[[], datetime]
BACKLOG_EVERY_S = 15.0
MAX_ERROR_DELAY_S = 30.0
SWEEP_EVERY_S = 10.0
# A delivery due for its last attempt at the end of its window is given this long to be
# claimed before the sweep fails it.
SWEEP_GRACE = timedelta(minutes=10)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _owner() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{token.token_hex(4)}"


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: WebhookSettings | None = None,
        *,
        box: SecretBox | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        sender: Sender | None = None,
        owner: str | None = None,
        sweep_every: float = SWEEP_EVERY_S,
    ) -> None:
        self.db = db
        self.settings = settings or WebhookSettings()
        self.box = box or SecretBox(None)
        self.clock = clock
        self.rng = rng or random.Random()
        self.sender = sender or Sender(self.settings)
        self.owner = owner or _owner()
        self.in_flight: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._secrets: dict[tuple[str, str], str] = {}
        self._secret_errors: set[str] = set()
        self._backlog_at = 0.0
        self.sweep_every = sweep_every
        self._swept_at: float | None = None

    @classmethod
    def from_env(cls, settings: WebhookSettings | None = None) -> Dispatcher:
        """The dispatcher over ``ESCROW_DATABASE_URL`` with the codec key ring (secrets)."""
        return cls(
            Database.from_settings(StoreSettings()),
            settings or WebhookSettings(),
            box=SecretBox(CodecSettings().key_ring()),
        )

    # --- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; a store outage only slows it down."""
        log.info(
            "webhooks.dispatcher_started",
            owner=self.owner,
            store=self.db.url,
            production=self.settings.production,
        )
        try:
            if not await self._schema_ready(stop):
                return
            delay = self.settings.poll_interval
            while not stop.is_set():
                try:
                    await self.tick()
                    delay = self.settings.poll_interval
                except StoreUnavailable as err:
                    log.warning("webhooks.store_unavailable", error=str(err)[:300])
                    delay = min(max(delay * 2, 1.0), MAX_ERROR_DELAY_S)
                except Exception as err:  # the dispatcher must outlive any one bad pass
                    log.error("webhooks.pass_failed", error_type=type(err).__name__)
                    delay = min(max(delay * 2, 1.0), MAX_ERROR_DELAY_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            await self.shutdown()
            log.info("webhooks.dispatcher_stopped", owner=self.owner)

    async def _schema_ready(self, stop: asyncio.Event) -> bool:
        delay = 1.0
        while not stop.is_set():
            try:
                await OrderStore(self.db).ensure_schema()
                return True
            except SchemaBehind as err:
                log.error("webhooks.schema_behind", error=str(err)[:300])
            except StoreUnavailable as err:
                log.warning("webhooks.store_unavailable", error=str(err)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, MAX_ERROR_DELAY_S)
        return False

    async def shutdown(self) -> None:
        """Let requests in flight finish (up to one attempt timeout), then close the client.
        A request cut short keeps its lease, which runs out: it is sent again later."""
        if self.tasks:
            _done, pending = await asyncio.wait(
                set(self.tasks), timeout=self.settings.attempt_timeout + 1
            )
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        await self.sender.aclose()

    async def drain(self) -> None:
        """Wait for every request in flight (tests)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    # --- one pass ----------------------------------------------------------------------------

    async def tick(self) -> int:
        """One pass; returns how many requests it started."""
        settings = self.settings
        now = self.clock()
        made = await repo.take_events(
            self.db,
            now=now,
            window=settings.retry_window,
            lookback=settings.lookback,
            limit=settings.batch,
            view_of=self._view,
        )
        if made:
            metrics.EVENTS_TAKEN.inc(len(made))
            oldest = min(recorded for _id, recorded in made)
            metrics.TAKE_LAG.set(max(0.0, (now - oldest).total_seconds()))
        else:
            metrics.TAKE_LAG.set(0)
        await self._sweep(now)
        started = 0
        due = await repo.due_endpoints(self.db, now=now)
        if due:
            for endpoint in await repo.list_endpoints(self.db):
                if endpoint.enabled and endpoint.id in due:
                    started += await self._start_endpoint(endpoint, now)
        await self._refresh_backlog()
        metrics.LAST_PASS.set(time.time())
        return started

    async def _sweep(self, now: datetime) -> None:
        """Every ``sweep_every`` seconds (a scan of the pending deliveries)."""
        moment = time.monotonic()
        if self._swept_at is not None and moment - self._swept_at < self.sweep_every:
            return
        self._swept_at = moment
        failed = await repo.sweep(self.db, now=now, grace=SWEEP_GRACE)
        if failed:
            metrics.DELIVERIES_FAILED.inc(failed)
            log.warning("webhooks.deliveries_failed", count=failed)

    async def _view(self, merchant: str, order_ref: str) -> OrderView | None:
        return await store_orders.get_order(self.db, order_ref, merchant)

    async def _start_endpoint(self, endpoint: EndpointRow, now: datetime) -> int:
        total = sum(self.in_flight.values())
        free = min(
            self.settings.concurrency - self.in_flight.get(endpoint.id, 0),
            self.settings.max_in_flight - total,
        )
        if free <= 0:
            return 0
        try:
            keys = self._signing_secrets(endpoint, now)
        except SecretUnavailable as err:
            if endpoint.id not in self._secret_errors:
                self._secret_errors.add(endpoint.id)
                log.error("webhooks.secret_unavailable", endpoint=endpoint.id, error=str(err))
            return 0
        claimed = await repo.claim(
            self.db,
            endpoint.id,
            now=now,
            lease_until=now + timedelta(seconds=self.settings.lease),
            owner=self.owner,
            limit=free,
        )
        for delivery in claimed:
            self.in_flight[endpoint.id] = self.in_flight.get(endpoint.id, 0) + 1
            task = asyncio.create_task(self._attempt(endpoint, keys, delivery))
            self.tasks.add(task)
            task.add_done_callback(self._done(endpoint.id))
        return len(claimed)

    def _done(self, endpoint_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            left = self.in_flight.get(endpoint_id, 1) - 1
            if left > 0:
                self.in_flight[endpoint_id] = left
            else:
                self.in_flight.pop(endpoint_id, None)
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "webhooks.attempt_crashed",
                    endpoint=endpoint_id,
                    error_type=type(task.exception()).__name__,
                )

        return done

    def _signing_secrets(self, endpoint: EndpointRow, now: datetime) -> list[str]:
        keys = [self._open(endpoint.secret, endpoint.id)]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and expires > now:
            keys.append(self._open(endpoint.previous_secret, endpoint.id))
        self._secret_errors.discard(endpoint.id)
        return keys

    def _open(self, sealed: str, endpoint_id: str) -> str:
        key = (endpoint_id, sealed)
        if key not in self._secrets:
            if len(self._secrets) > 4096:
                self._secrets.clear()
            self._secrets[key] = self.box.open(sealed, endpoint_id)
        return self._secrets[key]

    async def _refresh_backlog(self) -> None:
        if time.monotonic() - self._backlog_at < BACKLOG_EVERY_S:
            return
        self._backlog_at = time.monotonic()
        count, oldest = await repo.backlog(self.db)
        metrics.PENDING.set(count)
        age = (self.clock() - oldest).total_seconds() if oldest is not None else 0.0
        metrics.OLDEST_PENDING.set(max(0.0, age))

    # --- one attempt -------------------------------------------------------------------------

    def headers(self, delivery: Claimed, keys: list[str]) -> dict[str, str]:
        stamp = utc_now().replace(microsecond=0)
        return {
            "content-type": "application/json",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": sign(delivery.event_id, stamp, delivery.payload, keys),
        }

    async def _attempt(self, endpoint: EndpointRow, keys: list[str], delivery: Claimed) -> None:
        settings = self.settings
        started = self.clock()
        result = await self.sender.send(
            endpoint.url, self.headers(delivery, keys), delivery.payload.encode()
        )
        finished = self.clock()
        metrics.ATTEMPTS.labels(outcome=result.outcome).inc()
        metrics.ATTEMPT_SECONDS.observe(result.latency_ms / 1000)
        expires = delivery.expires_at
        if delivery.attempts == 0:
            expires = max(expires, started + settings.retry_window)
        next_at: datetime | None = None
        if result.ok:
            status = DeliveryStatus.DELIVERED
        else:
            next_at = backoff.next_attempt(
                finished,
                delivery.attempts + 1,
                expires,
                first=settings.retry_first_delay,
                cap=settings.retry_max_delay,
                rng=self.rng,
            )
            status = DeliveryStatus.PENDING if next_at is not None else DeliveryStatus.FAILED
        kept = await self._finish(delivery, result, started, status, next_at, expires)
        self._log(endpoint, delivery, result, status, next_at, kept)
        if not kept:
            return
        if status is DeliveryStatus.FAILED:
            metrics.DELIVERIES_FAILED.inc()
        disabled = await repo.record_attempt_health(
            self.db,
            endpoint.id,
            ok=result.ok,
            now=finished,
            disable_after_failures=settings.disable_after_failures,
            disable_after=settings.disable_after,
        )
        if disabled:
            metrics.ENDPOINTS_DISABLED.inc()
            log.error(
                "webhooks.endpoint_disabled",
                endpoint=endpoint.id,
                host=urlsplit(endpoint.url).hostname,
                reason="failing",
                detail=f"every attempt failed for at least {settings.disable_after} and"
                f" {settings.disable_after_failures} attempts in a row",
            )

    async def _finish(
        self,
        delivery: Claimed,
        result: AttemptResult,
        started: datetime,
        status: DeliveryStatus,
        next_at: datetime | None,
        expires: datetime,
    ) -> bool:
        for attempt in range(3):
            try:
                return await repo.finish(
                    self.db,
                    delivery,
                    owner=self.owner,
                    attempted_at=started,
                    status=status,
                    next_attempt_at=next_at,
                    expires_at=expires,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    response=result.response_excerpt,
                )
            except StoreUnavailable as err:
                # The lease runs out and the delivery is sent again: at least once.
                log.warning("webhooks.finish_unrecorded", error=str(err)[:200], attempt=attempt)
                await asyncio.sleep(0.5 * (attempt + 1))
        return False

    def _log(
        self,
        endpoint: EndpointRow,
        delivery: Claimed,
        result: AttemptResult,
        status: DeliveryStatus,
        next_at: datetime | None,
        kept: bool,
    ) -> None:
        fields = {
            "endpoint": endpoint.id,
            "host": urlsplit(endpoint.url).hostname,
            "eventId": delivery.event_id,
            "type": delivery.type,
            "orderRef": delivery.order_ref,
            "attempt": delivery.attempts + 1,
            "statusCode": result.status_code,
            "latencyMs": result.latency_ms,
            "outcome": result.outcome,
            "status": status.value,
        }
        if not kept:
            log.warning("webhooks.lease_lost", **fields)
        elif result.ok:
            log.info("webhooks.delivered", **fields)
        elif next_at is not None:
            log.info(
                "webhooks.attempt_failed",
                error=result.error,
                nextAttemptAt=next_at.isoformat(),
                **fields,
            )
        else:
            log.warning("webhooks.delivery_failed", error=result.error, **fields)
